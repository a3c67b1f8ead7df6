"""Plumbing shared by every command-line tool: common flags and the error handling around `main`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from common.errors import UserError
from common.impl import IMPLS

EXIT_USAGE = 2


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Flags every phase tool takes: which implementation to run, where, and the random seed."""
    parser.add_argument(
        "--impl",
        choices=IMPLS,
        default=None,
        help="run the reference solutions or your own templates (default: $DEEPFAKE_IMPL or solutions)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto = cuda if present)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for reproducible runs")


def add_consent_args(parser: argparse.ArgumentParser) -> None:
    """Flags of every tool that generates media of a person: consent records and the visible label."""
    parser.add_argument(
        "--consent",
        action="append",
        default=[],
        metavar="ID",
        help="consent record id for each real identity the run touches (repeat for source and target); "
        "see `python -m consent_and_watermark consent --help`",
    )
    parser.add_argument(
        "--no-visible-label",
        action="store_true",
        help="do not draw the visible SYNTHETIC label (the invisible watermark and metadata stay; logged)",
    )


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call `main(argv)`; turn `UserError` into one line on stderr and exit status 2.

    Anything else is a bug and keeps its traceback. Ctrl-C exits with 130 after the tool's own
    handlers (e.g. the training loop's checkpoint) have run.
    """
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
