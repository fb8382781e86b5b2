"""Display names: the one place that turns an experiment or sweep name into the text a table or figure shows.

Every table, figure legend and report sentence names a row through :func:`row_label` (or the ``label`` column that
:func:`experiment_labels` fills), so ``unet_smp`` reads as ``"U-Net (smp)"`` everywhere.
"""

from __future__ import annotations

import re

import pandas as pd

from tedsnet.experiments import EXPERIMENTS

__all__ = [
    "METRIC_NAMES",
    "SWEEP_NAMES",
    "TABLE1_LABELS",
    "experiment_labels",
    "row_label",
    "summary_labels",
    "sweep_label",
]

#: Experiment name -> row label of Table 1, in the table's order.
TABLE1_LABELS: dict[str, str] = {
    "prior": "Prior (zero fields)",
    "unet": "U-Net (paper)",
    "unet_smp": "U-Net (smp)",
    "voxelmorph": "VoxelMorph",
    "A1": "A1 no Gaussian / L_Grad / super upsample",
    "A2": "A2 no Gaussian",
    "A3": "A3 no L_Grad",
    "A4": "A4 no super upsample",
    "A5": "A5 bulk branch only",
    "A6": "A6 fine-tune branch only",
    "tedsnet": "TEDS-Net",
}

#: Figure 4 sweep (a TEDS-Net argument) -> what it is called in tables and on axes.
SWEEP_NAMES: dict[str, str] = {
    "int_steps": "integration layers",
    "prior_radius": "prior radius (px)",
}

#: Per-case metric column -> its name in table headers (incorrect_topology: the share of cases whose Betti numbers
#: are not the ring's).
METRIC_NAMES: dict[str, str] = {
    "dice": "Dice",
    "hd_px": "HD (px)",
    "hd_mm": "HD (mm)",
    "hd95_px": "HD95 (px)",
    "hd95_mm": "HD95 (mm)",
    "assd_px": "ASSD (px)",
    "assd_mm": "ASSD (mm)",
    "betti_error": "Betti error",
    "euler_error": "Euler characteristic error",
    "betti_matching_error": "Betti matching error",
    "incorrect_topology": "Incorrect topology (%)",
}

#: Token of a Figure 4 variant's experiment name (``tedsnet_steps4``) -> the sweep it belongs to.
_VARIANT_TOKENS = {"steps": "int_steps", "radius": "prior_radius", "epochs": "epochs"}
_VARIANT = re.compile(r"^(?P<base>.+?)_(?P<token>steps|radius|epochs)(?P<value>[0-9]+(?:\.[0-9]+)?)$")


def row_label(experiment: str) -> str:
    """Display name of an experiment.

    Parameters
    ----------
    experiment : str
        A Table 1 experiment (``"unet_smp"``), a Figure 4 variant (``"tedsnet_steps4"``, ``"tedsnet_radius20"``) or
        any other name.

    Returns
    -------
    str
        The Table 1 label; ``"<base label> (<sweep> <value>)"`` for a variant of a Table 1 row; the registry's label
        of another registered experiment (a method added with :func:`tedsnet.experiments.register`); else
        ``experiment``.

    Examples
    --------
    >>> row_label("unet_smp")
    'U-Net (smp)'
    >>> row_label("tedsnet_radius22.5")
    'TEDS-Net (prior radius 22.5)'
    >>> row_label("unet_epochs12")
    'U-Net (paper) (epochs 12)'
    """
    if experiment in TABLE1_LABELS:
        return TABLE1_LABELS[experiment]
    match = _VARIANT.match(experiment)
    if match and match["base"] in TABLE1_LABELS:
        sweep = sweep_label(_VARIANT_TOKENS[match["token"]], with_unit=False)
        return f"{TABLE1_LABELS[match['base']]} ({sweep} {match['value']})"
    registered = EXPERIMENTS.get(experiment)
    return registered.label if registered is not None else experiment


def sweep_label(sweep: str, with_unit: bool = True) -> str:
    """Display name of a Figure 4 sweep (``"int_steps"`` -> ``"integration layers"``); unknown sweeps unchanged.

    ``with_unit=False`` drops a trailing ``" (px)"``-style unit, for use inside a row label.
    """
    name = SWEEP_NAMES.get(sweep, sweep)
    return name if with_unit else re.sub(r" \([^)]*\)$", "", name)


def experiment_labels(metrics: pd.DataFrame) -> dict[str, str]:
    """Display name of every experiment of a per-case table.

    Parameters
    ----------
    metrics : DataFrame
        Per-case rows with an ``experiment`` column and optionally a ``label`` column (the registry label the
        evaluation wrote, used for methods :func:`row_label` does not know).

    Returns
    -------
    dict
        Experiment -> display name, in order of first appearance.
    """
    labels = {}
    for experiment in dict.fromkeys(metrics["experiment"].astype(str)):
        label = row_label(experiment)
        if label == experiment and "label" in metrics.columns:
            given = metrics.loc[metrics["experiment"].astype(str) == experiment, "label"].dropna()
            if len(given):
                label = str(given.iloc[0])
        labels[experiment] = label
    return labels


def summary_labels(summary: pd.DataFrame) -> dict[str, str]:
    """Experiment -> display name of a Table 1 summary: its ``label`` column, else :func:`row_label`."""
    experiments = summary["experiment"].astype(str)
    if "label" not in summary.columns:
        return {e: row_label(e) for e in experiments}
    return {e: str(label) for e, label in zip(experiments, summary["label"], strict=True)}
