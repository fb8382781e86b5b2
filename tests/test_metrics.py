"""Metrics against independent oracles (scipy labelling, medpy) and known answers."""

import numpy as np
import pytest
import torch
from medpy.metric import binary as medpy_binary
from scipy import ndimage

from tedsnet.evaluation.metrics import (
    JACOBIAN_SLAB_ROWS,
    average_surface_distance,
    betti_numbers,
    dice,
    has_ring_topology,
    hausdorff,
    jacobian_determinant,
    jacobian_determinant_central,
    nonpositive_jacobian_percent,
    nonpositive_jacobian_percents,
    surface_distances,
)
from tedsnet.network.priors import ring_prior

FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)


def oracle_betti(mask: np.ndarray, connectivity: int) -> tuple[int, int]:
    """b0 = foreground components; b1 = bounded background components with the dual connectivity."""
    fg, bg = (FOUR, EIGHT) if connectivity == 4 else (EIGHT, FOUR)
    b0 = ndimage.label(mask, structure=fg)[1]
    background = np.pad(~mask.astype(bool), 1, constant_values=True)
    b1 = ndimage.label(background, structure=bg)[1] - 1
    return b0, b1


def _hand_made():
    ring = ring_prior((40, 48), 12, 4)
    gap = ring.copy()
    gap[18:22, 30:] = False  # axis-aligned cut through the right side
    diagonal = np.zeros((6, 6), bool)  # a ring closed only through diagonal contacts
    diagonal[[0, 1, 1, 2, 2, 3, 3, 4], [2, 1, 3, 0, 4, 1, 3, 2]] = True
    island = ring.copy()
    island[20, 24] = True  # a dot inside the hole
    disc_with_hole = ring_prior((40, 48), 12, 12)
    disc_with_hole[19:21, 23:25] = False
    return {
        "ring": (ring, (1, 1), (1, 1)),
        "axis_gap": (gap, (1, 0), (1, 0)),
        "diagonal_only": (diagonal, (8, 0), (1, 1)),
        "island": (island, (2, 1), (2, 1)),
        "hole_in_disc": (disc_with_hole, (1, 1), (1, 1)),
        "empty": (np.zeros((5, 5), bool), (0, 0), (0, 0)),
    }


@pytest.mark.parametrize("name", list(_hand_made()))
def test_betti_hand_made_cases(name):
    mask, expected4, expected8 = _hand_made()[name]
    assert betti_numbers(mask, 4) == expected4
    assert betti_numbers(mask, 8) == expected8
    if mask.any():
        assert oracle_betti(mask, 4) == expected4 and oracle_betti(mask, 8) == expected8


@pytest.mark.parametrize("connectivity", [4, 8])
def test_betti_agrees_with_labelling_oracle_on_random_masks(connectivity):
    rng = np.random.default_rng(connectivity)
    for density in (0.3, 0.5, 0.7):
        for _ in range(100):
            mask = rng.random((rng.integers(3, 20), rng.integers(3, 20))) < density
            assert betti_numbers(mask, connectivity) == oracle_betti(mask, connectivity)


def test_ring_topology_check():
    assert has_ring_topology(ring_prior((32, 32), 10, 3))
    assert not has_ring_topology(ring_prior((32, 32), 10, 10))  # a disc


def test_dice_and_hausdorff_agree_with_medpy():
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = ndimage.binary_dilation(rng.random((50, 60)) > 0.97, iterations=3)
        b = ndimage.binary_dilation(rng.random((50, 60)) > 0.97, iterations=2)
        spacing = tuple(rng.uniform(0.6, 2.0, size=2))
        assert dice(a, b) == pytest.approx(medpy_binary.dc(a, b))
        assert hausdorff(a, b) == pytest.approx(medpy_binary.hd(a, b))
        assert hausdorff(a, b, spacing=spacing) == pytest.approx(medpy_binary.hd(a, b, voxelspacing=spacing))
        assert hausdorff(a, b, spacing=spacing, percentile=95) == pytest.approx(
            medpy_binary.hd95(a, b, voxelspacing=spacing)
        )


def test_assd_agrees_with_medpy_and_with_the_combined_distances():
    rng = np.random.default_rng(1)
    for _ in range(30):
        a = ndimage.binary_dilation(rng.random((50, 60)) > 0.97, iterations=3)
        b = ndimage.binary_dilation(rng.random((50, 60)) > 0.97, iterations=2)
        spacing = tuple(rng.uniform(0.6, 2.0, size=2))
        assert average_surface_distance(a, b) == pytest.approx(medpy_binary.assd(a, b))
        assert average_surface_distance(a, b, spacing) == pytest.approx(
            medpy_binary.assd(a, b, voxelspacing=spacing)
        )
        # the combined call gives exactly (==) what the three separate ones give
        for sp in (None, spacing):
            assert surface_distances(a, b, sp) == (
                hausdorff(a, b, sp),
                hausdorff(a, b, sp, percentile=95),
                average_surface_distance(a, b, sp),
            )


def test_assd_known_answers_and_empty_masks():
    ring = ring_prior((60, 60), 15, 4)
    assert average_surface_distance(ring, ring) == 0.0
    square = np.zeros((8, 8), bool)
    square[2:6, 2:6] = True
    moved = np.roll(square, 1, axis=1)
    # 12 border pixels each way: 4 on the far side one column from the other border, 2 inside the other square one
    # row from it, the other 6 on it
    assert average_surface_distance(square, moved) == pytest.approx(6 / 12)
    assert average_surface_distance(square, moved, spacing=(1.0, 3.0)) == pytest.approx((4 * 3 + 2 * 1) / 12)
    assert average_surface_distance(square, moved) <= hausdorff(square, moved)
    empty = np.zeros_like(ring)
    assert np.isnan(average_surface_distance(empty, ring)) and np.isnan(average_surface_distance(ring, empty))
    assert all(np.isnan(v) for v in surface_distances(empty, empty))


def test_hausdorff_known_answer_and_empty_mask():
    ring = ring_prior((60, 60), 15, 4)
    shifted = np.roll(ring, 3, axis=1)
    assert hausdorff(ring, shifted) == pytest.approx(3.0)
    assert hausdorff(ring, shifted, spacing=(1.0, 0.5)) == pytest.approx(1.5)
    assert np.isnan(hausdorff(np.zeros_like(ring), ring))
    assert dice(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_jacobian_known_answers():
    rows, cols = np.mgrid[:8, :10].astype(float)
    identity = np.zeros((2, 8, 10))
    assert jacobian_determinant(identity).shape == (7, 9)
    np.testing.assert_allclose(jacobian_determinant(identity), 1.0)
    scaling = np.stack([0.5 * rows, 0.5 * cols])  # x -> 1.5 x
    np.testing.assert_allclose(jacobian_determinant(scaling), 2.25)
    np.testing.assert_allclose(jacobian_determinant_central(scaling), 2.25)
    assert jacobian_determinant_central(scaling).shape == (8, 10)
    fold = np.stack([-2.0 * rows, np.zeros_like(cols)])  # x_row -> -x_row
    assert (jacobian_determinant(fold) < 0).all()
    assert nonpositive_jacobian_percent(fold) == 100.0
    assert nonpositive_jacobian_percent(identity) == 0.0
    shear = np.stack([0.3 * cols, np.zeros_like(cols)])  # det of [[1, .3], [0, 1]] = 1
    np.testing.assert_allclose(jacobian_determinant(shear), 1.0)


def test_jacobian_local_fold_percentage():
    disp = np.zeros((2, 11, 11))
    disp[0, 5, :] = -3.0  # one row pulled back past its neighbour
    det = jacobian_determinant(disp)
    assert (det[4] < 0).all() and (det[5] > 1).all()
    assert nonpositive_jacobian_percent(disp) == pytest.approx(100 * 10 / 100)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: dice(np.zeros((3, 3)), np.zeros((3, 4))), "same shape"),
        (lambda: dice(np.zeros(3), np.zeros(3)), "2-D mask"),
        (lambda: betti_numbers(np.ones((3, 3)), 6), "connectivity must be 4 or 8"),
        (lambda: hausdorff(np.ones((3, 3)), np.ones((3, 3)), spacing=(1, 0)), "spacing must be two positive"),
        (
            lambda: hausdorff(np.ones((3, 3)), np.ones((3, 3)), percentile=120),
            r"percentile must be in \[0, 100\]",
        ),
        (lambda: jacobian_determinant(np.zeros((3, 4, 4))), r"shape \(2, H, W\)"),
        (
            lambda: average_surface_distance(np.ones((3, 3)), np.ones((3, 3)), spacing=(1, -1)),
            "average_surface_distance: spacing must be two positive",
        ),
        (lambda: average_surface_distance(np.ones((3, 3)), np.ones((3, 4))), "same shape"),
        (
            lambda: surface_distances(np.ones((3, 3)), np.ones((3, 3)), spacing=(1,)),
            "spacing must be two positive",
        ),
    ],
)
def test_metric_input_checks(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# heights around multiples of JACOBIAN_SLAB_ROWS: whole slabs, one-row tails, a single slab
@pytest.mark.parametrize("height", [2, 3, 31, 32, 33, 64, 65, 97])
def test_both_jacobian_percentages_at_once_equal_the_separate_ones(height):
    assert JACOBIAN_SLAB_ROWS == 32
    rng = np.random.default_rng(7)
    for scale in (0.1, 1.0, 3.0):  # from no folds to many
        disp = (rng.normal(size=(2, height, 53)) * scale).astype(np.float32)
        forward, central = nonpositive_jacobian_percents(disp)
        assert forward == nonpositive_jacobian_percent(disp)
        assert central == nonpositive_jacobian_percent(disp, central=True)
    assert nonpositive_jacobian_percents(np.zeros((2, height, 6))) == (0.0, 0.0)
    assert nonpositive_jacobian_percents(torch.from_numpy(disp)) == (forward, central)


def test_jacobian_percentages_count_a_fold_at_a_slab_boundary():
    disp = np.zeros((2, 64, 8))
    disp[0, 32:, :] = -3.0  # rows 32.. (the second slab) move up past rows 29-31: a fold at the boundary
    forward, central = nonpositive_jacobian_percents(disp)
    assert forward == 100.0 * 7 / (63 * 7)  # forward row 31: 1 + (-3 - 0) = -2
    assert central == 100.0 * 2 * 8 / (64 * 8)  # central rows 31 and 32: 1 + (-3 - 0) / 2 = -0.5
