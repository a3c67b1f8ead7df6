"""Choose the implementation under test: the reference solutions or the student's templates.

Every phase module exists twice: `solutions/<phase>/<module>.py` (complete) and the generated
`<phase>/template_<module>.py` (with `raise NotImplementedError("TODO <id>")` where students write code).
Tests and command-line tools never import either directly; they call `load(phase, module)`, and one
switch picks the file: the `impl` argument, else the `DEEPFAKE_IMPL` environment variable (which
`pytest --impl` and every CLI's `--impl` set), else "solutions".
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from common.errors import UserError

IMPLS = ("solutions", "templates")
ENV_VAR = "DEEPFAKE_IMPL"
DEFAULT_IMPL = "solutions"
PHASES = (
    "phase1_face_swap",
    "phase2_face_reenactment",
    "phase3_first_order_motion",
    "phase4_audio_driven",
)


def _checked(impl: str, origin: str) -> str:
    if impl not in IMPLS:
        raise UserError(f"unknown implementation {impl!r} from {origin}; choose one of {', '.join(IMPLS)}")
    return impl


def current_impl() -> str:
    """The implementation chosen by the environment: `$DEEPFAKE_IMPL`, or "solutions" when unset."""
    value = os.environ.get(ENV_VAR, "").strip()
    return _checked(value, f"${ENV_VAR}") if value else DEFAULT_IMPL


def use_impl(impl: str | None) -> None:
    """Make a tool's `--impl` the choice of every later `load()` in this process and in the processes
    it starts (they inherit the environment); None keeps `$DEEPFAKE_IMPL` or the default."""
    if impl is not None:
        os.environ[ENV_VAR] = _checked(impl, "--impl")


def module_name(phase: str, module: str, impl: str | None = None) -> str:
    """Dotted name of `module` of `phase` for `impl`, e.g. "phase1_face_swap.template_alignment"."""
    impl = current_impl() if impl is None else _checked(impl, "the impl argument")
    if phase not in PHASES:
        raise UserError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
    if impl == "solutions":
        return f"solutions.{phase}.{module}"
    return f"{phase}.template_{module}"


def load(phase: str, module: str, impl: str | None = None) -> ModuleType:
    """Import and return `solutions.<phase>.<module>` or `<phase>.template_<module>`.

    Call it inside a test, fixture or `main()`, never at import time: a template with a syntax error
    then breaks only the code that loads it. Errors raised while the module itself runs (syntax
    errors, a missing package it imports) propagate unchanged; only a template that was never
    generated becomes a UserError that says how to make it.
    """
    name = module_name(phase, module, impl)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is None or not (name == err.name or name.startswith(err.name + ".")):
            raise
        hint = "run `make templates`" if ".template_" in name else "check the phase and module names"
        raise UserError(f"no module {name} ({hint})") from err
