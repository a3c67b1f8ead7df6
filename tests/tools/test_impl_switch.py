"""`common.impl`: one switch picks the reference solution or the student's template."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import pytest

from common import impl
from common.errors import UserError
from common.impl import ENV_VAR, IMPLS, current_impl, load, module_name


@pytest.fixture
def fake_modules(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    """A solution and a template of `phase2_face_reenactment/toy`, as if already imported."""
    solution = ModuleType("solutions.phase2_face_reenactment.toy")
    template = ModuleType("phase2_face_reenactment.template_toy")
    monkeypatch.setitem(sys.modules, solution.__name__, solution)
    monkeypatch.setitem(sys.modules, template.__name__, template)
    return solution, template


def test_impls() -> None:
    assert IMPLS == ("solutions", "templates")


def test_default_is_solutions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert current_impl() == "solutions"
    assert module_name("phase1_face_swap", "alignment") == "solutions.phase1_face_swap.alignment"


def test_environment_and_argument_choose(monkeypatch: pytest.MonkeyPatch, fake_modules) -> None:
    solution, template = fake_modules
    monkeypatch.setenv(ENV_VAR, "templates")
    assert current_impl() == "templates"
    assert load("phase2_face_reenactment", "toy") is template
    assert load("phase2_face_reenactment", "toy", "solutions") is solution
    monkeypatch.setenv(ENV_VAR, "solutions")
    assert load("phase2_face_reenactment", "toy") is solution
    assert load("phase2_face_reenactment", "toy", impl="templates") is template


def test_bad_values_are_user_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "mine")
    with pytest.raises(UserError, match="DEEPFAKE_IMPL"):
        current_impl()
    with pytest.raises(UserError, match="unknown implementation"):
        load("phase1_face_swap", "alignment", impl="answers")
    with pytest.raises(UserError, match="unknown phase"):
        load("phase9_hologram", "alignment", impl="solutions")


def test_missing_template_says_how_to_make_it() -> None:
    with pytest.raises(UserError, match="make templates"):
        load("phase1_face_swap", "no_such_module_here", impl="templates")


def test_the_environment_switch_may_carry_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, " templates\n")
    assert current_impl() == "templates"


def test_a_package_missing_inside_a_module_propagates_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    def import_module(name: str):
        raise ModuleNotFoundError("No module named 'cv3'", name="cv3")  # what the module itself imports

    monkeypatch.setattr(impl, "importlib", SimpleNamespace(import_module=import_module))
    with pytest.raises(ModuleNotFoundError, match="cv3"):
        load("phase1_face_swap", "alignment", impl="solutions")
