"""Montage PNG of sample slices with their myocardium outlines (a quick visual check of a prepared dataset).

Uses matplotlib's object API with the Agg canvas (no display, no global pyplot state). Never commit montages made
from ACDC (its licence forbids redistributing the images; ``docs/protocol.md``): write them to ignored output
such as ``results/<run>/montage*.png``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tedsnet.io import atomic_path

__all__ = ["write_montage"]


def _checked_slices(
    images: np.ndarray | Sequence[np.ndarray],
    labels: np.ndarray | Sequence[np.ndarray] | None,
    titles: Sequence[str] | None,
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Images as float32 (H, W) arrays and labels as arrays, after checking that they and the titles match."""
    images = [np.asarray(im, dtype=np.float32) for im in images]
    n = len(images)
    if n == 0:
        raise ValueError("write_montage: images is empty; pass at least one (H, W) slice")
    if any(im.ndim != 2 for im in images):
        raise ValueError(
            f"write_montage: every image must be 2-D (H, W), got {[im.shape for im in images][:5]}"
        )
    if labels is not None:
        labels = [np.asarray(lb) for lb in labels]
        if len(labels) != n or any(lb.shape != im.shape for lb, im in zip(labels, images, strict=True)):
            raise ValueError(
                f"write_montage: labels must match images in number and shape, got {len(labels)} labels "
                f"for {n} images; pass one (H, W) mask per image"
            )
    if titles is not None and len(titles) != n:
        raise ValueError(f"write_montage: {len(titles)} titles for {n} images; give one title per image")
    return images, labels


def write_montage(
    png_path: str | os.PathLike,
    images: np.ndarray | Sequence[np.ndarray],
    labels: np.ndarray | Sequence[np.ndarray] | None = None,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    tile_inches: float = 2.0,
    dpi: int = 100,
    color: str = "#ff3b30",
) -> Path:
    """Write a grid of grey-level slices with the outline (0.5 contour) of their labels.

    Parameters
    ----------
    png_path : path-like
        Output PNG; parent folders are created. Written atomically (temporary file + rename).
    images : array (N, H, W) or sequence of (H, W)
        Slices, shown with their own min-max grey range, array axis 0 downwards (as stored).
    labels : array (N, H, W) or sequence of (H, W), optional
        Binary masks outlined on the images.
    titles : sequence of str, optional
        One per image (small font).
    ncols : int, optional
        Grid columns; default ``ceil(sqrt(N))``.
    tile_inches, dpi : float, int
        Size of a tile and resolution.
    color : str
        Outline colour.

    Returns
    -------
    Path
        ``png_path``.

    Raises
    ------
    ValueError
        If there is no image, or labels/titles do not match the images in number or shape.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images, labels = _checked_slices(images, labels, titles)
    n = len(images)
    ncols = int(ncols) if ncols else math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    aspect = images[0].shape[0] / images[0].shape[1]
    fig = Figure(
        figsize=(ncols * tile_inches, nrows * tile_inches * aspect + (0.25 * nrows if titles else 0))
    )
    FigureCanvasAgg(fig)
    for i in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray", interpolation="nearest")
        if labels is not None and np.any(labels[i]) and not np.all(labels[i]):
            ax.contour(labels[i].astype(np.float32), levels=[0.5], colors=[color], linewidths=0.8)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=0.97 if titles else 0.99, wspace=0.03, hspace=0.15
    )
    path = Path(png_path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    return path
