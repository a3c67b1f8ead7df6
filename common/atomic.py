"""Atomic file writes: a temporary file in the target's folder, renamed into place only on success.

A reader never sees half a file, an interrupted run (Ctrl-C, a full disk) leaves the previous version
in place, and the finished file gets the permissions any other program's file would get (0666 less the
umask: `tempfile.mkstemp` itself creates 0600, which would hide outputs from other users and web
servers). Media leave the project through `consent_and_watermark`, which writes them with these too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (threads may be writing)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
    os.umask(mask)
    return mask


TEMP_STEM_BYTES = 96  # of the target's name kept in a temporary name


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path` (ending in `suffix`, default the target's) for the caller
    to write; on success it gets the usual permissions and is renamed onto `path`, else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a temporary file's own temporary file is not "..name"; the stem is cut so that temporary names,
    # and theirs (an encoder's inside the writer's), stay within a file system's 255 bytes
    hidden = "." + os.fsencode(path.stem.lstrip("."))[:TEMP_STEM_BYTES].decode("utf-8", "ignore")
    fd, tmp = tempfile.mkstemp(prefix=f"{hidden}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None], durable: bool = False) -> Path:
    """Call `write(file)` on a temporary binary file and rename it onto `path`. `durable`: fsync the
    bytes before the rename and the folder after it, so that the file survives a power cut too."""
    path = Path(path)
    with atomic_path(path, suffix=".tmp") as tmp:
        with open(tmp, "wb") as file:
            write(file)
            if durable:
                file.flush()
                os.fsync(file.fileno())
    if durable:
        _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems (and Windows) cannot open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
