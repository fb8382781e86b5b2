"""Augmentation: 8 images per slice, labels stay one ring, seeded and deterministic, transforms are what they say."""

from __future__ import annotations

import numpy as np
import pytest

from tedsnet.data.augment import KINDS, augment_slice, transform_pair
from tedsnet.evaluation.metrics import has_ring_topology
from tedsnet.network.priors import ring_prior


def _slice(thickness: float = 3.0):
    label = ring_prior((72, 104), 20, thickness).astype(np.uint8)
    rng = np.random.default_rng(1)
    image = (0.3 + 0.5 * (1 - label) + 0.05 * rng.standard_normal(label.shape)).astype(np.float32)
    return image, label


def test_eight_images_rings_and_original_first():
    image, label = _slice()
    out = augment_slice(image, label, np.random.default_rng(0))
    assert out.images.shape == (8, 72, 104) and out.images.dtype == np.float32
    assert out.labels.shape == (8, 72, 104) and out.labels.dtype == np.uint8
    np.testing.assert_array_equal(out.images[0], image)
    np.testing.assert_array_equal(out.labels[0], label)
    assert [p.kind for p in out.params] == ["original", *KINDS]
    assert all(has_ring_topology(lb) for lb in out.labels)
    assert set(np.unique(out.labels)) == {0, 1}
    for k, p in enumerate(out.params[1:], start=1):
        assert not np.array_equal(out.labels[k], label)  # every augmented image differs from the original
        assert (p.rotation_deg != 0) == ("rotate" in p.kind)
        assert (p.zoom != 1.0) == ("zoom" in p.kind)
        assert ((p.shift_row, p.shift_col) != (0.0, 0.0)) == ("shift" in p.kind)
        assert abs(p.rotation_deg) <= 15 and abs(p.zoom - 1) <= 0.1
        assert abs(p.shift_row) <= 0.1 * 72 and abs(p.shift_col) <= 0.1 * 104


def test_seeded_and_deterministic():
    image, label = _slice()
    a = augment_slice(image, label, np.random.default_rng(5))
    b = augment_slice(image, label, np.random.default_rng(5))
    c = augment_slice(image, label, np.random.default_rng(6))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.params == b.params
    assert not np.array_equal(a.images, c.images)


def test_thin_ring_topology_kept_under_strong_transforms():
    image, label = _slice(thickness=1.6)  # about 2 px wall: linear interpolation often breaks it
    out = augment_slice(image, label, np.random.default_rng(0), n_images=15, rotation_deg=40, zoom_frac=0.3)
    assert all(has_ring_topology(lb) for lb in out.labels)
    assert out.images.shape[0] == 15


def test_transform_known_answers():
    image, label = _slice()
    # a pure integer shift moves the label by that many pixels
    _, shifted = transform_pair(image, label, 0.0, (3.0, -5.0), 1.0)
    np.testing.assert_array_equal(shifted[3:, :-5], label[:-3, 5:])
    # a 90-degree rotation about the centre of a square image is np.rot90 (up to orientation)
    sq = ring_prior((41, 41), 15, 4).astype(np.uint8)
    sq[18:23, 33:37] = 0  # a gap on one side makes the two rotation senses distinguishable
    _, rot = transform_pair(sq.astype(np.float32), sq, 90.0, (0.0, 0.0), 1.0)
    assert np.array_equal(rot, np.rot90(sq, 1)) or np.array_equal(rot, np.rot90(sq, -1))
    assert not np.array_equal(np.rot90(sq, 1), np.rot90(sq, -1))
    # zoom > 1 enlarges: more foreground
    _, zoomed = transform_pair(image, label, 0.0, (0.0, 0.0), 1.2)
    assert zoomed.sum() > label.sum()


def test_errors():
    image, label = _slice()
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        augment_slice(image, label, 0)
    with pytest.raises(ValueError, match="same shape"):
        augment_slice(image, label[:-1], rng)
    with pytest.raises(ValueError, match="not one ring"):
        augment_slice(image, np.zeros_like(label), rng)
    with pytest.raises(ValueError, match=r"shift_frac must be >= 0 and < 0.5"):
        augment_slice(image, label, rng, shift_frac=0.7)
    # a shift that always pushes the ring out of the frame cannot keep it
    tiny = ring_prior((30, 30), 14, 3).astype(np.uint8)
    with pytest.raises(ValueError, match="no shift transform kept the label one ring in 2 tries"):
        augment_slice(tiny.astype(np.float32), tiny, rng, n_images=3, shift_frac=0.49, max_tries=2)
