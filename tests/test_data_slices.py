"""Slice selection (known answer on a hand-made volume), crop/pad, clipping, per-slice normalisation, and the class
of every slice (hand-made volumes and the phantom's drawn layout) with the all-slices extraction."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from tedsnet.data.acdc import Frame, Patient
from tedsnet.data.slices import (
    SLICE_CLASSES,
    apex_at_high_z,
    center_crop_or_pad,
    classify_slices,
    extract_all_slices,
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


HAND_MADE_CLASSES = ["no_myocardium", "non_ring_basal", *["ring"] * 6, "non_ring_apical"]


def test_classes_known_answer_and_flipped():
    """The hand-made heart shrinks towards z8 (its apex): the open C at z1 is basal, the disc at z8 apical; stored
    the other way round, every class is mirrored."""
    label = hand_made_label()
    assert classify_slices(label) == HAND_MADE_CLASSES
    assert apex_at_high_z(label) and not apex_at_high_z(label[:, :, ::-1])
    assert classify_slices(label[:, :, ::-1]) == HAND_MADE_CLASSES[::-1]
    assert set(HAND_MADE_CLASSES) <= set(SLICE_CLASSES)


def test_broken_inside_the_ring_range_and_no_ring_at_all():
    label = hand_made_label()
    label[90:, :, 4][label[90:, :, 4] == 2] = 0  # the lower part of the z4 ring gone: a C between rings
    assert classify_slices(label)[4] == "non_ring_broken"
    assert classify_slices(label)[1] == "non_ring_basal" and classify_slices(label)[8] == "non_ring_apical"
    no_ring = label.copy()
    no_ring[:, :, 2:8][no_ring[:, :, 2:8] == 3] = 2  # every ring filled into a disc
    assert classify_slices(no_ring) == ["no_myocardium", *["non_ring_broken"] * 8]


def test_flat_heart_keeps_the_acdc_order_and_a_2d_label_is_refused():
    label = np.zeros((40, 40, 3), np.uint8)
    label[:, :, 1][ring_prior((40, 40), 10, 3)] = 2
    assert apex_at_high_z(label)  # one myocardium-bearing slice: base at z = 0
    assert classify_slices(label) == ["no_myocardium", "ring", "no_myocardium"]
    with pytest.raises(ValueError, match=r"label must be a 3-D volume \(X, Y, Z\), got shape \(40, 40\)"):
        classify_slices(label[:, :, 1])


def test_phantom_classes_match_its_drawn_layout():
    """The phantom draws each slice as one of its kinds, base to apex: an atrium or a slice below the heart has no
    myocardium, the outflow slice is an open basal C, the cap an apical disc."""
    from tedsnet.data.phantom import generate_patient

    expected = {
        "atrium": "no_myocardium",
        "below": "no_myocardium",
        "open": "non_ring_basal",
        "cap": "non_ring_apical",
        "ring": "ring",
    }
    seen = set()
    for i, group in enumerate(("NOR", "DCM", "HCM", "MINF"), start=1):
        frames, params = generate_patient(np.random.default_rng([0, i]), group, (64, 96), pixel_scale=2.0)
        for frame in frames.values():
            got = classify_slices(frame.label)
            assert got == [expected[k] for k in params.layout.kinds], (i, params.layout.kinds, got)
            seen.update(got)
    assert {"ring", "no_myocardium", "non_ring_basal", "non_ring_apical"} <= seen


def test_all_slices_keep_exactly_the_protocol_s_slices():
    label = hand_made_label()
    es_label = label.copy()
    es_label[:, :, 5:8] = 0  # ES: three rings only
    patient = _patient(_frame(label), _frame(es_label, index=9))
    rows = extract_all_slices(patient, n=3)
    assert [(r.slice.phase, r.slice.z) for r in rows] == [(p, z) for p in ("ED", "ES") for z in range(9)]
    assert [r.slice_class for r in rows[:9]] == HAND_MADE_CLASSES
    protocol = extract_slices(patient, n=3)
    kept = [r.slice for r in rows if r.kept]
    assert [(s.phase, s.z) for s in kept] == [(s.phase, s.z) for s in protocol]
    for ours, theirs in zip(kept, protocol, strict=True):
        np.testing.assert_array_equal(ours.image, theirs.image)
        np.testing.assert_array_equal(ours.myocardium, theirs.myocardium)
    assert not rows[0].slice.myocardium.any() and rows[0].slice.image.shape == (144, 208)
    short = extract_all_slices(patient, n=4)  # ES has 3 rings: extract_slices refuses it, nothing kept there
    assert sum(r.kept for r in short if r.slice.phase == "ED") == 4
    assert not any(r.kept for r in short if r.slice.phase == "ES")
    with pytest.raises(ValueError, match="extract_all_slices: n must be a positive integer"):
        extract_all_slices(patient, n=0)
