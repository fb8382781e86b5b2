"""What the paper reports (Wyburd et al., MICCAI 2021) and its follow-up (MedIA 2024), for setting a run beside them.

The paper's Table 1 is a committed transcription, ``workflow/resources/paper_table1.csv``, one row per model:
model, dice_mean, dice_std, hd_mean, hd_std, nonpos_jac_bulk_pct_{mean,std}, nonpos_jac_ft_pct_{mean,std},
incorrect_topology, n_test (empty cells: the model has no such field). Which experiment each of its rows is comes
from the registry (:attr:`tedsnet.experiments.Experiment.paper_label`). The paper does not state the unit of HD.

The follow-up's numbers (:data:`MEDIA2024_CITATION`) are ``workflow/resources/media2024_table.csv``
(:data:`MEDIA2024_COLUMNS`; an empty cell: the follow-up does not give that number); :data:`MEDIA2024_EXPERIMENTS`
says which of our rows each of its models is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tedsnet.experiments import EXPERIMENTS
from tedsnet.reporting.labels import TABLE1_LABELS, row_label, summary_labels
from tedsnet.reporting.table1 import format_mean_std

__all__ = [
    "DIFFEOMORPHIC_ROWS",
    "FOLDING_ROWS",
    "MEDIA2024_CITATION",
    "MEDIA2024_COLUMNS",
    "MEDIA2024_EXPERIMENTS",
    "PAPER_EPOCHS",
    "PAPER_FIGURE4",
    "PAPER_TABLE1_COLUMNS",
    "media2024_comparison",
    "paper_comparison",
    "paper_experiment",
    "paper_rows",
]

#: Training epochs of the paper's protocol (paper section 2.1).
PAPER_EPOCHS = 200

#: Rows in which the paper reports non-positive Jacobians and topology errors, and rows in which it reports none.
FOLDING_ROWS: tuple[str, ...] = ("A1", "A2", "A3")
DIFFEOMORPHIC_ROWS: tuple[str, ...] = ("A4", "A5", "A6", "tedsnet")

#: Columns of the paper's Table 1 transcription.
PAPER_TABLE1_COLUMNS: tuple[str, ...] = (
    "model",
    "dice_mean",
    "dice_std",
    "hd_mean",
    "hd_std",
    "nonpos_jac_bulk_pct_mean",
    "nonpos_jac_bulk_pct_std",
    "nonpos_jac_ft_pct_mean",
    "nonpos_jac_ft_pct_std",
    "incorrect_topology",
    "n_test",
)

#: The follow-up whose numbers ``media2024_table.csv`` holds.
MEDIA2024_CITATION = "Wyburd et al., Medical Image Analysis 2024, doi:10.1016/j.media.2024.103222"

#: Columns of ``media2024_table.csv``: Dice mean and std, HD in mm, % of test cases with correct topology,
#: training minutes per epoch.
MEDIA2024_COLUMNS: tuple[str, ...] = (
    "model",
    "dice_mean",
    "dice_std",
    "hd_mm",
    "correct_topology_pct",
    "minutes_per_epoch",
)

#: The follow-up's model -> our experiment (a model absent here has no row of ours).
MEDIA2024_EXPERIMENTS: dict[str, str] = {
    "TEDS-Net": "tedsnet",
    "U-Net": "unet",
    "VoxelMorph": "voxelmorph",
    "TopoLoss U-Net (persistent homology)": "unet_topo",
}

#: What the paper reports for Figure 4 (its text; the figure itself is not transcribed), printed under ours.
PAPER_FIGURE4 = (
    "The paper (Fig. 4, text): with 12 or fewer integration layers Dice is stable, every Jacobian determinant "
    "positive and every topology kept, beyond 12 non-positive determinants emerge; Dice and HD are stable for prior "
    "radii 20-50, and at radius 10 a small percentage of FT-field determinants are non-positive, with 2/100 "
    "incorrect topologies."
)


def paper_experiment(model: str) -> str:
    """Experiment name of a row of the paper's Table 1.

    Parameters
    ----------
    model : str
        The ``model`` cell of the transcription (``"U-Net"``, ``"A3 no L_Grad"``).

    Returns
    -------
    str
        The registry experiment whose ``paper_label`` is ``model``; ``model`` itself when none is.

    Examples
    --------
    >>> paper_experiment("A3 no L_Grad"), paper_experiment("U-Net")
    ('A3', 'unet')
    """
    for name, experiment in EXPERIMENTS.items():
        if experiment.paper_label == model:
            return name
    return model


def paper_rows(paper: pd.DataFrame | None) -> dict[str, pd.Series]:
    """The paper's Table 1 keyed by experiment name (empty without a table)."""
    if paper is None:
        return {}
    return {paper_experiment(str(r["model"])): r for _, r in paper.iterrows()}


def _paper_cell(row: pd.Series | None, key: str, decimals: int) -> str:
    if row is None:
        return "—"
    return format_mean_std(row.get(f"{key}_mean", math.nan), row.get(f"{key}_std", math.nan), decimals)


def _our_cell(row: pd.Series | None, key: str, decimals: int) -> str:
    return "—" if row is None else format_mean_std(row[f"{key}_mean"], row[f"{key}_std"], decimals)


def _topology_cell(row: pd.Series | None) -> str:
    return "—" if row is None else f"{int(row['incorrect_topology'])}/{int(row['n_test'])}"


def paper_comparison(summary: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 beside ours, one row per model.

    Parameters
    ----------
    summary : DataFrame
        :func:`tedsnet.reporting.table1.summarise_table1` output.
    paper : DataFrame
        The paper's Table 1 (:data:`PAPER_TABLE1_COLUMNS`).

    Returns
    -------
    DataFrame
        Display strings: Model, then paper / ours pairs of Dice, HD (ours in px and mm), % non-positive Jacobians
        of each field and incorrect topology. "—": no such row in the paper / in this run. Rows in Table 1 order,
        then the run's other experiments.
    """
    by_exp = paper_rows(paper)
    ours = {str(r["experiment"]): r for _, r in summary.iterrows()}
    labels = summary_labels(summary)
    order = [e for e in TABLE1_LABELS if e in ours or e in by_exp]
    order += [e for e in ours if e not in order]
    rows: list[dict[str, Any]] = []
    for e in order:
        p, o = by_exp.get(e), ours.get(e)
        rows.append(
            {
                "Model": labels.get(e) or row_label(e),
                "Dice (paper)": _paper_cell(p, "dice", 2),
                "Dice (ours)": _our_cell(o, "dice", 3),
                "HD (paper, unit not stated)": _paper_cell(p, "hd", 2),
                "HD px (ours)": _our_cell(o, "hd_px", 2),
                "HD mm (ours)": _our_cell(o, "hd_mm", 2),
                "% |J_bulk| <= 0 (paper)": _paper_cell(p, "nonpos_jac_bulk_pct", 2),
                "% |J_bulk| <= 0 (ours)": _our_cell(o, "nonpos_jac_bulk_pct", 2),
                "% |J_FT| <= 0 (paper)": _paper_cell(p, "nonpos_jac_ft_pct", 2),
                "% |J_FT| <= 0 (ours)": _our_cell(o, "nonpos_jac_ft_pct", 2),
                "Incorrect topology (paper)": _topology_cell(p),
                "Incorrect topology (ours)": _topology_cell(o),
            }
        )
    return pd.DataFrame(rows)


def _value(value: Any, decimals: int) -> str:
    """A number to ``decimals`` places; "—" for an empty cell."""
    return "—" if value is None or pd.isna(value) else f"{float(value):.{decimals}f}"


def _media_row(model: str, media: pd.Series | None, ours: pd.Series | None, minutes: str) -> dict[str, str]:
    correct = "—" if ours is None else f"{100.0 - float(ours['incorrect_topology_pct']):.1f}"
    return {
        "Model": model,
        "Dice (MedIA 2024)": "—"
        if media is None
        else format_mean_std(media["dice_mean"], media["dice_std"], 2),
        "Dice (ours)": "—" if ours is None else format_mean_std(ours["dice_mean"], ours["dice_std"], 3),
        "HD mm (MedIA 2024)": "—" if media is None else _value(media["hd_mm"], 2),
        "HD mm (ours)": "—" if ours is None else _our_cell(ours, "hd_mm", 2),
        "% correct topology (MedIA 2024)": "—" if media is None else _value(media["correct_topology_pct"], 0),
        "% correct topology (ours)": correct,
        "Min per epoch (MedIA 2024)": "—" if media is None else _value(media["minutes_per_epoch"], 2),
        "Min per epoch (ours)": minutes,
    }


def media2024_comparison(
    summary: pd.DataFrame,
    media: pd.DataFrame,
    minutes: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> pd.DataFrame:
    """The MedIA 2024 follow-up's numbers beside ours, one row per model.

    Parameters
    ----------
    summary : DataFrame
        :func:`tedsnet.reporting.table1.summarise_table1` output.
    media : DataFrame
        ``media2024_table.csv`` (:data:`MEDIA2024_COLUMNS`).
    minutes : mapping, optional
        Experiment -> display cell of our training minutes per epoch ("—" when missing).
    extra : sequence of str
        Our experiments to list after the follow-up's models though it has no such model (when run).

    Returns
    -------
    DataFrame
        Display strings: Model, then MedIA 2024 / ours pairs of Dice, HD (mm), % correct topology and minutes per
        epoch. "—": no such number in the follow-up, or no such row in this run. The follow-up's models in its
        order (named ``"<model> / <our row>"`` when the two names differ), then ``extra``.

    Raises
    ------
    ValueError
        If ``media`` lacks a column of :data:`MEDIA2024_COLUMNS`.
    """
    missing = [c for c in MEDIA2024_COLUMNS if c not in media.columns]
    if missing:
        raise ValueError(
            f"media2024_comparison: the follow-up's table lacks column(s) {missing}; expected "
            f"{list(MEDIA2024_COLUMNS)} (workflow/resources/media2024_table.csv)."
        )
    ours = {str(r["experiment"]): r for _, r in summary.iterrows()}
    labels = summary_labels(summary)
    minutes = minutes or {}
    rows = []
    for _, m in media.iterrows():
        model = str(m["model"])
        experiment = MEDIA2024_EXPERIMENTS.get(model)
        ours_label = labels.get(experiment) or (row_label(experiment) if experiment else None)
        name = model if ours_label in (None, model) else f"{model} / {ours_label}"
        rows.append(_media_row(name, m, ours.get(experiment), minutes.get(experiment, "—")))
    for experiment in extra:
        if experiment in ours and experiment not in MEDIA2024_EXPERIMENTS.values():
            rows.append(_media_row(labels[experiment], None, ours[experiment], minutes.get(experiment, "—")))
    return pd.DataFrame(rows)
