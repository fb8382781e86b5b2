"""The throughput benchmark: workers answer, modes are interleaved, rows carry what the CSV needs."""

import argparse

import pytest

from tedsnet import bench


def test_measure_modes_times_every_mode_in_its_own_worker():
    args = argparse.Namespace(batch=2, warmup=1, repeats=3, threads=1, device="cpu")
    rows = bench.measure_modes("tedsnet", ["eager", "fp32"], args)
    assert [row["mode"] for row in rows] == ["eager", "fp32"]
    for row in rows:
        assert row["model"] == "tedsnet" and row["device"] == "cpu" and row["repeats"] == 3
        for phase in ("train", "infer"):
            assert 0 < row[f"{phase}_q1_s"] <= row[f"{phase}_median_s"] <= row[f"{phase}_q3_s"]
            assert row[f"{phase}_images_per_s"] == pytest.approx(2 / row[f"{phase}_median_s"])
        assert row["peak_rss_mb"] > 100  # a process that has imported torch and built the model


def test_worker_failure_is_reported_with_its_error():
    args = argparse.Namespace(batch=2, warmup=1, repeats=1, threads=1, device="cpu")
    with pytest.raises(RuntimeError, match="benchmark of no_such_model/fp32 failed"):
        bench.measure_modes("no_such_model", ["fp32"], args)


def test_environment_names_the_processor_model():
    env = bench.environment()
    assert env["threads"] >= 1 and env["torch"] == __import__("torch").__version__
    with open("/proc/cpuinfo") as handle:
        names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
    assert env["cpu_model"] == (names[0] if names else "")
