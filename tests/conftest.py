"""Suite-wide fixtures: keep every test away from the real user's ledger, keys and caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory):
    """Point the consent ledger, provenance log and signing keys at a per-session temp folder."""
    base = tmp_path_factory.mktemp("user")
    old = {k: os.environ.get(k) for k in ("DEEPFAKE_DATA_DIR", "DEEPFAKE_CONFIG_DIR")}
    os.environ["DEEPFAKE_DATA_DIR"] = str(base / "data")
    os.environ["DEEPFAKE_CONFIG_DIR"] = str(base / "config")
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the repository (reference files; read-only, never copied in)."""
    return SHARED


@pytest.fixture(autouse=True)
def default_output_context():
    """Every test starts and ends with the writer's default run context.

    CLIs run in-process (``main(argv)``) set the process-wide context (technique, consent ids); a narrow
    consent record left behind would refuse later tests' writes.
    """
    from consent_and_watermark import writer

    writer.set_context(writer.OutputContext())
    yield
    writer.set_context(writer.OutputContext())


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tests' tensors are tiny: extra threads only contend on a 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
