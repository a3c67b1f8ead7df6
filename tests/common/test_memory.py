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


class FakeLibc:
    """Stands in for glibc: records each mallopt call and accepts all but the parameters in `refuse`."""

    def __init__(self, refuse: tuple[int, ...] = ()):
        self.calls: dict[int, int] = {}
        self.refuse = refuse

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls[parameter] = value
        return 0 if parameter in self.refuse else 1


@pytest.fixture
def fake_libc(monkeypatch):
    def install(refuse: tuple[int, ...] = ()) -> FakeLibc:
        libc = FakeLibc(refuse)
        monkeypatch.setattr(sys, "platform", "linux")
        monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: libc)
        monkeypatch.delenv(memory.ENV_SWITCH, raising=False)
        return libc
    return install


def test_mallopt_gets_32_mb_mmap_1_gb_trim_and_an_arena_per_core(fake_libc, monkeypatch):
    monkeypatch.setattr(memory.os, "cpu_count", lambda: 6)
    libc = fake_libc()
    assert memory.keep_freed_memory()
    assert libc.calls == {memory.M_MMAP_THRESHOLD: 32 << 20, memory.M_TRIM_THRESHOLD: 1 << 30,
                          memory.M_ARENA_MAX: 6}


def test_a_setting_glibc_refuses_is_reported_as_not_done(fake_libc):
    fake_libc(refuse=(memory.M_ARENA_MAX,))
    assert not memory.keep_freed_memory()


def test_the_switch_is_read_without_surrounding_blanks(fake_libc, monkeypatch):
    libc = fake_libc()
    monkeypatch.setenv(memory.ENV_SWITCH, " 0\n")
    assert not memory.keep_freed_memory() and not libc.calls
