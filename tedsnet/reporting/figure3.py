"""A Figure 3-style panel: test cases where a U-Net's topology is wrong, U-Net and TEDS-Net contours over the image.

Never commit this figure for real ACDC (it shows patient images); the suite's .gitignore keeps it out except for
the phantom default run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from tedsnet.io import savefig_atomic
from tedsnet.reporting.table1 import row_label

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


def plot_figure3(
    images: np.ndarray,
    references: np.ndarray,
    masks: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Draw the panel and save it (PNG or PDF by suffix).

    Parameters
    ----------
    images : array (K, H, W)
        The test images.
    references : array (K, H, W)
        Reference masks, drawn as a dashed contour.
    masks : mapping
        Experiment name -> binary predictions (K, H, W); each drawn as a contour.
    path : path
        Output file.
    titles : sequence of str, optional
        One title per case (e.g. case id and Betti numbers).

    Returns
    -------
    Figure
        With one column per case (a text panel when K = 0).
    """
    images = np.asarray(images)
    k = int(images.shape[0]) if images.ndim == 3 else 0
    for name, arr in {"references": references, **masks}.items():
        if k and np.asarray(arr).shape != images.shape:
            raise ValueError(f"plot_figure3: {name} must have the shape of images {images.shape}.")
    cols = max(k, 1)
    fig = Figure(figsize=(3.0 * cols, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, cols, squeeze=False)[0])
    if k == 0:
        axes[0].text(
            0.5, 0.5, "No test case with a wrong U-Net topology", ha="center", va="center", wrap=True
        )
        axes[0].set_axis_off()
        savefig_atomic(fig, path, dpi=150)
        return fig
    colours = {}
    fallback = iter(_FALLBACK * 4)
    for name in masks:
        colours[name] = CONTOUR_COLOURS.get(name) or next(fallback)
    height, width = images.shape[1:]
    # Contours of the masks padded by one background pixel, so a mask touching the border (or filling the whole
    # image) still gets its outline.
    rows, cols = np.arange(-1, height + 1), np.arange(-1, width + 1)

    def outline(ax, mask, **kwargs):
        mask = np.pad(np.asarray(mask, dtype=float), 1)
        if mask.any():
            ax.contour(cols, rows, mask, levels=[0.5], **kwargs)

    for i, ax in enumerate(axes):
        ax.imshow(images[i], cmap="gray", interpolation="nearest")
        outline(ax, references[i], colors=CONTOUR_COLOURS["reference"], linewidths=0.8, linestyles="--")
        for name, arr in masks.items():
            outline(ax, arr[i], colors=colours[name], linewidths=1.0)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    handles = [Line2D([], [], color=CONTOUR_COLOURS["reference"], linestyle="--", label="reference")]
    handles += [Line2D([], [], color=colours[n], label=row_label(n)) for n in masks]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    savefig_atomic(fig, path, dpi=150)
    return fig
