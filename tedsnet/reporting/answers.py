"""The reproduction questions of a run, answered from its numbers beside the paper's (a section of report.md).

Questions: does TEDS-Net keep 100 % correct topology? do the U-Nets lose some once past the guard? do
A1-A3 show non-positive Jacobians and topology errors while A4-A6 and TEDS-Net show none? where do Dice and HD
land against the paper? how much of the gap is the reduced training budget (validation Dice against epochs)?
Every sentence is computed from the tables given; nothing is asserted that the numbers do not show.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import pandas as pd

from tedsnet.reporting.labels import row_label, summary_labels
from tedsnet.reporting.paper import DIFFEOMORPHIC_ROWS, FOLDING_ROWS, PAPER_EPOCHS, paper_rows
from tedsnet.reporting.table1 import markdown_table

__all__ = ["STILL_RISING", "answer_questions", "budget_table", "jacobian_pattern"]

#: A rise of the last epoch's validation Dice above this is read as "still improving".
STILL_RISING = 0.005


def _by_experiment(summary: pd.DataFrame) -> dict[str, pd.Series]:
    return {str(r["experiment"]): r for _, r in summary.iterrows()}


def _folds(row: pd.Series | None) -> float:
    """Largest mean % of non-positive Jacobian determinants over the row's fields (NaN: no field)."""
    if row is None:
        return math.nan
    values = [float(row.get(k, math.nan)) for k in ("nonpos_jac_bulk_pct_mean", "nonpos_jac_ft_pct_mean")]
    values = [v for v in values if np.isfinite(v)]
    return max(values) if values else math.nan


def _yes_no(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    return "yes" if value > 0 else "no"


def jacobian_pattern(summary: pd.DataFrame, paper: pd.DataFrame | None) -> pd.DataFrame:
    """Per ablation row and TEDS-Net: folds (any % non-positive Jacobian > 0) and topology errors, ours and paper's.

    Returns
    -------
    DataFrame
        experiment, label, folds_pct (ours, largest field mean), folds, topology_errors (n), n_test,
        paper_folds_pct, paper_folds, paper_topology_errors, agrees (both "any folds" and "any topology error"
        match the paper; None when a side is missing).
    """
    ours, theirs = _by_experiment(summary), paper_rows(paper)
    labels = summary_labels(summary)
    rows = []
    for e in (*FOLDING_ROWS, *DIFFEOMORPHIC_ROWS):
        o, p = ours.get(e), theirs.get(e)
        if o is None:
            continue
        folds, p_folds = _folds(o), _folds(p)
        topo = int(o["incorrect_topology"])
        p_topo = None if p is None else int(p["incorrect_topology"])
        agrees = None
        if p is not None and np.isfinite(folds) and np.isfinite(p_folds):
            agrees = bool((folds > 0) == (p_folds > 0) and (topo > 0) == (p_topo > 0))
        rows.append(
            {
                "experiment": e,
                "label": labels[e],
                "folds_pct": folds,
                "folds": _yes_no(folds),
                "topology_errors": topo,
                "n_test": int(o["n_test"]),
                "paper_folds_pct": p_folds,
                "paper_folds": _yes_no(p_folds),
                "paper_topology_errors": p_topo,
                "agrees": agrees,
            }
        )
    return pd.DataFrame(rows)


def budget_table(curves: pd.DataFrame, paper_epochs: int = PAPER_EPOCHS) -> pd.DataFrame:
    """Validation Dice against epochs and the share of the paper's image-steps, per trained model (seed-averaged).

    Parameters
    ----------
    curves : DataFrame
        learning_curves.csv (experiment, seed, epoch, images_seen, val_dice).
    paper_epochs : int
        The paper's epochs; its image-steps are ``paper_epochs`` x the images of one of our epochs.

    Returns
    -------
    DataFrame
        experiment, label, epochs, images_seen, paper_fraction, val_dice_by_epoch (list), last_gain (val Dice of
        the last epoch minus the one before; NaN with one epoch), still_rising (bool).
    """
    rows = []
    trained = curves[curves["epoch"] > 0]
    for experiment, group in trained.groupby("experiment", sort=False):
        by_epoch = group.groupby("epoch")[["val_dice", "images_seen"]].mean().sort_index()
        dice = by_epoch["val_dice"].tolist()
        per_epoch = float(by_epoch["images_seen"].iloc[0])
        images = float(by_epoch["images_seen"].iloc[-1])
        gain = dice[-1] - dice[-2] if len(dice) > 1 else math.nan
        rows.append(
            {
                "experiment": str(experiment),
                "label": row_label(str(experiment)),
                "epochs": int(by_epoch.index[-1]),
                "images_seen": images,
                "paper_fraction": images / (paper_epochs * per_epoch) if per_epoch > 0 else math.nan,
                "val_dice_by_epoch": dice,
                "last_gain": gain,
                "still_rising": bool(np.isfinite(gain) and gain > STILL_RISING),
            }
        )
    return pd.DataFrame(rows)


def _count(n: int, total: int) -> str:
    return f"{n}/{total}"


def _answer_tedsnet_topology(ours: dict[str, pd.Series], passing: Collection[str]) -> str:
    """Does TEDS-Net keep 100 % correct topology? No conclusion when it is below the under-training guard."""
    question = "**Does TEDS-Net keep 100 % correct topology?** "
    teds = ours.get("tedsnet")
    if teds is None:
        return question + "Not run.\n"
    n, total = int(teds["incorrect_topology"]), int(teds["n_test"])
    counts = f"{_count(n, total)} test slices with incorrect topology (paper 0/100), mean Dice {teds['dice_mean']:.3f}"
    if "tedsnet" not in passing:
        return question + f"No conclusion: TEDS-Net is **below the under-training guard** ({counts}).\n"
    return question + f"{'Yes' if n == 0 else 'No'}: {counts}, past the guard.\n"


def _answer_unet_topology(
    ours: dict[str, pd.Series], theirs: dict[str, pd.Series], labels: dict[str, str], passing: Collection[str]
) -> str:
    """Do the U-Nets lose some topologies once past the guard? Each U-Net's count with its guard state."""
    parts = []
    for e in ("unet", "unet_smp"):
        o = ours.get(e)
        if o is None:
            continue
        n, total = int(o["incorrect_topology"]), int(o["n_test"])
        state = "past the guard" if e in passing else "below the guard, so this says nothing about topology"
        parts.append(f"{labels[e]}: {_count(n, total)} incorrect at mean Dice {o['dice_mean']:.3f} ({state})")
    p_unet = theirs.get("unet")
    if p_unet is not None:
        parts.append(f"paper U-Net: {int(p_unet['incorrect_topology'])}/{int(p_unet['n_test'])}")
    answer = ("; ".join(parts) + ".\n") if parts else "Not run.\n"
    return "\n**Do the U-Nets lose some topologies once trained past the guard?** " + answer


def _pattern_table(pattern: pd.DataFrame) -> str:
    """The Jacobian pattern, ours beside the paper's, as Markdown."""

    def percent(v: float) -> str:
        return f"{v:.2f}" if np.isfinite(v) else "—"

    def paper_count(v: float | None) -> str:
        return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{int(v)}/100"

    table = pd.DataFrame(
        {
            "Model": pattern["label"],
            "max % |J| <= 0 (ours)": pattern["folds_pct"].map(percent),
            "max % |J| <= 0 (paper)": pattern["paper_folds_pct"].map(percent),
            "Incorrect topology (ours)": [
                _count(int(a), int(b))
                for a, b in zip(pattern["topology_errors"], pattern["n_test"], strict=True)
            ],
            "Incorrect topology (paper)": pattern["paper_topology_errors"].map(paper_count),
            "As the paper's row": pattern["agrees"].map({True: "yes", False: "no", None: "—"}),
        }
    )
    return markdown_table(table)


def _answer_jacobian_pattern(summary: pd.DataFrame, paper: pd.DataFrame | None) -> list[str]:
    """Do A1-A3 fold and lose topology while A4-A6 and TEDS-Net do not? Each row against the paper's pattern."""
    out = [
        "\n**Do A1-A3 show non-positive Jacobians and topology errors while A4-A6 and TEDS-Net show none?** "
    ]
    pattern = jacobian_pattern(summary, paper)
    if pattern.empty:
        return [*out, "No ablation row in this run.\n"]
    expected = pattern.assign(
        expected=pattern["experiment"].map(lambda e: "yes" if e in FOLDING_ROWS else "no")
    )
    shown = [
        f"{r['label']}: folds {r['folds']} ({r['folds_pct']:.2f} %), topology errors "
        f"{_count(int(r['topology_errors']), int(r['n_test']))}"
        for _, r in expected.iterrows()
    ]
    match = expected.apply(
        lambda r: (r["folds"] == r["expected"]) and ((r["topology_errors"] > 0) == (r["expected"] == "yes")),
        axis=1,
    )
    agreeing = expected.loc[match, "label"].tolist()
    differing = expected.loc[~match, "label"].tolist()
    return [
        *out,
        "; ".join(shown) + ". ",
        f"As the paper's pattern predicts (folds and errors in A1-A3, neither in A4-A6 and TEDS-Net): "
        f"{', '.join(agreeing) or 'none'}; otherwise: {', '.join(differing) or 'none'}.\n",
        "\n" + _pattern_table(pattern),
        "As the paper's row: folds yes/no and topology errors yes/no both as in the paper's own numbers (any "
        "value above 0 counts, so a trace such as the paper's 0.03 % for A5 counts as folding), whereas the "
        "sentence above holds each row to the pattern the paper's text states.\n",
    ]


def _answer_dice_hd(ours: dict[str, pd.Series], theirs: dict[str, pd.Series], labels: dict[str, str]) -> str:
    """Where do Dice and HD land against the paper? Ours beside the paper's, per row the paper has."""
    lines = []
    for e, o in ours.items():
        p = theirs.get(e)
        if p is None:
            continue
        hd = f"{o['hd_px_mean']:.2f} px" if np.isfinite(o["hd_px_mean"]) else "N/A (every prediction empty)"
        lines.append(
            f"{labels[e]}: Dice {o['dice_mean']:.3f} vs {float(p['dice_mean']):.2f} "
            f"({o['dice_mean'] - float(p['dice_mean']):+.3f}), HD {hd} vs {float(p['hd_mean']):.2f}"
        )
    answer = ("; ".join(lines) + ". (The paper does not state HD's unit.)\n") if lines else "No paper row.\n"
    return "\n**Where do Dice and HD land against the paper?** " + answer


def _budget_markdown(budget: pd.DataFrame) -> str:
    """Validation Dice against epochs and the share of the paper's image-steps, as Markdown."""
    table = pd.DataFrame(
        {
            "Model": budget["label"],
            "Epochs": budget["epochs"].astype(str),
            "Image-steps": budget["images_seen"].map(lambda v: f"{v:,.0f}"),
            "Share of paper": budget["paper_fraction"].map(lambda v: f"{v:.2%}"),
            "Val Dice by epoch": budget["val_dice_by_epoch"].map(lambda d: " → ".join(f"{v:.3f}" for v in d)),
            "Last gain": budget["last_gain"].map(lambda v: f"{v:+.3f}" if np.isfinite(v) else "—"),
        }
    )
    return markdown_table(table)


def _answer_budget(curves: pd.DataFrame | None, paper_epochs: int) -> list[str]:
    """How much of the gap is the reduced budget? The share of the paper's training and who was still rising."""
    out = ["\n**How much of the gap is the reduced budget?** "]
    budget = budget_table(curves, paper_epochs) if curves is not None and len(curves) else pd.DataFrame()
    if budget.empty:
        return [*out, "No learning curves.\n"]
    rising = budget.loc[budget["still_rising"], "label"].tolist()
    fraction = budget["paper_fraction"]
    return [
        *out,
        f"Each model saw {fraction.min():.1%}-{fraction.max():.1%} of the paper's image-steps "
        f"({paper_epochs} epochs). Validation Dice was still rising at the last epoch (gain > {STILL_RISING}) "
        f"for: {', '.join(rising) or 'none'}; a model still rising would gain more from the paper's budget, "
        "so its gap to the paper is at least partly the budget.\n",
        "\n" + _budget_markdown(budget),
    ]


def answer_questions(
    summary: pd.DataFrame,
    paper: pd.DataFrame | None,
    curves: pd.DataFrame | None,
    passing: Collection[str],
    paper_epochs: int = PAPER_EPOCHS,
) -> str:
    """Markdown answering the reproduction questions from this run's Table 1, the paper's and the learning curves.

    Parameters
    ----------
    summary : DataFrame
        Table 1 summary (experiment, dice_mean, hd_px_mean, nonpos_jac_*_pct_mean, incorrect_topology, n_test;
        label optional).
    paper : DataFrame or None
        The paper's Table 1 (:data:`tedsnet.reporting.paper.PAPER_TABLE1_COLUMNS`).
    curves : DataFrame or None
        learning_curves.csv (experiment, seed, epoch, images_seen, val_dice).
    passing : collection of str
        Experiments past the under-training guard (:meth:`tedsnet.reporting.verdict.Verdict.passing`); a row
        below it gets no topology conclusion.
    paper_epochs : int
        The paper's epochs.

    Returns
    -------
    str
        One bold question per paragraph, each followed by its answer (and a table where one helps).
    """
    ours, theirs = _by_experiment(summary), paper_rows(paper)
    labels = summary_labels(summary)
    out = [
        _answer_tedsnet_topology(ours, passing),
        _answer_unet_topology(ours, theirs, labels, passing),
        *_answer_jacobian_pattern(summary, paper),
        _answer_dice_hd(ours, theirs, labels),
        *_answer_budget(curves, paper_epochs),
    ]
    return "".join(out)
