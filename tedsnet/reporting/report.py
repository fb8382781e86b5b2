"""The Markdown builder of ``report.md``: one function per section, joined by :func:`build_report`.

Sections, in order: verdict (the under-training guard, :mod:`tedsnet.reporting.verdict`) and topology; Table 1; the
paper's Table 1 beside ours and the reproduction questions (:mod:`tedsnet.reporting.paper`,
:mod:`tedsnet.reporting.answers`); paired tests; Figure 4; Figure 3; learning curves; what was run (data, package
versions, wall time per job, checkpoints, configuration; see :mod:`tedsnet.reporting.provenance`). Every model is
named by its display name (:mod:`tedsnet.reporting.labels`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tedsnet.reporting.answers import answer_questions
from tedsnet.reporting.labels import METRIC_NAMES, row_label, summary_labels, sweep_label
from tedsnet.reporting.paper import PAPER_FIGURE4, paper_comparison
from tedsnet.reporting.table1 import format_mean_std, markdown_table, table1_markdown
from tedsnet.reporting.verdict import Verdict

__all__ = ["build_report"]

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


def _topology_conclusions(rows: Mapping[str, pd.Series], stats: pd.DataFrame, passing: set[str]) -> list[str]:
    """TEDS-Net's topology errors against each U-Net past the guard, with the slice-level Dice test."""
    teds = rows.get("tedsnet")
    conclusions = []
    for unet in _UNETS:
        if teds is None or unet not in rows or unet not in passing:
            continue
        u = rows[unet]
        sig = stats[(stats["other"] == unet) & (stats["level"] == "slice") & (stats["metric"] == "dice")]
        p = _p(float(sig["p_value"].iloc[0])) if len(sig) else "—"
        conclusions.append(
            f"TEDS-Net has {int(teds['incorrect_topology'])}/{int(teds['n_test'])} incorrect topologies against "
            f"{int(u['incorrect_topology'])}/{int(u['n_test'])} for {u['label']}, at mean Dice "
            f"{teds['dice_mean']:.3f} vs {u['dice_mean']:.3f} (slice-level paired t-test p = {p})."
        )
    return conclusions


def _topology_section(summary: pd.DataFrame, stats: pd.DataFrame, verdict: Verdict) -> list[str]:
    """Incorrect topologies per row, and the conclusion the verdict allows (none unless the run is trained)."""
    out = ["### Topology\n"]
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
    conclusions = _topology_conclusions(rows, stats, passing)
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
    """Training time of each model over all its sessions (a resumed job's benchmark counts only the resume)."""
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
        }
    )
    return [
        "### Training time per model (history.csv, every session summed)\n",
        markdown_table(table),
        "A train job that only resumed a finished model benchmarks the resume; this table sums every session.\n",
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
        learning_curves.csv; with ``paper``, the reproduction questions weigh the training budget.

    Returns
    -------
    str
        The report, GitHub Markdown.
    """
    labels = summary_labels(summary)
    out = [
        f"# TEDS-Net reproduction: run `{run}`\n",
        *_verdict_section(verdict),
        *_topology_section(summary, stats, verdict),
        *_table1_section(summary),
        *_paper_section(summary, paper, curves, verdict),
        *_stats_section(stats, labels),
        *_figure4_section(figures, figure4_summary),
        *_figure3_section(figures),
        *_curves_section(figures),
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
