"""The consent ledger: who agreed to have their likeness used, for which techniques and outputs, until when.

One SQLite file (stdlib ``sqlite3``) in the user's data dir (``$DEEPFAKE_DATA_DIR`` overrides it; the
CLI also takes ``--ledger``). Each record holds:

| field | meaning |
|---|---|
| ``id`` | the record id every generation tool takes as ``--consent ID`` |
| ``subject_id``, ``display_name`` | the person (or synthetic identity) the record is about |
| ``granted_by`` | who gave consent (the subject, a guardian, the project's synthetic generator) |
| ``techniques`` | which of swap / reenact / animate / lipsync the subject agreed to |
| ``outputs`` | which output kinds (image / video / audio) may be written |
| ``created``, ``expires``, ``revoked`` | UTC timestamps; usable only while not expired or revoked |
| ``evidence_sha256`` | SHA-256 of the signed statement or recording the consent rests on |
| ``synthetic`` | True for identities made up by the project's generator (nobody's real face) |
| ``seal`` | HMAC-SHA256 of all of the above under a key derived from the install's secret |

Every generation CLI calls :func:`check_consent` *before any compute*; a refusal is one clear line
(``UserError``: exit status 2) and nothing is written. The ledger records consent, it does not prove
it: the evidence hash lets someone holding the evidence show which document a record relied on.

**Seals.** The ledger is a plain SQLite file: anyone can open it and widen a record's techniques, move
its expiry or clear a revocation. Each row therefore carries a seal (a keyed hash of the record, the
key derived from ``watermark.key``, see ``keys.purpose_key``) written only by this module; a record
whose seal does not match is shown as TAMPERED and refused. This makes edits *evident*, not
impossible: whoever holds the key files can reseal, and a ledger from before seals existed is sealed
as found the first time it is opened (trust on first use). A ledger copied to another install fails
every seal there (different key).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from common.errors import UserError, first_line
from consent_and_watermark.keys import load_keys, purpose_key

TECHNIQUES = ("swap", "reenact", "animate", "lipsync")
OUTPUTS = ("image", "video", "audio")
SYNTHETIC_GRANTOR = "deepfake-creation synthetic identity generator"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    techniques TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT,
    revoked TEXT,
    revoke_reason TEXT,
    evidence_sha256 TEXT,
    synthetic INTEGER NOT NULL DEFAULT 0,
    seal TEXT
)
"""


def data_dir() -> Path:
    """Where the ledger and the provenance log live: ``$DEEPFAKE_DATA_DIR`` or the user's data dir."""
    override = os.environ.get("DEEPFAKE_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("deepfake-creation"))


def default_ledger_path() -> Path:
    """``consent.sqlite`` in `data_dir()`."""
    return data_dir() / "consent.sqlite"


def utc_now() -> datetime.datetime:
    """The current time in UTC, to the second (what the ledger stores)."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Record:
    """One consent record as stored in the ledger."""

    id: str
    subject_id: str
    display_name: str
    granted_by: str
    techniques: tuple[str, ...]
    outputs: tuple[str, ...]
    created: datetime.datetime
    expires: datetime.datetime | None
    revoked: datetime.datetime | None = None
    revoke_reason: str | None = None
    evidence_sha256: str | None = None
    synthetic: bool = False
    intact: bool = True  # the row's seal matches: nobody edited it outside this module

    def active(self, now: datetime.datetime) -> bool:
        """Usable at ``now``: intact, not revoked, not expired."""
        return self.intact and self.revoked is None and (self.expires is None or self.expires > now)

    def to_dict(self) -> dict:
        """JSON-ready form (timestamps as ISO 8601 strings)."""
        out = dataclasses.asdict(self)
        for key in ("created", "expires", "revoked"):
            out[key] = out[key].isoformat() if out[key] else None
        out["techniques"], out["outputs"] = list(self.techniques), list(self.outputs)
        return out

    def digest(self) -> str:
        """SHA-256 of the grant (everything but the revocation), as written into C2PA manifests.

        Canonical JSON (sorted keys, no spaces) so the same record always hashes the same.
        """
        grant = {k: v for k, v in self.to_dict().items() if k not in ("revoked", "revoke_reason", "intact")}
        return hashlib.sha256(_canonical(grant)).hexdigest()

    def seal(self, key: bytes) -> str:
        """HMAC-SHA256 of the whole record (the grant and its revocation) under the ledger's key."""
        fields = {k: v for k, v in self.to_dict().items() if k != "intact"}
        return hmac.new(key, _canonical(fields), hashlib.sha256).hexdigest()

    def problem(self, technique: str, outputs: Iterable[str], now: datetime.datetime) -> str | None:
        """Why this record does not allow ``technique`` for ``outputs`` at ``now``, or None if it does."""
        who = f"consent record {self.id} ({self.display_name})"
        if not self.intact:
            return (f"{who} was changed outside the consent tool (its seal does not match this install's "
                    "key); add the consent again with `consent add`")
        if self.revoked is not None:
            return f"{who} was revoked on {self.revoked:%Y-%m-%d}"
        if self.expires is not None and now >= self.expires:
            return f"{who} expired on {self.expires:%Y-%m-%d}"
        if technique not in self.techniques:
            return f"{who} does not cover '{technique}' (it covers: {', '.join(self.techniques)})"
        missing = [kind for kind in outputs if kind not in self.outputs]
        if missing:
            return f"{who} does not allow {', '.join(missing)} outputs (it allows: {', '.join(self.outputs)})"
        return None


def _canonical(fields: dict) -> bytes:
    """Canonical JSON (sorted keys, no spaces): the same record always gives the same bytes."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _aware(moment: datetime.datetime | None) -> datetime.datetime | None:
    """A timestamp without a zone is UTC (so that a record reads back exactly as it was sealed)."""
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _parse_time(text: str | None) -> datetime.datetime | None:
    """An ISO 8601 timestamp from the ledger; one without a zone is read as UTC."""
    return _aware(datetime.datetime.fromisoformat(text)) if text else None


def _row_to_record(row: sqlite3.Row, path: Path, key: bytes) -> Record:
    """A ledger row as a ``Record`` (``intact`` when its seal matches); a row that is not one (bad
    timestamp, missing column, foreign table) is a ``UserError`` naming the ledger as damaged."""
    try:
        record = Record(
            id=row["id"],
            subject_id=row["subject_id"],
            display_name=row["display_name"],
            granted_by=row["granted_by"],
            techniques=tuple(row["techniques"].split(",")),
            outputs=tuple(row["outputs"].split(",")),
            created=_parse_time(row["created"]),
            expires=_parse_time(row["expires"]),
            revoked=_parse_time(row["revoked"]),
            revoke_reason=row["revoke_reason"],
            evidence_sha256=row["evidence_sha256"],
            synthetic=bool(row["synthetic"]),
        )
        seal = row["seal"]
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as err:
        which = f"record {row['id']!r}" if "id" in row.keys() else "a record"
        reason = "a column is missing" if isinstance(err, IndexError) else first_line(err)
        message = f"consent ledger {path} is damaged ({which}: {reason}); restore it from a backup"
        raise UserError(message) from err
    intact = isinstance(seal, str) and hmac.compare_digest(seal, record.seal(key))
    return dataclasses.replace(record, intact=intact)


def is_transient(err: sqlite3.Error) -> bool:
    """True when the database is fine and only busy: another process holds it locked."""
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF  # primary code of an extended one
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def refuse_foreign_database(conn: sqlite3.Connection, table: str, what: str, path: Path) -> None:
    """A ``UserError`` when ``path`` holds tables but not ``table``: another program's database (or the
    ledger given for the log, or the other way round), which must not gain our table."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables.discard("sqlite_sequence")
    if tables and table not in tables:
        raise UserError(f"{path} is not a {what}: it holds the tables {', '.join(sorted(tables))}")


READONLY_DIRECTORY = sqlite3.SQLITE_READONLY | (6 << 8)  # SQLITE_READONLY_DIRECTORY (extended code 1544)


def sqlite_error(err: sqlite3.Error, what: str, path: Path) -> UserError:
    """One clear line for an SQLite failure on ``what`` (e.g. "consent ledger") at ``path``.

    Only real damage gets "restore it from a backup": a file that another process holds locked, or one
    that cannot be written, is fine and must not be replaced.
    """
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF  # primary code of an extended one
    reason = first_line(err)
    if is_transient(err):
        return UserError(f"{what} {path} is in use by another process (database is locked); try again")
    if getattr(err, "sqlite_errorcode", None) == READONLY_DIRECTORY:  # the file is fine, its folder is not
        return UserError(f"{what} {path}: its folder cannot be written (SQLite keeps its journal files "
                         "there): make the folder writable and try again")
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return UserError(f"{what} {path} cannot be written (read-only): make it writable and try again")
    if code == sqlite3.SQLITE_CANTOPEN and Path(path).is_dir():
        return UserError(f"{what} {path} is a folder, not a file: name a file (new or existing) instead")
    if code == sqlite3.SQLITE_CANTOPEN:
        return UserError(f"{what} {path} cannot be opened or written ({reason}): make its folder writable")
    if code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
        return UserError(f"{what} {path} cannot be written ({reason}): free disk space and try again")
    return UserError(f"{what} {path} is damaged or not a {what} ({reason}); restore it from a backup")


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from err
    return digest.hexdigest()


class Ledger:
    """The consent ledger file. Each call opens and closes its own connection (safe across processes)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_ledger_path()
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        """The seal key (derived from the install's secret; the keys are created on first use)."""
        if self._key is None:
            self._key = purpose_key(load_keys(), "consent-ledger/seal/v1")
        return self._key

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction; any SQLite damage becomes one clear ``UserError``."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=10)) as conn:
                conn.row_factory = sqlite3.Row
                # SQLite's default journal: every commit is fsynced, so a revocation survives a power
                # cut (writes are rare here; the provenance log trades this for speed instead).
                with conn:
                    refuse_foreign_database(conn, "records", "consent ledger", self.path)
                    conn.execute(_SCHEMA)
                    self._seal_unsealed_ledger(conn)
                    yield conn
        except sqlite3.DatabaseError as err:
            raise sqlite_error(err, "consent ledger", self.path) from err
        except OSError as err:
            raise UserError(f"cannot open consent ledger {self.path}: {err.strerror}") from err

    def _seal_unsealed_ledger(self, conn: sqlite3.Connection) -> None:
        """A ledger from before seals existed gets the column, and its rows are sealed as found."""
        def unsealed() -> bool:  # a ledger without the column (not sealed already, nor a foreign table)
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(records)")}
            return "seal" not in columns and "id" in columns

        if not unsealed():
            return
        conn.execute("BEGIN IMMEDIATE")  # the write lock, then look again: another process opening the
        if not unsealed():  # same old ledger may have sealed it in between
            return
        conn.execute("ALTER TABLE records ADD COLUMN seal TEXT")
        for row in conn.execute("SELECT * FROM records").fetchall():
            record = _row_to_record(row, self.path, self.key)
            conn.execute("UPDATE records SET seal = ? WHERE id = ?", (record.seal(self.key), record.id))

    def add(
        self,
        subject_id: str,
        display_name: str,
        granted_by: str,
        techniques: Iterable[str] = TECHNIQUES,
        outputs: Iterable[str] = OUTPUTS,
        expires: datetime.datetime | None = None,
        evidence_sha256: str | None = None,
        synthetic: bool = False,
        now: datetime.datetime | None = None,
    ) -> Record:
        """Store a new record and return it (the id is fresh and random).

        A synthetic identity has one record, revoked or not: adding it again returns the one there is
        (looked up and inserted in one write transaction, so two processes rendering the same person at
        once still make one; see `register_synthetic_identity`)."""
        techniques, outputs = tuple(dict.fromkeys(techniques)), tuple(dict.fromkeys(outputs))
        for value, allowed, what in ((techniques, TECHNIQUES, "technique"), (outputs, OUTPUTS, "output")):
            unknown = [v for v in value if v not in allowed]
            if unknown or not value:
                raise UserError(f"unknown or missing {what} {unknown}; choose from {', '.join(allowed)}")
        if not subject_id.strip() or not display_name.strip() or not granted_by.strip():
            raise UserError("subject id, display name and granted-by must not be empty")
        now, expires = _aware(now or utc_now()), _aware(expires)
        if expires is not None and expires <= now:
            raise UserError(f"expiry {expires:%Y-%m-%d} is not in the future")
        record = Record(
            id=("syn-" if synthetic else "cr-") + secrets.token_hex(5),
            subject_id=subject_id,
            display_name=display_name,
            granted_by=granted_by,
            techniques=techniques,
            outputs=outputs,
            created=now,
            expires=expires,
            evidence_sha256=evidence_sha256,
            synthetic=synthetic,
        )
        with self._connect() as conn:
            if synthetic:
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")  # the write lock before the look: no one in between
                row = conn.execute(
                    "SELECT * FROM records WHERE subject_id = ? AND synthetic = 1 ORDER BY created LIMIT 1",
                    (subject_id,),
                ).fetchone()
                if row is not None:
                    return _row_to_record(row, self.path, self.key)
            conn.execute(
                "INSERT INTO records (id, subject_id, display_name, granted_by, techniques, outputs, "
                "created, expires, evidence_sha256, synthetic, seal) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    subject_id,
                    display_name,
                    granted_by,
                    ",".join(techniques),
                    ",".join(outputs),
                    now.isoformat(),
                    expires.isoformat() if expires else None,
                    evidence_sha256,
                    int(synthetic),
                    record.seal(self.key),
                ),
            )
        return record

    def get(self, record_id: str) -> Record | None:
        """The record with this id, or None."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        return _row_to_record(row, self.path, self.key) if row else None

    def records(self, active_only: bool = False) -> list[Record]:
        """All records, oldest first; ``active_only`` drops revoked and expired ones."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM records ORDER BY created, id").fetchall()
        records = [_row_to_record(row, self.path, self.key) for row in rows]
        if not active_only:
            return records
        now = utc_now()
        return [r for r in records if r.active(now)]

    def revoke(self, record_id: str, reason: str = "", now: datetime.datetime | None = None) -> Record:
        """Mark a record revoked. Revocation is permanent; outputs made before it keep their provenance."""
        now = _aware(now or utc_now())
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                raise UserError(f"unknown consent record {record_id!r} in {self.path}")
            record = _row_to_record(row, self.path, self.key)
            if record.revoked is not None:
                raise UserError(f"consent record {record_id} was already revoked on "
                                f"{record.revoked:%Y-%m-%d}")
            revoked = dataclasses.replace(record, revoked=now, revoke_reason=reason or None)
            # A tampered record is revoked but keeps its broken seal: revoking must not launder the edit.
            seal = revoked.seal(self.key) if record.intact else row["seal"]
            conn.execute(
                "UPDATE records SET revoked = ?, revoke_reason = ?, seal = ? WHERE id = ?",
                (now.isoformat(), reason or None, seal, record_id),
            )
        return revoked


def register_synthetic_identity(
    subject_id: str, display_name: str, *, ledger: str | Path | None = None
) -> str:
    """Record a made-up identity from the synthetic data generator; returns its record id.

    Scope: every technique and output, no expiry, no evidence (there is no person to ask). Calling
    it again for the same ``subject_id`` returns the existing record, also once it is revoked: a user
    who revoked a synthetic identity's record meant it, and rendering the person again must not quietly
    issue a fresh one (the tools then refuse that identity).
    """
    return Ledger(ledger).add(subject_id, display_name, SYNTHETIC_GRANTOR, synthetic=True).id


def check_consent(
    ids: Iterable[str],
    technique: str,
    *,
    outputs: Iterable[str] = (),
    ledger: str | Path | None = None,
    now: datetime.datetime | None = None,
    roles: Sequence[str] = (),
) -> list[Record]:
    """Return the records for ``ids`` if every one allows ``technique`` (and ``outputs``) now.

    ``roles`` names the people the run touches (e.g. "the driver" and "the target"): the records must
    cover at least that many distinct subjects, so that one person's record cannot stand in for two.
    Raises ``UserError`` with one line naming the first problem: no ids, an unknown id, a record that is
    revoked, expired or out of scope, or fewer subjects than roles. Call it before any compute.
    """
    if technique not in TECHNIQUES:
        raise ValueError(f"technique must be one of {TECHNIQUES}, got {technique!r}")
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise UserError(
            "no consent record given: pass --consent ID for every identity in the inputs "
            "(create one with `python -m consent_and_watermark consent add`)"
        )
    book = Ledger(ledger)
    now = _aware(now or utc_now())
    outputs = tuple(outputs)
    records = []
    for record_id in ids:
        record = book.get(record_id)
        if record is None:
            raise UserError(f"unknown consent record {record_id!r} (ledger: {book.path})")
        problem = record.problem(technique, outputs, now)
        if problem:
            raise UserError(f"refused: {problem}")
        records.append(record)
    subjects = list(dict.fromkeys(record.subject_id for record in records))
    if len(subjects) < len(roles):
        raise UserError(
            f"refused: a {technique} run touches {len(roles)} people ({' and '.join(roles)}), the consent "
            f"records given cover {len(subjects)} ({', '.join(subjects)}): pass --consent once per person, "
            "or --same-person when they are one"
        )
    return records
