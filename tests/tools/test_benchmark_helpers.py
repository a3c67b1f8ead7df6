"""The measuring helpers of benchmarks/*.py (the figures issues are judged by), on small synthetic inputs
whose expected values follow from each helper's definition. The scripts are loaded as modules (their
main() is not run); dlib and the clocks are replaced by fakes where a helper calls them."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import load_script

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@functools.cache
def bench(name: str):
    """benchmarks/<name>.py as a module (importing it runs no benchmark)."""
    return load_script(BENCHMARKS / f"{name}.py", f"bench_{name}")


def frames_of(*values: int) -> np.ndarray:
    """Tiny frames whose first pixel names them, for fakes that look a frame's answer up."""
    return np.stack([np.full((2, 2, 3), v, np.uint8) for v in values])


# ---------------------------------------------------------------- wav2lip_sync_quality


def test_loudness_is_rms_of_a_40ms_window_centred_on_each_frame():
    w2l = bench("wav2lip_sync_quality")
    sr, fps = 1000, 10.0  # frame i is centred on sample 100 i + 50; its window is [100 i + 30, 100 i + 70)
    wav = np.zeros(300)
    wav[130:170] = 2.0  # exactly frame 1's window
    wav[250:260] = 4.0  # a quarter of frame 2's window: RMS sqrt(16 / 4) = 2
    wav[75:125] = 100.0  # between the windows of frames 0 and 1: heard by neither
    np.testing.assert_allclose(w2l.loudness(wav, 3, fps, sr=sr), [0.0, 2.0, 2.0])


def test_loudness_clips_the_window_at_both_ends_of_the_audio():
    w2l = bench("wav2lip_sync_quality")
    sr, fps = 1000, 100.0  # frame 0 centred on sample 5: its window is clipped to [0, 25)
    wav = np.zeros(40)
    wav[:25] = 1.0
    out = w2l.loudness(wav, 8, fps, sr=sr)  # frame 7 is centred on sample 75: past the audio
    assert out[0] == pytest.approx(1.0)
    assert out[7] == 0.0


def test_loudness_of_int16_audio_does_not_overflow():
    w2l = bench("wav2lip_sync_quality")
    wav = np.full(1600, 300, np.int16)  # 300^2 does not fit int16
    np.testing.assert_allclose(w2l.loudness(wav, 2, 25.0), [300.0, 300.0])


def test_mouth_opening_is_inner_lip_gap_over_face_height(monkeypatch):
    from common import dlib_models

    w2l = bench("wav2lip_sync_quality")
    lm = np.zeros((68, 2))
    lm[62], lm[66] = (1, 1), (4, 5)  # inner lips 5 apart
    lm[27], lm[8] = (0, 0), (0, 20)  # nose bridge top to chin: 20
    lm[[61, 63, 65, 67]] = (50, 50)  # the neighbours are elsewhere: a wrong index shows
    lm[[51, 57]] = (0, 90)
    lm[[28, 29, 30, 7, 9]] = (30, -40)
    faces = {1: lm, 2: None, 3: 2 * lm}
    monkeypatch.setattr(dlib_models, "largest_face_landmarks", lambda f, *a: faces[int(f[0, 0, 0])])
    out = w2l.mouth_opening(frames_of(1, 2, 3))
    assert out[0] == pytest.approx(0.25) and out[2] == pytest.approx(0.25)
    assert np.isnan(out[1])  # no face: NaN, left out of the correlation


# ---------------------------------------------------------------- faceswap_quality


def eye_landmarks(left=(10.0, 20.0), right=(40.0, 60.0)) -> np.ndarray:
    """68 points whose two eyes (36-41, 42-47) average ``left`` and ``right``; no single point is."""
    lm = np.full((68, 2), 500.0)
    spread = np.array([[-3, 0], [3, 0], [0, -2], [0, 2], [-1, 1], [1, -1]], float)
    lm[36:42] = np.array(left) + spread
    lm[42:48] = np.array(right) + spread * 2
    return lm


def test_inter_ocular_is_distance_between_eye_centres():
    fq = bench("faceswap_quality")
    assert fq.inter_ocular(eye_landmarks()) == pytest.approx(50.0)  # 3-4-5 triangle, x10


def test_identity_and_expression_counts_nearer_source_and_landmark_nme(monkeypatch):
    fq = bench("faceswap_quality")
    want = np.zeros((68, 2))
    want[36:42], want[42:48] = (0, 0), (10, 0)  # inter-ocular 10
    # pair 0: output points twice the target's: 6 points 10 px off, 62 exact -> NME 60 / 68 / 10
    # pair 1: every point 5 px off (3, 4) -> NME 0.5; pairs 2 and 3: no face in the target / output;
    # pair 4: exact -> NME 0
    faces = {1: 2 * want, 2: want + (3, 4), 3: want, 4: None, 5: want,
             10: want, 11: want, 12: None, 13: want, 14: want}
    descriptors = {1: 1.0, 2: 7.0, 3: 0.0, 5: 0.0}
    monkeypatch.setattr(fq.dlib_models, "largest_face_landmarks", lambda f, *a: faces[int(f[0, 0, 0])])
    monkeypatch.setattr(fq.dlib_models, "face_descriptor", lambda f, lm: np.array([descriptors[f[0, 0, 0]]]))
    source_refs, target_refs = np.array([[0.0], [10.0]]), np.array([[4.0], [5.0]])
    # output 0 (descriptor 1): nearest source ref 1, nearest target ref 3 -> nearer the source (by the
    # mean distance it would be the target's: 5 vs 3.5); output 1 (7): 3 vs 2 -> nearer the target;
    # output 4 (0): 0 vs 4 -> nearer the source
    nearer, nme, measured = fq.identity_and_expression(
        frames_of(1, 2, 3, 4, 5), frames_of(10, 11, 12, 13, 14), (source_refs, target_refs)
    )
    assert measured == 3
    assert nearer == pytest.approx(2 / 3)
    assert nme == pytest.approx((60 / 68 / 10 + 0.5 + 0) / 3)  # the mean (the median would be 0.088)


# ---------------------------------------------------------------- reenact_quality


def test_brow_and_mouth_divide_by_outer_eye_corner_distance():
    rq = bench("reenact_quality")
    lm = np.full((68, 2), 0.0)
    lm[36], lm[45] = (0, 50), (40, 50)  # outer eye corners 40 apart
    lm[39], lm[42] = (10, 52), (30, 48)  # inner corners: the eye line is y 50
    lm[[37, 38, 40, 41, 43, 44, 46, 47]] = (20, 60)  # lids, not used
    lm[17:27, 1] = [28, 32, 30, 30, 30, 30, 30, 30, 28, 32]  # brows: mean y 30, 20 px above the eyes
    lm[16, 1], lm[27, 1] = 100, 100
    lm[62], lm[66] = (20, 70), (20, 82)  # inner lips 12 apart
    lm[[61, 63, 65, 67]] = (0, 0)
    mouth, brow = rq.brow_and_mouth(lm)
    assert mouth == pytest.approx(12 / 40)
    assert brow == pytest.approx(20 / 40)


# ---------------------------------------------------------------- synthetic_faces


def test_identity_separation_same_vs_different_and_rank1():
    sf = bench("synthetic_faces")
    first = [np.array([0.0, 0.0]), np.array([10.0, 0.0]), np.array([0.0, 10.0])]
    last = [np.array([1.0, 0.0]), np.array([3.0, 0.0]), np.array([0.0, 7.0])]
    # distances last (rows) x first (columns): [[1, 9, sqrt 101], [3, 7, sqrt 109], [7, sqrt 149, 3]]
    same, diff, rank1 = sf.identity_separation(first, last)
    assert same == pytest.approx((1 + 7 + 3) / 3)
    assert diff == pytest.approx((9 + math.sqrt(101) + 3 + math.sqrt(109) + 7 + math.sqrt(149)) / 6)
    assert rank1 == pytest.approx(2 / 3)  # person 1's last frame is nearest person 0's first


# ---------------------------------------------------------------- provenance_cost, writer_scaling


def fake_clock(*ticks: float):
    it = iter(ticks)
    return lambda: next(it)


def test_median_ms_is_the_median_of_the_repeats_in_ms(monkeypatch):
    pc = bench("provenance_cost")
    # four calls taking 1, 5, 2 and 100 ms: median 3.5 ms (the mean would be 27)
    clock = fake_clock(0, 0.001, 1, 1.005, 2, 2.002, 3, 3.1)
    monkeypatch.setattr(pc, "time", SimpleNamespace(perf_counter=clock))
    calls = []
    assert pc._median_ms(lambda: calls.append(1), 4) == pytest.approx(3.5)
    assert len(calls) == 4


def test_measure_gives_fps_and_cpu_ms_per_frame(monkeypatch):
    ws = bench("writer_scaling")
    clock = SimpleNamespace(perf_counter=fake_clock(10.0, 12.0), process_time=fake_clock(1.0, 1.5))
    monkeypatch.setattr(ws, "time", clock)
    fps, cpu_ms = ws.measure(lambda: None, 50)  # 50 frames in 2 s wall, 0.5 s CPU
    assert fps == pytest.approx(25.0)
    assert cpu_ms == pytest.approx(10.0)


# ---------------------------------------------------------------- watermark_robustness


def test_psnr_of_uint8_images():
    wr = bench("watermark_robustness")
    a, b = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 20, np.uint8)  # 0 - 20 wraps in uint8
    assert wr.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 400))
    assert wr.psnr(b, a) == pytest.approx(10 * math.log10(255**2 / 400))


def test_fit_centre_crops_to_the_aspect_then_resizes():
    wr = bench("watermark_robustness")
    wide = np.zeros((100, 200, 3), np.uint8)
    wide[:, 50:150] = 200  # the centre square
    out = wr.fit(wide, (50, 50))
    assert out.shape == (50, 50, 3) and np.all(out == 200)
    tall = np.zeros((200, 100, 3), np.uint8)
    tall[50:150] = 100
    out = wr.fit(tall, (50, 50))
    assert out.shape == (50, 50, 3) and np.all(out == 100)
    assert wr.fit(wide, (30, 40), pad=20).shape == (40, 50, 3)  # (H, W + pad)


def test_ours_score_bit_accuracy_detection_and_flags():
    from consent_and_watermark.ecc import payload_to_bits

    wr = bench("watermark_robustness")
    ours, payload = wr.Ours(), 0x0123_4567_89AB_CDEF
    assert payload_to_bits(payload).sum() == 32

    def found(p, detected=True, errors=6, n=24):
        return SimpleNamespace(payload=p, detected=detected, bit_errors=errors, n_bits=n)

    right = ours._score(found(payload), payload)
    assert (right.bit_accuracy, right.detected, right.chip_errors) == (1.0, True, pytest.approx(0.25))
    assert not right.wrong_payload and not right.unreadable
    wrong = ours._score(found(payload ^ 0b101), payload)  # two bits off
    assert wrong.bit_accuracy == pytest.approx(62 / 64)
    assert not wrong.detected and wrong.wrong_payload and not wrong.unreadable
    unread = ours._score(found(None, errors=0, n=0), payload)  # nothing decoded
    assert (unread.bit_accuracy, unread.detected, unread.chip_errors) == (0.0, False, 0.0)
    assert unread.unreadable and not unread.wrong_payload
    for p in (payload ^ 1, None):  # not detected: neither a wrong payload nor an unreadable one
        missed = ours._score(found(p, detected=False), payload)
        assert not missed.detected and not missed.wrong_payload and not missed.unreadable


def test_baseline_detects_at_51_of_64_bits_and_votes_by_majority():
    from consent_and_watermark.ecc import payload_to_bits

    wr = bench("watermark_robustness")
    base = object.__new__(wr.Baseline)  # no imwatermark needed to score
    payload = 0xFFFF_0000_FFFF_0000
    truth = payload_to_bits(payload)

    def flipped(k):
        bits = truth.copy()
        bits[:k] ^= 1
        return bits

    assert base._score(flipped(13), payload).detected  # 51 right
    assert base._score(flipped(13), payload).bit_accuracy == pytest.approx(51 / 64)
    assert not base._score(flipped(14), payload).detected  # 50 right
    frames = [flipped(16), truth, truth, flipped(64)]  # votes: 2 of 4 right on the first 16 bits (all 1)
    base.bits = lambda rgb: frames[int(rgb)]
    outcome = base.detect_video([0, 1, 2, 3], payload)
    assert outcome.bit_accuracy == pytest.approx(48 / 64)  # a tie (mean 0.5) decodes to 0
    three = base.detect_video([0, 1, 2], payload)  # 2 of 3 right on every bit
    assert three.bit_accuracy == 1.0 and three.detected


# ---------------------------------------------------------------- audio_watermark_robustness


def test_white_noise_has_the_asked_snr():
    aw = bench("audio_watermark_robustness")
    x = np.full(200_000, 0.5, np.float32)
    x[::2] = -0.5  # power 0.25, mean 0
    noisy = aw.white_noise(x, 20.0, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.shape == x.shape
    noise_power = np.mean((noisy.astype(np.float64) - x) ** 2)
    assert noise_power == pytest.approx(0.25 / 100, rel=0.03)


def test_resample_8k_removes_what_8khz_cannot_carry():
    aw = bench("audio_watermark_robustness")
    rate = 16000
    t = np.arange(rate) / rate
    low, high = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 6000 * t)
    low_out, high_out = aw.resample_8k(low, rate), aw.resample_8k(high, rate)
    assert low_out.shape == low.shape and low_out.dtype == np.float32
    middle = slice(2000, 14000)
    assert np.sqrt(np.mean(low_out[middle] ** 2)) == pytest.approx(np.sqrt(0.5), rel=0.05)
    assert np.sqrt(np.mean(high_out[middle] ** 2)) < 0.05


def test_trim_attack_drops_half_a_second_and_128_samples():
    aw = bench("audio_watermark_robustness")
    x = np.arange(20000, dtype=np.float32)
    out = aw.ATTACKS["trim 0.5s+128"](x, 16000, None)
    assert len(out) == 20000 - 8128 and out[0] == 8128


def test_make_clips_static_noise_and_a_2px_per_frame_pan():
    wr = bench("watermark_robustness")
    image = np.tile((np.arange(120) * 2).astype(np.uint8)[None, :, None], (60, 1, 3))
    clips = wr.make_clips(image, (40, 20), 3, np.random.default_rng(0))
    still = wr.fit(image, (40, 20)).astype(np.float64)
    assert len(clips["static"]) == len(clips["pan"]) == 3
    noise = [f.astype(np.float64) - still for f in clips["static"]]
    assert 1.5 < np.std(noise[0]) < 2.5 and not np.array_equal(noise[0], noise[1])  # fresh sensor noise
    pan = clips["pan"]
    assert all(f.shape == (20, 40, 3) for f in pan)
    np.testing.assert_array_equal(pan[1][:, :-2], pan[0][:, 2:])  # the picture moves 2 px left per frame
    np.testing.assert_array_equal(pan[2][:, :-2], pan[1][:, 2:])


def test_print_tables_aggregates_outcomes_quality_and_timing(capsys):
    from collections import defaultdict

    wr = bench("watermark_robustness")
    first = next(iter(wr.ATTACKS))
    table, quality, timing = defaultdict(list), defaultdict(list), defaultdict(list)
    table["ours", "256x256", first] = [
        wr.Outcome(1.0, True, 0.1),
        wr.Outcome(0.5, False, None, wrong_payload=True),
        wr.Outcome(0.9, True, 0.3, unreadable=True),
        wr.Outcome(0.2, False, None, wrong_payload=True),
    ]
    quality["ours", "256x256"] = [(40.0, 0.99), (30.0, 0.97)]
    timing["ours", "256x256", "embed"] = [1.0, 2.0, 10.0]
    timing["ours", "256x256", "detect"] = [4.0, 5.0]
    wr.print_tables(table, quality, timing, [SimpleNamespace(name="ours")], ["256x256"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(first)]
    assert len(rows) == 1 and out.count("(n=") == 1  # attacks with no outcomes are not listed
    # means over the outcomes (acc: the median would be 0.700); chip errors only where measured
    assert "acc 0.650 det 0.50 ce 0.20 WRONG 2 unread 1" in rows[0] and rows[0].endswith("(n=4)")
    assert "PSNR mean 35.00 dB (min 30.00)" in out and "SSIM mean 0.9800" in out
    assert "embed 2.0 ms" in out and "detect 4.5 ms" in out and "detect unmarked" not in out
