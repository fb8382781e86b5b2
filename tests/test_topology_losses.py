"""Topology-aware losses: soft clDice, the persistent-homology loss with a Betti prior, Betti matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from baselines.topology_losses import (
    PH_WEIGHT,
    betti_matching_loss,
    dice_cldice_loss,
    dice_topology_loss,
    persistence_bars,
    persistent_homology_loss,
    soft_cldice_loss,
)
from tedsnet.evaluation.metrics import betti_numbers
from tedsnet.network.losses import soft_dice_loss
from tedsnet.network.priors import ring_prior

ROOT = Path(__file__).resolve().parents[1]

H, W = 144, 208


def _batch(mask: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None]


def _ring() -> np.ndarray:
    return ring_prior((H, W), 30, 7) > 0.5


def _with_gap(ring: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(ring)
    broken = ring.copy()
    broken[int(round(rows.mean())), int(round(cols.mean())) :] = False  # cut the band on the right
    return broken


def _with_island(ring: np.ndarray) -> np.ndarray:
    noisy = ring.copy()
    noisy[2:6, 2:6] = True
    return noisy


def _smooth(mask: np.ndarray, sigma: float = 1.5) -> torch.Tensor:
    return _batch(np.clip(ndimage.gaussian_filter(mask.astype(np.float32), sigma), 0.0, 1.0))


def _line_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A 1-pixel-wide line (its own soft skeleton) and the same line with its middle pixel removed."""
    line = torch.zeros(1, 1, 7, 7)
    line[0, 0, 3, 1:6] = 1.0
    gap = line.clone()
    gap[0, 0, 3, 3] = 0.0
    return line, gap


def test_soft_cldice_matches_hand_computed_values():
    line, gap = _line_pair()
    # Tprec = (4 + 1) / (4 + 1), Tsens = (4 + 1) / (5 + 1): 1 - 2 (5/6) / (1 + 5/6) = 1/11.
    assert float(soft_cldice_loss(gap, line)) == pytest.approx(1 / 11, abs=1e-5)
    half = line.clone()
    half[0, 0, 3, 3] = 0.5  # Tprec = 5.5 / 5.5, Tsens = 5.5 / 6: 1 - 2 (11/12) / (23/12) = 1/23
    assert float(soft_cldice_loss(half, line)) == pytest.approx(1 / 23, abs=1e-5)
    # A 3-pixel-wide bar's soft skeleton is its middle row less both ends, inside the bar: Tprec = Tsens = 1.
    bar = torch.zeros(1, 1, 9, 12)
    bar[0, 0, 2:5, 1:11] = 1.0
    assert float(soft_cldice_loss(bar, bar)) == pytest.approx(0.0, abs=1e-5)


def test_soft_cldice_is_zero_on_a_perfect_ring_and_differentiable():
    ring = _batch(_ring())
    assert float(soft_cldice_loss(ring, ring)) == pytest.approx(0.0, abs=1e-5)
    pred = _smooth(_with_gap(_ring())).requires_grad_()
    loss = soft_cldice_loss(pred, ring)
    assert 0.0 < loss.item() < 1.0
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_dice_cldice_is_the_weighted_sum():
    ring = _batch(_ring())
    pred = torch.cat([_smooth(_with_gap(_ring())), _smooth(_ring())])
    target = ring.expand(2, -1, -1, -1)
    dice = soft_dice_loss(pred, target, per_image=True)
    cldice = soft_cldice_loss(pred, target)
    for alpha in (0.0, 0.3, 1.0):
        expected = (1 - alpha) * dice + alpha * cldice
        assert float(dice_cldice_loss(pred, target, alpha=alpha)) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        dice_cldice_loss(pred, target, alpha=1.5)
    with pytest.raises(ValueError, match="same shape"):
        soft_cldice_loss(pred, ring)


def test_persistence_bars_index_pixels_row_major():
    prob = np.array([[0.95, 0.8, 0.9], [0.7, 0.1, 0.6], [0.85, 0.88, 0.92]])
    flat = prob.ravel()
    zero, one = persistence_bars(prob)
    values = sorted((flat[b], flat[d] if d >= 0 else None) for b, d in zero.tolist())
    assert values == [(0.9, 0.8), (0.92, 0.7), (0.95, None)]
    assert [(flat[b], flat[d]) for b, d in one.tolist()] == [(0.6, 0.1)]
    wide = np.zeros((2, 4))
    wide[0, 3], wide[1, 0] = 0.9, 0.5  # two peaks in a non-square image
    zero = persistence_bars(wide)[0]
    assert sorted(zero[:, 0].tolist()) == [3, 4] and zero[zero[:, 1] < 0, 0].tolist() == [3]


def test_persistent_homology_loss_matches_a_hand_computed_value_and_gradient():
    # Superlevel filtration, 4-connected: components born at 0.95, 0.92, 0.9; 0.9 dies at 0.8, 0.92 at 0.7;
    # the hole is born at 0.6 and dies at 0.1. L0 = (1 - 0.95^2) + 0.22^2 + 0.1^2, L1 = 1 - 0.5^2.
    prob = torch.tensor([[0.95, 0.8, 0.9], [0.7, 0.1, 0.6], [0.85, 0.88, 0.92]], dtype=torch.float64)
    pred = prob[None, None].clone().requires_grad_()
    loss = persistent_homology_loss(pred)
    assert loss.item() == pytest.approx((1 - 0.95**2) + 0.22**2 + 0.1**2 + (1 - 0.5**2), abs=1e-12)
    loss.backward()
    expected = torch.tensor([[-1.9, -0.2, 0.2], [-0.44, 1.0, -1.0], [0.0, 0.0, 0.44]], dtype=torch.float64)
    torch.testing.assert_close(pred.grad[0, 0], expected)


def test_persistent_homology_loss_is_zero_on_a_ring_and_one_per_topological_error():
    ring = _ring()
    assert betti_numbers(_with_gap(ring)) == (1, 0) and betti_numbers(_with_island(ring)) == (2, 1)
    assert float(persistent_homology_loss(_batch(ring))) == 0.0
    assert float(persistent_homology_loss(_batch(_with_gap(ring)))) == pytest.approx(1.0)
    assert float(persistent_homology_loss(_batch(_with_island(ring)))) == pytest.approx(1.0)
    batch = torch.cat([_batch(ring), _batch(_with_gap(ring))])
    assert float(persistent_homology_loss(batch)) == pytest.approx(0.5)
    assert float(persistent_homology_loss(_batch(ring), betti=(1, 0))) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="betti must be two integers"):
        persistent_homology_loss(_batch(ring), betti=(1,))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        persistent_homology_loss(torch.zeros(1, 2, 8, 8))


def test_persistent_homology_gradient_reaches_only_critical_pixels():
    prob = _smooth(_with_gap(_ring()))
    pred = prob.clone().requires_grad_()
    loss = persistent_homology_loss(pred)
    assert loss.item() > 0.1
    loss.backward()
    critical = np.zeros(H * W, bool)
    for bars in persistence_bars(prob[0, 0].numpy()):
        critical[bars[bars >= 0]] = True
    moved = pred.grad[0, 0].reshape(-1).numpy() != 0
    assert moved.any()
    assert not (moved & ~critical).any()
    assert moved.sum() < 0.01 * H * W


def test_dice_topology_is_dice_plus_weighted_ph():
    target = _batch(_ring())
    pred = _smooth(_with_gap(_ring()))
    dice = soft_dice_loss(pred, target, per_image=True)
    expected = dice + PH_WEIGHT * persistent_homology_loss(pred)
    assert float(dice_topology_loss(pred, target)) == pytest.approx(float(expected), rel=1e-6)
    assert float(dice_topology_loss(pred, target, weight=0.0)) == pytest.approx(float(dice), rel=1e-6)


def test_betti_matching_is_zero_on_identical_rings_and_positive_with_a_gap():
    pytest.importorskip("topolosses")
    ring = _batch(_ring())
    assert float(betti_matching_loss(ring, ring)) == 0.0
    assert float(betti_matching_loss(_batch(_with_gap(_ring())), ring)) == pytest.approx(1.0)
    # A soft gap: the prediction's faint hole is matched to the target's and pulled to full persistence.
    pred = _smooth(_with_gap(_ring())).requires_grad_()
    loss = betti_matching_loss(pred, ring)
    assert loss.item() > 0.1
    loss.backward()
    assert pred.grad.abs().sum() > 0


def test_betti_matching_loads_no_second_openmp_runtime():
    """topolosses' topograph extension brings its own OpenMP runtime, which slows torch's CPU training by orders of
    magnitude in the same process; the Betti matching loss and error load only the Betti matching extension."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, torch\n"
        "from baselines.topology_losses import betti_matching_loss\n"
        "from tedsnet.evaluation.topology import betti_matching_error\n"
        "a = np.zeros((20, 20), bool); a[5:15, 5:15] = True; a[8:12, 8:12] = False\n"
        "print(betti_matching_error(a, a), float(betti_matching_loss(torch.tensor(a)[None, None].float(),"
        " torch.tensor(a)[None, None].float())))\n"
        "print(sorted(m for m in sys.modules if 'topograph' in m))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["0 0.0", "[]"]
