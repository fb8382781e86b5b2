"""The Markdown builder of ``report.md``: one function per section, joined by :func:`build_report`.

Sections, in order: verdict (the under-training guard, :mod:`tedsnet.reporting.verdict`) and topology; Table 1; the
paper's Table 1 beside ours and the reproduction questions (:mod:`tedsnet.reporting.paper`,
:mod:`tedsnet.reporting.answers`); the MedIA 2024 follow-up beside ours; the topology-aware baselines; seeds and
patient-bootstrap intervals; topology beyond Betti numbers; paired tests; Figure 4; Figure 3; learning curves; the
slice ledger; further evaluation sets (the whole test split, the official ACDC testing set); what was run (data,
package versions, wall time per job, training time and minutes per epoch, checkpoints, configuration; see
:mod:`tedsnet.reporting.provenance`). Every model is named by its display name (:mod:`tedsnet.reporting.labels`).
A section whose input is missing says so in a sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import yaml

from tedsnet.data.evaluation_sets import ALL_SLICES_SETS, EVALUATION_SETS, TESTING
from tedsnet.experiments import Experiment, get_experiment
from tedsnet.reporting.answers import (
    BUDGET_VARIANTS,
    TOPOLOGY_BASELINES,
    answer_budget12,
    answer_postprocess,
    answer_questions,
    answer_topology_across_seeds,
    answer_topology_baselines,
    patient_test_text,
)
from tedsnet.reporting.curves import minutes_per_epoch
from tedsnet.reporting.intervals import PAIRED_COLUMNS, PHASES, SEED_MEAN
from tedsnet.reporting.labels import METRIC_NAMES, row_label, summary_labels, sweep_label
from tedsnet.reporting.paper import MEDIA2024_CITATION, PAPER_FIGURE4, media2024_comparison, paper_comparison
from tedsnet.reporting.table1 import WRONG_TOPOLOGY_PREFIX, format_mean_std, markdown_table, table1_markdown
from tedsnet.reporting.verdict import Verdict

__all__ = ["CONNECTIVITY", "SetTables", "build_report", "patient_tests_from_stats"]

#: Headline of each verdict status.
_STATUS_HEADLINES = {
    "trained": "trained",
    "under-trained": "UNDER-TRAINED",
    "not assessable": "not assessable",
}

#: (level, test) of a paired test -> its column in the report's table.
_TEST_COLUMNS = {
    ("slice", "paired t-test"): "Slice paired t-test p (n)",
    ("patient", "paired t-test"): "Patient paired t-test p (n)",
    ("patient", "Wilcoxon signed-rank"): "Patient Wilcoxon p (n)",
}

#: The U-Nets TEDS-Net's topology is set against.
_UNETS = ("unet", "unet_smp")

#: The connectivity every Betti number of the suite is computed with (tedsnet.evaluation.metrics.betti_numbers).
CONNECTIVITY = "4-connected foreground, 8-connected background"

#: Metric of the interval table -> (header, decimals, scale): the incorrect-topology rate is shown in %.
_INTERVAL_COLUMNS: dict[str, tuple[str, int, float]] = {
    "dice": ("Dice", 3, 1.0),
    "hd_mm": ("HD (mm)", 2, 1.0),
    "hd95_mm": ("HD95 (mm)", 2, 1.0),
    "assd_mm": ("ASSD (mm)", 2, 1.0),
    "incorrect_topology": ("Incorrect topology (%)", 1, 100.0),
}


#: Metrics of the patient-level test table of the topology-aware baselines.
_BASELINE_TEST_METRICS = ("dice", "hd_mm", "hd95_mm", "assd_mm")


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _p(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def _verdict_section(verdict: Verdict) -> list[str]:
    """The run's training verdict, its reasons and the guard row by row."""
    out = ["## Verdict\n", f"**Training verdict: {_STATUS_HEADLINES[verdict.status]}.**\n"]
    if verdict.reasons:
        out.append("\n".join(f"- {r}" for r in verdict.reasons) + "\n")
    if len(verdict.rows):
        rows = verdict.rows
        guard = pd.DataFrame(
            {
                "Model": rows["label"],
                "Mean Dice": rows["dice_mean"].map(lambda v: f"{v:.3f}" if np.isfinite(v) else "—"),
                "Required": rows["required"].map(lambda v: f"{v:.3f}"),
                "Passes": rows["passes"].map({True: "yes", False: "no"}),
                "Guards the run": rows["guarded"].map({True: "yes", False: "no"}),
            }
        )
        out.append(
            f"Under-training guard: mean Dice >= {verdict.min_dice:.2f} and >= the prior row + "
            f"{verdict.prior_margin:g}, for TEDS-Net and the U-Nets; other rows are flagged individually.\n"
        )
        out.append(markdown_table(guard))
    return out


def _dice_test(stats: pd.DataFrame, tests: pd.DataFrame | None, unet: str) -> str:
    """The Dice test of TEDS-Net against a U-Net: patient level when there is one, else the slice-level t-test."""
    patient = patient_test_text(tests, unet, "tedsnet", "dice")
    if patient != "no patient-level test":
        return patient
    sig = stats[(stats["other"] == unet) & (stats["level"] == "slice") & (stats["metric"] == "dice")]
    return f"slice-level paired t-test p = {_p(float(sig['p_value'].iloc[0])) if len(sig) else '—'}"


def _topology_conclusions(
    rows: Mapping[str, pd.Series], stats: pd.DataFrame, passing: set[str], tests: pd.DataFrame | None
) -> list[str]:
    """TEDS-Net's topology errors against each U-Net past the guard, with the Dice test (patient level first)."""
    teds = rows.get("tedsnet")
    conclusions = []
    for unet in _UNETS:
        if teds is None or unet not in rows or unet not in passing:
            continue
        u = rows[unet]
        conclusions.append(
            f"TEDS-Net has {int(teds['incorrect_topology'])}/{int(teds['n_test'])} incorrect topologies against "
            f"{int(u['incorrect_topology'])}/{int(u['n_test'])} for {u['label']}, at mean Dice "
            f"{teds['dice_mean']:.3f} vs {u['dice_mean']:.3f} ({_dice_test(stats, tests, unet)})."
        )
    return conclusions


def _topology_section(
    summary: pd.DataFrame, stats: pd.DataFrame, verdict: Verdict, tests: pd.DataFrame | None = None
) -> list[str]:
    """Incorrect topologies per row, and the conclusion the verdict allows (none unless the run is trained)."""
    out = [f"### Topology ({CONNECTIVITY})\n"]
    if verdict.status == "under-trained":
        return [
            *out,
            "**No topology conclusion is drawn from this run**: it is under-trained by the guard above, so a "
            "model's topology errors may only reflect that it has not learnt the task yet.\n",
        ]
    if verdict.status != "trained":
        return [*out, "**No topology conclusion is drawn**: " + " ".join(verdict.reasons) + "\n"]
    passing = set(verdict.passing())
    rows = {str(r["experiment"]): r for _, r in summary.iterrows()}
    lines = []
    for e, r in rows.items():
        if e == "prior":
            continue
        flag = "" if e in passing else " (below the guard: excluded from any conclusion)"
        lines.append(
            f"- {r['label']}: {int(r['incorrect_topology'])}/{int(r['n_test'])} incorrect topologies{flag}."
        )
    conclusions = _topology_conclusions(rows, stats, passing, tests)
    return [*out, "\n".join(lines) + "\n\n" + (" ".join(conclusions) + "\n" if conclusions else "")]


def _table1_section(summary: pd.DataFrame) -> list[str]:
    """This run's Table 1 and the rows with empty predictions."""
    out = ["## Table 1 (this run)\n", table1_markdown(summary)]
    if len(summary) and "empty_predictions" in summary and summary["empty_predictions"].sum() > 0:
        empties = ", ".join(
            f"{r['label']}: {int(r['empty_predictions'])}"
            for _, r in summary.iterrows()
            if r["empty_predictions"] > 0
        )
        out.append(f"\nEmpty predictions (no HD; excluded from the HD means): {empties}.\n")
    return out


def _paper_section(
    summary: pd.DataFrame, paper: pd.DataFrame | None, curves: pd.DataFrame | None, verdict: Verdict
) -> list[str]:
    """The paper's Table 1 beside ours and the reproduction questions (nothing without the paper's table)."""
    if paper is None:
        return []
    return [
        "## The paper's Table 1 beside ours\n",
        "Paper: Wyburd et al., MICCAI 2021, Table 1 (real ACDC, 200 epochs). The paper does not state the unit "
        "of HD.\n",
        markdown_table(paper_comparison(summary, paper)),
        "## Reproduction questions, answered from this run\n",
        answer_questions(summary, paper, curves, verdict.passing()),
    ]


def _stats_table(stats: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """One row per (other experiment, metric): mean difference and the three tests' p (n)."""
    if stats.empty:
        return "No paired tests (TEDS-Net was not run).\n"
    rows = []
    for (other, metric), group in stats.groupby(["other", "metric"], sort=False):
        first = group.iloc[0]
        diff = float(first["mean_difference"])
        row = {
            "TEDS-Net vs": labels.get(str(other)) or first["other_label"],
            "Metric": METRIC_NAMES.get(metric, metric),
            "Mean TEDS-Net - other": "—" if not np.isfinite(diff) else f"{diff:+.3f}",
        }
        for (level, test), header in _TEST_COLUMNS.items():
            hit = group[(group["level"] == level) & (group["test"] == test)]
            row[header] = (
                "—" if hit.empty else f"{_p(float(hit.iloc[0]['p_value']))} ({int(hit.iloc[0]['n'])})"
            )
        rows.append(row)
    return markdown_table(pd.DataFrame(rows))


def _stats_section(stats: pd.DataFrame, labels: Mapping[str, str]) -> list[str]:
    """Paired tests of TEDS-Net against every other row."""
    return [
        "## Paired tests (TEDS-Net vs each row)\n",
        "Two-sided. Slice level: paired t-test over the test slices (the paper's test). Patient level: paired "
        "t-test and Wilcoxon signed-rank on the per-patient means (the test slices come from few patients). With "
        "several seeds each case is averaged over seeds first. Pairs with a NaN (empty mask) are dropped.\n",
        _stats_table(stats, labels),
    ]


def _registered(experiment: str) -> Experiment | None:
    """The registry entry of a row (None for a name the registry does not resolve)."""
    try:
        return get_experiment(experiment)
    except (ValueError, KeyError):
        return None


def _untrained_note(experiment: str, labels: Mapping[str, str]) -> str | None:
    """Why a row has no training time (None when it trains)."""
    entry = _registered(experiment)
    if entry is None or entry.trains:
        return None
    if entry.init_from:
        source = labels.get(entry.init_from) or row_label(entry.init_from)
        return f"no training: post-processes the predictions of the trained {source}"
    return "no training: used as built"


def _minutes_cells(summary: pd.DataFrame, curves: pd.DataFrame | None) -> dict[str, str]:
    """Experiment -> its training minutes per epoch (mean over seeds) as a cell, or why there is none."""
    labels = summary_labels(summary)
    timed = minutes_per_epoch(curves).set_index("experiment") if curves is not None else pd.DataFrame()
    cells = {}
    for e in summary["experiment"].astype(str):
        note = _untrained_note(e, labels)
        if note is not None:
            cells[e] = note
        elif e in timed.index and np.isfinite(timed.loc[e, "minutes_per_epoch"]):
            cells[e] = f"{timed.loc[e, 'minutes_per_epoch']:.2f}"
        else:
            cells[e] = "—"
    return cells


def _media_ratio(media: pd.DataFrame, cells: Mapping[str, str]) -> str:
    """The PH-loss U-Net's minutes per epoch over the plain U-Net's, the follow-up's and ours."""
    times = media.set_index("model")["minutes_per_epoch"]
    theirs = times.get("TopoLoss U-Net (persistent homology)", np.nan) / times.get("U-Net", np.nan)
    try:
        ours = float(cells.get("unet_topo", "")) / float(cells.get("unet", ""))
    except ValueError:
        ours = np.nan
    if not np.isfinite(theirs):
        return ""
    text = (
        f"Minutes per epoch of the persistent-homology U-Net over the plain U-Net's: MedIA 2024 {theirs:.0f}x"
    )
    if np.isfinite(ours):
        return text + f"; ours {ours:.1f}x (fine-tuning epochs).\n"
    return text + (
        "; ours not run.\n" if "unet_topo" not in cells else "; ours unknown (no training history).\n"
    )


def _media_section(
    summary: pd.DataFrame, media: pd.DataFrame | None, curves: pd.DataFrame | None
) -> list[str]:
    """The MedIA 2024 follow-up's Dice, HD, % correct topology and minutes per epoch beside ours."""
    out = ["## MedIA 2024 beside ours\n"]
    if media is None:
        return [*out, "Not in this build: no table of the follow-up's numbers (media2024_table.csv).\n"]
    cells = {
        e: "no training" if c.startswith("no training") else c
        for e, c in _minutes_cells(summary, curves).items()
    }
    return [
        *out,
        f"Follow-up: {MEDIA2024_CITATION}. "
        "—: a number the follow-up does not give, or a row this run does not have. Ours: Dice mean ± std, HD the "
        "maximum symmetric Hausdorff distance, % correct topology over the test cases (Betti numbers (1, 1), "
        f"{CONNECTIVITY}), training minutes per epoch (mean over seeds; an epoch and a device of this run's "
        "own, so minutes compare as ratios only).\n",
        markdown_table(media2024_comparison(summary, media, cells, extra=TOPOLOGY_BASELINES)),
        _media_ratio(media, cells),
    ]


def patient_tests_from_stats(stats: pd.DataFrame) -> pd.DataFrame:
    """The patient-level rows of the paired tests in the layout of
    :func:`tedsnet.reporting.intervals.patient_level_paired_tests` (:data:`~tedsnet.reporting.intervals.PAIRED_COLUMNS`).

    Parameters
    ----------
    stats : DataFrame
        :func:`tedsnet.reporting.stats.paired_tests` output, e.g. a run's ``stats.csv``.

    Returns
    -------
    DataFrame
        experiment (the other row), reference, metric, n_patients, mean_diff (other - reference, per-patient
        means), p_wilcoxon, p_ttest: one row per (other, metric) that has a patient-level test.

    Examples
    --------
    >>> rows = pd.DataFrame({"reference": "tedsnet", "other": "unet", "metric": "dice", "level": "patient",
    ...     "test": ["paired t-test", "Wilcoxon signed-rank"], "n": 10, "mean_difference": -0.1,
    ...     "p_value": [0.01, 0.02]})
    >>> patient_tests_from_stats(rows)[["experiment", "p_wilcoxon", "p_ttest"]].values.tolist()
    [['unet', 0.02, 0.01]]
    """
    patient = stats[stats["level"] == "patient"] if len(stats) else stats
    rows = []
    for (reference, other, metric), group in patient.groupby(["reference", "other", "metric"], sort=False):
        p = {test: float(g["p_value"].iloc[0]) for test, g in group.groupby("test")}
        rows.append(
            {
                "experiment": other,
                "reference": reference,
                "metric": metric,
                "n_patients": int(group["n"].max()),
                "mean_diff": -float(group["mean_difference"].iloc[0]),
                "p_wilcoxon": p.get("Wilcoxon signed-rank", np.nan),
                "p_ttest": p.get("paired t-test", np.nan),
            }
        )
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


def _combined_tests(stats: pd.DataFrame, patient_tests: pd.DataFrame | None) -> pd.DataFrame:
    """Patient-level tests: the given table first, then the patient-level rows of the paired tests."""
    from_stats = patient_tests_from_stats(stats)
    if patient_tests is None or not len(patient_tests) or _lacks(patient_tests, list(from_stats.columns)):
        return from_stats
    return pd.concat([patient_tests, from_stats], ignore_index=True)


def _baseline_table(summary: pd.DataFrame, present: Sequence[str], passing: set[str]) -> str:
    """TEDS-Net, the plain U-Net and each topology-aware baseline: topology, Dice, HD (mm), guard."""
    rows = summary.set_index(summary["experiment"].astype(str))
    shown = [e for e in ("tedsnet", "unet", *present) if e in rows.index]
    table = pd.DataFrame(
        {
            "Model": [rows.loc[e, "label"] for e in shown],
            "Incorrect topology": [
                f"{int(rows.loc[e, 'incorrect_topology'])}/{int(rows.loc[e, 'n_test'])}" for e in shown
            ],
            "Dice": [format_mean_std(rows.loc[e, "dice_mean"], rows.loc[e, "dice_std"], 3) for e in shown],
            "HD (mm)": [
                format_mean_std(rows.loc[e, "hd_mm_mean"], rows.loc[e, "hd_mm_std"], 2) for e in shown
            ],
            "Past the guard": ["yes" if e in passing else "no" for e in shown],
        }
    )
    return markdown_table(table)


def _baseline_tests_table(tests: pd.DataFrame, present: Sequence[str], labels: Mapping[str, str]) -> str:
    """Patient-level tests of each topology-aware baseline against TEDS-Net and the plain U-Net."""
    rows = []
    for e in present:
        for reference in ("tedsnet", "unet"):
            for metric in _BASELINE_TEST_METRICS:
                text = patient_test_text(tests, e, reference, metric)
                if text != "no patient-level test":
                    rows.append(
                        {
                            "Model": labels.get(e, e),
                            "Against": labels.get(reference) or row_label(reference),
                            "Metric": METRIC_NAMES.get(metric, metric),
                            "Test": text,
                        }
                    )
    return markdown_table(pd.DataFrame(rows)) if rows else "No patient-level test of these rows.\n"


def _baselines_section(
    summary: pd.DataFrame,
    verdict: Verdict,
    tests: pd.DataFrame,
    postprocess: Mapping[str, Any] | None,
) -> list[str]:
    """The topology-aware baselines against TEDS-Net and the plain U-Net, and the questions they answer."""
    out = [f"## Topology-aware baselines ({CONNECTIVITY})\n"]
    labels = summary_labels(summary)
    present = [e for e in TOPOLOGY_BASELINES if e in labels]
    if not present:
        return [*out, "No topology-aware baseline in this build (none of their per-case CSVs exists).\n"]
    passing = set(verdict.passing())
    out += [
        "Incorrect topology: Betti numbers of the prediction not (1, 1), n/N.\n",
        _baseline_table(summary, present, passing),
        "Two-sided paired tests over the per-patient means (Wilcoxon signed-rank; the paired t-test where the "
        "Wilcoxon cannot be computed):\n",
        _baseline_tests_table(tests, present, labels),
    ]
    if verdict.status != "trained":
        return [*out, "**No topology conclusion is drawn**: " + " ".join(verdict.reasons) + "\n"]
    return [
        *out,
        answer_topology_baselines(summary, tests, passing),
        answer_postprocess(summary, tests, passing, dict(postprocess or {})),
    ]


def _interval_cell(row: pd.Series | None, decimals: int, scale: float) -> str:
    """``"0.889 [0.861, 0.912]"``; "—" without a finite mean."""
    if row is None or not np.isfinite(float(row["mean"])):
        return "—"
    mean, low, high = (float(row[k]) * scale for k in ("mean", "ci_low", "ci_high"))
    return f"{mean:.{decimals}f} [{low:.{decimals}f}, {high:.{decimals}f}]"


def _seed_rows(group: pd.DataFrame) -> list[tuple[str, str]]:
    """(seed value, shown name) of one experiment's rows: every seed then their mean when there are several,
    else the one row (named by its seed when known)."""
    values = set(group["seed"])
    seeds = sorted(values - {SEED_MEAN}, key=lambda s: (len(s), s))
    if len(seeds) > 1:
        mean = [(SEED_MEAN, f"mean of {len(seeds)}")] if SEED_MEAN in values else []
        return [(s, s) for s in seeds] + mean
    name = seeds[0] if seeds else SEED_MEAN
    return [(SEED_MEAN if SEED_MEAN in values else name, name)]


def _interval_row(label: str, seed: str, phase: str, cells: pd.DataFrame) -> dict[str, str]:
    """One display row of the interval table: each metric's mean and interval, and the patients."""
    by_metric = {str(r["metric"]): r for _, r in cells.iterrows()}
    row = {"Model": label, "Seed": seed, "Phase": phase}
    for metric, (header, decimals, scale) in _INTERVAL_COLUMNS.items():
        row[header] = _interval_cell(by_metric.get(metric), decimals, scale)
    row["Patients"] = str(int(cells["n_patients"].max()))
    return row


def _interval_rows(intervals: pd.DataFrame, order: Sequence[str], labels: Mapping[str, str]) -> pd.DataFrame:
    """One display row per (experiment, seed, phase) of the bootstrap intervals, rows in ``order`` first."""
    frame = intervals.assign(
        seed=intervals["seed"].astype(str), experiment=intervals["experiment"].astype(str)
    )
    experiments = [e for e in order if e in set(frame["experiment"])]
    experiments += [e for e in dict.fromkeys(frame["experiment"]) if e not in experiments]
    rows = []
    for e in experiments:
        group = frame[frame["experiment"] == e]
        for seed, shown in _seed_rows(group):
            for phase in PHASES:
                cells = group[(group["seed"] == seed) & (group["phase"] == phase)]
                if len(cells):
                    rows.append(_interval_row(labels.get(e) or row_label(e), shown, phase, cells))
    return pd.DataFrame(rows)


#: Columns the interval and seed-spread tables need.
_INTERVAL_NEEDS = ("experiment", "seed", "phase", "metric", "mean", "ci_low", "ci_high", "n_patients")
_SPREAD_NEEDS = ("experiment", "metric", "mean", "std", "min", "max")


def _lacks(frame: pd.DataFrame | None, needed: Sequence[str]) -> list[str]:
    """The needed columns a table lacks (every one when there is no table)."""
    return list(needed) if frame is None else [c for c in needed if c not in frame.columns]


def _per_seed_means(row: pd.Series) -> str:
    """``"0: 0.720, 1: 0.740"`` from the ``seed_<s>`` columns of a seed-spread row."""
    means = [(c[len("seed_") :], float(row[c])) for c in row.index if c.startswith("seed_")]
    return ", ".join(f"{s}: {v:.3f}" for s, v in means if np.isfinite(v)) or "—"


def _spread_table(spread: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Mean, std, min, max and per-seed means over the seeds of each metric of each row with several seeds."""
    seeds = dict(zip(summary["experiment"].astype(str), summary["n_seeds"].astype(int), strict=True))
    labels = summary_labels(summary)
    spread = spread[spread["experiment"].astype(str).map(lambda e: seeds.get(e, 1) > 1)]
    if not len(spread):
        return "Every row has one seed: no spread over seeds.\n"

    def number(v: float) -> str:
        return f"{float(v):.3f}" if np.isfinite(float(v)) else "—"

    table = pd.DataFrame(
        {
            "Model": spread["experiment"].astype(str).map(lambda e: labels.get(e) or row_label(e)),
            "Metric": spread["metric"].map(lambda m: METRIC_NAMES.get(m, m)),
            "Seeds": spread["experiment"].astype(str).map(lambda e: str(seeds[e])),
            **{
                name: spread[key].map(number)
                for name, key in (("Mean", "mean"), ("Std", "std"), ("Min", "min"), ("Max", "max"))
            },
            "Per-seed means": [_per_seed_means(r) for _, r in spread.iterrows()],
        }
    )
    return markdown_table(table)


def _seeds_section(
    summary: pd.DataFrame,
    intervals: pd.DataFrame | None,
    spread: pd.DataFrame | None,
    paper: pd.DataFrame | None,
    curves: pd.DataFrame | None,
) -> list[str]:
    """Per-seed and mean-over-seeds patient-bootstrap intervals, ED and ES apart; the spread over seeds; and how
    much of the Dice gap to the paper the 12-epoch budget closes."""
    out = ["## Seeds and 95 % patient-bootstrap intervals\n"]
    labels = summary_labels(summary)
    missing = _lacks(intervals, _INTERVAL_NEEDS)
    if missing:
        out.append(f"No intervals in this build (intervals.csv missing or lacking {', '.join(missing)}).\n")
    else:
        out += [
            "Mean and 95 % interval from a bootstrap over patients (a resampled patient keeps all its test "
            "slices). Per seed, and the mean over seeds; ED, ES and both phases apart. Incorrect topology: "
            f"share of cases whose Betti numbers are not (1, 1), {CONNECTIVITY}. —: the metric is not in the "
            "row's per-case CSV.\n",
            markdown_table(_interval_rows(intervals, list(summary["experiment"].astype(str)), labels)),
        ]
    out.append("### Spread over seeds\n")
    if _lacks(spread, _SPREAD_NEEDS):
        out.append("No seed spread in this build (seed_spread.csv missing or incomplete).\n")
    else:
        out.append(_spread_table(spread, summary))
    across = answer_topology_across_seeds(None if _lacks(intervals, _INTERVAL_NEEDS) else intervals)
    if across:
        out.append(across)
    epochs = (
        minutes_per_epoch(curves).set_index("experiment")["epochs"].to_dict() if curves is not None else {}
    )
    budget = answer_budget12(
        summary, paper, epochs, None if _lacks(intervals, _INTERVAL_NEEDS) else intervals
    )
    if budget:
        out.append(budget)
    elif not any(v in labels for v in BUDGET_VARIANTS.values()):
        out.append("No 12-epoch row in this build.\n")
    return out


def _kinds_cell(row: pd.Series, kinds: Sequence[str]) -> str:
    """``"missing hole 3, extra components 1"``; "none" without wrong topology; "—" when not known."""
    if not kinds or any(not np.isfinite(float(row[k])) for k in kinds):
        return "none" if int(row["incorrect_topology"]) == 0 and kinds else "—"
    counts = [(k[len(WRONG_TOPOLOGY_PREFIX) :].replace("_", " "), int(row[k])) for k in kinds]
    return ", ".join(f"{name} {n}" for name, n in counts if n) or "none"


def _mean_cell(row: pd.Series, metric: str) -> str:
    value = float(row.get(f"{metric}_mean", np.nan))
    return f"{value:.3f}" if np.isfinite(value) else "—"


def _topology_metrics_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One display row per Table 1 row: incorrect topology, the three mean errors, reference mismatch, kinds."""
    kinds = sorted(c for c in summary.columns if c.startswith(WRONG_TOPOLOGY_PREFIX))
    differs = "topology_differs_from_reference" in summary.columns
    rows = []
    for _, r in summary.iterrows():
        row = {
            "Model": r["label"],
            "Incorrect topology": f"{int(r['incorrect_topology'])}/{int(r['n_test'])}",
        }
        for m in ("betti_error", "euler_error", "betti_matching_error"):
            row[f"Mean {METRIC_NAMES[m]}"] = _mean_cell(r, m)
        mismatch = float(r["topology_differs_from_reference"]) if differs else np.nan
        row["Differs from the reference's"] = (
            f"{int(mismatch)}/{int(r['n_test'])}" if np.isfinite(mismatch) else "—"
        )
        row["Wrong topologies by kind"] = _kinds_cell(r, kinds)
        rows.append(row)
    return pd.DataFrame(rows)


def _topology_metrics_section(summary: pd.DataFrame) -> list[str]:
    """Mean Betti, Euler characteristic and Betti matching errors and the kinds of wrong topology, per row."""
    out = [f"## Topology beyond Betti numbers ({CONNECTIVITY})\n"]
    lacking = [
        str(r["label"])
        for _, r in summary.iterrows()
        if not np.isfinite(float(r.get("betti_error_mean", np.nan)))
    ]
    if len(lacking) == len(summary):
        return [
            *out,
            "Not in this build: every row was evaluated before the Betti, Euler characteristic and Betti matching "
            "errors existed (its per-case CSV lacks them); re-evaluating the rows fills this section.\n",
        ]
    out += [
        "Per-case means of the Betti error, the Euler characteristic error and the Betti matching error "
        "(tedsnet.evaluation.topology); the cases whose topology differs from the reference mask's; each wrong "
        "topology by kind (a case may have several). Every topology with the connectivity above.\n",
        markdown_table(_topology_metrics_table(summary)),
    ]
    if lacking:
        out.append(
            "—: rows evaluated before these metrics existed (their per-case CSVs lack the columns; re-evaluating "
            f"fills them): {', '.join(lacking)}.\n"
        )
    return out


def _ledger_section(ledger_text: str | None) -> list[str]:
    """The slice ledger (its own ``##`` section, :func:`tedsnet.reporting.ledger.ledger_markdown`), or why not."""
    if not ledger_text:
        return ["## Slice ledger\n", "Not in this build: no slice ledger (ledger.csv) for this run.\n"]
    return [ledger_text.rstrip("\n") + "\n"]


def _set_title(name: str) -> str:
    """``"Official ACDC testing set, every slice"`` for ``testing_all``, and so on."""
    base = "Official ACDC testing set" if name.startswith(TESTING) else "Test split"
    return base + (", every slice" if name in ALL_SLICES_SETS else ", the protocol's slices")


class SetTables(NamedTuple):
    """The tables of one further evaluation set: its Table 1 summary, its paired tests and its patient-bootstrap
    intervals (the stats rule's ``stats.csv`` and ``intervals.csv`` of the set; None when not made)."""

    summary: pd.DataFrame
    tests: pd.DataFrame | None = None
    intervals: pd.DataFrame | None = None


def _set_intervals(
    intervals: pd.DataFrame | None, summary: pd.DataFrame, labels: Mapping[str, str]
) -> list[str]:
    """A set's 95 % patient-bootstrap intervals of the mean over seeds, ED, ES and both phases; none without."""
    if _lacks(intervals, _INTERVAL_NEEDS):
        return []
    mean = intervals[intervals["seed"].astype(str) == SEED_MEAN]
    return [
        "95 % patient-bootstrap intervals (mean over seeds):\n",
        markdown_table(_interval_rows(mean, list(summary["experiment"].astype(str)), labels)),
    ]


def _sets_section(sets: Mapping[str, tuple] | None, labels: Mapping[str, str]) -> list[str]:
    """Table 1, the patient intervals and the paired tests of each further evaluation set run; what runs the
    testing set."""
    out = ["## Further evaluation sets\n"]
    sets = sets or {}
    for name in [*EVALUATION_SETS, *(n for n in sets if n not in EVALUATION_SETS)]:
        if name not in sets:
            continue
        summary, tests, intervals = SetTables(*sets[name])
        set_labels = {**labels, **summary_labels(summary)}
        out += [f"### {_set_title(name)} (`{name}`)\n", table1_markdown(summary)]
        out += _set_intervals(intervals, summary, set_labels)
        if tests is not None and "metric" in tests.columns:
            shown = tests[tests["metric"].isin(("dice", "hd_mm"))]
            out += [
                "Paired tests, Dice and HD (mm):\n",
                _stats_table(shown, set_labels),
            ]
    if not any(n.startswith(TESTING) for n in sets):
        out.append(
            "The official ACDC testing set is not in this build: its evaluation runs when the ACDC root holds "
            f"{TESTING}/.\n"
        )
    if not sets:
        out.insert(1, "No further evaluation set in this build.\n")
    return out


def _figure4_table(figure4_summary: pd.DataFrame) -> str:
    """Figure 4's points as numbers, one row per sweep value."""
    rows = [
        {
            "Sweep": sweep_label(str(r["sweep"])),
            "Value": f"{r['value']:g}",
            "Dice": format_mean_std(r["dice_mean"], r["dice_std"], 3),
            "HD (px)": format_mean_std(r["hd_px_mean"], r["hd_px_std"], 2),
            "% |J_bulk| <= 0": format_mean_std(r["nonpos_jac_bulk_pct_mean"], r["nonpos_jac_bulk_pct_std"]),
            "% |J_FT| <= 0": format_mean_std(r["nonpos_jac_ft_pct_mean"], r["nonpos_jac_ft_pct_std"]),
            "Incorrect topology": f"{int(r['incorrect_topology'])}/{int(r['n_test'])}",
        }
        for _, r in figure4_summary.iterrows()
    ]
    return markdown_table(pd.DataFrame(rows))


def _figure4_section(figures: Mapping[str, str], figure4_summary: pd.DataFrame | None) -> list[str]:
    """Figure 4, its numbers and the paper's statements about it; or why it is not in this build."""
    out = ["## Figure 4\n"]
    if "figure4" in figures:
        out.append(f"![Figure 4]({figures['figure4']})\n")
    if figure4_summary is not None and len(figure4_summary):
        out += [_figure4_table(figure4_summary), f"{PAPER_FIGURE4}\n"]
    elif "figure4" not in figures:
        out.append("Not in this build: no sweep has two points run (the config's `figure4` and its parts).\n")
    return out


def _figure3_section(figures: Mapping[str, str]) -> list[str]:
    """Figure 3 with its colour key; or why it is not in this build."""
    out = ["## Figure 3: test cases where a U-Net's topology is wrong\n"]
    if "figure3" in figures:
        out.append(
            f"![Figure 3]({figures['figure3']})\n\nDashed yellow: reference; red: U-Net (paper); orange: U-Net "
            "(smp); cyan: TEDS-Net.\n"
        )
    else:
        out.append(
            "Not in this build: Figure 3 draws test images and predictions, which `part=report` does not read (for "
            "ACDC they are never committed); a whole run draws it.\n"
        )
    return out


def _curves_section(figures: Mapping[str, str]) -> list[str]:
    """The learning curves figure, when drawn."""
    out = ["## Learning curves\n"]
    if "curves" in figures:
        out.append(f"![Learning curves]({figures['curves']})\n")
    return out


def _benchmark_section(benchmarks: pd.DataFrame | None) -> list[str]:
    """Wall time and peak memory per workflow job, and the sum per rule."""
    out = ["### Wall time per job (Snakemake benchmark files)\n"]
    if benchmarks is None or not len(benchmarks):
        return [*out, "No benchmark files.\n"]
    bench = benchmarks.sort_values(["rule", "job"])
    table = pd.DataFrame(
        {
            "Rule": bench["rule"],
            "Job": bench["job"],
            "Wall time (h:mm:ss)": bench["seconds"].map(_duration),
            "Seconds": bench["seconds"].map(lambda s: f"{s:.1f}"),
            "Max RSS (MB)": bench["max_rss_mb"].map(lambda v: f"{v:.0f}" if np.isfinite(v) else "—"),
        }
    )
    per_rule = bench.groupby("rule")["seconds"].sum()
    return [
        *out,
        markdown_table(table),
        "\nPer rule (sum over jobs): "
        + ", ".join(f"{rule} {_duration(s)}" for rule, s in per_rule.items())
        + f"; all benchmarked jobs {_duration(float(bench['seconds'].sum()))} "
        "(a sum: jobs may have run in parallel).\n",
    ]


def _training_time_section(curves: pd.DataFrame | None, labels: Mapping[str, str]) -> list[str]:
    """Training time of each model over all its sessions (a resumed job's benchmark counts only the resume), and
    its minutes per epoch."""
    if curves is None or not len(curves) or "seconds" not in curves.columns:
        return []
    last = curves.loc[curves.groupby(["experiment", "seed"], sort=False)["epoch"].idxmax()]
    last = last[last["epoch"] > 0]
    if not len(last):
        return []
    table = pd.DataFrame(
        {
            "Model": last["experiment"].map(lambda e: labels.get(e) or row_label(e)),
            "Seed": last["seed"].astype(int).astype(str),
            "Epochs": last["epoch"].astype(int).astype(str),
            "Training time (h:mm:ss)": last["seconds"].astype(float).map(_duration),
            "Minutes per epoch": (last["seconds"].astype(float) / last["epoch"].astype(float) / 60.0).map(
                lambda v: f"{v:.2f}"
            ),
        }
    )
    return [
        "### Training time per model (history.csv, every session summed)\n",
        markdown_table(table),
        "A train job that only resumed a finished model benchmarks the resume; this table sums every session.\n",
    ]


def _epoch_time_section(summary: pd.DataFrame, curves: pd.DataFrame | None) -> list[str]:
    """Training minutes per epoch of every Table 1 row, mean over its seeds; a row that does not train says so."""
    labels = summary_labels(summary)
    cells = _minutes_cells(summary, curves)
    timed = minutes_per_epoch(curves).set_index("experiment") if curves is not None else pd.DataFrame()
    rows = []
    for e in summary["experiment"].astype(str):
        entry = _registered(e)
        fine_tune = entry is not None and entry.trains and entry.init_from
        rows.append(
            {
                "Model": labels[e],
                "Seeds": str(int(timed.loc[e, "n_seeds"])) if e in timed.index else "—",
                "Epochs": f"{timed.loc[e, 'epochs']:g}" if e in timed.index else "—",
                "Minutes per epoch (mean over seeds)": cells[e]
                + (
                    f" (fine-tunes the trained {labels.get(entry.init_from, entry.init_from)})"
                    if fine_tune
                    else ""
                ),
            }
        )
    return [
        "### Training minutes per epoch, every row\n",
        markdown_table(pd.DataFrame(rows)),
        "Per seed: the history's cumulative training seconds over its epochs; then the mean over seeds. —: no "
        "training history for the row.\n",
    ]


def _checkpoint_section(checkpoints: pd.DataFrame | None, labels: Mapping[str, str]) -> list[str]:
    """Size and SHA-256 of every checkpoint evaluated (nothing when none was read)."""
    if checkpoints is None or not len(checkpoints):
        return []
    table = pd.DataFrame(
        {
            "Model": checkpoints["experiment"].map(lambda e: labels.get(e) or row_label(e)),
            "Seed": checkpoints["seed"].astype(str),
            "File": checkpoints["file"].map(lambda f: f"`{f}`"),
            "MB": checkpoints["size_mb"].map(lambda v: f"{v:.1f}"),
            "SHA-256 (16)": checkpoints["sha256"].map(lambda h: f"`{h}`"),
        }
    )
    return ["### Checkpoints evaluated\n", markdown_table(table)]


def _run_section(
    summary: pd.DataFrame,
    data_source: str,
    seeds: Sequence[int],
    notes: Sequence[str],
    versions: Mapping[str, str],
    benchmarks: pd.DataFrame | None,
    curves: pd.DataFrame | None,
    checkpoints: pd.DataFrame | None,
    config: Mapping[str, Any],
) -> list[str]:
    """What was run: data, seeds, experiments, notes, package versions, wall and training times, checkpoints,
    configuration."""
    labels = summary_labels(summary)
    return [
        "## What was run\n",
        f"- Data: {data_source}",
        f"- Seeds: {', '.join(str(s) for s in seeds)}",
        f"- Experiments (registry names): {', '.join(str(e) for e in summary['experiment'])}",
        *(f"- {note}" for note in notes),
        "",
        "### Package versions\n",
        markdown_table(pd.DataFrame({"Package": list(versions), "Version": list(versions.values())})),
        *_benchmark_section(benchmarks),
        *_training_time_section(curves, labels),
        *_epoch_time_section(summary, curves),
        *_checkpoint_section(checkpoints, labels),
        "### Configuration\n",
        "```yaml\n" + yaml.safe_dump(_plain(config), sort_keys=False) + "```\n",
    ]


def build_report(
    *,
    run: str,
    summary: pd.DataFrame,
    stats: pd.DataFrame,
    paper: pd.DataFrame | None,
    verdict: Verdict,
    figures: Mapping[str, str],
    config: Mapping[str, Any],
    data_source: str,
    seeds: Sequence[int],
    versions: Mapping[str, str],
    benchmarks: pd.DataFrame | None = None,
    figure4_summary: pd.DataFrame | None = None,
    checkpoints: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
    curves: pd.DataFrame | None = None,
    media2024: pd.DataFrame | None = None,
    intervals: pd.DataFrame | None = None,
    seed_spread: pd.DataFrame | None = None,
    patient_tests: pd.DataFrame | None = None,
    postprocess: Mapping[str, Any] | None = None,
    ledger_text: str | None = None,
    evaluation_sets: Mapping[str, tuple] | None = None,
) -> str:
    """The Markdown text of ``report.md``.

    Parameters
    ----------
    run : str
        Run name.
    summary, stats : DataFrame
        Table 1 (:func:`~tedsnet.reporting.table1.summarise_table1`) and paired tests
        (:func:`~tedsnet.reporting.stats.paired_tests`).
    paper : DataFrame or None
        The paper's Table 1 (:data:`tedsnet.reporting.paper.PAPER_TABLE1_COLUMNS`); None leaves out the comparison
        with the paper and the reproduction questions.
    verdict : Verdict
        :func:`tedsnet.reporting.verdict.training_verdict` of ``summary``.
    figures : mapping
        Paths relative to the report of ``"figure4"``, ``"figure3"``, ``"curves"`` (any may be missing: the report
        says why).
    config : mapping
        The validated run configuration (dumped as YAML).
    data_source : str
        One line: phantom (size, seed) or ACDC (root).
    seeds : sequence of int
        Training seeds.
    versions : mapping
        Package -> version (:func:`tedsnet.reporting.provenance.package_versions`).
    benchmarks : DataFrame, optional
        :func:`tedsnet.reporting.provenance.read_benchmarks` output.
    figure4_summary : DataFrame, optional
        :func:`tedsnet.reporting.figure4.figure4_summary` output.
    checkpoints : DataFrame, optional
        :func:`tedsnet.reporting.provenance.file_fingerprints` of the evaluated checkpoints.
    notes : sequence of str
        Extra lines for the "what was run" section.
    curves : DataFrame, optional
        learning_curves.csv; with ``paper``, the reproduction questions weigh the training budget; minutes per
        epoch of every row come from it.
    media2024 : DataFrame, optional
        ``media2024_table.csv`` (:data:`tedsnet.reporting.paper.MEDIA2024_COLUMNS`); None: the section says it
        is missing.
    intervals : DataFrame, optional
        Patient-bootstrap intervals: experiment, seed (str; ``"mean"`` = over seeds), phase (ED, ES, both),
        metric, mean, ci_low, ci_high, n_patients (``tedsnet.reporting.intervals.bootstrap_intervals``).
    seed_spread : DataFrame, optional
        Spread over seeds: experiment, metric, mean, std, min, max (``tedsnet.reporting.intervals.seed_spread``).
    patient_tests : DataFrame, optional
        Patient-level paired tests: experiment, reference, metric, n_patients, mean_diff, p_wilcoxon, p_ttest
        (``tedsnet.reporting.intervals.patient_level_paired_tests``, one table over every reference); the
        patient-level rows of ``stats`` fill in pairs it lacks.
    postprocess : mapping, optional
        The config's ``postprocess`` (the post-processing row's parameters), stated in the baselines section.
    ledger_text : str, optional
        The slice ledger as Markdown (``tedsnet.reporting.ledger.ledger_markdown``).
    evaluation_sets : mapping, optional
        Set name (:data:`tedsnet.data.evaluation_sets.EVALUATION_SETS`) -> :class:`SetTables` (or a tuple of its
        Table 1 summary, paired tests and intervals; the last two optional).

    Returns
    -------
    str
        The report, GitHub Markdown.
    """
    labels = summary_labels(summary)
    tests = _combined_tests(stats, patient_tests)
    out = [
        f"# TEDS-Net reproduction: run `{run}`\n",
        *_verdict_section(verdict),
        *_topology_section(summary, stats, verdict, tests),
        *_table1_section(summary),
        *_paper_section(summary, paper, curves, verdict),
        *_media_section(summary, media2024, curves),
        *_baselines_section(summary, verdict, tests, postprocess),
        *_seeds_section(summary, intervals, seed_spread, paper, curves),
        *_topology_metrics_section(summary),
        *_stats_section(stats, labels),
        *_figure4_section(figures, figure4_summary),
        *_figure3_section(figures),
        *_curves_section(figures),
        *_ledger_section(ledger_text),
        *_sets_section(evaluation_sets, labels),
        *_run_section(summary, data_source, seeds, notes, versions, benchmarks, curves, checkpoints, config),
    ]
    return "\n".join(out)


def _plain(value: Any) -> Any:
    """Config objects (Snakemake's Namedlist/dict subclasses) as plain YAML-dumpable values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    return value
