"""The consent ledger, its refusals and its command line."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from common.cli import run
from common.errors import UserError
from consent_and_watermark import __main__ as cli
from consent_and_watermark import consent, writer
from consent_and_watermark.consent import (
    TECHNIQUES,
    Ledger,
    check_consent,
    register_synthetic_identity,
    sqlite_error,
    utc_now,
)
from consent_and_watermark.provenance import ProvenanceLog


def _add(ledger: Ledger, **overrides):
    fields = dict(subject_id="alice", display_name="Alice Example", granted_by="Alice Example")
    fields.update(overrides)
    return ledger.add(**fields)


def test_record_round_trip_and_digest():
    ledger = Ledger()
    expires = utc_now() + datetime.timedelta(days=30)
    record = _add(ledger, techniques=["swap"], outputs=["video"], expires=expires, evidence_sha256="ab" * 32)
    again = ledger.get(record.id)
    assert again == record
    assert again.techniques == ("swap",) and again.outputs == ("video",) and again.expires == expires
    assert len(record.digest()) == 64 and record.digest() == again.digest()
    other = _add(ledger, techniques=["swap"], outputs=["video"], expires=expires, evidence_sha256="cd" * 32)
    assert other.digest() != record.digest()


def test_check_consent_accepts_a_record_in_scope():
    record = _add(Ledger(), techniques=["swap", "reenact"], outputs=["image", "video"])
    assert check_consent([record.id, record.id], "swap", outputs=["video"]) == [record]


@pytest.mark.parametrize(
    "make, technique, outputs, message",
    [
        (lambda book: book.revoke(_add(book).id, "withdrawn"), "swap", (), "was revoked"),
        (lambda book: _add(book, techniques=["animate"]), "swap", (), "does not cover 'swap'"),
        (lambda book: _add(book, outputs=["image"]), "swap", ("video",), "does not allow video"),
    ],
    ids=["revoked", "technique-out-of-scope", "output-out-of-scope"],
)
def test_check_consent_refuses(make, technique, outputs, message):
    record = make(Ledger())
    with pytest.raises(UserError, match=message) as err:
        check_consent([record.id], technique, outputs=outputs)
    assert "\n" not in str(err.value)


def test_check_consent_refuses_expired_records():
    record = _add(Ledger(), expires=utc_now() + datetime.timedelta(days=1))
    later = utc_now() + datetime.timedelta(days=2)
    with pytest.raises(UserError, match="expired"):
        check_consent([record.id], "swap", now=later)


def test_check_consent_refuses_unknown_and_missing_ids():
    with pytest.raises(UserError, match="unknown consent record 'nobody'"):
        check_consent(["nobody"], "swap")
    with pytest.raises(UserError, match="--consent"):
        check_consent([], "swap")


def test_synthetic_identity_is_registered_once_with_full_scope():
    first = register_synthetic_identity("synth-0007", "Synthetic person 7")
    assert register_synthetic_identity("synth-0007", "Synthetic person 7") == first
    record = Ledger().get(first)
    assert record.synthetic and record.expires is None and record.techniques == TECHNIQUES
    for technique in TECHNIQUES:
        check_consent([first], technique, outputs=["image", "video", "audio"])


def test_a_revoked_synthetic_identity_stays_revoked_when_it_is_rendered_again():
    first = register_synthetic_identity("synth-0008", "Synthetic person 8")
    Ledger().revoke(first, "not this one")
    assert register_synthetic_identity("synth-0008", "Synthetic person 8") == first
    with pytest.raises(UserError, match="revoked"):
        check_consent([first], "swap")


def test_processes_registering_one_synthetic_identity_at_once_make_one_record(tmp_path: Path):
    import multiprocessing

    path = tmp_path / "l.sqlite"
    Ledger(path).records()  # the ledger exists; the keys were made by this process
    register = functools.partial(register_synthetic_identity, "synth-race", "Synthetic racer", ledger=path)
    with multiprocessing.get_context("fork").Pool(4) as pool:
        ids = pool.starmap(register, [()] * 8)
    assert len(set(ids)) == 1 and [r.id for r in Ledger(path).records()] == ids[:1]


def test_a_check_at_a_time_without_a_zone_reads_it_as_utc():
    record = _add(Ledger(), expires=utc_now() + datetime.timedelta(days=3))
    later = (utc_now() + datetime.timedelta(days=4)).replace(tzinfo=None)
    with pytest.raises(UserError, match="expired"):
        check_consent([record.id], "swap", now=later)


def test_damaged_ledger_is_one_clear_error(fresh_data_dir: Path):
    fresh_data_dir.mkdir(parents=True)
    (fresh_data_dir / "consent.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="damaged") as err:
        check_consent(["cr-0000000000"], "swap")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("column", ["created", "expires"])
def test_ledger_row_with_a_bad_timestamp_is_a_damaged_ledger_error(column: str, tmp_path: Path,
                                                                   one_error_line):
    ledger = Ledger(tmp_path / "l.sqlite")
    record = _add(ledger)
    with sqlite3.connect(ledger.path) as conn:
        conn.execute(f"UPDATE records SET {column} = 'yesterday'")
    with pytest.raises(UserError, match="damaged .*yesterday"):
        check_consent([record.id], "swap", ledger=ledger.path)
    assert run(cli.main, ["consent", "--ledger", str(ledger.path), "list"]) == 2
    assert "is damaged" in one_error_line()


def test_foreign_records_table_is_a_damaged_ledger_error(tmp_path: Path, one_error_line):
    path = tmp_path / "l.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE records (id TEXT, subject_id TEXT)")
        conn.execute("INSERT INTO records VALUES ('cr-x', 'alice')")
    for action in (["show", "cr-x"], ["list"]):
        assert run(cli.main, ["consent", "--ledger", str(path), *action]) == 2
        assert "is damaged" in one_error_line()


@pytest.mark.parametrize(
    "edit",
    ["techniques = 'swap,reenact,animate,lipsync'", "expires = NULL", "revoked = NULL, revoke_reason = NULL",
     "revoke_reason = 'asked by mistake'"],
    ids=["widened-techniques", "expiry-removed", "revocation-cleared", "revoke-reason-rewritten"],
)
def test_a_record_edited_outside_the_consent_tool_is_refused_as_tampered(edit: str, tmp_path: Path, capsys):
    ledger = Ledger(tmp_path / "l.sqlite")
    record = _add(ledger, techniques=["animate"], expires=utc_now() + datetime.timedelta(days=3))
    other = _add(ledger, subject_id="bob")
    ledger.revoke(record.id, "withdrawn")
    assert ledger.get(record.id).intact  # adding and revoking through the module keep the seal
    with sqlite3.connect(ledger.path) as conn:
        conn.execute(f"UPDATE records SET {edit} WHERE id = ?", (record.id,))
    with pytest.raises(UserError, match="changed outside the consent tool"):
        check_consent([record.id], "animate", ledger=ledger.path)
    assert ledger.records(active_only=True) == [other]
    for flags in (["--all"], []):  # the plain list too: a tampered record is a warning, not history
        assert run(cli.main, ["consent", "--ledger", str(ledger.path), "list", *flags]) == 0
        listing = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in listing if "TAMPERED" in line] == [record.id]


def test_revoking_a_tampered_record_does_not_reseal_it(tmp_path: Path):
    ledger = Ledger(tmp_path / "l.sqlite")
    record = _add(ledger, techniques=["animate"])
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("UPDATE records SET techniques = 'swap'")
    revoked = ledger.revoke(record.id, "found edited")
    assert revoked.revoked is not None and not revoked.intact and not ledger.get(record.id).intact


def test_a_ledger_from_before_seals_is_sealed_as_found_on_first_open(tmp_path: Path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(consent._SCHEMA.replace(",\n    seal TEXT", ""))
        conn.execute("INSERT INTO records (id, subject_id, display_name, granted_by, techniques, outputs, "
                     "created) VALUES ('cr-0123456789', 'alice', 'Alice', 'Alice', 'swap', 'video', "
                     "'2026-01-01T00:00:00+00:00')")
    assert [r.id for r in check_consent(["cr-0123456789"], "swap", ledger=path)] == ["cr-0123456789"]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE records SET techniques = 'swap,lipsync'")
    with pytest.raises(UserError, match="changed outside the consent tool"):
        check_consent(["cr-0123456789"], "lipsync", ledger=path)


def test_a_ledger_sealed_by_another_install_fails_its_seals(tmp_path: Path, monkeypatch):
    record = _add(Ledger(tmp_path / "l.sqlite"))
    monkeypatch.setenv("DEEPFAKE_CONFIG_DIR", str(tmp_path / "other-install"))
    assert not Ledger(tmp_path / "l.sqlite").get(record.id).intact


def test_locked_ledger_says_in_use_not_damaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ledger = Ledger(tmp_path / "l.sqlite")
    record = _add(ledger)
    holder = sqlite3.connect(ledger.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    connect = functools.partial(sqlite3.connect, timeout=0)  # fail at once instead of waiting 10 s
    monkeypatch.setattr(consent.sqlite3, "connect", lambda path, timeout: connect(path))
    try:
        with pytest.raises(UserError, match="in use by another process.*try again") as err:
            ledger.get(record.id)
    finally:
        holder.close()
    assert "damaged" not in str(err.value) and "backup" not in str(err.value)


def test_read_only_ledger_says_cannot_be_written_not_damaged(tmp_path: Path):
    ledger = Ledger(tmp_path / "l.sqlite")
    _add(ledger)
    with sqlite3.connect(f"file:{ledger.path}?mode=ro", uri=True) as conn:
        with pytest.raises(sqlite3.OperationalError) as raised:
            conn.execute("DELETE FROM records")
    message = str(sqlite_error(raised.value, "consent ledger", ledger.path))
    assert "cannot be written (read-only)" in message and "damaged" not in message


def test_refusal_happens_before_compute_and_writes_nothing(tmp_path: Path, natural_rgb):
    """A generation CLI in miniature: begin_run first, then compute and write."""
    record = Ledger().revoke(_add(Ledger()).id)
    computed = []

    def fake_tool(argv: list[str] | None = None) -> int:
        writer.begin_run("swap", [record.id], outputs=["image"])
        computed.append(True)
        writer.save_image(tmp_path / "out.png", natural_rgb)
        return 0

    assert run(fake_tool) == 2
    assert computed == [] and not (tmp_path / "out.png").exists()
    assert ProvenanceLog().rows() == []


def test_cli_add_list_show_revoke(tmp_path: Path, capsys: pytest.CaptureFixture):
    ledger = tmp_path / "ledger.sqlite"
    evidence = tmp_path / "statement.txt"
    evidence.write_bytes(b"I, Alice, agree to face swapping for the course.\n")
    base = ["consent", "--ledger", str(ledger)]
    add = ["add", "--subject", "alice", "--name", "Alice", "--granted-by", "Alice", "--technique", "swap"]
    scope = ["--output-kind", "video", "--evidence", str(evidence), "--days", "10"]
    assert run(cli.main, base + add + scope) == 0
    record_id = capsys.readouterr().out.split()[3]

    assert run(cli.main, base + ["show", record_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["evidence_sha256"] == hashlib.sha256(evidence.read_bytes()).hexdigest()
    assert shown["techniques"] == ["swap"] and shown["outputs"] == ["video"]

    assert run(cli.main, base + ["list"]) == 0
    assert record_id in capsys.readouterr().out
    assert run(cli.main, base + ["revoke", record_id, "--reason", "withdrawn"]) == 0
    capsys.readouterr()
    assert run(cli.main, base + ["list"]) == 0
    assert record_id not in capsys.readouterr().out
    assert run(cli.main, base + ["list", "--all"]) == 0
    assert "REVOKED" in capsys.readouterr().out
    with pytest.raises(UserError, match="was revoked"):
        check_consent([record_id], "swap", ledger=ledger)


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture):
    base = ["consent", "--ledger", str(tmp_path / "l.sqlite")]
    assert run(cli.main, base + ["show", "cr-missing"]) == 2
    add = ["add", "--subject", "a", "--name", "A", "--granted-by", "A", "--evidence", str(tmp_path / "none")]
    assert run(cli.main, base + add) == 2
    assert run(cli.main, base + ["revoke", "cr-missing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


def test_a_two_person_run_needs_records_of_two_subjects(tmp_path):
    from consent_and_watermark.consent import Ledger, check_consent

    ledger = tmp_path / "ledger.sqlite"
    book = Ledger(ledger)
    alice = book.add("alice", "Alice", "Alice", techniques=("swap",)).id
    alice_again = book.add("alice", "Alice", "Alice", techniques=("swap",)).id
    bob = book.add("bob", "Bob", "Bob", techniques=("swap",)).id
    roles = ("the source", "the target")
    for ids in ([alice], [alice, alice], [alice, alice_again]):  # one person's records, however many
        with pytest.raises(UserError, match="touches 2 people .* cover 1 .alice."):
            check_consent(ids, "swap", ledger=ledger, roles=roles)
    assert len(check_consent([alice, bob], "swap", ledger=ledger, roles=roles)) == 2
    assert len(check_consent([alice], "swap", ledger=ledger, roles=("the source and the target",))) == 1


@pytest.mark.parametrize("days", ["99999999", "36501", "0"])
def test_cli_add_refuses_days_outside_a_hundred_years_in_one_line(tmp_path: Path, one_error_line, days):
    evidence = tmp_path / "statement.txt"
    evidence.write_text("I agree.")
    argv = ["consent", "--ledger", str(tmp_path / "l.sqlite"), "add", "--subject", "a", "--name", "A",
            "--granted-by", "A", "--evidence", str(evidence), "--days", days]
    assert run(cli.main, argv) == 2
    assert one_error_line().startswith("error: --days must be between 1 and 36500")
    assert not (tmp_path / "l.sqlite").exists()  # refused before the ledger was opened


def test_consent_commands_on_a_ledger_that_does_not_exist_do_not_create_it(tmp_path, capsys):
    from common.cli import run
    from consent_and_watermark.__main__ import main

    typo = tmp_path / "typo" / "ledger.sqlite"
    assert run(main, ["consent", "--ledger", str(typo), "list"]) == 2
    assert "no ledger at" in capsys.readouterr().err and not typo.exists()


@pytest.mark.parametrize("action", [["list"], ["show", "cr-x"], ["revoke", "cr-x", "--reason", "r"]])
def test_consent_commands_other_than_add_leave_an_empty_file_given_as_the_ledger_untouched(tmp_path,
                                                                                      one_error_line, action):
    from common.cli import run
    from consent_and_watermark.__main__ import main

    empty = tmp_path / "notes.pth"
    empty.touch()
    assert run(main, ["consent", "--ledger", str(empty), *action]) == 2
    assert "is an empty file, not a consent ledger" in one_error_line()
    assert empty.stat().st_size == 0


def test_a_folder_given_as_the_ledger_or_the_log_is_named_as_a_folder(tmp_path, one_error_line):
    evidence = tmp_path / "statement.txt"
    evidence.write_text("I agree.")
    for action in (["list"], ["add", "--subject", "a", "--name", "A", "--granted-by", "A",
                              "--evidence", str(evidence)]):
        assert run(cli.main, ["consent", "--ledger", str(tmp_path), *action]) == 2
        assert one_error_line() == f"error: consent ledger {tmp_path} is a folder, not a file: name a file " \
                                   "(new or existing) instead"
    with pytest.raises(UserError, match="is a folder, not a file"):
        Ledger(tmp_path).records()
    with pytest.raises(UserError, match="is a folder, not a file"):
        ProvenanceLog(tmp_path).rows(limit=1)


def test_the_ledger_and_the_log_refuse_each_others_files_not_add_their_table(tmp_path, one_error_line):
    from consent_and_watermark.provenance import ProvenanceLog

    log = ProvenanceLog(tmp_path / "provenance.sqlite")
    log.rows(1)  # creates the log
    assert run(cli.main, ["consent", "--ledger", str(log.path), "list"]) == 2
    assert one_error_line() == f"error: {log.path} is not a consent ledger: it holds the tables outputs"
    ledger = Ledger(tmp_path / "consent.sqlite")
    _add(ledger)
    with pytest.raises(UserError, match="is not a provenance log: it holds the tables records"):
        ProvenanceLog(ledger.path).rows(1)
    with sqlite3.connect(log.path) as conn:  # nothing was added to either file
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {
            "outputs", "sqlite_sequence"}


def test_consent_is_no_longer_usable_at_the_exact_expiry_instant(tmp_path):
    ledger = Ledger(tmp_path / "consent.db")
    expires = utc_now() + datetime.timedelta(days=1)
    record = ledger.add(subject_id="alice", display_name="Alice Example", granted_by="Alice Example",
                        techniques=["swap"], outputs=["video"], expires=expires)
    just_before = expires - datetime.timedelta(microseconds=1)
    assert record.active(just_before) and record.problem("swap", ["video"], just_before) is None
    assert not record.active(expires)
    assert "expired" in record.problem("swap", ["video"], expires)


def test_cli_list_says_until_when_each_record_runs_or_that_it_never_expires(tmp_path: Path, capsys):
    ledger = Ledger(tmp_path / "l.sqlite")
    dated = _add(ledger, expires=datetime.datetime(2999, 6, 30, tzinfo=datetime.UTC))
    open_ended = _add(ledger, subject_id="bob")
    assert run(cli.main, ["consent", "--ledger", str(ledger.path), "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "active until 2999-06-30" in lines[dated.id]
    assert "active, no expiry" in lines[open_ended.id]


def test_cli_list_all_shows_why_a_record_was_revoked(tmp_path: Path, capsys):
    ledger = Ledger(tmp_path / "l.sqlite")
    record = _add(ledger)
    ledger.revoke(record.id, "withdrawn by e-mail")
    assert run(cli.main, ["consent", "--ledger", str(ledger.path), "list", "--all"]) == 0
    assert "REVOKED" in (out := capsys.readouterr().out) and "(withdrawn by e-mail)" in out


def test_cli_list_of_a_ledger_without_active_records_says_which_kind_it_lacks(tmp_path: Path, capsys):
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.revoke(_add(ledger).id, "withdrawn")
    base = ["consent", "--ledger", str(ledger.path), "list"]
    assert run(cli.main, base) == 0
    assert capsys.readouterr().out == f"no active consent records in {ledger.path}\n"
    empty = Ledger(tmp_path / "empty.sqlite")
    empty.records()  # creates the file
    assert run(cli.main, ["consent", "--ledger", str(empty.path), "list", "--all"]) == 0
    assert capsys.readouterr().out == f"no consent records in {empty.path}\n"


def test_cli_show_prints_the_grant_digest_that_manifests_carry(tmp_path: Path, capsys):
    ledger = Ledger(tmp_path / "l.sqlite")
    record = _add(ledger)
    assert run(cli.main, ["consent", "--ledger", str(ledger.path), "show", record.id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["record_sha256"] == record.digest() and shown["id"] == record.id


def test_check_consent_names_every_output_kind_the_record_does_not_allow():
    record = _add(Ledger(), outputs=["image"])
    with pytest.raises(UserError, match="does not allow video outputs"):
        check_consent([record.id], "swap", outputs=("image", "video"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"techniques": []}, "missing technique"),
        ({"outputs": []}, "missing output"),
        ({"granted_by": " "}, "granted-by must not be empty"),
    ],
    ids=["no-technique", "no-output", "blank-grantor"],
)
def test_a_record_without_scope_or_grantor_is_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        _add(Ledger(), **overrides)


def test_a_record_expiring_the_instant_it_is_made_is_refused():
    now = utc_now()
    with pytest.raises(UserError, match="is not in the future"):
        _add(Ledger(), expires=now, now=now)


def test_records_are_listed_oldest_first():
    ledger = Ledger()
    start = utc_now()
    made = [_add(ledger, subject_id=f"p{i}", now=start + datetime.timedelta(seconds=10 - i))
            for i in range(4)]
    assert [r.id for r in ledger.records()] == [r.id for r in reversed(made)]


def test_a_record_cannot_be_revoked_twice(tmp_path: Path):
    ledger = Ledger(tmp_path / "l.sqlite")
    record = _add(ledger)
    ledger.revoke(record.id, "first")
    with pytest.raises(UserError, match="was already revoked on"):
        ledger.revoke(record.id, "second")
    assert ledger.get(record.id).revoke_reason == "first"


def test_revoking_a_record_keeps_the_digest_its_outputs_carry(tmp_path: Path):
    ledger = Ledger(tmp_path / "l.sqlite")
    record = _add(ledger)
    assert ledger.revoke(record.id, "withdrawn").digest() == record.digest()


def test_a_technique_or_output_named_twice_is_stored_once():
    record = _add(Ledger(), techniques=["swap", "swap", "reenact"], outputs=["video", "video"])
    assert record.techniques == ("swap", "reenact") and record.outputs == ("video",)


def test_record_ids_tell_people_from_synthetic_identities():
    """README: ids of people's records start with cr-, those of synthetic people with syn-."""
    assert _add(Ledger()).id.startswith("cr-")
    assert register_synthetic_identity("face-0001", "Synthetic 1").startswith("syn-")


def test_a_synthetic_identity_is_not_matched_to_a_persons_record_with_the_same_subject_id():
    person = _add(Ledger(), subject_id="face-0007", techniques=["swap"])
    synthetic = Ledger().get(register_synthetic_identity("face-0007", "Synthetic 7"))
    assert synthetic.id != person.id and synthetic.synthetic
    assert synthetic.techniques == TECHNIQUES


def test_a_record_revoked_without_a_reason_keeps_its_seal(tmp_path: Path):
    ledger = Ledger(tmp_path / "l.sqlite")
    record = _add(ledger)
    revoked = ledger.revoke(record.id)
    again = ledger.get(record.id)
    assert again.intact and again.revoke_reason is None and again == revoked


class _SqliteError(sqlite3.OperationalError):
    def __init__(self, code: int):
        super().__init__("error")
        self.sqlite_errorcode = code


def test_an_extended_busy_code_is_transient_not_damage(tmp_path: Path):
    busy_recovery = sqlite3.SQLITE_BUSY | (1 << 8)  # SQLITE_BUSY_RECOVERY (extended code 261)
    assert consent.is_transient(_SqliteError(busy_recovery))
    assert "in use by another process" in str(sqlite_error(_SqliteError(busy_recovery), "x", tmp_path / "l"))


def test_an_io_error_asks_for_disk_space_not_a_backup(tmp_path: Path):
    message = str(sqlite_error(_SqliteError(sqlite3.SQLITE_IOERR), "consent ledger", tmp_path / "l"))
    assert "free disk space" in message and "backup" not in message
