"""Reporting (tedsnet.reporting): Table 1, paired tests, verdict, report, figures on hand-made tables."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tedsnet.io import atomic_path, write_text_atomic
from tedsnet.network.priors import ring_prior
from tedsnet.reporting import (
    curves,
    figure3,
    figure4,
    labels,
    paper,
    provenance,
    report,
    stats,
    table1,
    verdict,
)

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "workflow" / "resources" / "paper_table1.csv"
METRICS = [
    "dice",
    "hd_px",
    "hd95_px",
    "hd_mm",
    "hd95_mm",
    "nonpos_jac_bulk_pct",
    "nonpos_jac_ft_pct",
    "nonpos_jac_bulk_central_pct",
    "nonpos_jac_ft_central_pct",
]


def case_rows(experiment, dice, hd, *, seed=0, fields=("bulk", "ft"), wrong=(), jac=0.0):
    """Per-case rows: 10 cases from 5 patients (2 each)."""
    n = len(dice)
    frame = pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "patient_id": [f"p{i // 2}" for i in range(n)],
            "group": "NOR",
            "phase": "ED",
            "z": range(n),
            "experiment": experiment,
            "seed": seed,
            "dice": dice,
            "hd_px": hd,
            "hd95_px": np.asarray(hd, float) * 0.8,
            "hd_mm": np.asarray(hd, float) * 1.5,
            "hd95_mm": np.asarray(hd, float) * 1.2,
        }
    )
    for name in ("bulk", "ft"):
        value = jac if name in fields else math.nan
        frame[f"nonpos_jac_{name}_pct"] = value
        frame[f"nonpos_jac_{name}_central_pct"] = value
    frame["b0"] = 1
    frame["b1"] = 1
    frame["correct_topology"] = [i not in wrong for i in range(n)]
    frame["status"] = ["ok" if np.isfinite(h) else "empty_prediction" for h in hd]
    return frame


RNG = np.random.default_rng(7)
TEDS_DICE = np.round(0.85 + RNG.normal(0, 0.03, 10), 4)
UNET_DICE = np.round(0.82 + RNG.normal(0, 0.05, 10), 4)
TEDS_HD = np.round(3 + RNG.normal(0, 0.5, 10), 3)
UNET_HD = np.round(5 + RNG.normal(0, 2.0, 10), 3)


@pytest.fixture
def metrics():
    unet_hd = UNET_HD.copy()
    unet_hd[4] = np.nan  # an empty U-Net prediction
    unet_dice = UNET_DICE.copy()
    unet_dice[4] = 0.0
    return pd.concat(
        [
            case_rows("tedsnet", TEDS_DICE, TEDS_HD),
            case_rows("unet", unet_dice, unet_hd, fields=(), wrong=(1, 4, 7)),
            case_rows("prior", np.full(10, 0.3), np.full(10, 9.0)),
            case_rows("A5", np.full(10, 0.5), np.full(10, 4.0), fields=("bulk",), jac=0.25),
        ],
        ignore_index=True,
    )


# --------------------------------------------------------------------------------------------------- Table 1
def test_table1_rows_order_labels_and_counts(metrics):
    summary = table1.summarise_table1(metrics, parameters={"tedsnet": 655984, "unet": 1000})
    assert summary["experiment"].tolist() == ["prior", "unet", "A5", "tedsnet"]
    assert summary["label"].tolist() == [
        "Prior (zero fields)",
        "U-Net (paper)",
        "A5 bulk branch only",
        "TEDS-Net",
    ]
    teds = summary.set_index("experiment").loc["tedsnet"]
    assert teds["dice_mean"] == pytest.approx(TEDS_DICE.mean())
    assert teds["dice_std"] == pytest.approx(TEDS_DICE.std(ddof=1))
    assert teds["incorrect_topology"] == 0 and teds["n_test"] == 10
    assert teds["parameters"] == 655984
    unet = summary.set_index("experiment").loc["unet"]
    assert unet["incorrect_topology"] == 3 and unet["empty_predictions"] == 1
    assert unet["hd_px_mean"] == pytest.approx(np.nanmean(np.where(np.arange(10) == 4, np.nan, UNET_HD)))
    assert unet["hd_px_n"] == 9
    assert math.isnan(unet["nonpos_jac_bulk_pct_mean"])
    a5 = summary.set_index("experiment").loc["A5"]
    assert a5["nonpos_jac_bulk_pct_mean"] == 0.25 and math.isnan(a5["nonpos_jac_ft_pct_mean"])


def test_table1_across_seeds_mean_of_means_and_seed_std():
    frames = [
        case_rows("tedsnet", np.full(10, 0.80), np.full(10, 3.0), seed=0),
        case_rows("tedsnet", np.full(10, 0.90), np.full(10, 2.0), seed=1, wrong=(0,)),
        case_rows("tedsnet", np.linspace(0.8, 0.9, 10), np.full(10, 2.5), seed=2),
    ]
    summary = table1.summarise_table1(pd.concat(frames, ignore_index=True))
    row = summary.iloc[0]
    means = np.array([0.80, 0.90, np.linspace(0.8, 0.9, 10).mean()])
    assert row["n_seeds"] == 3 and row["n_cases"] == 10
    assert row["dice_mean"] == pytest.approx(means.mean())
    assert row["dice_std"] == pytest.approx(means.std(ddof=1))
    assert row["dice_seed_std"] == pytest.approx(means.std(ddof=1))
    assert row["dice_case_std"] == pytest.approx(np.linspace(0.8, 0.9, 10).std(ddof=1) / 3)
    assert row["incorrect_topology"] == 1 and row["n_test"] == 30
    assert "3 seeds" in table1.table1_markdown(summary)


def test_table1_markdown_latex_csv_hold_every_row_and_column(metrics, tmp_path):
    summary = table1.summarise_table1(metrics)
    md = table1.table1_markdown(summary)
    tex = table1.table1_latex(summary)
    for label in summary["label"]:
        assert label in md
        assert table1._latex_escape(label) in tex
    for header, _, _ in table1.DISPLAY_COLUMNS:
        assert table1._markdown_cell(header) in md
    assert "3/10" in md and "0/10" in md
    assert "N/A" in md  # the U-Net has no field
    assert r"$\pm$" in tex and r"\toprule" in tex and "±" not in tex
    table1.write_table1(summary, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex")
    back = pd.read_csv(tmp_path / "t.csv")
    for column in (
        "dice_mean",
        "dice_std",
        "hd_px_mean",
        "hd_mm_mean",
        "nonpos_jac_bulk_pct_mean",
        "nonpos_jac_ft_pct_std",
        "incorrect_topology",
        "n_test",
        "parameters",
    ):
        assert column in back.columns
    assert (tmp_path / "t.md").read_text() == md and (tmp_path / "t.tex").read_text() == tex
    assert not list(tmp_path.glob(".*tmp*"))


def test_row_labels_of_rows_variants_and_new_methods():
    assert labels.row_label("A2") == "A2 no Gaussian"
    assert labels.row_label("tedsnet_steps4") == "TEDS-Net (integration layers 4)"
    assert labels.row_label("tedsnet_radius22.5") == "TEDS-Net (prior radius 22.5)"
    assert labels.row_label("my_method") == "my_method"


def test_format_mean_std():
    assert table1.format_mean_std(0.8612, 0.1234, 2) == "0.86 ± 0.12"
    assert table1.format_mean_std(float("nan"), 0.1) == "N/A"
    assert table1.format_mean_std(6.7e-05, 7e-04, 2) == "6.7e-05 ± 7.0e-04"
    assert table1.format_mean_std(0.0, 0.0, 2) == "0.00 ± 0.00"


def test_one_display_name_per_row_in_table1_stats_and_report(metrics, tmp_path):
    toy = case_rows("my_method", np.full(10, 0.8), np.full(10, 3.0)).assign(label="My method (toy)")
    both = pd.concat([metrics, toy], ignore_index=True)
    summary = table1.summarise_table1(both)
    assert summary.set_index("experiment").loc["my_method", "label"] == "My method (toy)"
    tests = stats.paired_tests(both)
    assert set(tests.loc[tests["other"] == "my_method", "other_label"]) == {"My method (toy)"}
    assert set(tests.loc[tests["other"] == "unet", "other_label"]) == {"U-Net (paper)"}
    text = build(both, tmp_path)
    body = text.split("## What was run")[0]  # the run section lists registry names and file paths on purpose
    assert "My method (toy)" in body and "my_method" not in body
    assert "unet" not in body.replace("U-Net", "")


def test_table1_rejects_a_table_without_metric_columns():
    with pytest.raises(ValueError, match="missing column"):
        table1.summarise_table1(pd.DataFrame({"experiment": ["x"]}))
    with pytest.raises(TypeError, match="pandas DataFrame"):
        table1.summarise_table1([1, 2])


# --------------------------------------------------------------------------------------------------- stats
def test_slice_level_t_test_matches_scipy(metrics):
    result = stats.paired_tests(metrics, others=["unet"], metric_names=["dice", "hd_px"])
    row = result[(result["metric"] == "dice") & (result["level"] == "slice")].iloc[0]
    unet_dice = UNET_DICE.copy()
    unet_dice[4] = 0.0
    expected = sps.ttest_rel(TEDS_DICE, unet_dice)
    assert row["n"] == 10
    assert row["p_value"] == pytest.approx(expected.pvalue)
    assert row["statistic"] == pytest.approx(expected.statistic)
    assert row["mean_difference"] == pytest.approx(TEDS_DICE.mean() - unet_dice.mean())
    # HD: the NaN pair (empty U-Net prediction) is dropped
    hd = result[(result["metric"] == "hd_px") & (result["level"] == "slice")].iloc[0]
    keep = np.arange(10) != 4
    assert hd["n"] == 9
    assert hd["p_value"] == pytest.approx(sps.ttest_rel(TEDS_HD[keep], UNET_HD[keep]).pvalue)


def test_patient_level_tests_use_per_patient_means(metrics):
    result = stats.paired_tests(metrics, others=["unet"], metric_names=["dice"])
    unet_dice = UNET_DICE.copy()
    unet_dice[4] = 0.0
    a = TEDS_DICE.reshape(5, 2).mean(axis=1)
    b = unet_dice.reshape(5, 2).mean(axis=1)
    t = result[(result["level"] == "patient") & (result["test"] == "paired t-test")].iloc[0]
    w = result[result["test"] == "Wilcoxon signed-rank"].iloc[0]
    assert t["n"] == 5 and w["n"] == 5
    assert t["p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert w["p_value"] == pytest.approx(sps.wilcoxon(a, b).pvalue)


def test_stats_default_others_and_rows(metrics):
    result = stats.paired_tests(metrics)
    assert list(result.columns) == list(stats.STATS_COLUMNS)
    assert result["other"].unique().tolist() == ["prior", "unet", "A5"]
    assert len(result) == 3 * 3 * 3  # others x metrics x (slice t, patient t, Wilcoxon)


def test_stats_nan_safe_edge_cases():
    assert stats.paired_test(np.array([1.0, np.nan]), np.array([2.0, 3.0]), "t")[0] == 1
    n, s, p, note = stats.paired_test(np.array([1.0, np.nan]), np.array([2.0, 3.0]), "t")
    assert math.isnan(p) and note == "fewer than 2 pairs"
    n, s, p, note = stats.paired_test(np.ones(5), np.ones(5), "wilcoxon")
    assert n == 5 and math.isnan(p) and note == "all differences are zero"
    with pytest.raises(ValueError, match="test must be 't' or 'wilcoxon'"):
        stats.paired_test(np.ones(3), np.ones(3), "z")
    empty = stats.paired_tests(case_rows("unet", np.ones(4), np.ones(4)))
    assert empty.empty and list(empty.columns) == list(stats.STATS_COLUMNS)


# --------------------------------------------------------------------------------------------------- verdict
def summary_of(**dice):
    return pd.DataFrame({"experiment": list(dice), "dice_mean": list(dice.values())})


def test_verdict_trained():
    v = verdict.training_verdict(summary_of(prior=0.30, unet=0.80, unet_smp=0.75, tedsnet=0.85, A1=0.6))
    assert v.status == "trained" and not v.under_trained and v.topology_conclusion_allowed
    assert v.reasons == ()
    assert set(v.passing()) == {"unet", "unet_smp", "tedsnet"}  # A1 flagged but not guarding the run
    assert v.rows.set_index("experiment").loc["A1", "guarded"] == False  # noqa: E712


def test_verdict_under_trained_below_070():
    v = verdict.training_verdict(summary_of(prior=0.30, unet=0.65, tedsnet=0.85))
    assert v.status == "under-trained" and v.under_trained and not v.topology_conclusion_allowed
    assert "U-Net (paper): mean Dice 0.650" in v.reasons[0]


def test_verdict_under_trained_below_prior_plus_margin():
    v = verdict.training_verdict(summary_of(prior=0.60, unet=0.82, tedsnet=0.75))
    assert v.under_trained
    assert v.rows.set_index("experiment").loc["tedsnet", "required"] == pytest.approx(0.80)
    assert len(v.reasons) == 1 and v.reasons[0].startswith("TEDS-Net")


def test_verdict_not_assessable_without_unet():
    v = verdict.training_verdict(summary_of(prior=0.3, tedsnet=0.9))
    assert v.status == "not assessable" and not v.topology_conclusion_allowed


# --------------------------------------------------------------------------------------------------- report
def test_paper_comparison_maps_paper_rows():
    table = pd.read_csv(PAPER)
    assert [paper.paper_experiment(m) for m in table["model"]] == [
        "unet",
        "voxelmorph",
        "A1",
        "A2",
        "A3",
        "A4",
        "A5",
        "A6",
        "tedsnet",
    ]
    summary = table1.summarise_table1(
        pd.concat(
            [case_rows("tedsnet", TEDS_DICE, TEDS_HD), case_rows("prior", np.full(10, 0.3), np.full(10, 9.0))]
        )
    )
    comparison = paper.paper_comparison(summary, table)
    rows = comparison.set_index("Model")
    assert rows.loc["TEDS-Net", "Dice (paper)"] == "0.86 ± 0.12"
    assert rows.loc["TEDS-Net", "Incorrect topology (paper)"] == "0/100"
    assert rows.loc["Prior (zero fields)", "Dice (paper)"] == "—"
    assert rows.loc["A3 no L_Grad", "Dice (ours)"] == "—"
    assert rows.loc["U-Net (paper)", "% |J_FT| <= 0 (paper)"] == "N/A"


ALL_FIGURES = {"figure4": "figure4.png", "figure3": "figure3.png", "curves": "learning_curves.png"}


def build(metrics, tmp_path, figures=ALL_FIGURES, figure4_summary=None):
    summary = table1.summarise_table1(metrics)
    return report.build_report(
        run="unit",
        summary=summary,
        stats=stats.paired_tests(metrics),
        paper=pd.read_csv(PAPER),
        verdict=verdict.training_verdict(summary),
        figures=figures,
        figure4_summary=figure4_summary,
        config={"run": "unit", "training": {"epochs": 2, "seeds": [0]}},
        data_source="phantom cohort, 10 patients, seed 0",
        seeds=[0],
        versions=provenance.package_versions(["numpy", "not-a-package-xyz"]),
        benchmarks=pd.DataFrame(
            {
                "rule": ["train", "train"],
                "job": ["tedsnet/seed0", "unet/seed0"],
                "seconds": [61.0, 3725.4],
                "max_rss_mb": [100.0, math.nan],
            }
        ),
    )


def test_report_under_trained_draws_no_topology_conclusion(metrics, tmp_path):
    # U-Net mean Dice ~0.74 but prior 0.3 -> required 0.70: passes; A5 0.5 is flagged only. Make TEDS-Net fail:
    low = metrics.copy()
    low.loc[low["experiment"] == "tedsnet", "dice"] = 0.6
    text = build(low, tmp_path)
    assert "**Training verdict: UNDER-TRAINED.**" in text
    assert "No topology conclusion is drawn" in text
    assert "incorrect topologies against" not in text


def test_report_trained_sections(metrics, tmp_path):
    text = build(metrics, tmp_path)
    assert "**Training verdict: trained.**" in text
    assert "TEDS-Net has 0/10 incorrect topologies against 3/10 for U-Net (paper)" in text
    for heading in (
        "## Table 1 (this run)",
        "## The paper's Table 1 beside ours",
        "## Paired tests",
        "## Figure 4",
        "## Figure 3",
        "## Learning curves",
        "## What was run",
        "### Configuration",
    ):
        assert heading in text
    assert "![Figure 4](figure4.png)" in text and "![Learning curves](learning_curves.png)" in text
    assert "1:02:05" in text  # 3725.4 s
    assert "not-a-package-xyz | not installed" in text
    assert "Empty predictions" in text and "U-Net (paper): 1" in text
    assert "| Slice paired t-test p (n) | Patient paired t-test p (n) | Patient Wilcoxon p (n) |" in text
    assert "(10) |" in text and "(5) |" in text
    assert "epochs: 2" in text


def test_report_says_why_a_figure_is_missing_and_sets_figure4_beside_the_paper(metrics, tmp_path):
    # part=report: no Figure 3 (it reads images), Figure 4 only when a sweep has two points run
    text = build(metrics, tmp_path, figures={"curves": "learning_curves.png"})
    assert "Not in this build: no sweep has two points run" in text
    assert "Not in this build: Figure 3 draws test images" in text
    assert paper.PAPER_FIGURE4 not in text
    sweeps = {"int_steps": {4: "A5", 8: "tedsnet"}}
    summary = figure4.figure4_summary(figure4.figure4_data(metrics, sweeps))
    text = build(metrics, tmp_path, figures={"figure4": "figure4.png"}, figure4_summary=summary)
    assert "![Figure 4](figure4.png)" in text and paper.PAPER_FIGURE4 in text
    assert "Not in this build: no sweep" not in text
    assert (
        "| integration layers | 4 |" in text
        and "int_steps" not in text.split("## Figure 4")[1].split("## Figure 3")[0]
    )


def test_file_fingerprints_and_checkpoint_section(tmp_path, metrics):
    path = tmp_path / "best.pt"
    path.write_bytes(b"abc")
    prints = provenance.file_fingerprints([("tedsnet", 0, path)])
    assert prints.iloc[0]["sha256"] == hashlib.sha256(b"abc").hexdigest()[:16]
    assert prints.iloc[0]["size_mb"] == pytest.approx(3e-6)
    summary = table1.summarise_table1(metrics)
    text = report.build_report(
        run="unit", summary=summary, stats=stats.paired_tests(metrics), paper=None,
        verdict=verdict.training_verdict(summary), figures={}, config={}, data_source="x", seeds=[0],
        versions={}, checkpoints=prints,
    )  # fmt: skip
    assert "### Checkpoints evaluated" in text and prints.iloc[0]["sha256"] in text
    assert "## The paper's Table 1 beside ours" not in text


def test_read_benchmarks(tmp_path):
    (tmp_path / "train" / "tedsnet").mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "train" / "tedsnet" / "seed0.tsv").write_text(
        header + "12.5\t0:00:12\t300.1\t1\t1\t1\t0\t0\t90\t11\n"
    )
    (tmp_path / "predict.tsv").write_text(header + "2.0\t0:00:02\t-\t-\t-\t-\t-\t-\t-\t-\n")
    (tmp_path / "broken.tsv").write_text("")
    bench = provenance.read_benchmarks(tmp_path)
    assert bench.set_index("job").loc["tedsnet/seed0", "seconds"] == 12.5
    assert bench.set_index("job").loc["tedsnet/seed0", "rule"] == "train"
    assert math.isnan(bench.set_index("rule").loc["predict", "max_rss_mb"])
    assert provenance.read_benchmarks(tmp_path / "none").empty


# --------------------------------------------------------------------------------------------------- figures
def test_figure4_data_summary_and_files(tmp_path):
    frames = [
        case_rows("tedsnet_steps2", np.full(10, 0.80), np.full(10, 3.0)),
        case_rows("tedsnet", np.full(10, 0.85), np.full(10, 2.0), wrong=(3,)),
        case_rows("tedsnet_radius20", np.full(10, 0.82), np.full(10, 2.5), jac=1.0),
    ]
    metrics = pd.concat(frames, ignore_index=True)
    sweeps = {
        "int_steps": {2: "tedsnet_steps2", 8: "tedsnet"},
        "prior_radius": {20: "tedsnet_radius20", 30: "tedsnet"},
    }
    data = figure4.figure4_data(metrics, sweeps)
    assert len(data) == 40
    summary = figure4.figure4_summary(data).set_index(["sweep", "value"])
    assert summary.loc[("int_steps", 8.0), "dice_mean"] == pytest.approx(0.85)
    assert summary.loc[("int_steps", 8.0), "incorrect_topology"] == 1
    assert summary.loc[("prior_radius", 20.0), "nonpos_jac_ft_pct_mean"] == 1.0
    fig = figure4.plot_figure4(data, tmp_path / "f4.png", tmp_path / "f4.pdf")
    assert (tmp_path / "f4.png").read_bytes()[:4] == b"\x89PNG"
    assert fig.get_suptitle().startswith("Figure 4")
    assert all(ax.get_xlabel() == "" for ax in fig.axes)  # one x label per sweep row, under the row
    assert [sub.get_supxlabel() for sub in fig.subfigs] == ["(a) integration layers", "(b) prior radius (px)"]
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    assert (tmp_path / "f4.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="names experiment 'missing'"):
        figure4.figure4_data(metrics, {"int_steps": {4: "missing"}})


def test_figure3_selection_and_plot(tmp_path, metrics):
    cases = figure3.select_figure3_cases(metrics, max_cases=2)
    second = "c1" if UNET_DICE[1] < UNET_DICE[7] else "c7"
    assert cases == ["c4", second]  # wrong U-Net topology, lowest U-Net Dice first (c4 is empty: Dice 0)
    assert figure3.select_figure3_cases(metrics[metrics["experiment"] != "unet"]) == []
    ring = ring_prior((64, 64), 20, 6).astype(np.uint8)
    images = np.stack([ring * 0.8, ring * 0.5]).astype(np.float32)
    masks = {"unet": np.stack([ring, np.zeros_like(ring)]), "tedsnet": np.stack([ring, ring])}
    betti = {"unet": [(1, 1), (0, 0)], "tedsnet": [(1, 1), (1, 1)]}
    fig = figure3.plot_figure3(
        images, np.stack([ring, ring]), masks, tmp_path / "f3.png", case_ids=cases, betti=betti
    )
    assert (tmp_path / "f3.png").stat().st_size > 1000
    axes = np.asarray(fig.axes).reshape(2, 2)  # one row per case, one column per model
    assert [ax.get_title() for ax in axes[0]] == ["U-Net (paper)", "TEDS-Net"]  # display names, never unet
    assert [ax.get_ylabel() for ax in axes[:, 0]] == cases
    assert "(0, 0)" in [t.get_text() for t in axes[1, 0].texts]
    with pytest.raises(ValueError, match="one per case"):
        figure3.plot_figure3(images, np.stack([ring, ring]), masks, tmp_path / "x.png", case_ids=["c1"])
    figure3.plot_figure3(np.zeros((0, 64, 64)), np.zeros((0, 64, 64)), {}, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").exists()


def test_learning_curves(tmp_path):
    paths = {}
    for name, seed in (("tedsnet", 0), ("unet", 0)):
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"epoch": [1, 2, 3], "step": [10, 20, 30], "val_dice": [0.2, 0.5, 0.7]}).to_csv(
            path, index=False
        )
        paths[(name, seed)] = path
    prior = tmp_path / "prior.csv"
    pd.DataFrame({"epoch": [0], "step": [0], "images_seen": [0], "val_dice": [0.3]}).to_csv(
        prior, index=False
    )
    paths[("prior", 0)] = prior
    histories = curves.read_histories(paths, batch_sizes={"tedsnet": 5})
    assert histories.loc[histories["experiment"] == "prior", "images_seen"].tolist() == [0.0]
    assert histories.loc[histories["experiment"] == "tedsnet", "images_seen"].tolist() == [50.0, 100.0, 150.0]
    assert histories.loc[histories["experiment"] == "unet", "images_seen"].isna().all()
    curves.plot_learning_curves(histories, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").exists()
    with pytest.raises(FileNotFoundError, match="no history file"):
        curves.read_histories({("x", 0): tmp_path / "nope.csv"})


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_text_atomic(target, "done")
    assert target.read_text() == "done" and len(list(tmp_path.iterdir())) == 1


def test_report_states_training_time_over_every_session():
    """A model rebuilt by a resume benchmarks a few seconds; the report gives the history's total."""
    from tedsnet.reporting.report import _training_time_section

    curves = pd.DataFrame(
        {
            "experiment": ["prior", "tedsnet", "tedsnet", "tedsnet"],
            "seed": [0, 0, 0, 0],
            "epoch": [0, 1, 2, 3],
            "seconds": [0.0, 100.0, 200.0, 3725.0],
        }
    )
    text = "\n".join(_training_time_section(curves, {"tedsnet": "TEDS-Net"}))
    assert "| TEDS-Net | 0 | 3 | 1:02:05 |" in text
    assert "Prior" not in text  # an untrained row has no training time
    assert _training_time_section(None, {}) == []
