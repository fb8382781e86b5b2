"""The slice ledger: what every slice of the evaluated scans is, what the protocol keeps, and how each model does
on each kind of slice.

- :func:`scan_ledger`: per scan (set, patient, phase) the number of z-slices of each class
  (:data:`~tedsnet.data.slices.SLICE_CLASSES`) and how many the protocol keeps, with totals per set
  (:func:`ledger_totals`).
- :func:`ledger_behaviour`: per model and slice class, from the per-case metrics of the all-slices sets: Dice, how
  often the prediction's topology matches the reference's, how often it is one ring, and on slices without
  myocardium how often and how much the model predicts.
- :func:`ledger_markdown`: both as a report section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from tedsnet.data.slices import SLICE_CLASSES

__all__ = [
    "BEHAVIOUR_COLUMNS",
    "LEDGER_COLUMNS",
    "TOTAL_COLUMNS",
    "SliceLedger",
    "ledger_behaviour",
    "ledger_markdown",
    "ledger_totals",
    "scan_ledger",
]

#: Columns of the per-scan ledger, in order.
LEDGER_COLUMNS: tuple[str, ...] = ("set", "patient_id", "group", "phase", "n_slices", *SLICE_CLASSES, "kept")
#: Columns of the totals per set, in order.
TOTAL_COLUMNS: tuple[str, ...] = ("set", "n_patients", "n_scans", "n_slices", *SLICE_CLASSES, "kept")
#: Columns of :func:`ledger_behaviour` after the grouping columns, in order.
BEHAVIOUR_COLUMNS: tuple[str, ...] = (
    "n_seeds",
    "n_slices",
    "n_kept",
    "dice_mean",
    "topology_matches_reference_pct",
    "correct_topology_pct",
    "predicts_any_pct",
    "pred_pixels_mean",
    "pred_pixels_median",
)
_SLICE_TABLE = ("set", "patient_id", "group", "phase", "slice_class", "kept")
_METRICS = (
    "experiment",
    "seed",
    "slice_class",
    "kept",
    "dice",
    "correct_topology",
    "topology_matches_reference",
    "pred_pixels",
)
_EMPTY_CLASS = "no_myocardium"
#: Slice class -> its name in the report's tables.
_CLASS_NAMES = {c: c.replace("non_ring_", "non-ring ").replace("_", " ") for c in SLICE_CLASSES}


class SliceLedger(NamedTuple):
    """:func:`scan_ledger`: ``scans`` one row per scan (:data:`LEDGER_COLUMNS`), ``totals`` one row per set
    (:data:`TOTAL_COLUMNS`)."""

    scans: pd.DataFrame
    totals: pd.DataFrame


def _require(table: pd.DataFrame, columns: Sequence[str], what: str, hint: str) -> None:
    """ValueError naming the columns of ``columns`` that ``table`` lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{what}: missing column(s) {missing}; {hint} (columns given: {list(table.columns)})"
        )


def _check_classes(values: pd.Series, what: str) -> None:
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
    _require(split_table, _SLICE_TABLE, "scan_ledger", "pass an all-slices set's table")
    _check_classes(split_table["slice_class"], "scan_ledger")
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
    _require(scans, LEDGER_COLUMNS, "ledger_totals", "pass scan_ledger(...).scans or a ledger.csv")
    counted = ["n_slices", *SLICE_CLASSES, "kept"]
    grouped = scans.groupby("set", sort=False)
    totals = grouped[counted].sum().astype(np.int64)
    totals.insert(0, "n_scans", grouped.size())
    totals.insert(0, "n_patients", grouped["patient_id"].nunique())
    return totals.reset_index()[list(TOTAL_COLUMNS)]


def _as_bool(values: pd.Series) -> pd.Series:
    """A column of True/False as bool (CSV text "True"/"False" included)."""
    if values.dtype == bool:
        return values
    return values.astype(str).str.lower().map({"true": True, "false": False, "1": True, "0": False})


def _behaviour_row(sub: pd.DataFrame, slice_class: str) -> dict[str, float]:
    """:data:`BEHAVIOUR_COLUMNS` of one group of per-case rows (every seed)."""
    per_seed = sub.groupby("seed").size()
    row = {
        "n_seeds": int(len(per_seed)),
        "n_slices": int(per_seed.max()),
        "n_kept": int(sub.groupby("seed")["kept"].sum().max()),
        "dice_mean": float(sub["dice"].mean()),
        "topology_matches_reference_pct": 100.0 * float(sub["topology_matches_reference"].mean()),
        "correct_topology_pct": 100.0 * float(sub["correct_topology"].mean()),
        "predicts_any_pct": np.nan,
        "pred_pixels_mean": np.nan,
        "pred_pixels_median": np.nan,
    }
    if slice_class == _EMPTY_CLASS:
        pixels = sub["pred_pixels"].astype(float)
        row["predicts_any_pct"] = 100.0 * float((pixels > 0).mean())
        row["pred_pixels_mean"] = float(pixels.mean())
        row["pred_pixels_median"] = float(pixels.median())
    return row


def ledger_behaviour(
    metrics: pd.DataFrame, by: Sequence[str] = ("experiment", "slice_class")
) -> pd.DataFrame:
    """How each model does on each class of slice, from per-case metrics of all the slices of scans.

    Parameters
    ----------
    metrics : pandas.DataFrame
        One row per case and seed with columns experiment, seed, slice_class, kept (bool), dice,
        correct_topology (bool: the prediction is one ring), topology_matches_reference (bool: its Betti numbers
        equal the reference's) and pred_pixels (predicted foreground pixels), plus the columns of ``by``.
    by : sequence of str
        Grouping columns; must include ``slice_class`` (e.g. ``("set", "experiment", "slice_class")``).

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns then :data:`BEHAVIOUR_COLUMNS`. Seeds are pooled: n_slices and
        n_kept are per seed, the means and percentages over every row of the group. predicts_any_pct (% of rows
        with any predicted pixel) and pred_pixels_mean / _median are given on ``no_myocardium`` slices only (NaN
        elsewhere). Groups follow the first appearance of the other keys, then the order of
        :data:`~tedsnet.data.slices.SLICE_CLASSES`.

    Raises
    ------
    ValueError
        If a column is missing, ``by`` lacks slice_class, or a slice class is unknown.

    Examples
    --------
    >>> rows = pd.DataFrame({"experiment": "tedsnet", "seed": 0, "slice_class": ["no_myocardium"] * 2,
    ...                      "kept": False, "dice": 0.0, "correct_topology": True,
    ...                      "topology_matches_reference": False, "pred_pixels": [300, 500]})
    >>> ledger_behaviour(rows)[["predicts_any_pct", "pred_pixels_median"]].values.tolist()
    [[100.0, 400.0]]
    """
    by = list(by)
    if "slice_class" not in by:
        raise ValueError(
            f"ledger_behaviour: by must include 'slice_class', got {by}; e.g. ('experiment', 'slice_class')"
        )
    _require(
        metrics,
        list(dict.fromkeys([*_METRICS, *by])),
        "ledger_behaviour",
        "pass the per-case metrics of an all-slices set with its slice_class and kept columns",
    )
    _check_classes(metrics["slice_class"], "ledger_behaviour")
    frame = metrics.copy()
    for column in ("kept", "correct_topology", "topology_matches_reference"):
        frame[column] = _as_bool(frame[column])
    others = [k for k in by if k != "slice_class"]
    order = {k: pd.factorize(frame[k])[0] for k in others}
    frame = frame.assign(
        **{f"_order_{k}": v for k, v in order.items()},
        _order_class=frame["slice_class"].map({c: i for i, c in enumerate(SLICE_CLASSES)}),
    )
    frame = frame.sort_values([*(f"_order_{k}" for k in others), "_order_class"], kind="stable")
    rows = []
    for keys, sub in frame.groupby(by, sort=False):
        key = dict(zip(by, keys, strict=True))
        rows.append({**key, **_behaviour_row(sub, str(key["slice_class"]))})
    return pd.DataFrame(rows, columns=[*by, *BEHAVIOUR_COLUMNS])


def _number(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals; an en dash for NaN (not measured for that class)."""
    return "–" if pd.isna(value) else f"{value:.{decimals}f}"


def _totals_table(totals: pd.DataFrame) -> pd.DataFrame:
    """The totals per set as display strings."""
    names = {"set": "Set", "n_patients": "Patients", "n_scans": "Scans", "n_slices": "Slices", "kept": "Kept"}
    names.update({c: _CLASS_NAMES[c].capitalize() for c in SLICE_CLASSES})
    return totals[list(TOTAL_COLUMNS)].rename(columns=names).astype(str)


def _behaviour_table(behaviour: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The behaviour table as display strings."""
    rows = []
    for _, r in behaviour.iterrows():
        row = {"Set": r["set"]} if "set" in behaviour.columns else {}
        row.update(
            {
                "Model": labels.get(str(r["experiment"]), str(r["experiment"])),
                "Class": _CLASS_NAMES[str(r["slice_class"])],
                "Slices": str(int(r["n_slices"])),
                "Dice": _number(r["dice_mean"], 3),
                "Topology as reference (%)": _number(r["topology_matches_reference_pct"], 1),
                "One ring (%)": _number(r["correct_topology_pct"], 1),
                "Predicts any pixel (%)": _number(r["predicts_any_pct"], 1),
                "Predicted pixels mean / median": (
                    "–"
                    if pd.isna(r["pred_pixels_mean"])
                    else f"{r['pred_pixels_mean']:.0f} / {r['pred_pixels_median']:.0f}"
                ),
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _ring_sentence(behaviour: pd.DataFrame, labels: dict[str, str], reference: str) -> str:
    """The statement that a TEDS-Net always outputs a ring, with the reference row's numbers on empty slices."""
    text = (
        "A TEDS-Net always outputs a ring: it warps a ring prior with a diffeomorphic field, which keeps the "
        "prior's topology. On slices with no myocardium it therefore predicts one, where the reference is empty."
    )
    if behaviour.empty:
        return text
    empty = behaviour[(behaviour["experiment"] == reference) & (behaviour["slice_class"] == _EMPTY_CLASS)]
    for _, r in empty.iterrows():
        where = f" ({r['set']})" if "set" in behaviour.columns else ""
        text += (
            f" {labels.get(reference, reference)}{where}: a prediction on {r['predicts_any_pct']:.1f} % of "
            f"{int(r['n_slices'])} such slices, {r['pred_pixels_mean']:.0f} pixels on average."
        )
    return text


def ledger_markdown(scans: pd.DataFrame, behaviour: pd.DataFrame, reference: str = "tedsnet") -> str:
    """The slice ledger as a report section (Markdown, starting with a ``##`` heading).

    Parameters
    ----------
    scans : pandas.DataFrame
        The per-scan ledger (:data:`LEDGER_COLUMNS`; ``scan_ledger(...).scans`` or a ``ledger.csv``).
    behaviour : pandas.DataFrame
        :func:`ledger_behaviour` (grouped by experiment and slice_class, optionally set); may be empty.
    reference : str
        The TEDS-Net row whose numbers on slices without myocardium the text states.

    Returns
    -------
    str
        Totals per set, the behaviour per model and class, and the statement that a TEDS-Net always outputs a
        ring, so on slices with no myocardium it predicts one.

    Raises
    ------
    ValueError
        If ``scans`` lacks a ledger column.
    """
    from tedsnet.reporting.labels import row_label
    from tedsnet.reporting.table1 import markdown_table

    totals = ledger_totals(scans)
    labels = {str(e): row_label(str(e)) for e in behaviour.get("experiment", pd.Series(dtype=str)).unique()}
    out = [
        "## Slice ledger: every slice of the evaluated scans\n",
        "Each z-slice of the ED and ES frames is a ring (Betti numbers (1, 1)), a non-ring slice on the basal or "
        "apical side of the scan's ring slices or broken between them, or a slice without myocardium. The "
        "protocol evaluates only the kept ring slices.\n",
        markdown_table(_totals_table(totals)),
    ]
    if len(behaviour):
        out += [
            "How each model does on each class (seeds pooled; slices counted per seed):\n",
            markdown_table(_behaviour_table(behaviour, labels)),
        ]
    out.append(_ring_sentence(behaviour, labels, reference) + "\n")
    return "\n".join(out)
