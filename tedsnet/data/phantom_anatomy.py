"""The phantom's anatomy and acquisition as typed parameters, and how one patient's parameters are drawn.

Every random parameter of a patient is drawn first, in a fixed order, into a :class:`PhantomParams` (one frozen
dataclass per part); :mod:`tedsnet.data.phantom` then renders the images from it. The group means
(:data:`GROUP_GEOMETRY`) are calibrated on ACDC (see :mod:`tedsnet.data.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tedsnet.data.splits import largest_remainder

__all__ = [
    "RING_MIN_PX",
    "sample_params",
    "Acquisition",
    "Body",
    "CineInfo",
    "Ellipse",
    "GROUPS",
    "GROUP_GEOMETRY",
    "GroupGeometry",
    "Harmonics",
    "ImageFormation",
    "Infarct",
    "Intensities",
    "LeftVentricle",
    "Organ",
    "PhantomParams",
    "RightVentricle",
    "SLICE_KINDS",
    "SliceLayout",
    "Surroundings",
    "Trabeculae",
    "WallDetail",
    "assign_groups",
]

#: ACDC diagnostic groups, in ACDC patient-number order.
GROUPS: tuple[str, ...] = ("DCM", "HCM", "MINF", "NOR", "RV")


@dataclass(frozen=True)
class GroupGeometry:
    """Mean anatomy of a group (mm, ED, mid-ventricle) and its ES behaviour.

    Attributes
    ----------
    r_endo_mm : float
        LV cavity radius at the base (ED); mid-ventricular slices are about 0.9 of it.
    thick_mm : float
        Mean myocardial wall thickness (ED).
    es_ratio : float
        ES / ED cavity radius.
    es_mass : float
        ES / ED myocardial cross-section area of a slice (longitudinal shortening brings thicker, more basal
        tissue into the slice at ES).
    rv_area : float
        RV size factor (the RV crescent depth scales with its square root), calibrated so that the measured
        RV / LV cavity area of mid slices matches ACDC's per group.
    rv_es : float
        ES / ED RV cavity radius scale.
    length_mm : float
        LV base-to-apex length.
    septal : float
        Extra relative thickness of the septum (HCM asymmetric hypertrophy).
    infarct : float
        Relative thinning of the infarcted segment (MINF).
    """

    r_endo_mm: float
    thick_mm: float
    es_ratio: float
    es_mass: float
    rv_area: float
    rv_es: float
    length_mm: float
    septal: float = 0.0
    infarct: float = 0.0


#: Calibrated on ACDC (equivalent-circle radii and thickness of the protocol's slices, see tedsnet.data.stats).
GROUP_GEOMETRY: dict[str, GroupGeometry] = {
    "DCM": GroupGeometry(38.5, 8.8, 0.92, 1.06, 0.6, 0.85, 100.0),
    "HCM": GroupGeometry(27.0, 11.0, 0.52, 1.25, 0.9, 0.75, 85.0, septal=0.55),
    "MINF": GroupGeometry(33.0, 8.8, 0.85, 1.2, 0.55, 0.65, 92.0, infarct=0.55),
    "NOR": GroupGeometry(28.0, 8.3, 0.64, 1.35, 2.1, 0.72, 85.0),
    "RV": GroupGeometry(26.5, 7.4, 0.65, 1.35, 4.0, 0.85, 85.0),
}

#: Minimum wall thickness and cavity radius of a ring slice, pixels.
RING_MIN_PX = 2.6


def assign_groups(n_patients: int, groups: Sequence[str] = GROUPS) -> list[str]:
    """Group of each patient: contiguous blocks in ``groups`` order (as ACDC numbers them).

    Sizes follow the largest-remainder rule (100 -> 20 each; 7 -> 2, 2, 1, 1, 1).

    Raises
    ------
    ValueError
        If ``n_patients`` is not a positive integer or ``groups`` is empty.

    Examples
    --------
    >>> assign_groups(7)
    ['DCM', 'DCM', 'HCM', 'HCM', 'MINF', 'NOR', 'RV']
    """
    if int(n_patients) != n_patients or n_patients < 1:
        raise ValueError(f"n_patients must be a positive integer, got {n_patients!r}; pass 1 or more")
    if not groups:
        raise ValueError("groups must name at least one group, got none; pass e.g. GROUPS")
    counts = largest_remainder(int(n_patients), [1.0 / len(groups)] * len(groups))
    return [g for g, c in zip(groups, counts, strict=True) for _ in range(c)]


# ------------------------------------------------------------------------------------------------ parameters
#: Low angular harmonics ``(order k, amplitude a_k, phase p_k)`` of a contour, ``sum_k a_k cos(k phi + p_k)``.
Harmonics = tuple[tuple[int, float, float], ...]

#: Slice kinds of a phantom scan, base to apex (see :class:`SliceLayout`).
SLICE_KINDS: tuple[str, ...] = ("atrium", "open", "ring", "cap", "below")


@dataclass(frozen=True)
class Acquisition:
    """Scanner geometry of one patient.

    Attributes
    ----------
    spacing_mm : float
        In-plane pixel size, both axes (already multiplied by the ``pixel_scale`` of :func:`generate_patient`).
    shape : (int, int)
        Rendered matrix (rows, cols), before the optional transpose.
    transpose : bool
        Store the volume with rows and columns swapped, as some ACDC scans are.
    slice_mm : float
        Slice thickness, the z spacing.
    """

    spacing_mm: float
    shape: tuple[int, int]
    transpose: bool
    slice_mm: float


@dataclass(frozen=True)
class Infarct:
    """A thinned, akinetic wall segment (MINF): the wall shrinks by ``depth * vonmises(angle; centre, kappa)``.

    Attributes
    ----------
    depth : float
        Relative thinning at the segment centre, in (0, 1).
    centre_rad : float
        Angle of the segment centre in the (row, col) plane, radians.
    concentration : float
        Von Mises concentration (larger: a narrower segment).
    """

    depth: float
    centre_rad: float
    concentration: float


@dataclass(frozen=True)
class LeftVentricle:
    """Left-ventricular cavity and myocardium of one patient (mm; ED unless named ES).

    Attributes
    ----------
    r_endo_mm : float
        Cavity radius at the base; the long-axis profile is an ellipsoid.
    thick_mm : float
        Mean wall thickness at the base (thinner towards the apex).
    es_ratio : float
        ES / ED cavity radius.
    es_mass : float
        ES / ED myocardial cross-section area of a slice.
    length_mm : float
        Base-to-apex length, which sets the number of ring slices.
    endo_harmonics, epi_harmonics : Harmonics
        Relative irregularity of the endocardium and of the apical cap's outline.
    thickness_harmonics : Harmonics
        Relative variation of the wall thickness around the ring.
    septal : float
        Extra relative septal thickness (HCM asymmetric hypertrophy; 0 for the other groups).
    infarct : Infarct or None
        The thinned segment (MINF only).
    """

    r_endo_mm: float
    thick_mm: float
    es_ratio: float
    es_mass: float
    length_mm: float
    endo_harmonics: Harmonics
    epi_harmonics: Harmonics
    thickness_harmonics: Harmonics
    septal: float
    infarct: Infarct | None


@dataclass(frozen=True)
class RightVentricle:
    """Right-ventricular cavity: an ellipse on the septal side minus the LV, i.e. a crescent against the septum.

    Attributes
    ----------
    area : float
        Size factor; the crescent depth scales with its square root.
    depth : float
        Crescent depth as a fraction of the LV cavity radius (before the size factor).
    inner_edge : float
        Where the ellipse starts along the LV -> RV direction, as a fraction of the epicardial radius.
    width : float
        Half-width of the ellipse across that direction, relative to the epicardial radius plus half the depth.
    es_scale : float
        ES / ED crescent depth.
    angle_rad : float
        Direction LV -> RV in the (row, col) plane, radians; the septum faces it.
    """

    area: float
    depth: float
    inner_edge: float
    width: float
    es_scale: float
    angle_rad: float


@dataclass(frozen=True, eq=False)
class SliceLayout:
    """The slices of a scan, base to apex, and how the heart moves through them.

    Attributes
    ----------
    kinds : tuple of str
        One of :data:`SLICE_KINDS` per slice: an optional atrial slice without myocardium, an optional open
        (C-shaped) basal slice, the ring slices, an optional apical cap (a myocardial disc) and an optional slice
        below the heart.
    open_angle_rad, open_width_rad : float
        Centre and half-width (radians) of the LV outflow gap of the open slice.
    drift_mm : np.ndarray
        float64 (2,): shift of the LV centre per slice, (row, col) mm.
    """

    kinds: tuple[str, ...]
    open_angle_rad: float
    open_width_rad: float
    drift_mm: np.ndarray


@dataclass(frozen=True)
class Trabeculae:
    """Dark myocardial fingers along the endocardium, inside the LV label.

    Attributes
    ----------
    count : int
        Number of fingers around the ring.
    phase_rad : float
        Angular phase of the fingers.
    depth_mm : float
        Depth into the cavity at the base (deeper towards the apex and at ES).
    harmonics : Harmonics
        Irregularity of their depth and spacing.
    """

    count: int
    phase_rad: float
    depth_mm: float
    harmonics: Harmonics


@dataclass(frozen=True)
class WallDetail:
    """Structures next to the LV wall that make the segmentation hard.

    Attributes
    ----------
    papillary : tuple of (float, float)
        ``(angle_rad, radius_mm)`` of the two papillary muscles (myocardial intensity, LV label).
    trabeculae : Trabeculae
    epicardial_fat_mm : float
        Largest thickness of the patchy epicardial fat.
    epicardial_fat_harmonics : Harmonics
        Where around the ring the fat lies.
    """

    papillary: tuple[tuple[float, float], ...]
    trabeculae: Trabeculae
    epicardial_fat_mm: float
    epicardial_fat_harmonics: Harmonics


@dataclass(frozen=True)
class Ellipse:
    """Axis-aligned ellipse in the slice plane, mm relative to the LV centre: centre and half-axes."""

    row_mm: float
    col_mm: float
    half_row_mm: float
    half_col_mm: float


@dataclass(frozen=True)
class Body:
    """Body outline: an ellipse (mm relative to the LV centre) with an irregular contour.

    Attributes
    ----------
    outline : Ellipse
    harmonics : Harmonics
        Relative irregularity of the outline.
    subcutaneous_fat_mm, muscle_mm : float
        Thickness of the fat under the skin and of the chest-wall muscle beneath it.
    """

    outline: Ellipse
    harmonics: Harmonics
    subcutaneous_fat_mm: float
    muscle_mm: float


@dataclass(frozen=True)
class Organ:
    """An ellipsoidal organ or vessel inside the body; each slice shows its cross-section.

    Attributes
    ----------
    section : Ellipse
        Centre and largest half-axes in the slice plane, mm.
    z_mm, half_z_mm : float
        Centre and half-extent along z, mm from the first slice.
    intensity : float
        Relative to LV blood.
    """

    section: Ellipse
    z_mm: float
    half_z_mm: float
    intensity: float


@dataclass(frozen=True)
class Surroundings:
    """Anatomy around the heart (mm relative to the LV centre); the spine is placed from the body outline.

    Attributes
    ----------
    body : Body
    lungs : tuple of Ellipse
        The two lungs (dark, with bright vessels).
    organs : tuple of Organ
        Generic soft-tissue organs and vessels.
    liver : Ellipse
        Full size, reached towards the apex.
    aorta : Ellipse
        The descending aorta (a circle).
    """

    body: Body
    lungs: tuple[Ellipse, ...]
    organs: tuple[Organ, ...]
    liver: Ellipse
    aorta: Ellipse


@dataclass(frozen=True)
class Intensities:
    """Tissue intensities relative to LV blood (= 1), before bias, blur and noise.

    ``es_myocardium_gain`` multiplies the myocardium at ES (partial volume of the thicker wall).
    """

    myocardium: float
    rv_blood: float
    fat: float
    muscle: float
    soft_tissue: float
    lung: float
    liver: float
    aorta: float
    spine: float
    es_myocardium_gain: float


@dataclass(frozen=True, eq=False)
class ImageFormation:
    """How the tissue map becomes a stored image.

    Attributes
    ----------
    blur_px : float
        Gaussian PSF sigma, pixels.
    noise : float
        Noise sigma relative to LV blood (of each of the two complex channels, after correlation).
    noise_corr_px : float
        Correlation (Gaussian) sigma of the noise, pixels.
    bias_gradient : np.ndarray
        float64 (2,): linear log-bias per 150 mm along (row, col).
    bias_amplitude, bias_width_mm : float
        Log-bias bump at the anterior skin (coil side) and its Gaussian width.
    flow : float
        Relative amplitude of the blood-pool flow inhomogeneity.
    int16 : bool
        Store as int16 (else float32 with integral values).
    scale : float
        The 99.5th percentile of the stored image.
    """

    blur_px: float
    noise: float
    noise_corr_px: float
    bias_gradient: np.ndarray
    bias_amplitude: float
    bias_width_mm: float
    flow: float
    int16: bool
    scale: float


@dataclass(frozen=True)
class CineInfo:
    """The ``Info.cfg`` values: 1-based ED and ES frames, frame count, height (cm), weight (kg).

    ``integer_info`` writes height and weight as integers (``172``) rather than ``172.0``, as ACDC files vary.
    """

    ed_frame: int
    es_frame: int
    n_frames: int
    height_cm: float
    weight_kg: float
    integer_info: bool


@dataclass(frozen=True, eq=False)
class PhantomParams:
    """Every random parameter of one phantom patient, as drawn by :func:`generate_patient`.

    Attributes
    ----------
    group : str
        One of :data:`GROUPS`.
    acquisition : Acquisition
    lv : LeftVentricle
    rv : RightVentricle
    layout : SliceLayout
    wall : WallDetail
    offset_mm : np.ndarray
        float64 (2,): LV centre relative to the image centre, (row, col) mm, before the transpose.
    surroundings : Surroundings
    intensities : Intensities
    imaging : ImageFormation
    info : CineInfo
    """

    group: str
    acquisition: Acquisition
    lv: LeftVentricle
    rv: RightVentricle
    layout: SliceLayout
    wall: WallDetail
    offset_mm: np.ndarray
    surroundings: Surroundings
    intensities: Intensities
    imaging: ImageFormation
    info: CineInfo


# ------------------------------------------------------------------------------------------------ sampling
# Each function draws one part of a patient; sample_params calls them in a fixed order, so the seed fixes the
# patient and a change of any draw changes every later one.
def _choice(rng: np.random.Generator, values: Sequence, p: Sequence[float]):
    return values[int(rng.choice(len(values), p=np.asarray(p) / np.sum(p)))]


def _harmonics(rng: np.random.Generator, orders: Sequence[int], amp: float) -> Harmonics:
    return tuple(
        (k, float(amp * rng.uniform(0.3, 1.0) / k**0.5), float(rng.uniform(0, 2 * np.pi))) for k in orders
    )


def _sample_acquisition(rng: np.random.Generator, pixel_scale: float) -> Acquisition:
    """Matrix, spacing, orientation and slice thickness (ACDC's mix, a few high-resolution scans)."""
    hi_res = rng.random() < 0.04
    if hi_res:
        spacing = float(rng.uniform(0.70, 0.80))
        cols = int(_choice(rng, [448, 512], [1, 2]))
    else:
        spacing = float(np.clip(rng.normal(1.53, 0.16), 1.20, 1.95))
        cols = int(_choice(rng, [208, 216, 224, 256, 288], [8, 8, 14, 60, 5]))
    rows = int(np.clip(2 * round(cols * rng.uniform(0.72, 0.98) / 2), 154, cols))
    transpose = bool(rng.random() < 0.1)
    if pixel_scale != 1.0:  # same field of view in mm on a coarser grid, after the draws
        spacing *= pixel_scale
        rows, cols = (2 * max(1, round(n / pixel_scale / 2)) for n in (rows, cols))
    slice_mm = float(_choice(rng, [10.0, 8.0, 7.0, 6.5, 5.0], [76, 5, 4, 3, 12]))
    return Acquisition(spacing_mm=spacing, shape=(rows, cols), transpose=transpose, slice_mm=slice_mm)


def _sample_ventricles(rng: np.random.Generator, geo: GroupGeometry) -> tuple[LeftVentricle, RightVentricle]:
    """LV and RV anatomy around the group's mean (:data:`GROUP_GEOMETRY`)."""
    size = float(np.clip(rng.normal(1.0, 0.09), 0.8, 1.25))
    r_endo = geo.r_endo_mm * size
    thick = geo.thick_mm * float(np.clip(rng.normal(1.0, 0.12), 0.75, 1.35))
    es_ratio = float(np.clip(geo.es_ratio * rng.normal(1.0, 0.07), 0.35, 0.97))
    es_mass = geo.es_mass * float(rng.uniform(0.95, 1.05))
    rv_area = geo.rv_area * float(np.exp(rng.normal(0.0, 0.25)))
    rv_depth = float(rng.uniform(0.45, 0.6))
    rv_inner_edge = float(rng.uniform(0.0, 0.35))
    rv_width = float(rng.uniform(0.95, 1.2))
    rv_es = float(np.clip(geo.rv_es * rng.normal(1.0, 0.06), 0.5, 1.0))
    length = geo.length_mm * float(rng.uniform(0.9, 1.12))
    rv_angle = float(np.deg2rad(rng.normal(150.0, 14.0)))
    endo_harmonics = _harmonics(rng, (2, 3, 4, 5), 0.07)
    epi_harmonics = _harmonics(rng, (2, 3), 0.05)
    thickness_harmonics = _harmonics(rng, (1, 2, 3), 0.18)
    septal = geo.septal * float(rng.uniform(0.6, 1.4)) if geo.septal else 0.0
    infarct = None
    if geo.infarct:
        depth = geo.infarct * float(rng.uniform(0.8, 1.25))
        centre = float(rv_angle + np.pi + rng.uniform(-2.0, 2.0))  # the free wall, opposite the septum
        infarct = Infarct(depth=depth, centre_rad=centre, concentration=float(rng.uniform(2.0, 5.0)))
    lv = LeftVentricle(
        r_endo_mm=r_endo,
        thick_mm=thick,
        es_ratio=es_ratio,
        es_mass=es_mass,
        length_mm=length,
        endo_harmonics=endo_harmonics,
        epi_harmonics=epi_harmonics,
        thickness_harmonics=thickness_harmonics,
        septal=septal,
        infarct=infarct,
    )
    rv = RightVentricle(
        area=rv_area,
        depth=rv_depth,
        inner_edge=rv_inner_edge,
        width=rv_width,
        es_scale=rv_es,
        angle_rad=rv_angle,
    )
    return lv, rv


def _sample_layout(
    rng: np.random.Generator, length_mm: float, slice_mm: float, rv_angle: float
) -> SliceLayout:
    """Slice kinds base to apex (at most 18 slices), the outflow gap and the LV drift."""
    n_ring = int(np.clip(round(length_mm / slice_mm) - 1, 6, 16))
    extra = [rng.random() < 0.12, rng.random() < 0.55, rng.random() < 0.5, rng.random() < 0.1]
    while n_ring + sum(extra) > 18:
        n_ring -= 1
    kinds = (
        ["atrium"] * extra[0]
        + ["open"] * extra[1]
        + ["ring"] * n_ring
        + ["cap"] * extra[2]
        + ["below"] * extra[3]
    )
    open_angle = float(rv_angle + rng.uniform(-0.8, 0.4))  # LV outflow next to the septum
    open_width = float(rng.uniform(0.6, 1.1))
    drift = rng.normal(0.0, 1.2, size=2) * slice_mm / 10.0
    return SliceLayout(
        kinds=tuple(kinds), open_angle_rad=open_angle, open_width_rad=open_width, drift_mm=drift
    )


def _sample_wall_detail(rng: np.random.Generator, rv_angle: float) -> WallDetail:
    """Papillary muscles (against the lateral wall), trabeculations and epicardial fat."""
    papillary = tuple(
        (float(rv_angle + np.pi + s * rng.uniform(0.6, 1.1)), float(rng.uniform(3.5, 6.0))) for s in (-1, 1)
    )
    trabeculae = Trabeculae(
        count=int(rng.integers(9, 18)),
        phase_rad=float(rng.uniform(0, 2 * np.pi)),
        depth_mm=float(rng.uniform(2.5, 5.5)),
        harmonics=_harmonics(rng, (3, 5, 7, 11), 0.9),
    )
    return WallDetail(
        papillary=papillary,
        trabeculae=trabeculae,
        epicardial_fat_mm=float(rng.uniform(1.0, 5.0)),
        epicardial_fat_harmonics=_harmonics(rng, (1, 2, 3), 1.0),
    )


def _sample_offset(
    rng: np.random.Generator,
    acquisition: Acquisition,
    lv: LeftVentricle,
    layout: SliceLayout,
    keep_within: tuple[int, int],
) -> np.ndarray:
    """LV centre offset from the image centre (mm), kept inside the crop window with a margin."""
    spacing = acquisition.spacing_mm
    extent = lv.r_endo_mm + lv.thick_mm + 6.0
    half = np.array(keep_within[::-1] if acquisition.transpose else keep_within) * spacing / 2.0
    render_fov = np.array(acquisition.shape) * spacing / 2.0
    limit = np.maximum(
        np.minimum(half, render_fov) - extent - 3.0 - np.abs(layout.drift_mm) * len(layout.kinds) / 2, 0.0
    )
    return np.clip(rng.normal(0.0, 14.0, size=2), -limit, limit)


def _sample_organ(rng: np.random.Generator, outline: Ellipse, z_extent: float) -> Organ:
    """One organ or vessel inside the central part of the body, somewhere along the scan's ``z_extent`` (mm)."""
    row = float(outline.row_mm + rng.uniform(-0.7, 0.7) * outline.half_row_mm)
    col = float(outline.col_mm + rng.uniform(-0.7, 0.7) * outline.half_col_mm)
    z = float(rng.uniform(0, z_extent))
    half_row, half_col = float(rng.uniform(8, 35)), float(rng.uniform(8, 35))
    half_z = float(rng.uniform(15, 60))
    intensity = float(rng.uniform(0.1, 0.9))
    return Organ(section=Ellipse(row, col, half_row, half_col), z_mm=z, half_z_mm=half_z, intensity=intensity)


def _sample_surroundings(rng: np.random.Generator, r_epi: float, z_extent: float) -> Surroundings:
    """Body, lungs, organs, liver and aorta around an LV of epicardial radius ``r_epi`` (mm)."""
    ba, bb = float(rng.uniform(100, 130)), float(rng.uniform(165, 230))
    chest = float(rng.uniform(15, 40))
    outline = Ellipse(ba - r_epi - chest, float(rng.uniform(-20, 40)), ba, bb)
    body = Body(
        outline=outline,
        harmonics=_harmonics(rng, (2, 3, 4), 0.04),
        subcutaneous_fat_mm=float(rng.uniform(6, 22)),
        muscle_mm=float(rng.uniform(8, 18)),
    )
    lungs = (
        Ellipse(
            float(rng.uniform(-10, 25)),
            -r_epi - float(rng.uniform(40, 65)),
            float(rng.uniform(65, 90)),
            float(rng.uniform(45, 65)),
        ),
        Ellipse(
            float(rng.uniform(10, 40)),
            r_epi + float(rng.uniform(50, 75)),
            float(rng.uniform(45, 70)),
            float(rng.uniform(30, 45)),
        ),
    )
    n_organs = int(rng.integers(5, 11))
    organs = tuple(_sample_organ(rng, outline, z_extent) for _ in range(n_organs))
    liver = Ellipse(
        float(rng.uniform(35, 60)),
        float(rng.uniform(45, 80)),
        float(rng.uniform(60, 80)),
        float(rng.uniform(70, 95)),
    )
    aorta_row, aorta_col = float(rng.uniform(45, 70)), float(rng.uniform(-5, 35))
    aorta_radius = float(rng.uniform(9, 13))
    aorta = Ellipse(aorta_row, aorta_col, aorta_radius, aorta_radius)
    return Surroundings(body=body, lungs=lungs, organs=organs, liver=liver, aorta=aorta)


def _sample_intensities(rng: np.random.Generator) -> Intensities:
    """Tissue intensities relative to LV blood; the myocardium's is low, as in ACDC."""
    return Intensities(
        myocardium=float(rng.uniform(0.22, 0.5)),
        rv_blood=float(rng.uniform(0.85, 1.0)),
        fat=float(rng.uniform(0.8, 1.1)),
        muscle=float(rng.uniform(0.2, 0.35)),
        soft_tissue=float(rng.uniform(0.3, 0.5)),
        lung=float(rng.uniform(0.03, 0.08)),
        liver=float(rng.uniform(0.3, 0.5)),
        aorta=float(rng.uniform(0.8, 1.15)),
        spine=float(rng.uniform(0.2, 0.4)),
        es_myocardium_gain=float(rng.uniform(1.0, 1.25)),
    )


def _sample_image_formation(rng: np.random.Generator) -> ImageFormation:
    """PSF, correlated Rician noise, bias field, flow inhomogeneity and the stored dtype and range."""
    blur = float(rng.uniform(0.55, 0.95))
    noise = float(np.exp(rng.normal(np.log(0.045), 0.35)))
    noise_corr = float(rng.uniform(0.5, 0.9))
    bias_gradient = rng.normal(0.0, 0.25, size=2)
    bias_amplitude, bias_width = float(rng.uniform(0.1, 0.45)), float(rng.uniform(40, 90))
    flow = float(rng.uniform(0.03, 0.1))
    int16 = bool(rng.random() < 0.45)
    scale = float(np.exp(rng.uniform(np.log(250), np.log(3500)))) if int16 else 255.0
    return ImageFormation(
        blur_px=blur,
        noise=noise,
        noise_corr_px=noise_corr,
        bias_gradient=bias_gradient,
        bias_amplitude=bias_amplitude,
        bias_width_mm=bias_width,
        flow=flow,
        int16=int16,
        scale=scale,
    )


def _sample_cine_info(rng: np.random.Generator) -> CineInfo:
    """ED and ES frame numbers, frame count, height and weight for ``Info.cfg``."""
    ed = int(_choice(rng, [1, 1, 1, 1, 2, 3], [1] * 6))
    n_frames = int(rng.integers(12, 36))
    es = int(np.clip(round(n_frames * rng.uniform(0.33, 0.45)), ed + 2, n_frames))
    height = float(np.round(rng.normal(172, 9)))
    weight = float(np.round(rng.normal(78, 14)))
    integer_info = bool(rng.random() < 0.3)
    return CineInfo(
        ed_frame=ed,
        es_frame=es,
        n_frames=n_frames,
        height_cm=height,
        weight_kg=weight,
        integer_info=integer_info,
    )


def sample_params(
    rng: np.random.Generator, group: str, keep_within: tuple[int, int], pixel_scale: float = 1.0
) -> PhantomParams:
    """Draw every random parameter of one patient, in a fixed order (the seed fixes the patient).

    ``pixel_scale`` multiplies the drawn in-plane spacing and divides the matrix by the same factor (same field of
    view in mm, same anatomy), after every draw: the seed gives the same patient at every scale.
    """
    acquisition = _sample_acquisition(rng, pixel_scale)
    lv, rv = _sample_ventricles(rng, GROUP_GEOMETRY[group])
    layout = _sample_layout(rng, lv.length_mm, acquisition.slice_mm, rv.angle_rad)
    wall = _sample_wall_detail(rng, rv.angle_rad)
    offset = _sample_offset(rng, acquisition, lv, layout, keep_within)
    r_epi = lv.r_endo_mm + lv.thick_mm
    surroundings = _sample_surroundings(rng, r_epi, len(layout.kinds) * acquisition.slice_mm)
    return PhantomParams(
        group=group,
        acquisition=acquisition,
        lv=lv,
        rv=rv,
        layout=layout,
        wall=wall,
        offset_mm=offset,
        surroundings=surroundings,
        intensities=_sample_intensities(rng),
        imaging=_sample_image_formation(rng),
        info=_sample_cine_info(rng),
    )


# ----------------------------------------------------------------------------------------------- drawing
