"""Figure 4 of the paper: (a) integration layers and (b) prior radius against Dice, HD and % |J| <= 0.

A sweep is a mapping from the swept value to the experiment trained with it (the TEDS-Net run at the default value
may be the Table 1 TEDS-Net experiment itself). A fourth column adds the incorrect-topology rate, which the paper
reports in the text of Figure 4.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tedsnet.io import savefig_atomic

__all__ = ["SWEEP_LABELS", "figure4_data", "figure4_summary", "plot_figure4"]

#: Sweep name -> (panel letter and x-axis label).
SWEEP_LABELS: dict[str, str] = {
    "int_steps": "(a) integration layers",
    "prior_radius": "(b) prior radius (px)",
}

_KEEP = (
    "experiment",
    "case_id",
    "dice",
    "hd_px",
    "hd_mm",
    "nonpos_jac_bulk_pct",
    "nonpos_jac_ft_pct",
    "correct_topology",
)


def figure4_data(metrics: pd.DataFrame, sweeps: Mapping[str, Mapping[float, str]]) -> pd.DataFrame:
    """Long-form per-case rows of the sweeps.

    Parameters
    ----------
    metrics : DataFrame
        Per-case rows of the experiments (:func:`tedsnet.evaluation.cases.evaluate_predictions`), optional ``seed``.
    sweeps : mapping
        ``{"int_steps" | "prior_radius" | other: {value: experiment}}``.

    Returns
    -------
    DataFrame
        Columns sweep, value, seed and the metric columns; one row per case, experiment and seed.

    Raises
    ------
    ValueError
        If an experiment of a sweep has no rows in ``metrics``.
    """
    present = set(metrics["experiment"].astype(str))
    parts = []
    for sweep, points in sweeps.items():
        for value, experiment in points.items():
            if experiment not in present:
                raise ValueError(
                    f"figure4_data: sweep {sweep!r} value {value!r} names experiment {experiment!r}, which has no "
                    f"rows in metrics (experiments: {sorted(present)})."
                )
            sub = metrics[metrics["experiment"].astype(str) == experiment]
            part = sub[[c for c in _KEEP if c in sub.columns]].copy()
            part["seed"] = sub["seed"].to_numpy() if "seed" in sub.columns else 0
            part.insert(0, "value", float(value))
            part.insert(0, "sweep", sweep)
            parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["sweep", "value", *_KEEP, "seed"])
    return pd.concat(parts, ignore_index=True)


def figure4_summary(data: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (over cases and seeds) per sweep point, and incorrect topology n/N."""
    rows = []
    for (sweep, value), sub in data.groupby(["sweep", "value"], sort=True):
        row = {"sweep": sweep, "value": value, "experiment": ",".join(sorted(set(sub["experiment"])))}
        for m in ("dice", "hd_px", "hd_mm", "nonpos_jac_bulk_pct", "nonpos_jac_ft_pct"):
            row[f"{m}_mean"] = float(sub[m].mean())
            row[f"{m}_std"] = float(sub[m].std(ddof=1)) if sub[m].notna().sum() > 1 else np.nan
        row["incorrect_topology"] = int((~sub["correct_topology"].astype(bool)).sum())
        row["n_test"] = int(len(sub))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_figure4(data: pd.DataFrame, png_path: str | os.PathLike, pdf_path: str | os.PathLike) -> Figure:
    """Draw Figure 4 (one row per sweep; Dice, HD, % |J| <= 0, incorrect topology) and save PNG and PDF.

    Error bars: standard deviation over the test cases (and seeds). Returns the figure.
    """
    sns.set_theme(style="whitegrid", context="paper")
    sweeps = [s for s in SWEEP_LABELS if s in set(data["sweep"])] + sorted(
        set(data["sweep"]) - set(SWEEP_LABELS)
    )
    n_rows = max(len(sweeps), 1)
    fig = Figure(figsize=(14, 3.2 * n_rows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_rows, 4, squeeze=False))
    if not sweeps:
        axes[0, 0].text(0.5, 0.5, "no Figure 4 sweep in this run", ha="center", va="center")
    for i, sweep in enumerate(sweeps):
        sub = data[data["sweep"] == sweep]
        xlabel = SWEEP_LABELS.get(sweep, sweep)
        for j, (metric, ylabel) in enumerate((("dice", "Dice"), ("hd_px", "HD (px)"))):
            sns.lineplot(data=sub, x="value", y=metric, errorbar="sd", marker="o", ax=axes[i, j])
            axes[i, j].set(xlabel=xlabel, ylabel=ylabel)
            axes[i, j].set_ylim(bottom=0)  # the mean - sd band must not suggest a negative Dice or distance
        jac = sub.melt(
            id_vars=["value"],
            value_vars=["nonpos_jac_bulk_pct", "nonpos_jac_ft_pct"],
            var_name="field",
            value_name="pct",
        ).dropna(subset=["pct"])
        jac["field"] = jac["field"].map({"nonpos_jac_bulk_pct": "bulk", "nonpos_jac_ft_pct": "FT"})
        ax = axes[i, 2]
        if len(jac):
            sns.lineplot(data=jac, x="value", y="pct", hue="field", errorbar="sd", marker="o", ax=ax)
        ax.set(xlabel=xlabel, ylabel="% |J| <= 0")
        ax.set_ylim(bottom=0)
        topo = (
            sub.assign(wrong=~sub["correct_topology"].astype(bool))
            .groupby("value")["wrong"]
            .mean()
            .mul(100.0)
        )
        axes[i, 3].plot(topo.index, topo.to_numpy(), marker="o")
        axes[i, 3].set(xlabel=xlabel, ylabel="incorrect topology (%)")
        axes[i, 3].set_ylim(bottom=0)
        for ax in axes[i]:
            ax.set_xticks(sorted(sub["value"].unique()))
    savefig_atomic(fig, png_path, dpi=150)
    savefig_atomic(fig, pdf_path)
    return fig
