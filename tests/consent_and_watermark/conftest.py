"""Fixtures for the provenance tests.

The suite-wide ``tests/conftest.py`` already points ``DEEPFAKE_CONFIG_DIR`` (signing keys, watermark key)
and ``DEEPFAKE_DATA_DIR`` at a per-session temp folder, so the keys are created once per session (about
10 ms) and no test touches the real home. Here each test also gets its *own* data dir: an empty consent
ledger and provenance log, so tests cannot see each other's records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data


@pytest.fixture(autouse=True)
def _fresh_data_dir_for_every_test(fresh_data_dir: Path) -> Path:
    """An empty ledger + provenance log for every test here (``fresh_data_dir``, tests/conftest.py)."""
    return fresh_data_dir


@pytest.fixture(scope="session")
def natural_rgb() -> np.ndarray:
    """A 256x256 natural photograph (skimage's astronaut, cropped), (256, 256, 3) uint8."""
    return np.ascontiguousarray(data.astronaut()[64:320, 128:384])


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder
