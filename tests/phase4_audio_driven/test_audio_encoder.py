"""The Wav2Lip audio front end against the published code's numbers, librosa and closed forms."""

from __future__ import annotations

from fractions import Fraction

import librosa
import numpy as np
import pytest
import scipy.signal

from common.impl import load

SR, N_FFT, HOP = 16000, 800, 200


@pytest.fixture(scope="module")
def audio():
    return load("phase4_audio_driven", "audio_encoder")


@pytest.fixture(scope="module")
def ref(shared_dir):
    with np.load(shared_dir / "reference" / "wav2lip_audio_reference.npz") as z:
        return {k: z[k] for k in z.files}


def normalise_closed_form(mel_amp: np.ndarray) -> np.ndarray:
    """The spec's equivalent form: clip(1.6 log10(max(1e-5, M)) + 2.4, -4, 4)."""
    return np.clip(1.6 * np.log10(np.maximum(1e-5, mel_amp)) + 2.4, -4, 4)


@pytest.mark.todo("p4.audio.preemphasis")
def test_preemphasis(audio, ref):
    y = audio.preemphasis(ref["wav"])
    assert y.shape == ref["wav"].shape
    np.testing.assert_allclose(y, ref["preemphasized"], atol=1e-7)
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    np.testing.assert_allclose(
        audio.preemphasis(x, 0.97), scipy.signal.lfilter([1, -0.97], [1], x), atol=1e-6
    )


@pytest.mark.todo("p4.audio.stft")
def test_stft_magnitude_matches_reference(audio, ref):
    mag = audio.stft_magnitude(ref["preemphasized"])
    assert mag.shape == (401, 241)  # 1 + 48000 // 200 columns
    ref_mag = ref["stft_magnitude"].astype(np.float64)  # float32 on disk: keep the float64 tolerance exact
    tol = 1e-6 * max(1.0, float(ref_mag.max())) * 10  # complex64 storage
    np.testing.assert_allclose(mag, ref_mag, rtol=0, atol=tol)


@pytest.mark.todo("p4.audio.stft")
def test_stft_magnitude_matches_librosa_reflect(audio):
    y = np.random.default_rng(1).standard_normal(3333)
    want = np.abs(
        librosa.stft(
            y, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window="hann", center=True, pad_mode="reflect"
        )
    )
    np.testing.assert_allclose(audio.stft_magnitude(y), want, atol=1e-9, rtol=1e-6)


@pytest.mark.todo("p4.audio.mel_filterbank")
def test_mel_filterbank_matches_reference_and_librosa(audio, ref):
    fb = audio.mel_filterbank()
    assert fb.shape == (80, 401) and fb.dtype == np.float32
    np.testing.assert_allclose(fb, ref["mel_basis"], atol=1e-8)
    want = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=80, fmin=55, fmax=7600)
    np.testing.assert_allclose(fb, want, atol=1e-8)
    np.testing.assert_allclose(
        audio.mel_to_hz(audio.hz_to_mel([55.0, 999.0, 1000.0, 7600.0])),
        [55.0, 999.0, 1000.0, 7600.0],
        rtol=1e-12,
    )
    np.testing.assert_allclose(audio.hz_to_mel([1000.0, 6400.0]), [15.0, 42.0], rtol=1e-12)  # Slaney


@pytest.mark.todo("p4.audio.db_normalize")
def test_db_normalize_closed_form(audio, ref):
    m = np.array([1e-7, 1e-5, 1e-4, 1e-3, 1.0, 10.0, 1000.0])
    np.testing.assert_allclose(audio.amp_to_normalized_db(m), [-4, -4, -4, -2.4, 2.4, 4, 4], atol=1e-12)
    out = audio.amp_to_normalized_db(ref["mel_linear"])
    np.testing.assert_allclose(out, ref["mel"], rtol=0, atol=1e-4)


@pytest.mark.todo("p4.audio.preemphasis", "p4.audio.stft", "p4.audio.mel_filterbank", "p4.audio.db_normalize")
def test_melspectrogram_matches_reference(audio, ref):
    mel = audio.melspectrogram(ref["wav"])
    assert mel.shape == (80, 241)
    np.testing.assert_allclose(mel, ref["mel"], rtol=0, atol=1e-4)
    # the reflect padding matters: librosa >= 0.10's zero padding changes the edge columns a lot
    assert np.max(np.abs(mel - ref["mel_librosa_installed"])) > 0.1


@pytest.mark.todo("p4.audio.preemphasis", "p4.audio.stft", "p4.audio.mel_filterbank", "p4.audio.db_normalize")
def test_melspectrogram_matches_librosa_same_parameters(audio):
    t = np.arange(8000) / SR
    wav = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(2).standard_normal(8000)
    wav = wav.astype(np.float32)
    amp = librosa.feature.melspectrogram(
        y=scipy.signal.lfilter([1, -0.97], [1], wav),
        sr=SR,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        power=1.0,
        n_mels=80,
        fmin=55,
        fmax=7600,
        center=True,
        pad_mode="reflect",
    )
    np.testing.assert_allclose(audio.melspectrogram(wav), normalise_closed_form(amp), rtol=0, atol=1e-4)


@pytest.mark.todo("p4.audio.mfcc")
def test_mfcc_matches_librosa(audio, ref):
    log_mel = ref["mel_db"]
    want = librosa.feature.mfcc(S=log_mel, n_mfcc=13)  # DCT-II, ortho
    got = audio.mfcc(log_mel, n_mfcc=13)
    assert got.shape == (13, 241)
    np.testing.assert_allclose(got, want, atol=1e-9, rtol=1e-9)


@pytest.mark.todo("p4.audio.frame_index")
def test_inference_chunks_reference_25fps(audio, ref):
    starts = audio.inference_chunk_starts(241, 25.0)
    np.testing.assert_array_equal(starts, ref["mel_chunk_starts"])
    np.testing.assert_array_equal(audio.mel_chunks(ref["mel"], 25.0), ref["mel_chunks"])


@pytest.mark.todo("p4.audio.frame_index")
@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_inference_chunks_closed_form(audio, fps):
    t_mel = 400  # 5 s of audio
    starts = audio.inference_chunk_starts(t_mel, fps)
    rate = Fraction(80) / Fraction(fps).limit_denominator(1000)  # exact mel columns per frame
    want = []
    i = 0
    while int(i * rate) + 16 <= t_mel:
        want.append(int(i * rate))
        i += 1
    want.append(t_mel - 16)  # tail window
    np.testing.assert_array_equal(starts, want)
    assert len(starts) == {25.0: 122, 30.0: 146}[fps]  # 121 + tail, 145 + tail


@pytest.mark.todo("p4.audio.train_index")
def test_training_starts_match_reference(audio, ref):
    idx = audio.training_mel_starts(241, 77, fps=25.0)
    np.testing.assert_array_equal(idx["syncnet"], ref["train_syncnet_mel_start"])
    np.testing.assert_array_equal(idx["indiv"], ref["train_indiv_mel_start"])
    np.testing.assert_array_equal(idx["usable"], ref["train_window_usable"])


@pytest.mark.todo("p4.audio.train_index")
@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_training_generator_window_one_frame_earlier(audio, fps):
    idx = audio.training_mel_starts(1000, 200, fps=fps)
    rate = Fraction(80) / Fraction(fps).limit_denominator(1000)
    for j in range(1, 200):
        if idx["indiv"][j] >= 0:
            assert idx["indiv"][j] == int((j - 1) * rate) == idx["syncnet"][j - 1]
    assert idx["indiv"][0] == -1 and not idx["usable"][0]


@pytest.mark.todo("p4.audio.train_index")
def test_a_training_window_is_usable_exactly_when_all_its_audio_windows_are(audio):
    idx = audio.training_mel_starts(1000, 200, fps=25.0)  # the audio outlasts the video
    for n in range(200):
        want = n + 5 <= 200 and idx["syncnet"][n] >= 0 and bool((idx["indiv"][n : n + 5] >= 0).all())
        assert idx["usable"][n] == want, n
    assert idx["usable"][195]  # the last full 5-frame window


@pytest.mark.todo("p4.audio.frame_index")
def test_inference_chunks_of_exactly_one_window(audio):
    """T = 16 columns hold exactly one 16-column window: frame 0 reads it, and frame 1 (start 3 runs past
    the end) gets the tail window, the same one; T = 15 columns give none."""
    np.testing.assert_array_equal(audio.inference_chunk_starts(16, 25.0), [0, 0])
    assert len(audio.inference_chunk_starts(15, 25.0)) == 0
    mel = np.arange(80 * 16, dtype=np.float32).reshape(80, 16)
    np.testing.assert_array_equal(audio.mel_chunks(mel, 25.0), np.stack([mel, mel]))


@pytest.mark.todo("p4.audio.train_index")
def test_training_windows_may_end_exactly_at_the_last_mel_column(audio):
    """T = 32 columns: frame 5's SyncNet window and frame 6's generator window both start at column 16
    (int(80 * 5 / 25)) and end exactly at T, which is still inside."""
    got = audio.training_mel_starts(32, 8, fps=25.0)
    np.testing.assert_array_equal(got["syncnet"], [0, 3, 6, 9, 12, 16, -1, -1])
    np.testing.assert_array_equal(got["indiv"], [-1, 0, 3, 6, 9, 12, 16, -1])
    np.testing.assert_array_equal(got["usable"], [False, True, True, False, False, False, False, False])
