"""The under-training verdict (DESIGN.md section 4) and the ``report.md`` builder.

Under-training guard: a run whose TEDS-Net or U-Net mean Dice is below 0.70, or below the prior row's mean Dice
+ 0.2, is labelled under-trained, and the report then draws no topology conclusion. The guard is applied to
TEDS-Net and both U-Nets (the paper's and the smp one); every other row is flagged individually, and a row below the
guard is left out of any topology comparison.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tedsnet.reporting.answers import answer_questions
from tedsnet.reporting.table1 import (
    TABLE1_LABELS,
    format_mean_std,
    markdown_table,
    row_label,
    table1_markdown,
)

__all__ = [
    "GUARD_MARGIN",
    "GUARD_MIN_DICE",
    "GUARD_ROWS",
    "PACKAGES",
    "PAPER_FIGURE4",
    "Verdict",
    "build_report",
    "file_fingerprints",
    "package_versions",
    "paper_comparison",
    "paper_experiment",
    "read_benchmarks",
    "training_verdict",
]

#: Minimum mean Dice of a guarded row.
GUARD_MIN_DICE = 0.70
#: Minimum margin of a guarded row's mean Dice over the prior row's.
GUARD_MARGIN = 0.2
#: Rows the run-level verdict rests on.
GUARD_ROWS: tuple[str, ...] = ("tedsnet", "unet", "unet_smp")
#: Distributions whose versions the report lists.
PACKAGES: tuple[str, ...] = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "segmentation-models-pytorch",
    "voxelmorph",
    "gudhi",
    "medpy",
    "nibabel",
    "matplotlib",
    "seaborn",
    "snakemake",
)


@dataclass(frozen=True)
class Verdict:
    """Result of the under-training guard.

    Attributes
    ----------
    status : str
        ``"trained"`` (every guarded row present passes), ``"under-trained"`` (one fails) or ``"not assessable"``
        (TEDS-Net or every U-Net is missing).
    reasons : tuple of str
        One sentence per failing or missing guarded row.
    rows : DataFrame
        Every row but the prior: experiment, label, dice_mean, required, passes, guarded.
    """

    status: str
    reasons: tuple[str, ...]
    rows: pd.DataFrame

    @property
    def under_trained(self) -> bool:
        """True when a guarded row is below the guard."""
        return self.status == "under-trained"

    @property
    def topology_conclusion_allowed(self) -> bool:
        """Only a trained run supports a topology conclusion."""
        return self.status == "trained"

    def passing(self) -> list[str]:
        """Experiments (non-prior) whose mean Dice passes the guard."""
        return self.rows.loc[self.rows["passes"], "experiment"].tolist()


#: What the paper reports for Figure 4 (its text; the figure itself is not transcribed), printed under ours.
PAPER_FIGURE4 = (
    "The paper (Fig. 4, text): with 12 or fewer integration layers Dice is stable, every Jacobian determinant "
    "positive and every topology kept, beyond 12 non-positive determinants emerge; Dice and HD are stable for prior "
    "radii 20-50, and at radius 10 a small percentage of FT-field determinants are non-positive, with 2/100 "
    "incorrect topologies."
)


def training_verdict(
    summary: pd.DataFrame,
    guard_rows: Sequence[str] = GUARD_ROWS,
    min_dice: float = GUARD_MIN_DICE,
    prior_margin: float = GUARD_MARGIN,
    prior: str = "prior",
) -> Verdict:
    """Apply the under-training guard to a Table 1 summary.

    Parameters
    ----------
    summary : DataFrame
        :func:`tedsnet.reporting.table1.summarise_table1` output (experiment, dice_mean).
    guard_rows : sequence of str
        Rows the run-level verdict rests on (TEDS-Net and the U-Nets).
    min_dice, prior_margin : float
        A row passes when its mean Dice >= max(min_dice, prior Dice + prior_margin) (the prior term is dropped
        when the run has no prior row).
    prior : str
        Name of the prior row.

    Returns
    -------
    Verdict
    """
    dice = dict(zip(summary["experiment"].astype(str), summary["dice_mean"].astype(float), strict=True))
    prior_dice = dice.get(prior, math.nan)
    required = min_dice if not np.isfinite(prior_dice) else max(min_dice, prior_dice + prior_margin)
    rows = []
    for experiment, value in dice.items():
        if experiment == prior:
            continue
        rows.append(
            {
                "experiment": experiment,
                "label": row_label(experiment),
                "dice_mean": value,
                "required": required,
                "passes": bool(np.isfinite(value) and value >= required),
                "guarded": experiment in guard_rows,
            }
        )
    table = pd.DataFrame(rows, columns=["experiment", "label", "dice_mean", "required", "passes", "guarded"])
    reasons = []
    rule = (
        f"mean Dice >= {required:.3f} (max of {min_dice:.2f} and prior {prior_dice:.3f} + {prior_margin:.1f})"
    )
    if not np.isfinite(prior_dice):
        rule = f"mean Dice >= {min_dice:.2f} (no prior row in this run)"
    for _, r in table[table["guarded"]].iterrows():
        if not r["passes"]:
            reasons.append(f"{r['label']}: mean Dice {r['dice_mean']:.3f} fails the guard ({rule}).")
    has_teds = "tedsnet" in dice
    has_unet = any(u in dice for u in guard_rows if u != "tedsnet")
    if reasons:
        status = "under-trained"
    elif not (has_teds and has_unet):
        status = "not assessable"
        reasons.append("TEDS-Net and at least one U-Net are needed to judge the run; one is missing.")
    else:
        status = "trained"
    return Verdict(status=status, reasons=tuple(reasons), rows=table)


def paper_experiment(model: str) -> str:
    """Experiment name of a row of the paper's Table 1 (``"A3 no L_Grad"`` -> ``"A3"``, ``"U-Net"`` -> ``"unet"``)."""
    first = model.split()[0]
    if len(first) == 2 and first[0] == "A" and first[1].isdigit():
        return first
    return {"U-Net": "unet", "VoxelMorph": "voxelmorph", "TEDS-Net": "tedsnet"}.get(model, model)


def _paper_cell(row: pd.Series | None, key: str, decimals: int) -> str:
    if row is None:
        return "—"
    return format_mean_std(row.get(f"{key}_mean", math.nan), row.get(f"{key}_std", math.nan), decimals)


def paper_comparison(summary: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 beside ours, one row per model (display strings).

    ``paper`` is the committed transcription (workflow/resources/paper_table1.csv: model, dice_mean, dice_std,
    hd_mean, hd_std, nonpos_jac_{bulk,ft}_pct_{mean,std}, incorrect_topology, n_test). The paper does not state the
    unit of HD; ours is given in px and mm. "—": no such row in the paper / in this run.
    """
    by_exp = {paper_experiment(str(m)): r for m, r in paper.set_index("model", drop=False).iterrows()}
    ours = {str(r["experiment"]): r for _, r in summary.iterrows()}
    order = [e for e in TABLE1_LABELS if e in ours or e in by_exp]
    order += [e for e in ours if e not in order]
    rows = []
    for e in order:
        p = by_exp.get(e)
        o = ours.get(e)

        def mine(key: str, decimals: int, o: Any = o) -> str:
            return "—" if o is None else format_mean_std(o[f"{key}_mean"], o[f"{key}_std"], decimals)

        rows.append(
            {
                "Model": row_label(e),
                "Dice (paper)": _paper_cell(p, "dice", 2),
                "Dice (ours)": mine("dice", 3),
                "HD (paper, unit not stated)": _paper_cell(p, "hd", 2),
                "HD px (ours)": mine("hd_px", 2),
                "HD mm (ours)": mine("hd_mm", 2),
                "% |J_bulk| <= 0 (paper)": _paper_cell(p, "nonpos_jac_bulk_pct", 2),
                "% |J_bulk| <= 0 (ours)": mine("nonpos_jac_bulk_pct", 2),
                "% |J_FT| <= 0 (paper)": _paper_cell(p, "nonpos_jac_ft_pct", 2),
                "% |J_FT| <= 0 (ours)": mine("nonpos_jac_ft_pct", 2),
                "Incorrect topology (paper)": "—"
                if p is None
                else f"{int(p['incorrect_topology'])}/{int(p['n_test'])}",
                "Incorrect topology (ours)": "—"
                if o is None
                else f"{int(o['incorrect_topology'])}/{int(o['n_test'])}",
            }
        )
    return pd.DataFrame(rows)


def read_benchmarks(root: str | os.PathLike) -> pd.DataFrame:
    """Wall time per job from Snakemake benchmark files (``root/<rule>/<job>.tsv``).

    Returns
    -------
    DataFrame
        rule, job, seconds, max_rss_mb (NaN when not measured); empty when there is no benchmark file. With
        ``--benchmark-repeats`` the mean over repeats is taken.
    """
    root = Path(root)
    rows = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        try:
            bench = pd.read_csv(path, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if "s" not in bench.columns or bench.empty:
            continue
        rel = path.relative_to(root).with_suffix("")
        rss = pd.to_numeric(bench.get("max_rss", pd.Series([math.nan])), errors="coerce")
        rows.append(
            {
                "rule": rel.parts[0],
                "job": "/".join(rel.parts[1:]) or rel.parts[0],
                "seconds": float(pd.to_numeric(bench["s"], errors="coerce").mean()),
                "max_rss_mb": float(rss.mean()),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "max_rss_mb"])


def file_fingerprints(files: Sequence[tuple[str, int, str | os.PathLike]]) -> pd.DataFrame:
    """Size and SHA-256 (first 16 hex digits) of files, e.g. the checkpoints a report rests on.

    Parameters
    ----------
    files : sequence of (experiment, seed, path)

    Returns
    -------
    DataFrame
        experiment, seed, file, size_mb, sha256.
    """
    rows = []
    for experiment, seed, path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        rows.append(
            {
                "experiment": str(experiment),
                "seed": int(seed),
                "file": str(path),
                "size_mb": os.path.getsize(path) / 1e6,
                "sha256": digest.hexdigest()[:16],
            }
        )
    return pd.DataFrame(rows, columns=["experiment", "seed", "file", "size_mb", "sha256"])


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` when absent), plus Python's."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _p(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def _stats_table(stats: pd.DataFrame) -> str:
    """One row per (other experiment, metric): mean difference and the three tests' p (n)."""
    if stats.empty:
        return "No paired tests (TEDS-Net was not run).\n"
    metric_names = {"dice": "Dice", "hd_px": "HD (px)", "hd_mm": "HD (mm)"}
    tests = {
        ("slice", "paired t-test"): "Slice paired t-test p (n)",
        ("patient", "paired t-test"): "Patient paired t-test p (n)",
        ("patient", "Wilcoxon signed-rank"): "Patient Wilcoxon p (n)",
    }
    rows = []
    for (_other, metric), group in stats.groupby(["other", "metric"], sort=False):
        first = group.iloc[0]
        diff = float(first["mean_difference"])
        row = {
            "TEDS-Net vs": first["other_label"],
            "Metric": metric_names.get(metric, metric),
            "Mean TEDS-Net - other": "—" if not np.isfinite(diff) else f"{diff:+.3f}",
        }
        for (level, test), header in tests.items():
            hit = group[(group["level"] == level) & (group["test"] == test)]
            if hit.empty:
                row[header] = "—"
                continue
            r = hit.iloc[0]
            row[header] = f"{_p(float(r['p_value']))} ({int(r['n'])})"
        rows.append(row)
    return markdown_table(pd.DataFrame(rows))


def _topology_section(summary: pd.DataFrame, stats: pd.DataFrame, verdict: Verdict) -> str:
    if verdict.status == "under-trained":
        return (
            "**No topology conclusion is drawn from this run**: it is under-trained by the guard of DESIGN.md "
            "section 4, so a model's topology errors may only reflect that it has not learnt the task yet.\n"
        )
    if verdict.status != "trained":
        return "**No topology conclusion is drawn**: " + " ".join(verdict.reasons) + "\n"
    passing = set(verdict.passing())
    rows = {str(r["experiment"]): r for _, r in summary.iterrows()}
    lines = []
    for e, r in rows.items():
        if e == "prior":
            continue
        n, total = int(r["incorrect_topology"]), int(r["n_test"])
        flag = "" if e in passing else " (below the guard: excluded from any conclusion)"
        lines.append(f"- {r['label']}: {n}/{total} incorrect topologies{flag}.")
    teds = rows.get("tedsnet")
    conclusions = []
    for unet in ("unet", "unet_smp"):
        if unet not in rows or unet not in passing or teds is None:
            continue
        u = rows[unet]
        sig = stats[(stats["other"] == unet) & (stats["level"] == "slice") & (stats["metric"] == "dice")]
        p = _p(float(sig["p_value"].iloc[0])) if len(sig) else "—"
        conclusions.append(
            f"TEDS-Net has {int(teds['incorrect_topology'])}/{int(teds['n_test'])} incorrect topologies against "
            f"{int(u['incorrect_topology'])}/{int(u['n_test'])} for {u['label']}, at mean Dice "
            f"{teds['dice_mean']:.3f} vs {u['dice_mean']:.3f} (slice-level paired t-test p = {p})."
        )
    return "\n".join(lines) + "\n\n" + (" ".join(conclusions) + "\n" if conclusions else "")


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
        The paper's Table 1 (workflow/resources/paper_table1.csv).
    verdict : Verdict
        :func:`training_verdict` of ``summary``.
    figures : mapping
        Paths relative to the report of ``"figure4"``, ``"figure3"``, ``"curves"`` (any may be missing).
    config : mapping
        The validated run configuration (dumped as YAML).
    data_source : str
        One line: phantom (size, seed) or ACDC (root).
    seeds : sequence of int
        Training seeds.
    versions : mapping
        Package -> version (:func:`package_versions`).
    benchmarks : DataFrame, optional
        :func:`read_benchmarks` output.
    figure4_summary : DataFrame, optional
        :func:`tedsnet.reporting.figure4.figure4_summary` output.
    checkpoints : DataFrame, optional
        :func:`file_fingerprints` of the evaluated checkpoints.
    curves : DataFrame, optional
        learning_curves.csv; with ``paper``, the report answers the reproduction questions
        (:func:`tedsnet.reporting.answers.answer_questions`).
    notes : sequence of str
        Extra lines for the "what was run" section.

    Returns
    -------
    str
    """
    out = [f"# TEDS-Net reproduction: run `{run}`\n"]
    label = {"trained": "trained", "under-trained": "UNDER-TRAINED", "not assessable": "not assessable"}
    out.append("## Verdict\n")
    out.append(f"**Training verdict: {label[verdict.status]}.**\n")
    if verdict.reasons:
        out.append("\n".join(f"- {r}" for r in verdict.reasons) + "\n")
    if len(verdict.rows):
        guard = verdict.rows.assign(
            **{
                "Mean Dice": verdict.rows["dice_mean"].map(lambda v: f"{v:.3f}" if np.isfinite(v) else "—"),
                "Required": verdict.rows["required"].map(lambda v: f"{v:.3f}"),
                "Passes": verdict.rows["passes"].map({True: "yes", False: "no"}),
                "Guards the run": verdict.rows["guarded"].map({True: "yes", False: "no"}),
            }
        )[["label", "Mean Dice", "Required", "Passes", "Guards the run"]].rename(columns={"label": "Model"})
        out.append(
            "Guard (DESIGN.md section 4): mean Dice >= 0.70 and >= the prior row + 0.2, for TEDS-Net and the "
            "U-Nets; other rows are flagged individually.\n"
        )
        out.append(markdown_table(guard))
    out.append("### Topology\n")
    out.append(_topology_section(summary, stats, verdict))

    out.append("## Table 1 (this run)\n")
    out.append(table1_markdown(summary))
    if len(summary) and "empty_predictions" in summary and summary["empty_predictions"].sum() > 0:
        empties = ", ".join(
            f"{r['label']}: {int(r['empty_predictions'])}"
            for _, r in summary.iterrows()
            if r["empty_predictions"] > 0
        )
        out.append(f"\nEmpty predictions (no HD; excluded from the HD means): {empties}.\n")
    if paper is not None:
        out.append("## The paper's Table 1 beside ours\n")
        out.append(
            "Paper: Wyburd et al., MICCAI 2021, Table 1 (real ACDC, 200 epochs). The paper does not state the unit "
            "of HD.\n"
        )
        out.append(markdown_table(paper_comparison(summary, paper)))
        out.append("## Reproduction questions, answered from this run\n")
        out.append(answer_questions(summary, paper, curves, verdict.passing()))
    out.append("## Paired tests (TEDS-Net vs each row)\n")
    out.append(
        "Two-sided. Slice level: paired t-test over the test slices (the paper's test). Patient level: paired "
        "t-test and Wilcoxon signed-rank on the per-patient means (the test slices come from few patients). With "
        "several seeds each case is averaged over seeds first. Pairs with a NaN (empty mask) are dropped.\n"
    )
    out.append(_stats_table(stats))
    out.append("## Figure 4\n")
    if "figure4" in figures:
        out.append(f"![Figure 4]({figures['figure4']})\n")
    if figure4_summary is not None and len(figure4_summary):
        rows = []
        for _, r in figure4_summary.iterrows():
            rows.append(
                {
                    "Sweep": r["sweep"],
                    "Value": f"{r['value']:g}",
                    "Dice": format_mean_std(r["dice_mean"], r["dice_std"], 3),
                    "HD (px)": format_mean_std(r["hd_px_mean"], r["hd_px_std"], 2),
                    "% |J_bulk| <= 0": format_mean_std(
                        r["nonpos_jac_bulk_pct_mean"], r["nonpos_jac_bulk_pct_std"]
                    ),
                    "% |J_FT| <= 0": format_mean_std(r["nonpos_jac_ft_pct_mean"], r["nonpos_jac_ft_pct_std"]),
                    "Incorrect topology": f"{int(r['incorrect_topology'])}/{int(r['n_test'])}",
                }
            )
        out.append(markdown_table(pd.DataFrame(rows)))
        out.append(f"{PAPER_FIGURE4}\n")
    elif "figure4" not in figures:
        out.append("Not in this build: no sweep has two points run (the config's `figure4` and its parts).\n")
    out.append("## Figure 3: test cases where a U-Net's topology is wrong\n")
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
    out.append("## Learning curves\n")
    if "curves" in figures:
        out.append(f"![Learning curves]({figures['curves']})\n")

    out.append("## What was run\n")
    out.append(f"- Data: {data_source}")
    out.append(f"- Seeds: {', '.join(str(s) for s in seeds)}")
    out.append(f"- Experiments: {', '.join(str(e) for e in summary['experiment'])}")
    for note in notes:
        out.append(f"- {note}")
    out.append("")
    out.append("### Package versions\n")
    out.append(markdown_table(pd.DataFrame({"Package": list(versions), "Version": list(versions.values())})))
    out.append("### Wall time per job (Snakemake benchmark files)\n")
    if benchmarks is not None and len(benchmarks):
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
        out.append(markdown_table(table))
        per_rule = bench.groupby("rule")["seconds"].sum()
        out.append(
            "\nPer rule (sum over jobs): "
            + ", ".join(f"{rule} {_duration(s)}" for rule, s in per_rule.items())
            + f"; all benchmarked jobs {_duration(float(bench['seconds'].sum()))} "
            "(a sum: jobs may have run in parallel).\n"
        )
    else:
        out.append("No benchmark files.\n")
    if checkpoints is not None and len(checkpoints):
        out.append("### Checkpoints evaluated\n")
        out.append(
            markdown_table(
                pd.DataFrame(
                    {
                        "Model": checkpoints["experiment"].map(row_label),
                        "Seed": checkpoints["seed"].astype(str),
                        "File": checkpoints["file"].map(lambda f: f"`{f}`"),
                        "MB": checkpoints["size_mb"].map(lambda v: f"{v:.1f}"),
                        "SHA-256 (16)": checkpoints["sha256"].map(lambda h: f"`{h}`"),
                    }
                )
            )
        )
    out.append("### Configuration\n")
    out.append("```yaml\n" + yaml.safe_dump(_plain(config), sort_keys=False) + "```\n")
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
