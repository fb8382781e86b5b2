"""The slice ledger: what every slice of the evaluated scans is, what the protocol keeps, and how each model does
on each kind of slice.

The slices of each class per scan and how many the protocol keeps are counted in the data layer
(:func:`tedsnet.data.ledger.scan_ledger`); this module reports on them:

- :func:`ledger_behaviour`: per model and slice class, from the per-case metrics of the all-slices sets: Dice, how
  often the prediction's topology matches the reference's, how often it is one ring, and on slices without
  myocardium how often and how much the model predicts.
- :func:`ledger_markdown`: the totals per set and the behaviour as a report section.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tedsnet.data.ledger import TOTAL_COLUMNS, check_slice_classes, ledger_totals, require_columns
from tedsnet.data.slices import SLICE_CLASSES

__all__ = [
    "BEHAVIOUR_COLUMNS",
    "ledger_behaviour",
    "ledger_markdown",
]

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
    require_columns(
        metrics,
        list(dict.fromkeys([*_METRICS, *by])),
        "ledger_behaviour",
        "pass the per-case metrics of an all-slices set with its slice_class and kept columns",
    )
    check_slice_classes(metrics["slice_class"], "ledger_behaviour")
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
        The per-scan ledger (:data:`~tedsnet.data.ledger.LEDGER_COLUMNS`; ``scan_ledger(...).scans`` or a
        ``ledger.csv``).
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
