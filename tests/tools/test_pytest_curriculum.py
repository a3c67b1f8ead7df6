"""The curriculum pytest plugin, exercised through small inner pytest sessions (pytester)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from common.impl import ENV_VAR
from tools.make_templates import generate
from tools.pytest_curriculum import _Row, classify, covers, format_table, progress_rows, stub_id

# A toy curriculum: two solution files of phase 1.
TOY_DIR = Path(__file__).parent / "toy_curriculum"
TOY = (TOY_DIR / "solutions/phase1_face_swap/toy.py").read_text(encoding="utf-8")
HELPER = (TOY_DIR / "solutions/phase1_face_swap/helper.py").read_text(encoding="utf-8")

# Inner tests of the toy curriculum; the tests below check how the plugin reports each of them.
INNER_TESTS = """
import pytest

from common.impl import load


@pytest.fixture
def toy():
    return load("phase1_face_swap", "toy")


@pytest.fixture
def scaled_in_setup(toy):
    return toy.scale(None)


@pytest.mark.todo("p1.toy.scale")
def test_scale(toy):
    assert toy.scale(None) == []


@pytest.mark.todo("p1.toy.scale")
def test_scale_in_fixture(scaled_in_setup):
    assert scaled_in_setup == []


@pytest.mark.todo("p1.toy.scale")
def test_scale_wrapped(toy):
    try:
        toy.scale(None)
    except NotImplementedError as err:
        raise RuntimeError("the worker died") from err


@pytest.mark.todo("p1.toy.centre")
def test_centre(toy):
    assert toy.centre([1.0, 3.0]) == [-1.0, 1.0]


@pytest.mark.todo("p1.helper")
def test_double():
    assert load("phase1_face_swap", "helper").double(2.0) == 4.0


@pytest.mark.todo("p1")
def test_end_to_end(toy):
    assert toy.scale(None) == [] and toy.centre([2.0]) == [0.0]


def test_untagged():
    assert 1 + 1 == 2
"""

# Tests that break the stub contract in the ways --expect-stubs must catch.
BAD_TESTS = """
import pytest

from common.impl import load



@pytest.mark.todo("p1.toy.scale")
def test_passes_on_stubs():
    assert load("phase1_face_swap", "toy").scale([1.0]) == [2.0]


@pytest.mark.todo("p1.toy.scale")
def test_wrong_error():
    assert load("phase1_face_swap", "toy").scale([1.0]) == [3.0]


@pytest.mark.todo("p1.toy.scale")
def test_other_stub():
    load("phase1_face_swap", "helper").double(1.0)


def test_untagged_failure():
    assert 1 + 1 == 3
"""


@pytest.fixture
def toy(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A toy curriculum (solutions + generated templates) and inner tests in a fresh folder."""
    pytester.makepyfile(
        **{"solutions/phase1_face_swap/toy": TOY, "solutions/phase1_face_swap/helper": HELPER}
    )
    assert generate(pytester.path) == 0
    pytester.makepyfile(test_inner=INNER_TESTS)
    # The inner session must import this toy's `solutions` and `phase1_face_swap`, not the repository's.
    for name in list(sys.modules):
        if name.split(".")[0] in ("solutions", "phase1_face_swap"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(pytester.path))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no hint is shortened
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "tools.pytest_curriculum", "-p", "no:cacheprovider", *args)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def table_row(result: pytest.RunResult, todo_id: str) -> list[str]:
    """The cells of the progress-table row of `todo_id`: phase, TODO, tests, status, hint."""
    rows = [re.split(r"\s{2,}", line) for line in result.outlines if line.startswith("phase1_face_swap ")]
    rows = [row for row in rows if row[1] == todo_id]
    assert len(rows) == 1, result.stdout.str()
    return rows[0]


def test_header_names_the_implementation_and_env_follows(toy: pytest.Pytester) -> None:
    toy.makepyfile(
        test_env="""
        import os
        from common.impl import load

        def test_env():
            assert os.environ["DEEPFAKE_IMPL"] == "templates"
            assert load("phase1_face_swap", "toy").__name__ == "phase1_face_swap.template_toy"
        """
    )
    result = run(toy, "--impl=templates", "test_env.py")
    result.stdout.fnmatch_lines(["implementation under test: templates*"])
    assert result.ret == 0
    assert ENV_VAR not in __import__("os").environ  # restored after the inner session


def test_environment_variable_is_the_default(toy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "templates")
    run(toy, "-k", "untagged").stdout.fnmatch_lines(["implementation under test: templates*"])
    monkeypatch.setenv(ENV_VAR, "nonsense")
    assert run(toy).ret == pytest.ExitCode.USAGE_ERROR


def test_solutions_pass_and_the_table_collapses(toy: pytest.Pytester) -> None:
    result = run(toy, "--impl=solutions", "-q")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines([
        "*TODO progress (solutions): 2 of 2 TODOs done, 2 of 2 end-to-end checks passed*",
        "every TODO and end-to-end check done by the reference solutions*",
    ])


def test_templates_table_statuses_and_exit_status(toy: pytest.Pytester) -> None:
    result = run(toy, "--impl=templates", "-q")
    result.assert_outcomes(passed=1, failed=5, errors=1)  # the fixture's stub is a setup error
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*TODO progress (templates): 0 of 2 TODOs done, 0 of 2 end-to-end*"])
    assert table_row(result, "p1.toy.scale")[2:] == ["0/3", "not started", "Return an empty list."]
    assert table_row(result, "p1.toy.centre")[2:] == [
        "0/1",
        "not started",
        "Subtract the mean from every value.",
    ]
    assert table_row(result, "p1")[2:] == ["0/1", "not started", "end to end: all 3 TODOs under p1"]
    assert table_row(result, "p1.helper")[2:4] == ["0/1", "not started"]


def test_done_in_progress_and_blocked(toy: pytest.Pytester) -> None:
    toy_template = toy.path / "phase1_face_swap/template_toy.py"
    helper_template = toy.path / "phase1_face_swap/template_helper.py"
    centre = "mean = sum(points) / n\n    return [double(p - mean) / 2 for p in points]"
    edit(toy_template, 'raise NotImplementedError("TODO p1.toy.centre")', centre)
    edit(toy_template, 'raise NotImplementedError("TODO p1.toy.scale")', "return [0.0]")  # wrong
    result = run(toy, "--impl=templates", "-q")
    assert table_row(result, "p1.toy.scale")[2:4] == ["1/3", "in progress"]
    assert table_row(result, "p1.toy.centre")[2:4] == ["0/1", "blocked by p1.helper.double"]
    assert table_row(result, "p1")[2:4] == ["0/1", "in progress"]
    assert table_row(result, "p1.helper")[2:4] == ["0/1", "not started"]

    edit(toy_template, "return [0.0]", "return []")
    edit(helper_template, 'raise NotImplementedError("TODO p1.helper.double")', "return x + x")
    result = run(toy, "--impl=templates", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*TODO progress (templates): 2 of 2 TODOs done, 2 of 2 end-to-end*"])
    assert table_row(result, "p1.toy.scale")[2:4] == ["3/3", "done"]


def test_a_test_tagged_with_the_todo_it_builds_on_counts_as_blocked_for_the_finished_one(
    toy: pytest.Pytester,
) -> None:
    toy.makepyfile(test_inner="""
import pytest

from common.impl import load


@pytest.mark.todo("p1.toy.scale")
def test_scale_alone():
    assert load("phase1_face_swap", "toy").scale(None) == []


@pytest.mark.todo("p1.toy.scale", "p1.helper.double")
def test_scale_with_the_helper():
    assert load("phase1_face_swap", "toy").scale(None) == []
    assert load("phase1_face_swap", "helper").double(1.0) == 2.0
""")
    stub_check = run(toy, "--impl=templates", "--expect-stubs", "-q")  # untouched: each at its own stub
    assert stub_check.ret == 0
    stub_check.stdout.fnmatch_lines(["2 of 2 TODO(s): every test stops at its own stub"])
    toy_template = toy.path / "phase1_face_swap/template_toy.py"
    edit(toy_template, 'raise NotImplementedError("TODO p1.toy.scale")', "return []")
    result = run(toy, "--impl=templates", "-q")
    assert table_row(result, "p1.toy.scale")[2:4] == ["1/2", "done; 1 more test blocked by p1.helper.double"]
    assert table_row(result, "p1.helper.double")[2:4] == ["0/1", "not started"]
    result.stdout.fnmatch_lines(["*TODO progress (templates): 1 of 2 TODOs done*"])


def test_the_table_of_a_todo_run_has_the_rows_asked_for_and_names_the_rest(toy: pytest.Pytester) -> None:
    toy.makepyfile(test_inner="""
import pytest

from common.impl import load


@pytest.mark.todo("p1.toy.scale", "p1.helper.double")
def test_scale_with_the_helper():
    assert load("phase1_face_swap", "toy").scale(None) == []
    assert load("phase1_face_swap", "helper").double(1.0) == 2.0
""")
    edit(toy.path / "phase1_face_swap/template_toy.py", 'raise NotImplementedError("TODO p1.toy.scale")',
         "return []")
    result = run(toy, "--impl=templates", "--todo", "p1.toy.scale", "-q")
    assert table_row(result, "p1.toy.scale")[2:4] == ["0/1", "blocked by p1.helper.double"]
    rows = [re.split(r"\s{2,}", line) for line in result.outlines if line.startswith("phase1_face_swap ")]
    assert [row[1] for row in rows] == ["p1.toy.scale"]
    result.stdout.fnmatch_lines([
        "*TODO progress (templates): 0 of 1 TODOs done*",
        "these tests also build on: p1.helper.double (their rows: run without --todo)",
    ])


def test_todo_option_selects_by_prefix(toy: pytest.Pytester) -> None:
    result = run(toy, "--impl=solutions", "--todo", "p1.toy.sc", "-q")
    result.assert_outcomes(passed=3, deselected=4)
    result = run(toy, "--impl=solutions", "--todo", "p1", "-q")
    result.assert_outcomes(passed=6, deselected=1)
    result = run(toy, "--impl=solutions", "--todo", "p1.toy.c", "--todo", "p1.helper", "-q")
    result.assert_outcomes(passed=2, deselected=5)


def test_a_mistyped_todo_prefix_is_a_usage_error_that_suggests_the_id(toy: pytest.Pytester) -> None:
    result = run(toy, "--impl=solutions", "--todo", "p1.toy.sacle", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    wanted = "*--todo p1.toy.sacle: no test of this run checks*did you mean p1.toy.scale*"
    result.stderr.fnmatch_lines([wanted])


def test_todo_mark_without_ids_is_a_usage_error(toy: pytest.Pytester) -> None:
    toy.makepyfile(test_empty="import pytest\n\n@pytest.mark.todo()\ndef test_x():\n    pass\n")
    result = run(toy, "test_empty.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_x: @pytest.mark.todo needs at least one TODO id*"])


def test_expect_stubs_accepts_own_stubs(toy: pytest.Pytester) -> None:
    result = run(toy, "--impl=templates", "--expect-stubs", "-q")
    result.assert_outcomes(passed=7)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*4 of 4 TODO(s): every test stops at its own stub*"])
    assert "no test of this run checks" not in result.stdout.str()


def test_expect_stubs_reports_each_kind_of_problem(toy: pytest.Pytester) -> None:
    toy.makepyfile(test_bad=BAD_TESTS)
    result = run(toy, "--impl=templates", "--expect-stubs", "-q", "test_bad.py")
    result.assert_outcomes(failed=4)
    out = result.stdout.str()
    assert "passes on stubs: the test does not exercise TODO p1.toy.scale" in out
    assert 'fails with AssertionError instead of its own NotImplementedError("TODO p1.toy.scale")' in out
    assert 'fails with NotImplementedError("TODO p1.helper.double") of another TODO' in out
    result.stdout.fnmatch_lines(["FAILED test_bad.py::test_untagged_failure*"])
    assert "TODOs that no test of this run checks: p1.helper.double, p1.toy.centre" in out
    result.stdout.fnmatch_lines([
        "0 of 1 TODO(s): every test stops at its own stub",
        "these TODOs have tests that do not stop at their own stub (see the failures above):",
    ])


def test_syntax_error_in_one_template_fails_only_its_tests(toy: pytest.Pytester) -> None:
    (toy.path / "phase1_face_swap/template_broken.py").write_text("def f(:\n    pass\n")
    toy.makepyfile(
        test_broken="""
        import pytest
        from common.impl import load

        @pytest.mark.todo("p1.broken.f")
        def test_broken():
            load("phase1_face_swap", "broken").f()
        """
    )
    result = run(toy, "--impl=templates", "--expect-stubs", "-q")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(
        ["FAILED test_broken.py::test_broken - --expect-stubs: fails with SyntaxError*"]
    )


def test_stub_ids_are_found_through_chains_groups_and_printed_tracebacks() -> None:
    stub = NotImplementedError("TODO p3.kp.heatmap")
    try:
        try:
            raise stub
        except NotImplementedError as err:
            raise ValueError("wrapped") from err
    except ValueError as wrapped:
        assert stub_id(wrapped) == "p3.kp.heatmap"
    assert stub_id(ExceptionGroup("workers", [KeyError("x"), stub])) == "p3.kp.heatmap"
    printed = AssertionError(
        "exit 1:\nTraceback (most recent call last):\nNotImplementedError: TODO p3.kp.jac\n"
    )
    assert stub_id(printed) == "p3.kp.jac"
    assert stub_id(NotImplementedError("not yet")) is None and stub_id(None) is None
    assert classify(("p3",), stub) == classify(("p3.kp",), stub) == "own:p3.kp.heatmap"
    assert classify(("p3.k",), stub) == "other:p3.kp.heatmap"
    assert classify(("p3.kp.heatmap",), KeyError("x")) == "failed"
    assert (
        covers("p3", "p3.kp.heatmap") and not covers("p3", "p33.x") and not covers("p3.kp.h", "p3.kp.heatmap")
    )


def test_a_row_with_a_test_passed_and_one_at_its_own_stub_is_in_progress() -> None:
    row = _Row("p1.toy.scale", "phase1_face_swap", "", (0, 0, ""), passed=1, total=2, own=1)
    assert row.status == "in progress"


def test_a_not_implemented_error_that_only_mentions_a_todo_is_not_its_stub() -> None:
    assert stub_id(NotImplementedError("TODO p1.toy.scale")) == "p1.toy.scale"
    assert stub_id(NotImplementedError("float16 input: see TODO p1.toy.scale for float32")) is None


def test_stub_ids_are_found_through_an_implicit_context_and_through_a_cause_alone() -> None:
    implicit = RuntimeError("the worker died")  # raised while handling the stub, without `from`
    implicit.__context__ = NotImplementedError("TODO p3.kp.heatmap")
    assert stub_id(implicit) == "p3.kp.heatmap"
    cause_only = RuntimeError("wrapped later")  # `raise ... from saved` outside the except block
    cause_only.__cause__ = NotImplementedError("TODO p3.kp.jac")
    assert stub_id(cause_only) == "p3.kp.jac"


def test_only_a_not_implemented_error_is_a_stub() -> None:
    assert stub_id(AssertionError("TODO p1.toy.scale")) is None
    assert classify(("p1.toy.scale",), AssertionError("TODO p1.toy.scale")) == "failed"


def test_the_environment_switch_may_carry_spaces(
    toy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, " templates ")
    result = run(toy, "-k", "untagged")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["implementation under test: templates*"])


def test_a_previous_environment_value_is_restored_after_the_run(
    toy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, "templates")
    assert run(toy, "--impl=solutions", "-k", "untagged").ret == 0
    assert os.environ[ENV_VAR] == "templates"


def test_the_header_says_when_stubs_are_expected(toy: pytest.Pytester) -> None:
    result = run(toy, "--impl=templates", "--expect-stubs", "-k", "untagged")
    result.stdout.fnmatch_lines([
        "implementation under test: templates*; --expect-stubs: todo-tagged tests must stop at their own stub"
    ])


def test_an_unknown_todo_prefix_with_nothing_close_points_to_make_grade(toy: pytest.Pytester) -> None:
    result = run(toy, "--impl=solutions", "--todo", "zzz", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--todo zzz: no test of this run checks*; `make grade` lists them"])


def test_a_mistyped_todo_prefix_is_matched_against_the_solutions_todos_too(toy: pytest.Pytester) -> None:
    result = run(toy, "--impl=solutions", "--todo", "p1.helper.dubble", "-q")  # tests mark only "p1.helper"
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*did you mean p1.helper.double*"])


def test_a_skipped_test_does_not_count_in_the_table(toy: pytest.Pytester) -> None:
    toy.makepyfile(test_inner="""
import pytest

from common.impl import load


@pytest.mark.todo("p1.toy.scale")
def test_scale():
    assert load("phase1_face_swap", "toy").scale(None) == []


@pytest.mark.todo("p1.toy.scale")
def test_needs_a_gpu():
    pytest.skip("no GPU")
""")
    result = run(toy, "--impl=templates", "-q")
    result.assert_outcomes(failed=1, skipped=1)
    assert table_row(result, "p1.toy.scale")[2:4] == ["0/1", "not started"]


def test_expect_stubs_lists_a_todo_whose_tests_were_all_skipped_apart_from_the_problems(
    toy: pytest.Pytester,
) -> None:
    toy.makepyfile(test_inner="""
import pytest

from common.impl import load


@pytest.mark.todo("p1.toy.scale")
def test_scale():
    assert load("phase1_face_swap", "toy").scale(None) == []


@pytest.mark.todo("p1.helper.double")
def test_needs_a_gpu():
    pytest.skip("no GPU")
""")
    result = run(toy, "--impl=templates", "--expect-stubs", "-q")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == 0
    out = result.stdout.str()
    assert "1 of 1 TODO(s): every test stops at its own stub" in out
    assert "do not stop at their own stub" not in out
    assert "TODOs whose tests were all skipped in this run (not checked): p1.helper.double" in out


def test_the_todo_marker_is_registered_without_an_ini_file(pytester: pytest.Pytester) -> None:
    # (an inner session in this process would not show it: pytest caches the marker names it has seen)
    config = pytester.parseconfigure("-p", "tools.pytest_curriculum", "--impl=solutions")
    assert any(line.startswith("todo(*ids)") for line in config.getini("markers"))


def test_rows_follow_the_curriculum_order_and_end_to_end_rows_come_last_in_a_phase(tmp_path: Path) -> None:
    def solution(todo_id: str) -> str:
        return (f"def f(x):\n    # TODO {todo_id}: Do it.\n    # BEGIN SOLUTION {todo_id}\n    return x\n"
                "    # END SOLUTION\n")

    for rel, todo_id in [("phase1_face_swap/a.py", "p1.zeta.z"), ("phase1_face_swap/b.py", "p1.alpha.a"),
                         ("phase2_face_reenactment/a.py", "p2.a.a")]:
        (tmp_path / "solutions" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "solutions" / rel).write_text(solution(todo_id))
    results = {"t1": (("p2.a.a",), "passed"), "t2": (("p1",), "passed"), "t3": (("p1.alpha.a",), "passed"),
               "t4": (("p1.zeta.z",), "passed")}
    rows = progress_rows(results, tmp_path)
    assert [row.todo_id for row in rows] == ["p1.zeta.z", "p1.alpha.a", "p1", "p2.a.a"]
    assert rows[2].hint == "end to end: all 2 TODOs under p1"


def test_a_mark_of_no_known_todo_gets_its_own_row(tmp_path: Path) -> None:
    rows = progress_rows({"t1": (("p1.toy.sacle",), "failed"), "t2": (("p0.x",), "passed")}, tmp_path)
    assert [(row.phase, row.todo_id, row.hint) for row in rows] == [
        ("phase1_face_swap", "p1.toy.sacle", "(no such TODO in the solutions)"),
        ("?", "p0.x", "(no such TODO in the solutions)"),
    ]


def test_long_hints_are_shortened_to_the_width() -> None:
    rows = [_Row("p1.toy.scale", "phase1_face_swap", "word " * 40, (0, 0, ""), passed=1, total=1)]
    lines = format_table(rows, width=100)
    assert len(lines[2]) == 99 and lines[2].endswith(" w…")  # one column spare: no wrapped line
    narrow = format_table(rows, width=20)[2]
    assert narrow.endswith("  " + "word " * 5 + "word…")  # the hint keeps 30 columns at least


def test_a_row_at_its_own_stub_that_another_test_finds_blocked_is_not_started() -> None:
    row = _Row("p1.toy.scale", "phase1_face_swap", "", (0, 0, ""), total=2, own=1, blocked=1,
               blockers={"p1.helper.double"})
    assert row.status == "not started"


def test_a_run_without_todo_tagged_tests_prints_no_table(toy: pytest.Pytester) -> None:
    result = run(toy, "--impl=solutions", "-k", "untagged")
    assert result.ret == 0 and "TODO progress" not in result.stdout.str()
