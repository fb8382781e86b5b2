"""VoxelMorph baseline on the ``voxelmorph`` package (0.3.4, PyTorch): register the prior to the image."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import voxelmorph as vxm
from torch import Tensor, nn

from tedsnet.network.outputs import SegmentationOutput


class VoxelMorph(nn.Module):
    """voxelmorph's pairwise network with source = prior and target = image; the warped prior is the segmentation.

    Built on ``voxelmorph.nn.models.VxmPairwise`` (2-D, one source and one target channel): its U-Net
    (``neurite`` ``BasicUNet``) and flow layer predict a full-resolution stationary velocity, which voxelmorph's
    ``IntegrateVelocityField`` integrates by scaling and squaring (``int_steps`` squarings after voxelmorph's own
    ``1/2**int_steps`` scaling), and voxelmorph's ``SpatialTransformer`` warps the prior with the displacement. The
    parts are called directly rather than through ``VxmPairwise.forward``, which keeps a reference to the last
    velocity on the module.

    voxelmorph's displacement convention is the suite's (:mod:`tedsnet.network.functional`): voxel units, channel i = array
    axis i, backward warping with corner-aligned grids (``align_corners=True``). The test suite checks that
    :func:`tedsnet.network.functional.warp` with the returned field reproduces voxelmorph's warped prior, so no conversion is
    applied.

    The package default ``nb_features=(16, 16, 16, 16, 16)`` fails at 144 x 208 (its fifth level pools 9 x 13 to
    4 x 6 and the skip concatenation mismatches); ``(16, 32, 32, 32)`` works and has 83,544 trainable parameters.

    Parameters
    ----------
    int_steps : int
        Scaling-and-squaring steps (default 7, the VoxelMorph papers' choice); 0 uses the velocity as the
        displacement.
    nb_features : sequence of int
        Features of each U-Net level (passed to ``VxmPairwise``).

    Raises
    ------
    ValueError
        If ``int_steps`` is not a non-negative integer.

    Notes
    -----
    ``forward(image, prior)``: image (B, 1, H, W), prior (B or 1, 1, H, W) float in [0, 1]. Returns
    :class:`~tedsnet.network.outputs.SegmentationOutput` with segmentation = warped prior clamped to [0, 1], (B, 1, H, W),
    and displacements {"ft": (B, 2, H, W)} in voxels.
    """

    def __init__(self, int_steps: int = 7, nb_features: Sequence[int] = (16, 32, 32, 32)) -> None:
        super().__init__()
        if int(int_steps) != int_steps or int_steps < 0:
            raise ValueError(f"VoxelMorph: int_steps must be a non-negative integer, got {int_steps!r}.")
        self.int_steps = int(int_steps)
        self.net = vxm.nn.models.VxmPairwise(
            ndim=2,
            source_channels=1,
            target_channels=1,
            nb_features=tuple(int(f) for f in nb_features),
            integration_steps=self.int_steps,
        )

    def _apply(self, fn, *args, **kwargs):
        # voxelmorph's SpatialTransformer caches its meshgrid as a plain attribute (not a buffer), which would stay
        # on the old device after .to(device); drop the caches so they are rebuilt on the new one.
        for module in self.modules():
            if isinstance(getattr(module, "meshgrid", None), Tensor):
                del module.meshgrid
        return super()._apply(fn, *args, **kwargs)

    def forward(self, image: Tensor, prior: Tensor) -> SegmentationOutput:
        """Register the prior to ``image`` and return the warped prior; see the class docstring for shapes."""
        if prior.dim() != 4 or prior.shape[1] != 1 or prior.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"VoxelMorph: prior must have shape (B or 1, 1, H, W) matching the image's H x W "
                f"{tuple(image.shape[-2:])}, got {tuple(prior.shape)}."
            )
        source = prior.to(image.dtype).expand(image.shape[0], -1, -1, -1)
        velocity = self.net.flow_layer(self.net.model(torch.cat((source, image), dim=1)))
        disp = self.net.velocity_field_integrator(velocity) if self.int_steps > 0 else velocity
        warped = self.net.spatial_transformer(source, disp)
        return SegmentationOutput(segmentation=warped.clamp(0.0, 1.0), displacements={"ft": disp})
