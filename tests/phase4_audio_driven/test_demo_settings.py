"""`make demo` phase 4: expert and generator are trained with the benchmark's settings (checked without
training)."""

from __future__ import annotations

import pytest


def test_demo_generator_flags_match_benchmark(tmp_path, monkeypatch):
    from phase4_audio_driven import demo, train, train_syncnet

    calls: dict[str, list[str]] = {}
    monkeypatch.setattr(train_syncnet, "main", lambda argv: calls.setdefault("expert", argv) and 0)
    monkeypatch.setattr(train, "main", lambda argv: calls.setdefault("generator", argv) and 0)
    (tmp_path / "expert").mkdir()
    (tmp_path / "expert" / "lipsync_teacher.pth").touch()  # what the expert run leaves
    demo.train_networks(tmp_path, demo.QUICK)
    expert = train_syncnet.build_parser().parse_args(calls["expert"])
    assert expert.group == 4 and expert.augment and expert.cosine  # leaves chance within ~250 steps
    assert expert.teacher_step == 500 and expert.steps == demo.QUICK.expert_steps
    args = train.build_parser().parse_args(calls["generator"])
    assert args.expert.endswith("lipsync_teacher.pth")  # the early checkpoint teaches
    assert args.sync_threshold == float("inf")  # on at the first check whatever the expert says
    assert args.mouth_weight == pytest.approx(4.0)  # as benchmarks/wav2lip_sync_quality.py's preset
    assert args.steps == demo.QUICK.generator_steps


def test_demo_without_a_teacher_checkpoint_teaches_with_the_final_expert(tmp_path, monkeypatch, capsys):
    from phase4_audio_driven import demo, train, train_syncnet

    calls: dict[str, list[str]] = {}
    monkeypatch.setattr(train_syncnet, "main", lambda argv: 0)  # e.g. an expert an older demo finished
    monkeypatch.setattr(train, "main", lambda argv: calls.setdefault("generator", argv) and 0)
    demo.train_networks(tmp_path, demo.QUICK)
    assert train.build_parser().parse_args(calls["generator"]).expert.endswith("lipsync_expert.pth")
    assert "delete that folder to retrain" in capsys.readouterr().out
