"""Confidence intervals by a patient-level bootstrap, the spread over training seeds, and paired tests over patients.

The test slices come from few patients, and slices of one patient are alike, so the slices are not independent:
the bootstrap resamples patients with replacement, every case of a drawn patient coming along, and the statistic
is the mean over the resampled cases. Each interval is the percentile interval of that statistic over the
resamples.

Every function takes the per-case table (:func:`tedsnet.evaluation.cases.evaluate_predictions`, one or several
experiments and seeds concatenated) and derives ``incorrect_topology`` (1 - ``correct_topology``, a rate in [0, 1])
when asked for it. A NaN (a distance of an empty mask) is left out of its metric and counted.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tedsnet.reporting.stats import paired_test

__all__ = [
    "DEFAULT_COLUMNS",
    "INCORRECT_TOPOLOGY",
    "INTERVAL_COLUMNS",
    "PAIRED_COLUMNS",
    "PHASES",
    "SEED_MEAN",
    "bootstrap_intervals",
    "bootstrap_mean",
    "patient_level_paired_tests",
    "seed_spread",
]

#: The derived metric ``1 - correct_topology``.
INCORRECT_TOPOLOGY = "incorrect_topology"
#: Metrics given intervals unless told otherwise.
DEFAULT_COLUMNS: tuple[str, ...] = ("dice", "hd_mm", "hd95_mm", "assd_mm", INCORRECT_TOPOLOGY)
#: The phases of the rows: each cardiac phase, then both together.
PHASES: tuple[str, ...] = ("ED", "ES", "both")
#: The ``seed`` of the rows whose cases are first averaged over the seeds.
SEED_MEAN = "mean"
#: Columns of :func:`bootstrap_intervals`.
INTERVAL_COLUMNS: tuple[str, ...] = (
    "experiment",
    "seed",
    "phase",
    "metric",
    "mean",
    "ci_low",
    "ci_high",
    "n_patients",
    "n_cases",
    "n_nan",
)
#: Columns of :func:`patient_level_paired_tests`.
PAIRED_COLUMNS: tuple[str, ...] = (
    "experiment",
    "reference",
    "metric",
    "n_patients",
    "mean_diff",
    "p_wilcoxon",
    "p_ttest",
)
_BOOLEAN_WORDS = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}


def _check_table(metrics: pd.DataFrame, required: Sequence[str], caller: str) -> None:
    """Raise ValueError naming the columns of ``required`` that ``metrics`` lacks."""
    if not isinstance(metrics, pd.DataFrame):
        raise TypeError(
            f"{caller}: metrics must be a pandas DataFrame of per-case rows, got {type(metrics).__name__}."
        )
    missing = [c for c in required if c not in metrics.columns]
    if missing:
        raise ValueError(
            f"{caller}: metrics lacks column(s) {missing} (columns: {list(metrics.columns)}); expected the "
            "per-case table of tedsnet.evaluation.cases.evaluate_predictions."
        )


def _required(columns: Sequence[str]) -> list[str]:
    """The table columns that ``columns`` are computed from."""
    return [("correct_topology" if c == INCORRECT_TOPOLOGY else c) for c in columns]


def _metric_values(metrics: pd.DataFrame, column: str) -> np.ndarray:
    """Column ``column`` as float64, ``incorrect_topology`` derived from ``correct_topology`` (NaN kept)."""
    if column != INCORRECT_TOPOLOGY or column in metrics.columns:
        return pd.to_numeric(metrics[column], errors="coerce").to_numpy(dtype=float)
    correct = metrics["correct_topology"].map(
        lambda v: math.nan if pd.isna(v) else _BOOLEAN_WORDS.get(str(v).strip().lower(), math.nan)
    )
    return 1.0 - correct.to_numpy(dtype=float)


def bootstrap_mean(
    values: np.ndarray, groups: np.ndarray, n_boot: int, level: float, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile interval when the groups (patients) are resampled with replacement.

    Parameters
    ----------
    values : array (n,)
        Finite values, one per case.
    groups : array (n,) of int
        The group (patient) of every case, 0 .. G - 1; a group without cases must not occur.
    n_boot : int
        Resamples.
    level : float
        Coverage of the interval, in (0, 1).
    rng : numpy.random.Generator
        Source of the resamples.

    Returns
    -------
    (mean, low, high)
        The mean over the cases, and the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the mean over
        the cases of ``n_boot`` resamples of G groups each; all NaN without values.

    Examples
    --------
    >>> bootstrap_mean(np.array([1.0, 1.0, 3.0]), np.array([0, 0, 1]), 100, 0.9, np.random.default_rng(0))[0]
    1.6666666666666667
    """
    if values.size == 0:
        return (math.nan, math.nan, math.nan)
    sums = np.bincount(groups, weights=values)
    counts = np.bincount(groups).astype(float)
    draws = rng.integers(0, sums.size, size=(n_boot, sums.size))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(values.mean()), float(low), float(high)


def _row_rng(seed: int, *key: str) -> np.random.Generator:
    """A generator for one row, from ``seed`` and the row's identity, so no row's draws depend on another's."""
    return np.random.default_rng([int(seed), zlib.crc32("\x1f".join(key).encode())])


def _seed_order(seeds: pd.Series) -> list[str]:
    """The distinct seeds as strings, numerically ordered when they are numbers."""
    distinct = list(dict.fromkeys(seeds.astype(str)))
    numeric = pd.to_numeric(pd.Series(distinct), errors="coerce")
    if numeric.notna().all():
        return [distinct[i] for i in np.argsort(numeric.to_numpy(), kind="stable")]
    return sorted(distinct)


def _case_tables(metrics: pd.DataFrame, experiment: str, columns: Sequence[str]) -> dict[str, pd.DataFrame]:
    """``{seed: cases}`` of one experiment, and under ``"mean"`` each case averaged over its seeds (NaN skipped)."""
    rows = metrics[metrics["experiment"].astype(str) == experiment]
    seeds = rows["seed"].astype(str)
    frame = pd.DataFrame(
        {
            "case_id": rows["case_id"].astype(str).to_numpy(),
            "patient_id": rows["patient_id"].astype(str).to_numpy(),
            "phase": rows["phase"].astype(str).to_numpy(),
            "seed": seeds.to_numpy(),
            **{c: _metric_values(rows, c) for c in columns},
        }
    )
    tables = {seed: frame[frame["seed"] == seed].drop(columns="seed") for seed in _seed_order(seeds)}
    averaged = frame.groupby("case_id", sort=False).agg(
        patient_id=("patient_id", "first"), phase=("phase", "first"), **{c: (c, "mean") for c in columns}
    )
    tables[SEED_MEAN] = averaged.reset_index()
    return tables


def _interval_row(
    cases: pd.DataFrame, metric: str, n_boot: int, level: float, rng: np.random.Generator
) -> dict[str, float]:
    """mean, ci_low, ci_high, n_patients, n_cases, n_nan of one metric over ``cases``."""
    values = cases[metric].to_numpy(dtype=float)
    finite = np.isfinite(values)
    patients, groups = np.unique(cases["patient_id"].to_numpy()[finite], return_inverse=True)
    mean, low, high = bootstrap_mean(values[finite], groups.astype(np.intp), n_boot, level, rng)
    return {
        "mean": mean,
        "ci_low": low,
        "ci_high": high,
        "n_patients": int(patients.size),
        "n_cases": int(finite.sum()),
        "n_nan": int((~finite).sum()),
    }


def bootstrap_intervals(
    metrics: pd.DataFrame,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and patient-level bootstrap interval of every metric, per experiment, seed and phase.

    Parameters
    ----------
    metrics : DataFrame
        Per-case rows with columns experiment, seed, case_id, patient_id, phase (``"ED"`` / ``"ES"``) and the
        metric columns (``correct_topology`` for ``incorrect_topology``).
    columns : sequence of str
        Metrics: columns of ``metrics``, or ``"incorrect_topology"`` (1 - correct_topology, a rate in [0, 1]).
    n_boot : int
        Bootstrap resamples (>= 1).
    level : float
        Coverage of the percentile interval, in (0, 1).
    seed : int
        Seed of the resamples; each row draws from its own stream, seeded by ``seed`` and the row's experiment,
        seed, phase and metric, so a row does not change when other rows or metrics are added.

    Returns
    -------
    DataFrame
        :data:`INTERVAL_COLUMNS`; per experiment (in order of appearance), per seed (as a string, numeric order,
        then ``"mean"``: each case averaged over the seeds first), per phase of :data:`PHASES` and per metric:
        the mean over the cases, the interval, the patients and cases with a value and the cases without (NaN,
        left out). A group without any value has NaN mean and interval.

    Raises
    ------
    ValueError
        If a column is missing, ``n_boot < 1`` or ``level`` is not in (0, 1).

    Examples
    --------
    >>> frame = pd.DataFrame({"experiment": "x", "seed": 0, "case_id": ["a", "b", "c"],
    ...                       "patient_id": ["p1", "p1", "p2"], "phase": ["ED", "ES", "ED"],
    ...                       "dice": [0.8, 0.9, 0.7]})
    >>> both = bootstrap_intervals(frame, ["dice"], n_boot=200).query("seed == '0' and phase == 'both'")
    >>> round(both["mean"].item(), 6), both["n_patients"].item(), both["n_cases"].item()
    (0.8, 2, 3)
    """
    _check_table(
        metrics,
        ["experiment", "seed", "case_id", "patient_id", "phase", *_required(columns)],
        "bootstrap_intervals",
    )
    if int(n_boot) < 1:
        raise ValueError(f"bootstrap_intervals: n_boot must be at least 1, got {n_boot}.")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"bootstrap_intervals: level must be in (0, 1), e.g. 0.95, got {level}.")
    rows = []
    for experiment in dict.fromkeys(metrics["experiment"].astype(str)):
        for seed_name, cases in _case_tables(metrics, experiment, columns).items():
            for phase in PHASES:
                subset = cases if phase == "both" else cases[cases["phase"] == phase]
                for metric in columns:
                    rng = _row_rng(seed, experiment, seed_name, phase, metric)
                    stats = _interval_row(subset, metric, int(n_boot), float(level), rng)
                    rows.append(
                        {
                            "experiment": experiment,
                            "seed": seed_name,
                            "phase": phase,
                            "metric": metric,
                            **stats,
                        }
                    )
    return pd.DataFrame(rows, columns=list(INTERVAL_COLUMNS))


def seed_spread(metrics: pd.DataFrame, columns: Sequence[str] = DEFAULT_COLUMNS) -> pd.DataFrame:
    """The spread of each metric's mean over the training seeds, per experiment.

    Parameters
    ----------
    metrics : DataFrame
        Per-case rows with columns experiment, seed and the metric columns (``correct_topology`` for
        ``incorrect_topology``).
    columns : sequence of str
        Metrics, as for :func:`bootstrap_intervals`.

    Returns
    -------
    DataFrame
        One row per experiment and metric: experiment, metric, n_seeds, mean, std (ddof 1; NaN with one seed),
        min, max of the per-seed means (each over that seed's cases, NaN left out), then ``seed_<s>``: the mean
        of seed ``s``, one column per seed present anywhere (NaN for an experiment without it).

    Raises
    ------
    ValueError
        If a column is missing.
    """
    _check_table(metrics, ["experiment", "seed", *_required(columns)], "seed_spread")
    seeds = _seed_order(metrics["seed"])
    rows = []
    for experiment in dict.fromkeys(metrics["experiment"].astype(str)):
        sub = metrics[metrics["experiment"].astype(str) == experiment]
        for metric in columns:
            frame = pd.DataFrame(
                {"seed": sub["seed"].astype(str).to_numpy(), "value": _metric_values(sub, metric)}
            )
            per_seed = frame.groupby("seed")["value"].mean()
            means = per_seed.dropna().to_numpy(dtype=float)
            rows.append(
                {
                    "experiment": experiment,
                    "metric": metric,
                    "n_seeds": int(means.size),
                    "mean": float(means.mean()) if means.size else math.nan,
                    "std": float(means.std(ddof=1)) if means.size > 1 else math.nan,
                    "min": float(means.min()) if means.size else math.nan,
                    "max": float(means.max()) if means.size else math.nan,
                    **{f"seed_{s}": float(per_seed.get(s, math.nan)) for s in seeds},
                }
            )
    fixed = ["experiment", "metric", "n_seeds", "mean", "std", "min", "max"]
    return pd.DataFrame(rows, columns=[*fixed, *(f"seed_{s}" for s in seeds)])


def _patient_means(metrics: pd.DataFrame, experiment: str, metric: str) -> pd.Series:
    """Each patient's mean of ``metric`` over all its cases and seeds of ``experiment`` (NaN left out)."""
    sub = metrics[metrics["experiment"].astype(str) == experiment]
    values = pd.Series(_metric_values(sub, metric), index=sub["patient_id"].astype(str).to_numpy())
    return values.groupby(level=0).mean()


def patient_level_paired_tests(metrics: pd.DataFrame, reference: str, metric: str = "dice") -> pd.DataFrame:
    """Paired tests over patients of every experiment against ``reference`` on one metric.

    Each patient's cases are averaged (over the seeds too) per experiment; the patients with a value in both are
    paired, and tested by :func:`tedsnet.reporting.stats.paired_test` (two-sided Wilcoxon signed-rank and paired
    t-test; p is NaN with fewer than two pairs or when every difference is zero).

    Parameters
    ----------
    metrics : DataFrame
        Per-case rows with columns experiment, patient_id and ``metric`` (``correct_topology`` for
        ``"incorrect_topology"``).
    reference : str
        The experiment the others are compared with.
    metric : str
        A metric column, or ``"incorrect_topology"`` (compares the patients' rates of wrong topology).

    Returns
    -------
    DataFrame
        :data:`PAIRED_COLUMNS`, one row per other experiment in order of appearance: n_patients paired,
        ``mean_diff`` = mean over those patients of experiment - reference, p_wilcoxon, p_ttest. Empty (with the
        columns) when ``reference`` is absent.

    Raises
    ------
    ValueError
        If a column is missing.
    """
    _check_table(metrics, ["experiment", "patient_id", *_required([metric])], "patient_level_paired_tests")
    experiments = list(dict.fromkeys(metrics["experiment"].astype(str)))
    if reference not in experiments:
        return pd.DataFrame(columns=list(PAIRED_COLUMNS))
    ref = _patient_means(metrics, reference, metric)
    rows = []
    for experiment in (e for e in experiments if e != reference):
        pairs = pd.concat([_patient_means(metrics, experiment, metric), ref], axis=1, join="inner").dropna()
        other, base = pairs.iloc[:, 0].to_numpy(dtype=float), pairs.iloc[:, 1].to_numpy(dtype=float)
        n, _, p_wilcoxon, _ = paired_test(other, base, "wilcoxon")
        _, _, p_ttest, _ = paired_test(other, base, "t")
        rows.append(
            {
                "experiment": experiment,
                "reference": reference,
                "metric": metric,
                "n_patients": n,
                "mean_diff": float((other - base).mean()) if n else math.nan,
                "p_wilcoxon": p_wilcoxon,
                "p_ttest": p_ttest,
            }
        )
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
