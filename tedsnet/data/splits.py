"""Patient-disjoint train/val/test splits stratified by diagnostic group (``docs/protocol.md``, splits).

Allocation rule (:func:`allocate_counts`), for fractions ``f`` (default 0.75 / 0.15 / 0.10):

1. Strata: every group with at least 3 patients is its own stratum; groups with fewer than 3 patients are pooled
   into one stratum (the fallback for cohorts too small to stratify). Fewer than 3 patients in all is an error.
2. Each stratum of ``n`` patients gets ``f * n`` patients per split by largest remainder (floors, then the leftover
   patients to the largest fractional parts; ties to the earlier split: train, val, test). 20 patients -> 15/3/2.
3. Overall targets: the same largest-remainder rule on the total, raised to at least one patient per split.
   When the strata sums differ from these targets (small or uneven cohorts), patients are moved one at a time
   from a split with a surplus to one with a deficit, in the stratum where the move departs least from that
   stratum's exact quota. ACDC (5 x 20) needs no move: 75 / 15 / 10.

Within each stratum patients are sorted by ID, shuffled by ``numpy.random.default_rng(seed)`` (strata in sorted
order), and dealt train first, then val, then test. Same table and seed -> same split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tedsnet.io import atomic_path

__all__ = [
    "FRACTIONS",
    "POOLED",
    "SPLITS",
    "allocate_counts",
    "largest_remainder",
    "read_splits",
    "split_patients",
    "write_splits",
]

#: Split names in order.
SPLITS: tuple[str, str, str] = ("train", "val", "test")
#: Default fractions of patients per split.
FRACTIONS: tuple[float, float, float] = (0.75, 0.15, 0.10)
#: Stratum name of pooled small groups.
POOLED = "<pooled>"
#: Groups with fewer patients than this are pooled.
MIN_STRATUM = 3


def largest_remainder(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` items by ``fractions`` (summing to 1) with the largest-remainder (Hamilton) rule.

    Ties in the fractional parts go to the earlier entry. Example: ``largest_remainder(20, (0.75, 0.15, 0.1))``
    is ``[15, 3, 2]``.
    """
    quotas = [n * f for f in fractions]
    counts = [int(np.floor(q + 1e-9)) for q in quotas]
    leftover = n - sum(counts)
    order = sorted(range(len(fractions)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[:leftover]:
        counts[i] += 1
    return counts


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != len(SPLITS) or any(not np.isfinite(f) or f <= 0 for f in fractions):
        raise ValueError(
            f"split fractions must be {len(SPLITS)} positive numbers (train, val, test), got {fractions}"
        )
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"split fractions must sum to 1, got {fractions} (sum {sum(fractions)}); e.g. (0.75, 0.15, 0.10)"
        )
    return fractions


def allocate_counts(
    group_sizes: dict[str, int], fractions: Sequence[float] = FRACTIONS
) -> dict[str, list[int]]:
    """Patients per split for each stratum (see the module docstring for the rule).

    Parameters
    ----------
    group_sizes : dict
        Group name -> number of patients.
    fractions : (train, val, test)
        Positive, summing to 1.

    Returns
    -------
    dict
        Stratum name (a group, or :data:`POOLED`) -> [n_train, n_val, n_test].

    Raises
    ------
    ValueError
        If there are fewer than 3 patients in all, or the fractions are invalid.
    """
    fractions = _check_fractions(fractions)
    total = int(sum(group_sizes.values()))
    if total < len(SPLITS):
        raise ValueError(
            f"split_patients: need at least {len(SPLITS)} patients for train/val/test, got {total}; "
            "add patients (a phantom cohort of 3 or more)"
        )
    strata: dict[str, int] = {}
    pooled = 0
    for group in sorted(group_sizes):
        size = int(group_sizes[group])
        if size >= MIN_STRATUM:
            strata[group] = size
        else:
            pooled += size
    if pooled:
        strata[POOLED] = pooled
    counts = {name: largest_remainder(size, fractions) for name, size in strata.items()}
    quotas = {name: [size * f for f in fractions] for name, size in strata.items()}

    targets = largest_remainder(total, fractions)
    for i in range(len(SPLITS)):  # at least one patient per split, taken from the largest split
        while targets[i] < 1:
            donor = max(range(len(SPLITS)), key=lambda j: (targets[j], -j))
            targets[donor] -= 1
            targets[i] += 1

    while True:
        sums = [sum(c[i] for c in counts.values()) for i in range(len(SPLITS))]
        surplus = [i for i in range(len(SPLITS)) if sums[i] > targets[i]]
        deficit = [i for i in range(len(SPLITS)) if sums[i] < targets[i]]
        if not surplus:
            break
        best = None
        for src in surplus:
            for dst in deficit:
                for name in counts:
                    if counts[name][src] == 0:
                        continue
                    # how much the move departs from the exact quotas (smaller is better)
                    cost = (counts[name][dst] + 1 - quotas[name][dst]) - (
                        counts[name][src] - quotas[name][src]
                    )
                    key = (cost, src, dst, name)
                    if best is None or key < best:
                        best = key
        _, src, dst, name = best
        counts[name][src] -= 1
        counts[name][dst] += 1
    return counts


def split_patients(
    table: pd.DataFrame, fractions: Sequence[float] = FRACTIONS, seed: int = 0
) -> pd.DataFrame:
    """Patient-disjoint, group-stratified, seeded train/val/test split.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``patient_id`` and ``group``; one row per patient (duplicated rows of one patient, e.g. one per
        slice, are collapsed; a patient with two groups is an error).
    fractions : (train, val, test)
        Fractions of patients, positive, summing to 1. Default (0.75, 0.15, 0.10).
    seed : int
        Seed of the shuffle within each stratum.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient_id``, ``group``, ``split`` (one of "train", "val", "test"), one row per patient, sorted
        by patient_id.

    Raises
    ------
    ValueError
        If columns are missing, a patient has two groups, there are fewer than 3 patients, or the fractions are
        invalid.

    Notes
    -----
    See the module docstring: largest-remainder allocation per group (20 -> 15/3/2); groups with fewer than 3
    patients are pooled and split together; overall at least one patient per split.
    """
    missing = [c for c in ("patient_id", "group") if c not in table.columns]
    if missing:
        raise ValueError(f"split_patients: table lacks column(s) {missing}; expected patient_id and group")
    patients = table[["patient_id", "group"]].astype(str).drop_duplicates()
    dup = patients["patient_id"][patients["patient_id"].duplicated()]
    if len(dup):
        raise ValueError(
            f"split_patients: patient(s) {sorted(set(dup))[:5]} appear with more than one group; "
            "give each patient one group"
        )
    patients = patients.sort_values("patient_id", kind="stable").reset_index(drop=True)
    sizes = patients.groupby("group").size().to_dict()
    counts = allocate_counts(sizes, fractions)

    rng = np.random.default_rng(seed)
    split = pd.Series(index=patients.index, dtype=object)
    for name in sorted(counts):
        if name == POOLED:
            members = patients.index[patients["group"].map(sizes) < MIN_STRATUM]
        else:
            members = patients.index[patients["group"] == name]
        members = np.asarray(members)[rng.permutation(len(members))]
        start = 0
        for split_name, count in zip(SPLITS, counts[name], strict=True):
            split.loc[members[start : start + count]] = split_name
            start += count
    out = patients.assign(split=split.astype(str))
    return out[["patient_id", "group", "split"]]


def write_splits(splits: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``splits.csv`` (columns patient_id, group, split; sorted by patient_id), atomically."""
    path = Path(path)
    _validate(splits, str(path))
    with atomic_path(path) as tmp:
        splits[["patient_id", "group", "split"]].sort_values("patient_id").to_csv(tmp, index=False)
    return path


def read_splits(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a ``splits.csv`` written by :func:`write_splits` (or the committed ACDC split).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a column is missing, a split name is unknown or a patient appears twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: splits file not found; create it with tedsnet.data.splits.write_splits"
        )
    splits = pd.read_csv(path, dtype=str, keep_default_na=False)
    _validate(splits, str(path))
    return splits[["patient_id", "group", "split"]].reset_index(drop=True)


def _validate(splits: pd.DataFrame, where: str) -> None:
    missing = [c for c in ("patient_id", "group", "split") if c not in splits.columns]
    if missing:
        raise ValueError(
            f"{where}: splits table lacks column(s) {missing}; expected patient_id, group, split"
        )
    bad = sorted(set(splits["split"]) - set(SPLITS))
    if bad:
        raise ValueError(
            f"{where}: unknown split name(s) {bad}; expected one of {list(SPLITS)}; rename those rows"
        )
    dup = splits["patient_id"][splits["patient_id"].duplicated()]
    if len(dup):
        raise ValueError(
            f"{where}: patient(s) {sorted(set(dup))[:5]} appear more than once; keep one row per patient"
        )
