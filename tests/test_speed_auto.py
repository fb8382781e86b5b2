"""The auto speed mode: the probe's choice, its bookkeeping in training, and a resumed run keeping its mode."""

from __future__ import annotations

import pytest
import torch
from test_training import TRAIN, VAL, state, tiny

import tedsnet.speed.auto as speed_auto
from tedsnet.speed.auto import (
    MIN_BF16_SPEEDUP,
    Bf16Probe,
    probe_bf16_convolutions,
    resolve_speed_mode,
)
from tedsnet.training.engine import train


def test_probe_times_both_dtypes_and_leaves_torch_random_state_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    probe = probe_bf16_convolutions(batch=1, rounds=3, warmup=1, layers=((4, 16, 24), (8, 8, 12)))
    assert torch.equal(torch.get_rng_state(), before)
    assert probe.fp32_s > 0 and probe.bf16_s > 0
    assert probe.speedup == pytest.approx(probe.fp32_s / probe.bf16_s)


@pytest.mark.parametrize(
    ("speedup", "expected"),
    [(2.0, "fast"), (MIN_BF16_SPEEDUP, "fast"), (MIN_BF16_SPEEDUP - 0.01, "fp32"), (0.6, "fp32")],
)
def test_auto_picks_fast_only_when_bf16_is_clearly_faster(speedup, expected):
    choice = resolve_speed_mode("auto", "cpu", probe=Bf16Probe(fp32_s=speedup * 0.01, bf16_s=0.01))
    assert choice.mode == expected
    assert f"{speedup:.2f}x" in choice.reason


@pytest.mark.parametrize("mode", ["eager", "fp32", "fast"])
def test_explicit_modes_are_kept_without_probing(monkeypatch, mode):
    monkeypatch.setattr(speed_auto, "probe_bf16_convolutions", lambda **_: pytest.fail("probed"))
    assert resolve_speed_mode(mode, "cpu") == (mode, "as requested")


def test_unknown_mode_is_explained():
    with pytest.raises(ValueError, match="speed mode must be one of"):
        resolve_speed_mode("bf16", "cpu")


def _fake_probe(monkeypatch, speedup: float) -> list[int]:
    calls = []

    def probe(**_):
        calls.append(torch.get_num_threads())
        return Bf16Probe(fp32_s=speedup, bf16_s=1.0)

    monkeypatch.setattr(speed_auto, "probe_bf16_convolutions", probe)
    return calls


@pytest.mark.parametrize(("speedup", "expected"), [(1.5, "fast"), (0.7, "fp32")])
def test_training_in_auto_records_and_logs_the_mode_it_ran(tmp_path, monkeypatch, speedup, expected):
    calls = _fake_probe(monkeypatch, speedup)
    lines = []
    kwargs = {"epochs": 1, "progress": False, "device": "cpu", "num_threads": 1, "log": lines.append}
    threads = torch.get_num_threads()
    result = train(tiny("unet"), TRAIN, VAL, tmp_path / "auto", speed_mode="auto", **kwargs)
    assert calls == [1] and torch.get_num_threads() == threads  # probed with the run's threads, then restored
    assert state(result.paths.last)["train_config"]["speed_mode"] == expected
    assert any(line.startswith(f"speed mode {expected} (auto: bf16 convolutions ran") for line in lines)
    explicit = train(tiny("unet"), TRAIN, VAL, tmp_path / "explicit", speed_mode=expected, **kwargs)
    assert state(explicit.paths.last)["config_hash"] == state(result.paths.last)["config_hash"]


def test_a_resumed_auto_run_keeps_its_mode_without_probing(tmp_path, monkeypatch):
    kwargs = {"progress": False, "device": "cpu", "num_threads": 1}
    train(tiny("unet"), TRAIN, VAL, tmp_path, epochs=1, speed_mode="fast", **kwargs)
    calls = _fake_probe(monkeypatch, 0.5)  # would pick fp32
    resumed = train(tiny("unet"), TRAIN, VAL, tmp_path, epochs=2, speed_mode="auto", **kwargs)
    assert calls == [] and resumed.resumed_from == 1
    assert state(resumed.paths.last)["train_config"]["speed_mode"] == "fast"
    restarted = train(tiny("unet"), TRAIN, VAL, tmp_path, epochs=1, speed_mode="auto", resume=False, **kwargs)
    assert calls == [1] and restarted.resumed_from is None
    assert state(restarted.paths.last)["train_config"]["speed_mode"] == "fp32"
