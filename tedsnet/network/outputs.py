"""The fixed, named result every model of the suite returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # annotations only, so the CLI can read THRESHOLD without loading torch
    from torch import Tensor

#: Soft foreground probability at or above which a pixel is foreground (the paper code's binarisation).
THRESHOLD: float = 0.3
#: The displacement fields a model may return, in the order they sample the prior.
FIELD_NAMES: tuple[str, str] = ("bulk", "ft")


class SegmentationOutput(NamedTuple):
    """What ``model(image, prior)`` returns, for TEDS-Net and every baseline.

    Attributes
    ----------
    segmentation : Tensor
        (B, 1, H, W) soft foreground probability in [0, 1] at the input resolution.
    displacements : dict[str, Tensor]
        The fields that sample, keyed ``"bulk"`` and/or ``"ft"``; each (B, 2, h, w) in voxel units of its own
        grid, channel i = array axis i, backward warping (``out[x] = in[x + u(x)]``). Empty for the U-Nets;
        VoxelMorph puts its single field under ``"ft"``.
    """

    segmentation: Tensor
    displacements: dict[str, Tensor]
