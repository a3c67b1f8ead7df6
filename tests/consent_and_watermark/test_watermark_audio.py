"""Invisible audio watermark: round trip, resampling, SNR, false positives, limits."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from consent_and_watermark import watermark_audio as wa

KEY = bytes(range(32))
PAYLOAD = 0x0123456789ABCDEF


@pytest.fixture(scope="module")
def speech(shared_dir) -> np.ndarray:
    """8 s of speech at 16 kHz: the 3-s reference clip, repeated with a changing gain."""
    clip, rate = sf.read(shared_dir / "reference" / "wav2lip_audio_reference.wav", dtype="float32")
    assert rate == 16000
    gains = np.repeat([1.0, 0.6, 0.8], clip.size)
    return (np.tile(clip, 3) * gains)[: 8 * rate].astype(np.float32)


@pytest.fixture(scope="module")
def marked(speech) -> np.ndarray:
    return wa.embed(speech, 16000, PAYLOAD, KEY)


def test_round_trip_and_snr(speech, marked):
    assert marked.shape == speech.shape and marked.dtype == np.float32
    noise = (marked - speech).astype(np.float64)
    snr = 10 * np.log10(np.sum(speech.astype(np.float64) ** 2) / np.sum(noise**2))
    assert snr >= 25.0
    found = wa.detect(marked, 16000, KEY)
    assert found.detected and found.payload == PAYLOAD and found.fpr < 1e-6


def test_survives_resampling_to_8k_and_back(marked):
    down = resample_poly(marked, 1, 2)
    back = resample_poly(down, 2, 1).astype(np.float32)
    found = wa.detect(back, 16000, KEY)
    assert found.detected and found.payload == PAYLOAD


def test_survives_trimming_the_start(marked):
    found = wa.detect(marked[21 * 256 + 128 :], 16000, KEY)  # cut 21.5 STFT hops (the worst sub-hop offset)
    assert found.detected and found.payload == PAYLOAD


def test_other_sample_rates(speech):
    audio_24k = resample_poly(speech, 3, 2).astype(np.float32)
    found = wa.detect(wa.embed(audio_24k, 24000, PAYLOAD, KEY), 24000, KEY)
    assert found.detected and found.payload == PAYLOAD


def test_unmarked_and_wrong_key_not_detected(speech, marked):
    rng = np.random.default_rng(0)
    for audio in (speech, rng.normal(0, 0.1, speech.size).astype(np.float32)):
        found = wa.detect(audio, 16000, KEY)
        assert not found.detected and found.fpr > 1e-6
    assert not wa.detect(marked, 16000, bytes(32)).detected


def test_too_short_raises():
    with pytest.raises(ValueError):
        wa.embed(np.zeros(int(wa.MIN_SECONDS * 16000) - 1, np.float32), 16000, PAYLOAD, KEY)
