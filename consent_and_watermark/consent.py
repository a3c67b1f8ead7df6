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

Every generation CLI calls :func:`check_consent` *before any compute*; a refusal is one clear line
(``UserError``: exit status 2) and nothing is written. The ledger records consent, it does not prove
it: the evidence hash lets someone holding the evidence show which document a record relied on.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
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
    synthetic INTEGER NOT NULL DEFAULT 0
)
"""


def data_dir() -> Path:
    """Where the ledger and the provenance log live: ``$DEEPFAKE_DATA_DIR`` or the user's data dir."""
    override = os.environ.get("DEEPFAKE_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("deepfake-creation"))


def default_ledger_path() -> Path:
    return data_dir() / "consent.sqlite"


def utc_now() -> datetime.datetime:
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
        grant = {k: v for k, v in self.to_dict().items() if k not in ("revoked", "revoke_reason")}
        return hashlib.sha256(json.dumps(grant, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def problem(self, technique: str, outputs: Iterable[str], now: datetime.datetime) -> str | None:
        """Why this record does not allow ``technique`` for ``outputs`` at ``now``, or None if it does."""
        who = f"consent record {self.id} ({self.display_name})"
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


def _parse_time(text: str | None) -> datetime.datetime | None:
    """An ISO 8601 timestamp from the ledger; one without a zone is read as UTC."""
    if not text:
        return None
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _row_to_record(row: sqlite3.Row, path: Path) -> Record:
    """A ledger row as a ``Record``; a row that is not one (bad timestamp, missing column, foreign
    table) is a ``UserError`` naming the ledger as damaged."""
    try:
        return Record(
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
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as err:
        which = f"record {row['id']!r}" if "id" in row.keys() else "a record"
        reason = "a column is missing" if isinstance(err, IndexError) else first_line(err)
        message = f"consent ledger {path} is damaged ({which}: {reason}); restore it from a backup"
        raise UserError(message) from err


def sqlite_error(err: sqlite3.Error, what: str, path: Path) -> UserError:
    """One clear line for an SQLite failure on ``what`` (e.g. "consent ledger") at ``path``.

    Only real damage gets "restore it from a backup": a file that another process holds locked, or one
    that cannot be written, is fine and must not be replaced.
    """
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF  # primary code of an extended one
    reason = first_line(err)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return UserError(f"{what} {path} is in use by another process (database is locked); try again")
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return UserError(f"{what} {path} cannot be written (read-only): make it writable and try again")
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
                    conn.execute(_SCHEMA)
                    yield conn
        except sqlite3.DatabaseError as err:
            raise sqlite_error(err, "consent ledger", self.path) from err
        except OSError as err:
            raise UserError(f"cannot open consent ledger {self.path}: {err.strerror}") from err

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
        """Store a new record and return it (the id is fresh and random)."""
        techniques, outputs = tuple(dict.fromkeys(techniques)), tuple(dict.fromkeys(outputs))
        for value, allowed, what in ((techniques, TECHNIQUES, "technique"), (outputs, OUTPUTS, "output")):
            unknown = [v for v in value if v not in allowed]
            if unknown or not value:
                raise UserError(f"unknown or missing {what} {unknown}; choose from {', '.join(allowed)}")
        if not subject_id.strip() or not display_name.strip() or not granted_by.strip():
            raise UserError("subject id, display name and granted-by must not be empty")
        now = now or utc_now()
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
            conn.execute(
                "INSERT INTO records (id, subject_id, display_name, granted_by, techniques, outputs, "
                "created, expires, evidence_sha256, synthetic) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
        return record

    def get(self, record_id: str) -> Record | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        return _row_to_record(row, self.path) if row else None

    def records(self, active_only: bool = False) -> list[Record]:
        """All records, oldest first; ``active_only`` drops revoked and expired ones."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM records ORDER BY created, id").fetchall()
        records = [_row_to_record(row, self.path) for row in rows]
        if not active_only:
            return records
        now = utc_now()
        return [r for r in records if r.revoked is None and (r.expires is None or r.expires > now)]

    def revoke(self, record_id: str, reason: str = "", now: datetime.datetime | None = None) -> Record:
        """Mark a record revoked. Revocation is permanent; outputs made before it keep their provenance."""
        now = now or utc_now()
        with self._connect() as conn:
            done = conn.execute(
                "UPDATE records SET revoked = ?, revoke_reason = ? WHERE id = ? AND revoked IS NULL",
                (now.isoformat(), reason or None, record_id),
            ).rowcount
        record = self.get(record_id)
        if record is None:
            raise UserError(f"unknown consent record {record_id!r} in {self.path}")
        if not done:
            raise UserError(f"consent record {record_id} was already revoked on {record.revoked:%Y-%m-%d}")
        return record

    def find_synthetic(self, subject_id: str) -> Record | None:
        """The synthetic identity's record, revoked or not (a revocation stays: see
        `register_synthetic_identity`)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM records WHERE subject_id = ? AND synthetic = 1 ORDER BY created LIMIT 1",
                (subject_id,),
            ).fetchone()
        return _row_to_record(row, self.path) if row else None


def register_synthetic_identity(
    subject_id: str, display_name: str, *, ledger: str | Path | None = None
) -> str:
    """Record a made-up identity from the synthetic data generator; returns its record id.

    Scope: every technique and output, no expiry, no evidence (there is no person to ask). Calling
    it again for the same ``subject_id`` returns the existing record, also once it is revoked: a user
    who revoked a synthetic identity's record meant it, and rendering the person again must not quietly
    issue a fresh one (the tools then refuse that identity).
    """
    book = Ledger(ledger)
    existing = book.find_synthetic(subject_id)
    if existing is not None:
        return existing.id
    return book.add(subject_id, display_name, SYNTHETIC_GRANTOR, synthetic=True).id


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
    now = now or utc_now()
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
