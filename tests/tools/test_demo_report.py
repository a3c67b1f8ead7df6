"""`make demo` driver: stages run, the report links files that exist, and those files are marked."""

from __future__ import annotations

import re

import pytest

from consent_and_watermark.__main__ import main as provenance_main
from tools import demo


def test_synthetic_stage_writes_a_report_whose_media_exist_and_verify(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path), "--stages", "synthetic"]) == 0
    page = (tmp_path / "index.html").read_text()
    sources = re.findall(r"src='([^']+)'", page)
    assert len(sources) >= 3
    for src in sources:
        assert (tmp_path / src).is_file(), src
    capsys.readouterr()
    assert provenance_main(["verify", str(tmp_path / sources[0])]) == 0


def test_unknown_stage_is_a_user_error(tmp_path):
    with pytest.raises(demo.UserError):
        demo.main(["--out", str(tmp_path), "--stages", "phase9"])


def test_running_one_stage_again_keeps_the_other_stages_in_the_report(tmp_path, capsys):
    earlier = tmp_path / "phase1_face_swap"
    earlier.mkdir()
    (earlier / demo.SECTION_FILE).write_text("<h2>Phase 1 — from an earlier run</h2>")
    assert demo.main(["--out", str(tmp_path), "--stages", "synthetic"]) == 0
    page = (tmp_path / "index.html").read_text()
    assert page.index("Synthetic consented identities") < page.index("Phase 1 — from an earlier run")


def test_stages_without_names_is_refused_not_read_as_all(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--out", str(tmp_path), "--stages"])
    assert exit_info.value.code == 2 and not (tmp_path / "index.html").exists()
