"""The usual morphological fix of a ring segmentation, and the U-Net whose prediction it post-processes.

:func:`postprocess_ring` keeps the largest 4-connected component, closes small gaps with a disk and fills every
hole but the largest (the LV cavity). The connectivities are those of the suite's topology metric
(:func:`tedsnet.evaluation.metrics.betti_numbers`): 4-connected foreground, 8-connected background.
:class:`PostProcessedUNet` is the trained paper U-Net followed by that fix; it is never trained.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from baselines.unet import UNet
from tedsnet.network.outputs import THRESHOLD, SegmentationOutput

__all__ = [
    "PostProcessedUNet",
    "binary_closing_disk",
    "disk",
    "fill_holes_except_largest",
    "largest_component",
    "postprocess_ring",
]

#: scipy structuring elements by connectivity: 4 joins along edges, 8 also at corners.
_STRUCTURES = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


def _as_bool_mask(mask, name: str) -> np.ndarray:
    """``mask`` as a bool (H, W) array; ValueError if it is not 2-D."""
    arr = np.asarray(mask, dtype=bool)
    if arr.ndim != 2:
        raise ValueError(f"{name}: mask must be 2-D (H, W), got shape {arr.shape}; pass one slice at a time.")
    return arr


def largest_component(mask, connectivity: int = 4) -> np.ndarray:
    """The largest connected foreground component of a binary mask.

    Parameters
    ----------
    mask : array (H, W)
        Binary mask (any dtype; non-zero is foreground).
    connectivity : {4, 8}
        Foreground connectivity; 4 is the suite's protocol.

    Returns
    -------
    ndarray (H, W) of bool
        The largest component (the first in raster order on a tie); all False for an empty mask.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D or ``connectivity`` is not 4 or 8.

    Examples
    --------
    >>> largest_component(np.array([[1, 0, 1, 1]])).astype(int).tolist()
    [[0, 0, 1, 1]]
    """
    mask = _as_bool_mask(mask, "largest_component")
    if connectivity not in _STRUCTURES:
        raise ValueError(f"largest_component: connectivity must be 4 or 8, got {connectivity}.")
    labels, count = ndimage.label(mask, structure=_STRUCTURES[connectivity])
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


def disk(radius_px: int) -> np.ndarray:
    """The (2r+1, 2r+1) bool disk ``row**2 + col**2 <= r**2`` (one True pixel for r = 0)."""
    offsets = np.arange(-radius_px, radius_px + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius_px**2


def binary_closing_disk(mask, radius_px: int) -> np.ndarray:
    """Binary closing (dilation then erosion) of a mask with a disk, without shrinking it at the image border.

    Parameters
    ----------
    mask : array (H, W)
        Binary mask.
    radius_px : int
        Disk radius in pixels, >= 0; 0 returns the mask unchanged. Closes gaps up to about ``2 * radius_px``
        pixels wide.

    Returns
    -------
    ndarray (H, W) of bool
        The closed mask, a superset of ``mask``.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D or ``radius_px`` is not a non-negative integer.

    Examples
    --------
    >>> band = np.ones((3, 5)); band[:, 2] = 0  # a 1-pixel gap through a 3-pixel-wide band
    >>> binary_closing_disk(band, 1).astype(int).tolist()
    [[1, 1, 0, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 1, 1]]
    """
    mask = _as_bool_mask(mask, "binary_closing_disk")
    if int(radius_px) != radius_px or radius_px < 0:
        raise ValueError(
            f"binary_closing_disk: radius_px must be an integer >= 0 (pixels), got {radius_px!r}."
        )
    radius_px = int(radius_px)
    if radius_px == 0:
        return mask.copy()
    # scipy's erosion treats the outside as background, which would eat the mask where it touches the border.
    padded = np.pad(mask, radius_px)
    closed = ndimage.binary_closing(padded, structure=disk(radius_px))
    return closed[radius_px:-radius_px, radius_px:-radius_px]


def fill_holes_except_largest(mask) -> np.ndarray:
    """Fill every hole of a binary mask except the largest one (a ring's cavity).

    A hole is an 8-connected background component that does not touch the image border (the background
    connectivity of the suite's Betti numbers).

    Parameters
    ----------
    mask : array (H, W)
        Binary mask.

    Returns
    -------
    ndarray (H, W) of bool
        ``mask`` with all holes smaller than the largest filled (the first largest in raster order stays open on a
        tie); unchanged when it has at most one hole.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D.

    Examples
    --------
    >>> mask = np.ones((5, 7), bool); mask[1:4, 1:3] = False; mask[2, 5] = False  # a 6-pixel and a 1-pixel hole
    >>> int(fill_holes_except_largest(mask).sum() - mask.sum())
    1
    """
    mask = _as_bool_mask(mask, "fill_holes_except_largest")
    labels, count = ndimage.label(~mask, structure=_STRUCTURES[8])
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    sizes[border] = 0
    if np.count_nonzero(sizes) <= 1:
        return mask.copy()
    holes = np.flatnonzero(sizes)
    fill = holes[holes != int(np.argmax(sizes))]
    return mask | np.isin(labels, fill)


def postprocess_ring(mask, closing_radius_px: int = 1) -> np.ndarray:
    """The usual morphological fix of a ring mask: largest 4-connected component, disk closing, small holes filled.

    Parameters
    ----------
    mask : array (H, W)
        Binary mask.
    closing_radius_px : int
        Radius of the closing disk in pixels, >= 0 (0: no closing).

    Returns
    -------
    ndarray (H, W) of bool
        One 4-connected component (or nothing for an empty mask) with at most one hole.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D or ``closing_radius_px`` is negative.

    Examples
    --------
    >>> from tedsnet.network.priors import ring_prior
    >>> ring = ring_prior((40, 40), 15, 5) > 0.5
    >>> noisy = ring.copy(); noisy[0, 0] = True; noisy[20, 32] = False  # an island, a 1-pixel hole in the band
    >>> bool((postprocess_ring(noisy) == ring).all())
    True
    """
    kept = largest_component(mask, connectivity=4)
    return fill_holes_except_largest(binary_closing_disk(kept, closing_radius_px))


class PostProcessedUNet(UNet):
    """The paper U-Net with its binarised prediction post-processed by :func:`postprocess_ring`; never trained.

    Same parameters and state-dict keys as :class:`baselines.unet.UNet`, so a trained U-Net's checkpoint loads
    into it with ``strict=True``.

    Parameters
    ----------
    *args, **kwargs
        :class:`~baselines.unet.UNet`'s parameters.
    threshold : float
        Foreground where the U-Net's probability is ``>= threshold``, in (0, 1].
    closing_radius_px : int
        Radius of the closing disk in pixels, >= 0.

    Raises
    ------
    ValueError
        If ``threshold`` is not in (0, 1] or ``closing_radius_px`` is not a non-negative integer.

    Notes
    -----
    ``forward(image, prior=None)`` returns :class:`~tedsnet.network.outputs.SegmentationOutput` with segmentation
    (B, 1, H, W) in {0, 1} (the U-Net's dtype and device) and no displacements; no gradient flows through it.
    """

    def __init__(self, *args, threshold: float = THRESHOLD, closing_radius_px: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"PostProcessedUNet: threshold must be in (0, 1], got {threshold}.")
        if int(closing_radius_px) != closing_radius_px or closing_radius_px < 0:
            raise ValueError(
                f"PostProcessedUNet: closing_radius_px must be an integer >= 0 (pixels), got {closing_radius_px!r}."
            )
        self.threshold = float(threshold)
        self.closing_radius_px = int(closing_radius_px)

    @torch.no_grad()
    def forward(self, image: Tensor, prior: Tensor | None = None) -> SegmentationOutput:
        """The U-Net's segmentation, binarised and post-processed image by image; see the class docstring."""
        out = super().forward(image, prior)
        seg = out.segmentation
        masks = (seg >= self.threshold).cpu().numpy()[:, 0]
        fixed = np.stack([postprocess_ring(m, self.closing_radius_px) for m in masks])[:, None]
        return SegmentationOutput(
            segmentation=torch.from_numpy(fixed).to(device=seg.device, dtype=seg.dtype),
            displacements=out.displacements,
        )
