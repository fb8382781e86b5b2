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

Newer evaluations add per-case columns (:data:`OPTIONAL_METRICS`: ASSD and the topology errors beyond the Betti
numbers, the kind of each wrong topology, whether the prediction's topology matches the reference's). The summary
gains their columns only when the per-case table has them, so a run evaluated before them keeps its Table 1 as it
was; a row whose own cases predate them gets NaN there (``*_n`` = 0), shown as "—".
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from tedsnet.evaluation.topology import TOPOLOGY_ERROR_SEPARATOR
from tedsnet.io import write_csv_atomic, write_text_atomic
from tedsnet.reporting.labels import TABLE1_LABELS, experiment_labels

__all__ = [
    "DISPLAY_COLUMNS",
    "OPTIONAL_METRICS",
    "SUMMARY_METRICS",
    "WRONG_TOPOLOGY_PREFIX",
    "topology_kind_counts",
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

#: Per-case metric columns of newer evaluations, summarised as :data:`SUMMARY_METRICS` when present.
OPTIONAL_METRICS: tuple[str, ...] = (
    "assd_px",
    "assd_mm",
    "betti_error",
    "euler_error",
    "betti_matching_error",
)

#: Prefix of the summary columns counting each kind of wrong topology (``wrong_topology_missing_hole``).
WRONG_TOPOLOGY_PREFIX = "wrong_topology_"

#: Optional columns of the Markdown / LaTeX table, shown when the summary has them: (header, metric, decimals).
OPTIONAL_DISPLAY_COLUMNS: tuple[tuple[str, str, int], ...] = (("ASSD (mm)", "assd_mm", 2),)

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


def _metric_summary(per_seed, sub: pd.DataFrame, metric: str, n_seeds: int) -> dict[str, float]:
    """Mean, std, case std, seed std and count of one metric of one experiment (see the module docstring)."""
    values = per_seed[metric]
    means = values.mean().to_numpy(dtype=float)  # NaN-skipping
    case_stds = values.std(ddof=1).to_numpy(dtype=float)
    finite_means = means[np.isfinite(means)]
    seed_std = float(np.std(finite_means, ddof=1)) if finite_means.size > 1 else math.nan
    finite_case = case_stds[np.isfinite(case_stds)]
    case_std = float(finite_case.mean()) if finite_case.size else math.nan
    return {
        f"{metric}_mean": float(finite_means.mean()) if finite_means.size else math.nan,
        f"{metric}_std": seed_std if n_seeds > 1 else case_std,
        f"{metric}_case_std": case_std,
        f"{metric}_seed_std": seed_std,
        f"{metric}_n": int(sub[metric].notna().sum()),
    }


def _as_bool(values: pd.Series) -> pd.Series:
    """Booleans as read back from a CSV (True/False, "True"/"False", 1/0), NaN kept."""
    words = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    return values.map(lambda v: v if pd.isna(v) else words.get(str(v).strip().lower(), math.nan))


def topology_kind_counts(metrics: pd.DataFrame) -> dict[str, int] | None:
    """Wrong topologies of one experiment by kind, from the per-case ``topology_error`` column.

    Parameters
    ----------
    metrics : DataFrame
        One experiment's per-case rows with ``correct_topology`` and optionally ``topology_error`` (kinds joined
        by :data:`~tedsnet.evaluation.topology.TOPOLOGY_ERROR_SEPARATOR`, empty for a correct topology).

    Returns
    -------
    dict or None
        ``{WRONG_TOPOLOGY_PREFIX + kind: count}`` over the kinds met, sorted, a case counted once per kind it has
        (empty: no wrong topology); None when it cannot be known: no ``topology_error`` column, or wrong cases
        none of which states its kind (a row evaluated before the column existed).

    Examples
    --------
    >>> frame = pd.DataFrame({"correct_topology": [True, False, False],
    ...                       "topology_error": ["", "missing_hole", "missing_hole+extra_components"]})
    >>> topology_kind_counts(frame)
    {'wrong_topology_extra_components': 1, 'wrong_topology_missing_hole': 2}
    """
    if "topology_error" not in metrics.columns:
        return None
    wrong = metrics[~_as_bool(metrics["correct_topology"]).fillna(True).astype(bool)]
    stated = wrong["topology_error"].dropna().astype(str).str.strip()
    stated = stated[stated != ""]
    if len(wrong) and not len(stated):
        return None
    per_case = [set(text.split(TOPOLOGY_ERROR_SEPARATOR)) - {""} for text in stated]
    kinds = sorted(set().union(*per_case))
    return {WRONG_TOPOLOGY_PREFIX + k: sum(k in case for case in per_case) for k in kinds}


def _reference_mismatch(sub: pd.DataFrame) -> float:
    """Cases whose topology differs from the reference's (NaN when the rows do not say)."""
    if "topology_matches_reference" not in sub.columns:
        return math.nan
    matches = _as_bool(sub["topology_matches_reference"]).dropna()
    return float((~matches.astype(bool)).sum()) if len(matches) else math.nan


def _parameter_count(sub: pd.DataFrame, experiment: str, parameters: Mapping[str, int] | None) -> float:
    count = math.nan
    if parameters is not None and experiment in parameters:
        count = parameters[experiment]
    elif "parameters" in sub.columns and sub["parameters"].notna().any():
        count = sub["parameters"].dropna().iloc[0]
    return float(count) if count is not None else math.nan


def _summary_row(
    sub: pd.DataFrame, experiment: str, label: str, optional: Sequence[str]
) -> dict[str, object]:
    """Table 1's numbers of one experiment (parameters apart)."""
    seeds = sorted(sub["seed"].unique().tolist())
    per_seed = sub.groupby("seed", sort=True)
    row: dict[str, object] = {
        "experiment": experiment,
        "label": label,
        "n_seeds": len(seeds),
        "n_cases": int(per_seed.size().max()),
    }
    for m in (*SUMMARY_METRICS, *optional):
        row.update(_metric_summary(per_seed, sub, m, len(seeds)))
    correct = sub["correct_topology"].astype(bool)
    row["incorrect_topology"] = int((~correct).sum())
    row["n_test"] = int(len(sub))
    row["incorrect_topology_pct"] = 100.0 * row["incorrect_topology"] / max(len(sub), 1)
    row["empty_predictions"] = (
        int(sub["status"].isin(["empty_prediction", "empty_both"]).sum()) if "status" in sub else 0
    )
    return row


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
        optional columns ``seed`` (one seed when absent), ``parameters``, ``label`` (used for experiments outside
        Table 1 and its Figure 4 variants), :data:`OPTIONAL_METRICS`, ``topology_error`` and
        ``topology_matches_reference``.
    parameters : mapping, optional
        Experiment -> trainable parameter count; overrides a ``parameters`` column.
    order : sequence of str, optional
        Row order; default :data:`tedsnet.reporting.labels.TABLE1_LABELS` order, other experiments after it.

    Returns
    -------
    DataFrame
        Columns: experiment, label, n_seeds, n_cases (per seed), for each of :data:`SUMMARY_METRICS`
        ``{m}_mean, {m}_std, {m}_case_std, {m}_seed_std, {m}_n``; incorrect_topology, n_test,
        incorrect_topology_pct, empty_predictions, parameters (NaN when unknown). Then, only when ``metrics`` has
        them: the same five columns of each present :data:`OPTIONAL_METRICS`; ``wrong_topology_<kind>`` counts
        (:func:`topology_kind_counts`); ``topology_differs_from_reference`` (count).
    """
    _check_metrics(metrics)
    frame = metrics.copy()
    if "seed" not in frame.columns:
        frame["seed"] = 0
    labels = experiment_labels(frame)
    optional = [m for m in OPTIONAL_METRICS if m in frame.columns]
    rows = []
    for experiment in _ordered_experiments(frame["experiment"].astype(str).tolist(), order):
        sub = frame[frame["experiment"].astype(str) == experiment]
        row = _summary_row(sub, experiment, labels[experiment], optional)
        row["parameters"] = _parameter_count(sub, experiment, parameters)
        kinds = topology_kind_counts(sub)
        row["_kinds_known"] = kinds is not None
        row.update(kinds or {})
        if "topology_matches_reference" in frame.columns:
            row["topology_differs_from_reference"] = _reference_mismatch(sub)
        rows.append(row)
    columns = ["experiment", "label", "n_seeds", "n_cases"]
    for m in SUMMARY_METRICS:
        columns += [f"{m}_mean", f"{m}_std", f"{m}_case_std", f"{m}_seed_std", f"{m}_n"]
    columns += ["incorrect_topology", "n_test", "incorrect_topology_pct", "empty_predictions", "parameters"]
    for m in optional:
        columns += [f"{m}_mean", f"{m}_std", f"{m}_case_std", f"{m}_seed_std", f"{m}_n"]
    kinds = sorted({k for r in rows for k in r if k.startswith(WRONG_TOPOLOGY_PREFIX)})
    for row in rows:
        # A row that states its kinds has none of the others; one that cannot say stays NaN.
        row.update({k: row.get(k, 0 if row["_kinds_known"] else math.nan) for k in kinds})
    columns += kinds + (["topology_differs_from_reference"] if "topology_matches_reference" in frame else [])
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


def _display_columns(summary: pd.DataFrame) -> list[tuple[str, str, int]]:
    """:data:`DISPLAY_COLUMNS`, with each optional column after HD (mm) when some row of ``summary`` has it."""
    columns = list(DISPLAY_COLUMNS)
    at = [key for _, key, _ in columns].index("hd_mm") + 1
    present = [
        c
        for c in OPTIONAL_DISPLAY_COLUMNS
        if f"{c[1]}_mean" in summary.columns and summary[f"{c[1]}_mean"].notna().any()
    ]
    return columns[:at] + present + columns[at:]


def format_table1(summary: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as display strings: columns ``Model`` + the headers of :data:`DISPLAY_COLUMNS` (and of
    :data:`OPTIONAL_DISPLAY_COLUMNS` some row has; "—" in a row evaluated before that metric existed)."""
    display = _display_columns(summary)
    optional = {key for _, key, _ in OPTIONAL_DISPLAY_COLUMNS}
    rows = []
    for _, r in summary.iterrows():
        row = {"Model": r["label"]}
        for header, key, decimals in display:
            if key == "topology":
                row[header] = f"{int(r['incorrect_topology'])}/{int(r['n_test'])}"
            elif key == "parameters":
                p = r["parameters"]
                row[header] = "N/A" if pd.isna(p) else f"{int(p):,}"
            elif key in optional and not np.isfinite(r[f"{key}_mean"]):
                row[header] = "—"
            else:
                row[header] = format_mean_std(r[f"{key}_mean"], r[f"{key}_std"], decimals)
        rows.append(row)
    return pd.DataFrame(rows, columns=["Model", *(h for h, _, _ in display)])


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
    "ASSD (mm)": "ASSD (mm)",
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
