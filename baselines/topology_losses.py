"""Topology-aware training losses for the U-Net baselines: soft clDice, a persistent-homology loss with a Betti
prior, and Betti matching.

Every loss takes ``(pred, target)``: pred (B, 1, H, W) probabilities in [0, 1], target (B, 1, H, W) binary, and
returns a scalar tensor.

- :func:`soft_cldice_loss` / :func:`dice_cldice_loss`: soft clDice (Shit et al., CVPR 2021), MONAI's
  ``SoftclDiceLoss``, plus the suite's per-image soft Dice.
- :func:`persistent_homology_loss` / :func:`dice_topology_loss`: the loss of Clough et al. (TPAMI 2020) that pulls
  the persistence barcode of the prediction towards prior Betti numbers (a ring: one component, one hole).
- :func:`betti_matching_loss`: Betti matching (Stucki et al., ICML 2023), the ``topolosses`` package's
  ``BettiMatchingLoss``, imported on first use (an optional dependency).

Persistent homology uses the cubical complex with pixels as vertices (gudhi's ``vertices=`` construction), whose
foreground is 4-connected and background 8-connected: the connectivities of the suite's topology metric
(:func:`tedsnet.evaluation.metrics.betti_numbers`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import gudhi
import numpy as np
import torch
from monai.losses import SoftclDiceLoss
from torch import Tensor

from tedsnet.evaluation.metrics import RING_BETTI
from tedsnet.evaluation.topology import load_topolosses
from tedsnet.network.losses import soft_dice_loss

__all__ = [
    "CLDICE_ITERATIONS",
    "PH_WEIGHT",
    "BETTI_MATCHING_WEIGHT",
    "betti_matching_loss",
    "dice_betti_matching_loss",
    "dice_cldice_loss",
    "dice_topology_loss",
    "persistence_bars",
    "persistent_homology_loss",
    "soft_cldice_loss",
]

#: Soft-skeleton iterations of clDice: each erodes one pixel from every side, and the skeleton needs at least the
#: half-thickness of the myocardium (about 3-5 px at 144 x 208; Shit et al. ask for more than the largest radius).
CLDICE_ITERATIONS = 5

#: Weight of the persistent-homology term in :func:`dice_topology_loss`: on the trained paper U-Net's predictions
#: of the default (phantom) test split the mean PH loss (near 0 on rings, 1 or more per missing hole or extra component) is about five
#: times the mean per-image soft Dice loss, so this weight gives the two terms the same mean.
PH_WEIGHT = 0.2

#: Weight of the Betti matching term in :func:`dice_betti_matching_loss`: the ``alpha`` that ``topolosses`` gives
#: it beside its own Dice loss.
BETTI_MATCHING_WEIGHT = 0.5


def _check_batch(pred: Tensor, target: Tensor | None, name: str) -> None:
    """Raise ValueError unless pred is (B, 1, H, W) and target, when given, has its shape."""
    if pred.dim() != 4 or pred.shape[1] != 1:
        raise ValueError(f"{name}: pred must have shape (B, 1, H, W), got {tuple(pred.shape)}.")
    if target is not None and target.shape != pred.shape:
        raise ValueError(
            f"{name}: pred and target must have the same shape (B, 1, H, W), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}."
        )


def soft_cldice_loss(pred: Tensor, target: Tensor, iterations: int = CLDICE_ITERATIONS) -> Tensor:
    """Soft clDice loss ``1 - 2 Tprec Tsens / (Tprec + Tsens)``, the mean of per-image values (Shit et al. 2021).

    ``Tprec = (|S(pred) * target| + 1) / (|S(pred)| + 1)`` and ``Tsens = (|S(target) * pred| + 1) /
    (|S(target)| + 1)`` with ``S`` the soft skeleton (``iterations`` rounds of min/max-pooling erosion and
    opening) and the smoothing 1 of the authors' code; computed by MONAI's ``SoftclDiceLoss``.

    Parameters
    ----------
    pred : Tensor
        (B, 1, H, W) probabilities in [0, 1].
    target : Tensor
        (B, 1, H, W) binary reference.
    iterations : int
        Soft-skeleton iterations, at least the structure's half-thickness in pixels.

    Returns
    -------
    Tensor
        Scalar in [0, 1], differentiable in ``pred``; about 0 when pred equals target.

    Raises
    ------
    ValueError
        If the shapes are not (B, 1, H, W) and equal.

    Examples
    --------
    >>> line = torch.zeros(1, 1, 7, 7); line[0, 0, 3, 1:6] = 1  # a 1-pixel-wide line is its own skeleton
    >>> gap = line.clone(); gap[0, 0, 3, 3] = 0  # Tprec = 5/5, Tsens = 5/6
    >>> round(float(soft_cldice_loss(gap, line)), 4)  # 1 - 2 (5/6) / (11/6) = 1/11
    0.0909
    """
    _check_batch(pred, target, "soft_cldice_loss")
    # The harmonic mean's own smoothing only guards 0/0, which the smoothing 1 of Tprec and Tsens already rules out.
    loss = SoftclDiceLoss(iter_=int(iterations), smooth_nr=1.0, smooth_dr=1.0, smooth=1e-6, reduction="mean")
    return loss(pred, target.to(pred.dtype))


def dice_cldice_loss(
    pred: Tensor, target: Tensor, alpha: float = 0.5, iterations: int = CLDICE_ITERATIONS
) -> Tensor:
    """``(1 - alpha) * per-image soft Dice loss + alpha * soft clDice loss`` (Shit et al. 2021, eq. 4).

    Shapes as :func:`soft_cldice_loss`; ``alpha`` in [0, 1]. Returns a differentiable scalar.

    Raises
    ------
    ValueError
        If the shapes differ or ``alpha`` is outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"dice_cldice_loss: alpha must be in [0, 1], got {alpha}.")
    dice = soft_dice_loss(pred, target, per_image=True)
    return (1.0 - alpha) * dice + alpha * soft_cldice_loss(pred, target, iterations)


def persistence_bars(prob: np.ndarray) -> list[np.ndarray]:
    """Birth and death pixels of the bars of dimensions 0 and 1 of the superlevel filtration of a probability map.

    Parameters
    ----------
    prob : ndarray (H, W)
        Probabilities; the filtration adds pixels from the most to the least probable, pixels as vertices of a
        cubical complex (4-connected foreground).

    Returns
    -------
    list of two int ndarrays (n_k, 2)
        For dimension k = 0, 1: flat (row-major) indices of each bar's birth and death pixel; death -1 for an
        essential bar (one in dimension 0, never dying). Bars of zero persistence are left out.

    Examples
    --------
    >>> bars = persistence_bars(np.array([[0.9, 0.2, 0.8]]))  # two peaks joined through 0.2
    >>> bars[0].tolist(), bars[1].shape
    ([[2, 1], [0, -1]], (0, 2))
    """
    # gudhi numbers vertices in column-major order, so on the transposed map they are prob's row-major indices.
    complex_ = gudhi.CubicalComplex(vertices=1.0 - np.asarray(prob, dtype=np.float64).T)
    complex_.compute_persistence()
    regular, essential = complex_.vertices_of_persistence_pairs()
    bars = []
    for dim in (0, 1):
        pairs = regular[dim].reshape(-1, 2) if dim < len(regular) else np.zeros((0, 2), np.int64)
        born = essential[dim].reshape(-1) if dim < len(essential) else np.zeros(0, np.int64)
        bars.append(np.concatenate([pairs, np.stack([born, np.full_like(born, -1)], 1)]).astype(np.int64))
    return bars


def _clough_term(prob: Tensor, bars: np.ndarray, prior: int) -> Tensor:
    """``sum_{l <= prior} (1 - |b_l - d_l|^2) + sum_{l > prior} |b_l - d_l|^2`` over bars by decreasing persistence.

    ``prob`` is one flattened image; a missing prior bar counts 1 (its persistence is 0).
    """
    index = torch.as_tensor(bars, device=prob.device)
    births = prob[index[:, 0]]
    deaths = torch.where(index[:, 1] >= 0, prob[index[:, 1].clamp(min=0)], torch.zeros_like(births))
    squared = (births - deaths).square()
    squared = squared[torch.argsort(squared.detach(), descending=True)]
    kept = squared[:prior]
    return (prior - kept.sum()) + squared[prior:].sum()


def persistent_homology_loss(pred: Tensor, betti: Sequence[int] = RING_BETTI) -> Tensor:
    """Clough et al.'s (TPAMI 2020) topological loss with prior Betti numbers, the mean over images.

    For each image and each dimension k (0: components, 1: holes) the bars of the superlevel filtration of
    ``pred`` (:func:`persistence_bars`) are sorted by persistence ``|b - d|`` (b, d the probabilities at birth and
    death; an essential bar dies at probability 0), and
    ``L_k = sum_{l <= betti_k} (1 - |b_l - d_l|^2) + sum_{l > betti_k} |b_l - d_l|^2``: the ``betti_k`` most
    persistent bars are pushed to full persistence, all others to none. The gradient reaches only the pixels at
    which bars are born and die.

    Parameters
    ----------
    pred : Tensor
        (B, 1, H, W) probabilities in [0, 1].
    betti : (int, int)
        Prior Betti numbers (b0, b1); a ring is (1, 1).

    Returns
    -------
    Tensor
        Scalar >= 0; 0 for a binary prediction with exactly the prior's topology.

    Raises
    ------
    ValueError
        If ``pred`` is not (B, 1, H, W) or ``betti`` is not two non-negative integers.

    Examples
    --------
    >>> ring = torch.ones(1, 1, 5, 5); ring[0, 0, 2, 2] = 0
    >>> float(persistent_homology_loss(ring))
    0.0
    """
    _check_batch(pred, None, "persistent_homology_loss")
    if len(betti) != 2 or min(betti) < 0:
        raise ValueError(
            f"persistent_homology_loss: betti must be two integers >= 0 (b0, b1), got {betti!r}."
        )
    losses = []
    for image in pred[:, 0]:
        bars = persistence_bars(image.detach().float().cpu().numpy())
        flat = image.reshape(-1)
        losses.append(sum(_clough_term(flat, bars[k], int(betti[k])) for k in (0, 1)))
    return torch.stack(losses).mean()


def dice_topology_loss(pred: Tensor, target: Tensor, weight: float = PH_WEIGHT) -> Tensor:
    """Per-image soft Dice loss + ``weight`` times :func:`persistent_homology_loss` with the ring prior (1, 1).

    Shapes as :func:`soft_dice_loss`; returns a differentiable scalar. The default ``weight``
    (:data:`PH_WEIGHT`) makes the two terms of comparable size on a trained U-Net's predictions.
    """
    return soft_dice_loss(pred, target, per_image=True) + weight * persistent_homology_loss(pred, RING_BETTI)


def betti_matching_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Betti matching loss (Stucki et al., ICML 2023), the ``topolosses`` package's ``BettiMatchingLoss``.

    The superlevel filtrations of pred and target are matched through their induced matching of persistence
    barcodes; matched bars are pulled together and unmatched bars of either to the diagonal. The topology term
    alone, mean over images.

    Parameters
    ----------
    pred : Tensor
        (B, 1, H, W) probabilities in [0, 1].
    target : Tensor
        (B, 1, H, W) binary reference.

    Returns
    -------
    Tensor
        Scalar >= 0, differentiable in ``pred``; 0 when pred equals a binary target.

    Raises
    ------
    ValueError
        If the shapes are not (B, 1, H, W) and equal.
    ImportError
        If ``topolosses`` is not installed (``pip install topolosses``).
    """
    _check_batch(pred, target, "betti_matching_loss")
    loss = _betti_matching_loss_class()(include_background=True, alpha=1.0, use_base_loss=False)
    return loss(pred, target.to(pred.dtype))


@functools.cache
def _betti_matching_loss_class() -> type:
    """topolosses' ``BettiMatchingLoss``, without the rest of ``topolosses.losses`` (see
    :func:`tedsnet.evaluation.topology.load_topolosses`)."""
    return load_topolosses("betti_matching.src.betti_matching_loss").BettiMatchingLoss


def dice_betti_matching_loss(pred: Tensor, target: Tensor, weight: float = BETTI_MATCHING_WEIGHT) -> Tensor:
    """Per-image soft Dice loss + ``weight`` times :func:`betti_matching_loss`.

    Shapes as :func:`betti_matching_loss`; returns a differentiable scalar. Raises ImportError without the package
    ``topolosses``.
    """
    return soft_dice_loss(pred, target, per_image=True) + weight * betti_matching_loss(pred, target)
