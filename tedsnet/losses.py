"""Training losses: soft Dice, Dice + BCE and L_Grad (paper eq. 2, DESIGN.md section 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tedsnet.functional import grid_cell_size

__all__ = ["dice_bce_loss", "grad_loss", "soft_dice_loss"]


def _check_pair(pred: Tensor, target: Tensor, name: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: prediction and target must have the same shape (B, 1, H, W), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}."
        )


def soft_dice_loss(pred: Tensor, target: Tensor, per_image: bool = False, eps: float = 1e-6) -> Tensor:
    """``1 - soft Dice``.

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
    identity alone gives the floor ``1/(H-1)^2 + 1/(W-1)^2`` (about 1.8e-5 at 288 x 416, so 0.18 times beta =
    10,000).

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
    """
    if disp.dim() != 4 or disp.shape[1] != 2:
        raise ValueError(f"grad_loss: disp must have shape (B, 2, H, W), got {tuple(disp.shape)}.")
    scale = disp.new_tensor(grid_cell_size(disp.shape[-2:])).view(1, 2, 1, 1)
    return _HalfMeanSquaredDifferences.apply(disp * scale, bool(identity))


def _identity_plus(phi: Tensor) -> Tensor:
    """``phi`` (B, 2, H, W) plus the corner-aligned identity map in normalised coordinates (rows, cols)."""
    height, width = phi.shape[-2:]
    rows = torch.linspace(-1.0, 1.0, height, dtype=phi.dtype, device=phi.device).view(1, 1, height, 1)
    cols = torch.linspace(-1.0, 1.0, width, dtype=phi.dtype, device=phi.device).view(1, 1, 1, width)
    return torch.cat((phi[:, :1] + rows, phi[:, 1:] + cols), dim=1)


class _HalfMeanSquaredDifferences(torch.autograd.Function):
    """``1/2 [mean(D_row phi^2) + mean(D_col phi^2)]`` of (B, 2, H, W) ``phi`` (optionally plus the identity).

    The forward is autograd's; the backward writes the gradient into one tensor instead of letting autograd
    zero-fill a full-size tensor for every one of the six slices (four differences, two channels) and add them:
    at 5 x 2 x 288 x 416 those fills and adds were a large share of L_Grad's cost. It performs the same
    floating-point operations in the order autograd's engine accumulates them, so the gradient is bit-identical
    (tested), and training with it reproduces a run trained before it.
    """

    @staticmethod
    def forward(ctx, phi: Tensor, identity: bool) -> Tensor:
        if identity:
            phi = _identity_plus(phi)
        d_row = phi[:, :, 1:, :] - phi[:, :, :-1, :]
        d_col = phi[:, :, :, 1:] - phi[:, :, :, :-1]
        ctx.save_for_backward(d_row, d_col)
        return 0.5 * (d_row.pow(2).mean() + d_col.pow(2).mean())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        d_row, d_col = ctx.saved_tensors
        half = grad * 0.5
        # mean's backward (expand, divide by the count), then pow's (times 2 d): as autograd computes them
        g_row = (half.expand(d_row.shape) / d_row.numel()) * (2 * d_row)
        g_col = (half.expand(d_col.shape) / d_col.numel()) * (2 * d_col)
        shape = (*d_row.shape[:2], d_row.shape[2] + 1, d_row.shape[3])
        out = g_row.new_zeros(shape)
        out[:, :, :, :-1] -= g_col
        out[:, :, :, 1:] += g_col
        out[:, :, :-1, :] -= g_row
        out[:, :, 1:, :] += g_row
        return out, None
