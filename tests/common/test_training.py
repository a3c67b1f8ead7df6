"""Training utilities: seeding, devices, autocast, gradient accumulation, finding a run's checkpoint,
metrics log, the loop.

The loop tests train a tiny MLP with dropout and random augmentation from all three global
generators (Python, NumPy, torch) across an epoch boundary, and check that stopping and resuming
gives *bit-identical* weights to an uninterrupted run.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from common.errors import UserError
from common.training import (
    Checkpointer,
    MetricsLog,
    TrainConfig,
    accumulate_gradients,
    add_train_args,
    autocast,
    epoch_generator,
    find_checkpoint,
    pick_device,
    save_checkpoint,
    seed_everything,
    split_batch,
    train_config_from_args,
    train_loop,
)
from common.training import loop as loop_module

# ---------------------------------------------------------------- seeding, devices, autocast


def test_seed_everything_repeats_every_generator():
    seed_everything(123)
    first = (random.random(), np.random.rand(), torch.rand(2).tolist())
    seed_everything(123)
    assert (random.random(), np.random.rand(), torch.rand(2).tolist()) == first


def test_pick_device(monkeypatch: pytest.MonkeyPatch):
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    for bad in ("tpu", "cuda:x", "gpu0"):
        with pytest.raises(UserError, match="unknown device"):
            pick_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU"):
        pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(UserError, match="does not exist"):
        pick_device("cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match="mps"):
        pick_device("mps")


def test_seed_everything_gives_other_seeds_other_streams_and_takes_any_size():
    draws = []
    for seed in (1, 2, 2**40 + 3):  # NumPy's legacy generator alone takes only 32-bit seeds
        seed_everything(seed)
        draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
    for generator in range(3):
        assert len({d[generator] for d in draws}) == 3, generator


def test_every_seed_and_epoch_pair_has_its_own_data_order():
    orders = {(seed, epoch): torch.randperm(1000, generator=epoch_generator(seed, epoch)).tolist()
              for seed in range(3) for epoch in range(3)}
    assert len({tuple(order) for order in orders.values()}) == 9
    assert torch.randperm(1000, generator=epoch_generator(1, 2)).tolist() == orders[1, 2]


def test_pick_device_reads_any_case_plain_cuda_and_mps_for_auto(monkeypatch: pytest.MonkeyPatch):
    assert pick_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda") == pick_device("Cuda") == torch.device("cuda")  # the first GPU, which exists
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError, match=r"has 2 GPU\(s\), cuda:0 to cuda:1$"):
        pick_device("cuda:5")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")  # no GPU, but Apple's


def test_autocast_cpu():
    cpu = torch.device("cpu")
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    for precision in ("fp32", "auto"):  # auto = fp32 on the CPU
        with autocast(cpu, precision):
            assert (a @ b).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with pytest.raises(UserError, match="fp16"):
        autocast(cpu, "fp16")
    with pytest.raises(UserError, match="unknown precision"):
        autocast(cpu, "int8")


@pytest.mark.parametrize(("capability", "expected"), [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_precision_is_bf16_from_ampere_on_and_fp16_before(monkeypatch, capability, expected):
    from common.training.device import default_precision, grad_scaler

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a CUDA scaler disables itself without
    cuda = torch.device("cuda")
    assert default_precision(cuda) == expected
    assert grad_scaler(cuda, "auto").is_enabled() == (expected == "fp16")
    assert default_precision(torch.device("cpu")) == "fp32"


def test_the_loss_scaler_is_off_on_the_cpu_and_fp16_is_refused_there():
    from common.training.device import grad_scaler

    cpu = torch.device("cpu")
    assert [grad_scaler(cpu, p).is_enabled() for p in ("auto", "fp32", "bf16")] == [False] * 3
    with pytest.raises(UserError, match="fp16 autocast needs a GPU"):  # said before any data is loaded
        grad_scaler(cpu, "fp16")
    with pytest.raises(UserError, match="unknown precision"):
        grad_scaler(cpu, "fp8")


def test_a_run_begun_without_a_loss_scaler_resumes_with_one(tmp_path: Path):
    """The scaler is saved by fp16 runs only: a checkpoint without one leaves it fresh; one with it
    brings back its scale (other missing entries are still an error)."""
    model = torch.nn.Linear(2, 1)
    Checkpointer(tmp_path, {"model": model}).save(step=1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    Checkpointer(tmp_path, {"model": model, "scaler": scaler}).load()
    assert scaler.get_scale() == 2.0**10
    scaler.scale(torch.ones(()))
    scaler.update(2.0**7)
    Checkpointer(tmp_path, {"model": model, "scaler": scaler}).save(step=2)
    again = torch.amp.GradScaler("cpu")
    Checkpointer(tmp_path, {"model": model, "scaler": again}).load()
    assert again.get_scale() == 2.0**7
    with pytest.raises(UserError, match="no 'optimizer' entry"):
        Checkpointer(tmp_path, {"model": model, "optimizer": torch.optim.SGD(model.parameters(), 0.1)}).load()


def test_every_trainer_spells_the_schedule_the_same_way_and_the_short_forms_agree():
    from common.training.schedule import add_schedule_args

    parser = argparse.ArgumentParser()
    add_schedule_args(parser)
    long = parser.parse_args(["--lr-schedule", "cosine", "--warmup-steps", "30"])
    short = parser.parse_args(["--cosine", "--warmup", "30"])
    assert vars(long) == vars(short) == {"lr_schedule": "cosine", "warmup_steps": 30}
    assert vars(parser.parse_args([])) == {"lr_schedule": "constant", "warmup_steps": 0}  # as published


# ---------------------------------------------------------------- gradient accumulation


def test_split_batch_keeps_structure():
    batch = {"x": torch.arange(10).view(5, 2), "meta": "clip-3", "pair": (torch.arange(5), torch.zeros(5, 1))}
    parts = split_batch(batch, 2)
    assert [p["x"].shape[0] for p in parts] == [3, 2]
    assert parts[1]["meta"] == "clip-3" and torch.equal(parts[1]["pair"][0], torch.tensor([3, 4]))


def _whole_batch(model: torch.nn.Module, batch: dict):
    """(loss_fn, the whole batch's MSE loss, its gradients); the model's gradients are left at zero."""

    def loss_fn(chunk: dict) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(chunk["x"]), chunk["y"])

    whole = loss_fn(batch)
    whole.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return loss_fn, whole, expected


def test_accumulated_gradients_equal_whole_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    batch = {"x": torch.randn(10, 6), "y": torch.randn(10, 1)}
    loss_fn, whole, expected = _whole_batch(model, batch)
    total = accumulate_gradients(loss_fn, batch, micro_batches=3)  # chunks of 4, 3, 3
    assert total == pytest.approx(whole.item(), rel=1e-6)
    for p, g in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-6)


def test_accumulation_refuses_no_micro_batches():
    batch = {"x": torch.randn(4, 2)}
    with pytest.raises(ValueError, match="micro_batches must be >= 1, got 0"):
        accumulate_gradients(lambda chunk: chunk["x"].sum(), batch, micro_batches=0)


def test_the_batch_size_is_that_of_the_first_tensor_after_values_that_are_not():
    from common.training.accumulate import batch_size

    assert batch_size({"name": "clip-3", "x": torch.zeros(4, 2)}) == 4
    assert batch_size(["clip-3", (None, torch.zeros(3)), torch.zeros(7)]) == 3
    with pytest.raises(ValueError, match="holds no tensor"):
        batch_size({"name": "clip-3"})


def test_accumulation_scales_every_micro_batch_loss_with_the_scaler():
    """An fp16 loss scaler's factor S reaches the gradients (unscaled at its step); the loss returned
    is the plain one."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    batch = {"x": torch.randn(6, 3), "y": torch.randn(6, 1)}
    loss_fn, whole, expected = _whole_batch(model, batch)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    assert accumulate_gradients(loss_fn, batch, micro_batches=2, scaler=scaler) == pytest.approx(whole.item())
    for p, g in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, 8.0 * g)


# ---------------------------------------------------------------- a run's checkpoint


@pytest.mark.parametrize("layout", ["run/checkpoints", "run"])
def test_find_checkpoint_takes_a_file_or_the_newest_checkpoint_of_a_run_folder(tmp_path: Path, layout: str):
    for step in (2, 10):  # step 10 is the newer one, although "step_2" sorts after it as text
        save_checkpoint(tmp_path / layout / f"step_{step}.pt", {"step": step})
    assert find_checkpoint(tmp_path / "run", "train.py") == tmp_path / layout / "step_10.pt"
    assert find_checkpoint(tmp_path / "any.pt", "train.py") == tmp_path / "any.pt"  # loading says if missing
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no checkpoint in .*empty \(train one with train\.py\)"):
        find_checkpoint(tmp_path / "empty", "train.py")


# ---------------------------------------------------------------- metrics log


def test_metrics_log_adds_columns_and_truncates(tmp_path: Path):
    log = MetricsLog(tmp_path / "metrics.csv")
    log.append(1, {"loss": 0.5})
    log.append(2, {"loss": 0.25, "lr": 0.1})  # a new column
    log.append(3, {"loss": 0.125, "lr": 0.1})
    data = log.read()
    assert data["step"].tolist() == [1, 2, 3] and np.isnan(data["lr"][0]) and data["loss"][2] == 0.125
    log.truncate_after(2)
    assert MetricsLog(tmp_path / "metrics.csv").read()["step"].tolist() == [1, 2]


def test_metrics_log_keeps_six_significant_digits(tmp_path: Path):
    log = MetricsLog(tmp_path / "metrics.csv")
    log.append(1, {"loss": 1 / 3, "lr": 2.5e-7})
    data = log.read()
    assert data["loss"][0] == pytest.approx(1 / 3, rel=2e-6) and data["lr"][0] == pytest.approx(2.5e-7)


def test_each_damaged_metrics_log_is_kept_under_the_next_free_name(tmp_path: Path):
    path = tmp_path / "metrics.csv"
    for damage in (b"loss,step\n0.5,1\n", b"step,loss\n1,oops\n"):
        path.write_bytes(damage)
        assert MetricsLog(path).read() == {}
    assert (tmp_path / "metrics.csv.damaged").read_bytes() == b"loss,step\n0.5,1\n"
    assert (tmp_path / "metrics.csv.damaged.1").read_bytes() == b"step,loss\n1,oops\n"


def test_a_log_damaged_under_an_open_metrics_log_restarts_with_a_header(tmp_path: Path):
    """The columns the log remembered belong to the file set aside: the next row starts a new file."""
    log = MetricsLog(tmp_path / "metrics.csv")
    log.append(1, {"loss": 0.5})
    (tmp_path / "metrics.csv").write_bytes(b"step,loss\n1,oops\n")
    log.truncate_after(1)  # finds the damage: set aside
    log.append(2, {"loss": 0.25})
    assert log.read()["step"].tolist() == [2] and log.read()["loss"].tolist() == [0.25]


def test_plot_metrics_draws_one_panel_per_metric_against_the_step(tmp_path: Path, monkeypatch):
    from common.training import metrics_log

    log = MetricsLog(tmp_path / "metrics.csv")
    for step in (1, 2):
        log.append(step, {"epoch": 0, "loss": 1 / step, "lr": 0.1})
    drawn = {}
    monkeypatch.setattr(metrics_log.writer, "save_figure", lambda fig, path: drawn.setdefault("fig", fig))
    metrics_log.plot_metrics(tmp_path / "metrics.csv", tmp_path / "metrics.png")
    axes = drawn["fig"].axes
    assert [ax.get_title() for ax in axes] == ["loss", "lr"]  # not the step itself, nor the epoch
    line = axes[0].lines[0]
    assert line.get_xdata().tolist() == [1, 2] and line.get_ydata().tolist() == [1, 0.5]


# ---------------------------------------------------------------- the loop


class _Run:
    """A tiny but fully random training run: dropout + augmentation from Python, NumPy and torch."""

    def __init__(self, run_dir: Path, init_seed: int, interrupt_at: int | None = None, how: str = "signal"):
        seed_everything(init_seed)  # different seeds give different initial weights
        self.model = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1)
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        data = torch.Generator().manual_seed(7)
        self.x, self.y = torch.randn(6, 4, generator=data), torch.randn(6, 1, generator=data)
        self.run_dir, self.interrupt_at, self.how = run_dir, interrupt_at, how
        objects = {"model": self.model, "optimizer": self.optimizer}
        self.checkpointer = Checkpointer(run_dir / "checkpoints", objects)

    def batches(self, epoch: int) -> DataLoader:
        """3 shuffled batches per epoch; the order depends only on the epoch."""
        dataset = TensorDataset(self.x, self.y)
        return DataLoader(dataset, batch_size=2, shuffle=True, generator=epoch_generator(0, epoch))

    def step(self, batch, step: int) -> dict[str, float]:
        if step == self.interrupt_at and self.how == "raise":
            raise KeyboardInterrupt  # as if Ctrl-C arrived before this step did anything
        x, y = batch
        x = x + 0.1 * torch.randn_like(x)  # augmentation from all three global generators
        x = x * float(np.random.uniform(0.9, 1.1)) * random.uniform(0.9, 1.1)
        self.optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        if step == self.interrupt_at and self.how == "signal":
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, in the middle of training
        return {"loss": loss.item()}

    def train(self, max_steps: int, preview_fn=None, extra: dict | None = None, **overrides):
        settings = {"checkpoint_every": 0, "preview_every": 0, "progress": False, **overrides}
        cfg = TrainConfig(run_dir=self.run_dir, max_steps=max_steps, **settings)
        return train_loop(self.step, self.batches, cfg, self.checkpointer, preview_fn=preview_fn, extra=extra)


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _assert_bit_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[torch.Tensor], np.ndarray]:
    """5 uninterrupted steps (crossing the epoch boundary after step 3)."""
    run = _Run(tmp_path_factory.mktemp("straight"), init_seed=1)
    result = run.train(5)
    assert (result.step, result.epoch, result.interrupted) == (5, 1, False)
    return _weights(run.model), MetricsLog(run.run_dir / "metrics.csv").read()["loss"]


def test_resume_is_bit_identical(tmp_path: Path, straight):
    first = _Run(tmp_path, init_seed=1)
    assert first.train(2).checkpoint.name == "step_00000002.pt"  # stops mid-epoch
    second = _Run(tmp_path, init_seed=99)  # fresh process: other weights, other generator states
    result = second.train(5)
    assert (result.step, result.interrupted) == (5, False)
    _assert_bit_identical(_weights(second.model), straight[0])
    np.testing.assert_array_equal(MetricsLog(tmp_path / "metrics.csv").read()["loss"], straight[1])


@pytest.mark.parametrize("how", ["signal", "raise"])
def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path: Path, straight, how: str):
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under nohup / `cmd &`
    interrupted = _Run(tmp_path, init_seed=1, interrupt_at=1 if how == "signal" else 2, how=how)
    result = interrupted.train(5)
    assert result.interrupted and result.step == 2
    assert result.checkpoint == tmp_path / "checkpoints" / "step_00000002.pt" and result.checkpoint.is_file()
    assert signal.getsignal(signal.SIGINT) is before  # the handler put back
    resumed = _Run(tmp_path, init_seed=5)
    assert resumed.train(5).step == 5
    _assert_bit_identical(_weights(resumed.model), straight[0])


def test_resuming_with_other_settings_says_which(tmp_path: Path, caplog):
    _Run(tmp_path, init_seed=1).train(2, extra={"lr": 0.01, "mouth_weight": 1.0})
    with caplog.at_level(logging.WARNING):
        _Run(tmp_path, init_seed=1).train(3, extra={"lr": 0.01, "mouth_weight": 4.0})
    assert "mouth_weight 1.0 -> 4.0" in caplog.text and "lr 0.01" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _Run(tmp_path, init_seed=1).train(4, extra={"lr": 0.01, "mouth_weight": 4.0})
    assert "other settings" not in caplog.text  # the same settings as the checkpoint: nothing to say


def test_resuming_with_the_same_tuples_and_paths_says_nothing(tmp_path: Path, caplog):
    """The checkpoint stores tuples as lists and paths as strings: equal settings are not "other"."""
    settings = {"channels": (8, 16), "data": tmp_path / "faces", "nested": {"sizes": (1, 2)}}
    _Run(tmp_path, init_seed=1).train(2, extra=settings)
    with caplog.at_level(logging.WARNING):
        _Run(tmp_path, init_seed=1).train(3, extra=settings)
    assert "other settings" not in caplog.text
    with caplog.at_level(logging.WARNING):
        _Run(tmp_path, init_seed=1).train(4, extra={**settings, "channels": (8, 32)})
    assert "channels [8, 16] -> [8, 32]" in caplog.text


@pytest.mark.parametrize(
    "damage",
    [b"step,loss\n1,0.5\n\xff\xfe\x00garbage\n", b"loss,step\n0.5,1\n", b"step,loss\n1,oops\n",
     b"step,loss\n1.5,0.5\n", b"step,loss\n1,0.5,0.7\n"],
    ids=["not-utf8", "no-step-first", "not-a-number", "step-not-an-integer", "more-values-than-columns"],
)
def test_a_damaged_metrics_log_is_set_aside_and_the_run_resumes(tmp_path: Path, caplog, damage: bytes):
    _Run(tmp_path, init_seed=1).train(2)
    (tmp_path / "metrics.csv").write_bytes(damage)
    with caplog.at_level(logging.WARNING):
        result = _Run(tmp_path, init_seed=1).train(3)
    assert result.step == 3 and (tmp_path / "checkpoints" / "step_00000002.pt").is_file()
    assert (tmp_path / "metrics.csv.damaged").read_bytes() == damage
    assert "metrics.csv is damaged" in caplog.text and "metrics.csv.damaged" in caplog.text
    assert MetricsLog(tmp_path / "metrics.csv").read()["step"].tolist() == [3]


def test_loop_writes_previews_checkpoints_and_plot(tmp_path: Path):
    run = _Run(tmp_path, init_seed=3)
    previews = []

    def preview(step: int) -> np.ndarray:
        previews.append(step)
        return np.full((128, 128, 3), 10 * step, dtype=np.uint8)

    run.checkpointer.keep_last = 2
    result = run.train(5, preview_fn=preview, preview_every=2, checkpoint_every=1)
    assert previews == [2, 4, 5]  # every second step, and the last (a short run still shows one)
    saved = Image.open(tmp_path / "previews" / "step_00000004.png")
    assert saved.size == (128, 128)
    assert [p.name for p in run.checkpointer.checkpoints()] == ["step_00000004.pt", "step_00000005.pt"]
    assert result.checkpoint.name == "step_00000005.pt"
    assert Image.open(tmp_path / "metrics.png").size[0] > 100
    assert MetricsLog(tmp_path / "metrics.csv").read()["step"].tolist() == [1, 2, 3, 4, 5]


def test_a_preview_that_cannot_be_written_does_not_stop_training(tmp_path: Path, monkeypatch, caplog):
    def full_disk(path, rgb):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(loop_module.writer, "save_image", full_disk)
    with caplog.at_level(logging.WARNING):
        result = _Run(tmp_path, init_seed=3).train(
            4, preview_fn=lambda step: np.zeros((8, 8, 3), np.uint8), preview_every=2)
    assert result.step == 4 and result.checkpoint.name == "step_00000004.pt"
    assert "preview step_00000002.png not written (No space left on device)" in caplog.text


def test_loop_rejects_empty_data_and_unwanted_resume(tmp_path: Path):
    run = _Run(tmp_path, init_seed=3)
    cfg = TrainConfig(run_dir=tmp_path, max_steps=2, progress=False)
    with pytest.raises(UserError, match="empty"):
        train_loop(run.step, lambda epoch: [], cfg, run.checkpointer)
    run.train(1)
    with pytest.raises(UserError, match="already holds checkpoints"):
        run.train(2, resume=False)


def test_train_flags_fill_the_config():
    parser = argparse.ArgumentParser()
    add_train_args(parser, TrainConfig(max_steps=7, preview_every=3))
    args = parser.parse_args(["--run-dir", "runs/x", "--checkpoint-every", "5", "--no-progress"])
    cfg = train_config_from_args(args, TrainConfig(max_steps=7, log_every=4))
    assert (cfg.run_dir, cfg.max_steps, cfg.checkpoint_every, cfg.preview_every) == (Path("runs/x"), 7, 5, 3)
    assert (cfg.log_every, cfg.resume, cfg.progress, args.precision) == (4, True, False, "auto")


def test_the_last_step_is_logged_whatever_log_every(tmp_path: Path):
    """metrics.csv gets every `log_every`-th step and the last one (destination: test_training.py)."""
    cfg = TrainConfig(run_dir=tmp_path, max_steps=5, checkpoint_every=0, preview_every=0, log_every=2,
                      progress=False)
    train_loop(lambda batch, step: {"loss": 1.0 / (step + 1)}, lambda epoch: [0, 1, 2], cfg,
               Checkpointer(tmp_path / "checkpoints", {}))
    assert MetricsLog(tmp_path / "metrics.csv").read()["step"].tolist() == [2, 4, 5]


def test_the_cosine_schedule_stays_at_0_past_its_end_and_is_constant_without_a_length():
    from common.training.schedule import lr_factor

    assert lr_factor(150, 100, cosine=True) == pytest.approx(0.0)  # not back up the cosine
    assert lr_factor(5, 0, cosine=True) == 1.0  # no length known: no decay (and no division by 0)
