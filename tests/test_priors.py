import numpy as np
import pytest

from tedsnet.evaluation.metrics import betti_numbers
from tedsnet.network.priors import ring_prior


def test_ring_prior_known_pixels_and_topology():
    ring = ring_prior((144, 208), radius=30, thickness=7)
    assert ring.dtype == bool and ring.shape == (144, 208)
    c = (71.5, 103.5)
    rows, cols = np.nonzero(ring)
    distance = np.hypot(rows - c[0], cols - c[1])
    assert distance.max() <= 30 and distance.min() > 23
    # every pixel centre in the annulus is set
    rr, cc = np.mgrid[:144, :208]
    d = np.hypot(rr - c[0], cc - c[1])
    np.testing.assert_array_equal(ring, (d > 23) & (d <= 30))
    assert betti_numbers(ring) == (1, 1)
    # area close to the continuous annulus pi (R^2 - r^2)
    assert abs(ring.sum() - np.pi * (30**2 - 23**2)) / (np.pi * (30**2 - 23**2)) < 0.03


def test_ring_prior_centre_is_symmetric_and_movable():
    ring = ring_prior((64, 80), radius=10, thickness=3)
    np.testing.assert_array_equal(ring, ring[::-1, :])
    np.testing.assert_array_equal(ring, ring[:, ::-1])
    moved = ring_prior((64, 80), radius=10, thickness=3, center=(20, 30))
    assert moved[20, 30 + 9] and not moved[20, 30]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(shape=(10,), radius=3, thickness=1), "shape must be two positive integers"),
        (dict(shape=(10, 10), radius=0, thickness=1), "radius must be > 0"),
        (dict(shape=(10, 10), radius=3, thickness=4), "thickness must satisfy"),
    ],
)
def test_ring_prior_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ring_prior(**kwargs)
