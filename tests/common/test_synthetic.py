"""The synthetic data generator: determinism, shapes, ground truth that the real tools agree with.

Expected values come from closed forms, from librosa (LPC formant estimates), from dlib (detector and
68-point predictor) and from the 300-W markup conventions, never from the generator itself.
"""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest

from common import dlib_models
from common.synthetic import (
    EXPRESSION_FIELDS,
    SAMPLE_RATE,
    VISEMES,
    make_identity,
    neutral_pose,
    render_clip,
    render_frame,
    synthesize_speech,
)
from common.synthetic.animation import MotionConfig, blink_track
from common.synthetic.identity import SHAPE_SPREAD, Identity
from common.synthetic.speech import PHONEMES, Segment, Speech, loudness, mouth_track, synthesize


def inter_ocular(lm: np.ndarray) -> float:
    """Outer eye corner distance (landmarks 36 and 45), the NME normaliser of 300-W."""
    return float(np.linalg.norm(lm[36] - lm[45]))


@pytest.fixture(scope="module")
def clip():
    return render_clip(make_identity(3), frames=50, size=128, fps=25.0, seed=1)


def test_identity_is_a_function_of_its_seed():
    assert make_identity(5) == make_identity(5)
    assert make_identity(5) != make_identity(6)
    params = make_identity(5).to_dict()
    json.dumps(params)  # plain JSON data
    assert params["seed"] == 5


def test_clip_is_deterministic_and_well_formed(clip):
    again = render_clip(make_identity(3), frames=50, size=128, fps=25.0, seed=1)
    np.testing.assert_array_equal(clip.frames, again.frames)
    np.testing.assert_array_equal(clip.audio, again.audio)
    other = render_clip(make_identity(3), frames=50, size=128, fps=25.0, seed=2)
    assert not np.array_equal(clip.frames, other.frames)

    assert clip.frames.shape == (50, 128, 128, 3) and clip.frames.dtype == np.uint8
    assert clip.landmarks.shape == (50, 68, 2)
    assert clip.pose.shape == (50, 6) and clip.expression.shape == (50, len(EXPRESSION_FIELDS))
    assert clip.visemes.shape == (50,) and clip.visemes.dtype == np.int64
    assert clip.sample_rate == SAMPLE_RATE
    assert clip.audio.dtype == np.float32 and clip.audio.shape == (50 * SAMPLE_RATE // 25,)
    assert np.abs(clip.audio).max() <= 1.0
    assert (clip.landmarks >= 0).all() and (clip.landmarks < 128).all()


def test_renders_at_any_size():
    person = make_identity(0)
    small, lm_small = render_frame(person, neutral_pose(), np.zeros(6), size=64)
    large, lm_large = render_frame(person, neutral_pose(), np.zeros(6), size=320)
    assert small.shape == (64, 64, 3) and large.shape == (320, 320, 3)
    np.testing.assert_allclose(lm_large / 320, lm_small / 64, atol=1e-9)  # same face, scaled


def test_landmarks_follow_the_300w_markup():
    _, lm = render_frame(make_identity(11), neutral_pose(), np.zeros(6), size=256)
    x, y = lm[:, 0], lm[:, 1]
    assert x[0] < x[8] < x[16] and y[8] == y[0:17].max()  # jaw from the left ear round the chin
    assert np.all(np.diff(x[17:22]) > 0) and np.all(np.diff(x[22:27]) > 0)  # brows left to right
    assert np.all(np.diff(y[27:31]) > 0)  # nose bridge top to tip
    assert x[36] < x[39] < x[42] < x[45]  # outer, inner, inner, outer eye corners
    assert y[37] < y[41] and y[44] < y[46]  # upper lids above lower lids
    assert y[17:27].max() < y[36:48].min() < y[31:36].min() < y[48:68].min()  # brows, eyes, nose, mouth
    assert x[48] < x[51] < x[54] and y[51] < y[62] <= y[66] < y[57]  # lips: outer, inner, inner, outer


def test_mouth_opening_follows_the_visemes(clip):
    opening = clip.expression[:, EXPRESSION_FIELDS.index("mouth_open")]
    lip_gap = clip.landmarks[:, 66, 1] - clip.landmarks[:, 62, 1]
    assert np.corrcoef(opening, lip_gap)[0, 1] > 0.99  # the drawn lips are the track
    long = render_clip(make_identity(4), frames=200, size=64, seed=0)
    opening = long.expression[:, EXPRESSION_FIELDS.index("mouth_open")]
    is_open = long.visemes == VISEMES.index("open")
    is_closed = long.visemes == VISEMES.index("closed")
    assert is_open.sum() >= 5 and is_closed.sum() >= 3
    assert opening[is_open].mean() > 3 * opening[is_closed].mean()
    assert opening[is_open].mean() > 0.1  # face units: visibly open


def test_blinks_close_the_eyes():
    person = make_identity(2)
    blink = np.zeros(6)
    blink[EXPRESSION_FIELDS.index("blink")] = 1.0
    _, open_eyes = render_frame(person, neutral_pose(), np.zeros(6))
    _, closed = render_frame(person, neutral_pose(), blink)
    gap_open = open_eyes[41, 1] - open_eyes[37, 1]
    gap_closed = closed[41, 1] - closed[37, 1]
    assert gap_open > 0.05 * inter_ocular(open_eyes) and abs(gap_closed) < 0.25 * gap_open


def test_speech_timeline_and_samples_agree():
    speech = synthesize_speech(3.0, seed=5, pitch_hz=120.0)
    assert speech.sample_rate == SAMPLE_RATE == 16_000
    assert speech.samples.shape == (3 * 16_000,) and speech.samples.dtype == np.float32
    starts = np.array([s.start for s in speech.segments])
    ends = np.array([s.end for s in speech.segments])
    assert starts[0] == 0.0 and ends[-1] == pytest.approx(3.0)
    np.testing.assert_allclose(starts[1:], ends[:-1])  # contiguous, no gaps

    def rms(seg) -> float:
        a, b = int(seg.start * 16_000) + 160, int(seg.end * 16_000) - 160
        return float(np.sqrt(np.mean(speech.samples[a:b] ** 2))) if b > a else np.nan

    vowels = [rms(s) for s in speech.segments if PHONEMES[s.phoneme].kind == "vowel"]
    silences = [rms(s) for s in speech.segments if s.phoneme == "sil"]
    assert np.nanmin(vowels) > 10 * np.nanmax(silences)  # sound exactly where the timeline says


@pytest.mark.parametrize("vowel", ["AA", "AE", "EH", "IY", "UW", "OW"])
def test_vowel_formants_match_the_table(vowel):
    """librosa's LPC finds F1 and F2 of each synthetic vowel (the textbook recipe: pre-emphasis,
    order 2 + fs/1000, keep resonances narrower than 400 Hz)."""
    from common.synthetic.speech import Segment, synthesize

    samples = synthesize([Segment(vowel, 0.0, 0.4)], 110.0, np.random.default_rng(0))
    x = samples[1600:4800].astype(np.float64)
    x = np.append(x[0], x[1:] - 0.97 * x[:-1]) * np.hamming(len(x))
    roots = np.roots(librosa.lpc(x, order=18))
    roots = roots[np.imag(roots) > 0]
    freqs = np.angle(roots) * 16_000 / (2 * np.pi)
    bandwidths = -np.log(np.abs(roots)) * 16_000 / np.pi
    formants = np.sort(freqs[(bandwidths < 400) & (freqs > 90)])
    f1, f2, _ = PHONEMES[vowel].formants
    assert formants[0] == pytest.approx(f1, rel=0.1) and formants[1] == pytest.approx(f2, rel=0.1)


def test_fricative_s_is_hiss():
    from common.synthetic.speech import Segment, synthesize

    samples = synthesize([Segment("S", 0.0, 0.2), Segment("AA", 0.2, 0.4)], 110.0, np.random.default_rng(0))
    centroid = librosa.feature.spectral_centroid(y=samples, sr=16_000, n_fft=512, hop_length=256)[0]
    assert centroid[2:8].mean() > 3500 > 2 * centroid[16:22].mean()


def test_dlib_finds_the_face_and_agrees_with_the_ground_truth():
    """The real tools: dlib's HOG detector finds each face and its 68 points sit near ours."""
    errors = []
    for seed in (21, 22):
        c = render_clip(make_identity(seed), frames=30, size=256, seed=0, speech=True)
        for i in (0, 14, 29):
            boxes = dlib_models.detect_faces(c.frames[i])
            assert boxes, f"no face found in identity {seed} frame {i}"
            predicted = dlib_models.landmarks68(c.frames[i], boxes[0])
            errors.append(
                np.linalg.norm(predicted - c.landmarks[i], axis=1).mean() / inter_ocular(c.landmarks[i])
            )
    assert np.mean(errors) < 0.08, errors


def test_export_writes_marked_media_and_plain_ground_truth(tmp_path):
    from common.media import read_video
    from common.synthetic.dataset import ExportConfig, export_identity, load_ground_truth
    from consent_and_watermark.consent import Ledger
    from consent_and_watermark.verify import verify

    person = make_identity(9)
    folder = export_identity(tmp_path, person, ExportConfig(frames=12, size=128, formats=("mp4", "frames")))
    assert folder.name == person.subject_id
    truth = load_ground_truth(folder)
    assert truth["landmarks"].shape == (12, 68, 2) and truth["pose"].shape == (12, 6)
    assert truth["visemes"].shape == (12,) and float(truth["fps"]) == 25.0 and int(truth["size"]) == 128
    assert list(truth["viseme_names"]) == list(VISEMES)

    info = json.loads((folder / "identity.json").read_text())
    assert info["synthetic"] is True and info["seed"] == 9
    record = Ledger().get(info["consent_record"])
    assert record is not None and record.synthetic and record.subject_id == person.subject_id

    video = read_video(folder / "video.mp4")
    assert video.frames.shape == (12, 128, 128, 3) and video.fps == pytest.approx(25.0)
    assert video.audio is not None and video.sample_rate is not None
    assert sorted(p.name for p in (folder / "frames").iterdir()) == [f"{i:05d}.png" for i in range(12)]
    for path in (folder / "video.mp4", folder / "speech.wav", folder / "frames" / "00000.png"):
        assert verify(path).marked, path
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*"))


def test_a_rerun_into_the_same_folder_replaces_the_earlier_dataset_whole(tmp_path):
    from common.synthetic.dataset import ExportConfig, export_dataset, load_ground_truth

    first = export_dataset(tmp_path, 2, seed=40, config=ExportConfig(frames=5, size=128, formats=("frames",)))
    (tmp_path / "notes.txt").write_text("the user's own file")
    again = export_dataset(tmp_path, 1, seed=40, config=ExportConfig(frames=3, size=160, formats=("frames",),
                                                                         speech=False))
    assert [f.name for f in again] == [first[0].name] and not first[1].exists()  # the second person: gone
    folder = again[0]
    assert sorted(p.name for p in (folder / "frames").iterdir()) == [f"{i:05d}.png" for i in range(3)]
    assert not (folder / "speech.wav").exists()  # the earlier run's audio does not linger
    assert int(load_ground_truth(folder)["size"]) == 160
    assert (tmp_path / "notes.txt").read_text() == "the user's own file"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_person_whose_record_was_revoked_is_not_rendered_again(tmp_path, fresh_data_dir):
    """Revoked in this test's own ledger (`fresh_data_dir`): the session's, which other tests render
    people with, keeps its records."""
    from common.errors import UserError
    from common.synthetic.dataset import ExportConfig, export_identity
    from consent_and_watermark.consent import Ledger, register_synthetic_identity

    person = make_identity(48)
    Ledger().revoke(register_synthetic_identity(person.subject_id, person.display_name), "not this one")
    out = tmp_path / "dataset"
    out.mkdir()
    with pytest.raises(UserError, match="was revoked"):
        export_identity(out, person, ExportConfig(frames=2, size=128, formats=("frames",)))
    assert not list(out.iterdir())


def test_cli_refuses_bad_input_with_one_line(tmp_path, capsys):
    from common.cli import run
    from common.synthetic.__main__ import main

    assert run(main, ["--output", str(tmp_path / "d"), "--formats", "gif"]) == 2
    assert run(main, ["--output", str(tmp_path / "d"), "--identities", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "d").exists()


def test_cli_writes_a_dataset(tmp_path):
    from common.synthetic.__main__ import main

    argv = ["--output", str(tmp_path), "--identities", "2", "--frames", "4", "--size", "96", "--seed", "40"]
    assert main(argv) == 0
    index = json.loads((tmp_path / "dataset.json").read_text())
    assert index["synthetic"] is True and index["identities"] == ["synthetic-000040", "synthetic-000041"]
    for name in index["identities"]:
        assert {p.name for p in (tmp_path / name).iterdir()} == {
            "video.mp4",
            "speech.wav",
            "ground_truth.npz",
            "identity.json",
        }


def test_synthetic_polygons_are_drawn_on_pixel_centres():
    """Landmark (x, y) is the centre of pixel (x, y): a square with corners on pixel centres 10 and 20 is
    centred on pixel 15, so the ground truth sits on the drawn face, not half a pixel beside it."""
    from common.synthetic.face_render import _fill

    img = np.zeros((32, 32, 3), np.float32)
    _fill(img, np.array([[10.0, 10], [20, 10], [20, 20], [10, 20]]), (1.0, 1.0, 1.0))
    mass = img[..., 0]
    ys, xs = np.mgrid[:32, :32]
    assert (mass * ys).sum() / mass.sum() == pytest.approx(15.0, abs=0.05)
    assert (mass * xs).sum() / mass.sum() == pytest.approx(15.0, abs=0.05)


def _speech(segments: list[tuple[str, float, float]], samples: np.ndarray | None = None) -> Speech:
    """A Speech with a hand-made timeline (and steady loud samples unless given)."""
    segs = [Segment(p, a, b) for p, a, b in segments]
    n = int(round(segs[-1].end * SAMPLE_RATE))
    return Speech(np.full(n, 0.5, np.float32) if samples is None else samples, SAMPLE_RATE, segs)


def test_a_phoneme_starts_exactly_at_its_start_time():
    speech = _speech([("sil", 0.0, 0.1), ("AA", 0.1, 0.2)])
    assert speech.phoneme_at(np.array([0.0, 0.1, 0.15])) == ["sil", "AA", "AA"]


def test_mouth_track_frame_k_shows_the_viseme_at_time_k_over_fps():
    speech = _speech([("sil", 0.0, 0.5), ("UW", 0.5, 1.0)])
    mouth, visemes = mouth_track(speech, fps=10.0, n_frames=10)
    assert visemes.tolist() == [VISEMES.index("rest")] * 5 + [VISEMES.index("round")] * 5
    assert mouth[4, 2] == pytest.approx(0.0) and mouth[6, 2] == pytest.approx(0.9)


def test_the_lips_reach_a_new_viseme_within_30_ms():
    """Targets are smoothed over 60 ms, centred: 50 ms into a rounded vowel the lips are fully round."""
    speech = _speech([("sil", 0.0, 0.5), ("UW", 0.5, 1.0)])
    mouth, _ = mouth_track(speech, fps=100.0, n_frames=100)
    rounding = mouth[:, 2]
    assert rounding[45] == pytest.approx(0.0, abs=1e-9) and rounding[55] == pytest.approx(0.9, abs=1e-9)
    assert 0.0 < rounding[50] < 0.9


def test_mouth_opening_is_55_percent_of_the_viseme_in_silence_and_all_of_it_when_loud():
    loud = _speech([("AA", 0.0, 1.0)])
    quiet = _speech([("AA", 0.0, 1.0)], np.zeros(SAMPLE_RATE, np.float32))
    assert mouth_track(loud, 25.0, 25)[0][12, 0] == pytest.approx(0.30, abs=1e-6)
    assert mouth_track(quiet, 25.0, 25)[0][12, 0] == pytest.approx(0.55 * 0.30, abs=1e-6)


def test_loudness_is_read_at_the_given_time():
    samples = np.zeros(SAMPLE_RATE, np.float32)
    samples[SAMPLE_RATE // 2 :] = 0.5
    speech = _speech([("sil", 0.0, 1.0)], samples)
    quiet, loud = loudness(speech, np.array([0.25, 0.75]))
    assert quiet == pytest.approx(0.0, abs=1e-3) and loud == pytest.approx(1.0, abs=1e-3)


def test_a_stop_bursts_at_its_release_not_at_its_closure():
    samples = synthesize([Segment("sil", 0.0, 0.2), Segment("P", 0.2, 0.3), Segment("AA", 0.3, 0.5)],
                         110.0, np.random.default_rng(0))

    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(samples[int(a * 16_000) : int(b * 16_000)] ** 2)))

    assert rms(0.283, 0.293) > 10 * rms(0.205, 0.215)  # burst in the last 15 ms, silent closure before


def test_identity_shape_stays_within_two_spreads_of_the_average():
    average = Identity(seed=0)
    for seed in range(100):
        person = make_identity(seed)
        for name, spread in SHAPE_SPREAD.items():
            assert abs(getattr(person, name) - getattr(average, name)) <= 2 * spread + 1e-12, (seed, name)


def test_identity_light_is_a_unit_vector():
    for seed in range(5):
        assert np.linalg.norm(make_identity(seed).light) == pytest.approx(1.0)


def test_a_blink_closes_the_eyes_faster_than_it_opens_them():
    """Closing takes 0.7, opening 1.3 half-blinks (at 1000 fps: about 77 and 143 frames)."""
    closure = blink_track(np.random.default_rng(0), 6000, 1000.0, MotionConfig())
    peak = int(np.argmax(closure))
    start = peak - int(np.argmax(closure[peak::-1] == 0))
    end = peak + int(np.argmax(closure[peak:] == 0))
    half = MotionConfig().blink_duration_s / 2 * 1000
    assert peak - start == pytest.approx(0.7 * half, abs=2) and end - peak == pytest.approx(1.3 * half, abs=2)


def test_a_clip_at_another_frame_rate_speaks_for_frames_over_fps_seconds():
    clip = render_clip(make_identity(3), frames=5, size=64, fps=10.0, seed=0)
    assert len(clip.audio) / clip.sample_rate == pytest.approx(0.5, abs=1 / SAMPLE_RATE)
    assert clip.fps == 10.0


def test_a_silent_clip_has_no_audio_nor_sample_rate():
    clip = render_clip(make_identity(3), frames=2, size=64, speech=False)
    assert clip.audio is None and clip.sample_rate is None and clip.speech is None


def test_each_clip_seed_has_its_own_motion_and_speech_and_the_noise_changes_every_frame():
    one, two = (render_clip(make_identity(3), frames=3, size=64, seed=seed) for seed in (1, 2))
    assert not np.array_equal(one.pose, two.pose) and not np.array_equal(one.audio, two.audio)
    corner = one.frames[:, :6, :6].astype(int)  # background: only the sensor noise moves there
    assert not np.array_equal(corner[0], corner[1]) and not np.array_equal(corner[1], corner[2])


def test_export_refuses_a_folder_of_the_same_name_that_it_did_not_write(tmp_path):
    from common.errors import UserError
    from common.synthetic.dataset import ExportConfig, export_identity

    person = make_identity(12)
    (tmp_path / person.subject_id).mkdir()
    (tmp_path / person.subject_id / "mine.txt").write_text("the user's own file")
    with pytest.raises(UserError, match="is not an identity folder this tool wrote"):
        export_identity(tmp_path, person, ExportConfig(frames=1, size=64, formats=("frames",), speech=False))
    assert [p.name for p in (tmp_path / person.subject_id).iterdir()] == ["mine.txt"]


def test_a_silent_export_records_its_frame_rate_and_an_empty_phoneme_timeline(tmp_path):
    from common.synthetic.dataset import ExportConfig, export_identity, load_ground_truth

    folder = export_identity(tmp_path, make_identity(13),
                             ExportConfig(frames=2, size=64, fps=10.0, formats=("frames",), speech=False))
    truth = load_ground_truth(folder)
    assert float(truth["fps"]) == 10.0 and int(truth["sample_rate"]) == 0
    assert truth["phonemes"].shape == (0,) and truth["phoneme_times"].shape == (0, 2)
    assert json.loads((folder / "identity.json").read_text())["fps"] == 10.0


def test_a_rerun_removes_only_identity_folders_inside_the_output(tmp_path):
    """An earlier dataset.json's names are not trusted: a folder this tool did not write stays, and so
    does anything a name with a slash would reach outside --output."""
    from common.synthetic.dataset import ExportConfig, export_dataset

    out = tmp_path / "data"
    (out / "keep-me").mkdir(parents=True)
    (out / "keep-me" / "notes.txt").write_text("the user's own file")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "identity.json").write_text('{"synthetic": true}')
    (out / "dataset.json").write_text(json.dumps({"identities": ["keep-me", "../outside"]}))
    export_dataset(out, 1, seed=14, config=ExportConfig(frames=1, size=64, formats=("frames",), speech=False))
    assert (out / "keep-me" / "notes.txt").is_file() and (tmp_path / "outside" / "identity.json").is_file()


def test_cli_hands_its_flags_to_the_export_and_accepts_the_edges_of_its_ranges(tmp_path, monkeypatch):
    from common.synthetic import __main__ as cli
    from common.synthetic.dataset import ExportConfig

    seen = {}
    monkeypatch.setattr(cli, "export_dataset", lambda out, identities, seed, config, on_done: seen.update(
        out=out, identities=identities, seed=seed, config=config))
    argv = ["--output", str(tmp_path), "--identities", "1", "--frames", "1", "--size", "64", "--fps", "120",
            "--seed", "0", "--formats", " frames, mp4", "--silent"]
    assert cli.main(argv) == 0
    assert seen == {"out": str(tmp_path), "identities": 1, "seed": 0,
                    "config": ExportConfig(1, 64, 120.0, ("frames", "mp4"), speech=False)}
    assert cli.main([*argv[:-1], "--size", "2048", "--fps", "1"]) == 0
    assert seen["config"] == ExportConfig(1, 2048, 1.0, ("frames", "mp4"), speech=True)


@pytest.mark.parametrize("flags", [["--seed", "-1"], ["--frames", "0"], ["--formats", ","], ["--size", "63"],
                                   ["--size", "2049"], ["--fps", "0.5"], ["--fps", "121"]])
def test_cli_refuses_each_flag_out_of_range_in_one_line(tmp_path, one_error_line, flags):
    from common.cli import run
    from common.synthetic.__main__ import main

    assert run(main, ["--output", str(tmp_path / "d"), *flags]) == 2
    assert flags[0] in one_error_line()
    assert not (tmp_path / "d").exists()


def test_head_rotation_is_a_proper_rotation_for_any_angles():
    from common.synthetic.face_render import rotation

    for angles in [(12.0, 0.0, 0.0), (0.0, -6.0, 0.0), (12.0, -6.0, 7.0)]:
        r = rotation(*angles)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


def test_the_head_turns_about_its_centre_which_projects_below_the_eye_line():
    from common.synthetic.face_render import BASE_SCALE, EYE_LINE, HEAD_CENTRE, project

    size = 100
    unit = BASE_SCALE * size  # 26 px per face unit at scale 1
    neutral = project(np.zeros((1, 3)), neutral_pose(), size)[0]  # the face-unit origin
    assert neutral == pytest.approx((size / 2, EYE_LINE * size))
    turned = np.array([10.0, 5.0, -8.0, 0.0, 0.0, 1.0])
    centre = project(HEAD_CENTRE[None], turned, size)[0]  # the pivot does not move when the head turns
    expected = (size / 2 + unit * HEAD_CENTRE[0], EYE_LINE * size + unit * HEAD_CENTRE[1])
    assert centre == pytest.approx(expected, abs=1e-9)


def test_pose_tx_and_ty_move_the_face_by_those_fractions_of_the_image_size():
    from common.synthetic.face_render import project

    points = np.array([[0.0, 0.0, 0.0], [0.5, 1.0, 0.2]])
    moved = neutral_pose()
    moved[3:5] = (0.1, -0.05)  # tx, ty
    shift = project(points, moved, 200) - project(points, neutral_pose(), 200)
    np.testing.assert_allclose(shift, [[20.0, -10.0], [20.0, -10.0]], atol=1e-9)


def test_a_smooth_track_stays_within_its_amplitude():
    from common.synthetic.animation import smooth_track

    for seed in range(5):
        track = smooth_track(np.random.default_rng(seed), 2000, 25.0, 2.0)
        assert np.abs(track).max() <= 2.0


def test_a_smooth_track_follows_time_not_the_frame_rate():
    """The same frequencies and phases at 10 and at 20 fps: every other 20-fps frame is a 10-fps one."""
    from common.synthetic.animation import smooth_track

    slow = smooth_track(np.random.default_rng(3), 10, 10.0, 1.0)
    fast = smooth_track(np.random.default_rng(3), 20, 20.0, 1.0)
    np.testing.assert_allclose(fast[::2], slow, atol=1e-12)


def test_without_speech_the_mouth_opening_never_goes_below_closed():
    from common.synthetic.animation import make_tracks

    for seed in range(3):
        opening = make_tracks(1000, 25.0, seed).expression[:, EXPRESSION_FIELDS.index("mouth_open")]
        assert opening.min() == 0.0 and opening.max() > 0.0  # closed for a while, open for a while


def test_paint_inside_keeps_only_what_the_painter_draws_inside_the_outline():
    """Irises stay inside the lids, teeth inside the lips: a painter that paints everything white whitens
    the square only."""
    from common.synthetic.face_render import _paint_inside

    img = np.zeros((40, 40, 3), np.uint8)
    square = np.array([[10.0, 10], [30, 10], [30, 30], [10, 30]])
    _paint_inside(img, square, lambda roi, offset: roi.fill(255))
    assert (img[12:29, 12:29] == 255).all()
    assert not img[:9].any() and not img[32:].any() and not img[:, :9].any() and not img[:, 32:].any()


def test_a_face_at_half_scale_is_drawn_like_the_same_face_in_an_image_half_the_size():
    """Every feature (lids, irises, brows, lines, shadows) is sized in face units, so the pose's scale
    shrinks all of it: at scale 0.5 in a 128 px image (ty moving the eyes 32 px down) the face matches the
    one at scale 1 in a 64 px image, 32 px to the right and down, up to the sensor noise (sigma 2 per
    image: about 2.3 grey levels of mean difference)."""
    person = make_identity(1)
    small, landmarks = render_frame(person, neutral_pose(), np.zeros(6), size=64)
    big, moved = render_frame(person, np.array([0.0, 0.0, 0.0, 0.0, 0.04, 0.5]), np.zeros(6), size=128)
    np.testing.assert_allclose(moved, landmarks + 32, atol=1e-9)
    x0, y0 = np.floor(landmarks.min(axis=0)).astype(int)
    x1, y1 = np.ceil(landmarks.max(axis=0)).astype(int)
    diff = np.abs(small[y0:y1, x0:x1].astype(float) - big[y0 + 32 : y1 + 32, x0 + 32 : x1 + 32])
    assert diff.mean() < 4.0


def test_a_mouth_open_by_5_percent_of_a_face_unit_shows_its_upper_teeth():
    """The opening and the teeth are drawn once the lips part by more than 1 % of a face unit."""
    from common.synthetic.face_render import BASE_SCALE, _draw_mouth

    expression = np.zeros(6)
    expression[EXPRESSION_FIELDS.index("mouth_open")] = 0.05
    _, lm = render_frame(make_identity(1), neutral_pose(), expression, size=256)
    unit = BASE_SCALE * 256
    assert lm[66, 1] - lm[62, 1] == pytest.approx(0.05 * unit)
    img = np.zeros((256, 256, 3), np.uint8)
    _draw_mouth(img, lm, np.array([200.0, 0.0, 0.0]), unit)  # pure red lips: no green in them
    assert img[..., 1].max() > 150  # the teeth (225, 220, 205)


def test_the_head_stays_frontal_enough_for_dlib_turning_at_most_15_degrees():
    from common.synthetic.animation import make_tracks

    for seed in range(3):
        yaw, pitch, roll = np.abs(make_tracks(2000, 25.0, seed).pose[:, :3]).max(axis=0)
        assert yaw <= 15.0 and pitch <= 15.0 and roll <= 15.0, seed
