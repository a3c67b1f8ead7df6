"""Invisible audio watermark: round trip, resampling, SNR, sparse music, silence, false positives, limits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from consent_and_watermark import detection
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


@pytest.fixture(scope="module")
def melody() -> np.ndarray:
    """8 s of decaying 7-partial notes at 16 kHz, four a second: sparse partials, silent bands between."""
    rng = np.random.default_rng(3)
    t = np.arange(8 * 16000) / 16000
    out = np.zeros_like(t)
    for k in range(32):
        f0, start = 110 * 2 ** (rng.integers(0, 24) / 12), k * 0.25
        on = (t >= start) & (t < start + 0.5)
        for h in range(1, 8):
            out[on] += np.exp(-(t[on] - start) * 4) * np.sin(2 * np.pi * f0 * h * (t[on] - start)) / h
    return (0.2 * out / np.abs(out).max()).astype(np.float32)


def _snr_db(clean: np.ndarray, marked: np.ndarray) -> float:
    noise = (marked - clean).astype(np.float64)
    return float(10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(noise**2)))


def test_round_trip_and_snr(speech, marked):
    assert marked.shape == speech.shape and marked.dtype == np.float32
    assert _snr_db(speech, marked) >= 25.0
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


def test_sparse_melody_survives_resampling(melody):
    marked = wa.embed(melody, 16000, PAYLOAD, KEY)
    assert _snr_db(melody, marked) >= 25.0
    back = resample_poly(resample_poly(marked, 1, 2), 2, 1).astype(np.float32)
    found = wa.detect(back, 16000, KEY)
    assert found.detected and found.payload == PAYLOAD


def test_noise_floor_and_informed_embedding_help_sparse_music(melody, monkeypatch):
    """Without the noise floor and the informed rounds this melody reads ~ 33 % chip errors, ~ 17 % with."""
    full = wa.detect(wa.embed(melody, 16000, PAYLOAD, KEY), 16000, KEY)
    monkeypatch.setattr(wa, "CONFIG", replace(wa.CONFIG, floor_db=-300.0, informed_rounds=0))
    plain = wa.detect(wa.embed(melody, 16000, PAYLOAD, KEY), 16000, KEY)
    assert full.bit_errors < 0.75 * plain.bit_errors


def test_digital_silence_stays_silent(speech):
    gapped = speech.copy()
    gapped[3 * 16000 : 4 * 16000] = 0.0  # one second of digital silence
    marked = wa.embed(gapped, 16000, PAYLOAD, KEY)
    assert np.all(marked[int(3.2 * 16000) : int(3.8 * 16000)] == 0.0)  # the mark reaches < 0.2 s into it
    found = wa.detect(marked, 16000, KEY)
    assert found.detected and found.payload == PAYLOAD


def test_all_silent_input_stays_silent():
    silent = np.zeros(5 * 16000, np.float32)
    marked = wa.embed(silent, 16000, PAYLOAD, KEY)
    assert np.all(marked == 0.0)
    assert not wa.detect(marked, 16000, KEY).detected


def test_unmarked_and_wrong_key_not_detected(speech, marked, melody):
    rng = np.random.default_rng(0)
    for audio in (speech, rng.normal(0, 0.1, speech.size).astype(np.float32), melody):
        found = wa.detect(audio, 16000, KEY)
        assert not found.detected and found.fpr > 1e-6
    assert not wa.detect(marked, 16000, bytes(32)).detected


def test_too_short_raises():
    with pytest.raises(ValueError):
        wa.embed(np.zeros(int(wa.MIN_SECONDS * 16000) - 1, np.float32), 16000, PAYLOAD, KEY)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_long_audio_is_marked_and_read_span_by_span(speech, monkeypatch, rate):
    """Spans of 2 periods (5.12 s) stand in for the real 24 (61.44 s): 24 s of audio are marked in four
    cross-faded spans and read in three, as well as in one piece, with memory set by the span."""
    gains = np.repeat([1.0, 0.4, 0.7], speech.size)  # loud and quiet stretches in different spans
    long = (np.tile(speech, 3) * gains).astype(np.float32)  # 24 s at 16 kHz
    long = long if rate == 16000 else resample_poly(long, 441, 160).astype(np.float32)
    whole = wa.embed(long, rate, PAYLOAD, KEY)
    monkeypatch.setattr(wa, "SPAN_PERIODS", 2)
    spans = wa.embed(long, rate, PAYLOAD, KEY)
    assert not np.array_equal(spans, whole)  # it did go span by span
    assert _snr_db(long, spans) >= 25.0
    # no click where spans meet: the mark changes no faster there than anywhere in the one-piece mark
    assert np.abs(np.diff(spans - long)).max() < 1.5 * np.abs(np.diff(whole - long)).max()
    found = wa.detect(spans, rate, KEY)
    assert found.detected and found.payload == PAYLOAD
    assert found.bit_errors < 1.5 * wa.detect(whole, rate, KEY).bit_errors + 10
    # the reading in spans is the one-piece reading (its context margins and a whole-file energy floor)
    lay = wa._layout(KEY, wa.CONFIG)
    x = wa._to_internal(spans, rate, wa.CONFIG.rate)
    in_spans = wa._folded_features(x, wa.CONFIG, lay.bin_band)
    monkeypatch.setattr(wa, "SPAN_PERIODS", 24)
    np.testing.assert_allclose(in_spans, wa._folded_features(x, wa.CONFIG, lay.bin_band), atol=1e-9)


def test_a_short_remainder_joins_the_last_span(monkeypatch):
    """Audio of 2 spans and one period: two spans, the second running to the end (not a third span of
    a single period, marked and scaled on its own)."""
    monkeypatch.setattr(wa, "SPAN_PERIODS", 2)
    seen = []
    monkeypatch.setattr(wa, "_embed_span", lambda span, *args: seen.append(span.size) or span.copy())
    period = wa.PERIOD_SAMPLES  # at 16 kHz
    wa.embed(np.ones(5 * period, np.float32), 16000, PAYLOAD, KEY)
    assert seen == [3 * period, 4 * period]  # periods [0, 2 + 1 overlap) and [2 - 1 overlap, 5)


def test_the_sync_search_finds_a_three_quarter_hop_offset(speech):
    """All four quarter-hop offsets of the frame grid are tried: a start cut by 20.5 hops is read at the
    128-sample offset (a grid half a hop off costs several percent of the chips)."""
    marked = wa.embed(speech[:6 * 16000], 16000, PAYLOAD, KEY)
    found = wa.detect(marked[20 * 256 + 128 :], 16000, KEY)
    assert found.detected and found.payload == PAYLOAD
    assert found.details["offset_samples"] == 128


def test_the_list_gate_admits_every_reading_the_bound_would_accept():
    """A best path that fails its CRC but agrees with enough chips to pass the bound gets the list
    search: the gate is no higher than the share of the payload chips the bound needs."""
    n = wa._layout(KEY, wa.CONFIG).data_cells[0].size
    needed = next(k for k in range(n // 2, n + 1)
                  if detection.match_fpr(n, k, 1, readable=True) < detection.FPR_THRESHOLD)
    assert wa.CONFIG.list_gate <= needed / n


def test_the_stft_is_inverted_exactly():
    """Square-root periodic Hann for analysis and synthesis: their product overlapped by half sums to 1,
    so marking nothing changes nothing (to float32 rounding), start and end included."""
    x = np.random.default_rng(0).normal(0, 0.1, 5000).astype(np.float32)
    spectrum = wa._stft(x, wa.CONFIG)
    assert spectrum.shape[0] == x.size // wa.CONFIG.hop + 2
    np.testing.assert_allclose(wa._istft(spectrum, x.size, wa.CONFIG), x, atol=1e-6)


def test_audio_shorter_than_one_period_is_not_read():
    found = wa.detect(np.ones(2 * 16000, np.float32), 16000, KEY)  # 2 s of a 2.56-s period
    assert not found.detected and found.details == {"reason": "shorter than one period"}


def test_the_modulation_is_capped_when_little_of_the_sound_lies_in_the_band():
    """A loud 100 Hz hum over faint in-band noise: the 25.5 dB budget would buy a modulation far above
    +-20 %, so the cap holds and the mark stays well below the budget (~45 dB SNR here)."""
    t = np.arange(4 * 16000) / 16000
    hum = 0.5 * np.sin(2 * np.pi * 100 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    hum = hum.astype(np.float32)
    marked = wa.embed(hum, 16000, PAYLOAD, KEY)
    assert _snr_db(hum, marked) > 35.0
    found = wa.detect(marked, 16000, KEY)
    assert found.detected and found.payload == PAYLOAD
