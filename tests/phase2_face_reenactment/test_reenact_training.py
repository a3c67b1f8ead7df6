"""train_landmarks.py and train_x2face.py: a couple of steps, a checkpoint, and a resume that continues it."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from common.cli import run
from common.errors import UserError
from common.training import Checkpointer


def _steps(run_dir) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.pt"))


def _run_then_resume(main, run_dir, args: list[str]) -> None:
    """Train 2 steps (a checkpoint after each), then ask for 3: the second run must pick up at step 2.

    A run that started over would rewrite the first run's checkpoints (new files) and log steps 1 and 2
    again (their timings would differ); a resumed one leaves both as they were and adds step 3."""
    every = ["--checkpoint-every", "1"]
    assert run(main, args + every + ["--steps", "2"]) == 0
    first = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
             for p in (run_dir / "checkpoints").glob("step_*.pt")}
    assert sorted(first) == ["step_00000001.pt", "step_00000002.pt"]
    logged = (run_dir / "metrics.csv").read_text().splitlines()
    assert run(main, args + every + ["--steps", "3"]) == 0
    assert _steps(run_dir) == [1, 2, 3]
    for name, (inode, mtime, data) in first.items():
        path = run_dir / "checkpoints" / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime) and path.read_bytes() == data
    with (run_dir / "metrics.csv").open(newline="") as file:
        assert [row["step"] for row in csv.DictReader(file)] == ["1", "2", "3"]
    assert (run_dir / "metrics.csv").read_text().splitlines()[: len(logged)] == logged  # rows 1, 2 kept


@pytest.mark.todo("p2.lmk")
def test_train_landmarks_runs_resumes_and_loads(tmp_path):
    from phase2_face_reenactment.train_landmarks import load_detector, main

    run_dir = tmp_path / "lmk"
    args = ["--run-dir", str(run_dir), "--identities", "2", "--frames", "3", "--render-size", "128",
            "--batch-size", "2", "--input-size", "32", "--preview-every", "0", "--device", "cpu"]
    _run_then_resume(main, run_dir, args)
    detector = load_detector(run_dir)
    assert detector.cfg.input_size == 32
    assert Checkpointer(run_dir / "checkpoints", {}).latest() == run_dir / "checkpoints" / "step_00000003.pt"


@pytest.mark.todo("p2.x2f")
def test_train_x2face_runs_and_resumes(tmp_path):
    from phase2_face_reenactment.train_x2face import main

    run_dir = tmp_path / "x2f"
    args = ["--run-dir", str(run_dir), "--identities", "2", "--frames", "3", "--size", "32",
            "--batch-size", "2", "--preview-every", "0", "--device", "cpu"]
    _run_then_resume(main, run_dir, args)


def test_training_refuses_bad_sizes(tmp_path):
    from phase2_face_reenactment import train_landmarks, train_x2face

    assert run(train_x2face.main, ["--run-dir", str(tmp_path / "a"), "--size", "40"]) == 2
    assert run(train_landmarks.main, ["--run-dir", str(tmp_path / "b"), "--input-size", "30"]) == 2
    for size in ("0", "-5", "2049"):  # the synthetic renderer's frame sizes are 64-2048 px
        assert run(train_landmarks.main, ["--run-dir", str(tmp_path / "c"), "--render-size", size]) == 2
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("tool", [pytest.param("train_x2face", marks=pytest.mark.todo("p2.x2f")),
                                  pytest.param("train_landmarks", marks=pytest.mark.todo("p2.lmk"))])
def test_training_in_fp16_scales_the_loss_and_resumes_the_scaler(tmp_path, forced_fp16_scaler, tool):
    import torch

    from phase2_face_reenactment import train_landmarks, train_x2face

    module = {"train_x2face": train_x2face, "train_landmarks": train_landmarks}[tool]
    run_dir = tmp_path / "run"
    size = ["--size", "32"] if tool == "train_x2face" else ["--input-size", "32", "--render-size", "128"]
    args = ["--run-dir", str(run_dir), "--identities", "2", "--frames", "3", *size,
            "--batch-size", "2", "--preview-every", "0", "--device", "cpu"]
    scaler = forced_fp16_scaler(module)
    assert run(module.main, args + ["--steps", "2"]) == 0
    assert dict(scaler.calls) == {"scale": 2, "step": 2, "update": 2}
    saved = torch.load(run_dir / "checkpoints" / "step_00000002.pt", weights_only=True)["scaler"]
    assert saved["scale"] == 2.0**10 and saved["_growth_tracker"] == 2  # two clean steps since the start
    scaler = forced_fp16_scaler(module)
    assert run(module.main, args + ["--steps", "3"]) == 0
    assert scaler.state_dict()["_growth_tracker"] == 3  # the resumed run carried on counting

@pytest.mark.todo("p2.x2f")
def test_train_x2face_reads_a_folder_of_videos_and_frame_folders(tmp_path, capsys):
    from common.synthetic import make_identity, render_clip
    from consent_and_watermark import writer
    from consent_and_watermark.consent import register_synthetic_identity
    from phase2_face_reenactment.train_x2face import main

    data = tmp_path / "data"
    first, second = (render_clip(make_identity(s), 3, size=48, speech=False).frames for s in (31, 32))
    writer.save_video(data / "a.mp4", first, 25.0, label=False)
    for i, frame in enumerate(second):
        writer.save_image(data / "b" / f"{i:03d}.png", frame, label=False)
    args = ["--run-dir", str(tmp_path / "run"), "--data", str(data), "--size", "32", "--batch-size", "2",
            "--steps", "1", "--preview-every", "0", "--device", "cpu"]
    assert run(main, args) == 2  # a folder may hold real people: a record for them comes first
    assert not (tmp_path / "run").exists()
    consent = register_synthetic_identity("synthetic-x2f-folder", "The two synthetic people in the folder")
    assert run(main, args + ["--consent", consent]) == 0
    assert run(main, ["--run-dir", str(tmp_path / "r2"), "--data", str(tmp_path / "nothing"),
                      "--consent", consent]) == 2
    big = ["--batch-size", "40", "--run-dir", str(tmp_path / "r3")]  # 2 clips give 32 pairs an epoch
    assert run(main, args + big + ["--consent", consent]) == 2  # not "the training data is empty"
    assert "--batch-size 40 is more than the 32 pairs an epoch draws" in capsys.readouterr().err


@pytest.mark.parametrize("tool", ["train_x2face", "train_landmarks"])
@pytest.mark.parametrize("flags, message", [
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--steps", "0"], "--steps"),
    (["--identities", "0"], "--identities must be between 1 and 100"),
    (["--identities", "-1"], "--identities must be between 1 and 100"),
], ids=["negative-lr", "nan-lr", "zero-steps", "no-identities", "negative-identities"])
def test_training_refuses_bad_flags_in_one_line_before_any_work(tmp_path, one_error_line, tool, flags,
                                                                message):
    from phase2_face_reenactment import train_landmarks, train_x2face

    main = {"train_x2face": train_x2face.main, "train_landmarks": train_landmarks.main}[tool]
    assert run(main, ["--run-dir", str(tmp_path / "run"), "--device", "cpu", *flags]) == 2
    assert message in one_error_line()
    assert not (tmp_path / "run").exists()


def test_train_x2face_refuses_clips_of_one_frame(tmp_path, capsys):
    from phase2_face_reenactment import train_x2face

    assert run(train_x2face.main, ["--run-dir", str(tmp_path / "run"), "--frames", "1"]) == 2
    assert "--frames must be at least 2" in capsys.readouterr().err


def test_x2face_pairs_are_two_different_frames_of_one_clip():
    from phase2_face_reenactment import data

    clips = [np.stack([np.full((8, 8, 3), 10 * c + f, np.uint8) for f in range(2)]) for c in range(3)]
    for seed in range(3):
        for batch in data.pair_batches(clips, 4, seed, epoch=0):
            differ = (batch["source"] - batch["driving"]).abs().amax(dim=(1, 2, 3))
            assert (differ > 0).all(), seed


def test_an_epoch_of_x2face_pairs_ends_with_its_last_whole_batch():
    from phase2_face_reenactment import data

    clips = [np.zeros((3, 8, 8, 3), np.uint8)]  # 16 pairs an epoch: 4 batches of 4, none left over
    assert [len(b["source"]) for b in data.pair_batches(clips, 4, seed=0, epoch=0)] == [4, 4, 4, 4]


def test_x2face_clips_of_one_frame_are_left_out_of_a_folder(frame_folders):
    from phase2_face_reenactment import data

    clips = data.video_clips(str(frame_folders({"one": 1, "three": 3})), 16, identities=1, frames=10)
    assert [len(c) for c in clips] == [3]


def test_an_epoch_of_landmark_crops_ends_with_its_last_whole_batch():
    from common.impl import load
    from phase2_face_reenactment import data

    lmk = load("phase2_face_reenactment", "landmark_detector")
    faces = data.synthetic_faces([1000], frames=8, size=96)
    cfg = lmk.LandmarkConfig(input_size=32)
    batches = list(data.landmark_batches(faces, lmk, cfg, 4, seed=0, epoch=0))
    assert [len(b["image"]) for b in batches] == [4, 4]


def test_landmark_training_accepts_exactly_batch_size_faces():
    from common.errors import UserError
    from phase2_face_reenactment import train_landmarks

    parse = train_landmarks.build_parser().parse_args
    train_landmarks.check_args(parse(["--identities", "1", "--frames", "4", "--batch-size", "4"]))
    with pytest.raises(UserError, match="--identities x --frames must be at least --batch-size"):
        train_landmarks.check_args(parse(["--identities", "1", "--frames", "4", "--batch-size", "5"]))


def test_x2face_training_accepts_a_batch_of_exactly_the_pairs_an_epoch_draws(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from phase2_face_reenactment import data, train_x2face

    monkeypatch.setattr(data, "video_clips", lambda *a: [np.zeros((2, 32, 32, 3), np.uint8)])  # 16 pairs
    seen = {}

    def fake_loop(step_fn, batches, cfg, checkpointer, **kwargs):
        seen["sizes"] = [len(b["source"]) for b in batches(0)]
        return SimpleNamespace(step=0, checkpoint=None, interrupted=False, metrics={})

    monkeypatch.setattr(train_x2face, "train_loop", fake_loop)
    assert train_x2face.main(["--run-dir", str(tmp_path / "run"), "--size", "32", "--batch-size", "16",
                              "--device", "cpu", "--no-progress"]) == 0
    assert seen["sizes"] == [16]


def test_landmark_crop_jitter_zooms_between_0_85_and_1_2():
    from common.impl import load
    from phase2_face_reenactment import data

    lmk = load("phase2_face_reenactment", "landmark_detector")
    cfg = lmk.LandmarkConfig(input_size=32)
    faces = data.synthetic_faces([1000], frames=1, size=96)
    image, points = faces.images[0], faces.landmarks[0]
    _, plain = data.jittered_crop(image, points, lmk, cfg, None)
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(300):  # crop pixels per image pixel, relative to the plain crop's (rotation-free)
        _, moved = data.jittered_crop(image, points, lmk, cfg, rng)
        ratios.append(np.linalg.norm(plain[0] - plain[16]) / np.linalg.norm(moved[0] - moved[16]))
    assert 0.85 - 1e-6 <= min(ratios) < 0.88 and 1.17 < max(ratios) <= 1.2 + 1e-6


@pytest.mark.todo("p2.x2f")
def test_train_x2face_records_its_flags_and_previews_at_least_128_px_high(tmp_path):
    import torch
    from PIL import Image

    from phase2_face_reenactment.train_x2face import main

    run_dir = tmp_path / "x2f"
    assert run(main, ["--run-dir", str(run_dir), "--identities", "2", "--frames", "3", "--size", "32",
                      "--batch-size", "2", "--steps", "1", "--preview-every", "1", "--device", "cpu"]) == 0
    train = torch.load(run_dir / "checkpoints" / "step_00000001.pt", weights_only=True)["extra"]["train"]
    assert (train["identities"], train["frames"], train["batch_size"]) == (2, 3, 2)
    (preview,) = (run_dir / "previews").glob("*.png")
    with Image.open(preview) as image:
        assert image.size[1] >= 128  # the invisible watermark needs >= 128 px a side


def test_landmark_input_size_may_be_any_multiple_of_8():
    from phase2_face_reenactment import train_landmarks

    train_landmarks.check_args(train_landmarks.build_parser().parse_args(["--input-size", "40"]))
    with pytest.raises(UserError, match="multiple of 8"):
        train_landmarks.check_args(train_landmarks.build_parser().parse_args(["--input-size", "36"]))


def test_load_detector_refuses_a_checkpoint_without_landmark_settings(tmp_path):
    from common.training.checkpoint import save_checkpoint
    from phase2_face_reenactment.train_landmarks import load_detector

    path = save_checkpoint(tmp_path / "x2face.pt", {"model": {}, "extra": {"x2face": {"size": 32}}})
    with pytest.raises(UserError, match="is not a landmark-CNN checkpoint"):
        load_detector(path)
