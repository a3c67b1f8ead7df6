"""`make demo` driver: stages run, the report links files that exist, and those files are marked."""

from __future__ import annotations

import re

import pytest

from consent_and_watermark.__main__ import main as provenance_main
from tools import demo


def test_synthetic_stage_writes_a_report_whose_media_exist_and_verify(tmp_path, capsys):
    assert demo.main(["--output", str(tmp_path), "--stages", "synthetic"]) == 0
    page = (tmp_path / "index.html").read_text()
    sources = re.findall(r"src='([^']+)'", page)
    assert len(sources) >= 3
    for src in sources:
        assert (tmp_path / src).is_file(), src
    capsys.readouterr()
    assert provenance_main(["verify", str(tmp_path / sources[0])]) == 0


def test_unknown_stage_is_a_user_error(tmp_path):
    with pytest.raises(demo.UserError):
        demo.main(["--output", str(tmp_path), "--stages", "phase9"])


def test_running_one_stage_again_keeps_the_other_stages_in_the_report(tmp_path, capsys, monkeypatch):
    """The merge, with a stand-in for the synthetic stage's work (its real run is tested above): a stage
    run again replaces its own part of index.html and keeps the parts of stages it did not run, in the
    order of `demo.STAGES`."""
    from common.report import ReportItem
    from common.synthetic import demo as synthetic_demo

    runs = []

    def fake_stage(out_dir, quick=True):
        runs.append((out_dir, quick))
        return [ReportItem(f"stand-in item of run {len(runs)}", None, "text")]

    monkeypatch.setattr(synthetic_demo, "run_stage", fake_stage)
    earlier = tmp_path / "phase1_face_swap"
    earlier.mkdir()
    (earlier / demo.SECTION_FILE).write_text("<h2>Phase 1 — from an earlier run</h2>")
    for _ in range(2):
        assert demo.main(["--output", str(tmp_path), "--stages", "synthetic"]) == 0
    assert runs == [(tmp_path / "synthetic", True)] * 2  # only the stage asked for, quick presets
    page = (tmp_path / "index.html").read_text()
    assert page.count("Synthetic consented identities") == 1 and page.count("<h2>") == 2
    assert "stand-in item of run 2" in page and "stand-in item of run 1" not in page  # replaced
    assert page.index("Synthetic consented identities") < page.index("stand-in item of run 2")
    assert page.index("stand-in item of run 2") < page.index("Phase 1 — from an earlier run")  # kept, after
    assert "stand-in item of run 2" in (tmp_path / "synthetic" / demo.SECTION_FILE).read_text()


def test_stages_without_names_is_refused_not_read_as_all(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--output", str(tmp_path), "--stages"])
    assert exit_info.value.code == 2 and not (tmp_path / "index.html").exists()


def test_demo_full_runs_the_stages_with_their_full_presets(tmp_path, monkeypatch):
    from common.report import ReportItem
    from common.synthetic import demo as synthetic_demo

    runs = []

    def fake_stage(out_dir, quick=True):
        runs.append(quick)
        return [ReportItem("stand-in", None, "text")]

    monkeypatch.setattr(synthetic_demo, "run_stage", fake_stage)
    assert demo.main(["--output", str(tmp_path), "--stages", "synthetic", "--full"]) == 0
    assert demo.main(["--output", str(tmp_path), "--stages", "synthetic"]) == 0
    assert runs == [False, True]


def test_a_text_item_is_a_paragraph_even_when_it_names_a_file(tmp_path):
    from common.report import ReportItem

    item = ReportItem("Numbers", tmp_path / "figures.txt", "text", "L1 0.05")
    assert demo.render_item(item, tmp_path) == (
        "<div class='item'><h3>Numbers</h3><p class='caption'>L1 0.05</p></div>"
    )
