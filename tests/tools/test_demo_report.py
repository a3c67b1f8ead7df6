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
