"""train.py (resumable, published checkpoint layout), reconstruct.py metrics and crop.py's box rule.

The training and metric runs write through the provenance writer and run dlib: `slow`.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from common.errors import UserError
from common.impl import load

PHASE = "phase3_first_order_motion"


@pytest.mark.slow
@pytest.mark.todo("p3")
def test_train_resumes_and_writes_an_animatable_checkpoint(tmp_path):
    from phase3_first_order_motion import train

    base = ["--data", "synthetic", "--config", "tiny", "--run-dir", str(tmp_path / "run"),
            "--batch-size", "2", "--synthetic-videos", "2", "--synthetic-frames", "4", "--device", "cpu",
            "--no-progress", "--preview-every", "2", "--checkpoint-every", "2"]
    assert train.main(base + ["--steps", "2"]) == 0
    assert train.main(base + ["--steps", "3"]) == 0  # resumes at step 2, trains one more
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    assert (tmp_path / "run" / "previews" / "step_00000002.png").is_file()
    checkpoint = tmp_path / "run" / "checkpoints" / "step_00000003.pt"
    raw = torch.load(checkpoint, weights_only=True)
    assert {"kp_detector", "generator", "discriminator", "optimizer_generator", "optimizer_kp_detector",
            "optimizer_discriminator", "epoch"} <= raw.keys()
    models, config, _ = load(PHASE, "model").load_fomm(checkpoint)
    assert config.frame_size == 64 and not models["generator"].training
    raw["extra"]["model_params"]["generator_params"]["num_bottleneck_blocks"] += 1  # an older tiny config
    torch.save(raw, checkpoint)
    with pytest.raises(UserError, match="another FOMM configuration"):
        train.main(base + ["--steps", "4"])


@pytest.mark.slow
@pytest.mark.todo("p3")
def test_reconstruction_metrics_of_a_perfect_and_a_copy_model():
    from phase3_first_order_motion import data, reconstruct

    video = data.synthetic_videos(1, 3, 64, seed=5)[0]
    faces = reconstruct.FaceMetrics(aed=False)
    for frame in video:
        faces.add(frame, frame)
    result = faces.result()
    assert result["pairs_without_face"] == 0 and result["akd"] == 0
    model = load(PHASE, "model")
    torch.manual_seed(0)
    out = reconstruct.evaluate(model.build_fomm(model.get_config("tiny")), [video], torch.device("cpu"),
                               aed=False)
    assert out["copy_source"]["l1"] == pytest.approx(
        np.abs(video.astype(float) - video[:1].astype(float)).mean() / 255, rel=1e-5)
    assert 0 < out["fomm"]["l1"] < 1


def test_crop_box_is_the_enlarged_square_union():
    from phase3_first_order_motion import crop

    assert crop.union_box([(10, 20, 50, 60), (20, 10, 60, 50)]) == (10, 10, 60, 60)
    # 50x50 box enlarged by 10% each side -> 60x60 square around the same centre (35, 35)
    assert crop.square_box((10, 10, 60, 60), 0.1, 200, 200) == (5, 5, 65, 65)
    # near the border the square shifts inside the frame instead of shrinking
    assert crop.square_box((0, 0, 40, 40), 0.1, 100, 100) == (0, 0, 48, 48)


@pytest.mark.slow
@pytest.mark.todo("p3")
def test_demo_stage_writes_its_report_items_and_reuses_the_checkpoint(tmp_path, monkeypatch):
    from phase3_first_order_motion import demo

    monkeypatch.setattr(demo, "QUICK_STEPS", 2)
    items = demo.run_stage(tmp_path, quick=True)
    assert {item.kind for item in items} >= {"video", "image"}
    assert all(item.path.is_file() for item in items)
    before = sorted((tmp_path / "run" / "checkpoints").iterdir())
    demo.run_stage(tmp_path, quick=True)
    assert sorted((tmp_path / "run" / "checkpoints").iterdir()) == before


def test_epoch_batches_are_pairs_of_one_video_and_repeat_exactly():
    from phase3_first_order_motion import data

    videos = [np.full((4, 8, 8, 3), 10 * i, np.uint8) for i in range(3)]  # each video one grey level
    first = list(data.epoch_batches(videos, 2, epoch=1, seed=7, repeats=2))
    again = list(data.epoch_batches(videos, 2, epoch=1, seed=7, repeats=2))
    assert len(first) == 3 and first[0]["source"].shape == (2, 3, 8, 8)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a["source"], b["source"]) and torch.equal(a["driving"], b["driving"])
    for batch in first:  # source and driving come from the same video
        assert torch.equal(batch["source"].mean(dim=(1, 2, 3)), batch["driving"].mean(dim=(1, 2, 3)))
    halves = [list(data.epoch_batches(videos, 2, 1, 7, 2, rank=r, world_size=2)) for r in (0, 1)]
    assert len(halves[0]) + len(halves[1]) == 3


def test_synthetic_clips_at_a_lower_frame_rate_move_more():
    from phase3_first_order_motion import data

    def spread(fps: float) -> float:  # mean |frame - frame 0| of a 4-frame 32 px clip
        clip = data.synthetic_videos(1, 4, 32, seed=3, fps=fps)[0].astype(np.float32)
        return float(np.abs(clip - clip[:1]).mean())

    default = data.synthetic_videos(1, 4, 32, seed=3)[0]
    assert np.array_equal(default, data.synthetic_videos(1, 4, 32, seed=3, fps=25.0)[0])  # held-out sets
    assert spread(5.0) > spread(25.0)


def test_cosine_learning_rate_warms_up_linearly_and_decays_to_zero():
    from phase3_first_order_motion.train import TrainSettings, learning_rate

    cosine = TrainSettings(lr=1e-3, lr_schedule="cosine", warmup_steps=10, max_steps=110)
    assert learning_rate(cosine, 0) == pytest.approx(1e-4)  # (step + 1) / warmup_steps of the peak
    assert learning_rate(cosine, 9) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 9 / 110)))
    assert learning_rate(cosine, 55) == pytest.approx(0.5e-3)  # half-way through the run: cos(pi/2)
    assert learning_rate(cosine, 110) == pytest.approx(0, abs=1e-12)
    assert learning_rate(cosine, 500) == pytest.approx(0, abs=1e-12)  # past the end: stays at 0
    constant = TrainSettings(lr=2e-4)
    assert {learning_rate(constant, s) for s in (0, 5, 10_000)} == {2e-4}


def _tiny_pair(**changes) -> tuple:
    """The tiny configuration (with `changes`) and one synthetic source/driving pair, (1, 3, H, W) each."""
    from dataclasses import replace

    from phase3_first_order_motion import data

    config = replace(load(PHASE, "model").get_config("tiny"), **changes)
    video = data.synthetic_videos(1, 2, config.frame_size, seed=5)[0]  # (2, H, W, 3) uint8
    frames = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255
    return config, {"source": frames[:1], "driving": frames[1:]}


@pytest.mark.todo("p3")
def test_clip_grad_norm_bounds_each_network_gradient():
    from phase3_first_order_motion.train import FOMMTrainer, TrainSettings

    config, batch = _tiny_pair()
    torch.manual_seed(0)
    trainer = FOMMTrainer(config, TrainSettings(clip_grad_norm=1e-3), torch.device("cpu"))
    trainer.step(batch, 0)
    for module in (trainer.kp_detector, trainer.generator):
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()
                                                     if p.grad is not None]))
        assert 0 < float(norm) <= 1e-3 * (1 + 1e-4)


@pytest.mark.todo("p3")
def test_the_equivariance_loss_warps_the_driving_frame(monkeypatch):
    from phase3_first_order_motion.train import FOMMTrainer, TrainSettings

    config, batch = _tiny_pair()
    trainer = FOMMTrainer(config, TrainSettings(), torch.device("cpu"))
    seen = []
    original = trainer.losses.RandomTPS.transform_frame
    monkeypatch.setattr(trainer.losses.RandomTPS, "transform_frame",
                        lambda self, frame: seen.append(frame.clone()) or original(self, frame))
    trainer.step(batch, 0)
    assert len(seen) == 1 and torch.equal(seen[0], batch["driving"])  # Y(D), as in sec. 3.3


@pytest.mark.todo("p3")
def test_fp16_loss_scaling_wraps_every_network_step_and_clips_unscaled_gradients(forced_fp16_scaler):
    from phase3_first_order_motion import train
    from phase3_first_order_motion.train import FOMMTrainer, TrainSettings

    config, batch = _tiny_pair()
    settings = TrainSettings(clip_grad_norm=1e-3, adversarial=True)
    trained = {}
    for scaled in (False, True):
        scaler = forced_fp16_scaler(train) if scaled else None
        torch.manual_seed(0)
        trainer = FOMMTrainer(config, settings, torch.device("cpu"))
        trainer.step(batch, 0)
        trained[scaled] = trainer
    assert dict(scaler.calls) == {"scale": 2, "step": 3, "update": 1}  # 2 losses, 3 optimizers a step
    assert "scaler" in trained[True].stateful() and "scaler" not in trained[False].stateful()
    for name in ("kp_detector", "generator", "discriminator"):
        plain, scaled = (getattr(trained[s], name).state_dict() for s in (False, True))
        for key, value in plain.items():
            torch.testing.assert_close(scaled[key], value, rtol=1e-4, atol=1e-6)
    for module in (trained[True].kp_detector, trained[True].generator):  # clipped after unscaling
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()
                                                     if p.grad is not None]))
        assert float(norm) == pytest.approx(1e-3, rel=1e-4)


@pytest.mark.todo("p3")
def test_a_configuration_without_jacobians_trains_without_the_jacobian_term():
    from phase3_first_order_motion.train import FOMMTrainer, TrainSettings

    config, batch = _tiny_pair(estimate_jacobian=False)
    torch.manual_seed(0)
    trainer = FOMMTrainer(config, TrainSettings(), torch.device("cpu"))
    metrics = trainer.step(batch, 0)
    assert "equivariance_jacobian" not in metrics and "equivariance_value" in metrics


TRAIN_BAD_FLAGS = [
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--synthetic-videos", "0"], "--synthetic-videos must be at least 1"),
    (["--synthetic-frames", "1"], "--synthetic-frames must be at least 2"),
    (["--synthetic-fps", "0"], "--synthetic-fps must be a positive number"),
    (["--threads", "-1"], "--threads must be at least 0"),
    (["--warmup-steps", "-3"], "--warmup-steps must be at least 0"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--clip-grad-norm", "-1"], "--clip-grad-norm must be 0 (off) or a positive number"),
]


@pytest.mark.parametrize("flags, message", TRAIN_BAD_FLAGS, ids=[" ".join(f) for f, _ in TRAIN_BAD_FLAGS])
def test_train_refuses_bad_flags_in_one_line_before_any_work(tmp_path, one_error_line, flags, message):
    from common.cli import run
    from phase3_first_order_motion import train

    argv = ["--data", "synthetic", "--run-dir", str(tmp_path / "run"), "--device", "cpu", *flags]
    assert run(train.main, argv) == 2
    assert message in one_error_line()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, message", [
    (["--increase", "-5"], "--increase must be 0 or a positive number"),
    (["--increase", "nan"], "--increase must be 0 or a positive number"),
    (["--size", "129"], "--size must be even (H.264 video needs even sides), got 129"),
], ids=["negative-increase", "nan-increase", "odd-size"])
def test_crop_refuses_a_bad_margin_or_an_odd_size_before_reading_the_video(tmp_path, one_error_line, flags,
                                                                           message):
    from common.cli import run
    from phase3_first_order_motion import crop

    argv = ["--input", str(tmp_path / "missing.mp4"), "--output", str(tmp_path / "out.mp4"), *flags]
    assert run(crop.main, argv) == 2  # a missing --input would be the error if the video were read
    assert message in one_error_line()


@pytest.mark.parametrize("flags, message", [
    (["--frame-step", "0"], "--videos and --frame-step must be at least 1"),
    (["--frames", "1"], "--frames must be at least 2"),
    (["--json", "face0.png"], "must end in .json"),
    (["--landmark-size", "0"], "--landmark-size must be at least 64 px"),
], ids=["zero-frame-step", "one-frame", "json-not-json", "landmark-size-zero"])
def test_reconstruct_refuses_bad_flags_before_loading_the_checkpoint(tmp_path, one_error_line, monkeypatch,
                                                                      flags, message):
    from common.cli import run
    from phase3_first_order_motion import reconstruct

    monkeypatch.chdir(tmp_path)
    (tmp_path / "face0.png").write_bytes(b"the user's picture")
    argv = ["--checkpoint", str(tmp_path / "missing.pt"), "--data", "synthetic", *flags]
    assert run(reconstruct.main, argv) == 2  # a missing checkpoint would be the error if it were loaded
    assert message in one_error_line()
    assert (tmp_path / "face0.png").read_bytes() == b"the user's picture"


def test_load_video_folder_says_when_it_has_no_test_folder_and_uses_all_videos(tmp_path, capsys):
    import cv2

    from phase3_first_order_motion import data

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(2):
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    assert len(data.load_video_folder(tmp_path, 8, split="test")) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} has no test/ folder, so all its videos are used" in err and "trained on" in err
    (tmp_path / "test").mkdir()
    (tmp_path / "a").rename(tmp_path / "test" / "a")
    assert len(data.load_video_folder(tmp_path, 8, split="test")) == 1
    assert "has no test/ folder" not in capsys.readouterr().err


def test_a_folder_with_other_splits_is_not_read_as_clips_and_hidden_folders_are_skipped(tmp_path):
    import cv2

    from phase3_first_order_motion import data

    for clip in ("train/a", "train/b", "train/.ipynb_checkpoints"):
        (tmp_path / clip).mkdir(parents=True)
    for clip in ("train/a", "train/b"):
        for i in range(2):
            cv2.imwrite(str(tmp_path / clip / f"{i}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    with pytest.raises(UserError, match=r"has no test/ folder, but train/: point --data at the one"):
        data.load_video_folder(tmp_path, 8, split="test")  # not: "train holds no frame images"
    assert len(data.load_video_folder(tmp_path, 8, split="train")) == 2  # the hidden folder is no clip


def test_akd_is_measured_in_pixels_of_the_original_frame():
    """Landmarks found 4 px apart on the 256 px upscale of a 64 px frame are 1 px apart in the frame."""
    from phase3_first_order_motion import reconstruct

    faces = reconstruct.FaceMetrics(landmark_size=256, aed=False)
    faces.dlib = SimpleNamespace(
        detect_faces=lambda rgb: [(0, 0, 100, 100)],
        landmarks68=lambda rgb, box: np.full((68, 2), 10.0) + (4.0 if rgb.mean() > 0 else 0.0),
    )
    real, prediction = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 200, np.uint8)
    faces.add(prediction, real)
    assert faces.result()["akd"] == pytest.approx(4 * np.sqrt(2) / 4)


def test_crop_box_of_a_tall_or_wide_face_is_a_square_of_its_longer_side():
    from phase3_first_order_motion import crop

    # 50 wide, 20 tall, no margin: a 50 px square around the centre (35, 20), shifted inside the frame
    assert crop.square_box((10, 10, 60, 30), 0.0, 200, 200) == (10, 0, 60, 50)
    # 20 wide, 100 tall, 10 %: +-2 px across, +-10 px down -> 24 x 120, a 120 px square around (60, 100)
    assert crop.square_box((50, 50, 70, 150), 0.1, 400, 400) == (0, 40, 120, 160)


def test_crop_box_detects_on_frames_0_every_2every(monkeypatch):
    from common import dlib_models
    from phase3_first_order_motion import crop

    frames = [np.full((40, 40, 3), i, np.uint8) for i in range(7)]
    seen = []

    def detect(frame):
        seen.append(int(frame[0, 0, 0]))
        return [(10, 10, 20, 20)]

    monkeypatch.setattr(dlib_models, "detect_faces", detect)
    crop.crop_box(frames, every=3, increase=0.0)
    assert seen == [0, 3, 6]


def test_crop_accepts_a_zero_margin_and_refuses_a_negative_one(tmp_path, one_error_line):
    from common.cli import run
    from phase3_first_order_motion import crop

    base = ["--input", str(tmp_path / "in.mp4"), "--output", str(tmp_path / "out.mp4")]
    assert run(crop.main, base + ["--increase", "-0.1"]) == 2
    assert "--increase must be 0 or a positive number" in one_error_line()
    assert run(crop.main, base + ["--increase", "0"]) == 2  # on to the input, which does not exist
    assert "--increase" not in one_error_line()


def test_fomm_videos_of_one_frame_are_left_out_of_a_folder(frame_folders):
    from phase3_first_order_motion import data

    assert [len(v) for v in data.load_video_folder(frame_folders({"one": 1, "three": 3}), 16)] == [3]


def test_fomm_pairs_are_two_different_frames_flipped_left_right_only():
    from phase3_first_order_motion import data

    ys, xs = np.mgrid[:8, :8]
    base = np.repeat((10 * xs + ys).astype(np.uint8)[..., None], 3, axis=2)  # no two pixels alike
    video = np.stack([base, base + 100])  # two frames, told apart by their level

    def as_tensor(frame: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float() / 255

    allowed = [as_tensor(f) for f in (*video, *video[:, :, ::-1])]  # as stored, or mirrored left-right
    for epoch in range(4):
        for batch in data.epoch_batches([video], 4, epoch, seed=0, repeats=4):
            for source, driving in zip(batch["source"], batch["driving"], strict=True):
                assert source.mean() != driving.mean()  # frames a and b differ
                assert any(torch.equal(source, a) for a in allowed)  # never upside down


def test_held_out_synthetic_videos_are_other_people():
    from phase3_first_order_motion.train import load_videos

    train = load_videos("synthetic", 32, "train", seed=0, count=1, frames=2)
    test = load_videos("synthetic", 32, "test", seed=0, count=1, frames=2)
    assert not np.array_equal(train[0], test[0])


def test_fomm_training_repeats_a_small_set_until_one_batch_fills(tmp_path, monkeypatch):
    """2 videos and --batch-size 4 (default --repeats 1): each video repeats twice an epoch, so that an
    epoch has a whole batch (no batch at all: an epoch that never ends)."""
    from phase3_first_order_motion import train

    monkeypatch.setattr(train, "load_videos", lambda *a, **k: [np.zeros((2, 64, 64, 3), np.uint8)] * 2)
    seen = {}

    def fake_loop(step_fn, batches, cfg, checkpointer, **kwargs):
        seen["sizes"] = [len(b["source"]) for b in batches(0)]
        return SimpleNamespace(step=0, checkpoint=None, interrupted=False)

    monkeypatch.setattr(train, "train_loop", fake_loop)
    assert train.main(["--data", "synthetic", "--config", "tiny", "--run-dir", str(tmp_path / "run"),
                       "--batch-size", "4", "--repeats", "1", "--device", "cpu", "--no-progress"]) == 0
    assert seen["sizes"] == [4]


def test_a_checkpoint_older_than_the_recorded_configuration_still_resumes(tmp_path):
    """A checkpoint without model_params (written before they were recorded) is resumed; one with other
    params is refused."""
    from common.training import Checkpointer
    from phase3_first_order_motion import train

    config = load(PHASE, "model").get_config("tiny")
    checkpointer = Checkpointer(tmp_path / "checkpoints", {"x": torch.nn.Linear(1, 1)})
    checkpointer.save(1, extra={})
    train.check_resumable(checkpointer, config)
    other = {**config.model_params(), "common_params": {"num_kp": 99}}
    checkpointer.save(2, extra={"model_params": other})
    with pytest.raises(UserError, match="another FOMM configuration"):
        train.check_resumable(checkpointer, config)


def test_faces_are_found_in_the_real_frame_and_looked_up_in_the_prediction_at_the_same_box():
    from phase3_first_order_motion import reconstruct

    faces = reconstruct.FaceMetrics(landmark_size=64, aed=False)
    faces.dlib = SimpleNamespace(  # a face only in the real (dark) frame: the prediction may have lost it
        detect_faces=lambda rgb: [(0, 0, 60, 60)] if rgb.mean() < 100 else [],
        landmarks68=lambda rgb, box: np.full((68, 2), 10.0),
    )
    faces.add(np.full((64, 64, 3), 200, np.uint8), np.zeros((64, 64, 3), np.uint8))
    assert faces.result() == {"akd": 0.0, "pairs_without_face": 0}


def test_frame_step_measures_faces_on_every_nth_frame_only(monkeypatch):
    from phase3_first_order_motion import reconstruct

    seen = []
    monkeypatch.setattr(reconstruct, "reconstruct", lambda models, video, device: video)
    monkeypatch.setattr(reconstruct.FaceMetrics, "add", lambda self, p, r: seen.append(int(r[0, 0, 0])))
    video = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(5)])
    reconstruct.evaluate({}, [video], torch.device("cpu"), aed=False, frame_step=2)
    assert seen == [0, 2, 4, 0, 2, 4]  # the model, then the copy-the-source baseline


def test_a_pair_whose_real_frame_shows_no_face_is_counted_not_measured():
    from phase3_first_order_motion import reconstruct

    faces = reconstruct.FaceMetrics(landmark_size=64, aed=False)
    faces.dlib = SimpleNamespace(detect_faces=lambda rgb: [], landmarks68=None)
    faces.add(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8))
    result = faces.result()
    assert result["pairs_without_face"] == 1 and math.isnan(result["akd"])


def test_reconstruct_takes_a_json_path_whatever_the_case_of_its_suffix(tmp_path, one_error_line):
    from common.cli import run
    from phase3_first_order_motion import reconstruct

    argv = ["--checkpoint", str(tmp_path / "missing.pt"), "--data", "synthetic",
            "--json", str(tmp_path / "FIGURES.JSON")]
    assert run(reconstruct.main, argv) == 2
    assert "checkpoint not found" in one_error_line()  # past the flag checks


def test_synthetic_video_number_i_shows_the_identity_of_seed_plus_i():
    """Held-out sets start at another seed: their videos must show other people, not new takes of the same."""
    from common.synthetic import make_identity, render_clip
    from phase3_first_order_motion import data

    videos = data.synthetic_videos(2, 1, 32, seed=5)
    for i, video in enumerate(videos):
        expected = render_clip(make_identity(5 + i), 1, size=32, fps=25.0, seed=5 + i, speech=False).frames
        np.testing.assert_array_equal(video, expected)


def test_fomm_pairs_are_never_mirrored_without_flip():
    from phase3_first_order_motion import data

    ys, xs = np.mgrid[:8, :8]
    base = np.repeat((10 * xs + ys).astype(np.uint8)[..., None], 3, axis=2)  # left and right differ
    video = np.stack([base, base + 100])
    stored = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in video]
    for batch in data.epoch_batches([video], 4, 0, seed=0, repeats=8, flip=False):
        for source in batch["source"]:
            assert any(torch.equal(source, f) for f in stored)


def test_load_video_folder_warns_for_any_held_out_split_it_lacks(tmp_path, capsys):
    import cv2

    from phase3_first_order_motion import data

    (tmp_path / "a").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "a" / f"{i}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    assert len(data.load_video_folder(tmp_path, 8, split="val")) == 1
    assert "(maybe the ones trained on: held-out videos go in val/)" in capsys.readouterr().err
    assert len(data.load_video_folder(tmp_path, 8, split="train")) == 1
    assert "trained on" not in capsys.readouterr().err


def test_the_demo_trains_the_tiny_model_with_its_quick_settings_and_returns_the_newest_checkpoint(tmp_path,
                                                                                               monkeypatch):
    from pathlib import Path

    from phase3_first_order_motion import demo, train

    calls = []

    def fake_train(argv):  # what a run leaves: its checkpoints, and torch on the thread count it asked for
        calls.append(argv)
        torch.set_num_threads(1)
        for step in (50, 100):
            (tmp_path / "run" / "checkpoints").mkdir(parents=True, exist_ok=True)
            (tmp_path / "run" / "checkpoints" / f"step_{step:08d}.pt").touch()
        return 0

    monkeypatch.setattr(train, "main", fake_train)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        newest = demo.train_tiny(tmp_path / "run", 100)
        assert torch.get_num_threads() == 2  # restored for the stages that follow
    finally:
        torch.set_num_threads(threads)
    assert newest == tmp_path / "run" / "checkpoints" / "step_00000100.pt"
    args = train.build_parser().parse_args(calls[0])
    assert (args.config, args.steps, Path(args.run_dir)) == ("tiny", 100, tmp_path / "run")
    assert (args.synthetic_videos, args.synthetic_frames, args.synthetic_fps) == (12, 24, 5.0)  # 4.8 s each
    assert (args.lr, args.lr_schedule, args.warmup_steps, args.clip_grad_norm) == (1e-3, "cosine", 50, 10.0)
    assert args.threads == 1


def test_the_demo_animates_one_held_out_person_with_another_ones_motion():
    from common.synthetic import render_clip
    from phase3_first_order_motion import demo

    source_person, driving_person, source, driving = demo.held_out_clips(64, 3)
    assert source_person != driving_person
    assert source.shape == (64, 64, 3) and driving.frames.shape == (3, 64, 64, 3)
    photo = render_clip(source_person, 1, size=64, seed=1, speech=False).frames[0]
    np.testing.assert_array_equal(source, photo)
