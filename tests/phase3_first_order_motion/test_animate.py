"""animate.py end to end on a synthetic person with a tiny random-weight checkpoint, and its bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.cli import run
from common.impl import load
from common.synthetic.clip import render_clip
from common.synthetic.identity import make_identity
from phase3_first_order_motion import animate

PHASE = "phase3_first_order_motion"


@pytest.fixture(scope="module")
def person():
    identity = make_identity(3)
    clip = render_clip(identity, 5, size=64, seed=1)
    return identity, clip


@pytest.fixture()
def files(tmp_path, person):
    from consent_and_watermark.consent import register_synthetic_identity
    from consent_and_watermark.writer import save_image, save_video

    identity, clip = person
    model = load(PHASE, "model")
    cfg = model.get_config("tiny")
    torch.manual_seed(0)
    m = model.build_fomm(cfg)
    ckpt = model.save_checkpoint(tmp_path / "tiny.pt", {n: m[n] for n in model.MODULES}, cfg)
    source = save_image(tmp_path / "source.png", clip.frames[0], label=False)
    driving = save_video(tmp_path / "driving.mp4", clip.frames, clip.fps, audio=clip.audio,
                         sample_rate=clip.sample_rate, label=False)
    consent = register_synthetic_identity(identity.subject_id, identity.display_name)
    return {"source": source, "driving": driving, "checkpoint": ckpt, "consent": consent, "dir": tmp_path}


def argv(files, **over) -> list[str]:
    args = {"source": files["source"], "driving": files["driving"], "checkpoint": files["checkpoint"],
            "output": files["dir"] / "out.mp4", "consent": files["consent"], **over}
    out = []
    for key, value in args.items():
        if value is not None:
            out += [f"--{key}", str(value)]
    return out + ["--device", "cpu", "--batch-size", "2", "--same-person"]  # one person animates themself


@pytest.mark.todo("p3")
def test_animate_writes_a_marked_video_with_the_driving_audio(files, person):
    from common.media import read_video

    assert run(animate.main, argv(files) + ["--adapt-scale"]) == 0
    video = read_video(files["dir"] / "out.mp4")
    assert video.frames.shape == (5, 64, 64, 3)
    assert video.audio is not None and video.sample_rate


@pytest.mark.todo("p3")
def test_a_train_py_run_folder_stands_for_its_newest_checkpoint(files):
    import shutil

    run_dir = files["dir"] / "runs" / "fomm"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(files["checkpoint"], run_dir / "checkpoints" / "step_00000002.pt")
    assert run(animate.main, argv(files, checkpoint=run_dir)) == 0
    assert (files["dir"] / "out.mp4").is_file()


@pytest.mark.todo("p3")
def test_batched_rendering_equals_one_frame_per_call(person):
    model = load(PHASE, "model")
    torch.manual_seed(1)
    animator = animate.Animator(model.build_fomm(model.get_config("tiny")), torch.device("cpu"))
    frames = person[1].frames[:3]
    batched = np.stack(list(animate.animate(animator, frames[0], frames, batch_size=3)))
    single = np.stack(list(animate.animate(animator, frames[0], frames, batch_size=1)))
    np.testing.assert_allclose(batched.astype(int), single.astype(int), rtol=0, atol=1)


@pytest.mark.slow  # torch.compile builds C++ kernels on a CPU: about a minute
@pytest.mark.todo("p3")
def test_compiled_rendering_pads_the_short_last_batch_and_matches_eager(person):
    model = load(PHASE, "model")
    torch.manual_seed(1)
    models = model.build_fomm(model.get_config("tiny"))
    frames = person[1].frames[:5]
    eager = np.stack(list(animate.animate(animate.Animator(models, torch.device("cpu")), frames[0], frames,
                                          batch_size=2)))
    compiled = animate.Animator(models, torch.device("cpu"), compile=True)
    out = np.stack(list(animate.animate(compiled, frames[0], frames, batch_size=2)))
    assert out.shape == eager.shape  # 2 + 2 + 1 frames: the last batch was padded to 2 and cut back
    assert compiled.batch == 2
    np.testing.assert_allclose(out.astype(int), eager.astype(int), rtol=0, atol=1)


def test_default_batch_is_small_on_a_cpu_and_larger_on_accelerators():
    assert animate.default_batch_size(torch.device("cpu")) == 2  # 256 px feature maps stay in the caches
    assert animate.default_batch_size(torch.device("cuda")) == 8


def test_bad_inputs_are_one_line_exit_2(files, person, capsys):
    from consent_and_watermark.writer import save_video

    folder = files["dir"]
    one = save_video(folder / "one.mp4", person[1].frames[:1], 25.0, label=False)
    (folder / "junk.pt").write_bytes(b"junk")
    cases = [
        (argv(files, driving=one), f"--driving {one} has only 1 frame; at least 2 are needed"),
        (argv(files, checkpoint=folder / "junk.pt"),
         f"checkpoint {folder / 'junk.pt'} is corrupt, truncated or not a PyTorch checkpoint"),
        (argv(files, consent=None), "no consent record given: pass --consent ID"),
        (argv(files, source=folder / "missing.png"), f"--source {folder / 'missing.png'} does not exist"),
        (argv(files) + ["--batch-size", "0"], "--batch-size must be at least 1"),
    ]
    for case, message in cases:
        assert run(animate.main, case) == 2
        err = capsys.readouterr().err.strip().splitlines()  # a warning may come first (the source's face)
        errors = [line for line in err if line.startswith("error: ")]
        assert len(errors) == 1 and err[-1] == errors[0] and message in errors[0], (message, err)
    assert not (folder / "out.mp4").exists()


@pytest.mark.parametrize("problem", ["expired", "revoked", "technique"])
def test_an_unusable_consent_record_is_refused_in_one_line_and_nothing_is_written(files, unusable_consent,
                                                                                  one_error_line, problem):
    """A record that expired, was revoked or does not cover "animate" stops the run before any work: no
    output, nothing staged, no provenance row (this test's own ledger and log)."""
    from consent_and_watermark.provenance import ProvenanceLog

    bad, words = unusable_consent(problem, "animate")
    logged = ProvenanceLog().rows(limit=1000)
    assert run(animate.main, argv(files, consent=bad)) == 2  # --same-person: one record for both roles
    line = one_error_line()
    assert f"consent record {bad} " in line and words in line, line
    assert not (files["dir"] / "out.mp4").exists() and not list(files["dir"].glob(".*out*"))
    assert ProvenanceLog().rows(limit=1000) == logged


@pytest.mark.todo("p3")
def test_find_best_frame_sees_faces_that_a_small_model_would_shrink_away(files, capsys):
    from consent_and_watermark.writer import save_image, save_video

    clip = render_clip(make_identity(3), 24, size=256, seed=2)  # faces dlib finds at 256 px, not at 64
    frames = clip.frames[[0, 23]]  # two moments far apart: the second is the source's pose
    source = save_image(files["dir"] / "big_source.png", frames[1], label=False)
    driving = save_video(files["dir"] / "big_driving.mp4", frames, clip.fps, label=False)
    assert run(animate.main, argv(files, source=source, driving=driving) + ["--find-best-frame"]) == 0
    err = capsys.readouterr().err
    assert "no face in the source" not in err
    assert "best driving frame: 1" in err


def test_find_best_frame_picks_the_closest_normalised_landmarks(monkeypatch):
    """Frames are stand-ins: each 'frame' is its own landmark set; the closest pose after centring and
    scaling by sqrt(hull area) wins, so a shifted and enlarged copy of the source pose beats the others."""
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(0)
    pose = rng.random((68, 2)) * 100

    def fake_landmarks(points):
        if points is None:
            return None
        p = points - points.mean(axis=0)
        return p / np.sqrt(ConvexHull(p).volume)

    monkeypatch.setattr(animate, "normalized_landmarks", fake_landmarks)
    frames = [rng.random((68, 2)) * 100, None, pose * 2.5 + 40, rng.random((68, 2)) * 100]
    assert animate.find_best_frame(pose, frames) == 2


def _written(monkeypatch) -> dict:
    """Stand in for the writer's save_video: keep the frames (drawn from the stream) and its arguments."""
    from consent_and_watermark import writer

    seen: dict = {}

    def save_video(path, frames, fps, **kwargs):
        seen.update(kwargs, frames=np.stack(list(frames)), fps=fps)
        return path

    monkeypatch.setattr(writer, "save_video", save_video)
    return seen


@pytest.mark.todo("p3")
@pytest.mark.parametrize("mode", ["relative", "absolute", "best-frame", "max-frames"])
def test_streaming_the_driving_video_renders_what_the_whole_array_renders(files, person, monkeypatch, mode):
    """animate.py reads the driving video as a stream (never whole); its frames must be bit-identical to
    rendering the decoded array at once, with the same batches (7 frames of 80x96, batches of 2 and a
    short last one, resized to the model's 64 px), from frame 0 or from the best frame."""
    import cv2

    from common.media import read_image, read_video
    from consent_and_watermark.writer import save_video

    clip = render_clip(person[0], 7, size=96, seed=4)
    stretched = np.stack([cv2.resize(f, (96, 80), interpolation=cv2.INTER_AREA) for f in clip.frames])
    driving = save_video(files["dir"] / "driving96.mp4", stretched, clip.fps, audio=clip.audio,
                         sample_rate=clip.sample_rate, label=False)
    extra, start, count = [], 0, 7
    if mode == "absolute":
        extra = ["--absolute"]
    elif mode == "best-frame":
        start, streamed = 4, []

        def best(source, frames):  # the pass sees every frame at >= 256 px, one at a time
            streamed.extend(f.shape for f in frames)
            return start

        monkeypatch.setattr(animate, "find_best_frame", best)
        extra = ["--find-best-frame"]
    elif mode == "max-frames":
        extra, count = ["--max-frames", "5"], 5
    seen = _written(monkeypatch)
    assert run(animate.main, argv(files, driving=driving) + extra) == 0

    models, config, _ = load(PHASE, "model").load_fomm(files["checkpoint"])
    video = read_video(driving)
    size = config.frame_size
    array_path = animate.animate(
        animate.Animator(models, torch.device("cpu")), animate.fit_to_model(read_image(files["source"])[None],
                                                                            size, "source")[0],
        animate.fit_to_model(video.frames[:count], size, "driving"), relative=mode != "absolute",
        batch_size=2, start=start)
    np.testing.assert_array_equal(seen["frames"], np.stack(list(array_path)))
    assert seen["frames"].shape == (count, size, size, 3) and seen["fps"] == video.fps
    assert seen["total"] == count and seen["sample_rate"] == video.sample_rate
    if mode == "max-frames":  # the sound is cut to the frames kept
        assert len(seen["audio"]) == round(5 / video.fps * video.sample_rate) < len(video.audio)
    else:
        np.testing.assert_array_equal(seen["audio"], video.audio)
    if mode == "best-frame":
        assert streamed == [(256, 256, 3)] * 7


def test_the_driving_frame_for_the_initial_keypoints_is_read_without_reading_further(files, monkeypatch):
    from common import media

    frames = list(media.iter_video(files["driving"]))
    decoded = []
    real = media.iter_video

    def counting(path, max_frames=None, upright=True):
        for frame in real(path, max_frames=max_frames, upright=upright):
            decoded.append(1)
            yield frame

    monkeypatch.setattr(animate, "iter_video", counting)
    np.testing.assert_array_equal(animate.driving_frame(files["driving"], 2), frames[2])
    assert len(decoded) == 3


def test_batches_of_a_stream_are_the_slices_of_the_array():
    frames = np.arange(7 * 2 * 2 * 3, dtype=np.uint8).reshape(7, 2, 2, 3)
    sliced = list(animate.batches(frames, 3))
    streamed = list(animate.batches(iter(frames), 3))
    assert [len(b) for b in streamed] == [3, 3, 1]
    for a, b in zip(sliced, streamed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_find_best_frame_keeps_the_first_of_equally_close_frames(monkeypatch):
    """A still stretch of the driving video (identical poses): motion is measured from the first of them."""
    monkeypatch.setattr(animate, "normalized_landmarks", lambda points: points)
    pose = np.arange(10.0).reshape(5, 2)
    assert animate.find_best_frame(pose, [pose + 1, pose, pose, pose]) == 1


@pytest.mark.todo("p3")
@pytest.mark.parametrize("flags, relative, adapt", [([], True, False), (["--adapt-scale"], True, True),
                                                     (["--absolute"], False, False)])
def test_the_motion_flags_reach_the_renderer(files, monkeypatch, flags, relative, adapt):
    seen = {}
    real = animate.animate

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(animate, "animate", spy)
    assert run(animate.main, argv(files) + flags) == 0
    assert seen["relative"] is relative and seen["adapt_scale"] is adapt


def test_normalised_landmarks_ignore_where_the_face_is_and_how_big(monkeypatch):
    """The pose signature of a face moved and enlarged in the frame is the same: centred, then scaled."""
    from common import dlib_models

    monkeypatch.setattr(dlib_models, "largest_face_landmarks", lambda points: points)  # 'frames' are points
    pose = np.random.default_rng(0).random((68, 2)) * 100
    moved = animate.normalized_landmarks(pose * 2.5 + 40)
    np.testing.assert_allclose(moved, animate.normalized_landmarks(pose), atol=1e-9)
    assert np.allclose(animate.normalized_landmarks(pose).mean(axis=0), 0.0)
