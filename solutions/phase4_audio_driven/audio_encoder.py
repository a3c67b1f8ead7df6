"""The Wav2Lip audio front end, from scratch in numpy: waveform -> normalised log-mel spectrogram.

Wav2Lip (Prajwal et al. 2020, "A Lip Sync Expert Is All You Need for Speech to Lip Generation in the
Wild") never looks at raw samples. Every network sees 16 columns of an 80-band log-mel spectrogram
(0.2 s of speech = 5 video frames at 25 fps). The released checkpoints were trained on this exact
front end, so it has to match the published one number for number:

    wav (N,) 16 kHz --pre-emphasis--> y --STFT (|D|, hann 800, hop 200)--> (401, T)
        --Slaney mel filterbank--> (80, T) --20 log10 - 20 dB--> --symmetric clip to [-4, 4]--> mel (80, T)

with T = 1 + N // 200 columns (80 per second). The second half of the file maps mel columns to video
frames: inference and training use windows one video frame apart, a trap for anyone who mixes them.

Reference: `../shared/reference/wav2lip_audio_spec.md` and `wav2lip_audio_reference.npz` (every
intermediate of the published code on a 3 s test signal; tolerance 1e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioConfig:
    """The published `hparams.py` values the audio code uses (rescale is defined there but never applied)."""

    sample_rate: int = 16000
    n_fft: int = 800  # 50 ms window
    hop_size: int = 200  # 12.5 ms hop -> 80 mel columns per second
    win_size: int = 800
    num_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0
    mel_step_size: int = 16  # columns per window = 0.2 s

    @property
    def mel_fps(self) -> float:
        """Mel columns per second (80 for the published settings)."""
        return self.sample_rate / self.hop_size


DEFAULT = AudioConfig()


# --------------------------------------------------------------------------------- waveform -> mel --
def preemphasis(wav: np.ndarray, coef: float = 0.97) -> np.ndarray:
    """First-order high-pass filter y[n] = x[n] - coef * x[n-1], with y[0] = x[0]; returns float64 (N,)."""
    # TODO p4.audio.preemphasis: Boost high frequencies with the first-order pre-emphasis filter.
    # Hint: y[0] = x[0], y[n] = x[n] - 0.97 x[n-1] (scipy.signal.lfilter([1, -0.97], [1], x) in the
    # Hint: published code). Work in float64: (N,) float32 in -> (N,) float64 out.
    # Hint: pitfall: np.diff drops the first sample; the output must keep length N.
    # Hint: tested by tests/phase4_audio_driven/test_audio_encoder.py::test_preemphasis.
    # BEGIN SOLUTION p4.audio.preemphasis
    x = np.asarray(wav, dtype=np.float64)
    y = x.copy()
    y[1:] -= coef * x[:-1]
    return y
    # END SOLUTION


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window w[n] = 0.5 - 0.5 cos(2 pi n / length), n = 0..length-1 (float64)."""
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def stft_magnitude(y: np.ndarray, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """|STFT| of a signal (N,) -> (n_fft // 2 + 1, 1 + N // hop) float64, centred frames, reflect padding."""
    # TODO p4.audio.stft: Short-time Fourier transform magnitude with the published (librosa 0.7) padding.
    # Hint: pad n_fft // 2 samples on each side with np.pad(mode="reflect") (edge sample not repeated);
    # Hint: frame t = padded[hop*t : hop*t + n_fft] * hann_window(n_fft); D[:, t] = rfft(frame), use |D|.
    # Hint: shapes: (N,) -> (401, 1 + N // 200). Pitfall: librosa >= 0.10 pads with zeros instead,
    # Hint: which changes columns 0, 1, T-2, T-1 (by up to 1.43 after normalisation).
    # Hint: tested by test_audio_encoder.py::test_stft_magnitude_matches_reference.
    # BEGIN SOLUTION p4.audio.stft
    y = np.asarray(y, dtype=np.float64)
    half = cfg.n_fft // 2
    padded = np.pad(y, half, mode="reflect")
    n_frames = 1 + len(y) // cfg.hop_size
    starts = cfg.hop_size * np.arange(n_frames)
    frames = padded[starts[:, None] + np.arange(cfg.n_fft)[None, :]]  # (T, n_fft)
    spectrum = np.fft.rfft(frames * hann_window(cfg.win_size)[None, :], axis=1)  # (T, n_fft // 2 + 1)
    return np.abs(spectrum).T
    # END SOLUTION


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (f / (200/3)), logarithmic above (step ln(6.4) / 27)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel` (Slaney scale)."""
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    linear = f_sp * mel
    log = min_log_hz * np.exp(logstep * (mel - min_log_mel))
    return np.where(mel >= min_log_mel, log, linear)


def mel_filterbank(cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Slaney-normalised triangular mel filters (num_mels, n_fft // 2 + 1) float32 (librosa's defaults)."""
    # TODO p4.audio.mel_filterbank: Build the Slaney mel filterbank.
    # Hint: num_mels + 2 points equally spaced in hz_to_mel between fmin and fmax, mapped back with
    # Hint: mel_to_hz, give edges f[m]; bin k has frequency k * sample_rate / n_fft. Filter m is the
    # Hint: triangle rising from f[m] to f[m+1] and falling to f[m+2], clipped at 0, scaled by
    # Hint: 2 / (f[m+2] - f[m]) so each filter has unit area (norm="slaney").
    # Hint: shape (80, 401), float32. Pitfall: HTK's mel scale (2595 log10(1 + f/700)) is a different one.
    # Hint: tested by test_audio_encoder.py::test_mel_filterbank_matches_reference_and_librosa.
    # BEGIN SOLUTION p4.audio.mel_filterbank
    n_bins = cfg.n_fft // 2 + 1
    bin_hz = np.arange(n_bins) * cfg.sample_rate / cfg.n_fft  # (n_bins,)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.num_mels + 2))
    widths = np.diff(edges)  # (num_mels + 1,)
    ramps = edges[:, None] - bin_hz[None, :]  # (num_mels + 2, n_bins)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))  # (num_mels, n_bins)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)
    # END SOLUTION


def amp_to_normalized_db(mel_amp: np.ndarray, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Mel amplitudes (80, T) -> dB relative to ref_level_db -> symmetric clipped range [-4, 4] (float64)."""
    # TODO p4.audio.db_normalize: Convert amplitude to dB and apply the published symmetric normalisation.
    # Hint: S = 20 log10(max(1e-5, M)) - ref_level_db (1e-5 = 10^(min_level_db / 20)), then
    # Hint: mel = clip(2 A (S - min_level_db) / (-min_level_db) - A, -A, A) with A = max_abs_value = 4.
    # Hint: So M <= 1e-4 maps to -4 (silence) and M >= 10 to +4. (80, T) -> (80, T) float64.
    # Hint: pitfall: it is 20 log10 of the magnitude (not 10 log10 of power): |D| was not squared.
    # Hint: tested by test_audio_encoder.py::test_melspectrogram_matches_reference.
    # BEGIN SOLUTION p4.audio.db_normalize
    min_level = 10.0 ** (cfg.min_level_db / 20.0)
    db = 20.0 * np.log10(np.maximum(min_level, np.asarray(mel_amp, dtype=np.float64))) - cfg.ref_level_db
    a = cfg.max_abs_value
    return np.clip(2.0 * a * (db - cfg.min_level_db) / (-cfg.min_level_db) - a, -a, a)
    # END SOLUTION


def melspectrogram(wav: np.ndarray, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """The published `audio.melspectrogram`: (N,) samples at cfg.sample_rate -> (80, 1 + N // 200) float32."""
    mag = stft_magnitude(preemphasis(wav, cfg.preemphasis), cfg)  # (401, T)
    mel_amp = mel_filterbank(cfg).astype(np.float64) @ mag  # (80, T)
    return amp_to_normalized_db(mel_amp, cfg).astype(np.float32)


def mfcc(log_mel: np.ndarray, n_mfcc: int = 13) -> np.ndarray:
    """MFCCs: orthonormal DCT-II over the mel axis, (n_mels, T) -> (n_mfcc, T)."""
    # TODO p4.audio.mfcc: Decorrelate the log-mel bands with an orthonormal DCT-II (the MFCCs).
    # Hint: c[k, t] = s_k sum_m log_mel[m, t] cos(pi k (2m + 1) / (2M)), s_0 = sqrt(1/M), s_k = sqrt(2/M);
    # Hint: keep k < n_mfcc. Build the (n_mfcc, M) matrix and multiply: (M, T) -> (n_mfcc, T).
    # Hint: pitfall: without the orthonormal scales, c_0 is off by sqrt(M) and the rest by sqrt(2M).
    # Hint: tested by test_audio_encoder.py::test_mfcc_matches_librosa (librosa.feature.mfcc(S=...)).
    # BEGIN SOLUTION p4.audio.mfcc
    log_mel = np.asarray(log_mel, dtype=np.float64)
    m = log_mel.shape[0]
    k = np.arange(n_mfcc)[:, None]
    basis = np.cos(np.pi * k * (2 * np.arange(m)[None, :] + 1) / (2 * m))  # (n_mfcc, M)
    scale = np.full((n_mfcc, 1), np.sqrt(2.0 / m))
    scale[0] = np.sqrt(1.0 / m)
    return (scale * basis) @ log_mel
    # END SOLUTION


# ------------------------------------------------------------------------ mel columns <-> video frames --
def inference_chunk_starts(num_mel_frames: int, fps: float, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Start columns of the windows `inference.py` gives output frames 0, 1, ... (int64, one per frame).

    Frame i's window starts at int(i * mel_fps / fps) and looks forward 16 columns (0.2 s). The first
    window that would run past the end is replaced by the tail window [T - 16, T) and ends the list.
    """
    # TODO p4.audio.frame_index: Map video frames to mel windows (inference and training rules).
    # Hint: inference: start_i = int(i * (80 / fps)) for i = 0, 1, ... while start_i + 16 <= T; then one
    # Hint: last tail window starting at T - 16. The 3 s reference (T = 241, 25 fps) gives 72 windows:
    # Hint: 0, 3, 6, 9, 12, 16, ..., 224, 225. Compute 80 / fps once, then multiply, as the published code.
    # Hint: pitfall: at 30 fps the stride is 2.67 columns, not 3.2; never hard-code 25 fps here.
    # Hint: tested by test_audio_encoder.py::test_inference_chunks_*.
    # BEGIN SOLUTION p4.audio.frame_index
    if num_mel_frames < cfg.mel_step_size:
        return np.zeros(0, dtype=np.int64)
    step = cfg.mel_fps / fps
    starts = []
    i = 0
    while True:
        start = int(i * step)
        if start + cfg.mel_step_size > num_mel_frames:
            starts.append(num_mel_frames - cfg.mel_step_size)
            break
        starts.append(start)
        i += 1
    return np.asarray(starts, dtype=np.int64)
    # END SOLUTION


def mel_chunks(mel: np.ndarray, fps: float, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Inference windows (n_frames, 80, 16) of a spectrogram (80, T): window i drives output frame i."""
    starts = inference_chunk_starts(mel.shape[1], fps, cfg)
    if len(starts) == 0:
        return np.zeros((0, mel.shape[0], cfg.mel_step_size), dtype=mel.dtype)
    return np.stack([mel[:, s : s + cfg.mel_step_size] for s in starts])


def training_mel_starts(
    num_mel_frames: int, num_video_frames: int, fps: float = 25.0, window: int = 5, cfg: AudioConfig = DEFAULT
) -> dict[str, np.ndarray]:
    """Index rules of the published training loaders, per video frame (-1 where a window is unusable).

    Returns `syncnet` (n,) the SyncNet window start for a 5-frame window beginning at frame n;
    `indiv` (n,) the generator's per-frame window start for frame j (one frame earlier than inference);
    `usable` (n,) bool, whether a training window starting at frame n has every window it needs.
    """
    # TODO p4.audio.train_index: Apply the training loaders' index rules (one frame apart).
    # Hint: SyncNet window of frame n: int(80 * (n / 25)); generator window of frame j:
    # Hint: int(80 * ((j - 1) / 25)), one video frame (3.2 columns, 40 ms) EARLIER than inference gives
    # Hint: frame j. A window is valid only when start >= 0 (j >= 1) and start + 16 <= T. A training
    # Hint: window n needs its SyncNet window and the generator windows of frames n .. n + 4.
    # Hint: (n,) int64 arrays with -1 where invalid; the reference (T = 241, 77 frames) has n = 1..67 usable.
    # Hint: tested by test_audio_encoder.py::test_training_starts_match_reference.
    # BEGIN SOLUTION p4.audio.train_index
    frames = np.arange(num_video_frames)

    def valid(start: np.ndarray) -> np.ndarray:
        return np.where((start >= 0) & (start + cfg.mel_step_size <= num_mel_frames), start, -1)

    syncnet = valid(np.array([int(cfg.mel_fps * (n / fps)) for n in frames], dtype=np.int64))
    indiv = valid(
        np.array([int(cfg.mel_fps * ((j - 1) / fps)) if j >= 1 else -1 for j in frames], dtype=np.int64)
    )
    usable = np.zeros(num_video_frames, dtype=bool)
    for n in range(num_video_frames - window + 1):
        usable[n] = syncnet[n] >= 0 and bool(np.all(indiv[n : n + window] >= 0))
    return {"syncnet": syncnet, "indiv": indiv, "usable": usable}
    # END SOLUTION
