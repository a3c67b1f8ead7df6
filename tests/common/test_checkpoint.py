"""Checkpoints: round trip, atomic writes, clear errors for bad files, Checkpointer bookkeeping."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import UserError
from common.training import Checkpointer, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def _state(value: float) -> dict:
    return {"weights": torch.full((3, 4), value), "step": 7, "names": ["a", "b"], "nested": {"x": 1.5}}


def _assert_same(a: dict, b: dict) -> None:
    assert torch.equal(a["weights"], b["weights"])
    assert {k: v for k, v in a.items() if k != "weights"} == {k: v for k, v in b.items() if k != "weights"}


def test_save_load_round_trip(tmp_path: Path):
    path = save_checkpoint(tmp_path / "sub" / "model.pt", _state(1.0))
    _assert_same(load_checkpoint(path), _state(1.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp file left behind


def test_failed_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = save_checkpoint(tmp_path / "model.pt", _state(1.0))

    def dies_halfway(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, _state(2.0))
    monkeypatch.undo()
    _assert_same(load_checkpoint(path), _state(1.0))
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]


def test_bad_files_raise_one_line_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all")
    good = save_checkpoint(tmp_path / "good.pt", _state(1.0))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for bad in (garbage, truncated, empty):
        with pytest.raises(UserError) as info:
            load_checkpoint(bad)
        assert "\n" not in str(info.value) and str(bad) in str(info.value)
        assert "corrupt" in str(info.value) and "safe load" not in str(info.value)  # junk, not unsafe

    unsafe = tmp_path / "unsafe.pt"
    torch.save({"obj": Path("x")}, unsafe)  # a pickled Python object: refused by weights_only
    with pytest.raises(UserError, match="safe load refuses"):
        load_checkpoint(unsafe)


def test_rng_state_is_weights_only_and_restores_every_generator(tmp_path: Path):
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    random.random()  # move the generators on
    set_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == expected


def test_rng_state_restores_the_gaussian_each_generator_keeps_for_its_next_draw(tmp_path: Path):
    """Python's `random.gauss` and NumPy's legacy normal draw two values at a time and keep one."""
    random.seed(0)
    np.random.seed(0)
    random.gauss(0, 1)  # the first of a pair: the second is kept
    np.random.standard_normal()
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (random.gauss(0, 1), np.random.standard_normal())
    set_rng_state(load_checkpoint(path)["rng"])
    assert (random.gauss(0, 1), np.random.standard_normal()) == expected


def test_checkpointer_round_trip_keeps_last_and_rejects_mismatch(tmp_path: Path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()  # optimizer now has state (exp_avg, ...)
    ckpt = Checkpointer(tmp_path, {"generator": model, "optimizer_generator": optimizer}, keep_last=2)
    for step in (1, 2, 3):
        ckpt.save(step, epoch=step // 2, batch_in_epoch=1, extra={"lr": 0.1, "data": Path("clips")})
    assert [p.name for p in ckpt.checkpoints()] == ["step_00000002.pt", "step_00000003.pt"]
    raw = load_checkpoint(ckpt.latest())
    assert {"generator", "optimizer_generator", "step", "epoch", "rng"} <= set(raw)  # names are top-level

    model2 = torch.nn.Linear(3, 2)
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    state = Checkpointer(tmp_path, {"generator": model2, "optimizer_generator": optimizer2}).load()
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 1, 1)
    assert state["extra"] == {"lr": 0.1, "data": "clips"}  # the Path was stored as a string
    assert torch.equal(model2.weight, model.weight)
    adam_moment = [opt.state_dict()["state"][0]["exp_avg"] for opt in (optimizer, optimizer2)]
    assert torch.equal(*adam_moment)

    with pytest.raises(UserError, match="does not fit"):
        Checkpointer(tmp_path, {"generator": torch.nn.Linear(5, 2)}).load()
    with pytest.raises(UserError, match="no 'kp_detector' entry"):
        Checkpointer(tmp_path, {"kp_detector": model2}).load()
    with pytest.raises(UserError, match="no checkpoint"):
        Checkpointer(tmp_path / "empty", {"generator": model2}).load()


def test_a_resumed_optimizer_keeps_its_state_but_takes_the_new_learning_rate(tmp_path: Path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    Checkpointer(tmp_path, {"model": model, "optimizer": optimizer}).save(1)

    model2 = torch.nn.Linear(3, 2)
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=1e-2)  # the resumed run's --lr
    Checkpointer(tmp_path, {"model": model2, "optimizer": optimizer2}).load()
    assert optimizer2.param_groups[0]["lr"] == 1e-2 and optimizer2.param_groups[0]["betas"] == (0.9, 0.999)
    moments = [opt.state_dict()["state"][0]["exp_avg"] for opt in (optimizer, optimizer2)]
    assert torch.equal(*moments)


def test_a_checkpoint_that_is_not_a_dict_is_a_one_line_error(tmp_path: Path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)  # loads safely, but is no checkpoint
    with pytest.raises(UserError, match="holds a Tensor, expected a dict"):
        load_checkpoint(path)


def test_a_saved_loss_scaler_is_restored_not_skipped_as_optional(tmp_path: Path):
    model = torch.nn.Linear(3, 2)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    Checkpointer(tmp_path, {"model": model, "scaler": scaler}).save(1)
    resumed = torch.amp.GradScaler("cpu", init_scale=8.0)
    Checkpointer(tmp_path, {"model": torch.nn.Linear(3, 2), "scaler": resumed}).load()
    assert resumed.get_scale() == 1024.0


def test_a_missing_entry_error_lists_the_objects_the_checkpoint_holds_not_its_own_fields(tmp_path: Path):
    Checkpointer(tmp_path, {"generator": torch.nn.Linear(3, 2)}).save(1, extra={"lr": 0.1})
    with pytest.raises(UserError, match=r"no 'kp_detector' entry \(it holds: generator\)$"):
        Checkpointer(tmp_path, {"kp_detector": torch.nn.Linear(3, 2)}).load()
