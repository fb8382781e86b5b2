"""Training losses: the soft Dice segmentation loss, Dice + BCE, and the L_Grad regulariser (paper eq. 2).

The total TEDS-Net loss is ``L_Dice + beta * sum over fields of L_Grad`` (beta from the experiment registry).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tedsnet.network.functional import grid_cell_size

__all__ = ["dice_bce_loss", "grad_loss", "soft_dice_loss"]


def _check_pair(pred: Tensor, target: Tensor, name: str) -> None:
    """Raise ValueError unless prediction and target have the same shape."""
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: prediction and target must have the same shape (B, 1, H, W), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}."
        )


def soft_dice_loss(pred: Tensor, target: Tensor, per_image: bool = False, eps: float = 1e-6) -> Tensor:
    """L_Dice, TEDS-Net's segmentation loss: ``1 - soft Dice``.

    Parameters
    ----------
    pred : Tensor
        (B, 1, H, W) soft prediction in [0, 1].
    target : Tensor
        (B, 1, H, W) binary reference.
    per_image : bool
        False (the authors' code): one Dice over the whole batch. True: the mean of per-image Dice losses, which
        weights every image equally whatever its foreground size.
    eps : float
        Added to numerator and denominator; an empty prediction of an empty target gives loss 0.

    Returns
    -------
    Tensor
        Scalar in [0, 1].

    Raises
    ------
    ValueError
        If ``pred`` and ``target`` differ in shape.
    """
    _check_pair(pred, target, "soft_dice_loss")
    target = target.to(pred.dtype)
    dims = (1, 2, 3) if per_image else (0, 1, 2, 3)
    intersection = (pred * target).sum(dims)
    total = pred.sum(dims) + target.sum(dims)
    return (1.0 - (2.0 * intersection + eps) / (total + eps)).mean()


def dice_bce_loss(pred: Tensor, target: Tensor, per_image: bool = True, eps: float = 1e-6) -> Tensor:
    """Soft Dice loss plus binary cross-entropy on the probabilities (clamped away from 0 and 1).

    Shapes as :func:`soft_dice_loss`; returns a scalar. BCE gives dense per-pixel gradients from the first step,
    which lets a network that starts from nothing (a U-Net) converge in a CPU budget.
    """
    _check_pair(pred, target, "dice_bce_loss")
    target = target.to(pred.dtype)
    bce = F.binary_cross_entropy(pred.clamp(1e-6, 1.0 - 1e-6), target)
    return soft_dice_loss(pred, target, per_image=per_image, eps=eps) + bce


def grad_loss(disp: Tensor, *, identity: bool = True) -> Tensor:
    """L_Grad of the transformation ``Phi = identity + displacement`` in normalised [-1, 1] coordinates.

    ``L_Grad = 1/2 [mean((D_row Phi)^2) + mean((D_col Phi)^2)]`` with forward differences, each mean over the
    batch, both channels and all differences. One voxel of axis i is ``2 / (S_i - 1)`` normalised units. The
    identity alone gives the floor ``1/(H-1)^2 + 1/(W-1)^2``.

    Parameters
    ----------
    disp : Tensor
        (B, 2, H, W) displacement in voxels of its grid (the field that samples).
    identity : bool
        True (the authors' formula): the gradient of ``identity + displacement``, whose minimum is a contraction
        (``D Phi = 0``). False: the gradient of the displacement alone (zero for the identity map), as
        voxelmorph's own ``Grad`` regulariser; the registry uses it for VoxelMorph, whose unbounded velocity
        otherwise collapses the map.

    Returns
    -------
    Tensor
        Scalar.

    Raises
    ------
    ValueError
        If ``disp`` is not (B, 2, H, W).

    Examples
    --------
    >>> float(grad_loss(torch.zeros(1, 2, 3, 3), identity=False))
    0.0
    """
    if disp.dim() != 4 or disp.shape[1] != 2:
        raise ValueError(f"grad_loss: disp must have shape (B, 2, H, W), got {tuple(disp.shape)}.")
    return _HalfMeanSquaredDifferences.apply(disp, bool(identity))


class _HalfMeanSquaredDifferences(torch.autograd.Function):
    """L_Grad of a (B, 2, H, W) voxel displacement, with its gradient written in a few passes over the field.

    Forward: the row and column differences of the displacement, times each channel's voxel size in normalised
    units, plus that voxel size on the channel's own axis when the identity map is included (the identity's
    differences are constant); then half the mean of their squares. Backward: ``grad / count * size *
    difference`` per direction, scattered to both ends of each difference, written into one tensor, rather than
    autograd's full-size zero-filled gradient for each slice of the formula. Value and gradient equal the autograd
    formula's to float32 rounding (tested against it in float64).
    """

    @staticmethod
    def forward(ctx, disp: Tensor, identity: bool) -> Tensor:
        sizes = grid_cell_size(disp.shape[-2:])
        scale = disp.new_tensor(sizes).view(1, 2, 1, 1)
        d_row = torch.sub(disp[:, :, 1:, :], disp[:, :, :-1, :]).mul_(scale)
        d_col = torch.sub(disp[:, :, :, 1:], disp[:, :, :, :-1]).mul_(scale)
        if identity:
            d_row[:, 0].add_(sizes[0])
            d_col[:, 1].add_(sizes[1])
        ctx.save_for_backward(d_row, d_col, scale)
        return 0.5 * (d_row.square().mean() + d_col.square().mean())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        d_row, d_col, scale = ctx.saved_tensors
        g_row = d_row * (scale * (grad / d_row.numel()))
        g_col = d_col * (scale * (grad / d_col.numel()))
        out = torch.empty(
            *d_row.shape[:2], d_row.shape[2] + 1, d_row.shape[3], dtype=d_row.dtype, device=d_row.device
        )
        torch.neg(g_row[:, :, :1], out=out[:, :, :1])
        torch.sub(g_row[:, :, :-1], g_row[:, :, 1:], out=out[:, :, 1:-1])
        out[:, :, -1:] = g_row[:, :, -1:]
        out[:, :, :, :-1] -= g_col
        out[:, :, :, 1:] += g_col
        return out, None
