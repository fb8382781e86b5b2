"""The under-training verdict: is a run trained well enough for its topology counts to mean anything?

A model that has not learnt the task yet can have wrong topologies (or none) for reasons unrelated to its design, so
the report draws a topology conclusion only from a run whose guarded rows pass. A row passes when its mean Dice is at
least :data:`GUARD_MIN_DICE` and at least the prior row's mean Dice + :data:`GUARD_MARGIN`. The run-level verdict
rests on TEDS-Net and the U-Nets (:data:`GUARD_ROWS`); every other row is flagged individually and, below the guard,
left out of any topology comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tedsnet.reporting.labels import summary_labels

__all__ = ["GUARD_MARGIN", "GUARD_MIN_DICE", "GUARD_ROWS", "VERDICT_STATUSES", "Verdict", "training_verdict"]

#: Minimum mean Dice of a guarded row.
GUARD_MIN_DICE = 0.70
#: Minimum margin of a guarded row's mean Dice over the prior row's.
GUARD_MARGIN = 0.2
#: Rows the run-level verdict rests on.
GUARD_ROWS: tuple[str, ...] = ("tedsnet", "unet", "unet_smp")
#: The values of :attr:`Verdict.status`.
VERDICT_STATUSES: tuple[str, ...] = ("trained", "under-trained", "not assessable")


@dataclass(frozen=True)
class Verdict:
    """Result of the under-training guard.

    Attributes
    ----------
    status : str
        ``"trained"`` (every guarded row present passes), ``"under-trained"`` (one fails) or ``"not assessable"``
        (TEDS-Net or every U-Net is missing).
    reasons : tuple of str
        One sentence per failing or missing guarded row.
    rows : DataFrame
        Every row but the prior: experiment, label, dice_mean, required, passes, guarded.
    min_dice, prior_margin : float
        The guard's thresholds (see :func:`training_verdict`).
    """

    status: str
    reasons: tuple[str, ...]
    rows: pd.DataFrame
    min_dice: float = GUARD_MIN_DICE
    prior_margin: float = GUARD_MARGIN

    @property
    def under_trained(self) -> bool:
        """True when a guarded row is below the guard."""
        return self.status == "under-trained"

    @property
    def topology_conclusion_allowed(self) -> bool:
        """Only a trained run supports a topology conclusion."""
        return self.status == "trained"

    def passing(self) -> list[str]:
        """Experiments (non-prior) whose mean Dice passes the guard."""
        return self.rows.loc[self.rows["passes"], "experiment"].tolist()


def _rule(required: float, min_dice: float, prior_dice: float, prior_margin: float) -> str:
    if not np.isfinite(prior_dice):
        return f"mean Dice >= {min_dice:.2f} (no prior row in this run)"
    return (
        f"mean Dice >= {required:.3f} (max of {min_dice:.2f} and prior {prior_dice:.3f} + {prior_margin:.1f})"
    )


def training_verdict(
    summary: pd.DataFrame,
    guard_rows: Sequence[str] = GUARD_ROWS,
    min_dice: float = GUARD_MIN_DICE,
    prior_margin: float = GUARD_MARGIN,
    prior: str = "prior",
) -> Verdict:
    """Apply the under-training guard to a Table 1 summary.

    Parameters
    ----------
    summary : DataFrame
        :func:`tedsnet.reporting.table1.summarise_table1` output (experiment, dice_mean; label optional).
    guard_rows : sequence of str
        Rows the run-level verdict rests on (TEDS-Net and the U-Nets).
    min_dice, prior_margin : float
        A row passes when its mean Dice >= max(min_dice, prior Dice + prior_margin) (the prior term is dropped
        when the run has no prior row).
    prior : str
        Name of the prior row.

    Returns
    -------
    Verdict

    Examples
    --------
    >>> summary = pd.DataFrame({"experiment": ["prior", "unet", "tedsnet"], "dice_mean": [0.3, 0.65, 0.85]})
    >>> training_verdict(summary).status
    'under-trained'
    """
    dice = dict(zip(summary["experiment"].astype(str), summary["dice_mean"].astype(float), strict=True))
    labels = summary_labels(summary)
    prior_dice = dice.get(prior, math.nan)
    required = min_dice if not np.isfinite(prior_dice) else max(min_dice, prior_dice + prior_margin)
    rows = [
        {
            "experiment": experiment,
            "label": labels[experiment],
            "dice_mean": value,
            "required": required,
            "passes": bool(np.isfinite(value) and value >= required),
            "guarded": experiment in guard_rows,
        }
        for experiment, value in dice.items()
        if experiment != prior
    ]
    table = pd.DataFrame(rows, columns=["experiment", "label", "dice_mean", "required", "passes", "guarded"])
    rule = _rule(required, min_dice, prior_dice, prior_margin)
    reasons = [
        f"{r['label']}: mean Dice {r['dice_mean']:.3f} fails the guard ({rule})."
        for _, r in table[table["guarded"]].iterrows()
        if not r["passes"]
    ]
    has_teds = "tedsnet" in dice
    has_unet = any(u in dice for u in guard_rows if u != "tedsnet")
    if reasons:
        status = "under-trained"
    elif not (has_teds and has_unet):
        status = "not assessable"
        reasons.append("TEDS-Net and at least one U-Net are needed to judge the run; one is missing.")
    else:
        status = "trained"
    return Verdict(
        status=status, reasons=tuple(reasons), rows=table, min_dice=min_dice, prior_margin=prior_margin
    )
