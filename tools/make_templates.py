"""Generate the student templates from the reference solutions (the single source of truth).

Solutions are the only hand-written phase files. Inside a function body they mark what students write:

    def umeyama(src, dst):
        \"\"\"Docstring (kept).\"\"\"
        # TODO p1.align.umeyama: Estimate the similarity transform from src to dst.
        # Hint: Umeyama (1991) eq. 40-42 ...
        # BEGIN SOLUTION p1.align.umeyama
        ...reference code...
        # END SOLUTION

For every `solutions/<phase>/<module>.py` this writes `<phase>/template_<module>.py` in which each
region becomes `raise NotImplementedError("TODO <id>")` at the BEGIN line's indentation. Everything
else is copied byte for byte (the TODO and Hint lines stay), except that sibling imports
`solutions.<phase>.<module>` become `<phase>.template_<module>`. A header names the source and holds a
sha256 of the generated body, so a template a student has edited is recognised and never overwritten
without `--force`. `--check` writes nothing: it prints a unified diff of every stale or missing
template and exits 1. Marker mistakes stop the run with `file:line: message` and exit 2.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import difflib
import hashlib
import io
import re
import symtable
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from common.atomic import write_atomic
from common.impl import PHASES

REPO_ROOT = Path(__file__).resolve().parents[1]

EXIT_OK, EXIT_STALE, EXIT_ERROR = 0, 1, 2

# `# BEGIN SOLUTION <id>` and `# END SOLUTION`, each alone on its line.
BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?:[ \t]+(?P<id>\S+))?[ \t]*\r?\n?$")
END_RE = re.compile(r"^[ \t]*# END SOLUTION[ \t]*\r?\n?$")
# Anything that looks like a marker, to catch typos such as `#BEGIN SOLUTION` or trailing text.
MARKER_LIKE_RE = re.compile(r"^[ \t]*#[ \t]*(BEGIN|END)[ \t]+SOLUTION")
# `# TODO p1.align.umeyama: one sentence`; ordinary `# TODO ...` comments without an id are ignored.
TODO_RE = re.compile(r"^[ \t]*# TODO (?P<id>p\d+(?:\.\w+)+):[ \t]*(?P<text>.*?)[ \t]*\r?\n?$")
ID_RE = re.compile(r"^p(?P<phase>\d+)(?:\.[A-Za-z0-9_]+)+$")
# Dotted references to sibling solution modules (imports and attribute uses alike).
SIBLING_RE = re.compile(
    r"(?<![\w.])solutions\.(?P<phase>" + "|".join(PHASES) + r")\.(?P<module>[A-Za-z_]\w*)"
)
HASH_RE = re.compile(r"^# body-sha256: (?P<digest>[0-9a-f]{64})\r?\n", re.MULTILINE)
HEADER_LINES = 8  # the hash line is looked for among the first lines only


class MarkerError(Exception):
    """A mistake in a solution file, reported as `file:line: message`."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


@dataclass(frozen=True)
class Region:
    """One `# BEGIN SOLUTION <id>` ... `# END SOLUTION` block (1-based line numbers)."""

    todo_id: str
    begin: int
    end: int
    indent: str


@dataclass(frozen=True)
class Todo:
    """One student exercise, as listed in the progress table."""

    id: str
    phase: str
    module: str
    first_hint_sentence: str
    file: str
    line: int


@dataclass(frozen=True)
class Plan:
    """The template that one solution file should produce."""

    phase: str
    module: str
    source: str  # "solutions/<phase>/<module>.py"
    target: Path
    text: str


# ---------------------------------------------------------------------------------------------------
# Reading the markers


# Words whose trailing period does not end a sentence ("eq. 4", "Siarohin et al. 2019").
ABBREVIATIONS = {"eq", "eqs", "e.g", "i.e", "al", "sec", "fig", "vs", "cf", "approx", "no"}


def _first_sentence(text: str) -> str:
    """Up to the first ".", "!" or "?" followed by a capital letter or the end, skipping abbreviations."""
    text = text.strip()
    for match in re.finditer(r"[.!?](?=\s+[A-Z(\"'`]|\s*$)", text):
        before = text[: match.start()].split()
        if match.group() != "." or not before or before[-1].lower() not in ABBREVIATIONS:
            return text[: match.end()]
    return text


def _todo_text(lines: list[str], index: int) -> str:
    """The TODO sentence at `lines[index]` plus comment lines that continue it (until a Hint or marker)."""
    parts = [TODO_RE.match(lines[index]).group("text")]
    for line in lines[index + 1 :]:
        stripped = line.strip()
        if not stripped.startswith("#") or MARKER_LIKE_RE.match(line) or TODO_RE.match(line):
            break
        comment = stripped.lstrip("#").strip()
        if not comment or comment.lower().startswith("hint:"):
            break
        parts.append(comment)
    return " ".join(part for part in parts if part)


def parse_regions(rel: str, phase: str, lines: list[str]) -> tuple[list[Region], list[MarkerError]]:
    """Find the solution regions of one file and check the markers and TODO lines around them."""
    regions: list[Region] = []
    errors: list[MarkerError] = []
    phase_number = PHASES.index(phase) + 1
    open_region: tuple[str, int, str] | None = None
    for number, line in enumerate(lines, start=1):
        begin, end = BEGIN_RE.match(line), END_RE.match(line)
        if begin:
            todo_id = begin.group("id")
            if open_region is not None:
                errors.append(
                    MarkerError(
                        rel,
                        number,
                        f"BEGIN SOLUTION inside region {open_region[0]} "
                        f"(opened at line {open_region[1]}); regions cannot nest",
                    )
                )
                continue
            if not todo_id:
                errors.append(MarkerError(rel, number, "BEGIN SOLUTION needs a TODO id"))
                continue
            id_match = ID_RE.match(todo_id)
            if not id_match:
                errors.append(
                    MarkerError(rel, number, f"bad TODO id {todo_id!r}: write p<phase>.<module>.<what>")
                )
            elif int(id_match.group("phase")) != phase_number:
                errors.append(
                    MarkerError(
                        rel, number, f"TODO id {todo_id} is in {phase}: start it with p{phase_number}."
                    )
                )
            open_region = (todo_id, number, begin.group("indent"))
        elif end:
            if open_region is None:
                errors.append(MarkerError(rel, number, "END SOLUTION without BEGIN SOLUTION"))
                continue
            regions.append(Region(open_region[0], open_region[1], number, open_region[2]))
            open_region = None
        elif MARKER_LIKE_RE.match(line):
            errors.append(
                MarkerError(
                    rel,
                    number,
                    "malformed marker: write `# BEGIN SOLUTION <id>` or `# END SOLUTION` alone on its line",
                )
            )
    if open_region is not None:
        errors.append(MarkerError(rel, open_region[1], f"region {open_region[0]} has no END SOLUTION"))

    claimed: set[int] = set()
    for region in regions:
        todo_line = None
        index = region.begin - 2  # 0-based index of the line above BEGIN
        while index >= 0 and lines[index].strip().startswith("#"):
            if TODO_RE.match(lines[index]):
                todo_line = index
                break
            index -= 1
        if todo_line is None:
            errors.append(
                MarkerError(
                    rel,
                    region.begin,
                    f"region {region.todo_id} has no "
                    f"`# TODO {region.todo_id}: <one sentence>` comment line above it",
                )
            )
            continue
        found = TODO_RE.match(lines[todo_line]).group("id")
        if found != region.todo_id:
            errors.append(
                MarkerError(rel, todo_line + 1, f"TODO {found} stands above region {region.todo_id}")
            )
        claimed.add(todo_line)
    for index, line in enumerate(lines):
        match = TODO_RE.match(line)
        if match and index not in claimed:
            errors.append(
                MarkerError(rel, index + 1, f"TODO {match.group('id')} has no BEGIN SOLUTION region below it")
            )
    return regions, errors


def _statement_scopes(tree: ast.Module) -> list[tuple[ast.stmt, ast.AST | None]]:
    """Every statement with the innermost function or class whose body holds it (None: module level)."""
    scopes: list[tuple[ast.stmt, ast.AST | None]] = []

    def visit(node: ast.AST, scope: ast.AST | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                scopes.append((child, scope))
            is_scope = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            visit(child, child if is_scope else scope)

    visit(tree, None)
    return scopes


def _is_function(node: ast.AST | None) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))


def check_region_structure(rel: str, text: str, regions: list[Region]) -> list[MarkerError]:
    """Each region must sit inside one function body and hold whole statements of a single block."""
    try:
        tree = ast.parse(text, filename=rel)
    except SyntaxError as err:
        return [MarkerError(rel, err.lineno or 1, f"solution does not parse: {err.msg}")]
    scopes = _statement_scopes(tree)
    first_col: dict[int, int] = {}
    skip = {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENCODING,
        tokenize.ENDMARKER,
    }
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in skip:
            first_col.setdefault(token.start[0], token.start[1])

    errors: list[MarkerError] = []
    for region in regions:
        inside = [(stmt, scope) for stmt, scope in scopes if region.begin < stmt.lineno < region.end]
        inside_ids = {id(stmt) for stmt, _ in inside}
        # Statements of the region's own block (not those nested in a def or class the region defines).
        top = [(stmt, scope) for stmt, scope in inside if id(scope) not in inside_ids]
        outside_function = [stmt for stmt, scope in top if not _is_function(scope)]
        if outside_function:
            errors.append(
                MarkerError(
                    rel,
                    region.begin,
                    f"region {region.todo_id} is not inside a function "
                    f"body (line {outside_function[0].lineno})",
                )
            )
            continue
        if len({id(scope) for _, scope in top}) > 1:
            errors.append(
                MarkerError(rel, region.begin, f"region {region.todo_id} spans more than one function")
            )
            continue
        for stmt, _ in scopes:
            simple = not hasattr(stmt, "body")
            if region.begin < stmt.lineno < region.end and stmt.end_lineno >= region.end:
                errors.append(
                    MarkerError(
                        rel,
                        region.end,
                        f"END SOLUTION of {region.todo_id} cuts the statement starting at line {stmt.lineno}",
                    )
                )
                break
            if simple and stmt.lineno < region.begin <= stmt.end_lineno:
                errors.append(
                    MarkerError(
                        rel,
                        region.begin,
                        f"BEGIN SOLUTION of {region.todo_id} is inside the "
                        f"statement starting at line {stmt.lineno}",
                    )
                )
                break
        for number in range(region.begin + 1, region.end):
            if first_col.get(number, len(region.indent)) < len(region.indent):
                errors.append(
                    MarkerError(
                        rel,
                        number,
                        f"line is less indented than BEGIN SOLUTION "
                        f"{region.todo_id}: a region must hold whole statements of one block",
                    )
                )
                break
    return errors


# ---------------------------------------------------------------------------------------------------
# Writing a template


def _line_ending(line: str) -> str:
    return "\r\n" if line.endswith("\r\n") else "\n"


def render_body(lines: list[str], regions: list[Region]) -> tuple[str, list[int]]:
    """Template body (no header) and, for each of its lines, the solution line it came from."""
    out: list[str] = []
    line_map: list[int] = []
    position = 0  # 0-based index of the next solution line to copy
    for region in regions:
        for index in range(position, region.begin - 1):
            out.append(SIBLING_RE.sub(r"\g<phase>.template_\g<module>", lines[index]))
            line_map.append(index + 1)
        ending = _line_ending(lines[region.begin - 1])
        out.append(f'{region.indent}raise NotImplementedError("TODO {region.todo_id}"){ending}')
        line_map.append(region.begin)
        position = region.end
    for index in range(position, len(lines)):
        out.append(SIBLING_RE.sub(r"\g<phase>.template_\g<module>", lines[index]))
        line_map.append(index + 1)
    return "".join(out), line_map


def header(source: str, body: str) -> str:
    """The comment block on top of every template; its hash lets us recognise a student's edits."""
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return (
        "# Generated by `make templates` (tools/make_templates.py) from\n"
        f"#   {source}\n"
        "# Developers: edit the solution, never this file. Students: fill in the TODOs below; once you\n"
        "# have edited this file, `make templates` keeps your version unless run with --force.\n"
        f"# body-sha256: {digest}\n"
    )


def is_edited(text: str) -> bool:
    """True when a template's body no longer matches the hash in its header (or it has no header)."""
    match = HASH_RE.search("".join(text.splitlines(keepends=True)[:HEADER_LINES]))
    if match is None:
        return True
    body = text[match.end() :]
    return hashlib.sha256(body.encode("utf-8")).hexdigest() != match.group("digest")


def _function_raises_outside(tree: ast.Module, raise_lines: set[int]) -> list[int]:
    """Lines in `raise_lines` whose `raise` is not inside a function body."""
    bad: list[int] = []
    for stmt, scope in _statement_scopes(tree):
        if isinstance(stmt, ast.Raise) and stmt.lineno in raise_lines and not _is_function(scope):
            bad.append(stmt.lineno)
    return bad


def _undefined_names(body: str, rel: str) -> list[tuple[int, str, str]]:
    """(line, scope, name) of names the template uses but defines nowhere (what ruff reports as F821)."""
    if re.search(r"^\s*from\s+\S+\s+import\s+\*", body, re.MULTILINE):
        return []
    top = symtable.symtable(body, rel, "exec")
    known = set(dir(builtins)) | {
        "__file__",
        "__name__",
        "__doc__",
        "__spec__",
        "__package__",
        "__loader__",
        "__builtins__",
        "__path__",
    }
    known |= {
        symbol.get_name()
        for symbol in top.get_symbols()
        if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()
    }
    found: list[tuple[int, str, str]] = []

    def visit(table: symtable.SymbolTable) -> None:
        for child in table.get_children():
            for symbol in child.get_symbols():
                name = symbol.get_name()
                if symbol.is_referenced() and symbol.is_global() and not symbol.is_declared_global():
                    if name not in known:
                        found.append((child.get_lineno(), child.get_name(), name))
            visit(child)

    visit(top)
    return found


def check_template(
    rel: str, source: str, body: str, line_map: list[int], regions: list[Region], modules: dict[str, set[str]]
) -> list[MarkerError]:
    """The generated template must parse, raise inside functions, import no solution module and use no
    name that only the removed code defined (`source` is the solution text, for comparison)."""
    try:
        tree = ast.parse(body, filename=rel)
    except SyntaxError as err:
        line = line_map[min(max((err.lineno or 1) - 1, 0), len(line_map) - 1)] if line_map else 1
        return [MarkerError(rel, line, f"the template would not parse: {err.msg}")]
    errors: list[MarkerError] = []
    begins = {region.begin for region in regions}
    raise_lines = {number for number, source_line in enumerate(line_map, start=1) if source_line in begins}
    for number in _function_raises_outside(tree, raise_lines):
        errors.append(MarkerError(rel, line_map[number - 1], "the region is not inside a function body"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                errors.append(
                    MarkerError(
                        rel,
                        line_map[node.lineno - 1],
                        "relative import: import siblings as `from solutions.<phase>.<module> import name`",
                    )
                )
                continue
            names = [node.module or ""]
        for name in names:
            parts = name.split(".")
            if parts[0] == "solutions":
                errors.append(
                    MarkerError(
                        rel,
                        line_map[node.lineno - 1],
                        f"the template would import {name}: "
                        "import siblings as `from solutions.<phase>.<module> import name`",
                    )
                )
            elif (
                len(parts) >= 2
                and parts[0] in PHASES
                and parts[1].startswith("template_")
                and parts[1][len("template_") :] not in modules.get(parts[0], set())
            ):
                errors.append(
                    MarkerError(
                        rel,
                        line_map[node.lineno - 1],
                        f"imports solutions.{parts[0]}.{parts[1][len('template_') :]}, which does not exist",
                    )
                )
    already = {(scope, name) for _, scope, name in _undefined_names(source, rel)}
    for line, scope, name in _undefined_names(body, rel):
        if (scope, name) in already:
            continue  # undefined in the solution too: ruff reports it there
        errors.append(
            MarkerError(
                rel,
                line_map[line - 1] if 0 < line <= len(line_map) else 1,
                f"in {scope}: {name!r} is defined only inside a SOLUTION region but used "
                "after it; move END SOLUTION below its last use",
            )
        )
    return errors


# ---------------------------------------------------------------------------------------------------
# The whole tree


def solution_files(root: Path) -> list[tuple[str, Path]]:
    """(phase, path) of every solution module, in a stable order."""
    found: list[tuple[str, Path]] = []
    for phase in PHASES:
        folder = root / "solutions" / phase
        if folder.is_dir():
            found.extend((phase, path) for path in sorted(folder.glob("*.py")) if path.name != "__init__.py")
    return found


def plan_templates(root: Path) -> tuple[list[Plan], list[MarkerError]]:
    """Read every solution, check its markers and render its template (nothing is written)."""
    files = solution_files(root)
    modules: dict[str, set[str]] = {}
    for phase, path in files:
        modules.setdefault(phase, set()).add(path.stem)
    plans: list[Plan] = []
    errors: list[MarkerError] = []
    first_seen: dict[str, str] = {}
    for phase, path in files:
        rel = path.relative_to(root).as_posix()
        text = path.read_bytes().decode("utf-8")
        lines = text.splitlines(keepends=True)
        regions, file_errors = parse_regions(rel, phase, lines)
        for region in regions:
            where = f"{rel}:{region.begin}"
            if region.todo_id in first_seen:
                file_errors.append(
                    MarkerError(
                        rel,
                        region.begin,
                        f"duplicate TODO id {region.todo_id} (first at {first_seen[region.todo_id]})",
                    )
                )
            else:
                first_seen[region.todo_id] = where
        if not file_errors:
            file_errors = check_region_structure(rel, text, regions)
        if not file_errors:
            body, line_map = render_body(lines, regions)
            file_errors = check_template(rel, text, body, line_map, regions, modules)
            target = root / phase / f"template_{path.stem}.py"
            plans.append(Plan(phase, path.stem, rel, target, header(rel, body) + body))
        errors.extend(file_errors)
    return plans, errors


def collect_todos(root: Path) -> list[Todo]:
    """Every TODO with its first hint sentence, read leniently from the solutions (then the templates).

    Used by the pytest plugin's progress table, so it never raises on marker mistakes.
    """
    todos: dict[str, Todo] = {}
    root = Path(root)
    for phase in PHASES:
        sources = [(path.stem, path) for path in sorted((root / "solutions" / phase).glob("*.py"))]
        sources += [
            (path.stem[len("template_") :], path) for path in sorted((root / phase).glob("template_*.py"))
        ]
        for module, path in sources:
            if module == "__init__":
                continue
            try:
                lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            except (OSError, UnicodeDecodeError):
                continue
            for index, line in enumerate(lines):
                match = TODO_RE.match(line)
                if match and match.group("id") not in todos:
                    todos[match.group("id")] = Todo(
                        match.group("id"),
                        phase,
                        module,
                        _first_sentence(_todo_text(lines, index)),
                        path.relative_to(root).as_posix(),
                        index + 1,
                    )
    return list(todos.values())


def _package_inits(root: Path, only: str | None) -> list[Path]:
    """`__init__.py` files the solutions and templates need to be importable as packages."""
    inits: list[Path] = []
    if (root / "solutions").is_dir():
        inits.append(root / "solutions" / "__init__.py")
    for phase in PHASES:
        if only is not None and phase != only:
            continue
        has_solutions = (root / "solutions" / phase).is_dir()
        if has_solutions:
            inits.append(root / "solutions" / phase / "__init__.py")
        if has_solutions or (root / phase).is_dir():
            inits.append(root / phase / "__init__.py")
    return inits


def _orphans(root: Path, plans: list[Plan], only: str | None) -> list[Path]:
    """Generated templates whose solution file no longer exists."""
    wanted = {plan.target for plan in plans}
    found: list[Path] = []
    for phase in PHASES:
        if only is None or phase == only:
            found.extend(path for path in sorted((root / phase).glob("template_*.py")) if path not in wanted)
    return found


def generate(
    root: Path | str = REPO_ROOT,
    *,
    force: bool = False,
    check: bool = False,
    only: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Write (or with `check`, verify) every template under `root`; returns the exit status.

    0: all written or up to date. 1: `check` found stale/missing templates, or edited templates were
    kept because `force` was off. 2: a marker mistake (nothing is written then).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    root = Path(root)
    if only is not None and only not in PHASES:
        print(f"error: unknown phase {only!r}; choose one of {', '.join(PHASES)}", file=err)
        return EXIT_ERROR
    plans, errors = plan_templates(root)
    if errors:
        for error in errors:
            print(error, file=err)
        print(f"{len(errors)} error(s) in the solution markers; no template was written", file=err)
        return EXIT_ERROR
    plans = [plan for plan in plans if only is None or plan.phase == only]
    inits = [path for path in _package_inits(root, only) if not path.exists()]
    orphans = _orphans(root, plans, only)

    if check:
        stale, edited = 0, []
        for path in inits:
            print(f"missing {path.relative_to(root).as_posix()}", file=out)
            stale += 1
        for plan in plans:
            rel = plan.target.relative_to(root).as_posix()
            old = plan.target.read_bytes().decode("utf-8") if plan.target.exists() else None
            if old == plan.text:
                continue
            if old is not None and is_edited(old):  # a student's work, not a stale file: no diff
                edited.append(rel)
                continue
            stale += 1
            diff = difflib.unified_diff(
                (old or "").splitlines(keepends=True),
                plan.text.splitlines(keepends=True),
                fromfile=f"a/{rel}" if old is not None else "/dev/null",
                tofile=f"b/{rel}",
            )
            for line in diff:
                out.write(line if line.endswith("\n") else line + "\n")
        for path in orphans:
            print(f"orphan {path.relative_to(root).as_posix()}: its solution no longer exists", file=out)
            stale += 1
        if edited:
            print(f"{len(edited)} template file(s) hold your own code ({', '.join(edited)}): that is how the "
                  "course works, but this check (`make test`) is for the pristine templates. Check your "
                  "work with `make grade` or `.venv/bin/python -m pytest --impl=templates --todo ID`; "
                  "do not run `python -m tools.make_templates --force`, which would replace your code "
                  "with the stubs",
                  file=err)
        if stale:
            print(f"{stale} template file(s) stale or missing: run `make templates`", file=err)
        if stale or edited:
            return EXIT_STALE
        print(f"templates up to date ({len(plans)} checked)", file=out)
        return EXIT_OK

    for path in inits:
        write_atomic(path, lambda file: file.write(b""))
        print(f"created {path.relative_to(root).as_posix()}", file=out)
    written = kept = 0
    for plan in plans:
        rel = plan.target.relative_to(root).as_posix()
        old = plan.target.read_bytes().decode("utf-8") if plan.target.exists() else None
        if old == plan.text:
            continue
        if old is not None and not force and is_edited(old):
            print(f"kept {rel}: edited since it was generated (--force would overwrite it, and your code "
                  "in it)", file=err)
            kept += 1
            continue
        write_atomic(plan.target, lambda file, text=plan.text: file.write(text.encode("utf-8")))
        print(f"wrote {rel}", file=out)
        written += 1
    for path in orphans:
        print(
            f"warning: {path.relative_to(root).as_posix()} has no solution any more; delete it by hand",
            file=err,
        )
    print(f"templates: {written} written, {len(plans) - written - kept} unchanged, {kept} kept", file=out)
    return EXIT_STALE if kept else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_templates",
        description="Write <phase>/template_<module>.py for every solutions/<phase>/<module>.py: each "
        '`# BEGIN SOLUTION <id>` ... `# END SOLUTION` region becomes `raise NotImplementedError("TODO '
        '<id>")`, everything else is kept. Exit status: 0 ok, 1 stale (--check) or edited templates kept, '
        "2 marker mistakes.",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite templates even when a student has edited them (their work is lost)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; print a diff of stale or missing templates and exit 1 if any",
    )
    parser.add_argument(
        "--only",
        choices=PHASES,
        metavar="PHASE",
        help=f"only this phase ({', '.join(PHASES)}); ids are still checked across all",
    )
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)"
    )
    args = parser.parse_args(argv)
    return generate(args.root, force=args.force, check=args.check, only=args.only)


if __name__ == "__main__":
    raise SystemExit(main())
