"""common.memory: glibc keeps freed per-frame buffers instead of unmapping and re-faulting them."""

from __future__ import annotations

import platform
import sys

import pytest

from common import memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt thresholds exist only in glibc")
def test_thresholds_are_raised_on_glibc():
    assert memory.keep_freed_memory()


def test_the_environment_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv(memory.ENV_SWITCH, "0")
    assert not memory.keep_freed_memory()
