"""pytest plugin of the curriculum: the implementation switch, TODO marks, stub checks and progress.

Registered by the repository's root `conftest.py`. It adds:

* `--impl solutions|templates` (default `$DEEPFAKE_IMPL`, else solutions). It sets `DEEPFAKE_IMPL` for the
  session, so `common.impl.load` and CLIs run in-process test the chosen implementation.
* `@pytest.mark.todo("p1.align.umeyama", ...)`: the TODOs a test checks. A mark id may be a prefix at a
  dot boundary ("p3" covers every TODO of phase 3, for end-to-end tests).
* `--todo PREFIX` (repeatable): run only the tests whose todo ids start with PREFIX.
* `--expect-stubs`: for the untouched templates. A todo-tagged test passes when it fails with its own
  `NotImplementedError("TODO <id>")` (found anywhere in the exception's cause/context chain) and fails
  when it passes on stubs or fails in any other way. Tests without a todo mark must simply pass.
* A progress table after the run: per TODO the tests passed/total and a status, one of
  done / not started / in progress / blocked by <other TODO>.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from common.impl import DEFAULT_IMPL, ENV_VAR, IMPLS, PHASES
from tools.make_templates import collect_todos

STUB_RE = re.compile(r"TODO (?P<id>\S+)")
PRINTED_STUB_RE = re.compile(r"NotImplementedError: TODO (?P<id>p\d+(?:\.\w+)+)")
MIN_HINT_WIDTH = 30


@dataclass
class _State:
    """What the plugin knows about this session (kept in `config.stash`)."""

    impl: str
    expect_stubs: bool
    prefixes: list[str]
    previous_env: str | None
    # nodeid -> (the test's todo ids, its outcome: passed / own:<id> / other:<id> / failed / skipped)
    results: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)


STATE = pytest.StashKey[_State]()
OUTCOME = pytest.StashKey[str]()  # per item: the outcome so far
STUBBED_IN_SETUP = pytest.StashKey[bool]()  # per item, --expect-stubs: its own stub fired during setup


# ---------------------------------------------------------------------------------------------------
# Helpers


def todo_ids(item: pytest.Item) -> tuple[str, ...]:
    """The ids of every `todo` mark on a test (module, class and function marks), in order."""
    ids: list[str] = []
    for mark in item.iter_markers("todo"):
        ids.extend(str(arg) for arg in mark.args)
    return tuple(dict.fromkeys(ids))


def covers(mark_id: str, todo_id: str) -> bool:
    """Whether a mark id ("p3", "p3.kp" or an exact id) covers `todo_id` (prefixes end at a dot)."""
    return todo_id == mark_id or todo_id.startswith(mark_id + ".")


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception, then its causes, contexts and exception-group members, each once."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend([current.__cause__, current.__context__])
        pending.extend(getattr(current, "exceptions", ()))


def stub_id(exc: BaseException | None) -> str | None:
    """The <id> of the first `NotImplementedError("TODO <id>")` in the exception chain, if any.

    Failing that, a printed traceback quoted in an exception's message counts too (a CLI run in a
    subprocess, a DataLoader worker): its last line reads "NotImplementedError: TODO <id>".
    """
    chain = list(_chain(exc))
    for current in chain:
        if isinstance(current, NotImplementedError):
            match = STUB_RE.fullmatch(str(current).strip())
            if match:
                return match.group("id")
    for current in chain:
        match = PRINTED_STUB_RE.search(str(current))
        if match:
            return match.group("id")
    return None


def classify(ids: tuple[str, ...], exc: BaseException | None) -> str:
    """Outcome of a failed phase of a test: own:<id> (the stub of one of its own TODOs fired),
    other:<id> (another TODO's), failed."""
    found = stub_id(exc)
    if found is None:
        return "failed"
    if any(covers(mark_id, found) for mark_id in ids):
        return f"own:{found}"
    return f"other:{found}"


def _phase_of(todo_id: str) -> str:
    match = re.match(r"p(\d+)", todo_id)
    number = int(match.group(1)) if match else 0
    return PHASES[number - 1] if 1 <= number <= len(PHASES) else "?"


# ---------------------------------------------------------------------------------------------------
# Options and set-up


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("curriculum", "deepfake curriculum")
    group.addoption(
        "--impl",
        choices=IMPLS,
        default=None,
        help=f"implementation under test: the reference solutions or the student templates "
        f"(default: ${ENV_VAR}, else {DEFAULT_IMPL})",
    )
    group.addoption(
        "--todo",
        action="append",
        default=[],
        metavar="PREFIX",
        help="run only tests of TODOs whose id starts with PREFIX, e.g. p1 or p1.align (repeatable)",
    )
    group.addoption(
        "--expect-stubs",
        action="store_true",
        help="check untouched templates: each todo-tagged test must fail with its own "
        'NotImplementedError("TODO <id>"); a pass or any other failure is reported as a failure',
    )


def pytest_configure(config: pytest.Config) -> None:
    if not any(line.startswith("todo") for line in config.getini("markers")):
        config.addinivalue_line(
            "markers", "todo(*ids): the TODO ids a test checks (exact ids or a prefix such as p3)"
        )
    impl = config.getoption("impl")
    if impl is None:
        impl = os.environ.get(ENV_VAR, "").strip() or DEFAULT_IMPL
        if impl not in IMPLS:
            raise pytest.UsageError(f"${ENV_VAR}={impl!r}: choose one of {', '.join(IMPLS)}")
    config.stash[STATE] = _State(
        impl=impl,
        expect_stubs=config.getoption("expect_stubs"),
        prefixes=list(config.getoption("todo")),
        previous_env=os.environ.get(ENV_VAR),
    )
    os.environ[ENV_VAR] = impl


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if state.previous_env is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = state.previous_env


def pytest_report_header(config: pytest.Config) -> str:
    state = config.stash[STATE]
    extra = "; --expect-stubs: todo-tagged tests must stop at their own stub" if state.expect_stubs else ""
    return f"implementation under test: {state.impl} (--impl / ${ENV_VAR}){extra}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("todo") is not None and not todo_ids(item):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.todo needs at least one TODO id")
    prefixes = config.stash[STATE].prefixes
    if not prefixes:
        return
    marks = {mark_id for item in items for mark_id in todo_ids(item)}
    for prefix in prefixes:
        if not any(mark_id.startswith(prefix) for mark_id in marks):
            known = sorted(marks | {todo.id for todo in collect_todos(config.rootpath)})
            close = difflib.get_close_matches(prefix, known, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}?" if close else "`make grade` lists them"
            raise pytest.UsageError(f"--todo {prefix}: no test of this run checks a TODO whose id starts "
                                    f"with it; {hint}")
    keep, drop = [], []
    for item in items:
        wanted = any(mark_id.startswith(prefix) for mark_id in todo_ids(item) for prefix in prefixes)
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# ---------------------------------------------------------------------------------------------------
# Outcomes and --expect-stubs


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Under --expect-stubs, a test whose setup already hit its own stub has nothing left to run."""
    return True if pyfuncitem.stash.get(STUBBED_IN_SETUP, False) else None


def _record(item: pytest.Item, report: pytest.TestReport, category: str) -> None:
    """Keep the first non-pass outcome of a test; store it when the test is over (teardown)."""
    if report.when == "setup" or item.stash.get(OUTCOME, "passed") == "passed":
        item.stash[OUTCOME] = category
    if report.when == "teardown":
        item.config.stash[STATE].results[item.nodeid] = (todo_ids(item), item.stash[OUTCOME])


def _expect_stubs(
    item: pytest.Item,
    report: pytest.TestReport,
    ids: tuple[str, ...],
    category: str,
    exc: BaseException | None,
) -> None:
    """Turn the report of a todo-tagged test into the verdict of the stub check."""
    wanted = ", ".join(f'NotImplementedError("TODO {mark_id}")' for mark_id in ids)
    if report.when == "teardown" or report.skipped:
        return
    if report.failed and category.startswith("own:"):
        report.outcome = "passed"
        report.longrepr = None
        if report.when == "setup":
            item.stash[STUBBED_IN_SETUP] = True
        return
    if report.when == "call" and report.passed and not item.stash.get(STUBBED_IN_SETUP, False):
        report.outcome = "failed"
        report.longrepr = (
            f"--expect-stubs: passes on stubs: the test does not exercise TODO {', '.join(ids)} "
            f"(expected {wanted})"
        )
        return
    if report.failed:
        if category.startswith("other:"):
            what = f'NotImplementedError("TODO {category[len("other:") :]}") of another TODO'
        else:
            what = type(exc).__name__ if exc is not None else "an error"
        report.longrepr = (
            f"--expect-stubs: fails with {what} instead of its own {wanted}\n\n{report.longreprtext}"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    state = item.config.stash.get(STATE, None)
    ids = todo_ids(item)
    if state is None or not ids:
        return report
    exc = call.excinfo.value if call.excinfo is not None else None
    if report.skipped:
        category = "skipped"
    elif report.failed:
        category = classify(ids, exc)
    else:
        category = "passed"
    if state.expect_stubs:
        _expect_stubs(item, report, ids, category, exc)
    _record(item, report, category)
    return report


# ---------------------------------------------------------------------------------------------------
# The progress table


@dataclass
class _Row:
    todo_id: str
    phase: str
    hint: str
    order: tuple[int, int, str]
    passed: int = 0
    total: int = 0
    own: int = 0
    failed: int = 0
    blocked: int = 0
    blockers: set[str] = field(default_factory=set)
    end_to_end: bool = False  # a prefix mark ("p3", "p4.audio"): tests of several TODOs together

    @property
    def status(self) -> str:
        if self.total == 0:
            return "skipped"
        if self.passed == self.total:
            return "done"
        waiting = "blocked by " + ", ".join(sorted(self.blockers))
        if self.passed and self.passed + self.blocked == self.total:
            return f"done; {self.blocked} more {'test' if self.blocked == 1 else 'tests'} {waiting}"
        if self.passed or self.failed:
            return "in progress"
        if self.own:
            return "not started"
        return waiting


def progress_rows(results: dict[str, tuple[tuple[str, ...], str]], root: os.PathLike[str],
                  per_row: bool = True) -> list[_Row]:
    """One row per todo id (or prefix) that tagged a test of this run, in curriculum order.

    A test tagged with several TODOs (its own and those it builds on) that stopped at one of their
    stubs counts, with `per_row`, as not started for the rows that stub belongs to and as blocked by
    it for the others (a finished TODO then reads "done; 1 more test blocked by ..."); without it (the
    stub check), as stopped at its own stub for every row."""
    todos = collect_todos(root)
    index = {todo.id: (position, todo) for position, todo in enumerate(todos)}
    rows: dict[str, _Row] = {}
    for ids, category in results.values():
        for mark_id in ids:
            row = rows.get(mark_id)
            if row is None:
                phase = _phase_of(mark_id)
                phase_index = PHASES.index(phase) if phase in PHASES else len(PHASES)
                if mark_id in index:
                    position, todo = index[mark_id]
                    hint, order = todo.first_hint_sentence, (phase_index, position, mark_id)
                else:
                    under = [todo for todo in todos if covers(mark_id, todo.id)]
                    if under:
                        hint = f"end to end: all {len(under)} TODOs under {mark_id}"
                    else:
                        hint = "(no such TODO in the solutions)"
                    order = (phase_index, len(todos), mark_id)
                row = rows[mark_id] = _Row(mark_id, phase, hint, order, end_to_end=mark_id not in index)
            if category == "skipped":
                continue
            row.total += 1
            if category == "passed":
                row.passed += 1
            elif category.startswith(("own:", "other:")):
                fired = category.split(":", 1)[1]
                if category.startswith("own:") and (not per_row or covers(mark_id, fired)):
                    row.own += 1
                else:
                    row.blocked += 1
                    row.blockers.add(fired)
            else:
                row.failed += 1
    return sorted(rows.values(), key=lambda row: row.order)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(rows: list[_Row], width: int = 120) -> list[str]:
    """The table as text lines: phase, TODO id, tests passed/total, status, first hint sentence.

    The hint comes last and is shortened so that lines fit in `width` columns (at least 30 for it).
    """
    table = [("phase", "TODO", "tests", "status", "first hint sentence")]
    table += [(row.phase, row.todo_id, f"{row.passed}/{row.total}", row.status, row.hint) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(4)]
    hint_width = max(MIN_HINT_WIDTH, width - sum(widths) - 2 * len(widths) - 1)
    lines = []
    for position, line in enumerate(table):
        cells = [line[column].ljust(widths[column]) for column in range(4)] + [_shorten(line[4], hint_width)]
        lines.append("  ".join(cells).rstrip())
        if position == 0:
            lines.append("  ".join("-" * width for width in widths + [len(line[4])]))
    return lines


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> Iterator[None]:
    """Print the table last, after pytest's short test summary, so that it is what a student sees."""
    result = yield
    _print_table(terminalreporter, config)
    return result


def _print_table(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.results:
        return
    rows = progress_rows(state.results, config.rootpath, per_row=not state.expect_stubs)
    width = getattr(getattr(terminalreporter, "_tw", None), "fullwidth", 120)
    write = terminalreporter.write_line
    if state.expect_stubs:
        skipped = [row.todo_id for row in rows if row.status == "skipped"]  # nothing ran: nothing to judge
        rows = [row for row in rows if row.status != "skipped"]
        odd = [row for row in rows if row.status != "not started"]
        terminalreporter.write_sep("=", f"TODO stub check ({state.impl})")
        write(f"{len(rows) - len(odd)} of {len(rows)} TODO(s): every test stops at its own stub")
        if odd:
            write("these TODOs have tests that do not stop at their own stub (see the failures above):")
            for line in format_table(odd, width):
                write(line)
        marks = {mark_id for ids, _ in state.results.values() for mark_id in ids}
        untested = [
            todo.id for todo in collect_todos(config.rootpath) if not any(covers(m, todo.id) for m in marks)
        ]
        if untested:
            write(f"TODOs that no test of this run checks: {', '.join(untested)}")
        if skipped:
            write(f"TODOs whose tests were all skipped in this run (not checked): {', '.join(skipped)}")
        return
    others: list[str] = []
    if state.prefixes:  # --todo: the rows asked for; the TODOs the selected tests also build on in a line
        others = [row.todo_id for row in rows if not row.todo_id.startswith(tuple(state.prefixes))]
        rows = [row for row in rows if row.todo_id.startswith(tuple(state.prefixes))]
    todos = [row for row in rows if not row.end_to_end]
    checks = [row for row in rows if row.end_to_end]
    done = sum(row.status.startswith("done") for row in todos)  # "done; 1 more test blocked by ..." too
    checked = sum(row.status == "done" for row in checks)
    counts = f"{done} of {len(todos)} TODOs done" + (
        f", {checked} of {len(checks)} end-to-end checks passed" if checks else "")
    terminalreporter.write_sep("=", f"TODO progress ({state.impl}): {counts}")
    if state.impl == "solutions" and done + checked == len(rows):
        write(f"every TODO and end-to-end check done by the reference solutions ({counts})")
        return
    for line in format_table(rows, width):
        write(line)
    if others:
        write(f"these tests also build on: {', '.join(others)} (their rows: run without --todo)")
