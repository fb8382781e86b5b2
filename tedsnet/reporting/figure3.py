"""A Figure 3-style grid: test cases where a U-Net's topology is wrong, each model's contour over the image.

The figure shows test images: never commit it for real ACDC (the suite's .gitignore keeps it out except for the
phantom default run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from tedsnet.io import savefig_atomic
from tedsnet.reporting.labels import row_label

__all__ = ["CONTOUR_COLOURS", "plot_figure3", "select_figure3_cases"]

#: Contour colour per experiment (others cycle through the fallback list).
CONTOUR_COLOURS: dict[str, str] = {
    "reference": "yellow",
    "unet": "red",
    "unet_smp": "orange",
    "tedsnet": "cyan",
}
_FALLBACK = ("magenta", "lime", "white", "blue")


def select_figure3_cases(
    metrics: pd.DataFrame,
    unets: Sequence[str] = ("unet", "unet_smp"),
    max_cases: int = 6,
) -> list[str]:
    """Test cases whose U-Net prediction is not one ring, worst Dice first.

    Parameters
    ----------
    metrics : DataFrame
        Per-case rows (experiment, case_id, correct_topology, dice; optional seed: the lowest seed is used).
    unets : sequence of str
        U-Net experiments to look at.
    max_cases : int
        At most this many cases.

    Returns
    -------
    list of str
        case ids; a case wrong for several U-Nets comes first, then the lower U-Net Dice.
    """
    if max_cases < 1:
        raise ValueError(f"select_figure3_cases: max_cases must be >= 1, got {max_cases}.")
    sub = metrics[metrics["experiment"].astype(str).isin(list(unets))]
    if "seed" in sub.columns and len(sub):
        sub = sub[sub["seed"] == sub.groupby("experiment")["seed"].transform("min")]
    wrong = sub[~sub["correct_topology"].astype(bool)]
    if wrong.empty:
        return []
    ranked = wrong.groupby("case_id").agg(n=("experiment", "nunique"), dice=("dice", "min"))
    ranked = ranked.sort_values(["n", "dice"], ascending=[False, True], kind="stable")
    return ranked.index.astype(str).tolist()[:max_cases]


def _crop_box(reference: np.ndarray, masks: Sequence[np.ndarray], margin: int = 8) -> tuple[slice, slice]:
    """A square window around every contour of one case (the whole image when there is none)."""
    union = np.asarray(reference, dtype=bool).copy()
    for mask in masks:
        union |= np.asarray(mask, dtype=bool)
    height, width = union.shape
    if not union.any():
        return slice(0, height), slice(0, width)
    rows, cols = np.nonzero(union)
    side = min(max(np.ptp(rows), np.ptp(cols)) + 1 + 2 * margin, height, width)
    top = int(np.clip((rows.min() + rows.max() + 1 - side) // 2, 0, height - side))
    left = int(np.clip((cols.min() + cols.max() + 1 - side) // 2, 0, width - side))
    return slice(top, top + side), slice(left, left + side)


def _outline(ax, mask: np.ndarray, **kwargs) -> None:
    """Contour of a binary mask, padded by one background pixel so a mask touching the border is closed."""
    mask = np.pad(np.asarray(mask, dtype=float), 1)
    if mask.any():
        height, width = mask.shape
        ax.contour(np.arange(-1, width - 1), np.arange(-1, height - 1), mask, levels=[0.5], **kwargs)


def _empty_figure(path: str | os.PathLike) -> Figure:
    fig = Figure(figsize=(3.5, 1.0), layout="constrained")
    ax = fig.subplots()
    ax.text(0.5, 0.5, "No test case with a wrong U-Net topology", ha="center", va="center", fontsize=8)
    ax.set_axis_off()
    savefig_atomic(fig, path, dpi=300)
    return fig


def _check_inputs(
    images: np.ndarray,
    references: np.ndarray,
    masks: Mapping[str, np.ndarray],
    case_ids: Sequence[str] | None,
    betti: Mapping[str, Sequence[tuple[int, int]]] | None,
) -> None:
    k = int(images.shape[0]) if images.ndim == 3 else 0
    for name, arr in {"references": references, **masks}.items():
        if k and np.asarray(arr).shape != images.shape:
            raise ValueError(
                f"plot_figure3: {name} has shape {np.asarray(arr).shape}; expected the shape of images {images.shape}."
            )
    for name, values in {"case_ids": case_ids, **(betti or {})}.items():
        if values is not None and len(values) != k:
            raise ValueError(f"plot_figure3: {name} has {len(values)} entries; expected one per case ({k}).")


def _draw_panel(
    ax, image: np.ndarray, reference: np.ndarray, mask: np.ndarray, colour: str, corner: str | None
):
    """One case and one model: the image, the dashed reference, the prediction's contour, its Betti numbers."""
    ax.imshow(image, cmap="gray", interpolation="nearest")
    _outline(ax, reference, colors=CONTOUR_COLOURS["reference"], linewidths=0.8, linestyles="--")
    _outline(ax, mask, colors=colour, linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if corner is not None:
        ax.text(
            0.03,
            0.97,
            corner,
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=6,
            color="white",
            bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.0, "linewidth": 0},
        )


def plot_figure3(
    images: np.ndarray,
    references: np.ndarray,
    masks: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    case_ids: Sequence[str] | None = None,
    betti: Mapping[str, Sequence[tuple[int, int]]] | None = None,
) -> Figure:
    """Draw the grid (one row per case, one column per model) and save it (PNG or PDF by suffix).

    Each panel shows the image cropped around the case's contours, the reference as a dashed yellow contour and one
    model's prediction in its colour (:data:`CONTOUR_COLOURS`); columns are titled with the models' display names.

    Parameters
    ----------
    images : array (K, H, W)
        The test images.
    references : array (K, H, W)
        Reference masks.
    masks : mapping
        Experiment name -> binary predictions (K, H, W), one column each, in the mapping's order.
    path : path
        Output file (written atomically, 300 dpi).
    case_ids : sequence of str, optional
        One row label per case.
    betti : mapping, optional
        Experiment name -> the Betti numbers (b0, b1) of its prediction per case, written in the panel's corner.

    Returns
    -------
    Figure
        A text-only figure when K = 0.

    Raises
    ------
    ValueError
        If a mask stack does not have the shape of ``images``, or ``case_ids`` / ``betti`` do not give K entries.
    """
    images = np.asarray(images)
    k = int(images.shape[0]) if images.ndim == 3 else 0
    _check_inputs(images, references, masks, case_ids, betti)
    if k == 0 or not masks:
        return _empty_figure(path)
    fallback = iter(_FALLBACK * 4)
    colours = {name: CONTOUR_COLOURS.get(name) or next(fallback) for name in masks}
    fig = Figure(figsize=(0.3 + 1.15 * len(masks), 0.45 + 1.15 * k), layout="constrained")
    axes = fig.subplots(k, len(masks), squeeze=False)
    for i in range(k):
        window = _crop_box(references[i], [arr[i] for arr in masks.values()])
        for j, (name, arr) in enumerate(masks.items()):
            corner = None if betti is None or name not in betti else "({}, {})".format(*betti[name][i])
            _draw_panel(
                axes[i, j], images[i][window], references[i][window], arr[i][window], colours[name], corner
            )
            if i == 0:
                axes[i, j].set_title(row_label(name), fontsize=7)
        if case_ids is not None:
            axes[i, 0].set_ylabel(str(case_ids[i]), fontsize=6)
    handles = [Line2D([], [], color=CONTOUR_COLOURS["reference"], linestyle="--", label="reference")]
    handles += [Line2D([], [], color=colours[n], label=row_label(n)) for n in masks]
    if betti:
        handles.append(
            Line2D([], [], linestyle="none", label="corner: Betti numbers (b0, b1); a ring is (1, 1)")
        )
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=6, frameon=False)
    savefig_atomic(fig, path, dpi=300)
    return fig
