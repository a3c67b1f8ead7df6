"""The provenance log: one SQLite row per file the project wrote.

Beside the consent ledger in the user's data dir (``$DEEPFAKE_DATA_DIR``). Each row holds the
SHA-256 of the final bytes, the watermark payload, the consent records and technique, the command
line, the time and whether the visible label was drawn (turning it off is logged here).

A row is *reserved* before marking (its id feeds the watermark payload) and *completed* once the
file is signed and in place; a crash leaves a row with no hash, which ``verify`` never matches.
``verify`` finds a row by the file's hash (an untouched output) or, after a re-encode changed every
byte, by the payload the watermark still carries.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError, first_line
from consent_and_watermark.consent import (
    data_dir,
    is_transient,
    refuse_foreign_database,
    sqlite_error,
    utc_now,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT,
    sha256 TEXT,
    technique TEXT,
    consent_ids TEXT NOT NULL,
    command TEXT NOT NULL,
    visible_label INTEGER NOT NULL,
    watermarked INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    sources TEXT
)
"""
# Columns added after the first release, for logs created before them: (name, SQL type).
_ADDED_COLUMNS = (("sources", "TEXT"),)
# verify looks a file up by its hash, then by its watermark payload: without an index each lookup reads
# the whole table (extract.py alone logs one row per face)
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS outputs_sha256 ON outputs (sha256)",
    "CREATE INDEX IF NOT EXISTS outputs_payload ON outputs (payload)",
)


def default_log_path() -> Path:
    """``provenance.sqlite`` beside the consent ledger."""
    return data_dir() / "provenance.sqlite"


def make_payload(row_id: int, created: datetime.datetime) -> int:
    """The 64-bit watermark payload of an output: ``row id (32 bits) | unix seconds (32 bits)``.

    Readable without the log (which row, when) and unique per log. The watermark itself scrambles
    the bits with a keyed pseudo-random sequence, so a structured payload does not weaken it.
    """
    return ((row_id & 0xFFFFFFFF) << 32) | (int(created.timestamp()) & 0xFFFFFFFF)


def payload_time(payload: int) -> datetime.datetime:
    """The write time a payload encodes (to the second, modulo 2**32 s = 136 years)."""
    return datetime.datetime.fromtimestamp(payload & 0xFFFFFFFF, datetime.UTC)


@dataclass(frozen=True)
class Row:
    """One output in the log."""

    id: int
    created: str
    path: str
    kind: str
    payload: int | None
    sha256: str | None
    technique: str | None
    consent_ids: tuple[str, ...]
    command: tuple[str, ...]
    visible_label: bool
    watermarked: bool
    note: str | None
    sources: tuple[int, ...] = ()  # payloads of the earlier outputs it was made from (their marks found)

    def to_dict(self) -> dict:
        """JSON-ready form (payloads as 16 hex digits)."""
        out = dict(self.__dict__)
        out["payload"] = f"{self.payload:016x}" if self.payload is not None else None
        out["sources"] = [f"{p:016x}" for p in self.sources]
        out["consent_ids"], out["command"] = list(self.consent_ids), list(self.command)
        return out


def stored_path(path: str | Path) -> str:
    """A path as the log stores it: valid UTF-8 always (SQLite's text), a name in another encoding with
    its undecodable bytes written as ``\\xNN`` escapes (the same for every call, so prefixes match)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _row(row: sqlite3.Row, path: Path) -> Row:
    """A log row as a ``Row``; one that is not (an edited or foreign value) is a ``UserError`` naming it."""
    try:
        return Row(
            id=row["id"],
            created=row["created"],
            path=row["path"],
            kind=row["kind"],
            payload=int(row["payload"], 16) if row["payload"] else None,
            sha256=row["sha256"],
            technique=row["technique"],
            consent_ids=tuple(json.loads(row["consent_ids"])),
            command=tuple(json.loads(row["command"])),
            visible_label=bool(row["visible_label"]),
            watermarked=bool(row["watermarked"]),
            note=row["note"],
            sources=tuple(int(p, 16) for p in json.loads(row["sources"] or "[]")),
        )
    except (ValueError, TypeError, IndexError, KeyError) as err:  # JSONDecodeError is a ValueError
        raise UserError(f"provenance log {path} is damaged: row {row['id']} cannot be read "
                        f"({first_line(err)}); restore it from a backup") from err


_connections: dict[tuple[Path, int], sqlite3.Connection] = {}
_lock = threading.Lock()


def _open(path: Path) -> sqlite3.Connection:
    """One connection per log file and process, kept open (opening and closing costs ~30 ms here).

    Write-ahead log without an fsync per commit: a write costs well under 1 ms instead of ~35 ms; a
    power cut may lose the last rows, never corrupt the file. The process id is part of the cache key
    so that a forked child (e.g. a data-loader worker) opens its own connection.
    """
    key = (path, os.getpid())
    if key not in _connections:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        try:
            for attempt in range(OPEN_TRIES):  # processes opening one log at once (data-loader workers,
                try:  # torchrun ranks): switching to WAL does not wait for a busy file, so wait here
                    _prepare(conn, path)
                    break
                except sqlite3.OperationalError as err:
                    if not is_transient(err) or attempt == OPEN_TRIES - 1:
                        raise
                    time.sleep(0.02 * (attempt + 1))
        except BaseException:  # a foreign or damaged file, or still busy: no connection is kept
            conn.close()
            raise
        _connections[key] = conn
    return _connections[key]


OPEN_TRIES = 30  # ~9 s of waiting in all


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Write-ahead log, the table, the columns later versions added, the indexes."""
    refuse_foreign_database(conn, "outputs", "provenance log", path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN IMMEDIATE")  # the write lock first: an older log then gains its new columns once,
    with conn:  # however many processes open it together
        conn.execute(_SCHEMA)
        present = {row["name"] for row in conn.execute("PRAGMA table_info(outputs)")}
        for name, sql_type in _ADDED_COLUMNS:
            if name not in present:
                conn.execute(f"ALTER TABLE outputs ADD COLUMN {name} {sql_type}")
        for statement in _INDEXES:
            conn.execute(statement)


class ProvenanceLog:
    """The log file; each call is one short transaction (several processes and threads may write)."""

    def __init__(self, path: str | Path | None = None):
        self.path = (Path(path) if path else default_log_path()).absolute()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """The shared connection inside one transaction, held by one thread at a time. A damaged file
        drops the connection (the next call opens it afresh) while the lock is still held, so no other
        thread can be using it; a busy one keeps it."""
        with _lock:
            try:
                conn = _open(self.path)
                with conn:
                    yield conn
            except sqlite3.DatabaseError as err:
                if not is_transient(err):
                    stale = _connections.pop((self.path, os.getpid()), None)
                    if stale is not None:
                        stale.close()
                raise sqlite_error(err, "provenance log", self.path) from err
            except OSError as err:
                raise UserError(f"cannot open provenance log {self.path}: {err.strerror}") from err

    def reserve(
        self,
        path: Path,
        kind: str,
        technique: str | None,
        consent_ids: tuple[str, ...],
        command: tuple[str, ...],
        visible_label: bool,
    ) -> tuple[int, int]:
        """Insert a pending row; return ``(row id, watermark payload)``."""
        created = utc_now()
        with self._connect() as conn:
            row_id = conn.execute(
                "INSERT INTO outputs (created, path, kind, technique, consent_ids, command, visible_label) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    created.isoformat(),
                    stored_path(path),
                    kind,
                    technique,
                    json.dumps(list(consent_ids)),
                    json.dumps(list(command)),
                    int(visible_label),
                ),
            ).lastrowid
            payload = make_payload(row_id, created)
            conn.execute("UPDATE outputs SET payload = ? WHERE id = ?", (f"{payload:016x}", row_id))
        return row_id, payload

    def complete(
        self, row_id: int, sha256: str, watermarked: bool, note: str | None = None,
        sources: tuple[int, ...] = (),
    ) -> None:
        """Record the final file's hash once it is signed and renamed into place (and the payloads of the
        earlier outputs its input carried: the links ``verify`` follows back)."""
        linked = json.dumps([f"{p:016x}" for p in sources]) if sources else None
        with self._connect() as conn:
            conn.execute(
                "UPDATE outputs SET sha256 = ?, watermarked = ?, note = ?, sources = ? WHERE id = ?",
                (sha256, int(watermarked), note, linked, row_id),
            )

    def moved(self, old_folder: Path, new_folder: Path) -> int:
        """Point the rows of files written into `old_folder` at `new_folder` (the folder was renamed);
        returns how many rows changed."""
        old, new = stored_path(old_folder.resolve()), stored_path(new_folder.resolve())
        with self._connect() as conn:
            return conn.execute(
                "UPDATE outputs SET path = ? || substr(path, ?) WHERE substr(path, 1, ?) = ?",
                (new, len(old) + 1, len(old) + 1, old + os.sep),
            ).rowcount

    def forget_folder(self, folder: Path) -> int:
        """Drop the rows of files written into `folder`, a staging folder removed without being
        published; returns how many."""
        prefix = stored_path(folder.resolve()) + os.sep
        with self._connect() as conn:
            return conn.execute(
                "DELETE FROM outputs WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            ).rowcount

    def discard(self, row_id: int) -> None:
        """Drop a reserved row whose file was never written (the write failed)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM outputs WHERE id = ? AND sha256 IS NULL", (row_id,))

    def find_by_sha256(self, sha256: str) -> Row | None:
        """The newest completed row of the file with this SHA-256, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM outputs WHERE sha256 = ? ORDER BY id DESC", (sha256,)
            ).fetchone()
        return _row(row, self.path) if row else None

    def find_by_payload(self, payload: int) -> Row | None:
        """The completed row whose watermark payload this is, or None (a re-encoded output)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM outputs WHERE payload = ? AND sha256 IS NOT NULL", (f"{payload:016x}",)
            ).fetchone()
        return _row(row, self.path) if row else None

    def rows(self, limit: int = 50) -> list[Row]:
        """The latest ``limit`` completed rows, newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM outputs WHERE sha256 IS NOT NULL ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_row(r, self.path) for r in rows]
