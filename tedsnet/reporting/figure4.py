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
from matplotlib.lines import Line2D

from tedsnet.io import savefig_atomic
from tedsnet.reporting.labels import SWEEP_NAMES, sweep_label

__all__ = ["figure4_data", "figure4_summary", "plot_figure4"]

#: Jacobian column -> the field's name in the legend.
_FIELD_NAMES = {"nonpos_jac_bulk_pct": "bulk", "nonpos_jac_ft_pct": "FT"}
_FIELD_COLOURS = {"bulk": "#1f77b4", "FT": "#ff7f0e"}
_LINE_COLOUR = "0.2"

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


def _panel_jacobians(ax, sub: pd.DataFrame) -> bool:
    """% non-positive Jacobians of each field against the swept value; False when no field has a value."""
    jac = sub.melt(
        id_vars=["value"],
        value_vars=[c for c in ("nonpos_jac_bulk_pct", "nonpos_jac_ft_pct") if c in sub.columns],
        var_name="field",
        value_name="pct",
    ).dropna(subset=["pct"])
    if jac.empty:
        ax.text(0.5, 0.5, "no field", ha="center", va="center", transform=ax.transAxes)
        return False
    jac["field"] = jac["field"].map(_FIELD_NAMES)
    sns.lineplot(
        data=jac,
        x="value",
        y="pct",
        hue="field",
        hue_order=list(_FIELD_NAMES.values()),
        palette=_FIELD_COLOURS,
        errorbar="sd",
        marker="o",
        ax=ax,
        legend=False,
    )
    return True


def _sweep_row(axes: np.ndarray, sub: pd.DataFrame, first_row: bool) -> bool:
    """Draw one sweep's four panels; True when its Jacobian panel has data."""
    for ax, (metric, title) in zip(axes[:2], (("dice", "Dice"), ("hd_px", "HD (px)")), strict=True):
        sns.lineplot(data=sub, x="value", y=metric, errorbar="sd", marker="o", ax=ax, color=_LINE_COLOUR)
        ax.set_title(title if first_row else "")
    has_fields = _panel_jacobians(axes[2], sub)
    axes[2].set_title("% |J| <= 0" if first_row else "")
    topo = sub.assign(wrong=~sub["correct_topology"].astype(bool)).groupby("value")["wrong"].mean().mul(100.0)
    axes[3].plot(topo.index, topo.to_numpy(), marker="o", markersize=5, color=_LINE_COLOUR)
    axes[3].set_title("incorrect topology (%)" if first_row else "")
    ticks = sorted(sub["value"].unique())
    for ax in axes:
        ax.set(xlabel="", ylabel="")
        ax.set_ylim(bottom=0)  # the mean - sd band must not suggest a negative Dice, distance or percentage
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes[0].set_ylim(0, 1)
    axes[0].set_yticks(np.linspace(0, 1, 5))
    axes[3].set_ylim(0, 105)
    axes[3].set_yticks([0, 50, 100])
    for value, hd in sub.groupby("value")["hd_px"]:
        if hd.isna().all():  # every prediction empty: no distance to draw
            axes[1].annotate(
                "no HD\n(empty)",
                (value, 0),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    return has_fields


def plot_figure4(data: pd.DataFrame, png_path: str | os.PathLike, pdf_path: str | os.PathLike) -> Figure:
    """Draw Figure 4 and save it as PNG and PDF.

    Parameters
    ----------
    data : DataFrame
        :func:`figure4_data` output.
    png_path, pdf_path : path
        Output files (written atomically).

    Returns
    -------
    Figure
        One row per sweep (its name under the row), four columns titled once: Dice, HD (px), % |J| <= 0 per field
        (one legend for the figure, only when a field has values) and the incorrect-topology rate. Lines: mean; bands:
        standard deviation over the test cases (and seeds).
    """
    sns.set_theme(style="whitegrid", context="paper")
    present = set(data["sweep"])
    sweeps = [s for s in SWEEP_NAMES if s in present] + sorted(present - set(SWEEP_NAMES))
    fig = Figure(figsize=(7.0, 0.6 + 1.9 * max(len(sweeps), 1)), layout="constrained")
    fig.suptitle("Figure 4: TEDS-Net against its integration layers and prior radius", fontsize=10)
    if not sweeps:
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no Figure 4 sweep in this run", ha="center", va="center")
        ax.set_axis_off()
    rows = fig.subfigures(len(sweeps), 1, squeeze=False)[:, 0] if sweeps else []
    any_fields = False
    for i, (row, sweep) in enumerate(zip(rows, sweeps, strict=True)):
        axes = row.subplots(1, 4)
        any_fields |= _sweep_row(axes, data[data["sweep"] == sweep], first_row=i == 0)
        row.supxlabel(f"({chr(ord('a') + i)}) {sweep_label(sweep)}", fontsize=9)
    if any_fields:
        handles = [Line2D([], [], color=c, marker="o", label=f"{f} field") for f, c in _FIELD_COLOURS.items()]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    savefig_atomic(fig, png_path, dpi=200)
    savefig_atomic(fig, pdf_path)
    return fig
