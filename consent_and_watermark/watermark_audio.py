"""Invisible, blind audio watermark: keyed spread spectrum on the STFT magnitude (telephone band).

How it works:

**Grid.** All watermark arithmetic happens at 16 kHz (the input is resampled for analysis; only the
watermark *difference* is resampled back, so the original samples stay untouched outside it). The STFT
uses 32 ms sqrt-Hann windows with 50 % overlap (perfect reconstruction: the squared windows sum to 1).
The 300-3400 Hz telephone band (it survives 8 kHz resampling, MP3 and AAC at 64 kbps) is cut into
``bands`` equal sub-bands, and time into 64 ms blocks; a (sub-band, block) cell is one chip.

**Pattern.** The chips repeat with a period of ``period`` blocks (2.56 s). A keyed permutation splits
each period's cells into *pilot* chips (keyed signs, for synchronisation) and *payload* chips
(``ecc.SpreadCode``: convolutionally coded, repeated, keyed-scrambled payload).

**Embedding** is multiplicative: every STFT coefficient of a cell is scaled by ``1 + a_cell * chip``
(Cox et al. 1997 spread spectrum, applied to magnitudes so the mark follows the signal's own loudness:
a silent passage gets no mark, and a codec that keeps the signal keeps the mark). The detector reads
``log(1 + a c)``, the same for a loud or a quiet cell, while the energy a cell's modulation costs grows
with its loudness, so quiet cells get relatively more: ``a_cell ~ (cell energy / mean)^-0.5`` (a
water-filling compromise). One global factor then sets the added signal to exactly 25.5 dB SNR (the
target is >= 25 dB), capped at a 20 % modulation of an average cell.

**Detection (blind).** Log band energies per STFT frame, minus their slow trend (a moving average over
time) and minus the per-frame mean over bands (loudness changes), divided by their recent mean
magnitude (local whitening: turbulent stretches such as note onsets count for less), are folded
modulo the period. A
circular cross-correlation with the pilot over all time shifts finds where the blocks start (trimmed
audio and codec delays are just shifts). The payload chips are then averaged, Viterbi-decoded and
re-encoded; the matching chip count gives the binomial false-positive bound of ``detection.py``. The
pilot search adds no candidates (disjoint cells, independent key stream).

**Limits.** Time stretching or pitch shifting desynchronises the grid; heavy noise or a low-rate codec
erases the ~ +-0.5 dB modulation; sparse synthetic tones (few partials, silent bands between them) are
the hardest material; whoever holds the key can remove or forge the mark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import resample_poly

from consent_and_watermark.detection import FPR_THRESHOLD, Detection, match_fpr
from consent_and_watermark.ecc import SpreadCode, keyed_permutation, keyed_signs


@dataclass(frozen=True)
class AudioWatermarkConfig:
    """Parameters shared by embedder and detector (changing any of them changes the mark)."""

    rate: int = 16000  # internal sample rate
    n_fft: int = 512  # 32 ms window
    hop: int = 256  # 16 ms
    frames_per_block: int = 4  # 64 ms chips
    band_hz: tuple[float, float] = (300.0, 3400.0)
    bands: int = 24
    period: int = 40  # blocks per pattern period (2.56 s)
    pilot_fraction: float = 0.25
    snr_db: float = 25.5  # the added signal is scaled to exactly this SNR ...
    max_alpha: float = 0.2  # ... capped at a +-20 % modulation of an average cell
    quiet_boost: float = 0.5  # beta: a cell's modulation ~ (its energy / mean energy)^-beta
    trend_frames: int = 13  # moving-average length removed from the log band energies
    local_norm_frames: int = 31  # window of the detector's local whitening (0.5 s)


CONFIG = AudioWatermarkConfig()
# One full period (2.56 s): the shortest audio that holds every chip. ~3 s of speech is detected
# reliably when untouched; surviving MP3/AAC/resampling was measured on 10 s (benchmarks/).
MIN_SECONDS = CONFIG.period * CONFIG.frames_per_block * CONFIG.hop / CONFIG.rate


@dataclass(frozen=True)
class _Layout:
    """Keyed chip layout of one period: (bands, period) cells."""

    pilot: np.ndarray  # (bands, period) +-1 on pilot cells, 0 elsewhere
    data_cells: tuple[np.ndarray, np.ndarray]  # (band, block) of each payload chip
    code: SpreadCode
    bin_band: np.ndarray  # (n_fft/2+1,) sub-band of each STFT bin, -1 outside the band


@lru_cache(maxsize=8)
def _layout(key: bytes, config: AudioWatermarkConfig) -> _Layout:
    n_cells = config.bands * config.period
    order = keyed_permutation(key, "audio/cells", n_cells)
    n_pilot = int(round(config.pilot_fraction * n_cells))
    pilot = np.zeros(n_cells, np.float32)
    pilot[order[:n_pilot]] = keyed_signs(key, "audio/pilot", n_pilot)
    data = order[n_pilot:]
    freqs = np.fft.rfftfreq(config.n_fft, 1.0 / config.rate)
    lo, hi = config.band_hz
    bin_band = np.floor((freqs - lo) / (hi - lo) * config.bands).astype(np.int64)
    bin_band[(freqs < lo) | (freqs >= hi)] = -1
    return _Layout(
        pilot=pilot.reshape(config.bands, config.period),
        data_cells=(data // config.period, data % config.period),
        code=SpreadCode(key, data.size, "audio/payload"),
        bin_band=bin_band,
    )


def _window(n: int) -> np.ndarray:
    """sqrt of the periodic Hann window: analysis x synthesis = Hann, whose 50 %-overlapped copies sum to 1"""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def _stft(x: np.ndarray, config: AudioWatermarkConfig) -> np.ndarray:
    """(N,) -> (frames, n_fft/2+1) complex; frame j covers samples [j*hop - n_fft/2, j*hop + n_fft/2)."""
    half = config.n_fft // 2
    padded = np.pad(x, (half, half + config.hop))
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft)[:: config.hop]
    return np.fft.rfft(frames * _window(config.n_fft), axis=1)


def _istft(spec: np.ndarray, length: int, config: AudioWatermarkConfig) -> np.ndarray:
    """Weighted overlap-add inverse of ``_stft`` -> (length,) float32."""
    frames = np.fft.irfft(spec, n=config.n_fft, axis=1) * _window(config.n_fft)  # (frames, n_fft)
    out = np.zeros((frames.shape[0] + 1) * config.hop, np.float64)
    for part in range(config.n_fft // config.hop):  # n_fft/hop interleaved, non-overlapping sets of frames
        seg = frames[:, part * config.hop : (part + 1) * config.hop]  # (frames, hop)
        out[part * config.hop : part * config.hop + seg.size] += seg.reshape(-1)
    half = config.n_fft // 2
    return out[half : half + length].astype(np.float32)


def _to_internal(samples: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    if sample_rate == rate:
        return samples.astype(np.float32)
    g = math.gcd(sample_rate, rate)
    return resample_poly(samples, rate // g, sample_rate // g).astype(np.float32)


def _check(samples: np.ndarray, sample_rate: int) -> None:
    if samples.ndim != 1:
        raise ValueError(f"expected mono (N,) samples, got shape {samples.shape}")
    if sample_rate < 8000:
        raise ValueError(f"sample rate {sample_rate} Hz is below 8 kHz: the 300-3400 Hz band does not fit")


def embed(samples: np.ndarray, sample_rate: int, payload: int, key: bytes) -> np.ndarray:
    """Mark (N,) float32 mono samples with a 64-bit payload; returns (N,) float32 at the same rate.

    Raises ValueError below ``MIN_SECONDS``. Deterministic for (samples, rate, payload, key).
    """
    _check(samples, sample_rate)
    if samples.size < MIN_SECONDS * sample_rate:
        raise ValueError(f"audio of {samples.size / sample_rate:.2f} s is too short to carry the watermark "
                         f"(needs >= {MIN_SECONDS:.2f} s)")
    cfg = CONFIG
    lay = _layout(key, cfg)
    x = _to_internal(samples, sample_rate, cfg.rate)  # (M,) at 16 kHz
    spec = _stft(x, cfg)  # (F, bins)
    # Chip of every (frame, bin): the period's (band, block) cell that the frame and bin fall in.
    chips = np.zeros((cfg.bands, cfg.period), np.float32)
    chips[lay.data_cells] = lay.code.chips(payload)
    chips += lay.pilot
    block = (np.arange(spec.shape[0]) // cfg.frames_per_block) % cfg.period  # (F,) block within the period
    in_band = lay.bin_band >= 0
    cell_block = np.arange(spec.shape[0])[:, None] // cfg.frames_per_block  # (F, 1) absolute block index
    cell_band = lay.bin_band[in_band][None, :]  # (1, in-band bins)
    # Water-filling in the log domain: the detector sees log(1 + alpha c) whatever the cell's loudness,
    # but a loud cell's modulation costs more SNR budget, so quiet cells get relatively more
    # (alpha ~ cell_energy^-beta; cells below 1 % of the mean count as 1 %, so at most 10x the average).
    energy = np.zeros((cell_block[-1, 0] + 1, cfg.bands))  # (blocks, bands)
    np.add.at(energy, (cell_block, cell_band), np.abs(spec[:, in_band]) ** 2)
    weight = (energy.mean() / (energy + 1e-2 * energy.mean() + 1e-20)) ** cfg.quiet_boost
    gain = np.zeros(spec.shape, np.float32)  # (F, bins): the modulation, up to the global alpha
    gain[:, in_band] = chips[cell_band, block[:, None]] * weight[cell_block, cell_band]
    delta = _istft(spec * gain, x.size, cfg)  # (M,) the watermark signal at unit alpha, 16 kHz
    if sample_rate != cfg.rate:
        delta = _to_internal(delta, cfg.rate, sample_rate)[: samples.size]
        delta = np.pad(delta, (0, samples.size - delta.size))
    # alpha: as strong as the SNR target allows (signal power / mark power = 10^(snr/10)), capped.
    mark_power = float(np.mean(delta.astype(np.float64) ** 2))
    signal_power = float(np.mean(samples.astype(np.float64) ** 2))
    alpha = min(cfg.max_alpha, math.sqrt(signal_power / (mark_power + 1e-30)) * 10 ** (-cfg.snr_db / 20))
    return (samples + alpha * delta).astype(np.float32)


def _features(x: np.ndarray, cfg: AudioWatermarkConfig, bin_band: np.ndarray) -> np.ndarray:
    """(M,) 16 kHz samples -> (bands, F) log band energies without their slow trend and loudness."""
    power = np.abs(_stft(x, cfg)) ** 2  # (F, bins)
    in_band = bin_band >= 0
    energy = np.zeros((cfg.bands, power.shape[0]))
    np.add.at(energy, bin_band[in_band], power[:, in_band].T)  # (bands, F)
    floor = 1e-10 + 1e-6 * float(np.mean(energy))
    log_e = np.log(energy + floor)
    kernel = np.ones(cfg.trend_frames) / cfg.trend_frames
    trend = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, log_e)
    residual = log_e - trend
    residual = residual - residual.mean(axis=0, keepdims=True)
    # Local whitening: divide by the band's recent mean |residual|, so turbulent stretches (onsets,
    # pitch glides) count for less than steady ones.
    kernel = np.ones(cfg.local_norm_frames) / cfg.local_norm_frames
    scale = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, np.abs(residual))
    return residual / (scale + 1e-3)


def detect(samples: np.ndarray, sample_rate: int, key: bytes) -> Detection:
    """Blind detection in (N,) float32 mono samples; see the module docstring."""
    _check(samples, sample_rate)
    cfg = CONFIG
    lay = _layout(key, cfg)
    feats = _features(_to_internal(samples, sample_rate, cfg.rate), cfg, lay.bin_band)  # (bands, F)
    cycle = cfg.period * cfg.frames_per_block  # frames per period
    if feats.shape[1] < cycle:
        return Detection(False, None, 0, 0, 1.0, {"reason": "shorter than one period"})
    folded = np.zeros((cfg.bands, cycle))
    np.add.at(folded.T, np.arange(feats.shape[1]) % cycle, feats.T)  # (bands, cycle): all frames, folded
    folded /= np.sqrt(np.mean(folded**2, axis=1, keepdims=True)) + 1e-12  # equal weight per band
    # Pilot template at frame resolution; circular cross-correlation over every frame shift.
    template = np.repeat(lay.pilot, cfg.frames_per_block, axis=1)  # (bands, cycle)
    cross = np.fft.rfft(folded, axis=1) * np.conj(np.fft.rfft(template, axis=1))  # (bands, cycle/2+1)
    corr = np.fft.irfft(cross.sum(axis=0), n=cycle)  # (cycle,)
    shift = int(np.argmax(corr))
    aligned = np.roll(folded, -shift, axis=1).reshape(cfg.bands, cfg.period, cfg.frames_per_block).sum(axis=2)
    soft = aligned[lay.data_cells]  # (D,) soft payload chips
    payload, expected = lay.code.decode(soft)
    matches = int(np.count_nonzero(soft * expected > 0))
    fpr = match_fpr(soft.size, matches, n_candidates=1, readable=payload is not None)
    return Detection(
        detected=fpr < FPR_THRESHOLD,
        payload=payload,
        bit_errors=soft.size - matches,
        n_bits=soft.size,
        fpr=fpr,
        details={"shift_frames": shift, "periods": feats.shape[1] / cycle},
    )
