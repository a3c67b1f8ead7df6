"""reenact.py end to end on synthetic people (people who do not exist), and its answers to bad input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from common.cli import run
from common.impl import load
from common.media import read_video
from common.synthetic import make_identity, render_clip, render_frame
from common.synthetic.face_render import neutral_pose
from consent_and_watermark import writer
from consent_and_watermark.consent import register_synthetic_identity
from consent_and_watermark.verify import verify

SIZE = 192  # faces about 90 px wide: large enough for dlib's HOG detector
STILL = 224  # the target picture: a different resolution than the driver



@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("reenact_inputs")
    driver_person, target_person = make_identity(21), make_identity(22)
    driver = render_clip(driver_person, frames=8, size=SIZE, seed=1)
    target = render_clip(target_person, frames=5, size=SIZE, seed=2, speech=False)
    still, _ = render_frame(target_person, neutral_pose(), np.zeros(6), STILL)  # another size than the driver
    people = (driver_person, target_person)
    consent = [register_synthetic_identity(p.subject_id, p.display_name) for p in people]
    return {
        "dir": folder,
        "driver": writer.save_video(folder / "driver.mp4", driver.frames, driver.fps, audio=driver.audio,
                                    sample_rate=driver.sample_rate, label=False),
        "image": writer.save_image(folder / "target.png", still, label=False),
        "short": writer.save_video(folder / "target.mp4", target.frames, target.fps, label=False),
        "blank": writer.save_image(folder / "blank.png", np.full((SIZE, SIZE, 3), 128, np.uint8),
                                   label=False),
        "consent": consent,
        "target_frame": still,
    }


def argv(inputs: dict, output, **over) -> list[str]:
    values = {"--source": inputs["driver"], "--target": inputs["image"], "--output": output, **over}
    out = [str(x) for kv in values.items() if kv[1] is not None for x in kv]
    for record in inputs["consent"]:
        out += ["--consent", record]
    return out + ["--device", "cpu"]


def cli(args: list[str]) -> int:
    from phase2_face_reenactment.reenact import main

    return run(main, args)


@pytest.mark.todo("p2.expr", "p2.video", "p1.smooth.one_euro")
def test_warp_reenactment_keeps_the_driver_audio_and_is_marked(inputs, tmp_path):
    out = tmp_path / "out.mp4"
    assert cli(argv(inputs, out) + ["--smooth"]) == 0
    video = read_video(out)
    assert video.frames.shape == (8, STILL, STILL, 3)  # the target's size, the driver's length
    assert video.audio is not None and abs(len(video.audio) / video.sample_rate - 8 / 25) < 0.06
    assert verify(out).marked
    # the background far from the face is the target picture, untouched apart from the codec
    corner = np.abs(video.frames[:, :24, -24:].astype(int) - inputs["target_frame"][:24, -24:].astype(int))
    assert corner.mean() < 6


@pytest.mark.todo("p2.expr", "p2.video")
def test_a_shorter_target_video_cuts_the_output_and_says_so(inputs, tmp_path, capsys):
    out = tmp_path / "short.mp4"
    assert cli(argv(inputs, out, **{"--target": inputs["short"]}) + ["--mode", "3d"]) == 0
    assert "shorter than the driver" in capsys.readouterr().out
    assert read_video(out).frames.shape[0] == 5


def test_bad_inputs_are_one_line_and_exit_2(inputs, tmp_path, capsys):
    out = tmp_path / "bad.mp4"
    cases = [
        argv(inputs, out)[:-2 * len(inputs["consent"]) - 2] + ["--device", "cpu"],  # no consent
        argv(inputs, out, **{"--source": inputs["image"]}),  # a still image cannot drive
        argv(inputs, out, **{"--target": inputs["dir"] / "missing.png"}),
        argv(inputs, out, **{"--target": inputs["blank"]}),  # no face in the target
        argv(inputs, out, **{"--method": "x2face"}),  # no checkpoint
        argv(inputs, out, **{"--amplify": "9"}),
    ]
    for case in cases:
        assert cli(case) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err and err[-1].startswith("error: ")
    assert not out.exists()


@pytest.mark.todo("p2.x2f")
def test_x2face_method_renders_at_the_target_size(inputs, tmp_path):
    import torch

    from common.impl import load
    from common.training import save_checkpoint

    x2face = load("phase2_face_reenactment", "x2face")
    cfg = x2face.X2FaceConfig(size=32, channels=(8, 16), driving_dim=16)
    torch.manual_seed(0)
    model = x2face.X2Face(cfg)
    ckpt = save_checkpoint(tmp_path / "x2f.pt", {"model": model.state_dict(), "extra": {
        "x2face": {"size": 32, "channels": [8, 16], "driving_dim": 16, "max_offset": 0.5}}})
    out = tmp_path / "x2f.mp4"
    assert cli(argv(inputs, out, **{"--method": "x2face", "--checkpoint": ckpt})) == 0
    video = read_video(out)
    assert video.frames.shape == (8, STILL, STILL, 3)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    junk = {"--method": "x2face", "--checkpoint": tmp_path / "junk.pt"}
    assert cli(argv(inputs, tmp_path / "j.mp4", **junk)) == 2
    assert not (tmp_path / "j.mp4").exists()


@pytest.mark.todo("p2.lmk", "p2.expr", "p2.video")
def test_cnn_landmarks_option_runs_with_a_checkpoint(inputs, tmp_path):
    import torch

    from common.impl import load
    from common.training import save_checkpoint

    lmk = load("phase2_face_reenactment", "landmark_detector")
    cfg = lmk.LandmarkConfig(input_size=32, channels=(4, 8, 8), context_layers=1)
    torch.manual_seed(0)
    settings = {"input_size": 32, "channels": [4, 8, 8], "context_layers": 1, "crop_scale": cfg.crop_scale,
                "sigma": cfg.sigma, "beta": cfg.beta, "heatmap_weight": cfg.heatmap_weight}
    ckpt = save_checkpoint(tmp_path / "lmk.pt", {"model": lmk.LandmarkNet(cfg).state_dict(),
                                                 "extra": {"landmarks": settings}})
    out = tmp_path / "cnn.mp4"
    args = argv(inputs, out, **{"--landmarks": "cnn", "--landmark-checkpoint": ckpt, "--max-frames": "3"})
    assert cli(args) == 0  # an untrained network gives poor landmarks, but the pipeline runs end to end
    assert read_video(out).frames.shape == (3, STILL, STILL, 3)


def test_tracking_between_detections_notices_frames_without_a_face():
    from phase2_face_reenactment.reenact import LandmarkTracker, track_clip

    frames = render_clip(make_identity(23), frames=10, size=SIZE, seed=3).frames.copy()
    frames[2:5] = 128  # a cut to a blank frame for three frames; detection runs on frames 0 and 5 only
    track = track_clip(frames, LandmarkTracker(detect_every=5), "the test clip")
    assert track.found.tolist() == [True, True, False, False, False] + [True] * 5


class _Spy:
    """Stands in for phase 1's face_detector module: records each detection, delegates the rest."""

    def __init__(self, tracker) -> None:
        self.real, self.tracker, self.calls = tracker.detector, tracker, []

    def detect_faces_hog(self, frame, downscale=1.0):
        self.calls.append((self.tracker._index, downscale))
        return self.real.detect_faces_hog(frame, downscale=downscale)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_the_tracker_detects_on_frames_0_k_2k_and_tracks_in_between():
    from phase2_face_reenactment.reenact import LandmarkTracker

    frame = render_clip(make_identity(23), frames=1, size=SIZE, seed=3).frames[0]
    tracker = LandmarkTracker(detect_every=3)
    spy = tracker.detector = _Spy(tracker)
    assert all(tracker(frame) is not None for _ in range(7))
    assert [index for index, _ in spy.calls] == [0, 3, 6]


def test_the_tracker_scales_the_short_side_to_detect_size():
    from phase2_face_reenactment.reenact import LandmarkTracker

    tracker = LandmarkTracker(detect_every=1, detect_size=360)
    spy = tracker.detector = _Spy(tracker)
    assert tracker(np.zeros((720, 1280, 3), np.uint8)) is None
    assert spy.calls == [(0, pytest.approx(0.5))]


def test_a_frame_without_a_face_equally_far_from_two_takes_the_earlier_ones_landmarks():
    from phase2_face_reenactment.reenact import track_clip

    def tracker(frame: int):  # frame i has landmarks all i, frames 1 and 4 have none
        return None if frame in (1, 4) else np.full((68, 2), float(frame))

    track = track_clip(range(6), tracker, "the test clip")
    assert track.landmarks[:, 0, 0].tolist() == [0, 0, 2, 3, 3, 5]  # ties go to the earlier frame


def test_check_args_accepts_amplify_zero_and_refuses_basis_with_3d(tmp_path):
    from common.errors import UserError
    from phase2_face_reenactment.reenact import build_parser, check_args

    for name in ("d.mp4", "t.png"):
        (tmp_path / name).write_bytes(b"x")
    base = ["--source", str(tmp_path / "d.mp4"), "--target", str(tmp_path / "t.png"),
            "--output", str(tmp_path / "o.mp4")]
    check_args(build_parser().parse_args(base + ["--amplify", "0"]))  # 0: the target's own neutral face
    with pytest.raises(UserError, match="--amplify must be between 0 and 5"):
        check_args(build_parser().parse_args(base + ["--amplify", "-0.1"]))
    with pytest.raises(UserError, match="--basis works with --mode 2d only"):
        check_args(build_parser().parse_args(base + ["--basis", "5", "--mode", "3d"]))


def test_a_driver_cut_to_one_frame_is_refused(inputs, tmp_path, one_error_line):
    out = tmp_path / "one.mp4"
    assert cli(argv(inputs, out, **{"--max-frames": 1})) == 2
    want = f"error: the driver {inputs['driver']} needs at least 2 frames (--max-frames 1 keeps 1)"
    assert one_error_line() == want
    assert not out.exists()


@pytest.mark.todo("p2.expr", "p2.video")
def test_the_driver_audio_is_cut_to_the_frames_written(inputs, tmp_path):
    out = tmp_path / "two.mp4"
    assert cli(argv(inputs, out, **{"--max-frames": 2})) == 0
    video = read_video(out)
    assert video.frames.shape[0] == 2
    seconds = len(video.audio) / video.sample_rate
    assert 2 / 25 <= seconds <= 2 / 25 + 2 * 1024 / video.sample_rate  # 0.08 s (of 0.32), plus AAC padding


@pytest.mark.todo("p2.expr")
def test_smooth_filters_the_drivers_track_at_the_clips_rate_with_the_one_euro_settings(monkeypatch):
    from phase2_face_reenactment import reenact

    video = load("phase2_face_reenactment", "video_generator")
    calls = []

    def record(track, fps, min_cutoff=1.0, beta=0.05):
        calls.append((fps, min_cutoff, beta))
        out = np.array(track, dtype=np.float64)
        out[:, 57:60, 1] += 4.0  # the lower lip drops: a change the transfer keeps
        return out

    monkeypatch.setattr(video, "smooth_track", record)
    driver = render_clip(make_identity(1), frames=3, size=96, speech=False).landmarks
    target = render_clip(make_identity(2), frames=3, size=96, speech=False).landmarks
    tracks = reenact.Track(driver, np.ones(3, bool)), reenact.Track(target, np.ones(3, bool))
    plain = reenact.transferred_landmarks(*tracks, (96, 96), (96, 96), 12.5, reenact.WarpSettings())
    assert not calls
    smoothed = reenact.transferred_landmarks(*tracks, (96, 96), (96, 96), 12.5,
                                             reenact.WarpSettings(smooth=True, min_cutoff=2.0, beta=0.3))
    assert calls == [(12.5, 2.0, 0.3)] and not np.allclose(plain, smoothed)


def test_render_x2face_animates_the_target_and_clips_to_the_target_size():
    import torch

    from phase2_face_reenactment.reenact import render_x2face

    class Doubling:  # "generated": the first input (the target, as X2Face renders it) times 2
        cfg = SimpleNamespace(size=16)

        def __call__(self, source, driving):
            return {"generated": 2 * source}

    driver = np.zeros((32, 32, 3), np.uint8)
    target = np.full((24, 40, 3), 200, np.uint8)  # 2 x 200 / 255 > 1: clipped to white
    (frame,) = render_x2face(Doubling(), [driver], [target], (40, 24), torch.device("cpu"))
    assert frame.shape == (24, 40, 3) and frame.dtype == np.uint8 and frame.min() >= 254


def test_load_x2face_refuses_a_checkpoint_without_x2face_settings(tmp_path):
    from common.errors import UserError
    from common.training import save_checkpoint
    from phase2_face_reenactment.reenact import load_x2face

    path = save_checkpoint(tmp_path / "lmk.pt", {"model": {}, "extra": {"landmarks": {"input_size": 32}}})
    with pytest.raises(UserError, match="is not an X2Face checkpoint"):
        load_x2face(path, "cpu")


@pytest.mark.todo("p2.x2f")
def test_x2face_method_keeps_a_wide_target_wide(inputs, tmp_path):
    import torch

    from common.training import save_checkpoint

    x2face = load("phase2_face_reenactment", "x2face")
    torch.manual_seed(0)
    model = x2face.X2Face(x2face.X2FaceConfig(size=32, channels=(8, 16), driving_dim=16))
    ckpt = save_checkpoint(tmp_path / "x2f.pt", {"model": model.state_dict(), "extra": {
        "x2face": {"size": 32, "channels": [8, 16], "driving_dim": 16, "max_offset": 0.5}}})
    wide = np.pad(inputs["target_frame"], ((0, 0), (32, 32), (0, 0)), mode="edge")  # 288 x 224
    target = writer.save_image(tmp_path / "wide.png", wide, label=False)
    out = tmp_path / "x2f.mp4"
    assert cli(argv(inputs, out, **{"--method": "x2face", "--checkpoint": ckpt, "--target": target})) == 0
    assert read_video(out).frames.shape == (8, STILL, STILL + 64, 3)


def test_render_warp_passes_no_mouth_on_and_stops_at_the_last_new_landmarks(monkeypatch):
    from phase2_face_reenactment.reenact import Track, render_warp

    video = load("phase2_face_reenactment", "video_generator")
    mouths = []

    def record(target_frame, target_lm, new_lm, source, source_lm, cfg):
        mouths.append(cfg.mouth)
        return target_frame

    monkeypatch.setattr(video, "render_frame", record)
    lm = np.zeros((2, 68, 2))
    track = Track(lm, np.ones(2, bool))
    frames = [np.zeros((8, 8, 3), np.uint8)] * 5  # more frames than landmarks: cut at the landmarks
    assert len(list(render_warp(iter(frames), iter(frames), track, track, lm, mouth=False))) == 2
    assert len(list(render_warp(iter(frames), iter(frames), track, track, lm))) == 2
    assert mouths == [False, False, True, True]


@pytest.mark.todo("p2.expr", "p2.video")
def test_a_target_video_that_decodes_fewer_frames_than_declared_and_loses_its_face_still_renders(
        inputs, tmp_path, monkeypatch, capsys):
    from phase2_face_reenactment import reenact

    clip = render_clip(make_identity(22), frames=5, size=SIZE, seed=2, speech=False)
    frames = clip.frames.copy()
    frames[2] = 128  # the person steps out of frame 2
    target = writer.save_video(tmp_path / "gap.mp4", frames, clip.fps, label=False)
    monkeypatch.setattr(reenact, "count_frames", lambda path, limit=None: limit or 8)  # a header claiming 8
    out = tmp_path / "out.mp4"
    assert cli(argv(inputs, out, **{"--target": target})) == 0
    assert "target frames without a face were left as they are" in capsys.readouterr().out
    assert read_video(out).frames.shape[0] == 5


def test_check_args_refuses_transfer_rotation_without_3d(tmp_path):
    from common.errors import UserError
    from phase2_face_reenactment.reenact import build_parser, check_args

    for name in ("d.mp4", "t.png"):
        (tmp_path / name).write_bytes(b"x")
    base = ["--source", str(tmp_path / "d.mp4"), "--target", str(tmp_path / "t.png"),
            "--output", str(tmp_path / "o.mp4"), "--transfer-rotation"]
    with pytest.raises(UserError, match="--transfer-rotation needs --mode 3d"):
        check_args(build_parser().parse_args(base))
    check_args(build_parser().parse_args(base + ["--mode", "3d"]))


@pytest.mark.todo("p2.expr")
def test_mode_3d_transfers_each_frame_through_the_3d_head_pose(monkeypatch):
    from phase2_face_reenactment import reenact

    expr = load("phase2_face_reenactment", "expression_transfer")
    calls = []

    def record(source, driver_size, *rest):
        calls.append(driver_size)
        return np.asarray(source, np.float64) + 1.0

    monkeypatch.setattr(expr, "transfer_expression_3d", record)
    driver = render_clip(make_identity(1), frames=3, size=96, speech=False).landmarks
    target = render_clip(make_identity(2), frames=3, size=96, speech=False).landmarks
    tracks = reenact.Track(driver, np.ones(3, bool)), reenact.Track(target, np.ones(3, bool))
    new = reenact.transferred_landmarks(*tracks, (96, 80), (96, 96), 25.0, reenact.WarpSettings(mode="3d"))
    assert calls == [(96, 80)] * 3
    np.testing.assert_allclose(new, driver + 1.0)


def test_a_target_video_whose_frames_do_not_decode_is_one_error_line(inputs, tmp_path, monkeypatch,
                                                                      one_error_line):
    from common import media

    real = media.iter_video
    target = inputs["short"]
    monkeypatch.setattr(media, "iter_video",
                        lambda path, **kw: iter(()) if path == target else real(path, **kw))
    out = tmp_path / "none.mp4"
    assert cli(argv(inputs, out, **{"--target": target})) == 2
    assert one_error_line() == f"error: the target video {target}: no frame can be decoded"
    assert not out.exists()


def test_the_warp_gets_the_drivers_width_and_height_in_that_order(inputs, tmp_path, monkeypatch):
    from phase2_face_reenactment import reenact

    clip = render_clip(make_identity(21), frames=3, size=SIZE, seed=1, speech=False)
    wide = np.pad(clip.frames, ((0, 0), (0, 0), (32, 32), (0, 0)), mode="edge")  # SIZE+64 wide
    driver = writer.save_video(tmp_path / "wide.mp4", wide, clip.fps, label=False)
    sizes = []

    def record(driver_track, target_track, driver_size, target_size, fps, settings):
        sizes.append((driver_size, target_size))
        raise ValueError("stop here")

    monkeypatch.setattr(reenact, "transferred_landmarks", record)
    assert cli(argv(inputs, tmp_path / "o.mp4", **{"--source": driver})) == 2
    assert sizes == [((SIZE + 64, SIZE), (STILL, STILL))]


def test_check_args_refuses_a_folder_input_a_cnn_without_checkpoint_and_detect_every_zero(tmp_path):
    from common.errors import UserError
    from phase2_face_reenactment.reenact import build_parser, check_args

    (tmp_path / "d.mp4").write_bytes(b"x")
    (tmp_path / "t.png").mkdir()  # a folder named like a picture
    base = ["--source", str(tmp_path / "d.mp4"), "--output", str(tmp_path / "o.mp4")]
    with pytest.raises(UserError, match="--target file not found"):
        check_args(build_parser().parse_args(base + ["--target", str(tmp_path / "t.png")]))
    (tmp_path / "t.jpg").write_bytes(b"x")
    base += ["--target", str(tmp_path / "t.jpg")]
    with pytest.raises(UserError, match="--landmarks cnn needs --landmark-checkpoint"):
        check_args(build_parser().parse_args(base + ["--landmarks", "cnn"]))
    with pytest.raises(UserError, match="--detect-every must be at least 1"):
        check_args(build_parser().parse_args(base + ["--detect-every", "0"]))
