"""Paired tests of TEDS-Net against every other experiment (the paper's paired t-test, and patient-level tests).

For each other experiment and each metric (Dice, HD in px and mm by default):

- slice level: paired t-test over the test slices (``scipy.stats.ttest_rel``), as in the paper;
- patient level: the per-patient means (the test slices come from few patients, so slices are not independent),
  paired t-test and Wilcoxon signed-rank test (``scipy.stats.wilcoxon``).

Pairs are matched on ``case_id`` (patient level: ``patient_id``). With several seeds, each case's value is first
averaged over the seeds of its experiment. A pair with a NaN on either side (an empty mask has no HD) is dropped and
``n`` counts the pairs used; fewer than two pairs, or differences that are all zero, give p = NaN with a ``note``.
Two-sided tests; ``mean_difference`` = reference - other (Dice: positive favours the reference; HD: negative does).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from tedsnet.reporting.labels import TABLE1_LABELS, experiment_labels

__all__ = ["STATS_COLUMNS", "paired_test", "paired_tests"]

STATS_COLUMNS: tuple[str, ...] = (
    "reference",
    "other",
    "other_label",
    "metric",
    "level",
    "test",
    "n",
    "mean_reference",
    "mean_other",
    "mean_difference",
    "statistic",
    "p_value",
    "note",
)


def paired_test(a: np.ndarray, b: np.ndarray, test: str) -> tuple[int, float, float, str]:
    """One two-sided paired test, NaN-safe.

    Parameters
    ----------
    a, b : array (n,)
        Paired values; pairs with a NaN on either side are dropped.
    test : {"t", "wilcoxon"}
        Paired t-test or Wilcoxon signed-rank test.

    Returns
    -------
    (n, statistic, p_value, note)
        ``n`` pairs used; statistic and p are NaN (with a note) when fewer than 2 pairs remain or all differences
        are zero.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired_test: a and b must be 1-D of equal length, got shapes {a.shape} and {b.shape}."
        )
    if test not in ("t", "wilcoxon"):
        raise ValueError(f"paired_test: test must be 't' or 'wilcoxon', got {test!r}.")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n < 2:
        return n, math.nan, math.nan, "fewer than 2 pairs"
    diff = a - b
    if np.all(diff == 0):
        return n, math.nan, math.nan, "all differences are zero"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "t":
            result = sps.ttest_rel(a, b)
        else:
            result = sps.wilcoxon(a, b)
    return n, float(result.statistic), float(result.pvalue), ""


def _case_values(metrics: pd.DataFrame, experiment: str, metric: str) -> pd.DataFrame:
    sub = metrics[metrics["experiment"].astype(str) == experiment]
    return sub.groupby("case_id", sort=True).agg(patient_id=("patient_id", "first"), value=(metric, "mean"))


def paired_tests(
    metrics: pd.DataFrame,
    reference: str = "tedsnet",
    others: Sequence[str] | None = None,
    metric_names: Sequence[str] = ("dice", "hd_px", "hd_mm"),
) -> pd.DataFrame:
    """Paired tests of ``reference`` against each other experiment.

    Parameters
    ----------
    metrics : DataFrame
        Per-case rows of every experiment: experiment, case_id, patient_id, the metric columns (optionally seed,
        and label: the display name of a method outside Table 1).
    reference : str
        The experiment tested against the others (TEDS-Net).
    others : sequence of str, optional
        Experiments to compare; default every other experiment present, Table 1 order first.
    metric_names : sequence of str
        Metric columns to test.

    Returns
    -------
    DataFrame
        :data:`STATS_COLUMNS`; per other experiment and metric three rows: (slice, paired t-test),
        (patient, paired t-test), (patient, Wilcoxon). Empty (with the columns) when ``reference`` is absent.
    """
    missing = [c for c in ("experiment", "case_id", "patient_id", *metric_names) if c not in metrics.columns]
    if missing:
        raise ValueError(
            f"paired_tests: metrics lacks column(s) {missing} (columns: {list(metrics.columns)})."
        )
    present = list(dict.fromkeys(metrics["experiment"].astype(str)))
    if reference not in present:
        return pd.DataFrame(columns=list(STATS_COLUMNS))
    if others is None:
        others = [e for e in TABLE1_LABELS if e in present and e != reference]
        others += [e for e in present if e not in others and e != reference]
    labels = experiment_labels(metrics)
    rows = []
    for other in others:
        for metric in metric_names:
            ref = _case_values(metrics, reference, metric)
            oth = _case_values(metrics, other, metric)
            pairs = ref.merge(
                oth, how="inner", left_index=True, right_index=True, suffixes=("_ref", "_other")
            )
            patients = pairs.groupby("patient_id_ref")[["value_ref", "value_other"]].mean()
            for level, table, test, name in (
                ("slice", pairs, "t", "paired t-test"),
                ("patient", patients, "t", "paired t-test"),
                ("patient", patients, "wilcoxon", "Wilcoxon signed-rank"),
            ):
                a = table["value_ref"].to_numpy(dtype=float)
                b = table["value_other"].to_numpy(dtype=float)
                n, statistic, p, note = paired_test(a, b, test)
                keep = np.isfinite(a) & np.isfinite(b)
                mean_a = float(a[keep].mean()) if keep.any() else math.nan
                mean_b = float(b[keep].mean()) if keep.any() else math.nan
                rows.append(
                    {
                        "reference": reference,
                        "other": other,
                        "other_label": labels.get(other, other),
                        "metric": metric,
                        "level": level,
                        "test": name,
                        "n": n,
                        "mean_reference": mean_a,
                        "mean_other": mean_b,
                        "mean_difference": mean_a - mean_b,
                        "statistic": statistic,
                        "p_value": p,
                        "note": note,
                    }
                )
    return pd.DataFrame(rows, columns=list(STATS_COLUMNS))
