"""`make demo` phase 4: the generator is trained with the benchmark's settings (checked without training)."""

from __future__ import annotations

import pytest


def test_demo_generator_flags_match_benchmark(tmp_path, monkeypatch):
    from phase4_audio_driven import demo, train, train_syncnet

    calls: dict[str, list[str]] = {}
    monkeypatch.setattr(train_syncnet, "main", lambda argv: calls.setdefault("expert", argv) and 0)
    monkeypatch.setattr(train, "main", lambda argv: calls.setdefault("generator", argv) and 0)
    demo.train_networks(tmp_path, demo.QUICK)
    args = train.build_parser().parse_args(calls["generator"])
    assert args.sync_threshold == float("inf")  # on at the first check whatever the expert says
    assert args.mouth_weight == pytest.approx(4.0)  # as benchmarks/wav2lip_sync_quality.py's preset
    assert args.steps == demo.QUICK.generator_steps
