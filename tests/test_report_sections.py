"""The report's sections on the topology-aware baselines, the MedIA 2024 follow-up, seeds and intervals, topology
beyond Betti numbers, the slice ledger and the further evaluation sets (tedsnet.reporting), on hand-made tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tedsnet.reporting import curves, paper, report, stats, table1, verdict

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "workflow" / "resources" / "paper_table1.csv"
MEDIA = REPO / "workflow" / "resources" / "media2024_table.csv"
COMMITTED = REPO / "results" / "acdc_cpu"
BETWEEN = report.CONNECTIVITY


def cases(experiment, dice, *, seed=0, wrong=(), kinds=None, new_columns=True, hd=3.0):
    """10 per-case rows (5 patients, ED and ES) of one experiment; ``kinds`` maps a wrong case to its kinds."""
    n = 10
    frame = pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "patient_id": [f"p{i // 2}" for i in range(n)],
            "group": "NOR",
            "phase": ["ED", "ES"] * 5,
            "z": range(n),
            "experiment": experiment,
            "seed": seed,
            "dice": dice if np.ndim(dice) else np.full(n, dice),
            "hd_px": hd,
            "hd95_px": hd * 0.8,
            "hd_mm": hd * 1.5,
            "hd95_mm": hd * 1.2,
        }
    )
    for column in ("bulk", "ft", "bulk_central", "ft_central"):
        frame[f"nonpos_jac_{column}_pct"] = math.nan
    frame["b0"], frame["b1"] = 1, 1
    frame["correct_topology"] = [i not in wrong for i in range(n)]
    frame["status"] = "ok"
    if new_columns:
        kinds = kinds or {}
        frame["assd_mm"] = hd * 0.5
        frame["betti_error"] = [float(i in wrong) for i in range(n)]
        frame["euler_error"] = [float(i in wrong) for i in range(n)]
        frame["betti_matching_error"] = [2.0 * (i in wrong) for i in range(n)]
        frame["topology_error"] = [kinds.get(i, "missing_hole" if i in wrong else "") for i in range(n)]
        frame["topology_matches_reference"] = [i not in wrong for i in range(n)]
    return frame


@pytest.fixture
def metrics():
    return pd.concat(
        [
            cases("prior", 0.2, new_columns=False),
            cases(
                "unet", 0.88, wrong=(1, 4, 7), kinds={4: "extra_components+missing_hole"}, new_columns=False
            ),
            cases("tedsnet", 0.80, hd=4.0),
            cases("unet_post", 0.86, hd=3.5),
            cases("unet_cldice", 0.87, wrong=(2,)),
        ],
        ignore_index=True,
    )


def learning_curves(experiments, epochs, seconds):
    """learning_curves.csv rows: one seed, val Dice and images seen filled in."""
    return pd.DataFrame(
        {"experiment": experiments, "seed": 0, "epoch": epochs, "seconds": seconds, "val_dice": 0.5,
         "images_seen": np.asarray(epochs) * 100}
    )  # fmt: skip


def patient_tests_of(metrics: pd.DataFrame) -> pd.DataFrame:
    """Patient-level tests against TEDS-Net and the plain U-Net, in the layout build_report takes."""
    frames = [
        stats.paired_tests(metrics, reference=r, metric_names=("dice", "hd_mm")) for r in ("tedsnet", "unet")
    ]
    return report.patient_tests_from_stats(pd.concat(frames, ignore_index=True))


def build(metrics, **extra):
    summary = table1.summarise_table1(metrics)
    kwargs = dict(
        run="unit",
        summary=summary,
        stats=stats.paired_tests(metrics),
        paper=pd.read_csv(PAPER),
        verdict=verdict.training_verdict(summary),
        figures={},
        config={"run": "unit"},
        data_source="hand-made",
        seeds=[0],
        versions={},
    )
    return report.build_report(**{**kwargs, **extra})


def section(text: str, heading: str) -> str:
    """The text of the ``##`` section whose heading starts with ``heading``."""
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : None if end < 0 else end]


# ------------------------------------------------------------------------------------------ MedIA 2024 numbers
def test_media2024_table_holds_the_follow_up_numbers_and_nothing_else():
    media = pd.read_csv(MEDIA).set_index("model")
    assert list(media.columns) == list(paper.MEDIA2024_COLUMNS[1:])
    assert media.loc["TEDS-Net", ["dice_mean", "dice_std", "hd_mm", "correct_topology_pct"]].tolist() == [
        0.85,
        0.14,
        4.82,
        100,
    ]
    assert (
        media.loc["U-Net", "minutes_per_epoch"] == 0.22 and media.loc["U-Net", "correct_topology_pct"] == 94
    )
    topo = media.loc["TopoLoss U-Net (persistent homology)"]
    assert (topo["dice_mean"], topo["correct_topology_pct"], topo["minutes_per_epoch"]) == (0.89, 95, 18)
    assert media.loc["VoxelMorph", ["dice_mean", "correct_topology_pct"]].tolist() == [0.80, 98]
    assert media.loc["Swin-Unet", ["dice_mean", "correct_topology_pct"]].tolist() == [0.86, 89]
    given = media.notna().sum().sum()
    assert given == 4 + 3 + 2 + 3 + 2  # every number the follow-up gives, no other
    assert set(paper.MEDIA2024_EXPERIMENTS) <= set(media.index)
    assert paper.MEDIA2024_EXPERIMENTS["TopoLoss U-Net (persistent homology)"] == "unet_topo"


def test_media2024_comparison_sets_ours_beside_theirs(metrics):
    summary = table1.summarise_table1(metrics)
    table = paper.media2024_comparison(
        summary, pd.read_csv(MEDIA), {"tedsnet": "1.50"}, extra=("unet_post", "unet_cldice")
    ).set_index("Model")
    assert table.loc["TEDS-Net", "Dice (MedIA 2024)"] == "0.85 ± 0.14"
    assert table.loc["TEDS-Net", "HD mm (MedIA 2024)"] == "4.82"
    assert table.loc["TEDS-Net", "% correct topology (ours)"] == "100.0"
    assert table.loc["TEDS-Net", "Min per epoch (ours)"] == "1.50"
    assert table.loc["U-Net / U-Net (paper)", "% correct topology (ours)"] == "70.0"
    assert table.loc["U-Net / U-Net (paper)", "Min per epoch (MedIA 2024)"] == "0.22"
    assert table.loc["Swin-Unet", "Dice (ours)"] == "—"
    assert table.loc["VoxelMorph", "Dice (ours)"] == "—"  # not run here
    assert table.loc["U-Net + post-processing", "Dice (MedIA 2024)"] == "—"
    assert table.index[-2:].tolist() == ["U-Net + post-processing", "U-Net + clDice"]
    with pytest.raises(ValueError, match="lacks column"):
        paper.media2024_comparison(summary, pd.DataFrame({"model": ["x"]}))


def test_minutes_per_epoch_is_the_mean_over_seeds():
    history = pd.DataFrame(
        {
            "experiment": ["prior", "unet", "unet", "unet", "unet"],
            "seed": [0, 0, 0, 1, 1],
            "epoch": [0, 1, 2, 1, 2],
            "seconds": [0.0, 60.0, 120.0, 150.0, 300.0],
            "images_seen": [0, 100, 200, 100, 200],
        }
    )
    timed = curves.minutes_per_epoch(history).set_index("experiment")
    assert "prior" not in timed.index
    assert timed.loc["unet", "minutes_per_epoch"] == pytest.approx((1.0 + 2.5) / 2)
    assert timed.loc["unet", "n_seeds"] == 2 and timed.loc["unet", "images_per_epoch"] == 100
    assert curves.minutes_per_epoch(history.drop(columns="seconds")).empty


def test_every_row_has_its_minutes_per_epoch_or_says_it_does_not_train(metrics):
    history = learning_curves(
        ["prior", "unet", "tedsnet", "unet_topo"], [0, 4, 4, 1], [0.0, 480.0, 960.0, 600.0]
    )
    topo = cases("unet_topo", 0.87, wrong=(3,))
    text = build(pd.concat([metrics, topo], ignore_index=True), curves=history, media2024=pd.read_csv(MEDIA))
    times = section(text, "### Training minutes per epoch")
    assert "| TEDS-Net | 1 | 4 | 4.00 |" in times and "| U-Net (paper) | 1 | 4 | 2.00 |" in times
    assert (
        "| U-Net + post-processing | — | — | no training: post-processes the predictions of the trained "
        in times
    )
    assert "10.00 (fine-tunes the trained U-Net (paper))" in times
    assert "no training: used as built" in times  # the prior
    assert "| U-Net + clDice | — | — | — |" in times  # no history
    media = section(text, "## MedIA 2024 beside ours")
    assert "doi:10.1016/j.media.2024.103222" in media
    assert "MedIA 2024 82x; ours 5.0x (fine-tuning epochs)" in media


# ------------------------------------------------------------------------------------------ topology baselines
def test_baselines_section_answers_from_the_patient_level_tests(metrics):
    text = build(metrics, patient_tests=patient_tests_of(metrics), postprocess={"closing_radius_px": 1})
    part = section(text, f"## Topology-aware baselines ({BETWEEN})")
    assert "| U-Net + post-processing | 0/10 | 0.860 ± 0.000 | 5.25 ± 0.00 | yes |" in part
    assert "| U-Net + clDice | 1/10 |" in part
    assert (
        "**Does any topology-aware baseline match TEDS-Net's topology, and at what Dice and HD?** Yes: "
        in part
    )
    assert "U-Net + post-processing (as few incorrect topologies or fewer)" in part
    assert "U-Net + post-processing: 0/10 incorrect against TEDS-Net's 0/10, Dice 0.860 vs 0.800" in part
    assert "patient-level Wilcoxon p = " in part and "n = 5 patients" in part
    assert "Parameters (config `postprocess`): closing_radius_px = 1." in part
    assert "3/10 for U-Net (paper)" in part and "it closes the topology gap to TEDS-Net fully" in part
    assert "Dice -0.020 (0.880 → 0.860" in part and "HD 4.50 mm → 5.25 mm" in part
    assert "| U-Net + clDice | U-Net (paper) | Dice | patient-level" in part


def test_baselines_section_names_the_closest_when_none_matches_and_the_share_of_the_gap(metrics):
    worse = metrics[metrics["experiment"] != "unet_cldice"].copy()
    post = worse["experiment"] == "unet_post"
    worse.loc[post, "correct_topology"] = [True] * 8 + [False] * 2
    part = section(build(worse), "## Topology-aware baselines")
    assert "No: every baseline past the guard has a larger share" in part
    assert "the closest is U-Net + post-processing: 2/10 incorrect" in part
    assert "it closes 33% of the topology gap to TEDS-Net" in part
    assert "Parameters (config `postprocess`): the registry's defaults." in part
    assert "no patient-level test" not in part.split("**Does post")[0]  # stats.csv's patient rows fill in


def test_baselines_section_draws_nothing_from_an_under_trained_run_and_says_when_none_ran(metrics):
    low = metrics.copy()
    low.loc[low["experiment"] == "tedsnet", "dice"] = 0.5
    part = section(build(low), "## Topology-aware baselines")
    assert "**No topology conclusion is drawn**" in part and "Does any topology-aware" not in part
    plain = metrics[~metrics["experiment"].isin(["unet_post", "unet_cldice"])]
    assert "No topology-aware baseline in this build" in build(plain)


def test_topology_conclusion_names_the_patient_level_test(metrics):
    text = build(metrics)
    topology = section(text, f"### Topology ({BETWEEN})")
    assert "for U-Net (paper), at mean Dice 0.800 vs 0.880 (patient-level Wilcoxon p = " in topology
    assert "slice-level" not in topology
    assert "Slice paired t-test p (n)" in text  # the slice-level table stays


# ------------------------------------------------------------------------------------------ seeds and intervals
def interval_rows(experiment, seeds, dice, phases=("ED", "ES", "both")):
    rows = []
    for seed in seeds:
        for phase in phases:
            for metric, mean in (
                ("dice", dice),
                ("hd_mm", 4.0),
                ("assd_mm", math.nan),
                ("incorrect_topology", 0.1),
            ):
                rows.append(
                    {
                        "experiment": experiment,
                        "seed": seed,
                        "phase": phase,
                        "metric": metric,
                        "mean": mean,
                        "ci_low": mean - 0.05,
                        "ci_high": mean + 0.05,
                        "n_patients": 5,
                        "n_cases": 10,
                        "n_nan": 0,
                    }
                )
    return rows


def test_seeds_section_shows_each_seed_the_mean_and_the_spread(metrics):
    two_seeds = pd.concat([metrics, cases("tedsnet", 0.82, seed=1, hd=4.0)], ignore_index=True)
    intervals = pd.DataFrame(
        interval_rows("tedsnet", ["0", "1", "mean"], 0.81) + interval_rows("unet", ["0"], 0.88)
    )
    spread = pd.DataFrame(
        {"experiment": ["tedsnet", "unet"], "metric": "dice", "n_seeds": [2, 1], "mean": [0.81, 0.88],
         "std": [0.014, math.nan], "min": [0.80, 0.88], "max": [0.82, 0.88], "seed_0": [0.80, 0.88],
         "seed_1": [0.82, math.nan]}
    )  # fmt: skip
    part = section(build(two_seeds, intervals=intervals, seed_spread=spread), "## Seeds and 95 %")
    assert "| TEDS-Net | 0 | ED | 0.810 [0.760, 0.860] | 4.00 [3.95, 4.05] |" in part
    assert "| TEDS-Net | mean of 2 | both |" in part
    assert (
        "| U-Net (paper) | 0 | ES | 0.880 [0.830, 0.930] |" in part and "| U-Net (paper) | mean" not in part
    )
    assert "| — | 10.0 [5.0, 15.0] | 5 |" in part  # no ASSD; the incorrect-topology rate in %
    assert "| TEDS-Net | dice | 2 | 0.810 | 0.014 | 0.800 | 0.820 |" not in part  # metric by display name
    assert "| TEDS-Net | Dice | 2 | 0.810 | 0.014 | 0.800 | 0.820 | 0: 0.800, 1: 0.820 |" in part
    assert "| U-Net (paper) | Dice |" not in part.split("### Spread over seeds")[1]  # one seed: no spread
    assert "No 12-epoch row in this build." in part


def test_seeds_section_renders_the_intervals_module_output(metrics):
    from tedsnet.reporting.intervals import DEFAULT_COLUMNS, bootstrap_intervals, seed_spread

    two_seeds = pd.concat([metrics, cases("tedsnet", 0.82, seed=1, hd=4.0)], ignore_index=True)
    full = two_seeds  # the rows that predate ASSD have NaN there, as the stats rule fills them
    intervals = pd.read_csv(
        pd.io.common.StringIO(bootstrap_intervals(full, DEFAULT_COLUMNS, n_boot=50).to_csv(index=False))
    )  # as the report reads intervals.csv back
    part = section(
        build(two_seeds, intervals=intervals, seed_spread=seed_spread(full, DEFAULT_COLUMNS)),
        "## Seeds and 95 %",
    )
    assert (
        "| TEDS-Net | 0 | ED | 0.800 [0.800, 0.800] |" in part
        and "| TEDS-Net | mean of 2 | both | 0.810" in part
    )
    assert (
        "| U-Net (paper) | 0 | both | 0.880 [0.880, 0.880] | 4.50 [4.50, 4.50] | 3.60 [3.60, 3.60] | — |"
        in part
    )
    assert "| TEDS-Net | Dice | 2 | 0.810 |" in part and "0: 0.800, 1: 0.820" in part


def test_seeds_section_says_what_is_missing_and_never_fails(metrics):
    part = section(build(metrics, intervals=pd.DataFrame({"experiment": ["x"]})), "## Seeds and 95 %")
    assert "No intervals in this build (intervals.csv missing or lacking seed, phase" in part
    assert "No seed spread in this build" in part


def test_twelve_epoch_budget_sentence(metrics):
    longer = pd.concat(
        [metrics, cases("tedsnet_epochs12", 0.83), cases("unet_epochs12", 0.90, new_columns=False)],
        ignore_index=True,
    )
    history = learning_curves(
        ["tedsnet"] * 4 + ["tedsnet_epochs12"] * 12, [*range(1, 5), *range(1, 13)], np.arange(1, 17) * 60.0
    )
    part = section(build(longer, curves=history), "## Seeds and 95 %")
    assert "**How much of the Dice gap to the paper closes with the 12-epoch budget?**" in part
    assert (
        "TEDS-Net: Dice 0.800 → 0.830 (4 → 12 epochs), paper 0.86: the longer budget closes 50% of the 0.060 gap"
        in part
    )
    assert "U-Net (paper): Dice 0.880 → 0.900, paper 0.87: already at or above the paper's Dice" in part


# ------------------------------------------------------------------------------------------ topology beyond Betti
def test_table1_counts_wrong_topologies_by_kind_and_leaves_old_rows_empty(metrics):
    summary = table1.summarise_table1(metrics).set_index("experiment")
    assert summary.loc["unet_cldice", "wrong_topology_missing_hole"] == 1
    assert summary.loc["tedsnet", "wrong_topology_missing_hole"] == 0  # no wrong topology: none of each kind
    assert math.isnan(summary.loc["unet", "wrong_topology_missing_hole"])  # wrong cases, kinds not recorded
    assert summary.loc["unet_cldice", "betti_matching_error_mean"] == pytest.approx(0.2)
    assert summary.loc["unet", "betti_error_n"] == 0 and math.isnan(summary.loc["unet", "assd_mm_mean"])
    assert summary.loc["unet_cldice", "topology_differs_from_reference"] == 1
    assert table1.topology_kind_counts(cases("unet", 0.8, wrong=(1,), new_columns=False)) is None
    kinds = table1.topology_kind_counts(
        cases("x", 0.8, wrong=(1, 2), kinds={1: "extra_components+missing_hole", 2: "empty"})
    )
    assert kinds == {
        "wrong_topology_empty": 1,
        "wrong_topology_extra_components": 1,
        "wrong_topology_missing_hole": 1,
    }


def test_table1_gains_assd_only_when_a_row_has_it(metrics):
    md = table1.table1_markdown(table1.summarise_table1(metrics))
    assert "| ASSD (mm) |" in md.splitlines()[0] and "| 4.50 ± 0.00 | — |" in md  # U-Net predates ASSD
    old = metrics[metrics["experiment"].isin(["prior", "unet"])].drop(
        columns=["assd_mm", "betti_error", "euler_error", "betti_matching_error", "topology_error",
                 "topology_matches_reference"], errors="ignore",
    )  # fmt: skip
    summary = table1.summarise_table1(old)
    assert "ASSD" not in table1.table1_markdown(summary) and "ASSD" not in table1.table1_latex(summary)
    assert not [c for c in summary.columns if c.startswith(("assd", "betti", "wrong_topology", "topology_"))]


@pytest.mark.skipif(not (COMMITTED / "metrics").is_dir(), reason="no committed run")
def test_committed_table1_is_rebuilt_identically():
    old = pd.read_csv(COMMITTED / "table1.csv")
    metrics = pd.concat(
        [pd.read_csv(COMMITTED / "metrics" / f"{e}.csv") for e in old["experiment"]], ignore_index=True
    )
    summary = table1.summarise_table1(metrics)
    pd.testing.assert_frame_equal(summary, old, check_dtype=False)
    assert table1.table1_markdown(summary) == (COMMITTED / "table1.md").read_text()
    assert table1.table1_latex(summary) == (COMMITTED / "table1.tex").read_text()


def test_topology_metrics_section_states_connectivity_and_which_rows_predate_the_metrics(metrics):
    part = section(build(metrics), f"## Topology beyond Betti numbers ({BETWEEN})")
    assert "| U-Net + clDice | 1/10 | 0.100 | 0.100 | 0.200 | 1/10 | missing hole 1 |" in part
    assert "| TEDS-Net | 0/10 | 0.000 | 0.000 | 0.000 | 0/10 | none |" in part
    assert "| U-Net (paper) | 3/10 | — | — | — | — | — |" in part
    assert (
        "—: rows evaluated before these metrics existed" in part
        and "Prior (zero fields), U-Net (paper)." in part
    )
    old = metrics[metrics["experiment"].isin(["prior", "unet"])]
    assert "Not in this build: every row was evaluated before" in build(old)


# ------------------------------------------------------------------------------------------ ledger and sets
def test_ledger_and_evaluation_sets_sections(metrics):
    text = build(metrics)
    assert "Not in this build: no slice ledger" in text
    assert "its evaluation runs when the ACDC root holds testing/." in text
    assert "No further evaluation set in this build." in text
    summary = table1.summarise_table1(metrics)
    sets = {"testing": (summary, stats.paired_tests(metrics)), "test_all": (summary, None)}
    text = build(metrics, ledger_text="## Slice ledger: every slice\n\nrows\n", evaluation_sets=sets)
    assert (
        "## Slice ledger: every slice\n\nrows\n" in text and "Not in this build: no slice ledger" not in text
    )
    part = section(text, "## Further evaluation sets")
    assert part.index("### Test split, every slice (`test_all`)") < part.index(
        "### Official ACDC testing set, the protocol's slices (`testing`)"
    )
    assert "| TEDS-Net vs |" not in part.split("(`testing`)")[0]  # test_all was given no tests
    assert "| U-Net (paper) | Dice |" in part.split("(`testing`)")[1]
    assert "| U-Net (paper) | HD (px) |" not in part  # the sets' tests: Dice and HD (mm) only
    assert "runs when the ACDC root holds" not in part
    assert "patient-bootstrap intervals" not in part  # none given


def test_each_evaluation_set_gets_its_patient_intervals(metrics):
    from tedsnet.reporting.intervals import DEFAULT_COLUMNS, bootstrap_intervals

    summary = table1.summarise_table1(metrics)
    intervals = bootstrap_intervals(metrics, DEFAULT_COLUMNS, n_boot=50)
    sets = {
        "testing": report.SetTables(summary, stats.paired_tests(metrics), intervals),
        "test_all": (summary,),
    }
    part = section(build(metrics, evaluation_sets=sets), "## Further evaluation sets")
    testing = part.split("(`testing`)")[1]
    assert "95 % patient-bootstrap intervals (mean over seeds):" in testing
    assert "| U-Net (paper) | mean | ES |" in testing and "| U-Net (paper) | mean | both | 0.880 [" in testing
    assert "| TEDS-Net | 0 |" not in testing  # the mean over seeds only
    assert "patient-bootstrap" not in part.split("(`testing`)")[0]  # test_all was given no intervals


def test_patient_tests_from_stats_match_the_paired_tests(metrics):
    tests = stats.paired_tests(metrics, metric_names=("dice",))
    table = report.patient_tests_from_stats(tests).set_index("experiment")
    row = tests[(tests["other"] == "unet") & (tests["test"] == "Wilcoxon signed-rank")].iloc[0]
    assert table.loc["unet", "p_wilcoxon"] == row["p_value"] and table.loc["unet", "n_patients"] == 5
    assert table.loc["unet", "mean_diff"] == pytest.approx(0.08)  # other - reference
    assert report.patient_tests_from_stats(tests.iloc[0:0]).empty
