"""The per-scan slice ledger: how many z-slices of each class every evaluated scan has, and how many the protocol
keeps.

- :func:`scan_ledger`: per scan (set, patient, phase) the number of slices of each class
  (:data:`~tedsnet.data.slices.SLICE_CLASSES`) and the kept count, with totals per set (:func:`ledger_totals`).
- :func:`require_columns` and :func:`check_slice_classes`: the input checks shared with
  :mod:`tedsnet.reporting.ledger`, which reports each model's behaviour per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from tedsnet.data.slices import SLICE_CLASSES

__all__ = [
    "LEDGER_COLUMNS",
    "TOTAL_COLUMNS",
    "SliceLedger",
    "check_slice_classes",
    "ledger_totals",
    "require_columns",
    "scan_ledger",
]

#: Columns of the per-scan ledger, in order.
LEDGER_COLUMNS: tuple[str, ...] = ("set", "patient_id", "group", "phase", "n_slices", *SLICE_CLASSES, "kept")
#: Columns of the totals per set, in order.
TOTAL_COLUMNS: tuple[str, ...] = ("set", "n_patients", "n_scans", "n_slices", *SLICE_CLASSES, "kept")
_SLICE_TABLE = ("set", "patient_id", "group", "phase", "slice_class", "kept")


class SliceLedger(NamedTuple):
    """:func:`scan_ledger`: ``scans`` one row per scan (:data:`LEDGER_COLUMNS`), ``totals`` one row per set
    (:data:`TOTAL_COLUMNS`)."""

    scans: pd.DataFrame
    totals: pd.DataFrame


def require_columns(table: pd.DataFrame, columns: Sequence[str], what: str, hint: str) -> None:
    """ValueError naming the columns of ``columns`` that ``table`` lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{what}: missing column(s) {missing}; {hint} (columns given: {list(table.columns)})"
        )


def check_slice_classes(values: pd.Series, what: str) -> None:
    """ValueError when a slice class is not one of :data:`SLICE_CLASSES`."""
    unknown = sorted(set(values.astype(str)) - set(SLICE_CLASSES))
    if unknown:
        raise ValueError(
            f"{what}: unknown slice_class value(s) {unknown}; expected {list(SLICE_CLASSES)} "
            "(tedsnet.data.slices.classify_slices)"
        )


def scan_ledger(split_table: pd.DataFrame) -> SliceLedger:
    """Slices of each class per scan, and how many the protocol keeps.

    Parameters
    ----------
    split_table : pandas.DataFrame
        One row per z-slice (an all-slices set's table, :mod:`tedsnet.data.evaluation_sets`) with columns set,
        patient_id, group, phase, slice_class (one of :data:`~tedsnet.data.slices.SLICE_CLASSES`) and kept
        (bool).

    Returns
    -------
    SliceLedger
        ``scans``: one row per (set, patient_id, phase), in order of first appearance, with n_slices, the count of
        each class and kept; ``totals``: :func:`ledger_totals` of it.

    Raises
    ------
    ValueError
        If a column is missing or a slice class is unknown.

    Examples
    --------
    >>> table = pd.DataFrame({"set": "test_all", "patient_id": "patient001", "group": "NOR", "phase": "ED",
    ...                       "slice_class": ["no_myocardium", "ring", "ring"], "kept": [False, True, False]})
    >>> scan_ledger(table).scans[["n_slices", "ring", "no_myocardium", "kept"]].values.tolist()
    [[3, 2, 1, 1]]
    """
    require_columns(split_table, _SLICE_TABLE, "scan_ledger", "pass an all-slices set's table")
    check_slice_classes(split_table["slice_class"], "scan_ledger")
    keys = ["set", "patient_id", "group", "phase"]
    frame = split_table[list(_SLICE_TABLE)].astype({k: str for k in keys})
    grouped = frame.groupby(keys, sort=False)
    counts = grouped["slice_class"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=list(SLICE_CLASSES), fill_value=0).astype(np.int64)
    scans = grouped.size().rename("n_slices").to_frame()
    scans = scans.join(counts).join(grouped["kept"].sum().astype(np.int64))
    scans = scans.reset_index()[list(LEDGER_COLUMNS)]
    return SliceLedger(scans=scans, totals=ledger_totals(scans))


def ledger_totals(scans: pd.DataFrame) -> pd.DataFrame:
    """Totals per set of a per-scan ledger (:data:`LEDGER_COLUMNS`, e.g. a ``ledger.csv``).

    Returns one row per set, in order of first appearance, with :data:`TOTAL_COLUMNS`: patients, scans, slices,
    each class and kept. Raises ValueError if a column is missing.
    """
    require_columns(scans, LEDGER_COLUMNS, "ledger_totals", "pass scan_ledger(...).scans or a ledger.csv")
    counted = ["n_slices", *SLICE_CLASSES, "kept"]
    grouped = scans.groupby("set", sort=False)
    totals = grouped[counted].sum().astype(np.int64)
    totals.insert(0, "n_scans", grouped.size())
    totals.insert(0, "n_patients", grouped["patient_id"].nunique())
    return totals.reset_index()[list(TOTAL_COLUMNS)]
