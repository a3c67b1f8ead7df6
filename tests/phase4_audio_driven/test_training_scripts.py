"""train_syncnet.py and train.py on a tiny synthetic set: they run, resume and export published layouts."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from common.errors import UserError
from common.impl import load


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _group_bce(audio: torch.Tensor, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """group_loss's two halves by hand when windows 0 and 1 are each other's only negatives:
    (BCE of every in-sync cosine, BCE of the two cross cosines of windows 0 and 1)."""
    cos = (face @ audio.T).clamp(0, 1)  # (faces, audio)
    return -torch.log(cos.diagonal()).mean(), -torch.log(1 - torch.stack([cos[0, 1], cos[1, 0]])).mean()


@pytest.mark.slow  # ~20 s of CPU: renders a person, two short runs and a resume
@pytest.mark.todo("p4")
def test_train_expert_resume_then_generator(tmp_path):
    from phase4_audio_driven import train, train_syncnet

    data = ["--identities", "1", "--frames", "20", "--cache", str(tmp_path / "clips.npz"), "--no-progress",
            "--device", "cpu", "--width", "0.0625"]
    expert_dir = tmp_path / "expert"
    argv = [*data, "--run-dir", str(expert_dir), "--batch-size", "2", "--checkpoint-every", "1",
            "--eval-identities", "0", "--warmup", "2", "--cosine", "--teacher-step", "1"]
    assert train_syncnet.main([*argv, "--steps", "2"]) == 0
    assert train_syncnet.main([*argv, "--steps", "3"]) == 0  # resumes at step 2
    assert [r["step"] for r in rows(expert_dir / "metrics.csv")] == ["1", "2", "3"]
    ckpt = torch.load(expert_dir / "lipsync_expert.pth", weights_only=True)
    assert {"state_dict", "optimizer", "global_step", "global_epoch"} <= set(ckpt)
    assert ckpt["global_step"] == 3
    model = load("phase4_audio_driven", "model")
    assert model.load_syncnet(expert_dir / "lipsync_expert.pth").width == 0.0625
    teacher = torch.load(expert_dir / "lipsync_teacher.pth", weights_only=True)  # the expert after step 1
    assert teacher["global_step"] == 1
    assert any(not torch.equal(teacher["state_dict"][k], v) for k, v in ckpt["state_dict"].items())

    gen_dir = tmp_path / "generator"
    assert train.main([*data, "--run-dir", str(gen_dir), "--expert", str(expert_dir / "lipsync_teacher.pth"),
                       "--batch-size", "1", "--steps", "2", "--eval-every", "1", "--preview-every", "2",
                       "--sync-threshold", "10", "--sync-weight", "0.05", "--disc", "--disc-lr", "3e-5"]) == 0
    log = rows(gen_dir / "metrics.csv")
    assert float(log[0]["sync_weight"]) == pytest.approx(0.05)  # switched on at the first evaluation
    assert float(log[1]["sync"]) > 0
    assert len(list((gen_dir / "previews").glob("*.png"))) == 1
    generator = model.load_generator(gen_dir / "wav2lip.pth")
    assert generator.width == 0.0625
    disc = torch.load(gen_dir / "visual_quality_disc.pth", weights_only=True)
    assert disc["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-5)  # its own rate
    gen = torch.load(gen_dir / "wav2lip.pth", weights_only=True)
    assert gen["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # the generator's (default)


@pytest.mark.todo("p4")  # ~6 s: renders a person and trains both networks two steps
def test_fp16_training_scales_every_loss_and_saves_the_scaler(tmp_path, forced_fp16_scaler):
    from phase4_audio_driven import train, train_syncnet

    data = ["--identities", "1", "--frames", "20", "--cache", str(tmp_path / "clips.npz"), "--no-progress",
            "--device", "cpu", "--width", "0.0625", "--steps", "2"]
    scaler = forced_fp16_scaler(train_syncnet)
    assert train_syncnet.main([*data, "--run-dir", str(tmp_path / "expert"), "--batch-size", "2",
                               "--eval-identities", "0"]) == 0
    assert dict(scaler.calls) == {"scale": 2, "step": 2, "update": 2}
    assert torch.load(tmp_path / "expert" / "checkpoints" / "step_00000002.pt",
                      weights_only=True)["scaler"]["_growth_tracker"] == 2
    scaler = forced_fp16_scaler(train)
    expert = str(tmp_path / "expert" / "lipsync_expert.pth")
    assert train.main([*data, "--run-dir", str(tmp_path / "generator"), "--batch-size", "1", "--disc",
                       "--expert", expert, "--preview-every", "0"]) == 0
    assert dict(scaler.calls) == {"scale": 4, "step": 4, "update": 2}  # generator and discriminator
    saved = torch.load(tmp_path / "generator" / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert "scaler" in saved


def test_expert_teacher_step_must_lie_within_the_run(tmp_path):
    from phase4_audio_driven import train_syncnet

    with pytest.raises(UserError, match="--teacher-step"):  # refused before any data is made
        train_syncnet.main(["--run-dir", str(tmp_path), "--steps", "3", "--teacher-step", "4"])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("width", ["0", "nan", "inf"])
def test_expert_width_must_be_a_positive_number(tmp_path, width):
    from phase4_audio_driven import train_syncnet

    with pytest.raises(UserError, match="--width"):  # refused before any data is made
        train_syncnet.main(["--run-dir", str(tmp_path), "--width", width])
    assert not any(tmp_path.iterdir())


def test_a_cache_file_of_something_else_is_refused_and_kept(tmp_path):
    import numpy as np

    from phase4_audio_driven.data import read_cache

    other = tmp_path / "clips.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(UserError, match="not a clip cache"):
        read_cache(other)
    assert other.is_file()
    empty = tmp_path / "empty.npz"
    empty.touch()  # e.g. a file made by mistake: np.load raises EOFError
    with pytest.raises(UserError, match="not a clip cache"):
        read_cache(empty)
    array = tmp_path / "array.npy"
    np.save(array, np.zeros(3))  # one plain array: np.load returns it, not an archive
    with pytest.raises(UserError, match="not a clip cache"):
        read_cache(array)


def test_short_clips_give_shifted_examples_from_clips_long_enough_or_one_line():
    """A 9-frame clip has windows 0..4 only: none 5 frames from window 2. Its negatives now come from a
    clip long enough (a ValueError from rng.choice before); with no such clip, one line."""
    import numpy as np

    from phase4_audio_driven.data import syncnet_batch

    rng = np.random.default_rng(0)
    batch = syncnet_batch([_clip(9, seed=0), _clip(30, seed=1)], 32, rng, min_shift=5, paired=True)
    assert batch["labels"].sum() == 16 and batch["faces"].shape[0] == 32
    with pytest.raises(UserError, match="smaller --min-shift"):
        syncnet_batch([_clip(9, seed=0)], 8, rng, min_shift=5)


def _clip(frames: int = 30, seed: int = 0):
    """A TalkingClip of random crops and mel with the published index rules, no audio encoder needed."""
    import numpy as np

    from phase4_audio_driven.data import WINDOW, TalkingClip

    rng = np.random.default_rng(seed)
    starts = (80 * np.arange(frames)) // 25  # the expert's rule: window of frame n at int(80 n / 25)
    usable = np.arange(frames) <= frames - WINDOW
    return TalkingClip(rng.integers(0, 256, (frames, 96, 96, 3), dtype=np.uint8),
                       rng.standard_normal((80, int(starts[-1]) + 16)).astype(np.float32), 25.0,
                       np.where(usable, starts, -1), np.where(usable, starts, -1), usable)


def test_the_clip_cache_round_trips_and_leaves_no_temporary_file(tmp_path):
    import numpy as np

    from phase4_audio_driven.data import read_cache, write_cache

    clips = [_clip(seed=0), _clip(20, seed=1)]
    write_cache(tmp_path / "clips.npz", clips)
    assert [p.name for p in tmp_path.iterdir()] == ["clips.npz"]
    for read, written in zip(read_cache(tmp_path / "clips.npz"), clips, strict=True):
        assert read.fps == written.fps
        for name in ("faces", "mel", "syncnet_start", "indiv_start", "usable"):
            np.testing.assert_array_equal(getattr(read, name), getattr(written, name))


def test_sync_accuracy_of_an_expert_that_calls_everything_in_sync_is_one_half():
    from phase4_audio_driven import train_syncnet

    class AlwaysInSync(torch.nn.Module):  # the same embedding for every window: P_sync = 1
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Parameter(torch.ones(1, 512))

        def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.embedding.expand(len(audio), -1), self.embedding.expand(len(faces), -1)

    assert train_syncnet.sync_accuracy(AlwaysInSync(), [_clip()], pairs=16) == 0.5  # the in-sync half


def test_lr_factor_warmup_then_cosine():
    from common.training.schedule import lr_factor

    assert lr_factor(0, 100) == 1.0  # published: constant
    assert lr_factor(0, 100, warmup=10) == pytest.approx(0.1)
    assert lr_factor(9, 100, warmup=10) == pytest.approx(1.0)
    assert lr_factor(50, 100, cosine=True) == pytest.approx(0.5)
    assert lr_factor(100, 100, warmup=10, cosine=True) == pytest.approx(0.0)
    factors = [lr_factor(s, 100, warmup=10, cosine=True) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(factors[:-1], factors[1:], strict=True))  # decays after warm-up


def test_generator_sync_weight_flag():
    from common.errors import UserError
    from phase4_audio_driven import train

    parse = train.build_parser().parse_args
    assert parse(["--expert", "e.pth"]).sync_weight == pytest.approx(0.03)  # published
    assert parse(["--expert", "e.pth", "--sync-weight", "0.1"]).sync_weight == pytest.approx(0.1)
    with pytest.raises(UserError, match="sync-weight"):
        train.main(["--expert", "e.pth", "--sync-weight", "1.5"])
    with pytest.raises(UserError, match="disc-lr"):
        train.main(["--expert", "e.pth", "--disc", "--disc-lr", "0"])


@pytest.mark.todo("p4.audio", "p4.sync.loss")
def test_group_batches_pair_every_window_of_a_clip():
    import numpy as np

    from phase4_audio_driven import data, train_syncnet

    rng = np.random.default_rng(0)
    audio_encoder = load("phase4_audio_driven", "audio_encoder")
    clips = [
        data.make_clip(rng.integers(0, 256, (30, 96, 96, 3), dtype=np.uint8),
                       (0.1 * rng.standard_normal(int(1.2 * 16000))).astype(np.float32), 25.0, audio_encoder)
        for _ in range(2)
    ]
    batch = data.syncnet_group_batch(clips, 8, np.random.default_rng(1), group=4)
    assert batch["faces"].shape == (8, 15, 48, 96) and batch["audio"].shape == (8, 1, 80, 16)
    assert batch["clip"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    for c in (0, 1):  # distinct windows per clip, each with its own audio
        assert len(set(batch["start"][4 * c : 4 * c + 4].tolist())) == 4
    for b in range(8):
        clip = next(c for c in clips if torch.equal(data.lower_halves(
            c.faces[int(batch["start"][b]) : int(batch["start"][b]) + 5]), batch["faces"][b]))
        s = int(clip.syncnet_start[int(batch["start"][b])])
        assert torch.equal(batch["audio"][b, 0], torch.from_numpy(clip.mel[:, s : s + 16]))

    # 2 clips x 2 windows, starts 0 and 5 (>= min_shift 3): positives on the diagonal, 1 negative per window
    lip_sync = load("phase4_audio_driven", "lip_sync")
    pairs = {"clip": torch.tensor([0, 0, 1, 1]), "start": torch.tensor([0, 5, 0, 1])}  # clip 1: too close
    audio = torch.nn.functional.normalize(torch.rand(4, 8), dim=1)
    face = torch.nn.functional.normalize(torch.rand(4, 8), dim=1)
    pos, neg = _group_bce(audio, face)
    loss = train_syncnet.group_loss(lip_sync.sync_loss, audio, face, pairs, min_shift=3)
    assert float(loss) == pytest.approx(float(0.5 * (pos + neg)), rel=1e-5)
    with pytest.raises(UserError, match="group"):
        data.syncnet_group_batch(clips, 6, np.random.default_rng(1), group=4)
    aug = data.syncnet_group_batch(clips, 8, np.random.default_rng(1), group=4, augment=True)
    assert aug["start"][:4].tolist() == batch["start"][:4].tolist()  # the same windows, recoloured
    assert not torch.equal(aug["faces"], batch["faces"]) and aug["audio"].abs().max() <= 4.0


def test_generator_mouth_weight_flag():
    from phase4_audio_driven import train

    parse = train.build_parser().parse_args
    assert parse(["--expert", "e.pth"]).mouth_weight == 1.0  # published: the plain L1
    assert parse(["--expert", "e.pth", "--mouth-weight", "4"]).mouth_weight == 4.0
    with pytest.raises(UserError, match="mouth-weight"):
        train.main(["--expert", "e.pth", "--mouth-weight", "0"])


@pytest.mark.parametrize("script", ["train", "train_syncnet"])
@pytest.mark.parametrize("flags", [["--lr", "-1"], ["--lr", "nan"], ["--steps", "0"]],
                         ids=["neg-lr", "nan-lr", "zero-steps"])
def test_trainers_refuse_a_bad_learning_rate_or_no_steps_in_one_line(tmp_path, one_error_line, script, flags):
    import importlib

    from common.cli import run

    main = importlib.import_module(f"phase4_audio_driven.{script}").main
    argv = ["--run-dir", str(tmp_path / "run"), "--expert", str(tmp_path / "e.pth"), *flags]
    assert run(main, argv if script == "train" else argv[:2] + flags) == 2
    assert "--lr must be a positive number and --steps at least 1" in one_error_line()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("size", ["0", "-5", "63", "2049"])
def test_expert_trainer_refuses_a_synthetic_frame_size_out_of_range_before_rendering(tmp_path, one_error_line,
                                                                                   size):
    from common.cli import run
    from phase4_audio_driven import train_syncnet

    argv = ["--run-dir", str(tmp_path / "run"), "--identities", "1", "--frames", "20", "--frame-size", size,
            "--cache", str(tmp_path / "clips.npz"), "--device", "cpu"]
    assert run(train_syncnet.main, argv) == 2
    assert f"--frame-size must be between 64 and 2048 pixels, got {size}" in one_error_line()
    assert not (tmp_path / "clips.npz").exists()


def test_group_batches_draw_distinct_windows_from_a_clip_with_just_enough():
    from phase4_audio_driven.data import syncnet_group_batch

    clip = _clip(8)  # windows 0..3 only: exactly --group 4
    for seed in range(5):
        batch = syncnet_group_batch([clip], 8, np.random.default_rng(seed), group=4)
        for c in (0, 1):
            assert sorted(batch["start"][4 * c : 4 * c + 4].tolist()) == [0, 1, 2, 3], seed


def test_a_group_of_one_window_is_refused():
    from phase4_audio_driven.data import syncnet_group_batch

    with pytest.raises(UserError, match="--group must be at least 2"):
        syncnet_group_batch([_clip(30)], 4, np.random.default_rng(0), group=1)


def test_windows_taken_from_a_longer_clip_for_a_short_one_are_augmented_too(monkeypatch):
    """A short clip has no window min_shift away: the off-sync item takes one from a longer clip. That
    window is augmented like every other (here augmentation blanks the faces, so all are alike)."""
    from phase4_audio_driven import data

    monkeypatch.setattr(data, "augment_faces", lambda faces, rng, aug=None: np.zeros_like(faces))
    batch = data.syncnet_batch([_clip(9, seed=0), _clip(30, seed=1)], 32, np.random.default_rng(0),
                               min_shift=5, augment=True)
    assert torch.unique(batch["faces"]).numel() == 1


@pytest.mark.todo("p4.sync.loss")
def test_group_loss_counts_windows_exactly_min_shift_apart_as_negatives():
    from phase4_audio_driven import train_syncnet

    lip_sync = load("phase4_audio_driven", "lip_sync")
    pairs = {"clip": torch.tensor([0, 0]), "start": torch.tensor([0, 5])}  # 5 apart: --min-shift 5
    torch.manual_seed(0)
    audio = torch.nn.functional.normalize(torch.rand(2, 8), dim=1)
    face = torch.nn.functional.normalize(torch.rand(2, 8), dim=1)
    pos, neg = _group_bce(audio, face)
    loss = train_syncnet.group_loss(lip_sync.sync_loss, audio, face, pairs, min_shift=5)
    assert float(loss) == pytest.approx(float(0.5 * (pos + neg)), rel=1e-5)


def test_group_with_paired_is_refused_before_any_work(tmp_path):
    from phase4_audio_driven import train_syncnet

    with pytest.raises(UserError, match="go without --paired"):
        train_syncnet.main(["--run-dir", str(tmp_path / "run"), "--batch-size", "4", "--group", "2",
                            "--paired"])
    assert not (tmp_path / "run").exists()


@pytest.mark.todo("p4")
def test_the_teacher_is_the_expert_after_teacher_step_steps(tmp_path):
    from phase4_audio_driven import train_syncnet

    argv = ["--identities", "1", "--frames", "15", "--cache", str(tmp_path / "clips.npz"), "--no-progress",
            "--device", "cpu", "--width", "0.0625", "--run-dir", str(tmp_path / "expert"), "--batch-size",
            "2", "--eval-identities", "0", "--steps", "1", "--teacher-step", "1"]
    assert train_syncnet.main(argv) == 0
    teacher = torch.load(tmp_path / "expert" / "lipsync_teacher.pth", weights_only=True)  # after step 1
    final = torch.load(tmp_path / "expert" / "lipsync_expert.pth", weights_only=True)  # also step 1
    assert teacher["global_step"] == final["global_step"] == 1
    assert all(torch.equal(v, final["state_dict"][k]) for k, v in teacher["state_dict"].items())


# ---------------------------------------------------------------- train.py on random clips (no rendering)


def _talking_clips(count: int = 2) -> list:
    """Random 20-frame clips of random crops and noise, through make_clip (no person rendered)."""
    from phase4_audio_driven.data import make_clip

    rng = np.random.default_rng(0)
    audio_encoder = load("phase4_audio_driven", "audio_encoder")
    return [make_clip(rng.integers(0, 256, (20, 96, 96, 3), dtype=np.uint8),
                      (0.1 * rng.standard_normal(int(0.8 * 16000))).astype(np.float32), 25.0, audio_encoder)
            for _ in range(count)]


def _generator_run(tmp_path, monkeypatch, *flags: str, clips: list | None = None, expect: int = 0):
    """train.py for 2 steps of one window on two random clips (the last held out) and an untrained
    expert; returns the run folder."""
    from phase4_audio_driven import train

    model = load("phase4_audio_driven", "model")
    torch.manual_seed(0)
    expert = tmp_path / "expert.pth"
    torch.save(model.checkpoint_dict(model.SyncNet(0.0625), None, 0, 0), expert)
    clips = clips or _talking_clips()
    monkeypatch.setattr(train, "load_clips", lambda args, encoder, seed: clips)
    run_dir = tmp_path / "w2l"
    argv = ["--expert", str(expert), "--run-dir", str(run_dir), "--width", "0.0625", "--batch-size", "1",
            "--steps", "2", "--device", "cpu", "--no-progress", "--preview-every", "0", *flags]
    assert train.main(argv) == expect
    return run_dir


@pytest.mark.todo("p4")
def test_generator_and_discriminator_rates_follow_the_schedule_each_from_its_own_base(tmp_path, monkeypatch):
    run_dir = _generator_run(tmp_path, monkeypatch, "--lr", "1e-3", "--cosine", "--disc", "--disc-lr", "3e-5")
    half = 0.5 * (1 + np.cos(np.pi * 1 / 2))  # the cosine factor of step index 1 of 2
    assert [float(r["lr"]) for r in rows(run_dir / "metrics.csv")] == pytest.approx([1e-3, 1e-3 * half])
    gen = torch.load(run_dir / "wav2lip.pth", weights_only=True)["optimizer"]["param_groups"][0]
    disc = torch.load(run_dir / "visual_quality_disc.pth", weights_only=True)["optimizer"]["param_groups"][0]
    assert gen["lr"] == pytest.approx(1e-3 * half) and disc["lr"] == pytest.approx(3e-5 * half)
    assert tuple(gen["betas"]) == tuple(disc["betas"]) == (0.5, 0.999)  # as published


@pytest.mark.todo("p4")
def test_the_sync_loss_stays_off_until_the_held_out_evaluation_every_eval_every_steps(tmp_path, monkeypatch):
    """--sync-threshold 0 is never reached: E_sync is neither weighted nor computed (logged 0), and the
    held-out loss is measured after step 2 only (--eval-every 2). The held-out clip is never trained on."""
    from phase4_audio_driven import train

    drawn = []
    generator_batch = train.generator_batch

    def recording(clips, batch, rng):
        drawn.append(clips)
        return generator_batch(clips, batch, rng)

    monkeypatch.setattr(train, "generator_batch", recording)
    trained, held_out = clips = _talking_clips()
    run_dir = _generator_run(tmp_path, monkeypatch, "--eval-every", "2", "--sync-threshold", "0", clips=clips)
    log = rows(run_dir / "metrics.csv")
    assert [r["val_sync"] != "" for r in log] == [False, True]
    assert [float(r["sync"]) for r in log] == [0.0, 0.0] and [float(r["sync_weight"]) for r in log] == [0, 0]
    assert len(drawn) >= 3 and drawn[0] == [held_out]  # the evaluation batch first, then training's
    assert all(len(d) == 1 and d[0] is trained for d in drawn[1:])


@pytest.mark.todo("p4")
def test_the_sync_weight_threshold_and_mouth_weight_flags_reach_the_loss(tmp_path, monkeypatch):
    """--sync-threshold 10: on after the first evaluation, at --sync-weight. Step 1 (s_w still 0) optimises
    the mouth-weighted L1 (--mouth-weight 4), which differs from the plain `l1` logged beside it."""
    log = rows(_generator_run(tmp_path, monkeypatch, "--eval-every", "1", "--sync-threshold", "10",
                              "--sync-weight", "0.05", "--mouth-weight", "4") / "metrics.csv")
    assert [float(r["sync_weight"]) for r in log] == pytest.approx([0.05, 0.05])
    assert float(log[0]["sync"]) == 0 and float(log[1]["sync"]) > 0
    assert float(log[0]["total"]) != pytest.approx(float(log[0]["l1"]), rel=1e-3)


@pytest.mark.todo("p4")
def test_ctrl_c_in_generator_training_exits_130(tmp_path, monkeypatch):
    w2l = load("phase4_audio_driven", "wav2lip")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(w2l, "generator_loss", interrupted)
    run_dir = _generator_run(tmp_path, monkeypatch, expect=130)
    assert (run_dir / "wav2lip.pth").is_file()


def test_the_sync_weight_survives_a_checkpoint_round_trip():
    from phase4_audio_driven.train import SyncWeight

    on = SyncWeight()
    on.value = 0.03
    resumed = SyncWeight()
    resumed.load_state_dict(on.state_dict())
    assert resumed.value == 0.03 and SyncWeight().value == 0.0


def test_generator_preview_rows_are_target_masked_input_reference_output():
    from phase4_audio_driven.train import preview_image

    shade = [0.2, 0.4, 0.6, 0.8]  # one grey per row
    grey = [torch.full((1, 3, 5, 96, 96), value) for value in shade]
    batch = {"target": grey[0], "faces": torch.cat([grey[1], grey[2]], dim=1)}  # [masked | reference]
    image = preview_image(batch, grey[3])
    assert image.shape == (4 * 96, 5 * 96, 3)
    for row, value in enumerate(shade):
        assert np.all(image[96 * row : 96 * (row + 1)] == round(255 * value)), row


@pytest.mark.parametrize("flags", [["--width", "0"], ["--batch-size", "0"], ["--eval-every", "0"],
                                   ["--warmup-steps", "-1"], ["--sync-weight", "1"], ["--width", "nan"],
                                   ["--mouth-weight", "nan"], ["--mouth-weight", "inf"], ["--disc-lr", "nan"],
                                   ["--disc-lr", "inf"], ["--sync-threshold", "nan"]],
                         ids=["width", "batch-size", "eval-every", "warmup-steps", "sync-weight", "width-nan",
                              "mouth-weight-nan", "mouth-weight-inf", "disc-lr-nan", "disc-lr-inf",
                              "sync-threshold-nan"])
def test_generator_refuses_flags_out_of_range_in_one_line(tmp_path, one_error_line, flags):
    from common.cli import run
    from phase4_audio_driven import train

    assert run(train.main, ["--run-dir", str(tmp_path / "run"), "--expert", "e.pth", *flags]) == 2
    assert flags[0] in one_error_line()
    assert not (tmp_path / "run").exists()


def test_generator_accepts_the_edges_of_its_ranges(monkeypatch):
    """--sync-weight 0 (no sync loss) and --warmup-steps 0 pass the checks: the run goes on to its data."""
    from phase4_audio_driven import train

    class Checked(Exception):
        pass

    def reached(*args):
        raise Checked

    monkeypatch.setattr(train, "check_data_consent", reached)
    with pytest.raises(Checked):
        train.main(["--expert", "e.pth", "--sync-weight", "0", "--warmup-steps", "0", "--width", "0.01"])
