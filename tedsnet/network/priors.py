"""The binary ring prior that TEDS-Net deforms (paper section 2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ring_prior(
    shape: Sequence[int],
    radius: float,
    thickness: float,
    center: Sequence[float] | None = None,
) -> np.ndarray:
    """Rasterise a ring (annulus) at pixel centres.

    Parameters
    ----------
    shape : (H, W)
        Output size in pixels.
    radius : float
        OUTER radius in pixels (paper: 30; the authors' code default: 35).
    thickness : float
        Ring thickness in pixels (the authors' code: 7). A pixel is foreground when
        ``radius - thickness < |x - c| <= radius``.
    center : (row, col), optional
        Ring centre in pixel coordinates; default the array centre ``((H - 1) / 2, (W - 1) / 2)``.

    Returns
    -------
    np.ndarray
        bool (H, W).

    Raises
    ------
    ValueError
        If the shape is not two positive integers, or radius/thickness are not positive with thickness <= radius.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) <= 0:
        raise ValueError(f"ring_prior: shape must be two positive integers (H, W), got {shape}.")
    if not radius > 0:
        raise ValueError(f"ring_prior: radius must be > 0 pixels, got {radius}.")
    if not 0 < thickness <= radius:
        raise ValueError(
            f"ring_prior: thickness must satisfy 0 < thickness <= radius ({radius}), got {thickness}."
        )
    if center is None:
        center = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    if len(center) != 2:
        raise ValueError(f"ring_prior: center must be (row, col), got {center}.")
    rows = np.arange(shape[0], dtype=np.float64)[:, None] - float(center[0])
    cols = np.arange(shape[1], dtype=np.float64)[None, :] - float(center[1])
    distance = np.sqrt(rows**2 + cols**2)
    return (distance > radius - thickness) & (distance <= radius)
