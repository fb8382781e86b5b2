"""TEDS-Net: a shared encoder, a bulk and a fine-tune decoder, diffeomorphic layers, and the prior warp."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from tedsnet.network.blocks import Decoder, Encoder, field_head
from tedsnet.network.functional import (
    bounded_velocity,
    integrate_velocity,
    max_pool_3x3_stride2,
    resize_displacement,
    warp,
)
from tedsnet.network.outputs import SegmentationOutput

#: Decoder steps of each branch (paper: bulk one step to H/8, fine-tune three steps to H/2).
BRANCH_STEPS = {"bulk": 1, "ft": 3}


class TEDSNet(nn.Module):
    """TEDS-Net (Wyburd et al., MICCAI 2021, paper section 2 and Fig. 1).

    An encoder feeds the bulk branch (one decoder step, a coarse field) and the fine-tune branch (three steps).
    Each branch
    ends in a 1x1 conv to a 2-channel velocity that is bounded (eq. 1), integrated by ``int_steps`` composition
    layers with Gaussian smoothing, and resized ("super upsample") to ``upsample`` times the input size. The prior
    is warped by the bulk field, then by the fine-tune field, and max-pooled (kernel 3, stride 2, padding 1) back to
    the input size.

    Parameters
    ----------
    in_channels : int
        Image channels.
    features : int
        Channels of the first encoder level (paper: 12).
    depth : int
        Encoder levels before the bottleneck (paper: 4).
    dropout : float
        Element-wise dropout after every block (paper: 0.2).
    int_steps : int
        Composition layers (paper: 8; Figure 4a sweeps 2-16).
    smooth_sigma : float or None
        Gaussian sigma after each composition; None for no Gaussian (ablations A1, A2).
    smooth_kernel : int
        Gaussian kernel size.
    upsample : int
        Factor of the super upsample: 2 (paper) or 1 (fields at H x W, no max pooling: ablations A1, A4).
    branches : sequence of {"bulk", "ft"}
        Which branches to build, applied in the order bulk then ft (A5: bulk only, A6: ft only).
    bounded : bool
        Apply eq. 1's ``0.5 * tanh`` to the velocities.

    Notes
    -----
    ``forward(image, prior)``: image (B, in_channels, H, W), prior (B or 1, 1, H, W) float in [0, 1]; returns
    :class:`~tedsnet.network.outputs.SegmentationOutput` with segmentation (B, 1, H, W) and displacements
    {"bulk", "ft"} -> (B, 2, upsample*H, upsample*W) in voxels of that grid. H and W must be divisible by
    ``2**depth``. With both branches and the paper's settings the network has 655,984 trainable parameters.

    Raises
    ------
    ValueError
        If ``branches`` is empty, repeats or names something other than ``"bulk"``/``"ft"``, ``upsample`` is not
        1 or 2, or ``depth`` is too shallow for the fine-tune branch.

    Examples
    --------
    >>> import torch
    >>> model = TEDSNet()
    >>> out = model(torch.zeros(1, 1, 144, 208), torch.zeros(1, 1, 144, 208))
    >>> tuple(out.segmentation.shape), tuple(out.displacements["bulk"].shape)
    ((1, 1, 144, 208), (1, 2, 288, 416))
    """

    def __init__(
        self,
        in_channels: int = 1,
        features: int = 12,
        depth: int = 4,
        dropout: float = 0.2,
        int_steps: int = 8,
        smooth_sigma: float | None = 2.0,
        smooth_kernel: int = 5,
        upsample: int = 2,
        branches: Sequence[str] = ("bulk", "ft"),
        bounded: bool = True,
    ) -> None:
        super().__init__()
        branches = tuple(branches)
        unknown = set(branches) - set(BRANCH_STEPS)
        if not branches or unknown or len(set(branches)) != len(branches):
            raise ValueError(
                f"TEDSNet: branches must be a non-empty subset of ('bulk', 'ft') without repeats, got {branches}."
            )
        if upsample not in (1, 2):
            raise ValueError(f"TEDSNet: upsample must be 1 (no super upsample) or 2 (paper), got {upsample}.")
        if depth < max(BRANCH_STEPS[b] for b in branches):
            raise ValueError(f"TEDSNet: depth must be >= 3 for the fine-tune branch, got {depth}.")
        self.branches = tuple(b for b in BRANCH_STEPS if b in branches)  # always bulk before ft
        self.int_steps = int_steps
        self.smooth_sigma = smooth_sigma
        self.smooth_kernel = smooth_kernel
        self.upsample = upsample
        self.bounded = bounded
        self.encoder = Encoder(in_channels, features, depth, dropout)
        self.decoders = nn.ModuleDict(
            {b: Decoder(self.encoder.channels, BRANCH_STEPS[b], dropout) for b in self.branches}
        )
        self.heads = nn.ModuleDict({b: field_head(self.decoders[b].out_channels) for b in self.branches})

    def displacement_fields(self, image: Tensor) -> dict[str, Tensor]:
        """The integrated, upsampled fields that sample the prior.

        Per branch: decoder, 1x1 head to a velocity, bounded velocity (eq. 1), composition layers, super upsample.

        Parameters
        ----------
        image : Tensor
            (B, in_channels, H, W), H and W divisible by ``2**depth``.

        Returns
        -------
        dict[str, Tensor]
            Branch -> (B, 2, upsample*H, upsample*W) displacement in voxels of that grid.
        """
        skips, bottleneck = self.encoder(image)
        size = (self.upsample * image.shape[-2], self.upsample * image.shape[-1])
        fields = {}
        for branch in self.branches:
            velocity = self.heads[branch](self.decoders[branch](bottleneck, skips))
            if self.bounded:
                velocity = bounded_velocity(velocity)
            velocity = integrate_velocity(
                velocity, self.int_steps, smooth_sigma=self.smooth_sigma, smooth_kernel=self.smooth_kernel
            )
            fields[branch] = resize_displacement(velocity, size)
        return fields

    def forward(self, image: Tensor, prior: Tensor) -> SegmentationOutput:
        """Warp ``prior`` by the bulk then the fine-tune field of ``image``; see the class docstring for shapes."""
        if prior.dim() != 4 or prior.shape[1] != 1 or prior.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"TEDSNet: prior must have shape (B or 1, 1, H, W) matching the image's H x W "
                f"{tuple(image.shape[-2:])}, got {tuple(prior.shape)}."
            )
        fields = self.displacement_fields(image)
        warped = prior.to(image.dtype)
        for branch in self.branches:
            warped = warp(warped, fields[branch])
        if self.upsample == 2:
            warped = max_pool_3x3_stride2(warped)
        return SegmentationOutput(segmentation=warped.clamp(0.0, 1.0), displacements=fields)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
