"""Learning curves: validation Dice against epoch and against training images seen, one line per model.

Each training run writes ``history.csv`` (:mod:`tedsnet.training.engine`): one row per epoch with at least ``epoch`` and
``val_dice``; the images seen are read from an ``images_seen`` (or ``images``) column, else computed as
``step * batch_size`` (``step`` = optimiser steps so far), else ``epoch * images per epoch`` when given. Its
``seconds`` column is the cumulative training wall time, every session summed, so :func:`minutes_per_epoch` reads
the time an epoch takes from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tedsnet.io import savefig_atomic
from tedsnet.reporting.labels import row_label

__all__ = ["images_seen", "minutes_per_epoch", "plot_learning_curves", "read_histories"]


def images_seen(history: pd.DataFrame, batch_size: int | None = None) -> pd.Series:
    """Training images seen at the end of each history row.

    Parameters
    ----------
    history : DataFrame
        One training history (``images_seen``, ``images`` or ``step`` column).
    batch_size : int, optional
        Images per optimiser step, used with ``step``.

    Returns
    -------
    Series
        float, NaN when it cannot be known.
    """
    for column in ("images_seen", "images"):
        if column in history.columns:
            return history[column].astype(float)
    if "step" in history.columns and batch_size:
        return history["step"].astype(float) * float(batch_size)
    return pd.Series(np.nan, index=history.index)


def read_histories(
    paths: Mapping[tuple[str, int], str | os.PathLike],
    batch_sizes: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Concatenate training histories.

    Parameters
    ----------
    paths : mapping
        ``(experiment, seed) -> history.csv``.
    batch_sizes : mapping, optional
        Experiment -> batch size, to compute images seen from ``step``.

    Returns
    -------
    DataFrame
        The history columns plus experiment, label, seed and images_seen. Histories without rows are skipped.

    Raises
    ------
    FileNotFoundError
        If a history file is missing.
    ValueError
        If a history has no ``epoch`` or ``val_dice`` column.
    """
    parts = []
    for (experiment, seed), path in paths.items():
        if not os.path.exists(path):
            raise FileNotFoundError(f"read_histories: no history file {path} for {experiment} seed {seed}.")
        history = pd.read_csv(path)
        missing = [c for c in ("epoch", "val_dice") if c not in history.columns]
        if missing:
            raise ValueError(
                f"read_histories: {path} lacks column(s) {missing} (columns: {list(history.columns)})."
            )
        if history.empty:
            continue
        history = history.copy()
        history["images_seen"] = images_seen(history, (batch_sizes or {}).get(experiment))
        history["experiment"] = experiment
        history["label"] = row_label(experiment)
        history["seed"] = int(seed)
        parts.append(history)
    if not parts:
        return pd.DataFrame(columns=["epoch", "val_dice", "images_seen", "experiment", "label", "seed"])
    return pd.concat(parts, ignore_index=True)


def minutes_per_epoch(histories: pd.DataFrame) -> pd.DataFrame:
    """Training minutes per epoch of each trained model, mean over its seeds.

    Parameters
    ----------
    histories : DataFrame
        :func:`read_histories` output (learning_curves.csv): experiment, seed, epoch, seconds (cumulative), and
        optionally images_seen.

    Returns
    -------
    DataFrame
        experiment, n_seeds, epochs (mean over seeds of the epochs trained), minutes_per_epoch (per seed: the
        last cumulative seconds / the last epoch / 60, then the mean over seeds), images_per_epoch (NaN when
        unknown), in order of first appearance. A model with no epoch past 0 (the prior) has no row; no
        ``seconds`` column gives an empty table.

    Examples
    --------
    >>> h = pd.DataFrame({"experiment": "unet", "seed": [0, 0, 1], "epoch": [1, 2, 1],
    ...                   "seconds": [60.0, 120.0, 90.0]})
    >>> float(minutes_per_epoch(h)["minutes_per_epoch"].iloc[0])
    1.25
    """
    columns = ["experiment", "n_seeds", "epochs", "minutes_per_epoch", "images_per_epoch"]
    if histories is None or "seconds" not in histories.columns:
        return pd.DataFrame(columns=columns)
    trained = histories[histories["epoch"] > 0]
    if "images_seen" not in trained.columns:
        trained = trained.assign(images_seen=np.nan)
    rows = []
    for experiment, group in trained.groupby("experiment", sort=False):
        per_seed = group.groupby("seed").agg(
            epochs=("epoch", "max"), seconds=("seconds", "max"), images=("images_seen", "max")
        )
        rows.append(
            {
                "experiment": str(experiment),
                "n_seeds": len(per_seed),
                "epochs": float(per_seed["epochs"].mean()),
                "minutes_per_epoch": float((per_seed["seconds"] / per_seed["epochs"] / 60.0).mean()),
                "images_per_epoch": float((per_seed["images"] / per_seed["epochs"]).mean()),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def plot_learning_curves(histories: pd.DataFrame, path: str | os.PathLike) -> Figure:
    """Draw validation Dice against epoch (left) and against training images seen (right), and save the figure.

    Parameters
    ----------
    histories : DataFrame
        :func:`read_histories` output.
    path : path
        Output file (PNG or PDF by suffix, written atomically).

    Returns
    -------
    Figure
        One colour per model (named by its display name in the legend), one line style per seed when there are
        several; an untrained row (the prior) is a dashed horizontal line.
    """
    sns.set_theme(style="whitegrid", context="paper")
    fig = Figure(figsize=(13, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    if histories.empty:
        left.text(0.5, 0.5, "no training history", ha="center", va="center")
    else:
        labels = list(dict.fromkeys(histories["label"]))
        palette = dict(zip(labels, sns.color_palette("tab20", len(labels)), strict=True))
        # Untrained rows (the prior: one row at epoch 0) are drawn as horizontal reference lines.
        trained = histories.groupby("label")["epoch"].transform("max") > 0
        for label, value in histories[~trained].groupby("label", sort=False)["val_dice"].mean().items():
            for ax in (left, right):
                ax.axhline(value, color=palette[label], linestyle="--", linewidth=1.0)
            right.plot([], [], color=palette[label], linestyle="--", label=f"{label} (untrained)")
        curves = histories[trained]
        style = "seed" if curves["seed"].nunique() > 1 else None
        kwargs = dict(hue="label", palette=palette, style=style, marker="o", markersize=3, errorbar=None)
        if len(curves):
            sns.lineplot(data=curves, x="epoch", y="val_dice", ax=left, legend=False, **kwargs)
        seen = curves.dropna(subset=["images_seen"])
        if len(seen):
            sns.lineplot(data=seen, x="images_seen", y="val_dice", ax=right, **kwargs)
        elif len(curves):
            right.text(0.5, 0.5, "images seen unknown", ha="center", va="center")
        if right.get_legend_handles_labels()[0]:
            right.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    left.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    left.set(xlabel="epoch", ylabel="validation Dice", ylim=(0, 1))
    right.set(xlabel="training images seen", ylabel="validation Dice", ylim=(0, 1))
    savefig_atomic(fig, path, dpi=150)
    return fig
