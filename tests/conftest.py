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
def _fresh_output_context():
    """CLIs run in-process set the writer's run context (technique, consent ids): reset it after each test."""
    yield
    from consent_and_watermark import writer

    writer.set_context(writer.OutputContext())
