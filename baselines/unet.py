"""The paper's U-Net baseline (Table 1), built from TEDS-Net's own blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tedsnet.network.blocks import Decoder, Encoder
from tedsnet.network.outputs import SegmentationOutput


class UNet(nn.Module):
    """U-Net with TEDS-Net's encoder and one decoder to full resolution, a 1x1 conv and a sigmoid.

    The encoder is TEDS-Net's (:class:`tedsnet.network.blocks.Encoder`: levels of 12, 24, 48, 96 channels and a
    96-channel bottleneck at H/16 x W/16, every block (3x3 conv, InstanceNorm, ReLU) x 2 + Dropout). The decoder has
    ``depth`` steps (2x2 transposed conv, skip concatenation, block) back to H x W with 48, 24, 12, 12 output
    channels: the first three steps are exactly TEDS-Net's fine-tune decoder, the last keeps ``features`` channels
    at full resolution. A 1x1 conv maps to one channel and a sigmoid gives the probability.

    With the defaults the network has **519,709** trainable parameters
    (:func:`tedsnet.network.model.count_parameters`; the test suite checks it).

    Parameters
    ----------
    in_channels : int
        Image channels (1).
    features : int
        Channels of the first encoder level (paper: 12).
    depth : int
        Encoder levels before the bottleneck, and decoder steps (paper: 4, "5 layers").
    dropout : float
        Element-wise dropout after every block (paper: 0.2).
    decoder_channels : sequence of int, optional
        Output channels of each decoder step, deepest first; default ``features * 2**k`` for levels k = depth-2
        .. 0, then ``features`` (48, 24, 12, 12 for the paper's settings).
    with_prior : bool
        False (the suite's protocol): the image only, the prior is ignored. True: the prior is concatenated to the image as
        an extra input channel (one reading of the paper's "using the shape prior P as the second input
        channel").
    out_bias : float
        Initial bias of the 1x1 output conv (a logit). 0 (PyTorch's usual init would be random; 0 gives
        probability 0.5 everywhere). A negative value near the foreground log-odds (about -3 for the 2-5 %
        myocardium of a 144 x 208 slice) starts the network at "mostly background", which it otherwise needs
        many Adam steps to reach: with InstanceNorm'd features the logits move by at most about
        ``lr * (features + 1)`` per step.

    Notes
    -----
    ``forward(image, prior=None)``: image (B, in_channels, H, W) with H, W divisible by ``2**depth``; returns
    :class:`~tedsnet.network.outputs.SegmentationOutput` with segmentation (B, 1, H, W) in (0, 1) and no displacements.
    """

    def __init__(
        self,
        in_channels: int = 1,
        features: int = 12,
        depth: int = 4,
        dropout: float = 0.2,
        decoder_channels: Sequence[int] | None = None,
        with_prior: bool = False,
        out_bias: float = 0.0,
    ) -> None:
        super().__init__()
        self.with_prior = bool(with_prior)
        self.encoder = Encoder(in_channels + int(self.with_prior), features, depth, dropout)
        if decoder_channels is None:
            decoder_channels = [features * 2**k for k in range(depth - 2, -1, -1)] + [features]
        self.decoder = Decoder(self.encoder.channels, depth, dropout, out_channels=list(decoder_channels))
        self.head = nn.Conv2d(self.decoder.out_channels, 1, kernel_size=1)
        nn.init.constant_(self.head.bias, float(out_bias))

    def forward(self, image: Tensor, prior: Tensor | None = None) -> SegmentationOutput:
        """Segment ``image`` (the prior is used only with ``with_prior``); see the class docstring for shapes."""
        if self.with_prior:
            if prior is None:
                raise ValueError(
                    "UNet(with_prior=True): forward needs the prior (B or 1, 1, H, W), got None."
                )
            image = torch.cat((image, prior.to(image.dtype).expand(image.shape[0], -1, -1, -1)), dim=1)
        skips, bottleneck = self.encoder(image)
        logits = self.head(self.decoder(bottleneck, skips))
        return SegmentationOutput(segmentation=torch.sigmoid(logits), displacements={})
