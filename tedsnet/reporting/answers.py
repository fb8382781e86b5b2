"""The reproduction questions of a run, answered from its numbers beside the paper's (a section of report.md).

Questions (issue 7): does TEDS-Net keep 100 % correct topology? do the U-Nets lose some once past the guard? do
A1-A3 show non-positive Jacobians and topology errors while A4-A6 and TEDS-Net show none? where do Dice and HD
land against the paper? how much of the gap is the reduced training budget (validation Dice against epochs)?
Every sentence is computed from the tables given; nothing is asserted that the numbers do not show.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tedsnet.reporting.table1 import markdown_table, row_label

__all__ = ["PAPER_EPOCHS", "answer_questions", "budget_table", "jacobian_pattern"]

#: Epochs of the paper's protocol (section 2.1).
PAPER_EPOCHS = 200
#: Rows in which the paper reports folds and topology errors, and rows in which it reports none.
FOLDING_ROWS = ("A1", "A2", "A3")
DIFFEOMORPHIC_ROWS = ("A4", "A5", "A6", "tedsnet")
#: A rise of the last epoch's validation Dice above this is read as "still improving".
STILL_RISING = 0.005


def _by_experiment(summary: pd.DataFrame) -> dict[str, pd.Series]:
    return {str(r["experiment"]): r for _, r in summary.iterrows()}


def _paper_rows(paper: pd.DataFrame | None) -> dict[str, pd.Series]:
    from tedsnet.reporting.report import paper_experiment

    if paper is None:
        return {}
    return {paper_experiment(str(r["model"])): r for _, r in paper.iterrows()}


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
    ours, theirs = _by_experiment(summary), _paper_rows(paper)
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
                "label": row_label(e),
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


def answer_questions(
    summary: pd.DataFrame,
    paper: pd.DataFrame | None,
    curves: pd.DataFrame | None,
    passing: list[str],
    paper_epochs: int = PAPER_EPOCHS,
) -> str:
    """Markdown answering the reproduction questions from this run's Table 1, the paper's and the learning curves.

    Parameters
    ----------
    summary : DataFrame
        Table 1 summary (experiment, dice_mean, hd_px_mean, nonpos_jac_*_pct_mean, incorrect_topology, n_test).
    paper : DataFrame or None
        The paper's Table 1 (workflow/resources/paper_table1.csv).
    curves : DataFrame or None
        learning_curves.csv.
    passing : list of str
        Experiments past the under-training guard (:meth:`Verdict.passing`).
    paper_epochs : int
        The paper's epochs.
    """
    ours, theirs = _by_experiment(summary), _paper_rows(paper)
    out = []

    teds = ours.get("tedsnet")
    out.append("**Does TEDS-Net keep 100 % correct topology?** ")
    if teds is None:
        out.append("Not run.\n")
    else:
        n, total = int(teds["incorrect_topology"]), int(teds["n_test"])
        guard = "past the guard" if "tedsnet" in passing else "**below the guard** (no conclusion)"
        verdict = "Yes" if n == 0 else "No"
        out.append(
            f"{verdict}: {_count(n, total)} test slices with incorrect topology (paper 0/100), mean Dice "
            f"{teds['dice_mean']:.3f}, {guard}.\n"
        )

    out.append("\n**Do the U-Nets lose some topologies once trained past the guard?** ")
    parts = []
    for e in ("unet", "unet_smp"):
        o = ours.get(e)
        if o is None:
            continue
        n, total = int(o["incorrect_topology"]), int(o["n_test"])
        state = "past the guard" if e in passing else "below the guard, so this says nothing about topology"
        parts.append(
            f"{row_label(e)}: {_count(n, total)} incorrect at mean Dice {o['dice_mean']:.3f} ({state})"
        )
    p_unet = theirs.get("unet")
    if p_unet is not None:
        parts.append(f"paper U-Net: {int(p_unet['incorrect_topology'])}/{int(p_unet['n_test'])}")
    out.append(("; ".join(parts) + ".\n") if parts else "Not run.\n")

    pattern = jacobian_pattern(summary, paper)
    out.append(
        "\n**Do A1-A3 show non-positive Jacobians and topology errors while A4-A6 and TEDS-Net show none?** "
    )
    if pattern.empty:
        out.append("No ablation row in this run.\n")
    else:
        expected = pattern.assign(
            expected=pattern["experiment"].map(lambda e: "yes" if e in FOLDING_ROWS else "no")
        )
        shown = [
            f"{r['label']}: folds {r['folds']} ({r['folds_pct']:.2f} %), topology errors "
            f"{_count(int(r['topology_errors']), int(r['n_test']))}"
            for _, r in expected.iterrows()
        ]
        match = expected.apply(
            lambda r: (
                (r["folds"] == r["expected"]) and ((r["topology_errors"] > 0) == (r["expected"] == "yes"))
            ),
            axis=1,
        )
        agreeing = expected.loc[match, "label"].tolist()
        differing = expected.loc[~match, "label"].tolist()
        out.append("; ".join(shown) + ". ")
        out.append(
            f"As the paper's pattern predicts (folds and errors in A1-A3, neither in A4-A6 and TEDS-Net): "
            f"{', '.join(agreeing) or 'none'}; otherwise: {', '.join(differing) or 'none'}.\n"
        )
        table = pd.DataFrame(
            {
                "Model": pattern["label"],
                "max % |J| <= 0 (ours)": pattern["folds_pct"].map(
                    lambda v: f"{v:.2f}" if np.isfinite(v) else "—"
                ),
                "max % |J| <= 0 (paper)": pattern["paper_folds_pct"].map(
                    lambda v: f"{v:.2f}" if np.isfinite(v) else "—"
                ),
                "Incorrect topology (ours)": [
                    _count(int(a), int(b))
                    for a, b in zip(pattern["topology_errors"], pattern["n_test"], strict=True)
                ],
                "Incorrect topology (paper)": pattern["paper_topology_errors"].map(
                    lambda v: (
                        "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{int(v)}/100"
                    )
                ),
                "As the paper's row": pattern["agrees"].map({True: "yes", False: "no", None: "—"}),
            }
        )
        out.append("\n" + markdown_table(table))
        out.append(
            "As the paper's row: folds yes/no and topology errors yes/no both as in the paper's own numbers (any "
            "value above 0 counts, so a trace such as the paper's 0.03 % for A5 counts as folding), whereas the "
            "sentence above holds each row to the pattern the paper's text states.\n"
        )

    out.append("\n**Where do Dice and HD land against the paper?** ")
    lines = []
    for e, o in ours.items():
        p = theirs.get(e)
        if p is None:
            continue
        lines.append(
            f"{row_label(e)}: Dice {o['dice_mean']:.3f} vs {float(p['dice_mean']):.2f} "
            f"({o['dice_mean'] - float(p['dice_mean']):+.3f}), HD {o['hd_px_mean']:.2f} px vs "
            f"{float(p['hd_mean']):.2f}"
        )
    out.append(
        ("; ".join(lines) + ". (The paper does not state HD's unit.)\n") if lines else "No paper row.\n"
    )

    out.append("\n**How much of the gap is the reduced budget?** ")
    budget = budget_table(curves, paper_epochs) if curves is not None and len(curves) else pd.DataFrame()
    if budget.empty:
        out.append("No learning curves.\n")
    else:
        rising = budget.loc[budget["still_rising"], "label"].tolist()
        fraction = budget["paper_fraction"]
        out.append(
            f"Each model saw {fraction.min():.1%}-{fraction.max():.1%} of the paper's image-steps "
            f"({paper_epochs} epochs). Validation Dice was still rising at the last epoch (gain > {STILL_RISING}) "
            f"for: {', '.join(rising) or 'none'}; a model still rising would gain more from the paper's budget, "
            "so its gap to the paper is at least partly the budget.\n"
        )
        out.append(
            "\n"
            + markdown_table(
                pd.DataFrame(
                    {
                        "Model": budget["label"],
                        "Epochs": budget["epochs"].astype(str),
                        "Image-steps": budget["images_seen"].map(lambda v: f"{v:,.0f}"),
                        "Share of paper": budget["paper_fraction"].map(lambda v: f"{v:.2%}"),
                        "Val Dice by epoch": budget["val_dice_by_epoch"].map(
                            lambda d: " → ".join(f"{v:.3f}" for v in d)
                        ),
                        "Last gain": budget["last_gain"].map(
                            lambda v: f"{v:+.3f}" if np.isfinite(v) else "—"
                        ),
                    }
                )
            )
        )
    return "".join(out)
