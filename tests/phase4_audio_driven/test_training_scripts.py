"""train_syncnet.py and train.py on a tiny synthetic set: they run, resume and export published layouts."""

from __future__ import annotations

import csv

import pytest
import torch

from common.impl import load
from consent_and_watermark import writer


@pytest.fixture(autouse=True)
def default_output_context():
    writer.set_context(writer.OutputContext())
    yield
    writer.set_context(writer.OutputContext())


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # ~20 s of CPU: renders a person, two short runs and a resume
@pytest.mark.todo("p4")
def test_train_expert_resume_then_generator(tmp_path):
    from phase4_audio_driven import train, train_syncnet

    data = ["--identities", "1", "--frames", "20", "--cache", str(tmp_path / "clips.npz"), "--no-progress",
            "--device", "cpu", "--width", "0.0625"]
    expert_dir = tmp_path / "expert"
    argv = [*data, "--run-dir", str(expert_dir), "--batch-size", "2", "--checkpoint-every", "1",
            "--eval-identities", "0", "--warmup", "2", "--cosine"]
    assert train_syncnet.main([*argv, "--steps", "2"]) == 0
    assert train_syncnet.main([*argv, "--steps", "3"]) == 0  # resumes at step 2
    assert [r["step"] for r in rows(expert_dir / "metrics.csv")] == ["1", "2", "3"]
    ckpt = torch.load(expert_dir / "lipsync_expert.pth", weights_only=True)
    assert {"state_dict", "optimizer", "global_step", "global_epoch"} <= set(ckpt)
    assert ckpt["global_step"] == 3
    model = load("phase4_audio_driven", "model")
    assert model.load_syncnet(expert_dir / "lipsync_expert.pth").width == 0.0625

    gen_dir = tmp_path / "generator"
    assert train.main([*data, "--run-dir", str(gen_dir), "--expert", str(expert_dir / "lipsync_expert.pth"),
                       "--batch-size", "1", "--steps", "2", "--eval-every", "1", "--preview-every", "2",
                       "--sync-threshold", "10", "--sync-weight", "0.05", "--disc"]) == 0
    log = rows(gen_dir / "metrics.csv")
    assert float(log[0]["sync_weight"]) == pytest.approx(0.05)  # switched on at the first evaluation
    assert float(log[1]["sync"]) > 0
    assert len(list((gen_dir / "previews").glob("*.png"))) == 1
    generator = model.load_generator(gen_dir / "wav2lip.pth")
    assert generator.width == 0.0625
    assert (gen_dir / "visual_quality_disc.pth").is_file()


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
