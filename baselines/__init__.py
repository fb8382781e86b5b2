"""Baseline models of the paper's Table 1, with TEDS-Net's interface.

Every model takes ``forward(image, prior)`` with image (B, 1, H, W) and prior (B or 1, 1, H, W) and returns a
:class:`tedsnet.network.outputs.SegmentationOutput`. The tedsnet core never imports this package; the experiment registry
(:mod:`tedsnet.experiments`) is the one bridge.

- :class:`~baselines.unet.UNet`: the paper's U-Net, built from TEDS-Net's own blocks.
- :class:`~baselines.smp_unet.SMPUNet`: segmentation-models-pytorch's U-Net (random init, no download).
- :class:`~baselines.voxelmorph.VoxelMorph`: the ``voxelmorph`` package's pairwise network warping the prior.
- :class:`~baselines.postprocess.PostProcessedUNet`: the paper's U-Net with the usual morphological fix of its
  prediction; :mod:`baselines.topology_losses` holds the topology losses of the clDice and PH-loss U-Nets.

The classes are imported lazily (``from baselines import VoxelMorph`` imports voxelmorph only then), so using one
baseline does not pay for importing the others' packages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["PostProcessedUNet", "SMPUNet", "UNet", "VoxelMorph"]

_MODULES = {
    "PostProcessedUNet": "baselines.postprocess",
    "SMPUNet": "baselines.smp_unet",
    "UNet": "baselines.unet",
    "VoxelMorph": "baselines.voxelmorph",
}

if TYPE_CHECKING:
    from baselines.postprocess import PostProcessedUNet
    from baselines.smp_unet import SMPUNet
    from baselines.unet import UNet
    from baselines.voxelmorph import VoxelMorph


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'baselines' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
