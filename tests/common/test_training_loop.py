"""Shared training-loop flags: bad values refused when the command line is read."""

from __future__ import annotations

import argparse

import pytest

from common.training import add_train_args


def test_a_run_dir_through_a_file_is_refused_when_the_flags_are_read(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_train_args(parser)
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for bad in (["--run-dir", str(afile)], ["--run-dir", str(afile / "deeper")]):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(bad)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{afile} is a file, not a folder" in err
    assert parser.parse_args(["--run-dir", str(tmp_path / "new" / "run")]).run_dir == tmp_path / "new" / "run"
