"""Slice selection (known answer on a hand-made volume), crop/pad, clipping and per-slice normalisation."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from tedsnet.data.acdc import Frame, Patient
from tedsnet.data.slices import (
    center_crop_or_pad,
    extract_slices,
    normalise_intensity,
    ring_slice_indices,
    select_slices,
)
from tedsnet.evaluation.metrics import has_ring_topology
from tedsnet.network.priors import ring_prior


def _frame(
    label: np.ndarray, image: np.ndarray | None = None, index: int = 1, spacing=(1.2, 1.4, 10.0)
) -> Frame:
    if image is None:
        image = np.random.default_rng(0).normal(100, 10, label.shape).astype(np.float32)
    return Frame(index, image.astype(np.float32), label, spacing, Path("img.nii.gz"), Path("gt.nii.gz"))


def _patient(ed: Frame, es: Frame | None = None) -> Patient:
    return Patient(
        "patient042", "NOR", 170.0, 70.0, 20, MappingProxyType({"ED": ed, "ES": es or ed}), Path(".")
    )


def hand_made_label(shape=(160, 220), center=None) -> np.ndarray:
    """Z = 9: z0 empty, z1 an open C (not a ring), z2..z7 rings, z8 a disc (apex, not a ring)."""
    label = np.zeros((*shape, 9), dtype=np.uint8)
    ring = ring_prior(shape, 20, 6, center=center)
    cavity = ring_prior(shape, 14, 14, center=center)
    for z in range(2, 8):
        label[:, :, z][ring] = 2
        label[:, :, z][cavity] = 3
    c_shape = ring.copy()
    cy = int(round(center[0])) if center else shape[0] // 2
    cx = int(round(center[1])) if center else shape[1] // 2
    c_shape[cy - 3 : cy + 4, cx:] = False  # cut the wall on one side
    label[:, :, 1][c_shape] = 2
    label[:, :, 8][ring_prior(shape, 8, 8, center=center)] = 2
    return label


def test_ring_indices_known_answer():
    rings, z_range = ring_slice_indices(hand_made_label())
    assert rings == [2, 3, 4, 5, 6, 7]
    assert z_range == (1, 8)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, [4]), (2, [4, 5]), (4, [3, 4, 5, 6]), (5, [2, 3, 4, 5, 6]), (6, [2, 3, 4, 5, 6, 7])],
)
def test_select_closest_to_middle(n, expected):
    # middle of the myocardium-bearing range 1..8 is 4.5; ties go to the lower z
    assert select_slices([2, 3, 4, 5, 6, 7], (1, 8), n) == expected


def test_extract_slices_known_answer():
    label = hand_made_label()
    es_label = label.copy()
    es_label[:, :, 7] = 0  # ES: range 1..8 still (disc at z8), rings 2..6
    patient = _patient(_frame(label), _frame(es_label, index=9))
    slices = extract_slices(patient, n=5)
    assert [(s.phase, s.z) for s in slices] == [("ED", z) for z in (2, 3, 4, 5, 6)] + [
        ("ES", z) for z in (2, 3, 4, 5, 6)
    ]
    s = slices[0]
    assert (s.patient_id, s.group, s.spacing, s.id) == ("patient042", "NOR", (1.2, 1.4), "patient042_ED_z02")
    assert s.image.dtype == np.float32 and s.image.shape == (144, 208)
    assert s.myocardium.dtype == np.uint8 and set(np.unique(s.myocardium)) == {0, 1}
    assert all(has_ring_topology(x.myocardium) and not x.clipped for x in slices)
    assert 0.0 <= s.image.min() and s.image.max() <= 1.0


def test_too_few_rings_raises():
    label = hand_made_label()
    label[:, :, 5:8] = 0
    with pytest.raises(
        ValueError, match=r"patient042 ED .*need 5 slices whose myocardium is one ring.*found 3"
    ):
        extract_slices(_patient(_frame(label)), n=5)


def test_crop_and_pad_positions_no_transpose():
    rows, cols = 150, 200  # rows cropped (start 3), cols padded (4 zeros each side)
    label = hand_made_label((rows, cols))
    image = np.broadcast_to(np.arange(cols, dtype=np.float32)[None, :, None], label.shape).copy()
    image += np.arange(rows, dtype=np.float32)[:, None, None] * 1000
    s = extract_slices(_patient(_frame(label, image)), n=1)[0]
    expected = np.zeros((144, 208), np.uint8)
    expected[:, 4:204] = label[3:147, :, s.z] == 2
    np.testing.assert_array_equal(s.myocardium, expected)
    assert (s.image[:, :4] == 0).all() and (s.image[:, 204:] == 0).all()
    # no transpose: intensity grows along rows (x1000) much faster than along columns
    assert s.image[100, 100] > s.image[10, 100]
    np.testing.assert_array_equal(center_crop_or_pad(label, (144, 208))[:, 4:204], label[3:147])


def test_clipped_when_crop_cuts_myocardium():
    label = hand_made_label((200, 220), center=(20.0, 110.0))  # ring near the top edge, outside the crop rows
    s = extract_slices(_patient(_frame(label)), n=1)[0]
    assert s.clipped


def test_normalise_intensity_rule():
    image = np.arange(10000, dtype=np.float32).reshape(100, 100)
    image[0, 0] = 1e9  # an outlier does not set the range
    out = normalise_intensity(image)
    lo, hi = np.percentile(image, (1, 99))
    np.testing.assert_allclose(out, (np.clip(image, lo, hi) - lo) / (hi - lo), atol=1e-6)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert abs(float(np.median(out)) - 0.5) < 0.01
    assert (normalise_intensity(np.full((5, 5), 3.0)) == 0).all()


def test_bad_arguments():
    patient = _patient(_frame(hand_made_label()))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        extract_slices(patient, n=0)
    with pytest.raises(ValueError, match="crop must be two positive integers"):
        extract_slices(patient, crop=(144,))


def test_phantom_gives_ring_slices(phantom_root):
    from tedsnet.data.acdc import read_patient

    for folder in sorted((phantom_root / "training").iterdir())[:5]:
        slices = extract_slices(read_patient(folder))
        assert len(slices) == 10
        assert all(has_ring_topology(s.myocardium) and not s.clipped for s in slices)
