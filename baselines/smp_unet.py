"""The ecosystem-standard U-Net baseline from segmentation-models-pytorch (a Table 1 row beyond the paper's)."""

from __future__ import annotations

from collections.abc import Sequence

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tedsnet.network.outputs import SegmentationOutput

#: smp's default decoder channels, deepest first; the first ``encoder_depth`` are used.
SMP_DECODER_CHANNELS = (256, 128, 64, 32, 16)


class SMPUNet(nn.Module):
    """``segmentation_models_pytorch.Unet`` with random weights, one input channel and a sigmoid output.

    The encoder is always built with ``encoder_weights=None``: nothing is downloaded (the test suite builds it with
    the network switched off). smp's encoders downsample by ``2**encoder_depth`` (32 for the default depth 5)
    while the protocol's 144 x 208 slices are only divisible by 16, so the input is zero-padded symmetrically to
    the next multiple of ``2**encoder_depth`` (144 x 208 -> 160 x 224; zeros, as the data pipeline pads slices)
    and the output is cropped back. The padding keeps smp's standard depth-5 architecture for every encoder.

    Default encoder ``resnet18``: 14,321,937 trainable parameters with the defaults (the test suite checks it).

    Parameters
    ----------
    encoder_name : str
        Any smp encoder name (e.g. ``"resnet18"``, ``"resnet34"``, ``"mobilenet_v2"``).
    encoder_depth : int
        Encoder stages, 3-5 (smp default 5).
    decoder_channels : sequence of int, optional
        Decoder channels, deepest first; default the first ``encoder_depth`` of (256, 128, 64, 32, 16).
    in_channels : int
        Image channels (1).
    out_bias : float, optional
        Initial bias (a logit) of smp's segmentation head; None keeps smp's init (0). See
        :class:`baselines.unet.UNet` for why a negative value near the foreground log-odds speeds up training.

    Raises
    ------
    ValueError
        If ``encoder_depth`` is not in [3, 5].

    Notes
    -----
    ``forward(image, prior=None)``: image (B, in_channels, H, W), any H, W; the prior is ignored. Returns
    :class:`~tedsnet.network.outputs.SegmentationOutput` with segmentation (B, 1, H, W) in (0, 1) and no displacements.
    """

    def __init__(
        self,
        encoder_name: str = "resnet18",
        encoder_depth: int = 5,
        decoder_channels: Sequence[int] | None = None,
        in_channels: int = 1,
        out_bias: float | None = None,
    ) -> None:
        super().__init__()
        if not 3 <= encoder_depth <= 5:
            raise ValueError(f"SMPUNet: encoder_depth must be in [3, 5], got {encoder_depth}.")
        if decoder_channels is None:
            decoder_channels = SMP_DECODER_CHANNELS[:encoder_depth]
        self.encoder_name = encoder_name
        self.multiple = 2**encoder_depth
        self.net = smp.Unet(
            encoder_name=encoder_name,
            encoder_depth=encoder_depth,
            encoder_weights=None,
            decoder_channels=tuple(decoder_channels),
            in_channels=in_channels,
            classes=1,
            activation=None,
        )
        if out_bias is not None:
            nn.init.constant_(self.net.segmentation_head[0].bias, float(out_bias))

    def padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zero padding that makes (height, width) divisible by ``2**encoder_depth``."""
        pad_h = -height % self.multiple
        pad_w = -width % self.multiple
        return (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)

    def forward(self, image: Tensor, prior: Tensor | None = None) -> SegmentationOutput:
        """Pad ``image`` to a multiple of ``2**encoder_depth``, segment it, crop back; the prior is ignored."""
        height, width = image.shape[-2:]
        left, right, top, bottom = pad = self.padding(height, width)
        logits = self.net(F.pad(image, pad) if any(pad) else image)
        logits = logits[..., top : top + height, left : left + width]
        return SegmentationOutput(segmentation=torch.sigmoid(logits), displacements={})
