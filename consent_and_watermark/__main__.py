"""Command line: manage consent records and verify files.

    python -m consent_and_watermark consent add --subject alice --name "Alice Example" \\
        --granted-by "Alice Example" --technique swap --technique reenact \\
        --output-kind image --output-kind video --days 365 --evidence signed_statement.pdf
    python -m consent_and_watermark consent list
    python -m consent_and_watermark consent show cr-1a2b3c4d5e
    python -m consent_and_watermark consent revoke cr-1a2b3c4d5e --reason "withdrawn by e-mail"
    python -m consent_and_watermark verify outputs/swap.mp4 [--json]
    python -m consent_and_watermark verify outputs/            # every file in a folder, a line each
    python -m consent_and_watermark log --limit 20

Exit status: 0 success (for verify: every file is marked), 1 verify found a file without marks, 2 bad
input.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from common.cli import run
from common.errors import UserError
from consent_and_watermark import consent
from consent_and_watermark.consent import OUTPUTS, TECHNIQUES, Ledger, Record

MAX_DAYS = 36_500  # --days: 100 years; far larger ones overflow the calendar (year 9999)


def _expiry(args: argparse.Namespace) -> datetime.datetime | None:
    if args.no_expiry:
        return None
    if args.expires:
        try:
            day = datetime.date.fromisoformat(args.expires)
        except ValueError as err:
            raise UserError(f"--expires wants a date like 2027-06-30, got {args.expires!r}") from err
        return datetime.datetime.combine(day, datetime.time(), datetime.UTC)
    if not 1 <= args.days <= MAX_DAYS:
        raise UserError(f"--days must be between 1 and {MAX_DAYS} (100 years), got {args.days}; "
                        "--no-expiry makes a record that never expires")
    return consent.utc_now() + datetime.timedelta(days=args.days)


def _describe(record: Record) -> str:
    if not record.intact:
        status = "TAMPERED (changed outside the consent tool: refused)"
    elif record.revoked:
        status = f"REVOKED {record.revoked:%Y-%m-%d}" + (
            f" ({record.revoke_reason})" if record.revoke_reason else ""
        )
    elif record.expires and record.expires <= consent.utc_now():
        status = f"EXPIRED {record.expires:%Y-%m-%d}"
    else:
        status = "active" + (f" until {record.expires:%Y-%m-%d}" if record.expires else ", no expiry")
    kind = " [synthetic]" if record.synthetic else ""
    return (
        f"{record.id}  {record.display_name} ({record.subject_id}){kind}  {status}  "
        f"techniques={','.join(record.techniques)} outputs={','.join(record.outputs)}"
    )


def _consent_command(args: argparse.Namespace) -> int:
    expires = _expiry(args) if args.action == "add" else None  # bad dates refused before the ledger opens
    if args.ledger and args.action != "add":
        given = Path(args.ledger)
        if not given.exists():  # a folder: opening says so
            raise UserError(f"no ledger at {args.ledger} (it is created by `consent --ledger FILE add`)")
        if given.is_file() and given.stat().st_size == 0:  # SQLite would write a new ledger into it
            raise UserError(f"{args.ledger} is an empty file, not a consent ledger (a ledger is created by "
                            "`consent --ledger FILE add`)")
    ledger = Ledger(args.ledger)
    if args.action == "add":
        record = ledger.add(
            subject_id=args.subject,
            display_name=args.name,
            granted_by=args.granted_by,
            techniques=args.technique or TECHNIQUES,
            outputs=args.output_kind or OUTPUTS,
            expires=expires,
            evidence_sha256=consent.sha256_file(args.evidence),
        )
        print(f"added consent record {record.id} (ledger: {ledger.path})")
        print(_describe(record))
    elif args.action == "list":
        records, now = ledger.records(), consent.utc_now()
        if not args.all:  # the active ones, and any tampered one: a warning nobody should miss
            records = [r for r in records if r.active(now) or not r.intact]
        for record in records:
            print(_describe(record))
        if not records:
            print(f"no {'' if args.all else 'active '}consent records in {ledger.path}")
    elif args.action == "show":
        record = ledger.get(args.id)
        if record is None:
            raise UserError(f"unknown consent record {args.id!r} (ledger: {ledger.path})")
        print(json.dumps({**record.to_dict(), "record_sha256": record.digest()}, indent=2))
    elif args.action == "revoke":
        record = ledger.revoke(args.id, args.reason)
        print(f"revoked {record.id} ({record.display_name}); earlier outputs keep their provenance")
    return 0


def _verify_command(args: argparse.Namespace) -> int:
    from consent_and_watermark.verify import format_line, format_report, media_files, verify

    if len(args.files) == 1 and not Path(args.files[0]).is_dir():  # one file: the full report
        report = verify(args.files[0])
        if args.json:
            print(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            print(format_report(report))
        return 0 if report.marked else 1
    files = []
    for name in args.files:
        found = media_files(Path(name)) if Path(name).is_dir() else [Path(name)]
        if not found:
            raise UserError(f"{name} is a folder without any image, video or audio file in it")
        files += found
    from consent_and_watermark.provenance import ProvenanceLog

    log = ProvenanceLog()
    log.rows(1)  # opened once, now: a damaged log stops here, in one line, not once per file
    results, counts = [], {"marked": 0, "not marked": 0, "unreadable": 0}
    for path in files:  # a line per file as it is checked: a long folder shows its progress
        try:
            report = verify(path, log=log)
        except UserError as err:
            counts["unreadable"] += 1
            results.append({"path": str(path), "error": str(err)})
            line = f"UNREADABLE  {path}: {err}"
        else:
            counts["marked" if report.marked else "not marked"] += 1
            results.append(report.to_dict())
            line = format_line(report)
        if not args.json:
            print(line, flush=True)
    summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print(f"{len(files)} files: {summary}")
    return 2 if counts["unreadable"] else 1 if counts["not marked"] else 0


def _log_command(args: argparse.Namespace) -> int:
    from consent_and_watermark.provenance import ProvenanceLog

    if args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    log = ProvenanceLog()
    rows = log.rows(min(args.limit, 1 << 62))  # SQLite's LIMIT is a 64-bit integer
    for row in rows:
        label = "no label" if row.kind == "audio" else "label on" if row.visible_label else "LABEL OFF"
        mark = "watermarked" if row.watermarked else "no watermark"
        print(
            f"{row.id:>6}  {row.created}  {row.kind:<6} {row.technique or '-':<8} {label:<9}  {mark:<12}  "
            f"consent={','.join(row.consent_ids) or '-'}  {row.path}"
        )
    if not rows:
        print(f"no outputs logged yet in {log.path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consent_and_watermark",
        description="Consent records for real people's likenesses, and provenance checks of output files.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    con = commands.add_parser(
        "consent",
        help="add, list, show or revoke consent records",
        description="Every generation tool needs --consent ID for each real identity it touches; "
        "a record says who agreed, to which techniques and outputs, until when, backed by which evidence.",
    )
    con.add_argument(
        "--ledger",
        help="ledger file (default: consent.sqlite in $DEEPFAKE_DATA_DIR or the user data dir). The tools "
        "always read the default one: records added elsewhere are for inspection or a later move only",
    )
    actions = con.add_subparsers(dest="action", required=True)

    add = actions.add_parser(
        "add",
        help="record a new consent",
        description="Record that a person agreed to the techniques and output kinds named, until the "
        "expiry. Prints the new record's id (cr-...) for the tools' --consent. Example: consent add "
        "--subject alice --name 'Alice Example' --granted-by 'Alice Example' --technique swap "
        "--output-kind image --output-kind video --days 90 --evidence signed_statement.pdf",
    )
    add.add_argument("--subject", required=True, help="a stable id for the person, e.g. alice-2026")
    add.add_argument("--name", required=True, help="display name of the person")
    add.add_argument("--granted-by", required=True, help="who gave consent (the person, or a legal guardian)")
    add.add_argument(
        "--technique", action="append", choices=TECHNIQUES, help="allowed technique (repeat; default: all)"
    )
    add.add_argument(
        "--output-kind", "--output", action="append", choices=OUTPUTS,
        help="allowed kind of output file: image (stills and the trainers' previews), video, audio "
        "(repeat; default: all)"
    )
    when = add.add_mutually_exclusive_group()
    when.add_argument("--expires", help="expiry date YYYY-MM-DD (stops working at 00:00 UTC that day)")
    when.add_argument("--days", type=int, default=365,
                      help=f"valid for this many days, 1 to {MAX_DAYS} (default: 365)")
    when.add_argument("--no-expiry", action="store_true", help="never expires (revocation still works)")
    add.add_argument(
        "--evidence",
        required=True,
        help="an existing file: the signed statement or recording the consent rests on; only its SHA-256 "
        "is stored",
    )

    lst = actions.add_parser("list", help="list active records (and any tampered one)")
    lst.add_argument("--all", action="store_true", help="include revoked and expired records")
    show = actions.add_parser("show", help="print one record as JSON, with its hash")
    show.add_argument("id", help="the full record id as consent add/list print it, e.g. cr-1a2b3c4d5e")
    revoke = actions.add_parser("revoke", help="revoke a record: later runs refuse it")
    revoke.add_argument("id", help="the full record id as consent add/list print it, e.g. cr-1a2b3c4d5e")
    revoke.add_argument("--reason", default="", help="why (kept in the ledger)")

    ver = commands.add_parser(
        "verify",
        help="check files' watermarks, metadata, C2PA manifests and provenance rows",
        description="One file: the full report. Several files or a folder (every image, video and audio "
        "file in it and below): one line per file, then a count. Exit status 0 when every file is marked "
        "(watermark detected, or a valid C2PA manifest plus synthetic-media metadata), 1 when one is not, "
        "2 when one cannot be read.",
    )
    ver.add_argument("files", nargs="+", metavar="FILE",
                     help="an image, video or audio file, or a folder of them: the project writes .png, "
                     ".jpg, .mp4 and .wav; copies converted to other formats (WebP, GIF, MKV, FLAC, "
                     "...) are read too")
    ver.add_argument("--json", action="store_true",
                     help="print the full report as JSON (for several files: a list, errors included)")

    log = commands.add_parser(
        "log",
        help="list the latest outputs in the provenance log",
        description="Every file the project wrote: when, what, with which consent records, and whether "
        "the visible label was on.",
    )
    log.add_argument("--limit", type=int, default=50, help="how many rows, newest first (default: 50)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "consent":
        return _consent_command(args)
    if args.command == "log":
        return _log_command(args)
    return _verify_command(args)


if __name__ == "__main__":
    raise SystemExit(run(main))
