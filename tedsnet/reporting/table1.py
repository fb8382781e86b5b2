"""Table 1 of the paper from the per-case metrics of every experiment (paper Table 1).

Rows (in this order, those present): prior (zero fields), U-Net (paper), U-Net (smp), VoxelMorph, A1-A6, TEDS-Net;
experiments outside this list (a new method) follow in the order met. Columns: Dice, HD (px and mm), HD95,
% non-positive Jacobian determinants of the bulk and fine-tune fields (mean and std), incorrect topology n/N,
parameters.

Spread: with one training seed, ``*_mean`` / ``*_std`` are the mean and standard deviation (ddof 1) over the test
cases, as in the paper. With several seeds, ``*_mean`` is the mean of the per-seed means and ``*_std`` the
across-seed standard deviation (ddof 1) of those means; ``*_case_std`` (mean of the per-seed case standard
deviations) and ``*_seed_std`` are always written too. Incorrect topology is counted over all seeds (n/N with
N = cases x seeds). NaN values (empty masks, absent fields) are skipped; ``*_n`` counts the values used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from tedsnet.io import write_csv_atomic, write_text_atomic
from tedsnet.reporting.labels import TABLE1_LABELS, experiment_labels

__all__ = [
    "DISPLAY_COLUMNS",
    "SUMMARY_METRICS",
    "format_mean_std",
    "format_table1",
    "markdown_table",
    "summarise_table1",
    "table1_latex",
    "table1_markdown",
    "write_table1",
]

#: Per-case metric columns summarised by mean and std.
SUMMARY_METRICS: tuple[str, ...] = (
    "dice",
    "hd_px",
    "hd_mm",
    "hd95_px",
    "hd95_mm",
    "nonpos_jac_bulk_pct",
    "nonpos_jac_ft_pct",
    "nonpos_jac_bulk_central_pct",
    "nonpos_jac_ft_central_pct",
)

#: Columns of the Markdown / LaTeX table: (header, metric or special key, decimals).
DISPLAY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("Dice", "dice", 3),
    ("HD (px)", "hd_px", 2),
    ("HD (mm)", "hd_mm", 2),
    ("% |J_bulk| <= 0", "nonpos_jac_bulk_pct", 2),
    ("% |J_FT| <= 0", "nonpos_jac_ft_pct", 2),
    ("Incorrect topology", "topology", 0),
    ("Parameters", "parameters", 0),
)

_REQUIRED = ("experiment", "case_id", "correct_topology", *SUMMARY_METRICS)


def _check_metrics(metrics: pd.DataFrame) -> None:
    if not isinstance(metrics, pd.DataFrame):
        raise TypeError(f"metrics must be a pandas DataFrame of per-case rows, got {type(metrics).__name__}.")
    missing = [c for c in _REQUIRED if c not in metrics.columns]
    if missing:
        raise ValueError(
            f"metrics: missing column(s) {missing}; expected the per-case table of "
            "tedsnet.evaluation.cases.evaluate_predictions (one row per test case and experiment)."
        )


def _ordered_experiments(experiments: Sequence[str], order: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(experiments))
    if order is None:
        order = list(TABLE1_LABELS)
    ordered = [e for e in order if e in present]
    return ordered + [e for e in present if e not in ordered]


def summarise_table1(
    metrics: pd.DataFrame,
    parameters: Mapping[str, int] | None = None,
    order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Table 1 as numbers: one row per experiment.

    Parameters
    ----------
    metrics : DataFrame
        Per-case rows of every experiment (:func:`tedsnet.evaluation.cases.evaluate_predictions`, concatenated), with
        optional columns ``seed`` (one seed when absent), ``parameters`` and ``label`` (used for experiments
        outside Table 1 and its Figure 4 variants).
    parameters : mapping, optional
        Experiment -> trainable parameter count; overrides a ``parameters`` column.
    order : sequence of str, optional
        Row order; default :data:`tedsnet.reporting.labels.TABLE1_LABELS` order, other experiments after it.

    Returns
    -------
    DataFrame
        Columns: experiment, label, n_seeds, n_cases (per seed), for each of :data:`SUMMARY_METRICS`
        ``{m}_mean, {m}_std, {m}_case_std, {m}_seed_std, {m}_n``; incorrect_topology, n_test,
        incorrect_topology_pct, empty_predictions, parameters (NaN when unknown).
    """
    _check_metrics(metrics)
    frame = metrics.copy()
    if "seed" not in frame.columns:
        frame["seed"] = 0
    labels = experiment_labels(frame)
    rows = []
    for experiment in _ordered_experiments(frame["experiment"].astype(str).tolist(), order):
        sub = frame[frame["experiment"].astype(str) == experiment]
        seeds = sorted(sub["seed"].unique().tolist())
        per_seed = sub.groupby("seed", sort=True)
        row: dict[str, object] = {
            "experiment": experiment,
            "label": labels[experiment],
            "n_seeds": len(seeds),
            "n_cases": int(per_seed.size().max()),
        }
        for m in SUMMARY_METRICS:
            values = per_seed[m]
            means = values.mean().to_numpy(dtype=float)  # NaN-skipping
            case_stds = values.std(ddof=1).to_numpy(dtype=float)
            finite_means = means[np.isfinite(means)]
            seed_std = float(np.std(finite_means, ddof=1)) if finite_means.size > 1 else math.nan
            mean = float(finite_means.mean()) if finite_means.size else math.nan
            finite_case = case_stds[np.isfinite(case_stds)]
            case_std = float(finite_case.mean()) if finite_case.size else math.nan
            row[f"{m}_mean"] = mean
            row[f"{m}_std"] = seed_std if len(seeds) > 1 else case_std
            row[f"{m}_case_std"] = case_std
            row[f"{m}_seed_std"] = seed_std
            row[f"{m}_n"] = int(sub[m].notna().sum())
        correct = sub["correct_topology"].astype(bool)
        row["incorrect_topology"] = int((~correct).sum())
        row["n_test"] = int(len(sub))
        row["incorrect_topology_pct"] = 100.0 * row["incorrect_topology"] / max(len(sub), 1)
        row["empty_predictions"] = (
            int(sub["status"].isin(["empty_prediction", "empty_both"]).sum()) if "status" in sub else 0
        )
        count = math.nan
        if parameters is not None and experiment in parameters:
            count = parameters[experiment]
        elif "parameters" in sub.columns and sub["parameters"].notna().any():
            count = sub["parameters"].dropna().iloc[0]
        row["parameters"] = float(count) if count is not None else math.nan
        rows.append(row)
    columns = ["experiment", "label", "n_seeds", "n_cases"]
    for m in SUMMARY_METRICS:
        columns += [f"{m}_mean", f"{m}_std", f"{m}_case_std", f"{m}_seed_std", f"{m}_n"]
    columns += ["incorrect_topology", "n_test", "incorrect_topology_pct", "empty_predictions", "parameters"]
    out = pd.DataFrame(rows, columns=columns)
    out["parameters"] = (
        out["parameters"].astype("Int64") if out["parameters"].notna().all() else out["parameters"]
    )
    return out


def _number(value: float, decimals: int) -> str:
    if value == 0:
        return f"{0:.{decimals}f}"
    if abs(value) < 10 ** (-decimals):
        return f"{value:.1e}"
    return f"{value:.{decimals}f}"


def format_mean_std(mean: float, std: float, decimals: int = 2) -> str:
    """``"0.86 ± 0.12"``; ``"N/A"`` for a NaN mean; the mean alone for a NaN std."""
    if mean is None or not np.isfinite(mean):
        return "N/A"
    if std is None or not np.isfinite(std):
        return _number(mean, decimals)
    return f"{_number(mean, decimals)} ± {_number(std, decimals)}"


def format_table1(summary: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as display strings: columns ``Model`` + the headers of :data:`DISPLAY_COLUMNS`."""
    rows = []
    for _, r in summary.iterrows():
        row = {"Model": r["label"]}
        for header, key, decimals in DISPLAY_COLUMNS:
            if key == "topology":
                row[header] = f"{int(r['incorrect_topology'])}/{int(r['n_test'])}"
            elif key == "parameters":
                p = r["parameters"]
                row[header] = "N/A" if pd.isna(p) else f"{int(p):,}"
            else:
                row[header] = format_mean_std(r[f"{key}_mean"], r[f"{key}_std"], decimals)
        rows.append(row)
    return pd.DataFrame(rows, columns=["Model", *(h for h, _, _ in DISPLAY_COLUMNS)])


def _markdown_cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, align_first_left: bool = True) -> str:
    """A GitHub Markdown table of a DataFrame of strings (pipes escaped)."""
    headers = [_markdown_cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append(
        "|" + "|".join([":---" if align_first_left else "---:"] + ["---:"] * (len(headers) - 1)) + "|"
    )
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_markdown_cell(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def table1_markdown(summary: pd.DataFrame) -> str:
    """Table 1 as a GitHub Markdown table, with a one-line legend of the spread."""
    seeds = int(summary["n_seeds"].max()) if len(summary) else 1
    spread = (
        f"mean ± across-seed std of the per-seed means ({seeds} seeds)"
        if seeds > 1
        else "mean ± std over the test cases"
    )
    legend = (
        f"Values: {spread}. HD = maximum symmetric Hausdorff distance. % |J| <= 0: non-positive Jacobian "
        "determinants (forward differences) of the field that samples; N/A: the model has no such field. "
        "Incorrect topology: Betti numbers of the prediction not (1, 1), n/N.\n"
    )
    return markdown_table(format_table1(summary)) + "\n" + legend


_LATEX_HEADERS = {
    "Dice": "Dice",
    "HD (px)": "HD (px)",
    "HD (mm)": "HD (mm)",
    "% |J_bulk| <= 0": r"\% $|J_{\mathrm{bulk}}| \leq 0$",
    "% |J_FT| <= 0": r"\% $|J_{\mathrm{FT}}| \leq 0$",
    "Incorrect topology": "Incorrect topology",
    "Parameters": "Parameters",
}


def _latex_escape(text: str) -> str:
    out = str(text)
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("$", r"\$"),
        ("{", r"\{"),
        ("}", r"\}"),
    ):
        out = out.replace(a, b)
    return out.replace("±", r"$\pm$")


def table1_latex(summary: pd.DataFrame) -> str:
    """Table 1 as a LaTeX ``tabular`` (booktabs rules: needs ``\\usepackage{booktabs}``)."""
    display = format_table1(summary)
    cols = "l" + "r" * (display.shape[1] - 1)
    lines = [f"\\begin{{tabular}}{{{cols}}}", r"\toprule"]
    lines.append(" & ".join(["Model", *(_LATEX_HEADERS[h] for h in display.columns[1:])]) + r" \\")
    lines.append(r"\midrule")
    for _, row in display.iterrows():
        lines.append(" & ".join(_latex_escape(v) for v in row.tolist()) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_table1(
    summary: pd.DataFrame,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike,
    tex_path: str | os.PathLike,
) -> None:
    """Write Table 1 as CSV (numbers), Markdown and LaTeX, each atomically."""
    write_csv_atomic(summary, csv_path)
    write_text_atomic(md_path, table1_markdown(summary))
    write_text_atomic(tex_path, table1_latex(summary))
