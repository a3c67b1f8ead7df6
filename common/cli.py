"""Plumbing shared by every command-line tool: common flags and the error handling around `main`."""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from common.errors import UserError
from common.impl import IMPLS

EXIT_USAGE = 2
EXIT_STDOUT_CLOSED = 128 + 13  # the status of a process that SIGPIPE ends


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is not a file
        return False


def add_common_args(parser: argparse.ArgumentParser, device: bool = True, seed: bool = True) -> None:
    """Flags every phase tool takes: which implementation to run, where (`device=False`: a tool that
    only runs on the CPU, so --device would be accepted and ignored), and the random seed (`seed=False`:
    a tool with nothing random in it)."""
    parser.add_argument(
        "--impl",
        choices=IMPLS,
        default=None,
        help="run the reference solutions or your own templates (default: $DEEPFAKE_IMPL or solutions)",
    )
    if device:
        parser.add_argument("--device", default="auto",
                            help="auto, cpu, cuda, cuda:N or mps (default: auto = cuda, else mps, else cpu)")
    if seed:
        parser.add_argument("--seed", type=int, default=0,
                            help="random seed for reproducible runs (default: 0)")


def add_consent_args(parser: argparse.ArgumentParser, roles: tuple[str, ...] = (),
                     help_text: str | None = None) -> None:
    """Flags of every tool that generates media of a person: consent records and the visible label.

    `roles` names the people a run touches (e.g. "the driver (--source)", "the target (--target)"):
    it needs a record for each of them, or one with --same-person (see `consent_roles`). `help_text`
    replaces the --consent help (a trainer's data folder is not one person per record)."""
    who = f" ({' and '.join(roles)})" if roles else ""
    parser.add_argument(
        "--consent",
        action="append",
        default=[],
        metavar="ID",
        help=help_text or f"consent record id of each person the run touches{who}: repeat --consent for "
        "each; see `python -m consent_and_watermark consent --help`",
    )
    if len(roles) > 1:
        parser.add_argument(
            "--same-person",
            action="store_true",
            help=f"{' and '.join(roles)} are one person, so one consent record covers them (the "
            "provenance log keeps the command line, this flag included)",
        )
    parser.set_defaults(consent_roles=roles)
    parser.add_argument(
        "--no-visible-label",
        action="store_true",
        help="do not draw the visible SYNTHETIC label (the invisible watermark and metadata stay; logged)",
    )


def consent_roles(args: argparse.Namespace) -> tuple[str, ...]:
    """The people whose consent records a run needs (`writer.begin_run(..., roles=...)`): every role
    of `add_consent_args`, or a single one when --same-person says they are one person."""
    roles = tuple(getattr(args, "consent_roles", ()))
    return (" and ".join(roles),) if getattr(args, "same_person", False) and roles else roles


DATA_ROLE = "the people in --data"


def add_data_consent_args(parser: argparse.ArgumentParser) -> None:
    """--consent (and --no-visible-label) for a trainer whose --data may hold videos of real people."""
    add_consent_args(parser, roles=(DATA_ROLE,), help_text=(
        "with a --data folder of real people: the id of a consent record that allows this technique "
        "and image outputs (the previews); one record may stand for a licensed dataset (the guide's "
        "phase-3 chapter); --data synthetic needs none"))


def command_line(script: str, argv: list[str] | None) -> list[str]:
    """The command line a run's outputs record (`writer.begin_run(argv=...)`): the process's own, or,
    for a tool called in-process with `main(argv)` (a demo stage), the tool's script (`__file__`, relative
    to the repository) followed by the arguments it was given."""
    if argv is None:
        return list(sys.argv)
    path = Path(script).resolve()
    root = Path(__file__).resolve().parents[1]
    return [str(path.relative_to(root)) if path.is_relative_to(root) else path.name, *argv]


def check_data_consent(args: argparse.Namespace, technique: str, argv: list[str] | None = None) -> None:
    """Before any data is read: training on real people's videos (--data other than 'synthetic') writes
    previews of them (reenacted, animated, lip-synced), so it needs a consent record that allows
    `technique`, as the generation tools do. For a dataset of many people, one record whose subject
    is the dataset (its licence in --granted-by) stands for them. Synthetic data needs none."""
    if args.data == "synthetic":
        return
    from consent_and_watermark import writer

    writer.begin_run(technique, args.consent, visible_label=not args.no_visible_label, outputs=("image",),
                     argv=argv, roles=consent_roles(args))


def nearest_existing(path: Path) -> Path:
    """`path` itself or its nearest ancestor that exists (a write there creates the folders below it)."""
    return next(p for p in (path, *path.parents) if p.exists())


def check_folder(path: str | Path, flag: str) -> None:
    """Refuse a folder flag (e.g. --run-dir) that names a file or runs through one, before any work."""
    existing = nearest_existing(Path(path))
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, not a folder; name a folder")


def check_output(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> None:
    """Refuse, before any compute, an output file the run could not write or that would replace one of
    its own inputs (`UserError`): an existing folder, a path that runs through a file, a folder this
    user cannot write to, or the very file one of `inputs` names (the run would overwrite its input)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; name a file")
    for source in inputs:
        if source is not None and path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise UserError(f"refused: the output {path} is the input {source}, which writing would destroy; "
                            "choose another output name")
    folder = nearest_existing(path.parent)  # the write creates the rest
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror} ({folder})") from err


def stub_hint(err: NotImplementedError) -> str | None:
    """For a template's `NotImplementedError("TODO <id>")`: one line naming the TODO, where its stub is,
    and the two ways on; None for any other NotImplementedError."""
    message = str(err)
    if not message.startswith("TODO "):
        return None
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next  # the innermost frame: the stub itself
    where = ""
    if tb is not None:
        path = Path(tb.tb_frame.f_code.co_filename)
        with contextlib.suppress(ValueError):
            path = path.relative_to(Path(__file__).resolve().parents[1])
        where = f" in {path} (line {tb.tb_lineno})"
    return (f"{message.split()[1]} is not written yet{where}: finish it (IMPLEMENTATION_GUIDE.md, "
            "\"How to work on a TODO\") or run the tool with --impl solutions")


def _after_traceback(err: BaseException, line: str) -> None:
    """Print `line` after the interpreter's traceback of `err`, should `err` end the program (a test
    runner that catches it never prints either)."""
    previous = sys.excepthook

    def hook(kind, value, tb) -> None:
        previous(kind, value, tb)
        if value is err:
            print(line, file=sys.stderr)

    sys.excepthook = hook


def call_tool(main: Callable[[list[str] | None], int], argv: list[str]) -> None:
    """Run another tool's `main(argv)` from a program (a demo stage) and stop that program too when the
    tool stopped early: Ctrl-C (the training loop saves a checkpoint and returns 130) becomes
    KeyboardInterrupt again; any other non-zero status a RuntimeError naming the tool."""
    status = main(argv)
    if status == 130:
        raise KeyboardInterrupt
    if status != 0:
        raise RuntimeError(f"{main.__module__} exited with status {status}")


@contextlib.contextmanager
def _argparse_errors_as_user_errors():
    """argparse reports a missing or malformed flag with its whole usage block and `sys.exit(2)`; inside
    `run` it raises `UserError` instead, so that it becomes one line like every other refusal."""
    def error(parser: argparse.ArgumentParser, message: str):
        raise UserError(f"{message} (see {parser.prog} --help)")

    saved = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = saved


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a scheduler's stop, a closed terminal), raised inside `run` where the program
    is, so that the same clean-up runs as for Ctrl-C: temporary files removed, a provenance row that
    was reserved released, a training run checkpointed."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


@contextlib.contextmanager
def _termination_as_interrupt():
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return

    def stop(signum: int, frame) -> None:
        raise Terminated(signum)

    saved = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _escape_undecodable_output() -> None:
    """stdout and stderr write what their encoding cannot hold as escapes (a UTF-8 locale's stdout is
    strict, and a path's undecodable bytes reach Python as lone surrogates)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # a real text stream (pytest's capture may swap in others)
            stream.reconfigure(errors="backslashreplace")


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call `main(argv)`; turn `UserError` into one line on stderr and exit status 2.

    argparse's own refusals (an unknown, missing or malformed flag) are one such line too.

    So is a file-system error on a named path (`OSError.filename` set: a folder that cannot be created,
    a disk that is full, a file that became unreadable): the tools' own writes are atomic, so nothing
    already written is lost. Anything else is a bug and keeps its traceback. Ctrl-C exits with 130
    after the tool's own handlers (e.g. the training loop's checkpoint) have run; SIGTERM and SIGHUP
    take the same way out and exit with 128 + their number (143, 129). A reader that closes
    stdout early (`tool | head`) ends the tool quietly with 141, as SIGPIPE ends a C tool. A file name
    that is not valid UTF-8 (an older system's encoding) is printed with ``\\xNN`` escapes, not a crash
    after the work is done.
    """
    _escape_undecodable_output()
    try:
        with _argparse_errors_as_user_errors(), _termination_as_interrupt():
            status = main(argv)
        sys.stdout.flush()  # output still buffered meets a closed pipe here, not at interpreter exit
        return status
    except BrokenPipeError:
        if not _stdout_closed():  # a pipe to a helper process broke: a bug, keep the traceback
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush writes nowhere
        return EXIT_STDOUT_CLOSED
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        if err.filename is None:
            raise
        names = " -> ".join(str(name) for name in (err.filename, err.filename2) if name is not None)
        print(f"error: {err.strerror or type(err).__name__}: {names}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated as err:
        print(f"stopped by {signal.Signals(err.signum).name}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except NotImplementedError as err:
        hint = stub_hint(err)
        if hint:  # a student's unfinished template: the traceback (which shows the caller), then the hint
            _after_traceback(err, hint)
        raise
