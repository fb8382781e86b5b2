"""Patient-level bootstrap intervals, the seeds' spread and paired tests over patients
(tedsnet.reporting.intervals)."""

from __future__ import annotations

import doctest
import math
import time

import numpy as np
import pandas as pd
import pytest

from tedsnet.reporting import intervals
from tedsnet.reporting.intervals import (
    DEFAULT_COLUMNS,
    INTERVAL_COLUMNS,
    PAIRED_COLUMNS,
    bootstrap_intervals,
    bootstrap_mean,
    patient_level_paired_tests,
    seed_spread,
)
from tedsnet.reporting.stats import paired_test


def per_case(experiments=("tedsnet", "unet"), seeds=(0, 1, 2), patients=12, slices=4, rng_seed=0):
    """Per-case rows: every patient has ``slices`` slices in ED and in ES, each experiment and seed."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for e, experiment in enumerate(experiments):
        for seed in seeds:
            for p in range(patients):
                level = 0.8 + 0.01 * p  # patients differ, slices of a patient are alike
                for phase in ("ED", "ES"):
                    for z in range(slices):
                        dice = level + 0.02 * e + rng.normal(0, 0.005) + (0.03 if phase == "ES" else 0.0)
                        rows.append(
                            {
                                "case_id": f"p{p:03d}_{phase}_z{z:02d}",
                                "patient_id": f"p{p:03d}",
                                "phase": phase,
                                "experiment": experiment,
                                "seed": seed,
                                "dice": dice,
                                "hd_mm": rng.uniform(2, 8),
                                "hd95_mm": rng.uniform(2, 6),
                                "assd_mm": rng.uniform(0.5, 2),
                                "correct_topology": bool(rng.random() > 0.2),
                            }
                        )
    return pd.DataFrame(rows)


def pick(table, **where):
    mask = np.ones(len(table), bool)
    for key, value in where.items():
        mask &= (table[key] == value).to_numpy()
    assert mask.sum() == 1, where
    return table[mask].iloc[0]


def test_module_examples_hold():
    assert doctest.testmod(intervals).failed == 0


def test_rows_and_columns():
    out = bootstrap_intervals(per_case(), n_boot=200)
    assert list(out.columns) == list(INTERVAL_COLUMNS)
    assert len(out) == 2 * (3 + 1) * 3 * len(DEFAULT_COLUMNS)
    assert out["seed"].drop_duplicates().tolist() == ["0", "1", "2", "mean"]
    assert out["phase"].drop_duplicates().tolist() == ["ED", "ES", "both"]
    assert out["metric"].drop_duplicates().tolist() == list(DEFAULT_COLUMNS)
    assert out["experiment"].drop_duplicates().tolist() == ["tedsnet", "unet"]


def test_interval_contains_the_mean():
    out = bootstrap_intervals(per_case(), n_boot=500)
    assert ((out["ci_low"] <= out["mean"]) & (out["mean"] <= out["ci_high"])).all()
    assert (out["ci_high"] > out["ci_low"]).all()
    topo = out[out["metric"] == "incorrect_topology"]
    assert ((topo["ci_low"] >= 0) & (topo["ci_high"] <= 1)).all()


def test_constant_metric_gives_a_zero_width_interval():
    frame = per_case().assign(dice=0.9, correct_topology=True)
    out = bootstrap_intervals(frame, ["dice", "incorrect_topology"], n_boot=300)
    dice = out[out["metric"] == "dice"]
    assert (
        np.allclose(dice["mean"], 0.9)
        and np.allclose(dice["ci_low"], 0.9)
        and np.allclose(dice["ci_high"], 0.9)
    )
    topo = out[out["metric"] == "incorrect_topology"]
    assert (topo[["mean", "ci_low", "ci_high"]] == 0.0).all().all()


def test_resampling_is_by_patient():
    # 8 patients of 25 slices each: the patients differ, a patient's slices are all alike
    rng = np.random.default_rng(1)
    levels = rng.normal(0.8, 0.05, 8)
    frame = pd.DataFrame(
        {
            "experiment": "x",
            "seed": 0,
            "case_id": [f"c{i}" for i in range(200)],
            "patient_id": [f"p{i // 25}" for i in range(200)],
            "phase": "ED",
            "dice": np.repeat(levels, 25),
        }
    )
    by_patient = pick(bootstrap_intervals(frame, ["dice"], n_boot=2000), seed="0", phase="ED")
    as_slices = frame.assign(patient_id=frame["case_id"])  # every slice its own patient
    by_slice = pick(bootstrap_intervals(as_slices, ["dice"], n_boot=2000), seed="0", phase="ED")
    width_patient = by_patient["ci_high"] - by_patient["ci_low"]
    width_slice = by_slice["ci_high"] - by_slice["ci_low"]
    assert by_patient["n_patients"] == 8 and by_slice["n_patients"] == 200
    assert by_patient["mean"] == pytest.approx(by_slice["mean"])
    # independent draws shrink the interval by about sqrt(25 slices per patient)
    assert width_patient > 3 * width_slice


def test_bootstrap_mean_moves_a_patients_cases_together():
    # patient 0: one case of 0; patient 1: three cases of 1. A resample is patients {0,0}, {0,1}, {1,0} or {1,1},
    # a quarter each: means 0, 3/4, 3/4 and 1. Resampling the four cases would give 0 once in 256, not at 2.5 %.
    values = np.array([0.0, 1.0, 1.0, 1.0])
    mean, low, high = bootstrap_mean(values, np.array([0, 1, 1, 1]), 4000, 0.95, np.random.default_rng(0))
    assert mean == 0.75 and low == 0.0 and high == 1.0
    assert all(
        math.isnan(v)
        for v in bootstrap_mean(np.array([]), np.array([], int), 10, 0.9, np.random.default_rng())
    )


def test_seed_mean_averages_each_case_over_the_seeds():
    frame = per_case(experiments=("x",), seeds=(0, 1))
    out = bootstrap_intervals(frame, ["dice", "hd_mm"], n_boot=100)
    for metric in ("dice", "hd_mm"):
        per_seed = [pick(out, seed=s, phase="both", metric=metric)["mean"] for s in ("0", "1")]
        assert pick(out, seed="mean", phase="both", metric=metric)["mean"] == pytest.approx(np.mean(per_seed))
    # a case missing (NaN) in one seed counts with the seed that has it
    frame.loc[(frame["seed"] == 1) & (frame["case_id"] == "p000_ED_z00"), "dice"] = np.nan
    out = bootstrap_intervals(frame, ["dice"], n_boot=100)
    by_case = frame.groupby("case_id")["dice"].mean()
    assert pick(out, seed="mean", phase="both")["mean"] == pytest.approx(by_case.mean())
    assert (
        pick(out, seed="mean", phase="both")["n_nan"] == 0 and pick(out, seed="1", phase="both")["n_nan"] == 1
    )


def test_ed_es_split():
    frame = per_case(experiments=("x",), seeds=(0,))
    out = bootstrap_intervals(frame, ["dice"], n_boot=100)
    for phase in ("ED", "ES"):
        row = pick(out, seed="0", phase=phase)
        cases = frame[frame["phase"] == phase]
        assert row["mean"] == pytest.approx(cases["dice"].mean())
        assert row["n_cases"] == len(cases) == 12 * 4 and row["n_patients"] == 12
    both = pick(out, seed="0", phase="both")
    assert both["n_cases"] == 96 and both["mean"] == pytest.approx(frame["dice"].mean())
    assert pick(out, seed="0", phase="ES")["mean"] > pick(out, seed="0", phase="ED")["mean"] + 0.02


def test_nan_values_are_dropped_and_counted():
    frame = per_case(experiments=("x",), seeds=(0,))
    frame.loc[frame["patient_id"] == "p000", "hd_mm"] = np.nan  # all of one patient's cases: empty masks
    frame.loc[3, "hd_mm"] = np.nan
    row = pick(bootstrap_intervals(frame, ["hd_mm"], n_boot=100), seed="0", phase="both")
    assert row["n_nan"] == 8 and row["n_cases"] == 88 and row["n_patients"] == 11
    assert row["mean"] == pytest.approx(frame["hd_mm"].mean())  # pandas skips NaN too
    frame["hd_mm"] = np.nan
    row = pick(bootstrap_intervals(frame, ["hd_mm"], n_boot=100), seed="0", phase="both")
    assert (
        math.isnan(row["mean"])
        and math.isnan(row["ci_low"])
        and row["n_patients"] == 0
        and row["n_nan"] == 96
    )


def test_incorrect_topology_is_a_rate_read_from_csv_words():
    frame = per_case(experiments=("x",), seeds=(0,))
    words = frame.assign(correct_topology=frame["correct_topology"].map({True: "True", False: "False"}))
    a = bootstrap_intervals(frame, ["incorrect_topology"], n_boot=100)
    b = bootstrap_intervals(words, ["incorrect_topology"], n_boot=100)
    pd.testing.assert_frame_equal(a, b)
    assert pick(a, seed="0", phase="both")["mean"] == pytest.approx(1 - frame["correct_topology"].mean())


def test_deterministic_for_a_seed_and_rows_independent_of_the_others():
    frame = per_case()
    a = bootstrap_intervals(frame, n_boot=300, seed=7)
    pd.testing.assert_frame_equal(a, bootstrap_intervals(frame, n_boot=300, seed=7))
    other = bootstrap_intervals(frame, n_boot=300, seed=8)
    assert not np.allclose(a["ci_low"], other["ci_low"]) and np.allclose(a["mean"], other["mean"])
    only_dice = bootstrap_intervals(frame, ["dice"], n_boot=300, seed=7)
    pd.testing.assert_frame_equal(only_dice, a[a["metric"] == "dice"].reset_index(drop=True))


def test_vectorised_speed():
    frame = per_case(experiments=("a", "b", "c", "d", "e"), seeds=(0, 1, 2), patients=50, slices=5)
    start = time.perf_counter()
    out = bootstrap_intervals(frame, n_boot=2000)
    elapsed = time.perf_counter() - start
    assert len(out) == 5 * 4 * 3 * 5
    assert elapsed < 30, f"bootstrap_intervals took {elapsed:.1f} s for {len(out)} rows of 2000 resamples"


def test_seed_spread():
    frame = per_case(seeds=(0, 1, 2))
    out = seed_spread(frame, ["dice", "incorrect_topology"])
    assert list(out.columns) == [
        "experiment",
        "metric",
        "n_seeds",
        "mean",
        "std",
        "min",
        "max",
        "seed_0",
        "seed_1",
        "seed_2",
    ]
    row = pick(out, experiment="unet", metric="dice")
    means = frame[frame["experiment"] == "unet"].groupby("seed")["dice"].mean()
    assert row["n_seeds"] == 3 and row["mean"] == pytest.approx(means.mean())
    assert row["std"] == pytest.approx(means.std(ddof=1))
    assert (row["min"], row["max"]) == pytest.approx((means.min(), means.max()))
    assert row["seed_1"] == pytest.approx(means[1])
    single = seed_spread(per_case(seeds=(4,)), ["dice"])
    assert single["n_seeds"].eq(1).all() and single["std"].isna().all() and "seed_4" in single.columns


def test_patient_level_paired_tests_use_patient_means():
    frame = per_case()
    out = patient_level_paired_tests(frame, "tedsnet")
    assert list(out.columns) == list(PAIRED_COLUMNS) and out["experiment"].tolist() == ["unet"]
    row = out.iloc[0]
    means = frame.groupby(["experiment", "patient_id"])["dice"].mean()
    a, b = means["unet"].to_numpy(), means["tedsnet"].to_numpy()
    assert row["n_patients"] == 12 and row["mean_diff"] == pytest.approx((a - b).mean())
    assert row["mean_diff"] == pytest.approx(0.02, abs=0.005)  # unet's Dice is 0.02 higher by construction
    assert row["p_wilcoxon"] == pytest.approx(paired_test(a, b, "wilcoxon")[2])
    assert row["p_ttest"] == pytest.approx(paired_test(a, b, "t")[2]) and row["p_ttest"] < 1e-6
    topo = patient_level_paired_tests(frame, "tedsnet", metric="incorrect_topology").iloc[0]
    rates = 1 - frame.groupby(["experiment", "patient_id"])["correct_topology"].mean()
    assert topo["metric"] == "incorrect_topology"
    assert topo["mean_diff"] == pytest.approx((rates["unet"] - rates["tedsnet"]).mean())
    assert patient_level_paired_tests(frame, "absent").empty


def test_paired_tests_pair_only_patients_with_values():
    frame = per_case()
    frame.loc[(frame["experiment"] == "unet") & (frame["patient_id"] == "p003"), "hd_mm"] = np.nan
    frame = frame[~((frame["experiment"] == "tedsnet") & (frame["patient_id"] == "p005"))]
    assert patient_level_paired_tests(frame, "tedsnet", "hd_mm").iloc[0]["n_patients"] == 10


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f: bootstrap_intervals(f.drop(columns="patient_id")), r"lacks column\(s\) \['patient_id'\]"),
        (lambda f: bootstrap_intervals(f.drop(columns="correct_topology")), "correct_topology"),
        (lambda f: bootstrap_intervals(f, n_boot=0), "n_boot must be at least 1"),
        (lambda f: bootstrap_intervals(f, level=95), r"level must be in \(0, 1\)"),
        (lambda f: seed_spread(f, ["volume"]), "volume"),
        (lambda f: patient_level_paired_tests(f, "tedsnet", "volume"), "volume"),
    ],
)
def test_input_checks(call, match):
    with pytest.raises(ValueError, match=match):
        call(per_case(seeds=(0,), patients=3, slices=1))
