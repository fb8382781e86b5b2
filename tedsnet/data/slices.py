"""Selection, cropping and normalisation of the 2-D short-axis slices of the protocol (``docs/protocol.md``).

Per scan (ED and ES frame of a patient), among the z-slices whose reference myocardium (label 2) is one ring
(Betti numbers (1, 1), 4-connected foreground, :func:`tedsnet.evaluation.metrics.has_ring_topology`), the ``n`` closest to the
middle of the myocardium-bearing z-range are kept. Each is centre-cropped or zero-padded on array axes (0, 1) as
stored (no transpose, native resolution) and its intensities are normalised per slice (:func:`normalise_intensity`).

Every z of a scan also has a class (:func:`classify_slices`, :data:`SLICE_CLASSES`): a ring, a non-ring slice on
the basal or apical side of the scan's ring slices or broken between them, or a slice without myocardium.
:func:`extract_all_slices` gives every z, cropped and normalised like the protocol's, with its class and whether
the protocol keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tedsnet.data.acdc import LABELS, PHASES, Frame, Patient
from tedsnet.evaluation.metrics import has_ring_topology

__all__ = [
    "CROP",
    "SLICE_CLASSES",
    "ClassifiedSlice",
    "Slice",
    "apex_at_high_z",
    "center_crop_or_pad",
    "classify_slices",
    "crop_window",
    "extract_all_slices",
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
#: Class of a z-slice by its reference myocardium (:func:`classify_slices`).
SLICE_CLASSES: tuple[str, ...] = (
    "ring",
    "non_ring_apical",
    "non_ring_basal",
    "non_ring_broken",
    "no_myocardium",
)


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


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` against ``x``; 0 when ``x`` has fewer than two distinct values."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    dx = x - x.mean()
    spread = float((dx**2).sum())
    return float((dx * (y - y.mean())).sum() / spread) if spread > 0 else 0.0


def apex_at_high_z(label: np.ndarray) -> bool:
    """Whether the apex of a label volume lies towards high z (the base towards z = 0).

    Rule: the heart's labelled cross-section (RV cavity + myocardium + LV cavity, pixels per z) shrinks from base
    to apex. Its least-squares slope against z over the myocardium-bearing slices decides: negative means the
    apex is at high z, positive at low z. A flat profile (slope 0, or fewer than two myocardium-bearing slices)
    keeps ACDC's storage order, base at z = 0.

    Parameters
    ----------
    label : np.ndarray
        (X, Y, Z) ACDC labels.

    Returns
    -------
    bool
        True when the apex is towards high z.

    Examples
    --------
    >>> label = np.zeros((8, 8, 3), np.uint8)
    >>> label[1:7, 1:7, 0] = 2; label[2:6, 2:6, 1] = 2; label[3:5, 3:5, 2] = 2
    >>> apex_at_high_z(label), apex_at_high_z(label[:, :, ::-1])
    (True, False)
    """
    label = np.asarray(label)
    bearing = np.flatnonzero((label == LABELS["myocardium"]).any(axis=(0, 1)))
    # The whole cross-section, not the LV cavity alone: an infarcted LV cavity can widen towards the apex.
    area = (label > 0).sum(axis=(0, 1))
    return _slope(bearing, area[bearing]) <= 0


def _classes(label: np.ndarray, rings: Sequence[int]) -> list[str]:
    """:func:`classify_slices` given the volume's ring slices (ascending z)."""
    bearing = (label == LABELS["myocardium"]).any(axis=(0, 1))
    apex_high = apex_at_high_z(label)
    ring_set = set(rings)
    out = []
    for z in range(label.shape[2]):
        if not bearing[z]:
            out.append("no_myocardium")
        elif z in ring_set:
            out.append("ring")
        elif not rings or rings[0] < z < rings[-1]:
            out.append("non_ring_broken")
        else:
            out.append("non_ring_apical" if (z > rings[-1]) == apex_high else "non_ring_basal")
    return out


def classify_slices(label: np.ndarray) -> list[str]:
    """The class (:data:`SLICE_CLASSES`) of every z of a label volume.

    Rule, per z: ``"no_myocardium"`` when the slice has no label 2; ``"ring"`` when its myocardium has Betti
    numbers (1, 1) with 4-connected foreground (as :func:`ring_slice_indices`); otherwise a non-ring slice:
    ``"non_ring_broken"`` inside the z-range of the volume's ring slices, ``"non_ring_basal"`` or
    ``"non_ring_apical"`` outside it, on the side of the base or the apex (:func:`apex_at_high_z`). A volume
    without any ring slice has no such range: its non-ring slices are all ``"non_ring_broken"``.

    Parameters
    ----------
    label : np.ndarray
        (X, Y, Z) ACDC labels.

    Returns
    -------
    list of str
        One class per z, in z order.

    Raises
    ------
    ValueError
        If ``label`` is not 3-D.

    Examples
    --------
    Base at z = 0: an open basal C, rings, an apical disc and a slice below the heart read
    ``["non_ring_basal", "ring", ..., "ring", "non_ring_apical", "no_myocardium"]``.
    """
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError(
            f"classify_slices: label must be a 3-D volume (X, Y, Z), got shape {label.shape}; pass a frame's label"
        )
    rings, _ = ring_slice_indices(label)
    return _classes(label, rings)


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


def _check_request(who: str, n: int, crop: Sequence[int]) -> tuple[int, tuple[int, int]]:
    """``(n, crop)`` as ints after checking them; ValueError naming ``who`` otherwise."""
    if int(n) != n or n < 1:
        raise ValueError(f"{who}: n must be a positive integer, got {n!r}; pass e.g. 5 (the protocol)")
    crop = tuple(int(c) for c in crop)
    if len(crop) != 2 or min(crop) < 1:
        raise ValueError(
            f"{who}: crop must be two positive integers (H, W), got {crop!r}; pass e.g. (144, 208)"
        )
    return int(n), crop


def _frame_of(who: str, patient: Patient, phase: str) -> Frame:
    """The patient's frame of ``phase``; ValueError naming ``who`` when it has none."""
    if phase not in patient.frames:
        raise ValueError(f"{who}: phase {phase!r} not in patient {patient.id} (has {list(patient.frames)})")
    return patient.frames[phase]


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
    n, crop = _check_request("extract_slices", n, crop)
    out: list[Slice] = []
    for phase in phases:
        frame = _frame_of("extract_slices", patient, phase)
        rings, z_range = ring_slice_indices(frame.label)
        if z_range is None or len(rings) < n:
            raise ValueError(
                f"{patient.id} {phase} ({frame.label_path}): need {n} slices whose myocardium is one ring "
                f"(Betti (1, 1)), found {len(rings)} (z = {rings}); lower n or check the label"
            )
        for z in select_slices(rings, z_range, int(n)):
            out.append(_crop_slice(patient, phase, int(z), crop))
    return out


@dataclass(frozen=True, eq=False)
class ClassifiedSlice:
    """One z of a scan, cropped and normalised like the protocol's slices, with its class.

    Attributes
    ----------
    slice : Slice
        As :func:`extract_slices` makes it (same crop, padding and normalisation); its myocardium may be empty.
    slice_class : str
        One of :data:`SLICE_CLASSES` (:func:`classify_slices`, decided on the full stored slice).
    kept : bool
        True when :func:`extract_slices` selects this z.
    """

    slice: Slice
    slice_class: str
    kept: bool


def extract_all_slices(
    patient: Patient,
    n: int = 5,
    crop: Sequence[int] = CROP,
    phases: Sequence[str] = PHASES,
) -> list[ClassifiedSlice]:
    """Every z of the patient's scans, each with its class and whether the protocol keeps it.

    Each z is cropped or padded and normalised exactly as in :func:`extract_slices` (the same function makes
    both). ``kept`` marks the ``n`` slices :func:`extract_slices` selects; a scan with fewer than ``n`` ring
    slices, which :func:`extract_slices` refuses, keeps none.

    Parameters
    ----------
    patient : Patient
        From :func:`tedsnet.data.acdc.read_patient`.
    n : int
        Slices per scan the protocol keeps (protocol: 5).
    crop : (H, W)
        Output size (protocol: (144, 208)).
    phases : sequence of str
        Frames to use, default ("ED", "ES").

    Returns
    -------
    list of ClassifiedSlice
        Phase order then ascending z, every z of each frame (Z per phase).

    Raises
    ------
    ValueError
        If ``n`` or ``crop`` are invalid or a phase is missing.

    Examples
    --------
    >>> rows = extract_all_slices(read_patient("acdc/training/patient001"), n=5)  # doctest: +SKIP
    >>> [r.slice.z for r in rows if r.kept][:5]  # doctest: +SKIP
    [3, 4, 5, 6, 7]
    """
    n, crop = _check_request("extract_all_slices", n, crop)
    out: list[ClassifiedSlice] = []
    for phase in phases:
        frame = _frame_of("extract_all_slices", patient, phase)
        rings, z_range = ring_slice_indices(frame.label)
        kept = set(select_slices(rings, z_range, n)) if len(rings) >= n else set()
        for z, slice_class in enumerate(_classes(frame.label, rings)):
            out.append(ClassifiedSlice(_crop_slice(patient, phase, z, crop), slice_class, z in kept))
    return out
