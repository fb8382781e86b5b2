"""Convolutional building blocks shared by TEDS-Net and the paper's U-Net (paper section 2 and Fig. 1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvBlock(nn.Sequential):
    """(3x3 conv without bias, InstanceNorm without affine, ReLU) x 2, then element-wise Dropout.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    dropout : float
        Element-wise dropout probability after the block (paper: 0.2).

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels, affine=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels, affine=False),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )


class Encoder(nn.Module):
    """``depth`` levels of ConvBlocks with 2x2 max pooling between them, then a bottleneck block.

    Level k has ``features * 2**k`` channels; the bottleneck, at H / 2**depth, keeps the last level's channels
    (paper: 12, 24, 48, 96, then a 96-channel bottleneck at H/16 x W/16).

    Parameters
    ----------
    in_channels : int
        Image channels.
    features : int
        Channels of the first level.
    depth : int
        Number of levels before the bottleneck.
    dropout : float
        Dropout of every block.

    Shapes: forward (B, in_channels, H, W) -> (skips, bottleneck) with skips[k] (B, features * 2**k, H/2**k,
    W/2**k) and bottleneck (B, features * 2**(depth-1), H/2**depth, W/2**depth). H and W must be divisible by
    2**depth.
    """

    def __init__(self, in_channels: int, features: int, depth: int, dropout: float) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"Encoder: depth must be >= 1, got {depth}.")
        self.channels = [features * 2**k for k in range(depth)]
        ins = [in_channels, *self.channels[:-1]]
        self.levels = nn.ModuleList(ConvBlock(i, o, dropout) for i, o in zip(ins, self.channels, strict=True))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = ConvBlock(self.channels[-1], self.channels[-1], dropout)

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        factor = 2 ** len(self.levels)
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(
                f"Encoder: image size {tuple(x.shape[-2:])} must be divisible by {factor} (2**depth); "
                "crop or pad the input (the suite uses 144 x 208)."
            )
        skips = []
        for k, level in enumerate(self.levels):
            x = level(x if k == 0 else self.pool(x))
            skips.append(x)
        return skips, self.bottleneck(self.pool(x))


class DecoderStep(nn.Module):
    """One decoder step: 2x2 transposed-conv upsampling (channels kept), concatenation with the skip, a block.

    Shapes: forward(x (B, in_channels, h, w), skip (B, skip_channels, 2h, 2w)) -> (B, out_channels, 2h, 2w).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels, 2, stride=2)
        self.block = ConvBlock(in_channels + skip_channels, out_channels, dropout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.block(torch.cat((self.up(x), skip), dim=1))


class Decoder(nn.Module):
    """``steps`` DecoderSteps from the bottleneck up the encoder's skips.

    Step k (k = 0 .. steps-1) lands on skip level ``depth - 1 - k``; by default it outputs half that level's
    channels (paper bulk: one step, 48 channels at H/8; fine-tune: three steps, 12 channels at H/2).

    Parameters
    ----------
    skip_channels : list[int]
        The encoder's level channels, shallowest first.
    steps : int
        Number of upsampling steps, 1 <= steps <= len(skip_channels).
    dropout : float
        Dropout of every block.
    out_channels : list[int], optional
        Output channels of each step; default ``skip_channels[level] // 2`` per step, which gives 48, 24, 12 for
        the paper's TEDS-Net branches.
    """

    def __init__(
        self,
        skip_channels: list[int],
        steps: int,
        dropout: float,
        out_channels: list[int] | None = None,
    ) -> None:
        super().__init__()
        depth = len(skip_channels)
        if not 1 <= steps <= depth:
            raise ValueError(f"Decoder: steps must be in [1, {depth}], got {steps}.")
        levels = [depth - 1 - k for k in range(steps)]
        if out_channels is None:
            out_channels = [skip_channels[level] // 2 for level in levels]
        if len(out_channels) != steps:
            raise ValueError(f"Decoder: out_channels needs {steps} entries, got {out_channels}.")
        ins = [skip_channels[-1], *out_channels[:-1]]
        self.levels = levels
        self.out_channels = out_channels[-1]
        self.steps = nn.ModuleList(
            DecoderStep(i, skip_channels[level], o, dropout)
            for i, level, o in zip(ins, levels, out_channels, strict=True)
        )

    def forward(self, bottleneck: Tensor, skips: list[Tensor]) -> Tensor:
        x = bottleneck
        for level, step in zip(self.levels, self.steps, strict=True):
            x = step(x, skips[level])
        return x


def field_head(in_channels: int, init_std: float = 1e-5) -> nn.Conv2d:
    """1x1 conv to a 2-channel field, weights ~ N(0, init_std), bias 0 (fields start at almost zero)."""
    head = nn.Conv2d(in_channels, 2, 1)
    nn.init.normal_(head.weight, mean=0.0, std=init_std)
    nn.init.zeros_(head.bias)
    return head
