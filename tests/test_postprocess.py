"""The morphological fix of ring masks and the post-processed U-Net that applies it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.postprocess import (
    PostProcessedUNet,
    binary_closing_disk,
    disk,
    fill_holes_except_largest,
    largest_component,
    postprocess_ring,
)
from baselines.unet import UNet
from tedsnet.evaluation.metrics import betti_numbers
from tedsnet.network.priors import ring_prior

H, W = 144, 208


def _ring(radius: float = 30, thickness: float = 7, shape=(H, W)) -> np.ndarray:
    return ring_prior(shape, radius, thickness) > 0.5


def test_largest_component_is_four_connected_and_keeps_empty_masks_empty():
    mask = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], bool)
    assert largest_component(mask).tolist() == (np.arange(4)[:, None] == 3).repeat(4, 1).tolist()
    diagonal = np.eye(3, dtype=bool)
    assert largest_component(diagonal, connectivity=4).sum() == 1
    assert largest_component(diagonal, connectivity=8).sum() == 3
    empty = np.zeros((5, 6), bool)
    assert not largest_component(empty).any() and largest_component(empty).shape == (5, 6)
    with pytest.raises(ValueError, match="connectivity must be 4 or 8"):
        largest_component(mask, connectivity=6)
    with pytest.raises(ValueError, match="must be 2-D"):
        largest_component(np.zeros((1, 4, 4)))


def test_disk_and_closing_identity_at_radius_zero():
    assert disk(0).tolist() == [[True]]
    assert disk(1).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(2).sum() == 13
    mask = np.random.default_rng(0).random((20, 30)) > 0.5
    assert np.array_equal(binary_closing_disk(mask, 0), mask)
    with pytest.raises(ValueError, match="integer >= 0"):
        binary_closing_disk(mask, -1)
    with pytest.raises(ValueError, match="integer >= 0"):
        binary_closing_disk(mask, 1.5)


def test_closing_bridges_a_gap_and_does_not_shrink_at_the_border():
    band = np.zeros((9, 12), bool)
    band[2:7] = True
    band[:, 6] = False  # a 1-pixel gap across a 5-pixel-wide band
    closed = binary_closing_disk(band, 1)
    assert closed[3:6, 6].all() and not closed[2, 6] and not closed[6, 6]
    touching = np.zeros((10, 10), bool)
    touching[:4, :6] = True  # a rectangle in the top-left corner: closing leaves a convex shape as it is
    for radius in (1, 2, 3):
        assert np.array_equal(binary_closing_disk(touching, radius), touching)


def test_fill_holes_keeps_the_largest_hole_and_leaves_the_border_alone():
    mask = np.ones((9, 12), bool)
    mask[2:6, 2:6] = False  # the cavity, 16 pixels
    mask[2, 8] = False  # a 1-pixel hole
    mask[5, 8] = mask[6, 9] = False  # a 2-pixel hole, 8-connected through its corner
    mask[8, 0:3] = False  # background at the border: not a hole
    filled = fill_holes_except_largest(mask)
    expected = mask.copy()
    expected[2, 8] = expected[5, 8] = expected[6, 9] = True
    assert np.array_equal(filled, expected)
    one_hole = np.pad(np.zeros((3, 3), bool), 2, constant_values=True)
    assert np.array_equal(fill_holes_except_largest(one_hole), one_hole)
    assert not fill_holes_except_largest(np.zeros((4, 4), bool)).any()


@pytest.mark.parametrize("radius, thickness", [(30, 7), (20, 4.7), (50, 7), (10, 3)])
def test_a_correct_ring_is_unchanged(radius, thickness):
    ring = _ring(radius, thickness)
    assert betti_numbers(ring) == (1, 1)
    assert np.array_equal(postprocess_ring(ring, closing_radius_px=1), ring)


def test_a_one_pixel_gap_is_bridged():
    ring = _ring()
    rows, cols = np.nonzero(ring)
    centre_row, centre_col = int(round(rows.mean())), int(round(cols.mean()))
    broken = ring.copy()
    broken[centre_row, centre_col:] = False  # cut the band on the right, one row high
    assert betti_numbers(broken) == (1, 0)
    fixed = postprocess_ring(broken, closing_radius_px=1)
    assert betti_numbers(fixed) == (1, 1)
    assert not (fixed & ~ring).any()
    assert (ring & ~fixed).sum() <= 2  # at most a notch at each end of the cut


def test_an_island_and_a_small_extra_hole_are_removed():
    ring = _ring()
    noisy = ring.copy()
    noisy[2:5, 2:5] = True  # an island in the corner
    noisy[H // 2 + 3, W // 2 + 2] = True  # a 1-pixel island in the cavity
    rows, cols = np.nonzero(ring)
    centre_row, centre_col = int(round(rows.mean())), int(round(cols.mean()))
    noisy[centre_row : centre_row + 2, centre_col - 27 : centre_col - 25] = False  # a 2x2 hole in the band
    assert betti_numbers(noisy) == (3, 2)
    assert np.array_equal(postprocess_ring(noisy), ring)


def test_postprocess_ring_of_an_empty_mask_is_empty():
    assert not postprocess_ring(np.zeros((H, W), bool)).any()


def test_post_processed_unet_has_the_unets_parameters_and_loads_its_checkpoint():
    unet = UNet(out_bias=-3.0)
    post = PostProcessedUNet(out_bias=-3.0, threshold=0.3, closing_radius_px=1)
    assert list(post.state_dict()) == list(unet.state_dict())
    post.load_state_dict(unet.state_dict(), strict=True)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        PostProcessedUNet(threshold=0.0)
    with pytest.raises(ValueError, match="closing_radius_px must be an integer >= 0"):
        PostProcessedUNet(closing_radius_px=-1)


def test_post_processed_unet_returns_the_fixed_binary_unet_prediction():
    torch.manual_seed(0)
    unet = UNet(features=4).eval()
    post = PostProcessedUNet(features=4, threshold=0.3, closing_radius_px=2).eval()
    post.load_state_dict(unet.state_dict(), strict=True)
    image = torch.rand(3, 1, 48, 64)
    out = post(image)
    assert out.segmentation.shape == (3, 1, 48, 64)
    assert out.segmentation.dtype == torch.float32 and not out.segmentation.requires_grad
    assert out.displacements == {}
    assert set(torch.unique(out.segmentation).tolist()) <= {0.0, 1.0}
    with torch.no_grad():
        masks = (unet(image).segmentation >= 0.3).numpy()[:, 0]
    expected = np.stack([postprocess_ring(m, 2) for m in masks])
    assert not np.array_equal(expected, masks), "the untrained U-Net's noisy masks need fixing"
    assert np.array_equal(out.segmentation.numpy()[:, 0].astype(bool), expected)
