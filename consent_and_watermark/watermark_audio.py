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
target is >= 25 dB), capped at a 20 % modulation of an average cell (and 10x that for any one cell).

**Noise floor for near-silent cells.** Scaling cannot mark a cell that holds (almost) nothing: in a
synthetic melody most sub-bands between the partials contain only the window's spectral leakage of the
neighbouring partials, so their reading follows the *neighbours'* chips. A cell more than 30 dB below
its block's mean band energy therefore gets keyed random-phase noise instead, at that -30 dB level
times ``(1 + 0.5 c)^2`` (+3.5 / -6 dB): an energy mark the detector reads like any other (it may take
at most half the SNR budget; it takes 0-12 % on the benchmark's signals). Near-silent cells of speech
pauses get it too, relative to their own block, so digital silence stays silent.

**Informed embedding.** The embedder knows the host, so it can run the detector's own reading on its
result (Cox, Miller & McKellips 1999, "Watermarking as communications with side information"). The
host's own band-energy changes (note onsets, decays, syllables) push some cells' folded readings ``y``
towards the wrong sign. Three times, the embedder measures every cell's reading ``c y`` and its response
per unit of modulation ``r``, raises the modulation factor ``u`` of the cells below the target ``t``
(half the median reading) by ``u += 0.5 (t - c y) / r`` (at most 3x), and rescales everything to the
same 25.5 dB SNR: budget moves from cells that read well anyway to cells the host works against
(Miller, Cox & Bloom 2000, "Informed embedding"). Improved spread spectrum (Malvar & Florencio 2003)
goes further and also *subtracts* the host's part of the reading; lowering ``u`` where the host already
helps did worse here (the measured responses are noisy: neighbouring cells leak into each other).

**Detection (blind).** Log band energies per STFT frame, minus their slow trend (a moving average over
time) and minus the per-frame mean over bands (loudness changes), divided by their recent mean
magnitude (local whitening: turbulent stretches such as note onsets count for less), are folded
modulo the period. A circular cross-correlation with the pilot over all frame shifts, repeated for
four quarter-hop sample offsets, finds where the blocks start (trimmed audio and codec delays are just
shifts; a frame grid half a hop off the embedder's costs several percent of chips). The payload chips
are then averaged, Viterbi-decoded and re-encoded; the matching chip count gives the binomial
false-positive bound of ``detection.py``. The pilot search over shifts and offsets adds no candidates
(disjoint cells, independent key stream), and neither does informed embedding (the detector is blind
to it). When the best path fails its CRC but agrees with >= 68 % of the chips (the bound needs 69.6 %;
unmarked signals reached at most 66.8 % in 300 decodes), the 64 best paths are searched for one whose
CRC passes, as the image detector does (session 14: a 10-s mark through AAC 64 kbps read 23.5 % of its
chips wrong and still came out "payload unreadable" for 1 of 400 random payloads; with the list, none).
What remains is the bound: 1 of those 400 read 30.7 % wrong, past the 30.4 % it accepts.

**Long audio.** Everything above is done span by span on audio longer than ~92 s: the embedder marks
spans of 24 periods (61.44 s) that start on period boundaries, so the pattern runs on unbroken, and
cross-fades neighbouring spans' marks over the 2 periods where they overlap (each span is scaled to the
target SNR and informed by its own reading); the detector folds span by span with enough context on
either side that its reading equals the one-piece reading. Memory then follows the span, not the
length: marking and checking 4 minutes took 400 MB in one piece, 110 MB in spans (16 minutes: 64 MB
over the samples themselves), and marking got faster (0.9 vs 1.6 s for 4 minutes on one core).

**Limits.** Time stretching or pitch shifting desynchronises the grid; heavy noise or a low-rate codec
erases the ~ +-0.5 dB modulation (white noise at 30 dB SNR already costs synthetic speech a quarter of
its chips); sparse synthetic tones remain the hardest material (benchmarks/audio_watermark_robustness.py
measures all of these); informed embedding costs a few detector passes (~ 4x the plain embedding time);
whoever holds the key can remove or forge the mark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import resample_poly

from consent_and_watermark.detection import FPR_THRESHOLD, Detection, match_fpr
from consent_and_watermark.ecc import SpreadCode, keyed_permutation, keyed_signs, keyed_uniform


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
    max_cell_gain: float = 10.0  # one cell's modulation is at most this many times the average's
    quiet_boost: float = 0.5  # beta: a cell's modulation ~ (its energy / mean energy)^-beta
    floor_db: float = -30.0  # cells below this (vs. their block's mean band energy) get a noise floor ...
    floor_depth: float = 0.5  # ... at that level times (1 + depth * chip)^2
    informed_rounds: int = 3  # informed embedding: rounds of "read, then boost the weak cells"
    informed_step: float = 0.5  # lambda in u += lambda * (t - c y) / r
    informed_target: float = 0.5  # t = this x the median cell reading
    max_boost: float = 3.0  # u <= this
    trend_frames: int = 13  # moving-average length removed from the log band energies
    local_norm_frames: int = 31  # window of the detector's local whitening (0.5 s)
    sub_hop_offsets: int = 4  # the detector tries hop / this sample offsets of the frame grid
    list_size: int = 64  # list Viterbi paths tried when the best path fails its CRC (as the image's) ...
    list_gate: float = 0.68  # ... if it already agrees with this share of the 720 chips (the bound: 69.6 %)


CONFIG = AudioWatermarkConfig()
# One full period (2.56 s): the shortest audio that holds every chip. ~3 s of speech is detected
# reliably when untouched; surviving MP3/AAC/resampling was measured on 10 s (benchmarks/).
PERIOD_SAMPLES = CONFIG.period * CONFIG.frames_per_block * CONFIG.hop  # at the internal rate
MIN_SECONDS = PERIOD_SAMPLES / CONFIG.rate
MIN_RATE = 8000  # Hz: below it the 300-3400 Hz band does not fit
# Long audio is marked and read in spans of this many periods (61.44 s), so that memory stays flat however
# long the soundtrack (~1.7 MB per second of audio for the embedder's arrays, ~0.8 MB for the detector's).
SPAN_PERIODS = 24
OVERLAP_PERIODS = 1  # marked spans overlap by this much on each side and are cross-faded there
MARGIN_FRAMES = 64  # the detector reads each span with this many STFT frames of context on either side


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


def _band_energy(power: np.ndarray, bin_band: np.ndarray, cfg: AudioWatermarkConfig) -> np.ndarray:
    """(F, bins) STFT power -> (F, bands): the energy of each sub-band in each frame."""
    return power @ (bin_band[:, None] == np.arange(cfg.bands)).astype(np.float64)


def _blocks(rows: np.ndarray, size: int, fold: bool = False) -> np.ndarray:
    """(F, C) -> (ceil(F / size), C) sums of consecutive groups of ``size`` rows (zero-padded at the end);
    with ``fold``, (size, C) instead: row j is the sum of rows j, j + size, j + 2 size, ..."""
    stacked = np.pad(rows, ((0, -rows.shape[0] % size), (0, 0))).reshape(-1, size, rows.shape[1])
    return stacked.sum(axis=0) if fold else stacked.sum(axis=1)


def _from_internal(x: np.ndarray, rate: int, sample_rate: int, length: int) -> np.ndarray:
    """(M,) at the internal rate -> (length,) at sample_rate (cut or zero-padded)."""
    y = _to_internal(x, rate, sample_rate)[:length]
    return np.pad(y, (0, length - y.size))


def _check(samples: np.ndarray, sample_rate: int) -> None:
    if samples.ndim != 1:
        raise ValueError(f"expected mono (N,) samples, got shape {samples.shape}")
    if sample_rate < MIN_RATE:
        raise ValueError(f"sample rate {sample_rate} Hz is below {MIN_RATE} Hz: the 300-3400 Hz band "
                         "does not fit")


def _power(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2))


def embed(samples: np.ndarray, sample_rate: int, payload: int, key: bytes) -> np.ndarray:
    """Mark (N,) float32 mono samples with a 64-bit payload; returns (N,) float32 at the same rate.

    Raises ValueError below ``MIN_SECONDS``. Deterministic for (samples, rate, payload, key).

    Audio longer than ``SPAN_PERIODS`` periods (plus the overlaps) is marked span by span: each span
    starts on a period boundary, so the pattern runs on unbroken; neighbouring spans overlap by
    ``OVERLAP_PERIODS`` periods on each side of their boundary, where the two marks (the same chips,
    scaled to each span's own loudness) are cross-faded. Each span is scaled to the target SNR, so the
    whole is too. Memory then depends on the span, not on the length of the audio.
    """
    _check(samples, sample_rate)
    if samples.size < MIN_SECONDS * sample_rate:
        raise ValueError(f"audio of {samples.size / sample_rate:.2f} s is too short to carry the watermark "
                         f"(needs >= {MIN_SECONDS:.2f} s)")
    period, off_grid = divmod(PERIOD_SAMPLES * sample_rate, CONFIG.rate)  # samples per period at this rate
    step, overlap = SPAN_PERIODS * period, OVERLAP_PERIODS * period
    if off_grid or samples.size <= step + step // 2:  # one span (or a rate whose periods are not whole)
        return _embed_span(samples, sample_rate, payload, key)
    out = samples.astype(np.float32)  # a copy: the marks of the spans are added to it
    fade = 2 * overlap
    rise = ((np.arange(fade) + 0.5) / fade).astype(np.float32)  # the later span's share of the overlap
    for start in range(0, samples.size, step):
        lo = max(0, start - overlap)
        last = start + step + step // 2 >= samples.size  # a short remainder joins the last span
        hi = samples.size if last else start + step + overlap
        span = samples[lo:hi]
        delta = _embed_span(span, sample_rate, payload, key) - span  # (hi - lo,) this span's mark
        if lo > 0:
            delta[:fade] *= rise
        if not last:
            delta[-fade:] *= 1.0 - rise
        out[lo:hi] += delta
        if last:
            break
    return out


def _embed_span(samples: np.ndarray, sample_rate: int, payload: int, key: bytes) -> np.ndarray:
    """``embed`` on audio that starts on a period boundary, in one piece (see the module docstring)."""
    cfg = CONFIG
    lay = _layout(key, cfg)
    x = _to_internal(samples, sample_rate, cfg.rate)  # (M,) at 16 kHz
    spec = _stft(x, cfg)  # (F, bins)
    n_frames = spec.shape[0]
    chips = np.zeros((cfg.bands, cfg.period), np.float32)  # (bands, period) +-1: pilot and payload chips
    chips[lay.data_cells] = lay.code.chips(payload)
    chips += lay.pilot
    # Every in-band (frame, bin) belongs to one cell: absolute block x sub-band, and a block in the period.
    in_band = lay.bin_band >= 0
    cell_block = np.arange(n_frames)[:, None] // cfg.frames_per_block  # (F, 1) absolute block index
    cell_band = lay.bin_band[in_band][None, :]  # (1, in-band bins)
    period_block = cell_block % cfg.period  # (F, 1) block within the period
    power = np.abs(spec) ** 2  # (F, bins)
    energy = _blocks(_band_energy(power, lay.bin_band, cfg), cfg.frames_per_block)  # (blocks, bands) per cell
    del power  # one (F, bins) array fewer at the peak: long soundtracks need less memory
    # Near-silent cells (below floor_db of their block's mean band energy) get the keyed noise floor ...
    floor = 10 ** (cfg.floor_db / 10) * energy.mean(axis=1, keepdims=True)  # (blocks, 1) cell energy
    quiet = energy < floor  # (blocks, bands)
    bins_per_band = np.bincount(cell_band[0], minlength=cfg.bands)  # (bands,)
    floor_amp = np.where(quiet, np.sqrt(floor / (cfg.frames_per_block * bins_per_band)), 0.0)  # per bin
    phase = keyed_uniform(key, "audio/floor", n_frames * cell_band.size).reshape(n_frames, -1)  # (F, in-band)
    floor_phasor = np.exp(2j * np.pi * phase).astype(np.complex64)  # keyed random phases: the floor is noise
    del phase
    floor_spec = np.zeros(spec.shape, np.complex64)  # (F, bins), filled per call of mark() below
    # ... the others the multiplicative mark. Water-filling in the log domain: the detector sees
    # log(1 + alpha c) whatever the cell's loudness, but a loud cell's modulation costs more SNR budget, so
    # quiet cells get relatively more (alpha ~ cell_energy^-beta; cells below 1 % of the mean count as 1 %).
    weight = (energy.mean() / (energy + 1e-2 * energy.mean() + 1e-20)) ** cfg.quiet_boost  # (blocks, bands)
    weight[quiet] = 0.0
    gain = np.zeros(spec.shape, np.float32)  # (F, bins): the modulation, up to the global alpha

    def mark(boost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bands, period) boost u -> (M,) multiplicative mark at unit alpha, (M,) noise floor at 16 kHz."""
        c = (chips * boost)[cell_band, period_block]  # (F, in-band bins) boosted chip of every bin
        gain[:, in_band] = np.clip(c * weight[cell_block, cell_band], -cfg.max_cell_gain, cfg.max_cell_gain)
        level = 1 + cfg.floor_depth * np.clip(c, -1.4, 1.4)  # floor level stays >= 0.3 of the plain floor
        floor_spec[:, in_band] = floor_amp[cell_block, cell_band] * level * floor_phasor
        return _istft(spec * gain, x.size, cfg), _istft(floor_spec, x.size, cfg)

    def scale(delta: np.ndarray, noise: np.ndarray, budget: float) -> tuple[float, float]:
        """Global factors (alpha for the mark, one for the floor) that spend exactly the SNR budget."""
        noise_gain = min(1.0, math.sqrt(0.5 * budget / (_power(noise) + 1e-30)))  # floor: at most half
        rest = max(budget - noise_gain**2 * _power(noise), 0.0)
        return min(cfg.max_alpha, math.sqrt(rest / (_power(delta) + 1e-30))), noise_gain

    budget_16k = _power(x) * 10 ** (-cfg.snr_db / 10)
    boost = np.ones((cfg.bands, cfg.period))  # u
    host = _cell_readings(x, cfg, lay) if cfg.informed_rounds else None  # (bands, period)
    for _ in range(cfg.informed_rounds):
        delta, noise = mark(boost)
        alpha, noise_gain = scale(delta, noise, budget_16k)
        marked = _cell_readings(x + alpha * delta + noise_gain * noise, cfg, lay)  # (bands, period) y
        reading = chips * marked  # c y: > 0 where the chip reads right
        response = chips * (marked - host) / boost  # r: the mark's part of it per unit boost
        least = 0.2 * float(np.median(response))  # a finite step where r <= 0 (leakage from neighbours)
        if not least > 0:  # silence, or a mark that does not read at all: nothing to inform
            break
        response = np.maximum(response, least)
        target = cfg.informed_target * np.median(reading)  # t
        step = cfg.informed_step * np.maximum(target - reading, 0) / response
        boost = np.minimum(boost + step, cfg.max_boost)
    delta, noise = mark(boost)
    if sample_rate != cfg.rate:
        delta, noise = (_from_internal(d, cfg.rate, sample_rate, samples.size) for d in (delta, noise))
    alpha, noise_gain = scale(delta, noise, _power(samples) * 10 ** (-cfg.snr_db / 10))
    return (samples + alpha * delta + noise_gain * noise).astype(np.float32)


def _features(
    x: np.ndarray, cfg: AudioWatermarkConfig, bin_band: np.ndarray, mean_energy: float | None = None
) -> np.ndarray:
    """(M,) 16 kHz samples -> (bands, F) log band energies without their slow trend and loudness.

    ``mean_energy``: the mean band energy the floor inside the logarithm is taken from (default: that of
    ``x``; a span of a longer file passes the whole file's)."""
    energy = _band_energy(np.abs(_stft(x, cfg)) ** 2, bin_band, cfg).T  # (bands, F)
    floor = 1e-10 + 1e-6 * (float(np.mean(energy)) if mean_energy is None else mean_energy)
    log_e = np.log(energy + floor)
    trend = uniform_filter1d(log_e, cfg.trend_frames, axis=1, mode="constant")  # moving average, zero-padded
    residual = log_e - trend
    residual = residual - residual.mean(axis=0, keepdims=True)
    # Local whitening: divide by the band's recent mean |residual|, so turbulent stretches (onsets,
    # pitch glides) count for less than steady ones.
    scale = uniform_filter1d(np.abs(residual), cfg.local_norm_frames, axis=1, mode="constant")
    return residual / (scale + 1e-3)


def _fold(feats: np.ndarray, cfg: AudioWatermarkConfig) -> np.ndarray:
    """(bands, F) -> (bands, period * frames_per_block): each frame added to its place in the period."""
    return _blocks(feats.T, cfg.period * cfg.frames_per_block, fold=True).T


def _folded_features(x: np.ndarray, cfg: AudioWatermarkConfig, bin_band: np.ndarray) -> np.ndarray:
    """(M,) 16 kHz samples -> (bands, period * frames_per_block): ``_fold(_features(x))``, computed span by
    span so that memory stays flat on long audio.

    Each span of ``SPAN_PERIODS`` periods of STFT frames is read with ``MARGIN_FRAMES`` frames of context
    on either side (more than the STFT window, the trend and the whitening reach), and only its own
    frames are folded; the floor inside the logarithm comes from the whole file's mean band energy (a
    first pass over the spans). So the result is the whole-file reading, to rounding. Audio of up to 1.5
    spans is read in one piece.
    """
    cycle = cfg.period * cfg.frames_per_block  # frames per period
    n_frames = x.size // cfg.hop + 2  # as many as _stft gives
    step = SPAN_PERIODS * cycle  # frames per span: a whole number of periods keeps the fold aligned
    spans = []  # (first, last) frames of each span
    for first in range(0, n_frames, step):
        spans.append((first, n_frames if first + step + step // 2 >= n_frames else first + step))
        if spans[-1][1] == n_frames:
            break
    if len(spans) == 1:
        return _fold(_features(x, cfg, bin_band), cfg)

    def frames(first: int, last: int) -> np.ndarray:  # STFT frames first .. last - 1 exactly as _stft(x)
        start = max(first - 1, 0)  # frame j spans samples (j - 1) hop .. (j + 1) hop
        return _stft(x[start * cfg.hop : last * cfg.hop], cfg)[first - start : last - start]

    energy = sum(float(np.sum(_band_energy(np.abs(frames(a, b)) ** 2, bin_band, cfg))) for a, b in spans)
    mean_energy = energy / (n_frames * cfg.bands)  # the mean of the whole file's band energies
    folded = np.zeros((cfg.bands, cycle))
    for first, last in spans:
        lo, hi = max(0, first - MARGIN_FRAMES), min(n_frames, last + MARGIN_FRAMES)
        # read with context: the frames near the ends of this piece, distorted by its edges, are dropped
        feats = _features(x[lo * cfg.hop : hi * cfg.hop], cfg, bin_band, mean_energy)  # (bands, lo .. hi+1)
        folded += _fold(feats[:, first - lo : last - lo], cfg)
    return folded


def _cell_readings(x: np.ndarray, cfg: AudioWatermarkConfig, lay: _Layout) -> np.ndarray:
    """(M,) 16 kHz samples -> (bands, period): what the detector reads per cell on the embedder's grid."""
    folded = _folded_features(x, cfg, lay.bin_band)  # (bands, cycle)
    return folded.reshape(cfg.bands, cfg.period, cfg.frames_per_block).sum(axis=2)


def detect(samples: np.ndarray, sample_rate: int, key: bytes) -> Detection:
    """Blind detection in (N,) float32 mono samples; see the module docstring."""
    _check(samples, sample_rate)
    cfg = CONFIG
    lay = _layout(key, cfg)
    x = _to_internal(samples, sample_rate, cfg.rate)  # (M,) at 16 kHz
    cycle = cfg.period * cfg.frames_per_block  # frames per period
    periods = (x.size // cfg.hop + 2) / cycle  # STFT frames (as _stft gives them) per period
    if periods < 1:
        return Detection(False, None, 0, 0, 1.0, {"reason": "shorter than one period"})
    # Pilot template at frame resolution; circular cross-correlation over every frame shift, for each
    # sub-hop offset of the frame grid. Only pilot cells choose (offset, shift): no extra candidates.
    template_f = np.conj(np.fft.rfft(np.repeat(lay.pilot, cfg.frames_per_block, axis=1), axis=1))
    best = (0.0, 0, 0, np.zeros(0))  # (correlation peak, offset, shift, folded features)
    for offset in range(0, cfg.hop, cfg.hop // cfg.sub_hop_offsets):
        folded = _folded_features(x[offset:], cfg, lay.bin_band)  # (bands, cycle)
        folded /= np.sqrt(np.mean(folded**2, axis=1, keepdims=True)) + 1e-12  # equal weight per band
        corr = np.fft.irfft((np.fft.rfft(folded, axis=1) * template_f).sum(axis=0), n=cycle)  # (cycle,)
        shift = int(np.argmax(corr))
        if offset == 0 or corr[shift] > best[0]:
            best = (float(corr[shift]), offset, shift, folded)
    _, offset, shift, folded = best
    aligned = np.roll(folded, -shift, axis=1).reshape(cfg.bands, cfg.period, cfg.frames_per_block).sum(axis=2)
    soft = aligned[lay.data_cells]  # (D,) soft payload chips
    payload, expected = lay.code.decode(soft, cfg.list_size, cfg.list_gate)
    matches = int(np.count_nonzero(soft * expected > 0))
    fpr = match_fpr(soft.size, matches, n_candidates=1, readable=payload is not None)
    return Detection(
        detected=fpr < FPR_THRESHOLD,
        payload=payload,
        bit_errors=soft.size - matches,
        n_bits=soft.size,
        fpr=fpr,
        details={"shift_frames": shift, "offset_samples": offset, "periods": periods},
    )
