"""Topology errors (tedsnet.evaluation.topology): Euler characteristic against the Betti numbers, the Betti matching
against hand-made cases and a labelling oracle, and the kinds of a wrong topology."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import ndimage

from tedsnet.evaluation import topology
from tedsnet.evaluation.metrics import betti_numbers
from tedsnet.evaluation.topology import (
    TOPOLOGY_ERROR_KINDS,
    betti_error,
    betti_matching,
    betti_matching_error,
    betti_matching_unmatched,
    classify_topology,
    covers_enclosed_region,
    enclosed_region,
    euler_characteristic,
    euler_error,
    topology_error_kinds,
)
from tedsnet.network.priors import ring_prior

FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)
SHAPE = (60, 90)


def ring(center=(30, 25), radius=10, thickness=3):
    return ring_prior(SHAPE, radius, thickness, center=center)


def disc(center=(30, 25), radius=10):
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def gap_ring():
    out = ring()
    out[28:33, 25:] = False  # cut through the right side: one arc, no hole
    return out


def island_ring():
    out = ring()
    out[5:8, 70:73] = True  # a blob far from the ring
    return out


def test_module_examples_hold():
    assert doctest.testmod(topology).failed == 0


@pytest.mark.parametrize("connectivity", [4, 8])
def test_euler_characteristic_is_b0_minus_b1(connectivity):
    rng = np.random.default_rng(connectivity)
    for density in (0.2, 0.5, 0.8):
        for _ in range(80):
            mask = rng.random((rng.integers(2, 18), rng.integers(2, 18))) < density
            b0, b1 = betti_numbers(mask, connectivity)
            assert euler_characteristic(mask, connectivity) == b0 - b1


def test_euler_characteristic_known_answers():
    diagonal = np.eye(2, dtype=bool)
    assert euler_characteristic(diagonal, 4) == 2 and euler_characteristic(diagonal, 8) == 1
    assert euler_characteristic(ring()) == 0 and euler_characteristic(disc()) == 1
    assert euler_characteristic(np.zeros((4, 4))) == 0
    assert isinstance(euler_characteristic(ring()), int)


def test_betti_and_euler_errors():
    two_rings = ring() | ring(center=(30, 65))
    assert betti_error(ring(), ring()) == 0 and euler_error(ring(), ring()) == 0
    assert (
        betti_error(two_rings, ring()) == 2 and euler_error(two_rings, ring()) == 0
    )  # the Euler error misses it
    assert betti_error(disc(), ring()) == 1 and euler_error(disc(), ring()) == 1
    assert betti_error(np.zeros(SHAPE), ring()) == 2 and euler_error(np.zeros(SHAPE), ring()) == 0
    assert betti_error(island_ring(), ring()) == 1
    diagonal = np.eye(3, dtype=bool)
    assert betti_error(diagonal, np.ones((3, 3)), connectivity=4) == 2
    assert betti_error(diagonal, np.ones((3, 3)), connectivity=8) == 0


def test_betti_matching_hand_made_cases():
    shifted = ring(center=(30, 65))  # the same ring moved clear of the first
    two_rings = ring() | shifted
    empty = np.zeros(SHAPE, bool)
    assert betti_matching_unmatched(ring(), ring()) == (0, 0)
    assert betti_matching_error(island_ring(), ring()) == 1
    assert betti_matching_unmatched(island_ring(), ring()) == (1, 0)
    assert betti_matching_unmatched(two_rings, ring()) == (1, 1)
    # Betti numbers agree, yet no feature is where the reference has it: every bar of both is unmatched
    assert betti_error(shifted, ring()) == 0
    assert betti_matching_unmatched(shifted, ring()) == (2, 2) and betti_matching_error(shifted, ring()) == 4
    assert betti_matching_unmatched(np.roll(ring(), 2, axis=1), ring()) == (0, 0)  # overlapping: matched
    assert betti_matching_unmatched(gap_ring(), ring()) == (0, 1)
    assert betti_matching_unmatched(disc(), ring()) == (0, 1)
    assert betti_matching_unmatched(empty, ring()) == (1, 1)
    assert betti_matching_unmatched(empty, empty) == (0, 0)


def test_betti_matching_counts_give_both_betti_numbers():
    counts = betti_matching(two := ring() | ring(center=(30, 65)), ring())
    assert counts.matched == (1, 1) and counts.unmatched_pred == (1, 1) and counts.unmatched_ref == (0, 0)
    assert counts.pred_betti == betti_numbers(two) and counts.ref_betti == (1, 1)
    assert betti_matching(np.zeros(SHAPE), np.zeros(SHAPE)).pred_betti == (0, 0)


def test_betti_matching_is_symmetric_and_ignores_the_margin():
    pred, ref = island_ring() | ring(center=(30, 60), radius=6, thickness=2), gap_ring()
    assert betti_matching_unmatched(pred, ref) == betti_matching_unmatched(ref, pred)
    big_pred, big_ref = np.zeros((100, 140), bool), np.zeros((100, 140), bool)
    big_pred[17:77, 33:123], big_ref[17:77, 33:123] = pred, ref
    assert betti_matching(big_pred, big_ref) == betti_matching(pred, ref)


def _holes(mask):
    """Labels of the bounded 8-connected background components (0 elsewhere)."""
    labels, _ = ndimage.label(np.pad(~mask, 1, constant_values=True), structure=EIGHT)
    labels[labels == labels[0, 0]] = 0
    return labels[1:-1, 1:-1]


def oracle_matching(pred, ref):
    """Unmatched bars by labelling: a component pair is matched through the union component holding both; a hole
    pair through a hole of the union inside both. Also whether the hole count is ambiguous (a hole of pred or ref
    holding several holes of the union can be matched to only one, and which one is the tie-break's choice)."""
    union = pred | ref
    lu = ndimage.label(union, structure=FOUR)[0]
    n_pred, n_ref = ndimage.label(pred, structure=FOUR)[1], ndimage.label(ref, structure=FOUR)[1]
    shared = len((set(np.unique(lu[pred])) & set(np.unique(lu[ref]))) - {0})
    hu, hp, hr = _holes(union), _holes(pred), _holes(ref)
    inside_both, per_pred, per_ref = 0, {}, {}
    for label in np.unique(hu)[1:]:
        (a,), (b,) = np.unique(hp[hu == label]), np.unique(hr[hu == label])
        per_pred[a] = per_pred.get(a, 0) + (a > 0)
        per_ref[b] = per_ref.get(b, 0) + (b > 0)
        inside_both += bool(a and b)
    holes_pred, holes_ref = len(np.unique(hp)) - 1, len(np.unique(hr)) - 1
    ambiguous = max([0, *per_pred.values(), *per_ref.values()]) > 1
    return (n_pred + n_ref - 2 * shared, holes_pred + holes_ref - 2 * inside_both), ambiguous


def test_betti_matching_agrees_with_a_labelling_oracle():
    rng = np.random.default_rng(0)
    shape, unambiguous = (48, 56), 0
    for _ in range(150):
        center = rng.uniform(18, 30, 2)
        ref = ring_prior(shape, rng.uniform(8, 16), rng.uniform(2, 6), center=center)
        pred = ring_prior(shape, rng.uniform(8, 16), rng.uniform(1, 6), center=center + rng.normal(0, 4, 2))
        noise = ndimage.binary_dilation(
            rng.random(shape) < rng.uniform(0, 0.01), iterations=int(rng.integers(0, 3))
        )
        pred = pred ^ noise if rng.random() < 0.5 else pred | noise
        expected, ambiguous = oracle_matching(pred, ref)
        got = betti_matching(pred, ref)
        assert got.unmatched[0] == expected[0]
        assert got.pred_betti == betti_numbers(pred) and got.ref_betti == betti_numbers(ref)
        if ambiguous:  # a hole holding several of the union's is matched once at most: no fewer unmatched
            assert got.unmatched[1] >= expected[1]
        else:
            unambiguous += 1
            assert got.unmatched[1] == expected[1]
    assert unambiguous > 40


def test_enclosed_region_is_the_cavity():
    cavity = enclosed_region(ring())
    assert (cavity == (disc(radius=10) & ~ring())).all()
    assert not enclosed_region(gap_ring()).any() and not enclosed_region(disc()).any()
    diamond = np.zeros(
        (5, 5), bool
    )  # closed only through diagonal contacts: a hole for 8-connected foreground
    diamond[[0, 1, 1, 2, 2, 3, 3, 4], [2, 1, 3, 0, 4, 1, 3, 2]] = True
    assert not enclosed_region(diamond, 4).any() and enclosed_region(diamond, 8).sum() == 5
    assert covers_enclosed_region(disc(), ring()) is True
    assert covers_enclosed_region(gap_ring(), ring()) is False
    assert covers_enclosed_region(ring(), disc()) is None


def test_topology_error_kinds_of_each_case():
    two_arcs = ring()
    two_arcs[:, 24:27] = False  # cut on both sides: two arcs, the cavity open
    two_holes = ring(radius=14, thickness=9)
    two_holes[30, 20:31] = True  # a bar across the cavity splits it in two
    empty = np.zeros(SHAPE, bool)
    assert topology_error_kinds(ring()) == () and topology_error_kinds(ring(), ref=ring()) == ()
    assert topology_error_kinds(empty, ref=ring()) == ("empty",)
    assert topology_error_kinds(island_ring(), ref=ring()) == ("extra_components",)
    assert topology_error_kinds(disc(), ref=ring()) == ("missing_hole",)
    assert topology_error_kinds(gap_ring(), ref=ring()) == ("broken_ring",)
    assert topology_error_kinds(gap_ring()) == ("missing_hole",)  # without a reference it cannot tell
    assert topology_error_kinds(gap_ring(), ref=disc()) == ("missing_hole",)  # nor with one enclosing nothing
    assert topology_error_kinds(two_arcs, ref=ring()) == ("extra_components", "broken_ring")
    assert topology_error_kinds(two_holes) == ("extra_holes",)
    assert topology_error_kinds(island_ring() | disc(center=(30, 60), radius=3), expected=(2, 1)) == (
        "extra_components",
    )
    assert topology_error_kinds(empty, expected=(0, 0)) == ()


def test_classify_topology_orders_kinds_and_covers_all():
    assert classify_topology((3, 2)) == ("extra_components", "extra_holes")
    assert classify_topology((2, 0), hole_filled=True) == ("extra_components", "missing_hole")
    assert classify_topology((1, 0), hole_filled=False) == ("broken_ring",)
    assert classify_topology((0, 0)) == ("empty",)
    seen = {
        k
        for b0 in range(4)
        for b1 in range(3)
        for f in (True, False)
        for k in classify_topology((b0, b1), (1, 1), f)
    }
    assert seen == set(TOPOLOGY_ERROR_KINDS)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: euler_characteristic(np.ones((3, 3)), 6), "connectivity must be 4 or 8"),
        (lambda: enclosed_region(np.ones((3, 3)), 0), "connectivity must be 4 or 8"),
        (lambda: betti_error(np.ones((3, 3)), np.ones((3, 4))), "same shape"),
        (lambda: betti_matching_error(np.ones((3, 3)), np.ones((4, 3))), "same shape"),
        (lambda: topology_error_kinds(np.ones((3, 3)), ref=np.ones((2, 2))), "same shape"),
        (lambda: euler_error(np.ones(3), np.ones(3)), "2-D mask"),
    ],
)
def test_input_checks(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_missing_extension_says_how_to_install(monkeypatch):
    topology._betti_matching_extension.cache_clear()
    monkeypatch.setattr(topology.importlib.util, "find_spec", lambda name: None)  # as without the package
    try:
        with pytest.raises(ImportError, match="pip install topolosses"):
            betti_matching_error(ring(), ring())
    finally:
        topology._betti_matching_extension.cache_clear()
