"""Synthetic short-axis cine-MRI cohort in the exact ACDC layout (the default dataset; ``docs/protocol.md``).

:func:`write_phantom_cohort` writes ``root/training/patientNNN/{Info.cfg, patientNNN_frameXX.nii.gz,
patientNNN_frameXX_gt.nii.gz}`` for the ED and ES frames, with ACDC's header conventions (spacing in the header
zooms, an affine of diag(-1, -1, 1) without spacing, int16 or float32 images, uint8 labels 0 bg, 1 RV cavity,
2 myocardium, 3 LV cavity), so :func:`tedsnet.data.acdc.read_patient` and the whole pipeline run on it unchanged.

What it models, and why (the phantom must be hard where cine MRI is hard, or a topology comparison means nothing):

- Acquisition: matrix 154-512 px (mostly 174-256 x 208-288; one scan in ten stored transposed), in-plane spacing
  0.7-1.95 mm, slice thickness 5-10 mm, 6-18 slices; heart position varies (offset from the image centre).
- Groups (20 each for 100 patients; proportional otherwise): NOR; HCM thick, asymmetric (septal) wall and a small
  ES cavity; DCM dilated, thin wall, low ejection; MINF a thinned, akinetic segment; RV an enlarged RV. Radii,
  thicknesses, ES/ED ratios and RV/LV areas are calibrated on ACDC (compare a cohort with
  ``python -m tedsnet.data.stats ACDC=<acdc root> phantom=<phantom root>``, :mod:`tedsnet.data.stats`).
- Base to apex: an ellipsoidal cavity profile, an optional atrial slice without myocardium, an open (C-shaped)
  basal slice (LV outflow), ring slices, an apical cap (a myocardial disc) and optional slices below the heart;
  the LV centre drifts from slice to slice. ED vs ES: smaller cavity, thicker wall, smaller RV.
- Irregular (non-circular) endo- and epicardium (low angular harmonics), RV cavity as a crescent against the
  septum (RV blood touches septal myocardium, as in ACDC), thin unlabelled RV free wall, patchy epicardial fat.
- Papillary muscles and trabeculations inside the LV cavity with myocardial intensity but LV label (3), as ACDC
  labels them; blood-pool flow inhomogeneity.
- Surroundings: body outline, subcutaneous fat, chest-wall muscle, dark lungs with bright vessels, liver towards
  the apex, descending aorta, spine, air outside the body.
- Image formation: tissue intensities relative to blood (myocardium about 0.2-0.35, the low contrast of ACDC), a
  smooth multiplicative bias field (coil sensitivity), Gaussian blur (PSF), Rician noise (magnitude of complex
  noise, spatially correlated as in zero-filled reconstructions), a random intensity scale.

Every random parameter of a patient is drawn first, in a fixed order, into a
:class:`~tedsnet.data.phantom_anatomy.PhantomParams` (one frozen dataclass per part); this module renders the
images from it (the heart in a window around it). Generation is deterministic: patient ``i`` uses
``numpy.random.default_rng([seed, i])``; gzip output carries no time stamp, so the same seed gives identical bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from tedsnet.data.phantom_anatomy import (
    GROUP_GEOMETRY,
    GROUPS,
    RING_MIN_PX,
    Ellipse,
    Harmonics,
    LeftVentricle,
    PhantomParams,
    WallDetail,
    assign_groups,
    sample_params,
)

__all__ = [
    "PhantomScan",
    "generate_patient",
    "write_patient",
    "write_phantom_cohort",
]


@dataclass(frozen=True, eq=False)
class PhantomScan:
    """One generated frame: image (X, Y, Z) as stored (int16 or float32), label uint8 (X, Y, Z), zooms (mm)."""

    index: int
    image: np.ndarray
    label: np.ndarray
    zooms: tuple[float, float, float]


def _angular(cos: np.ndarray, sin: np.ndarray, harmonics: Harmonics, k_max: int = 6) -> np.ndarray:
    """sum_k a_k cos(k phi + p_k) from cos(phi), sin(phi) via the Chebyshev recurrence."""
    out = np.zeros_like(cos)
    ck, sk = cos, sin
    powers = {1: (cos, sin)}
    for k in range(2, k_max + 1):
        ck, sk = ck * cos - sk * sin, sk * cos + ck * sin
        powers[k] = (ck, sk)
    for k, amp, phase in harmonics:
        c, s = powers[k]
        out += amp * (c * np.cos(phase) - s * np.sin(phase))
    return out


def _vonmises(cos: np.ndarray, sin: np.ndarray, centre: float, kappa: float) -> np.ndarray:
    return np.exp(kappa * (cos * np.cos(centre) + sin * np.sin(centre) - 1.0))


def _ellipse(r: np.ndarray, c: np.ndarray, r0: float, c0: float, a: float, b: float) -> np.ndarray:
    return ((r - r0) / a) ** 2 + ((c - c0) / b) ** 2


def _paint(
    img: np.ndarray,
    gr: np.ndarray,
    gc: np.ndarray,
    r0: float,
    c0: float,
    a: float,
    b: float,
    value: float,
    within: np.ndarray | None = None,
) -> None:
    """Set ``img`` to ``value`` inside an axis-aligned ellipse (mm), touching only its bounding box.

    ``gr`` (rows,) and ``gc`` (cols,) are the mm coordinates of the pixel centres; ``within`` an optional mask.
    """
    i0, i1 = np.searchsorted(gr, (r0 - a, r0 + a))
    j0, j1 = np.searchsorted(gc, (c0 - b, c0 + b))
    if i1 <= i0 or j1 <= j0:
        return
    inside = _ellipse(gr[i0:i1, None], gc[None, j0:j1], r0, c0, a, b) < 1
    if within is not None:
        inside &= within[i0:i1, j0:j1]
    img[i0:i1, j0:j1][inside] = value


def _paint_lungs(
    img: np.ndarray,
    gr: np.ndarray,
    gc: np.ndarray,
    lungs: Sequence[Ellipse],
    lung_value: float,
    inner: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Dark lungs inside the body, each with a random set of bright vessels (drawn per slice)."""
    for lung_shape in lungs:
        r0, c0, a, b = lung_shape.row_mm, lung_shape.col_mm, lung_shape.half_row_mm, lung_shape.half_col_mm
        _paint(img, gr, gc, r0, c0, a, b, lung_value, inner)
        n_vessels = int(rng.integers(4, 14))
        vr = rng.uniform(-0.8, 0.8, n_vessels) * a + r0
        vc = rng.uniform(-0.8, 0.8, n_vessels) * b + c0
        vrad = rng.uniform(0.8, 2.5, n_vessels)
        lung = np.zeros(img.shape, dtype=bool)
        _paint(lung, gr, gc, r0, c0, a, b, True, inner)
        for k in range(n_vessels):
            _paint(img, gr, gc, vr[k], vc[k], vrad[k], vrad[k], rng.uniform(0.3, 0.9), lung)


def _background(
    p: PhantomParams, gr: np.ndarray, gc: np.ndarray, z_mm: float, t: float, rng: np.random.Generator
) -> np.ndarray:
    """Tissue intensities of one slice outside the heart, float32 (rows, cols).

    ``gr`` (rows,) and ``gc`` (cols,) are pixel-centre coordinates in mm relative to the LV centre, ``z_mm`` the
    slice position, ``t`` its long-axis position (0 base, 1 apex); ``rng`` draws the lung vessels.
    """
    intens = p.intensities
    body = p.surroundings.body
    rr, cc = gr[:, None], gc[None, :]
    br, bc, ba, bb = (
        body.outline.row_mm,
        body.outline.col_mm,
        body.outline.half_row_mm,
        body.outline.half_col_mm,
    )
    dr, dc = rr - br, cc - bc
    dist = np.hypot(dr / ba, dc / bb)
    safe = np.maximum(np.hypot(dr, dc), 1e-6)
    q = dist / (1.0 + _angular(dr / safe, dc / safe, body.harmonics, 4))
    depth = (1.0 - q) * min(ba, bb)  # approximate depth below the skin, mm
    fat_w, muscle_w = body.subcutaneous_fat_mm, body.muscle_mm
    inside_body = q < 1
    inner = depth >= fat_w + muscle_w
    img = np.where(inside_body, np.float32(intens.soft_tissue), np.float32(0.0))
    img[inside_body & ~inner] = intens.muscle
    img[inside_body & (depth < fat_w)] = intens.fat
    for organ in p.surroundings.organs:  # ellipsoids: the cross-section at this slice
        sec = organ.section
        f = 1.0 - ((z_mm - organ.z_mm) / organ.half_z_mm) ** 2
        if f > 0:
            half_row, half_col = sec.half_row_mm * np.sqrt(f), sec.half_col_mm * np.sqrt(f)
            _paint(img, gr, gc, sec.row_mm, sec.col_mm, half_row, half_col, organ.intensity, inner)
    _paint(img, gr, gc, br + ba - fat_w - muscle_w - 22.0, bc, 16.0, 18.0, intens.spine)
    aorta = p.surroundings.aorta
    _paint(img, gr, gc, aorta.row_mm, aorta.col_mm, aorta.half_row_mm, aorta.half_col_mm, intens.aorta)
    liver = p.surroundings.liver
    if t > 0.3:  # the liver rises into the slice towards the apex
        grow = min(1.0, (t - 0.3) / 0.4)
        _paint(
            img,
            gr,
            gc,
            liver.row_mm - 20 * grow,
            liver.col_mm - 10 * grow,
            liver.half_row_mm * (0.6 + 0.4 * grow),
            liver.half_col_mm * (0.6 + 0.4 * grow),
            intens.liver,
            inner,
        )
    _paint_lungs(img, gr, gc, p.surroundings.lungs, intens.lung, inner, rng)
    return img


def _wall_radii(
    lv: LeftVentricle, t: float, es: bool, kind: str, spacing: float
) -> tuple[float, float, float]:
    """(r_endo, thick, r_epi) in mm of one slice at long-axis position ``t`` (ellipsoid profile, ES contraction).

    Ring slices keep a cavity of at least the minimum ring size; ``r_epi`` is the value before that clamp.
    """
    min_mm = RING_MIN_PX * spacing
    shape_f = np.sqrt(max(1.0 - (0.95 * t) ** 2, 0.0))
    r_endo = lv.r_endo_mm * shape_f
    thick = lv.thick_mm * (1.0 - 0.2 * t)
    r_epi = r_endo + thick
    if es:
        area_myo = (r_epi**2 - r_endo**2) * lv.es_mass
        r_endo *= lv.es_ratio
        r_epi = np.sqrt(r_endo**2 + area_myo)
        thick = r_epi - r_endo
    if kind == "ring":
        r_endo = max(r_endo, min_mm + 0.5 * spacing)
    return r_endo, thick, r_epi


def _wall_modulation(lv: LeftVentricle, rv_angle: float, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Relative wall thickness around the ring: harmonics, septal hypertrophy, infarct thinning."""
    wall_mod = 1.0 + _angular(cos, sin, lv.thickness_harmonics, 3)
    if lv.septal:
        wall_mod = wall_mod + lv.septal * _vonmises(cos, sin, rv_angle, 2.0)
    if lv.infarct is not None:
        inf = lv.infarct
        wall_mod = wall_mod * (1.0 - inf.depth * _vonmises(cos, sin, inf.centre_rad, inf.concentration))
    return wall_mod


def _paint_rv(
    p: PhantomParams,
    overlay: np.ndarray,
    label: np.ndarray,
    rr: np.ndarray,
    cc: np.ndarray,
    outside_lv: np.ndarray,
    r_epi: float,
    t: float,
    es: bool,
    myo_i: float,
) -> None:
    """RV cavity (label 1) and its thin unlabelled free wall, in place.

    An ellipse on the septal side covering the LV up to about its centre line, minus the LV: a crescent whose
    cavity touches the septal myocardium. Its depth along LV -> RV sets its area; it tapers to the apex.
    """
    rv = p.rv
    taper = np.sqrt(max(1.0 - (1.05 * t) ** 2, 0.0))
    depth_rv = rv.depth * np.sqrt(rv.area) * p.lv.r_endo_mm * (rv.es_scale if es else 1.0) * taper
    if depth_rv <= 3.0:
        return
    ur, uc = np.cos(rv.angle_rad), np.sin(rv.angle_rad)
    beta, gamma = rv.inner_edge, rv.width
    a = ((1.0 - beta) * r_epi + depth_rv) / 2.0
    s = ((1.0 + beta) * r_epi + depth_rv) / 2.0
    b = gamma * (r_epi + 0.5 * depth_rv)
    along = rr * ur + cc * uc - s
    across = -rr * uc + cc * ur
    wall_rv = 2.5
    rv_wall = (((along / (a + wall_rv)) ** 2 + (across / (b + wall_rv)) ** 2) < 1) & outside_lv
    rv_cav = (((along / a) ** 2 + (across / b) ** 2) < 1) & outside_lv
    overlay[rv_wall] = myo_i
    overlay[rv_cav] = p.intensities.rv_blood
    label[rv_cav] = 1


def _paint_cavity_detail(
    wall: WallDetail,
    r_endo_mm: float,
    overlay: np.ndarray,
    geometry: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    cavity: np.ndarray,
    endo: np.ndarray,
    t: float,
    es: bool,
    myo_i: float,
) -> None:
    """Trabeculations (dark fingers along the endocardium) and papillary muscles (blobs against the lateral wall),
    in place: myocardial intensity inside the LV label. ``geometry`` is (rr, cc, dist, cos, sin) of the window."""
    rr, cc, dist, cos, sin = geometry
    trab = wall.trabeculae
    irregular = _angular(cos, sin, trab.harmonics, 11)
    depth_mm = (
        trab.depth_mm * (1.0 + 0.8 * t) * (1.3 if es else 1.0) * np.clip(1.0 + 0.6 * irregular, 0.2, None)
    )
    phi = np.arctan2(sin, cos)
    fingers = np.sin(trab.count * phi + trab.phase_rad + 2.0 * np.sin(3 * phi)) + 0.7 * irregular > 0.2
    overlay[cavity & (dist > endo - depth_mm) & fingers] = myo_i + 0.35 * (1.0 - myo_i)
    if 0.15 < t < 0.9:
        for angle, radius in wall.papillary:
            rad = radius * (1.25 if es else 1.0) * max(1.0, r_endo_mm / 28.0)
            centre = max(endo.mean() - 0.7 * rad, 0.0)
            pr, pc = centre * np.cos(angle), centre * np.sin(angle)
            blob = cavity & (((rr - pr) ** 2 + (cc - pc) ** 2) < rad**2)
            overlay[blob] = myo_i


def _heart(
    p: PhantomParams, rr: np.ndarray, cc: np.ndarray, kind: str, t: float, phase: str, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Heart of one slice in a window around the LV.

    Parameters
    ----------
    p : PhantomParams
    rr, cc : np.ndarray
        float32 (h, w): pixel-centre coordinates in mm relative to the LV centre.
    kind : str
        One of :data:`SLICE_KINDS`.
    t : float
        Long-axis position, 0 base .. 1 apex.
    phase : str
        ``"ED"`` or ``"ES"``.
    spacing : float
        Pixel size, mm.

    Returns
    -------
    (overlay, label)
        float32 (h, w) intensities relative to blood, NaN where the background stays; uint8 (h, w) ACDC labels.
    """
    es = phase == "ES"
    label = np.zeros(rr.shape, dtype=np.uint8)
    overlay = np.full(rr.shape, np.nan, dtype=np.float32)
    if kind == "below":
        return overlay, label
    dist = np.hypot(rr, cc)
    safe = np.maximum(dist, 1e-6)
    cos, sin = rr / safe, cc / safe
    myo_i = p.intensities.myocardium * (p.intensities.es_myocardium_gain if es else 1.0)
    if kind == "atrium":  # left atrium and aortic root: bright, unlabelled
        la = dist < 0.9 * p.lv.r_endo_mm * (1 + _angular(cos, sin, p.lv.endo_harmonics))
        overlay[dist < 0.9 * p.lv.r_endo_mm + 2.5] = myo_i
        overlay[la] = 1.0
        return overlay, label
    r_endo, thick, r_epi = _wall_radii(p.lv, t, es, kind, spacing)
    if kind == "cap":  # apical cap: a myocardial disc
        epi = (thick * 0.9 + 4.0) * (1.0 + _angular(cos, sin, p.lv.epi_harmonics, 3))
        myo = dist <= epi
        overlay[myo] = myo_i
        label[myo] = 2
        return overlay, label
    endo = r_endo * (1.0 + _angular(cos, sin, p.lv.endo_harmonics, 5))
    epi = endo + np.maximum(thick * _wall_modulation(p.lv, p.rv.angle_rad, cos, sin), RING_MIN_PX * spacing)
    cavity = dist <= endo
    myo = (dist > endo) & (dist <= epi)
    # epicardial fat (patchy), then RV, then LV: later structures cover earlier ones
    fat_w = p.wall.epicardial_fat_mm * np.clip(
        _angular(cos, sin, p.wall.epicardial_fat_harmonics, 3) + 0.3, 0.0, None
    )
    overlay[(dist > epi) & (dist <= epi + fat_w)] = p.intensities.fat * 0.9
    _paint_rv(p, overlay, label, rr, cc, dist > epi, r_epi, t, es, myo_i)
    overlay[myo] = myo_i
    overlay[cavity] = 1.0
    label[myo] = 2
    label[cavity] = 3
    if kind == "open":  # LV outflow: the wall opens into the cavity, the myocardium is a C
        gap = myo & (
            _vonmises(cos, sin, p.layout.open_angle_rad, 1.0) > np.exp(-(p.layout.open_width_rad**2) / 2.0)
        )
        overlay[gap] = 1.0
        label[gap] = 3
        return overlay, label
    _paint_cavity_detail(
        p.wall, p.lv.r_endo_mm, overlay, (rr, cc, dist, cos, sin), cavity, endo, t, es, myo_i
    )
    return overlay, label


# -------------------------------------------------------------------------------------------- image formation
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], step: int) -> np.ndarray:
    """Smooth random field in about [-1, 1]: coarse normal noise, repeated and box-filtered (about linear)."""
    coarse = rng.standard_normal((shape[0] // step + 2, shape[1] // step + 2, shape[2])).astype(np.float32)
    fine = np.repeat(np.repeat(coarse, step, axis=0), step, axis=1)[: shape[0], : shape[1]]
    fine = ndimage.uniform_filter1d(fine, step, axis=0)
    fine = ndimage.uniform_filter1d(fine, step, axis=1)
    return fine / 1.2


def _long_axis_positions(kinds: Sequence[str]) -> list[float]:
    """Long-axis position ``t`` of each slice: 0 base .. 1 apex over the ring slices (slice centres)."""
    ring_idx = [i for i, k in enumerate(kinds) if k == "ring"]
    positions = []
    for i, kind in enumerate(kinds):
        if kind == "ring":
            positions.append((ring_idx.index(i) + 0.5) / len(ring_idx))
        elif kind in ("atrium", "open"):
            positions.append(0.0)
        else:
            positions.append(1.0)
    return positions


def _bias_field(p: PhantomParams, grid_r: np.ndarray, grid_c: np.ndarray) -> np.ndarray:
    """Multiplicative coil-sensitivity field, float32 (rows, cols), median 1: a gradient and a bump at the skin."""
    imaging = p.imaging
    rr, cc = grid_r[:, None], grid_c[None, :]
    outline = p.surroundings.body.outline
    skin = outline.row_mm - outline.half_row_mm  # anterior skin (coil side)
    bias = np.exp(
        imaging.bias_gradient[0] * rr / 150.0
        + imaging.bias_gradient[1] * cc / 150.0
        + imaging.bias_amplitude * np.exp(-(((rr - skin) / imaging.bias_width_mm) ** 2))
    ).astype(np.float32)
    bias /= np.median(bias)
    return bias


def _render_heart(
    p: PhantomParams,
    background: np.ndarray,
    flow: np.ndarray,
    centre_px: np.ndarray,
    positions: Sequence[float],
    phase: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Tissue map float32 (rows, cols, Z) and labels uint8 of one phase: the heart drawn over the background.

    The heart is drawn in a window around the (drifting) LV centre; bright blood gets the flow inhomogeneity.
    """
    rows, cols, nz = background.shape
    sp = p.acquisition.spacing_mm
    window = int(np.ceil((p.lv.r_endo_mm * 1.25 + p.lv.thick_mm * 1.6 + 35.0) / sp))
    tissue = background.copy()
    label = np.zeros(background.shape, dtype=np.uint8)
    for z, kind in enumerate(p.layout.kinds):
        cz = centre_px + p.layout.drift_mm * (z - nz / 2.0) / sp
        r0, r1 = max(int(cz[0]) - window, 0), min(int(cz[0]) + window + 1, rows)
        c0, c1 = max(int(cz[1]) - window, 0), min(int(cz[1]) + window + 1, cols)
        rr = ((np.arange(r0, r1, dtype=np.float32) - cz[0]) * sp)[:, None]
        cc = ((np.arange(c0, c1, dtype=np.float32) - cz[1]) * sp)[None, :]
        rr, cc = np.broadcast_arrays(rr, cc)
        overlay, lab = _heart(p, rr, cc, kind, positions[z], phase, sp)
        view = tissue[r0:r1, c0:c1, z]
        keep = np.isnan(overlay)
        overlay = np.where(overlay >= 0.8, overlay * (1.0 + p.imaging.flow * flow[r0:r1, c0:c1, z]), overlay)
        view[~keep] = overlay[~keep]
        label[r0:r1, c0:c1, z] = lab
    return tissue, label


def _form_image(
    p: PhantomParams, tissue: np.ndarray, bias: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Bias, PSF blur, correlated Rician noise and scaling of a tissue map (rows, cols, Z) -> stored int16/float32."""
    imaging = p.imaging
    image = tissue * bias[:, :, None]
    image = ndimage.gaussian_filter(
        image, sigma=(imaging.blur_px, imaging.blur_px, 0.0), mode="nearest", truncate=3.0
    )
    noise = rng.standard_normal((2, *tissue.shape), dtype=np.float32)  # real and imaginary channels
    noise = ndimage.gaussian_filter(
        noise, sigma=(0.0, imaging.noise_corr_px, imaging.noise_corr_px, 0.0), truncate=3.0
    )
    noise *= imaging.noise / max(float(noise.std()), 1e-6)
    image = np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2)
    image *= imaging.scale / max(float(np.percentile(image, 99.5)), 1e-6)
    if imaging.int16:
        return np.clip(np.rint(image), 0, 32767).astype(np.int16)
    return np.rint(np.clip(image, 0, imaging.scale)).astype(np.float32)


def generate_patient(
    rng: np.random.Generator,
    group: str,
    keep_within: tuple[int, int] = (144, 208),
    pixel_scale: float = 1.0,
) -> tuple[dict[str, PhantomScan], PhantomParams]:
    """Generate the ED and ES frames of one phantom patient.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random draw; the same generator state gives the same patient.
    group : str
        One of :data:`GROUPS`.
    keep_within : (H, W)
        Centre window (stored axes, pixels) the heart is kept inside, so the protocol's centre crop never clips it.
    pixel_scale : float
        In-plane pixel size relative to the drawn acquisition (> 0; above 1 is coarser): spacing x pixel_scale,
        matrix / pixel_scale, so the same patient covers 1 / pixel_scale as many pixels per axis (a cheaper,
        lower-resolution cohort; ``keep_within`` is in the scaled pixels). 1 is the ACDC-like acquisition.

    Returns
    -------
    (frames, params)
        ``frames["ED"|"ES"]``: :class:`PhantomScan` with image (X, Y, Z) int16 or float32 and label uint8;
        ``params``: the drawn :class:`PhantomParams` (geometry and ``Info.cfg`` values).

    Raises
    ------
    ValueError
        If ``group`` is not in :data:`GROUP_GEOMETRY` or ``pixel_scale`` is not positive.

    Examples
    --------
    >>> frames, params = generate_patient(np.random.default_rng([0, 1]), "NOR", pixel_scale=2.0)
    >>> frames["ED"].label.dtype, params.group
    (dtype('uint8'), 'NOR')
    """
    if group not in GROUP_GEOMETRY:
        raise ValueError(f"phantom: unknown group {group!r}; expected one of {list(GROUP_GEOMETRY)}")
    if not pixel_scale > 0:
        raise ValueError(f"phantom: pixel_scale must be > 0 (1 is the ACDC-like grid), got {pixel_scale!r}")
    p = sample_params(rng, group, keep_within, float(pixel_scale))
    rows, cols = p.acquisition.shape
    sp, dz = p.acquisition.spacing_mm, p.acquisition.slice_mm
    shape = (rows, cols, len(p.layout.kinds))
    centre_px = (np.array([rows, cols]) - 1) / 2.0 + np.array(p.offset_mm) / sp
    positions = _long_axis_positions(p.layout.kinds)
    grid_r = (np.arange(rows, dtype=np.float32) - centre_px[0]) * sp
    grid_c = (np.arange(cols, dtype=np.float32) - centre_px[1]) * sp
    texture = _smooth_noise(rng, shape, 10)
    flow = _smooth_noise(rng, shape, 6)
    bias = _bias_field(p, grid_r, grid_c)
    background = np.empty(shape, dtype=np.float32)
    for z in range(shape[2]):
        background[:, :, z] = _background(p, grid_r, grid_c, z * dz, positions[z], rng)
    background *= 1.0 + 0.12 * texture

    frames: dict[str, PhantomScan] = {}
    for phase, index in (("ED", p.info.ed_frame), ("ES", p.info.es_frame)):
        tissue, label = _render_heart(p, background, flow, centre_px, positions, phase)
        stored = _form_image(p, tissue, bias, rng)
        if p.acquisition.transpose:
            stored = np.ascontiguousarray(stored.transpose(1, 0, 2))
            label = np.ascontiguousarray(label.transpose(1, 0, 2))
        frames[phase] = PhantomScan(index=index, image=stored, label=label, zooms=(sp, sp, dz))
    return frames, p


# -------------------------------------------------------------------------------------------------- writing
def _info_text(p: PhantomParams) -> str:
    info = p.info
    fmt = (lambda v: f"{int(v)}") if info.integer_info else (lambda v: f"{v:.1f}")
    return (
        f"ED: {info.ed_frame}\nES: {info.es_frame}\nGroup: {p.group}\nHeight: {fmt(info.height_cm)}\n"
        f"NbFrame: {info.n_frames}\nWeight: {fmt(info.weight_kg)}\n"
    )


def _save_nifti(array: np.ndarray, zooms: tuple[float, float, float], path: Path) -> None:
    img = nib.Nifti1Image(array, None)
    img.header.set_zooms(zooms)
    img.set_sform(np.diag([-1.0, -1.0, 1.0, 1.0]), code="aligned")
    img.set_qform(None, code="unknown")
    tmp = path.with_name(f".{path.name}.tmp.nii.gz")
    nib.save(img, str(tmp))
    os.replace(tmp, path)


def write_patient(folder: str | os.PathLike, frames: dict[str, PhantomScan], params: PhantomParams) -> Path:
    """Write one generated patient in the ACDC layout: ``Info.cfg``, frame images and ``_gt`` labels.

    Parameters
    ----------
    folder : path-like
        The ``patientNNN`` folder (created); its name prefixes the file names.
    frames, params
        From :func:`generate_patient`.

    Returns
    -------
    Path
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pid = folder.name
    for scan in frames.values():
        stem = f"{pid}_frame{scan.index:02d}"
        _save_nifti(scan.image, scan.zooms, folder / f"{stem}.nii.gz")
        _save_nifti(scan.label, scan.zooms, folder / f"{stem}_gt.nii.gz")
    (folder / "Info.cfg").write_text(_info_text(params))
    return folder


def _check_cohort_request(n_patients: int, groups: Sequence[str], pixel_scale: float) -> list[str]:
    """The group of each patient, after checking the arguments of :func:`write_phantom_cohort`."""
    groups_of = assign_groups(n_patients, groups)
    for g in set(groups_of):
        if g not in GROUP_GEOMETRY:
            raise ValueError(
                f"write_phantom_cohort: unknown group {g!r}; expected some of {list(GROUP_GEOMETRY)}"
            )
    if n_patients > 999:
        raise ValueError(
            f"write_phantom_cohort: at most 999 patients (folders are patientNNN), got {n_patients}; "
            "write a smaller cohort"
        )
    if not float(pixel_scale) > 0:
        raise ValueError(
            f"write_phantom_cohort: pixel_scale must be > 0 (1 is the ACDC-like grid), got {pixel_scale!r}"
        )
    return groups_of


def _run_jobs(jobs: list[tuple], workers: int, progress: bool) -> None:
    """Generate and write every patient, in ``workers`` processes when more than one, with an optional bar."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="phantom", unit="patient")
    if int(workers) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=int(workers)) as pool:
            for _ in pool.map(_generate_and_write, jobs, chunksize=4):
                if bar is not None:
                    bar.update()
    else:
        for job in jobs:
            _generate_and_write(job)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()


def write_phantom_cohort(
    root: str | os.PathLike,
    n_patients: int = 100,
    seed: int = 0,
    groups: Sequence[str] = GROUPS,
    keep_within: tuple[int, int] = (144, 208),
    pixel_scale: float = 1.0,
    subset: str = "training",
    overwrite: bool = False,
    progress: bool = False,
    workers: int = 1,
) -> pd.DataFrame:
    """Write a phantom cohort in the ACDC layout.

    Parameters
    ----------
    root : path-like
        Cohort root; patients go to ``root/<subset>/patient001`` ... (three digits, like ACDC).
    n_patients : int
        Number of patients, 1 to 999 (default 100: 20 per group).
    seed : int
        Seed; patient ``i`` (1-based) draws from ``numpy.random.default_rng([seed, i])``.
    groups : sequence of str
        Groups to use, in patient-number order; sizes by largest remainder (:func:`assign_groups`).
    keep_within : (H, W)
        Centre window (pixels) the heart stays inside (the protocol crop, default (144, 208)).
    pixel_scale : float
        In-plane pixel size relative to the ACDC-like acquisition (:func:`generate_patient`); 1.5 gives the same
        patients on a grid 1.5x coarser (about 0.44x the pixels), e.g. for a 96 x 128 crop.
    subset : str
        Subfolder name (``"training"``).
    overwrite : bool
        Replace existing patient folders; otherwise an existing ``root/<subset>/patientNNN`` is an error.
    progress : bool
        Show a tqdm progress bar.
    workers : int
        Processes generating patients in parallel (the output does not depend on it).

    Returns
    -------
    pandas.DataFrame
        Columns patient_id, group, path (one row per patient).

    Raises
    ------
    FileExistsError
        If a patient folder exists and ``overwrite`` is False.
    ValueError
        If ``n_patients``, ``groups`` or ``pixel_scale`` are invalid.

    Examples
    --------
    >>> table = write_phantom_cohort("phantom", n_patients=5, seed=0)  # doctest: +SKIP
    >>> table["group"].tolist()  # doctest: +SKIP
    ['DCM', 'HCM', 'MINF', 'NOR', 'RV']
    """
    groups_of = _check_cohort_request(n_patients, groups, pixel_scale)
    base = Path(root) / subset
    folders = [base / f"patient{i:03d}" for i in range(1, n_patients + 1)]
    existing = [f for f in folders if f.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]}: already exists; write the phantom into an empty root or pass overwrite=True"
        )
    jobs = [
        (folder, group, int(seed), i, tuple(keep_within), float(pixel_scale))
        for i, (folder, group) in enumerate(zip(folders, groups_of, strict=True), start=1)
    ]
    _run_jobs(jobs, workers, progress)
    rows = [
        {"patient_id": f.name, "group": g, "path": str(f)} for f, g in zip(folders, groups_of, strict=True)
    ]
    return pd.DataFrame(rows, columns=["patient_id", "group", "path"])


def _generate_and_write(job: tuple) -> Path:
    folder, group, seed, index, keep_within, pixel_scale = job
    if folder.exists():
        for f in folder.iterdir():
            if f.is_file():
                f.unlink()
    frames, params = generate_patient(np.random.default_rng([seed, index]), group, keep_within, pixel_scale)
    return write_patient(folder, frames, params)
