"""Speech-like audio from pure numpy: a formant synthesiser with a known phoneme and viseme timeline.

Source-filter model of speech (Fant 1960): a glottal pulse train at the speaking pitch (the source)
is shaped by the resonances of the vocal tract, the *formants* F1-F3 (the filter). Each vowel is a
set of formant frequencies (Peterson & Barney 1952, adult averages); consonants are a closure
(silence), a noise burst, a nasal murmur or band-limited noise (fricatives). The resonators are
Klatt's (1980) two-pole sections with unit gain at 0 Hz:

    y[n] = A x[n] + B y[n-1] + C y[n-2],  C = -exp(-2 pi BW / fs),  B = 2 exp(-pi BW / fs) cos(2 pi F / fs),
    A = 1 - B - C.

Every phoneme maps to a *viseme*, the mouth shape that goes with it; `mouth_track` turns the
timeline (and the loudness of the audio) into mouth opening, width and rounding per video frame, so
a lip-sync model has a real, learnable audio -> mouth mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

SAMPLE_RATE = 16_000

# Mouth shapes. Each viseme has a target (opening, width, rounding) in face units / -1..1 / 0..1.
VISEMES = ("rest", "closed", "open", "mid", "spread", "round", "lip_teeth", "teeth")
VISEME_MOUTH = np.array(
    [
        [0.02, 0.0, 0.0],  # rest: lips together, relaxed
        [0.0, -0.1, 0.0],  # closed: m, b, p press the lips together
        [0.30, 0.1, 0.0],  # open: aa, ae
        [0.20, 0.2, 0.0],  # mid: eh
        [0.10, 0.6, 0.0],  # spread: iy
        [0.14, -0.3, 0.9],  # round: uw, ow
        [0.04, 0.1, 0.0],  # lip_teeth: f, v (lower lip under the upper teeth)
        [0.05, 0.4, 0.0],  # teeth: s
    ]
)


@dataclass(frozen=True)
class Phoneme:
    """One sound: its kind, formants (Hz) for voiced sounds, noise band (Hz) and viseme."""

    kind: str  # "silence", "vowel", "nasal", "stop", "fricative"
    viseme: str
    formants: tuple[float, float, float] = (500.0, 1500.0, 2500.0)
    voiced: bool = True
    noise_band: tuple[float, float] | None = None
    loudness: float = 1.0


PHONEMES: dict[str, Phoneme] = {
    "sil": Phoneme("silence", "rest", voiced=False, loudness=0.0),
    "AA": Phoneme("vowel", "open", (730, 1090, 2440)),
    "AE": Phoneme("vowel", "open", (660, 1720, 2410)),
    "EH": Phoneme("vowel", "mid", (530, 1840, 2480)),
    "IY": Phoneme("vowel", "spread", (270, 2290, 3010), loudness=0.8),
    "UW": Phoneme("vowel", "round", (300, 870, 2240), loudness=0.8),
    "OW": Phoneme("vowel", "round", (570, 840, 2410)),
    "M": Phoneme("nasal", "closed", (250, 1100, 2300), loudness=0.3),
    "B": Phoneme("stop", "closed", (250, 900, 2300), noise_band=(400.0, 4000.0), loudness=0.15),
    "P": Phoneme("stop", "closed", voiced=False, noise_band=(400.0, 5000.0), loudness=0.0),
    "F": Phoneme("fricative", "lip_teeth", voiced=False, noise_band=(1200.0, 7000.0), loudness=0.0),
    "V": Phoneme("fricative", "lip_teeth", (250, 1100, 2300), noise_band=(1200.0, 7000.0), loudness=0.2),
    "S": Phoneme("fricative", "teeth", voiced=False, noise_band=(4000.0, 7600.0), loudness=0.0),
}
VOWELS = [p for p, ph in PHONEMES.items() if ph.kind == "vowel"]
ONSETS = ["M", "B", "P", "F", "V", "S"]
CODAS = ["M", "S", "P"]


@dataclass(frozen=True)
class Segment:
    """One phoneme on the timeline, in seconds."""

    phoneme: str
    start: float
    end: float


@dataclass
class Speech:
    """Synthetic speech: samples `(N,)` float32 in [-1, 1] at `sample_rate`, plus its timeline."""

    samples: np.ndarray
    sample_rate: int
    segments: list[Segment]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def phoneme_at(self, times: np.ndarray) -> list[str]:
        """Phoneme name at each time (seconds)."""
        starts = np.array([s.start for s in self.segments])
        idx = np.clip(np.searchsorted(starts, np.asarray(times), side="right") - 1, 0, len(self.segments) - 1)
        return [self.segments[i].phoneme for i in idx]

    def viseme_at(self, times: np.ndarray) -> np.ndarray:
        """Viseme id (index into VISEMES) at each time `(T,)` -> `(T,)` int64."""
        return np.array([VISEMES.index(PHONEMES[p].viseme) for p in self.phoneme_at(times)], dtype=np.int64)


def make_timeline(duration: float, rng: np.random.Generator) -> list[Segment]:
    """Random words of CV / CVC syllables separated by pauses, covering exactly `duration` seconds."""
    segments: list[Segment] = []
    t = float(rng.uniform(0.15, 0.35))
    segments.append(Segment("sil", 0.0, t))

    def add(phoneme: str, length: float) -> None:
        nonlocal t
        segments.append(Segment(phoneme, t, t + length))
        t += length

    while t < duration - 0.5:
        for _ in range(int(rng.integers(1, 4))):  # syllables in this word
            if rng.random() < 0.75:
                c = str(rng.choice(ONSETS))
                add(
                    c,
                    float(
                        rng.uniform(0.06, 0.11)
                        if PHONEMES[c].kind != "fricative"
                        else rng.uniform(0.08, 0.14)
                    ),
                )
            add(str(rng.choice(VOWELS)), float(rng.uniform(0.10, 0.22)))
            if rng.random() < 0.3:
                add(str(rng.choice(CODAS)), float(rng.uniform(0.06, 0.10)))
        pause = rng.uniform(0.25, 0.5) if rng.random() < 0.25 else rng.uniform(0.04, 0.12)
        add("sil", float(pause))
    if t < duration:
        add("sil", duration - t)
    # The last word may run past the end: cut the timeline at `duration`.
    return [Segment(s.phoneme, s.start, min(s.end, duration)) for s in segments if s.start < duration]


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along the last axis (edges use the nearest value)."""
    if width <= 1:
        return x
    pad = [(0, 0)] * (x.ndim - 1) + [(width // 2, width - 1 - width // 2)]
    padded = np.pad(x, pad, mode="edge")
    c = np.cumsum(padded, axis=-1)
    c = np.concatenate([np.zeros(c.shape[:-1] + (1,)), c], axis=-1)
    return (c[..., width:] - c[..., :-width]) / width


def _glottal_source(f0: np.ndarray, sample_rate: int) -> np.ndarray:
    """Rosenberg (1971) glottal pulses at pitch `f0` `(N,)` Hz, differentiated (lip radiation) -> `(N,)`."""
    phase = np.cumsum(f0 / sample_rate) % 1.0
    open_, close = 0.4, 0.16
    flow = np.where(
        phase < open_,
        0.5 * (1.0 - np.cos(np.pi * phase / open_)),
        np.where(phase < open_ + close, np.cos(0.5 * np.pi * (phase - open_) / close), 0.0),
    )
    return np.diff(flow, prepend=0.0)


def _formant_filter(x: np.ndarray, formants: np.ndarray, sample_rate: int, block: int = 80) -> np.ndarray:
    """Cascade of three Klatt resonators whose frequencies `(3, N)` change every `block` samples."""
    bandwidths = np.array([80.0, 110.0, 160.0])
    y = x.copy()
    for k in range(3):
        out = np.empty_like(y)
        zi = np.zeros(2)
        for s in range(0, len(y), block):
            f = formants[k, s]
            c = -np.exp(-2 * np.pi * bandwidths[k] / sample_rate)
            b = 2 * np.exp(-np.pi * bandwidths[k] / sample_rate) * np.cos(2 * np.pi * f / sample_rate)
            a = 1.0 - b - c
            out[s : s + block], zi = signal.lfilter([a], [1.0, -b, -c], y[s : s + block], zi=zi)
        y = out
    return y


def synthesize(
    segments: list[Segment], pitch_hz: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Render a timeline to samples `(N,)` float32 in [-1, 1]."""
    n = int(round(segments[-1].end * sample_rate))
    voice_amp = np.zeros(n)
    formants = np.zeros((3, n))
    bands: dict[tuple[float, float], np.ndarray] = {}
    last = np.array(PHONEMES["AA"].formants, dtype=np.float64)
    for seg in segments:
        a, b = int(round(seg.start * sample_rate)), int(round(seg.end * sample_rate))
        ph = PHONEMES[seg.phoneme]
        if ph.kind != "silence":
            last = np.array(ph.formants, dtype=np.float64)
        formants[:, a:b] = last[:, None]  # silences keep the previous formants (no glide into them)
        voice_amp[a:b] = ph.loudness if ph.voiced else 0.0
        if ph.noise_band is not None:
            env = np.zeros(n)
            if ph.kind == "stop":  # closure, then a short release burst at the end
                burst = int(0.015 * sample_rate)
                env[max(a, b - burst) : b] = 0.5
            else:
                env[a:b] = 0.35 if ph.voiced else 0.5
            bands[ph.noise_band] = bands.get(ph.noise_band, np.zeros(n)) + env

    ms = sample_rate // 1000
    formants = _moving_average(formants, 40 * ms)  # coarticulation: formants glide over ~40 ms
    voice_amp = _moving_average(voice_amp, 12 * ms)

    t = np.arange(n) / sample_rate
    duration = max(t[-1], 1e-3)
    f0 = pitch_hz * (
        1.0 + 0.06 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t + rng.uniform(0, 6.3)) - 0.12 * t / duration
    )
    voiced = _formant_filter(_glottal_source(f0, sample_rate) * voice_amp, formants, sample_rate)
    voiced /= np.abs(voiced).max() + 1e-9

    noise = np.zeros(n)
    for (lo, hi), env in bands.items():
        sos = signal.butter(
            4, [lo, min(hi, 0.95 * sample_rate / 2)], btype="bandpass", fs=sample_rate, output="sos"
        )
        band = signal.sosfilt(sos, rng.normal(0.0, 1.0, n))
        noise += band / (band.std() + 1e-9) * _moving_average(env, 5 * ms)
    out = 0.8 * voiced + 0.12 * noise
    out = 0.8 * out / (np.abs(out).max() + 1e-9)
    out += rng.normal(0.0, 0.002, n)  # room noise (-54 dB): real recordings are never exactly silent
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def synthesize_speech(
    duration: float, seed: int | tuple[int, ...], pitch_hz: float = 140.0, sample_rate: int = SAMPLE_RATE
) -> Speech:
    """A random utterance of `duration` seconds: samples and phoneme timeline (same seed, same speech)."""
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 0xA0D10])
    segments = make_timeline(duration, rng)
    return Speech(synthesize(segments, pitch_hz, rng, sample_rate), sample_rate, segments)


def loudness(speech: Speech, times: np.ndarray, window: float = 0.04) -> np.ndarray:
    """RMS loudness around each time `(T,)`, scaled so that loud speech is about 1 -> `(T,)`."""
    sr = speech.sample_rate
    power = _moving_average(speech.samples.astype(np.float64) ** 2, max(1, int(window * sr)))
    idx = np.clip((np.asarray(times) * sr).astype(int), 0, len(power) - 1)
    rms = np.sqrt(power)
    return np.clip(rms[idx] / (np.percentile(rms, 95) + 1e-9), 0.0, 1.0)


def mouth_track(speech: Speech, fps: float, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per video frame: mouth (opening, width, rounding) `(T, 3)` and viseme ids `(T,)`.

    Viseme targets are sampled at 200 Hz and smoothed over 60 ms (the lips cannot jump between
    shapes), and the opening of open visemes grows with the loudness of the audio at that moment.
    """
    fine_t = np.arange(int(np.ceil(speech.duration * 200)) + 1) / 200.0
    targets = VISEME_MOUTH[speech.viseme_at(fine_t)].T  # (3, F)
    smooth = _moving_average(targets, 12)
    times = np.arange(n_frames) / fps
    mouth = np.stack([np.interp(times, fine_t, smooth[k]) for k in range(3)], axis=1)  # (T, 3)
    mouth[:, 0] *= 0.55 + 0.45 * loudness(speech, times)
    return mouth, speech.viseme_at(times)
