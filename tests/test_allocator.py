"""The allocator settings the fp32 and fast speed modes apply."""

import ctypes
import sys

import pytest

import tedsnet.speed.allocator as allocator
import tedsnet.speed.modes as speed
from tedsnet.experiments import get_experiment


class _FakeLibc:
    def __init__(self, result: int) -> None:
        self.calls = []
        self.result = result

        def mallopt(param, value):
            self.calls.append((param, value))
            return self.result

        self.mallopt = mallopt


def test_thresholds_are_set_through_mallopt(monkeypatch):
    libc = _FakeLibc(result=1)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    assert allocator._set_thresholds() is True
    assert libc.calls == [(-3, 32 * 1024 * 1024), (-1, 1024 * 1024 * 1024)]
    libc.result = 0  # glibc refuses a value
    assert allocator._set_thresholds() is False


def test_nothing_is_set_off_linux_or_without_glibc(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator._set_thresholds() is False
    monkeypatch.setattr(sys, "platform", "linux")

    def no_libc(name):
        raise OSError(name)

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert allocator._set_thresholds() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_keep_freed_memory_takes_effect_once_on_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_state", {})
    assert allocator.keep_freed_memory() is True
    monkeypatch.setattr(allocator, "_set_thresholds", lambda: pytest.fail("set twice"))
    assert allocator.keep_freed_memory() is True


@pytest.mark.parametrize(("mode", "expected"), [("eager", 0), ("fp32", 1), ("fast", 1)])
def test_only_the_optimised_speed_modes_tune_the_allocator(monkeypatch, mode, expected):
    calls = []
    monkeypatch.setattr(speed, "keep_freed_memory", lambda: calls.append(mode))
    speed.apply_speed_mode(get_experiment("tedsnet").build(seed=0), mode)
    assert len(calls) == expected
