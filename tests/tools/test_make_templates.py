"""The template generator on small temporary trees: output, freshness check, edit protection, errors."""

from __future__ import annotations

import hashlib
import importlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from tools.make_templates import (
    REPO_ROOT,
    collect_todos,
    generate,
    is_edited,
    main,
    plan_templates,
    solution_files,
)

# A toy curriculum: two solution files of phase 1 and the template expected from the first.
TOY_DIR = Path(__file__).parent / "toy_curriculum"
TOY = (TOY_DIR / "solutions/phase1_face_swap/toy.py").read_text(encoding="utf-8")
HELPER = (TOY_DIR / "solutions/phase1_face_swap/helper.py").read_text(encoding="utf-8")
TOY_TEMPLATE_BODY = (TOY_DIR / "template_toy_body.txt").read_text(encoding="utf-8")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    return root


def run(root: Path, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = generate(root, out=out, err=err, **kwargs)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path,
        {"solutions/phase1_face_swap/toy.py": TOY, "solutions/phase1_face_swap/helper.py": HELPER},
    )


def test_regions_become_stubs_and_the_rest_is_kept(tree: Path) -> None:
    status, out, _ = run(tree)
    assert status == 0
    text = (tree / "phase1_face_swap/template_toy.py").read_text(encoding="utf-8")
    header, body = text[: text.index('"""A toy')], text[text.index('"""A toy') :]
    assert body == TOY_TEMPLATE_BODY
    assert "solutions/phase1_face_swap/toy.py" in header
    assert f"# body-sha256: {hashlib.sha256(body.encode()).hexdigest()}\n" in header
    assert all(line.startswith("#") and len(line) <= 110 for line in header.splitlines())
    compile(text, "template_toy.py", "exec")
    assert "wrote phase1_face_swap/template_toy.py" in out
    assert not is_edited(text)


def test_plain_sibling_imports_and_their_uses_are_rewritten(tmp_path: Path) -> None:
    user = (
        "import solutions.phase1_face_swap.helper\n"
        "import solutions.phase1_face_swap.helper as h\n\n\n"
        "def quadruple(x: float) -> float:\n"
        "    return solutions.phase1_face_swap.helper.double(h.double(x))\n"
    )
    write_tree(
        tmp_path, {"solutions/phase1_face_swap/helper.py": HELPER, "solutions/phase1_face_swap/user.py": user}
    )
    assert run(tmp_path)[0] == 0
    text = (tmp_path / "phase1_face_swap/template_user.py").read_text()
    assert text.endswith(
        "import phase1_face_swap.template_helper\n"
        "import phase1_face_swap.template_helper as h\n\n\n"
        "def quadruple(x: float) -> float:\n"
        "    return phase1_face_swap.template_helper.double(h.double(x))\n"
    )


def test_package_inits_are_created(tree: Path) -> None:
    run(tree)
    for rel in (
        "solutions/__init__.py",
        "solutions/phase1_face_swap/__init__.py",
        "phase1_face_swap/__init__.py",
    ):
        assert (tree / rel).read_text() == ""
    assert not (tree / "phase2_face_reenactment").exists()


def test_crlf_line_endings_are_kept(tmp_path: Path) -> None:
    write_tree(tmp_path, {"solutions/phase1_face_swap/helper.py": HELPER.replace("\n", "\r\n")})
    assert run(tmp_path)[0] == 0
    body = (tmp_path / "phase1_face_swap/template_helper.py").read_bytes().split(b"sha256: ")[1]
    assert body.split(b"\n", 1)[1] == (
        b'def double(x: float) -> float:\r\n    """Twice x."""\r\n    # TODO p1.helper.double: Double it.\r\n'
        b'    raise NotImplementedError("TODO p1.helper.double")\r\n'
    )


def test_second_run_changes_nothing(tree: Path) -> None:
    run(tree)
    before = (tree / "phase1_face_swap/template_toy.py").stat().st_mtime_ns
    status, out, _ = run(tree)
    assert status == 0 and "0 written, 2 unchanged" in out
    assert (tree / "phase1_face_swap/template_toy.py").stat().st_mtime_ns == before


def test_check_passes_when_fresh_and_fails_after_a_solution_edit(tree: Path) -> None:
    assert run(tree)[0] == 0
    status, out, _ = run(tree, check=True)
    assert status == 0 and "up to date" in out
    template = tree / "phase1_face_swap/template_toy.py"
    before = template.read_text()
    solution = tree / "solutions/phase1_face_swap/toy.py"
    solution.write_text(TOY.replace("Twice every value", "Double every value"))
    status, out, err = run(tree, check=True)
    assert status == 1
    assert "--- a/phase1_face_swap/template_toy.py" in out and "+++ b/phase1_face_swap/template_toy.py" in out
    assert '-    """Twice every value; an empty list for None."""' in out
    assert '+    """Double every value; an empty list for None."""' in out
    assert "make templates" in err
    assert template.read_text() == before  # --check writes nothing


def test_check_reports_missing_templates_and_orphans(tree: Path) -> None:
    status, out, _ = run(tree, check=True)
    assert status == 1 and "+++ b/phase1_face_swap/template_toy.py" in out and "missing" in out
    run(tree)
    (tree / "solutions/phase1_face_swap/helper.py").unlink()
    (tree / "solutions/phase1_face_swap/toy.py").write_text(
        TOY.replace("solutions.phase1_face_swap.helper", "math")
    )
    run(tree)
    status, out, _ = run(tree, check=True)
    assert status == 1 and "orphan phase1_face_swap/template_helper.py" in out


def test_check_on_a_students_edited_template_points_to_grade_not_to_force(tree: Path) -> None:
    assert run(tree)[0] == 0
    template = tree / "phase1_face_swap/template_toy.py"
    template.write_text(template.read_text().replace('raise NotImplementedError("TODO p1.toy.scale")',
                                                     "return []"))
    status, out, err = run(tree, check=True)
    assert status == 1 and "---" not in out  # no diff that reads "your code removed"
    assert "hold your own code (phase1_face_swap/template_toy.py)" in err
    assert "make grade" in err and "do not run `python -m tools.make_templates --force`" in err


def test_edited_template_is_kept_unless_forced(tree: Path) -> None:
    run(tree)
    template = tree / "phase1_face_swap/template_toy.py"
    student = template.read_text().replace('raise NotImplementedError("TODO p1.toy.scale")', "return []")
    template.write_text(student)
    assert is_edited(student)
    solution = tree / "solutions/phase1_face_swap/toy.py"
    solution.write_text(TOY.replace("A toy solution module.", "A toy module."))
    status, _, err = run(tree)
    assert status == 1 and "kept phase1_face_swap/template_toy.py" in err and "--force" in err
    assert template.read_text() == student
    status, _, _ = run(tree, force=True)
    assert status == 0
    assert template.read_text().endswith(TOY_TEMPLATE_BODY.replace("A toy solution module.", "A toy module."))


def test_only_writes_one_phase(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "solutions/phase1_face_swap/helper.py": HELPER,
            "solutions/phase4_audio_driven/mel.py": HELPER.replace("p1.helper", "p4.mel"),
        },
    )
    assert run(tmp_path, only="phase4_audio_driven")[0] == 0
    assert (tmp_path / "phase4_audio_driven/template_mel.py").exists()
    assert not (tmp_path / "phase1_face_swap").exists()
    assert not (tmp_path / "solutions/phase1_face_swap/__init__.py").exists()


def test_collect_todos_gives_the_first_sentence(tree: Path) -> None:
    todos = {todo.id: todo for todo in collect_todos(tree)}
    assert set(todos) == {"p1.toy.centre", "p1.toy.scale", "p1.helper.double"}
    centre = todos["p1.toy.centre"]
    assert centre.first_hint_sentence == "Subtract the mean from every value."
    assert (centre.phase, centre.module, centre.file, centre.line) == (
        "phase1_face_swap",
        "toy",
        "solutions/phase1_face_swap/toy.py",
        11,
    )


def _func(body: str) -> str:
    return f'def f(x):\n    """Doc."""\n{body}'


ERRORS = {
    "nested": (
        _func(
            "    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION p1.bad.a\n    # BEGIN SOLUTION p1.bad.b\n"
            "    return x\n    # END SOLUTION\n"
        ),
        5,
        "cannot nest",
    ),
    "unclosed": (
        _func("    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION p1.bad.a\n    return x\n"),
        4,
        "no END SOLUTION",
    ),
    "end without begin": (_func("    return x\n    # END SOLUTION\n"), 4, "END SOLUTION without BEGIN"),
    "module level": (
        "# TODO p1.bad.a: A.\n# BEGIN SOLUTION p1.bad.a\nX = 1\n# END SOLUTION\n",
        2,
        "not inside a function body",
    ),
    "class body": (
        "class C:\n    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION p1.bad.a\n    X = 1\n    # END SOLUTION\n",
        3,
        "not inside a function body",
    ),
    "two functions": (
        "def f():\n    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION p1.bad.a\n    return 1\n\n\ndef g():\n"
        "    return 2\n    # END SOLUTION\n",
        3,
        "not inside a function body",
    ),
    "no todo line": (
        _func("    # BEGIN SOLUTION p1.bad.a\n    return x\n    # END SOLUTION\n"),
        3,
        "no `# TODO",
    ),
    "todo id mismatch": (
        _func("    # TODO p1.bad.b: B.\n    # BEGIN SOLUTION p1.bad.a\n    return x\n    # END SOLUTION\n"),
        3,
        "TODO p1.bad.b stands above region p1.bad.a",
    ),
    "todo without region": (_func("    # TODO p1.bad.a: A.\n    return x\n"), 3, "has no BEGIN SOLUTION"),
    "malformed marker": (
        _func("    # TODO p1.bad.a: A.\n    #BEGIN SOLUTION p1.bad.a\n    return x\n    # END SOLUTION\n"),
        4,
        "malformed marker",
    ),
    "wrong phase": (
        _func("    # TODO p2.bad.a: A.\n    # BEGIN SOLUTION p2.bad.a\n    return x\n    # END SOLUTION\n"),
        4,
        "start it with p1.",
    ),
    "cuts a block": (
        _func(
            "    if x:\n        # TODO p1.bad.a: A.\n        # BEGIN SOLUTION p1.bad.a\n        y = 1\n"
            "    else:\n        y = 2\n        # END SOLUTION\n    return y\n"
        ),
        7,
        "less indented than BEGIN SOLUTION",
    ),
    "name defined only in region": (
        _func(
            "    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION p1.bad.a\n    y = x\n"
            "    # END SOLUTION\n    return y\n"
        ),
        1,
        "'y' is defined only inside a SOLUTION region",
    ),
    "relative import": ("from .helper import double\n", 1, "relative import"),
    "missing sibling": ("from solutions.phase1_face_swap.nothing import x\n", 1, "which does not exist"),
    "syntax error": (_func("    return x +\n"), 3, "solution does not parse"),
    "text after the begin id": (
        _func("    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION p1.bad.a now\n    return x\n"
              "    # END SOLUTION\n"),
        4,
        "malformed marker",
    ),
    "text after end": (
        _func("    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION p1.bad.a\n    return x\n    # END SOLUTION a\n"),
        6,
        "malformed marker",
    ),
    "bad id": (
        _func("    # TODO umeyama: A.\n    # BEGIN SOLUTION umeyama\n    return x\n    # END SOLUTION\n"),
        4,
        "bad TODO id 'umeyama': write p<phase>.<module>.<what>",
    ),
    "begin without id": (
        _func("    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n"),
        4,
        "BEGIN SOLUTION needs a TODO id",
    ),
    "todo separated from its region by code": (
        _func("    # TODO p1.bad.a: A.\n    y = x\n    # BEGIN SOLUTION p1.bad.a\n    return y\n"
              "    # END SOLUTION\n"),
        5,
        "region p1.bad.a has no `# TODO p1.bad.a: <one sentence>` comment line above it",
    ),
    "spans an inner and its outer function": (
        "def outer():\n    def inner():\n        # TODO p1.bad.a: A.\n        # BEGIN SOLUTION p1.bad.a\n"
        "        return 1\n    return inner\n    # END SOLUTION\n",
        4,
        "region p1.bad.a spans more than one function",
    ),
    "end inside a statement": (
        _func("    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION p1.bad.a\n    y = [\n        x,\n"
              "    # END SOLUTION\n    ]\n    return y\n"),
        7,
        "END SOLUTION of p1.bad.a cuts the statement starting at line 5",
    ),
    "begin inside a statement": (
        _func("    y = max(\n        # TODO p1.bad.a: A.\n        # BEGIN SOLUTION p1.bad.a\n        x,\n"
              "        # END SOLUTION\n    )\n    return y\n"),
        5,
        "BEGIN SOLUTION of p1.bad.a is inside the statement starting at line 3",
    ),
    "empty region in a class body": (
        "class C:\n    X = 1\n    # TODO p1.bad.a: A.\n    # BEGIN SOLUTION p1.bad.a\n    # END SOLUTION\n",
        4,
        "the region is not inside a function body",
    ),
    "imports the solutions package": (
        "import solutions.phase1_face_swap\n",
        1,
        "the template would import solutions.phase1_face_swap",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_marker_mistakes_stop_with_file_and_line(tmp_path: Path, case: str) -> None:
    source, line, message = ERRORS[case]
    write_tree(tmp_path, {"solutions/phase1_face_swap/bad.py": source})
    status, out, err = run(tmp_path)
    assert status == 2
    assert f"solutions/phase1_face_swap/bad.py:{line}: " in err and message in err, err
    assert not (tmp_path / "phase1_face_swap/template_bad.py").exists()
    assert run(tmp_path, check=True)[0] == 2


def test_duplicate_ids_across_files_are_an_error(tree: Path) -> None:
    write_tree(tree, {"solutions/phase1_face_swap/zzz.py": HELPER})
    status, _, err = run(tree)
    assert status == 2
    assert "solutions/phase1_face_swap/zzz.py:4: duplicate TODO id p1.helper.double" in err
    assert "first at solutions/phase1_face_swap/helper.py:4" in err


def test_command_line_entry_point(tree: Path) -> None:
    command = [sys.executable, "-m", "tools.make_templates", "--root", str(tree), "--check"]
    first = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1 and "run `make templates`" in first.stderr
    subprocess.run(command[:-1], cwd=REPO_ROOT, capture_output=True, check=True, timeout=300)
    second = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr


def test_repository_solutions_have_valid_markers() -> None:
    _, errors = plan_templates(REPO_ROOT)
    assert [str(error) for error in errors] == []


def test_repository_templates_import() -> None:
    """Every generated template imports: nothing at module level may reach a stub."""
    for phase, path in solution_files(REPO_ROOT):
        if (REPO_ROOT / phase / f"template_{path.stem}.py").exists():
            importlib.import_module(f"{phase}.template_{path.stem}")


def test_a_template_without_its_header_counts_as_edited_and_is_kept(tree: Path) -> None:
    assert is_edited("def f():\n    return 1\n")
    mine = tree / "phase1_face_swap" / "template_toy.py"
    mine.parent.mkdir(parents=True)
    mine.write_text("# my own version, header removed\n")
    status, _, err = run(tree)
    assert status == 1 and "kept phase1_face_swap/template_toy.py" in err
    assert mine.read_text() == "# my own version, header removed\n"


def test_the_todo_index_reads_a_todo_from_its_solution_before_a_students_template(tree: Path) -> None:
    assert run(tree)[0] == 0
    template = tree / "phase1_face_swap" / "template_toy.py"
    template.write_text(template.read_text().replace("Subtract the mean from every value.", "My own words."))
    centre = {todo.id: todo for todo in collect_todos(tree)}["p1.toy.centre"]
    assert centre.first_hint_sentence == "Subtract the mean from every value."
    assert centre.file == "solutions/phase1_face_swap/toy.py"


def test_only_one_phase_leaves_the_orphans_of_other_phases_alone(tmp_path: Path) -> None:
    write_tree(tmp_path, {"solutions/phase4_audio_driven/mel.py": HELPER.replace("p1.helper", "p4.mel"),
                          "phase1_face_swap/template_gone.py": "# an old template\n"})
    status, _, err = run(tmp_path, only="phase4_audio_driven")
    assert status == 0 and "template_gone" not in err
    status, out, _ = run(tmp_path, only="phase4_audio_driven", check=True)
    assert status == 0 and "orphan" not in out


def test_a_nested_begin_is_one_error_without_follow_on_errors(tmp_path: Path) -> None:
    write_tree(tmp_path, {"solutions/phase1_face_swap/bad.py": ERRORS["nested"][0]})
    status, _, err = run(tmp_path)
    assert status == 2 and "1 error(s) in the solution markers" in err, err


def test_sibling_references_inside_other_dotted_names_are_not_rewritten(tmp_path: Path) -> None:
    user = 'NOTE = "see docs.solutions.phase1_face_swap.helper"\n'
    write_tree(
        tmp_path, {"solutions/phase1_face_swap/helper.py": HELPER, "solutions/phase1_face_swap/user.py": user}
    )
    assert run(tmp_path)[0] == 0
    assert (tmp_path / "phase1_face_swap/template_user.py").read_text().endswith(user)


def test_a_name_undefined_in_the_solution_too_is_left_to_ruff(tmp_path: Path) -> None:
    source = _func("    # TODO p1.odd.a: A.\n    # BEGIN SOLUTION p1.odd.a\n    y = x\n    # END SOLUTION\n"
                   "    return y + undefined_name\n")
    write_tree(tmp_path, {"solutions/phase1_face_swap/odd.py": source})
    status, _, err = run(tmp_path)
    assert status == 2 and "'y' is defined only inside a SOLUTION region" in err
    assert "undefined_name" not in err


def test_collect_todos_reads_the_templates_when_there_are_no_solutions(tree: Path) -> None:
    assert run(tree)[0] == 0
    for path in sorted((tree / "solutions/phase1_face_swap").glob("*.py")):
        path.unlink()
    double = {todo.id: todo for todo in collect_todos(tree)}["p1.helper.double"]
    assert (double.module, double.file, double.line) == ("helper", "phase1_face_swap/template_helper.py", 8)
    assert double.first_hint_sentence == "Double it."


def test_collect_todos_joins_continued_todo_lines_and_stops_at_the_hint(tmp_path: Path) -> None:
    def region(todo_id: str, comments: str) -> str:
        return (f"def f_{todo_id[-1]}(x):\n    # TODO {todo_id}: {comments}"
                f"    # BEGIN SOLUTION {todo_id}\n    return x\n    # END SOLUTION\n\n\n")

    source = (
        region("p1.doc.a", "Subtract the mean\n    # from every value\n    # Hint: Use sum. Then divide.\n")
        + region("p1.doc.b", "Warp as in Siarohin et al. (2019). Then blend.\n")
        + region("p1.doc.c", "Fit it, cf. Umeyama (1991)! Check the sign.\n")
    )
    write_tree(tmp_path, {"solutions/phase1_face_swap/doc.py": source})
    hints = {todo.id: todo.first_hint_sentence for todo in collect_todos(tmp_path)}
    assert hints == {
        "p1.doc.a": "Subtract the mean from every value",
        "p1.doc.b": "Warp as in Siarohin et al. (2019).",
        "p1.doc.c": "Fit it, cf. Umeyama (1991)!",
    }


def test_an_unknown_phase_for_only_is_an_error(tree: Path) -> None:
    status, out, err = run(tree, only="phase9")
    assert status == 2 and "unknown phase 'phase9'; choose one of phase1_face_swap" in err
    assert not (tree / "phase1_face_swap").exists()


def test_check_reports_a_missing_package_init(tree: Path) -> None:
    assert run(tree)[0] == 0
    (tree / "phase1_face_swap/__init__.py").unlink()
    status, out, err = run(tree, check=True)
    assert status == 1 and "missing phase1_face_swap/__init__.py" in out
    assert "1 template file(s) stale or missing" in err


def test_check_shows_a_missing_template_as_a_diff_from_dev_null(tree: Path) -> None:
    status, out, _ = run(tree, check=True)
    assert status == 1 and "--- /dev/null\n+++ b/phase1_face_swap/template_toy.py\n" in out


def test_writing_warns_about_an_orphan_template_and_keeps_it(tree: Path) -> None:
    assert run(tree)[0] == 0
    (tree / "solutions/phase1_face_swap/helper.py").unlink()
    solution = tree / "solutions/phase1_face_swap/toy.py"
    solution.write_text(TOY.replace("solutions.phase1_face_swap.helper", "math"))
    status, _, err = run(tree)
    assert status == 0
    assert "warning: phase1_face_swap/template_helper.py has no solution any more; delete it by hand" in err
    assert (tree / "phase1_face_swap/template_helper.py").exists()


def test_the_summary_counts_kept_templates_apart_from_unchanged_ones(tree: Path) -> None:
    assert run(tree)[0] == 0
    (tree / "phase1_face_swap/template_toy.py").write_text("# mine\n")
    status, out, _ = run(tree)
    assert status == 1 and "templates: 0 written, 1 unchanged, 1 kept" in out


def test_command_line_passes_force_and_only_on(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tree(tree, {"solutions/phase4_audio_driven/mel.py": HELPER.replace("p1.helper", "p4.mel")})
    assert main(["--root", str(tree), "--only", "phase4_audio_driven"]) == 0
    assert (tree / "phase4_audio_driven/template_mel.py").exists()
    assert not (tree / "phase1_face_swap/template_toy.py").exists()
    assert main(["--root", str(tree)]) == 0
    template = tree / "phase1_face_swap/template_toy.py"
    template.write_text("# mine\n")
    assert main(["--root", str(tree)]) == 1 and template.read_text() == "# mine\n"
    assert main(["--root", str(tree), "--force"]) == 0
    assert template.read_text().endswith(TOY_TEMPLATE_BODY)
    capsys.readouterr()


def test_a_phase_folder_without_solutions_still_gets_its_package_init(tmp_path: Path) -> None:
    write_tree(tmp_path, {"solutions/phase4_audio_driven/mel.py": HELPER.replace("p1.helper", "p4.mel"),
                          "phase1_face_swap/template_gone.py": "# an old template\n"})
    run(tmp_path)
    assert (tmp_path / "phase1_face_swap/__init__.py").read_text() == ""


def test_a_star_import_may_define_a_name_the_region_also_assigns(tmp_path: Path) -> None:
    source = "from math import *\n\n\n" + _func(
        "    # TODO p1.star.a: A.\n    # BEGIN SOLUTION p1.star.a\n    pi = 3.14\n    # END SOLUTION\n"
        "    return x * pi\n"
    )
    write_tree(tmp_path, {"solutions/phase1_face_swap/star.py": source})
    assert run(tmp_path)[0] == 0


def test_check_ends_every_diff_line_even_without_a_final_newline(tree: Path) -> None:
    write_tree(tree, {"solutions/phase1_face_swap/aaa.py": "X = 1"})  # its diff comes first
    status, out, _ = run(tree, check=True)
    assert status == 1
    assert "+X = 1\n--- /dev/null\n+++ b/phase1_face_swap/template_helper.py\n" in out
