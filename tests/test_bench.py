"""The throughput benchmark: workers answer, modes are interleaved, rows carry what the CSV needs."""

import argparse

import pytest
import torch

from tedsnet.speed import bench


def test_measure_modes_times_every_mode_in_its_own_worker():
    args = argparse.Namespace(batch=2, warmup=1, repeats=3, burst=3, threads=1, device="cpu")
    rows = bench.measure_modes("tedsnet", ["eager", "fp32"], args)
    assert [row["mode"] for row in rows] == ["eager", "fp32"]
    for row in rows:
        # 3 timed steps in bursts of 3 (2 timed each): 2 rounds, 4 timed steps
        assert row["model"] == "tedsnet" and row["device"] == "cpu" and row["repeats"] == 4
        assert row["burst"] == 3
        for phase in ("train", "infer"):
            assert 0 < row[f"{phase}_q1_s"] <= row[f"{phase}_median_s"] <= row[f"{phase}_q3_s"]
            assert row[f"{phase}_first_median_s"] > 0
            assert row[f"{phase}_images_per_s"] == pytest.approx(2 / row[f"{phase}_median_s"])
        assert row["peak_rss_mb"] > 100  # a process that has imported torch and built the model


def test_split_bursts_sets_each_bursts_first_step_apart():
    first, steady = bench.split_bursts([[9.0, 1.0, 2.0], [8.0, 3.0, 4.0]])
    assert first == [9.0, 8.0]
    assert steady == [1.0, 2.0, 3.0, 4.0]


def test_split_bursts_and_the_command_line_refuse_bursts_without_a_timed_step():
    with pytest.raises(ValueError, match="at least 2 steps"):
        bench.split_bursts([[1.0, 2.0], [3.0]])
    with pytest.raises(SystemExit) as stop:
        bench.main(["--burst", "1"])
    assert stop.value.code == 2


def test_worker_failure_is_reported_with_its_error():
    args = argparse.Namespace(batch=2, warmup=1, repeats=1, burst=2, threads=1, device="cpu")
    with pytest.raises(RuntimeError, match="benchmark of no_such_model/fp32 failed"):
        bench.measure_modes("no_such_model", ["fp32"], args)


def test_cpu_info_reads_the_first_processor_model_and_the_recorded_flags(tmp_path):
    listing = tmp_path / "cpuinfo"
    listing.write_text(
        "processor\t: 0\nmodel name\t: Example CPU @ 2.30GHz\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: Other CPU\nflags\t\t: fpu\n"
    )
    assert bench.cpu_info(listing) == ("Example CPU @ 2.30GHz", "avx2 fma avx512f avx512_bf16")
    assert bench.cpu_info(tmp_path / "missing") == ("", "")
    env = bench.environment()
    assert env["threads"] >= 1 and env["torch"] == torch.__version__
    assert (env["cpu_model"], env["cpu_flags"]) == bench.cpu_info()


@pytest.mark.parametrize(("speedup", "expected"), [(1.5, "fast"), (0.8, "fp32")])
def test_auto_choice_reports_what_the_probe_decides(monkeypatch, speedup, expected):
    import tedsnet.speed.auto as speed_auto

    probe = speed_auto.Bf16Probe(fp32_s=speedup * 0.01, bf16_s=0.01)
    monkeypatch.setattr(speed_auto, "probe_bf16_convolutions", lambda **_: probe)
    choice = bench.auto_choice("cpu")
    assert choice.mode == expected
    assert f"ran {speedup:.2f}x as fast" in choice.reason


def test_help_is_plain_text_and_every_option_explains_itself(capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":mod:" not in text and ":func:" not in text
    visible = [a for a in bench.build_parser()._actions if a.help != argparse.SUPPRESS]
    assert all(action.help for action in visible)
    assert {"--models", "--modes", "--batch", "--warmup", "--threads", "--out"} <= {
        option for action in visible for option in action.option_strings
    }
