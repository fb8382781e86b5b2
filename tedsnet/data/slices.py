"""Selection, cropping and normalisation of the 2-D short-axis slices of the protocol (``docs/protocol.md``).

Per scan (ED and ES frame of a patient), among the z-slices whose reference myocardium (label 2) is one ring
(Betti numbers (1, 1), 4-connected foreground, :func:`tedsnet.evaluation.metrics.has_ring_topology`), the ``n`` closest to the
middle of the myocardium-bearing z-range are kept. Each is centre-cropped or zero-padded on array axes (0, 1) as
stored (no transpose, native resolution) and its intensities are normalised per slice (:func:`normalise_intensity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tedsnet.data.acdc import LABELS, PHASES, Patient
from tedsnet.evaluation.metrics import has_ring_topology

__all__ = [
    "CROP",
    "Slice",
    "center_crop_or_pad",
    "crop_window",
    "extract_slices",
    "normalise_intensity",
    "ring_slice_indices",
    "select_slices",
    "slice_id",
]

#: Default in-plane size (rows, cols) of the protocol.
CROP: tuple[int, int] = (144, 208)
#: Percentiles of the per-slice intensity normalisation.
CLIP_PERCENTILES: tuple[float, float] = (1.0, 99.0)


def slice_id(patient_id: str, phase: str, z: int) -> str:
    """Identifier of an original slice, e.g. ``"patient001_ED_z04"``."""
    return f"{patient_id}_{phase}_z{int(z):02d}"


@dataclass(frozen=True, eq=False)
class Slice:
    """One selected, cropped and normalised slice.

    Attributes
    ----------
    patient_id, group : str
    phase : str
        ``"ED"`` or ``"ES"``.
    z : int
        Index along array axis 2 of the stored volume.
    spacing : (float, float)
        (row_mm, col_mm): pixel size along array axes (0, 1).
    image : np.ndarray
        float32 (H, W) in [0, 1] (see :func:`normalise_intensity`); padded pixels are 0.
    myocardium : np.ndarray
        uint8 (H, W) in {0, 1}: label == 2.
    clipped : bool
        True when the crop cut away myocardium pixels of the stored slice.
    """

    patient_id: str
    group: str
    phase: str
    z: int
    spacing: tuple[float, float]
    image: np.ndarray
    myocardium: np.ndarray
    clipped: bool

    @property
    def id(self) -> str:
        """:func:`slice_id` of this slice."""
        return slice_id(self.patient_id, self.phase, self.z)


def crop_window(size: int, target: int) -> tuple[slice, slice, tuple[int, int]]:
    """Centre crop/pad along one axis.

    Returns ``(src, dst, pad)``: ``out[dst] = in[src]`` where ``out`` has length ``target``. When cropping, the
    kept window starts at ``(size - target) // 2``; when padding, ``(target - size) // 2`` zeros go before.
    """
    if size >= target:
        start = (size - target) // 2
        return slice(start, start + target), slice(0, target), (0, 0)
    before = (target - size) // 2
    return slice(0, size), slice(before, before + size), (before, target - size - before)


def center_crop_or_pad(array: np.ndarray, shape: Sequence[int], fill: float = 0) -> np.ndarray:
    """Centre-crop or pad the first two axes of ``array`` to ``shape`` (see :func:`crop_window`).

    Parameters
    ----------
    array : np.ndarray
        (X, Y, ...) any dtype.
    shape : (H, W)
        Target size of axes (0, 1).
    fill : scalar
        Value of padded pixels.

    Returns
    -------
    np.ndarray
        (H, W, ...) same dtype, a new array.
    """
    h, w = (int(s) for s in shape)
    src0, dst0, _ = crop_window(array.shape[0], h)
    src1, dst1, _ = crop_window(array.shape[1], w)
    out = np.full((h, w, *array.shape[2:]), fill, dtype=array.dtype)
    out[dst0, dst1] = array[src0, src1]
    return out


def normalise_intensity(image: np.ndarray, percentiles: tuple[float, float] = CLIP_PERCENTILES) -> np.ndarray:
    """Per-slice intensity normalisation of the protocol.

    Rule: clip to the [1st, 99th] percentile of the slice's own pixels, then min-max to [0, 1]:
    ``(clip(x, p1, p99) - p1) / (p99 - p1)``. A constant slice (p99 == p1) maps to zeros. The percentiles are
    computed on the pixels given (in :func:`extract_slices`: the cropped field of view, before zero padding).

    Parameters
    ----------
    image : np.ndarray
        (H, W) any real dtype.

    Returns
    -------
    np.ndarray
        float32 (H, W) in [0, 1].
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, percentiles)
    if not hi > lo:
        return np.zeros_like(image, dtype=np.float32)
    out = (np.clip(image, lo, hi) - lo) / np.float32(hi - lo)
    return out.astype(np.float32, copy=False)


def ring_slice_indices(label: np.ndarray) -> tuple[list[int], tuple[int, int] | None]:
    """Ring slices of a label volume.

    Parameters
    ----------
    label : np.ndarray
        (X, Y, Z) ACDC labels.

    Returns
    -------
    (rings, z_range)
        ``rings``: ascending z whose myocardium (label 2) has Betti numbers (1, 1) with 4-connected foreground;
        ``z_range``: (first, last) z bearing any myocardium, or None when there is none.
    """
    myo = np.asarray(label) == LABELS["myocardium"]
    bearing = np.flatnonzero(myo.any(axis=(0, 1)))
    if bearing.size == 0:
        return [], None
    rings = [int(z) for z in bearing if has_ring_topology(myo[:, :, z])]
    return rings, (int(bearing[0]), int(bearing[-1]))


def select_slices(rings: Sequence[int], z_range: tuple[int, int], n: int) -> list[int]:
    """The ``n`` ring slices closest to the middle of the myocardium-bearing z-range.

    The middle is ``(first + last) / 2``. Ties (equal distance, which happens on both sides of a middle) go to the
    lower z. Returned in ascending z order. Raises ValueError if fewer than ``n`` ring slices are given.
    """
    if len(rings) < n:
        raise ValueError(
            f"need {n} ring slices, found {len(rings)} (z = {list(rings)}); ask for at most {len(rings)} slices"
        )
    mid = (z_range[0] + z_range[1]) / 2.0
    chosen = sorted(rings, key=lambda z: (abs(z - mid), z))[:n]
    return sorted(chosen)


def _crop_slice(patient: Patient, phase: str, z: int, crop: tuple[int, int]) -> Slice:
    """Slice ``z`` of one phase, centre-cropped or zero-padded to ``crop`` and normalised on its field of view."""
    frame = patient.frames[phase]
    src0, dst0, _ = crop_window(frame.image.shape[0], crop[0])
    src1, dst1, _ = crop_window(frame.image.shape[1], crop[1])
    myo_full = frame.label[:, :, z] == LABELS["myocardium"]
    image = np.zeros(crop, dtype=np.float32)
    image[dst0, dst1] = normalise_intensity(frame.image[src0, src1, z])
    myo = np.zeros(crop, dtype=np.uint8)
    myo[dst0, dst1] = myo_full[src0, src1]
    return Slice(
        patient_id=patient.id,
        group=patient.group,
        phase=phase,
        z=z,
        spacing=(float(frame.spacing[0]), float(frame.spacing[1])),
        image=image,
        myocardium=myo,
        clipped=bool(int(myo.sum()) < int(myo_full.sum())),
    )


def extract_slices(
    patient: Patient,
    n: int = 5,
    crop: Sequence[int] = CROP,
    phases: Sequence[str] = PHASES,
) -> list[Slice]:
    """The protocol's slices of one patient (``docs/protocol.md``, slice selection).

    For each phase (ED then ES): among the z-slices whose myocardium (label 2) is one ring (Betti (1, 1),
    4-connected foreground), the ``n`` closest to the middle of the myocardium-bearing z-range (ties to the lower
    z; see :func:`select_slices`), in ascending z. Each slice is centre-cropped or zero-padded on array axes (0, 1)
    as stored (no transpose, no resampling) to ``crop``; intensities are normalised per slice by
    :func:`normalise_intensity` (clip to the 1st-99th percentile of the cropped field of view, min-max to [0, 1];
    padding is 0). The ring test uses the full stored slice; ``Slice.clipped`` records when the crop cut
    myocardium away.

    Parameters
    ----------
    patient : Patient
        From :func:`tedsnet.data.acdc.read_patient`.
    n : int
        Slices per scan (protocol: 5).
    crop : (H, W)
        Output size (protocol: (144, 208)).
    phases : sequence of str
        Frames to use, default ("ED", "ES").

    Returns
    -------
    list of Slice
        ``n * len(phases)`` slices, phase order then ascending z; image float32 (H, W), myocardium uint8 (H, W).

    Raises
    ------
    ValueError
        If a scan has fewer than ``n`` ring slices (the message names the patient, phase and z found), or ``n`` or
        ``crop`` are invalid.
    """
    if int(n) != n or n < 1:
        raise ValueError(
            f"extract_slices: n must be a positive integer, got {n!r}; pass e.g. 5 (the protocol)"
        )
    crop = tuple(int(c) for c in crop)
    if len(crop) != 2 or min(crop) < 1:
        raise ValueError(
            f"extract_slices: crop must be two positive integers (H, W), got {crop!r}; pass e.g. (144, 208)"
        )
    out: list[Slice] = []
    for phase in phases:
        if phase not in patient.frames:
            raise ValueError(
                f"extract_slices: phase {phase!r} not in patient {patient.id} (has {list(patient.frames)})"
            )
        frame = patient.frames[phase]
        rings, z_range = ring_slice_indices(frame.label)
        if z_range is None or len(rings) < n:
            raise ValueError(
                f"{patient.id} {phase} ({frame.label_path}): need {n} slices whose myocardium is one ring "
                f"(Betti (1, 1)), found {len(rings)} (z = {rings}); lower n or check the label"
            )
        for z in select_slices(rings, z_range, int(n)):
            out.append(_crop_slice(patient, phase, int(z), crop))
    return out
