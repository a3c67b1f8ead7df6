"""The `make demo` stage of phase 2 (slow: renders and reenacts a 60-frame clip)."""

from __future__ import annotations

import pytest

from consent_and_watermark.verify import verify


@pytest.mark.slow
@pytest.mark.todo("p2.expr", "p2.video", "p1.smooth.one_euro")
def test_demo_stage_writes_marked_report_items(tmp_path):
    from phase2_face_reenactment.demo import run_stage

    items = run_stage(tmp_path / "phase2", quick=True)
    assert [item.kind for item in items] == ["video", "image", "image", "image", "image"]
    for item in items:
        assert item.path.is_file() and verify(item.path).marked
