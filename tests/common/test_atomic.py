"""Atomic writes: all or nothing, and the permissions any other program's file would get."""

from __future__ import annotations

import os

import pytest

from common.atomic import atomic_path, current_umask, write_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_finished_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path, umask_022):
    assert current_umask() == 0o022
    path = write_atomic(tmp_path / "sub" / "a.bin", lambda f: f.write(b"abc"), durable=True)
    assert path.read_bytes() == b"abc"
    assert path.stat().st_mode & 0o777 == 0o644
    with atomic_path(tmp_path / "b.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"png")
    assert (tmp_path / "b.png").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_atomic(tmp_path / "a.bin", lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(path, fail)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_a_temporary_files_own_temporary_file_has_one_leading_dot(tmp_path):
    with atomic_path(tmp_path / ".swap.k2x9.mp4") as tmp:  # the writer's file, handed to the encoder
        assert tmp.name.startswith(".swap.k2x9.") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")


def test_finished_files_follow_the_umask_in_force(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_atomic(tmp_path / "a.bin", lambda f: f.write(b"abc"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_the_temporary_path_ends_in_the_suffix_asked_for(tmp_path):
    with atomic_path(tmp_path / "clip.mp4", suffix=".part") as tmp:
        assert tmp.name.endswith(".part") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "clip.mp4").read_bytes() == b"x"


def test_a_target_with_a_name_near_the_file_system_limit_can_be_written(tmp_path):
    target = tmp_path / ("a" * 250 + ".mp4")  # 254 bytes: a valid name; its temporary one must be too
    path = write_atomic(target, lambda f: f.write(b"x"))
    assert path.read_bytes() == b"x"
