"""The reproduction questions of report.md are answered from the numbers given (tedsnet.reporting.answers)."""

import math
from pathlib import Path

import pandas as pd
import pytest

from tedsnet.reporting.answers import (
    answer_budget12,
    answer_postprocess,
    answer_questions,
    answer_topology_across_seeds,
    answer_topology_baselines,
    budget_table,
    jacobian_pattern,
    patient_test_text,
)


def _row(experiment, dice, topo, bulk=math.nan, ft=math.nan, hd=3.0):
    return {
        "experiment": experiment,
        "dice_mean": dice,
        "hd_px_mean": hd,
        "nonpos_jac_bulk_pct_mean": bulk,
        "nonpos_jac_ft_pct_mean": ft,
        "incorrect_topology": topo,
        "n_test": 100,
    }


PAPER = Path(__file__).resolve().parents[1] / "workflow" / "resources" / "paper_table1.csv"


@pytest.fixture
def paper():
    return pd.read_csv(PAPER)


def test_jacobian_pattern_compares_folds_and_topology_with_the_paper(paper):
    summary = pd.DataFrame(
        [
            _row("A1", 0.8, 5, bulk=12.0, ft=0.5),  # folds and errors, as the paper
            _row("A3", 0.8, 0, bulk=0.0, ft=3.0),  # folds, no errors: differs
            _row("A4", 0.8, 0, bulk=0.0, ft=0.0),  # none, as the paper
            _row("tedsnet", 0.8, 1, bulk=0.0, ft=0.0),  # an error: differs
        ]
    )
    pattern = jacobian_pattern(summary, paper).set_index("experiment")
    assert pattern.loc["A1", "folds_pct"] == 12.0
    assert pattern.loc["A1", "agrees"]
    assert not pattern.loc["A3", "agrees"]
    assert pattern.loc["A4", "agrees"]
    assert not pattern.loc["tedsnet", "agrees"]
    assert pattern.loc["A3", "paper_topology_errors"] == 35


def test_budget_table_reads_dice_against_epochs():
    curves = pd.DataFrame(
        {
            "experiment": ["prior"] + ["tedsnet"] * 3 + ["unet"] * 2,
            "seed": 0,
            "epoch": [0, 1, 2, 3, 1, 2],
            "images_seen": [0, 6000, 12000, 18000, 6000, 12000],
            "val_dice": [0.17, 0.5, 0.65, 0.72, 0.80, 0.801],
        }
    )
    table = budget_table(curves, paper_epochs=200).set_index("experiment")
    assert "prior" not in table.index
    assert table.loc["tedsnet", "paper_fraction"] == pytest.approx(18000 / 1_200_000)
    assert table.loc["tedsnet", "val_dice_by_epoch"] == [0.5, 0.65, 0.72]
    assert table.loc["tedsnet", "last_gain"] == pytest.approx(0.07)
    assert table.loc["tedsnet", "still_rising"]
    assert not table.loc["unet", "still_rising"]


def test_answers_name_the_guard_and_the_counts(paper):
    summary = pd.DataFrame(
        [
            _row("prior", 0.16, 0),
            _row("unet", 0.85, 7),
            _row("unet_smp", 0.5, 40),
            _row("tedsnet", 0.78, 0, 0, 0),
        ]
    )
    text = answer_questions(summary, paper, None, passing=["unet", "tedsnet"])
    assert "Yes: 0/100 test slices with incorrect topology" in text
    assert "U-Net (paper): 7/100 incorrect at mean Dice 0.850 (past the guard)" in text
    assert "U-Net (smp): 40/100 incorrect at mean Dice 0.500 (below the guard" in text
    assert "TEDS-Net: Dice 0.780 vs 0.86 (-0.080)" in text
    assert "No learning curves." in text
    assert "| As the paper's row |" in text and "a trace such as the paper's 0.03 % for A5" in text
    failing = answer_questions(
        summary.assign(incorrect_topology=[0, 7, 40, 2]), paper, None, passing=["tedsnet"]
    )
    assert "No: 2/100 test slices with incorrect topology" in failing
    below = answer_questions(summary, paper, None, passing=[])
    assert "No conclusion: TEDS-Net is **below the under-training guard** (0/100 test slices" in below
    assert "Yes" not in below.split("**Do the U-Nets")[0]


def test_answers_say_so_when_every_prediction_is_empty(paper):
    summary = pd.DataFrame([_row("A2", 0.0, 100, bulk=60.0, ft=30.0, hd=math.nan)])
    text = answer_questions(summary, paper, None, passing=[])
    assert "HD N/A (every prediction empty) vs 3.73" in text and "nan" not in text


# --------------------------------------------------------------------------------------------------- baselines
def _tests(*rows):
    """Patient-level tests: (experiment, reference, metric, p_wilcoxon, p_ttest)."""
    return pd.DataFrame(
        [
            {"experiment": e, "reference": r, "metric": m, "n_patients": 10, "mean_diff": 0.0,
             "p_wilcoxon": w, "p_ttest": t}
            for e, r, m, w, t in rows
        ]
    )  # fmt: skip


def test_patient_test_text_finds_a_pair_in_either_order_and_falls_back_to_the_t_test():
    tests = _tests(
        ("unet_post", "tedsnet", "dice", 0.0004, 0.01), ("unet_post", "unet", "dice", math.nan, 0.2)
    )
    assert patient_test_text(tests, "tedsnet", "unet_post", "dice") == (
        "patient-level Wilcoxon p = 4.00e-04, n = 10 patients"
    )
    assert (
        patient_test_text(tests, "unet_post", "unet", "dice")
        == "patient-level paired t-test p = 0.200, n = 10 patients"
    )
    assert patient_test_text(tests, "unet_post", "unet", "hd_mm") == "no patient-level test"
    assert patient_test_text(None, "a", "b", "dice") == "no patient-level test"


def test_baseline_answers_weigh_topology_as_a_share_and_leave_out_rows_below_the_guard():
    summary = pd.DataFrame(
        [
            {**_row("tedsnet", 0.80, 2), "hd_mm_mean": 6.0, "n_test": 300},  # three seeds: 2/300
            {**_row("unet", 0.88, 10), "hd_mm_mean": 5.0},
            {**_row("unet_cldice", 0.86, 1), "hd_mm_mean": 5.5},  # 1/100 > 2/300
            {**_row("unet_topo", 0.60, 0), "hd_mm_mean": 9.0},
            {**_row("unet_post", 0.87, 4), "hd_mm_mean": 5.2},
        ]
    )
    passing = ["tedsnet", "unet", "unet_cldice", "unet_post"]
    text = answer_topology_baselines(summary, None, passing)
    assert "No: every baseline past the guard has a larger share" in text
    assert "the closest is U-Net + clDice: 1/100 incorrect against TEDS-Net's 2/300" in text
    assert "HD 5.50 mm vs 6.00 mm (no patient-level test)" in text
    assert "Below the under-training guard, left out: U-Net + PH loss (Betti prior)." in text
    post = answer_postprocess(summary, None, passing, {"closing_radius_px": 2})
    assert "closing_radius_px = 2" in post and "it closes 64% of the topology gap to TEDS-Net" in post
    assert "Dice -0.010 (0.880 → 0.870" in post
    assert "Not run" in answer_postprocess(summary[summary["experiment"] != "unet_post"], None, passing, {})
    assert "Not answerable" in answer_topology_baselines(
        summary[summary["experiment"] == "unet"], None, passing
    )


def test_budget_answer_only_for_pairs_run_with_a_paper_row(paper):
    summary = pd.DataFrame(
        [_row("tedsnet", 0.70, 0), _row("tedsnet_epochs12", 0.90, 0), _row("unet", 0.8, 3)]
    )
    text = answer_budget12(summary, paper, {"tedsnet": 4, "tedsnet_epochs12": 12})
    assert (
        "TEDS-Net: Dice 0.700 → 0.900 (4 → 12 epochs), paper 0.86: the longer budget closes the whole" in text
    )
    assert "U-Net" not in text
    assert answer_budget12(summary[summary["experiment"] != "tedsnet_epochs12"], paper) == ""
    assert answer_budget12(summary, None) == ""
    intervals = pd.DataFrame(
        [_interval("tedsnet", "mean", "dice", 0.70, 0.62, 0.77), _interval("tedsnet", "0", "dice", 0.7, 0.6, 0.8),
         _interval("tedsnet_epochs12", "mean", "dice", 0.90, 0.85, 0.93)]
    )  # fmt: skip
    with_ci = answer_budget12(summary, paper, {"tedsnet": 4, "tedsnet_epochs12": 12}, intervals)
    assert "TEDS-Net: Dice 0.700 [0.620, 0.770] → 0.900 [0.850, 0.930] (4 → 12 epochs)" in with_ci


def _interval(experiment, seed, metric, mean, low, high, phase="both"):
    return {"experiment": experiment, "seed": seed, "phase": phase, "metric": metric, "mean": mean,
            "ci_low": low, "ci_high": high, "n_patients": 10}  # fmt: skip


def test_the_topology_difference_is_told_seed_by_seed_with_intervals():
    rows = [
        _interval("unet", "0", "incorrect_topology", 0.06, 0.0, 0.15),
        _interval("unet", "1", "incorrect_topology", 0.10, 0.04, 0.20),
        _interval("unet", "2", "incorrect_topology", 0.0, 0.0, 0.0),
        _interval("unet", "mean", "incorrect_topology", 0.053, 0.02, 0.1),
        _interval("unet", "1", "incorrect_topology", 0.5, 0.4, 0.6, phase="ED"),  # not both phases: not read
        _interval("tedsnet", "0", "incorrect_topology", 0.0, 0.0, 0.0),
        _interval("tedsnet", "1", "incorrect_topology", 0.0, 0.0, 0.0),
        _interval("tedsnet", "mean", "incorrect_topology", 0.0, 0.0, 0.0),
        _interval("unet_epochs12", "0", "incorrect_topology", 0.03, 0.0, 0.08),
    ]
    text = answer_topology_across_seeds(pd.DataFrame(rows))
    assert "**Does the topology difference hold across seeds?**" in text
    assert (
        "U-Net (paper) vs TEDS-Net: seed 0 6 % [0, 15] vs 0 % [0, 0]; seed 1 10 % [4, 20] vs 0 % [0, 0]. "
        "Higher for U-Net (paper) in 2 of 2 seeds; its interval lies above TEDS-Net's in 1 of 2"
    ) in text
    assert "seed 2" not in text and "epochs" not in text  # no TEDS-Net seed 2, no 12-epoch TEDS-Net
    assert answer_topology_across_seeds(pd.DataFrame(rows[:4])) == ""
    assert answer_topology_across_seeds(None) == ""
    assert answer_topology_across_seeds(pd.DataFrame(rows).drop(columns="ci_low")) == ""
