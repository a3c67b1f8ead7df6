"""Robustness benchmark of the invisible audio watermark (issue 3): 64 bits in 10 s of audio.

Signals (10 s each): the recorded speech reference clip (../shared/reference, 3 s, repeated with
changing gain), synthetic speech from ``common.synthetic.speech`` at two pitches, a synthetic
piano-like melody, pink noise, and the melody at 44.1 kHz. A random 64-bit payload is embedded, the
audio goes through each attack, and the blind detector runs on the result.

Attacks: none, MP3 64 kbps (libmp3lame), AAC 64 kbps (FFmpeg's aac, ADTS), resampling to 8 kHz and
back (scipy polyphase), trimming 0.5 s + 128 samples from the start (an arbitrary sub-frame offset),
and white noise at 30 dB SNR. Codecs run in memory through PyAV.

Run (one core, low priority):
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/audio_watermark_robustness.py
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy.signal import resample_poly  # noqa: E402

from consent_and_watermark import watermark_audio as wa  # noqa: E402
from consent_and_watermark.ecc import payload_to_bits  # noqa: E402

KEY = bytes(range(7, 39))
SECONDS = 10.0
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "wav2lip_audio_reference.wav"


def melody(seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Decaying harmonic notes, four per second, random pitches over two octaves."""
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    for k in range(int(seconds * 4)):
        f0, start = 110 * 2 ** (rng.integers(0, 24) / 12), k * 0.25
        on = (t >= start) & (t < start + 0.5)
        envelope = np.exp(-(t[on] - start) * 4)
        for h in range(1, 8):
            out[on] += envelope * np.sin(2 * np.pi * f0 * h * (t[on] - start)) / h
    return (0.2 * out / np.abs(out).max()).astype(np.float32)


def pink_noise(seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * rate)
    spectrum = np.fft.rfft(rng.normal(size=n))
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
    y = np.fft.irfft(spectrum, n)
    return (0.1 * y / y.std()).astype(np.float32)


def signals(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, int]]:
    """name -> (samples, rate), 10 s each."""
    out = {}
    n = int(SECONDS * 16000)
    if REFERENCE.exists():
        clip, rate = sf.read(REFERENCE, dtype="float32")
        reps = -(-n // clip.size)
        gains = np.repeat(rng.uniform(0.4, 1.0, reps), clip.size)
        out["speech (recorded ref, 16k)"] = ((np.tile(clip, reps) * gains)[:n].astype(np.float32), rate)
    try:
        from common.synthetic.speech import synthesize_speech

        for seed, pitch in ((1, 120.0), (2, 210.0)):
            speech = synthesize_speech(SECONDS, seed, pitch_hz=pitch)
            samples = speech.samples[:n].astype(np.float32)
            out[f"synthetic speech {pitch:.0f} Hz"] = (samples, speech.sample_rate)
    except ImportError:
        print("synthetic speech: skipped (common.synthetic.speech not importable)")
    out["melody (16k)"] = (melody(SECONDS, 16000, rng), 16000)
    out["pink noise (16k)"] = (pink_noise(SECONDS, 16000, rng), 16000)
    out["melody (44.1k)"] = (melody(SECONDS, 44100, rng), 44100)
    return out


# ---------------------------------------------------------------- attacks (all in memory)


def codec_round_trip(x: np.ndarray, rate: int, fmt: str, codec: str, bit_rate: int) -> np.ndarray:
    """Encode mono float samples with an FFmpeg codec in memory and decode them at the same rate."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:  # media-write-ok: in-memory attack buffer
        stream = out.add_stream(codec, rate=rate)
        stream.bit_rate = bit_rate
        stream.layout = "mono"
        to_codec = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        chunk = stream.codec_context.frame_size or 1024
        for start in range(0, x.size, chunk):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, start : start + chunk]),
                                               format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for converted in to_codec.resample(frame):
                for packet in stream.encode(converted):
                    out.mux(packet)
        for converted in to_codec.resample(None):
            for packet in stream.encode(converted):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    parts = []
    with av.open(buf) as inp:
        to_float = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in inp.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in to_float.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in to_float.resample(None)]
    return np.concatenate(parts).astype(np.float32)


def resample_8k(x: np.ndarray, rate: int) -> np.ndarray:
    g = np.gcd(rate, 8000)
    down = resample_poly(x, 8000 // g, rate // g)
    return resample_poly(down, rate // g, 8000 // g).astype(np.float32)


def white_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(x.astype(np.float64) ** 2))
    return (x + rng.normal(0, np.sqrt(power * 10 ** (-snr_db / 10)), x.size)).astype(np.float32)


ATTACKS = {
    "none": lambda x, r, g: x,
    "mp3 64k": lambda x, r, g: codec_round_trip(x, r, "mp3", "libmp3lame", 64000),
    "aac 64k": lambda x, r, g: codec_round_trip(x, r, "adts", "aac", 64000),
    "resample 8k+back": lambda x, r, g: resample_8k(x, r),
    "trim 0.5s+128": lambda x, r, g: x[r // 2 + 128 :],
    "noise 30 dB": lambda x, r, g: white_noise(x, 30.0, g),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unmarked", type=int, default=200, help="unmarked 10-s clips for false positives")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    results = defaultdict(list)  # attack -> [(bit accuracy, detected, chip error rate)]
    print(f"audio watermark robustness: {SECONDS:.0f} s signals, 64-bit payloads, FPR < 1e-6\n")
    print(f"{'signal':28s} {'SNR dB':>7s} {'embed ms':>9s} {'detect ms':>9s}  " +
          "  ".join(f"{a:>16s}" for a in ATTACKS))
    for name, (x, rate) in signals(rng).items():
        payload = int(rng.integers(0, 2**63))
        t0 = time.perf_counter()
        marked = wa.embed(x, rate, payload, KEY)
        embed_ms = 1e3 * (time.perf_counter() - t0)
        snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((marked - x).astype(np.float64) ** 2))
        cells, detect_ms = [], 0.0
        for attack, fn in ATTACKS.items():
            attacked = fn(marked, rate, np.random.default_rng(1))
            t0 = time.perf_counter()
            found = wa.detect(attacked, rate, KEY)
            if attack == "none":
                detect_ms = 1e3 * (time.perf_counter() - t0)
            ok = found.detected and found.payload == payload
            truth = payload_to_bits(payload)
            decoded = payload_to_bits(found.payload) if found.payload is not None else 1 - truth
            acc = float(np.mean(decoded == truth))
            results[attack].append((acc, ok, found.bit_errors / max(found.n_bits, 1)))
            cells.append(f"{'DET' if ok else 'miss'} ce {found.bit_errors / max(found.n_bits, 1):.2f}")
        print(f"{name:28s} {snr:7.1f} {embed_ms:9.0f} {detect_ms:9.0f}  "
              + "  ".join(f"{c:>16s}" for c in cells))
    print("\nper attack: bit accuracy / detection rate / mean raw chip error rate")
    for attack, rows in results.items():
        r = np.array(rows, dtype=np.float64)
        print(f"  {attack:18s} acc {r[:, 0].mean():.3f}  det {r[:, 1].mean():.2f}  "
              f"chip err {r[:, 2].mean():.3f}")
    if args.unmarked:
        hits, fprs = 0, []
        for i in range(args.unmarked):
            kind = i % 3
            if kind == 0:
                clip = melody(SECONDS, 16000, rng)
            elif kind == 1:
                clip = pink_noise(SECONDS, 16000, rng)
            else:
                clip = (rng.normal(0, 0.1, int(SECONDS * 16000)) * np.abs(np.sin(np.arange(160000) / 3000)))
            found = wa.detect(clip.astype(np.float32), 16000, KEY)
            hits += found.detected
            fprs.append(found.fpr)
        print(f"\nfalse positives: {hits} detections on {args.unmarked} unmarked 10-s clips "
              f"(smallest FPR bound {min(fprs):.3g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
