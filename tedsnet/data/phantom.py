"""Synthetic short-axis cine-MRI cohort in the exact ACDC layout (DESIGN.md section 3, the embedded default).

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

Generation is vectorised (the heart is drawn in a window around it) and deterministic: patient ``i`` uses
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

from tedsnet.data.splits import largest_remainder

__all__ = [
    "GROUPS",
    "GROUP_GEOMETRY",
    "GroupGeometry",
    "PhantomScan",
    "assign_groups",
    "generate_patient",
    "write_patient",
    "write_phantom_cohort",
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

_RING_MIN_PX = 2.6  # minimum wall thickness and cavity radius of ring slices, pixels


@dataclass(frozen=True, eq=False)
class PhantomScan:
    """One generated frame: image (X, Y, Z) as stored (int16 or float32), label uint8 (X, Y, Z), zooms (mm)."""

    index: int
    image: np.ndarray
    label: np.ndarray
    zooms: tuple[float, float, float]


def assign_groups(n_patients: int, groups: Sequence[str] = GROUPS) -> list[str]:
    """Group of each patient: contiguous blocks in ``groups`` order (as ACDC numbers them), sizes by largest
    remainder (100 -> 20 each; 7 -> 2, 2, 1, 1, 1)."""
    if int(n_patients) != n_patients or n_patients < 1:
        raise ValueError(f"n_patients must be a positive integer, got {n_patients!r}")
    if not groups:
        raise ValueError("groups must name at least one group")
    counts = largest_remainder(int(n_patients), [1.0 / len(groups)] * len(groups))
    return [g for g, c in zip(groups, counts, strict=True) for _ in range(c)]


# ------------------------------------------------------------------------------------------------ sampling
def _choice(rng: np.random.Generator, values: Sequence, p: Sequence[float]):
    return values[int(rng.choice(len(values), p=np.asarray(p) / np.sum(p)))]


def _harmonics(rng: np.random.Generator, orders: Sequence[int], amp: float) -> list[tuple[int, float, float]]:
    return [
        (k, float(amp * rng.uniform(0.3, 1.0) / k**0.5), float(rng.uniform(0, 2 * np.pi))) for k in orders
    ]


def _sample_params(
    rng: np.random.Generator, group: str, keep_within: tuple[int, int], pixel_scale: float = 1.0
) -> dict:
    """Draw every random parameter of one patient (fixed draw order: the seed fixes the patient).

    ``pixel_scale`` multiplies the drawn in-plane spacing and divides the matrix by the same factor (same field of
    view in mm, same anatomy), after every draw: the seed gives the same patient at every scale.
    """
    geo = GROUP_GEOMETRY[group]
    p: dict = {"group": group}
    # acquisition ---------------------------------------------------------------------------------------
    hi_res = rng.random() < 0.04
    if hi_res:
        spacing = float(rng.uniform(0.70, 0.80))
        cols = int(_choice(rng, [448, 512], [1, 2]))
    else:
        spacing = float(np.clip(rng.normal(1.53, 0.16), 1.20, 1.95))
        cols = int(_choice(rng, [208, 216, 224, 256, 288], [8, 8, 14, 60, 5]))
    rows = int(np.clip(2 * round(cols * rng.uniform(0.72, 0.98) / 2), 154, cols))
    p["transpose"] = bool(rng.random() < 0.1)
    if pixel_scale != 1.0:
        spacing *= pixel_scale
        rows, cols = (2 * max(1, round(n / pixel_scale / 2)) for n in (rows, cols))
    p["spacing"] = spacing
    p["shape"] = (rows, cols)
    dz = float(_choice(rng, [10.0, 8.0, 7.0, 6.5, 5.0], [76, 5, 4, 3, 12]))
    p["dz"] = dz
    # anatomy ---------------------------------------------------------------------------------------------
    size = float(np.clip(rng.normal(1.0, 0.09), 0.8, 1.25))
    p["r_endo"] = geo.r_endo_mm * size
    p["thick"] = geo.thick_mm * float(np.clip(rng.normal(1.0, 0.12), 0.75, 1.35))
    p["es_ratio"] = float(np.clip(geo.es_ratio * rng.normal(1.0, 0.07), 0.35, 0.97))
    p["es_mass"] = geo.es_mass * float(rng.uniform(0.95, 1.05))
    p["rv_area"] = geo.rv_area * float(np.exp(rng.normal(0.0, 0.25)))
    p["rv_depth"] = float(rng.uniform(0.45, 0.6))
    p["rv_shape"] = (float(rng.uniform(0.0, 0.35)), float(rng.uniform(0.95, 1.2)))
    p["rv_es"] = float(np.clip(geo.rv_es * rng.normal(1.0, 0.06), 0.5, 1.0))
    length = geo.length_mm * float(rng.uniform(0.9, 1.12))
    p["rv_angle"] = float(np.deg2rad(rng.normal(150.0, 14.0)))  # direction LV -> RV in the (row, col) plane
    p["endo_harm"] = _harmonics(rng, (2, 3, 4, 5), 0.07)
    p["epi_harm"] = _harmonics(rng, (2, 3), 0.05)
    p["thick_harm"] = _harmonics(rng, (1, 2, 3), 0.18)
    p["septal"] = geo.septal * float(rng.uniform(0.6, 1.4)) if geo.septal else 0.0
    p["infarct"] = (
        (
            geo.infarct * float(rng.uniform(0.8, 1.25)),
            float(p["rv_angle"] + np.pi + rng.uniform(-2.0, 2.0)),
            float(rng.uniform(2.0, 5.0)),
        )
        if geo.infarct
        else None
    )  # (depth, centre angle, concentration)
    # slice layout: [atrium] [open basal] rings [apical cap] [below]
    n_ring = int(np.clip(round(length / dz) - 1, 6, 16))
    extra = [rng.random() < 0.12, rng.random() < 0.55, rng.random() < 0.5, rng.random() < 0.1]
    while n_ring + sum(extra) > 18:
        n_ring -= 1
    p["layout"] = (
        ["atrium"] * extra[0]
        + ["open"] * extra[1]
        + ["ring"] * n_ring
        + ["cap"] * extra[2]
        + ["below"] * extra[3]
    )
    p["open_angle"] = float(p["rv_angle"] + rng.uniform(-0.8, 0.4))  # LV outflow next to the septum
    p["open_width"] = float(rng.uniform(0.6, 1.1))  # radians
    p["drift"] = rng.normal(0.0, 1.2, size=2) * dz / 10.0  # mm per slice
    p["papillary"] = [
        (float(p["rv_angle"] + np.pi + s * rng.uniform(0.6, 1.1)), float(rng.uniform(3.5, 6.0)))
        for s in (-1, 1)
    ]
    p["trab"] = (
        int(rng.integers(9, 18)),
        float(rng.uniform(0, 2 * np.pi)),
        float(rng.uniform(2.5, 5.5)),
        _harmonics(rng, (3, 5, 7, 11), 0.9),
    )
    p["fat"] = (float(rng.uniform(1.0, 5.0)), _harmonics(rng, (1, 2, 3), 1.0))
    # position: LV centre offset from the image centre (mm), kept inside the crop window with a margin
    extent = p["r_endo"] + p["thick"] + 6.0
    half = np.array(keep_within[::-1] if p["transpose"] else keep_within) * spacing / 2.0
    render_fov = np.array(p["shape"]) * spacing / 2.0
    limit = np.maximum(
        np.minimum(half, render_fov) - extent - 3.0 - np.abs(p["drift"]) * len(p["layout"]) / 2, 0.0
    )
    p["offset"] = np.clip(rng.normal(0.0, 14.0, size=2), -limit, limit)
    # surroundings (mm relative to the LV centre)
    r_epi = p["r_endo"] + p["thick"]
    ba, bb = float(rng.uniform(100, 130)), float(rng.uniform(165, 230))
    chest = float(rng.uniform(15, 40))
    p["body"] = (ba - r_epi - chest, float(rng.uniform(-20, 40)), ba, bb, _harmonics(rng, (2, 3, 4), 0.04))
    p["fat_layer"] = (float(rng.uniform(6, 22)), float(rng.uniform(8, 18)))  # subcutaneous fat, muscle
    p["lungs"] = [
        (
            float(rng.uniform(-10, 25)),
            -r_epi - float(rng.uniform(40, 65)),
            float(rng.uniform(65, 90)),
            float(rng.uniform(45, 65)),
        ),
        (
            float(rng.uniform(10, 40)),
            r_epi + float(rng.uniform(50, 75)),
            float(rng.uniform(45, 70)),
            float(rng.uniform(30, 45)),
        ),
    ]
    n_blobs = int(rng.integers(5, 11))
    z_extent = len(p["layout"]) * dz
    p["blobs"] = [
        (
            float(p["body"][0] + rng.uniform(-0.7, 0.7) * ba),
            float(p["body"][1] + rng.uniform(-0.7, 0.7) * bb),
            float(rng.uniform(0, z_extent)),
            float(rng.uniform(8, 35)),
            float(rng.uniform(8, 35)),
            float(rng.uniform(15, 60)),
            float(rng.uniform(0.1, 0.9)),
        )
        for _ in range(n_blobs)
    ]
    p["liver"] = (
        float(rng.uniform(35, 60)),
        float(rng.uniform(45, 80)),
        float(rng.uniform(60, 80)),
        float(rng.uniform(70, 95)),
    )
    p["aorta"] = (float(rng.uniform(45, 70)), float(rng.uniform(-5, 35)), float(rng.uniform(9, 13)))
    # intensities relative to LV blood = 1
    p["I"] = {
        "myo": float(rng.uniform(0.22, 0.5)),
        "blood_rv": float(rng.uniform(0.85, 1.0)),
        "fat": float(rng.uniform(0.8, 1.1)),
        "muscle": float(rng.uniform(0.2, 0.35)),
        "soft": float(rng.uniform(0.3, 0.5)),
        "lung": float(rng.uniform(0.03, 0.08)),
        "liver": float(rng.uniform(0.3, 0.5)),
        "aorta": float(rng.uniform(0.8, 1.15)),
        "spine": float(rng.uniform(0.2, 0.4)),
    }
    p["es_myo"] = float(
        rng.uniform(1.0, 1.25)
    )  # myocardium slightly brighter at ES (partial volume of thick wall)
    # image formation
    p["blur"] = float(rng.uniform(0.55, 0.95))  # PSF sigma, pixels
    p["noise"] = float(np.exp(rng.normal(np.log(0.045), 0.35)))  # noise sigma / blood (before correlation)
    p["noise_corr"] = float(rng.uniform(0.5, 0.9))  # correlation sigma of the noise, pixels
    p["bias"] = (rng.normal(0.0, 0.25, size=2), float(rng.uniform(0.1, 0.45)), float(rng.uniform(40, 90)))
    p["flow"] = float(rng.uniform(0.03, 0.1))
    p["int16"] = bool(rng.random() < 0.45)
    p["scale"] = float(np.exp(rng.uniform(np.log(250), np.log(3500)))) if p["int16"] else 255.0
    ed = int(_choice(rng, [1, 1, 1, 1, 2, 3], [1] * 6))
    n_frames = int(rng.integers(12, 36))
    es = int(np.clip(round(n_frames * rng.uniform(0.33, 0.45)), ed + 2, n_frames))
    p["frames"] = (ed, es, n_frames)  # Info.cfg ED, ES, NbFrame
    p["height"] = float(np.round(rng.normal(172, 9)))
    p["weight"] = float(np.round(rng.normal(78, 14)))
    p["int_info"] = bool(rng.random() < 0.3)
    return p


# ----------------------------------------------------------------------------------------------- drawing
def _angular(cos: np.ndarray, sin: np.ndarray, harmonics, k_max: int = 6) -> np.ndarray:
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


def _background(
    p: dict, gr: np.ndarray, gc: np.ndarray, z_mm: float, t: float, rng: np.random.Generator
) -> np.ndarray:
    """Tissue intensities of one slice outside the heart; gr (rows,), gc (cols,) in mm relative to the LV."""
    intens = p["I"]
    rr, cc = gr[:, None], gc[None, :]
    br, bc, ba, bb, bh = p["body"]
    dr, dc = rr - br, cc - bc
    dist = np.hypot(dr / ba, dc / bb)
    safe = np.maximum(np.hypot(dr, dc), 1e-6)
    q = dist / (1.0 + _angular(dr / safe, dc / safe, bh, 4))
    depth = (1.0 - q) * min(ba, bb)  # approximate depth below the skin, mm
    fat_w, muscle_w = p["fat_layer"]
    body = q < 1
    inner = depth >= fat_w + muscle_w
    img = np.where(body, np.float32(intens["soft"]), np.float32(0.0))
    img[body & ~inner] = intens["muscle"]
    img[body & (depth < fat_w)] = intens["fat"]
    # organs and vessels: ellipsoids (r, c, z, a, b, cz, intensity), cross-sections of this slice
    for r0, c0, zc, a, b, cz, value in p["blobs"]:
        f = 1.0 - ((z_mm - zc) / cz) ** 2
        if f > 0:
            _paint(img, gr, gc, r0, c0, a * np.sqrt(f), b * np.sqrt(f), value, inner)
    _paint(img, gr, gc, br + ba - fat_w - muscle_w - 22.0, bc, 16.0, 18.0, intens["spine"])
    ar, ac, arad = p["aorta"]
    _paint(img, gr, gc, ar, ac, arad, arad, intens["aorta"])
    lr, lc, la, lb = p["liver"]
    if t > 0.3:
        grow = min(1.0, (t - 0.3) / 0.4)
        _paint(
            img,
            gr,
            gc,
            lr - 20 * grow,
            lc - 10 * grow,
            la * (0.6 + 0.4 * grow),
            lb * (0.6 + 0.4 * grow),
            intens["liver"],
            inner,
        )
    for r0, c0, a, b in p["lungs"]:
        _paint(img, gr, gc, r0, c0, a, b, intens["lung"], inner)
        n_vessels = int(rng.integers(4, 14))
        vr = rng.uniform(-0.8, 0.8, n_vessels) * a + r0
        vc = rng.uniform(-0.8, 0.8, n_vessels) * b + c0
        vrad = rng.uniform(0.8, 2.5, n_vessels)
        lung = np.zeros(img.shape, dtype=bool)
        _paint(lung, gr, gc, r0, c0, a, b, True, inner)
        for k in range(n_vessels):
            _paint(img, gr, gc, vr[k], vc[k], vrad[k], vrad[k], rng.uniform(0.3, 0.9), lung)
    return img


def _heart(
    p: dict, rr: np.ndarray, cc: np.ndarray, kind: str, t: float, phase: str, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Intensity overlay (NaN = keep background) and labels of the heart in a window; rr, cc relative to LV."""
    intens = p["I"]
    es = phase == "ES"
    label = np.zeros(rr.shape, dtype=np.uint8)
    overlay = np.full(rr.shape, np.nan, dtype=np.float32)
    if kind == "below":
        return overlay, label
    dist = np.hypot(rr, cc)
    safe = np.maximum(dist, 1e-6)
    cos, sin = rr / safe, cc / safe
    myo_i = intens["myo"] * (p["es_myo"] if es else 1.0)
    if kind == "atrium":  # left atrium and aortic root: bright, unlabelled
        la = dist < 0.9 * p["r_endo"] * (1 + _angular(cos, sin, p["endo_harm"]))
        overlay[dist < 0.9 * p["r_endo"] + 2.5] = myo_i
        overlay[la] = 1.0
        return overlay, label
    # radii profile along the long axis (ellipsoid), ED values
    min_mm = _RING_MIN_PX * spacing
    shape_f = np.sqrt(max(1.0 - (0.95 * t) ** 2, 0.0))
    r_endo = p["r_endo"] * shape_f
    thick = p["thick"] * (1.0 - 0.2 * t)
    r_epi = r_endo + thick
    if es:
        area_myo = (r_epi**2 - r_endo**2) * p["es_mass"]
        r_endo *= p["es_ratio"]
        r_epi = np.sqrt(r_endo**2 + area_myo)
        thick = r_epi - r_endo
    if kind == "ring":
        r_endo = max(r_endo, min_mm + 0.5 * spacing)
    wall_mod = 1.0 + _angular(cos, sin, p["thick_harm"], 3)
    if p["septal"]:
        wall_mod = wall_mod + p["septal"] * _vonmises(cos, sin, p["rv_angle"], 2.0)
    if p["infarct"] is not None:
        depth, centre, kappa = p["infarct"]
        wall_mod = wall_mod * (1.0 - depth * _vonmises(cos, sin, centre, kappa))
    if kind == "cap":
        rim = thick * 0.9 + 4.0
        epi = rim * (1.0 + _angular(cos, sin, p["epi_harm"], 3))
        myo = dist <= epi
        overlay[myo] = myo_i
        label[myo] = 2
        return overlay, label
    endo = r_endo * (1.0 + _angular(cos, sin, p["endo_harm"], 5))
    wall = np.maximum(thick * wall_mod, min_mm)
    epi = endo + wall
    cavity = dist <= endo
    myo = (dist > endo) & (dist <= epi)
    # epicardial fat (patchy), then RV, then LV
    fat_max, fat_h = p["fat"]
    fat_w = fat_max * np.clip(_angular(cos, sin, fat_h, 3) + 0.3, 0.0, None)
    overlay[(dist > epi) & (dist <= epi + fat_w)] = intens["fat"] * 0.9
    # RV: an ellipse on the septal side covering the LV up to about its centre line, minus the LV: a crescent
    # whose cavity touches the septal myocardium. Depth D along LV->RV sets its area.
    taper = np.sqrt(max(1.0 - (1.05 * t) ** 2, 0.0))
    depth_rv = p["rv_depth"] * np.sqrt(p["rv_area"]) * p["r_endo"] * (p["rv_es"] if es else 1.0) * taper
    if depth_rv > 3.0:
        ang = p["rv_angle"]
        ur, uc = np.cos(ang), np.sin(ang)
        beta, gamma = p["rv_shape"]
        a = ((1.0 - beta) * r_epi + depth_rv) / 2.0
        s = ((1.0 + beta) * r_epi + depth_rv) / 2.0
        b = gamma * (r_epi + 0.5 * depth_rv)
        along = rr * ur + cc * uc - s
        across = -rr * uc + cc * ur
        outside_lv = dist > epi
        wall_rv = 2.5
        rv_wall = (((along / (a + wall_rv)) ** 2 + (across / (b + wall_rv)) ** 2) < 1) & outside_lv
        rv_cav = (((along / a) ** 2 + (across / b) ** 2) < 1) & outside_lv
        overlay[rv_wall] = myo_i
        overlay[rv_cav] = intens["blood_rv"]
        label[rv_cav] = 1
    overlay[myo] = myo_i
    overlay[cavity] = 1.0
    label[myo] = 2
    label[cavity] = 3
    if kind == "open":  # LV outflow: the wall opens into the cavity, the myocardium is a C
        gap = myo & (_vonmises(cos, sin, p["open_angle"], 1.0) > np.exp(-(p["open_width"] ** 2) / 2.0))
        overlay[gap] = 1.0
        label[gap] = 3
        return overlay, label
    # trabeculations: dark fingers along the endocardium; papillary muscles: blobs against the lateral wall
    n_trab, trab_phase, trab_depth, trab_h = p["trab"]
    irregular = _angular(cos, sin, trab_h, 11)
    depth_mm = trab_depth * (1.0 + 0.8 * t) * (1.3 if es else 1.0) * np.clip(1.0 + 0.6 * irregular, 0.2, None)
    phi = np.arctan2(sin, cos)
    fingers = np.sin(n_trab * phi + trab_phase + 2.0 * np.sin(3 * phi)) + 0.7 * irregular > 0.2
    trab = cavity & (dist > endo - depth_mm) & fingers
    overlay[trab] = myo_i + 0.35 * (1.0 - myo_i)
    if 0.15 < t < 0.9:
        for angle, radius in p["papillary"]:
            rad = radius * (1.25 if es else 1.0) * max(1.0, p["r_endo"] / 28.0)
            centre = max(endo.mean() - 0.7 * rad, 0.0)
            pr, pc = centre * np.cos(angle), centre * np.sin(angle)
            blob = cavity & (((rr - pr) ** 2 + (cc - pc) ** 2) < rad**2)
            overlay[blob] = myo_i
    return overlay, label


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], step: int) -> np.ndarray:
    """Smooth random field in about [-1, 1]: coarse normal noise, repeated and box-filtered (about linear)."""
    coarse = rng.standard_normal((shape[0] // step + 2, shape[1] // step + 2, shape[2])).astype(np.float32)
    fine = np.repeat(np.repeat(coarse, step, axis=0), step, axis=1)[: shape[0], : shape[1]]
    fine = ndimage.uniform_filter1d(fine, step, axis=0)
    fine = ndimage.uniform_filter1d(fine, step, axis=1)
    return fine / 1.2


def generate_patient(
    rng: np.random.Generator,
    group: str,
    keep_within: tuple[int, int] = (144, 208),
    pixel_scale: float = 1.0,
) -> tuple[dict[str, PhantomScan], dict]:
    """Generate the ED and ES frames of one phantom patient.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random draw.
    group : str
        One of :data:`GROUPS`.
    keep_within : (H, W)
        Centre window (stored axes) the heart is kept inside, so the protocol's centre crop never clips it.
    pixel_scale : float
        In-plane pixel size relative to the drawn acquisition (>= 1 coarser): spacing x pixel_scale, matrix /
        pixel_scale, so the same patient covers 1 / pixel_scale as many pixels per axis (a cheaper, lower-resolution
        cohort; ``keep_within`` is in the scaled pixels). 1 is the ACDC-like acquisition.

    Returns
    -------
    (frames, params)
        ``frames["ED"|"ES"]``: :class:`PhantomScan` with image (X, Y, Z) int16 or float32, label uint8;
        ``params``: the drawn parameters (Info.cfg values, geometry).
    """
    if group not in GROUP_GEOMETRY:
        raise ValueError(f"phantom: unknown group {group!r}; expected one of {list(GROUP_GEOMETRY)}")
    if not pixel_scale > 0:
        raise ValueError(f"phantom: pixel_scale must be > 0, got {pixel_scale!r}")
    p = _sample_params(rng, group, keep_within, float(pixel_scale))
    rows, cols = p["shape"]
    sp, dz = p["spacing"], p["dz"]
    layout = p["layout"]
    nz = len(layout)
    shape = (rows, cols, nz)
    ring_idx = [i for i, k in enumerate(layout) if k == "ring"]
    n_ring = len(ring_idx)
    centre_px = (np.array([rows, cols]) - 1) / 2.0 + np.array(p["offset"]) / sp

    # normalised long-axis position t per slice: 0 base .. 1 apex over the ring slices
    t_of = []
    for i, kind in enumerate(layout):
        if kind == "ring":
            t_of.append((ring_idx.index(i) + 0.5) / n_ring)
        elif kind in ("atrium", "open"):
            t_of.append(0.0)
        else:
            t_of.append(1.0)

    grid_r = (np.arange(rows, dtype=np.float32) - centre_px[0]) * sp
    grid_c = (np.arange(cols, dtype=np.float32) - centre_px[1]) * sp
    texture = _smooth_noise(rng, shape, 10)
    flow = _smooth_noise(rng, shape, 6)
    bias_grad, bias_amp, bias_width = p["bias"]
    rr_full, cc_full = grid_r[:, None], grid_c[None, :]
    br = p["body"][0] - p["body"][2]  # anterior skin (coil side)
    bias = np.exp(
        bias_grad[0] * rr_full / 150.0
        + bias_grad[1] * cc_full / 150.0
        + bias_amp * np.exp(-(((rr_full - br) / bias_width) ** 2))
    ).astype(np.float32)
    bias /= np.median(bias)

    background = np.empty(shape, dtype=np.float32)
    for z in range(nz):
        background[:, :, z] = _background(p, grid_r, grid_c, z * dz, t_of[z], rng)
    background *= 1.0 + 0.12 * texture

    window = int(np.ceil((p["r_endo"] * 1.25 + p["thick"] * 1.6 + 35.0) / sp))
    frames: dict[str, PhantomScan] = {}
    for phase, index in (("ED", p["frames"][0]), ("ES", p["frames"][1])):
        tissue = background.copy()
        label = np.zeros(shape, dtype=np.uint8)
        for z, kind in enumerate(layout):
            cz = centre_px + p["drift"] * (z - nz / 2.0) / sp
            r0, r1 = max(int(cz[0]) - window, 0), min(int(cz[0]) + window + 1, rows)
            c0, c1 = max(int(cz[1]) - window, 0), min(int(cz[1]) + window + 1, cols)
            rr = ((np.arange(r0, r1, dtype=np.float32) - cz[0]) * sp)[:, None]
            cc = ((np.arange(c0, c1, dtype=np.float32) - cz[1]) * sp)[None, :]
            rr, cc = np.broadcast_arrays(rr, cc)
            overlay, lab = _heart(p, rr, cc, kind, t_of[z], phase, sp)
            view = tissue[r0:r1, c0:c1, z]
            keep = np.isnan(overlay)
            overlay = np.where(overlay >= 0.8, overlay * (1.0 + p["flow"] * flow[r0:r1, c0:c1, z]), overlay)
            view[~keep] = overlay[~keep]
            label[r0:r1, c0:c1, z] = lab
        image = tissue * bias[:, :, None]
        image = ndimage.gaussian_filter(
            image, sigma=(p["blur"], p["blur"], 0.0), mode="nearest", truncate=3.0
        )
        sigma = p["noise"]
        noise = rng.standard_normal((2, *shape), dtype=np.float32)
        noise = ndimage.gaussian_filter(
            noise, sigma=(0.0, p["noise_corr"], p["noise_corr"], 0.0), truncate=3.0
        )
        noise *= sigma / max(float(noise.std()), 1e-6)
        image = np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2)
        image *= p["scale"] / max(float(np.percentile(image, 99.5)), 1e-6)
        if p["int16"]:
            stored = np.clip(np.rint(image), 0, 32767).astype(np.int16)
        else:
            stored = np.rint(np.clip(image, 0, p["scale"])).astype(np.float32)
        zooms = (sp, sp, dz)
        if p["transpose"]:
            stored = np.ascontiguousarray(stored.transpose(1, 0, 2))
            label = np.ascontiguousarray(label.transpose(1, 0, 2))
        frames[phase] = PhantomScan(index=index, image=stored, label=label, zooms=zooms)
    return frames, p


def _info_text(p: dict) -> str:
    ed, es, n_frames = p["frames"]
    fmt = (lambda v: f"{int(v)}") if p["int_info"] else (lambda v: f"{v:.1f}")
    return (
        f"ED: {ed}\nES: {es}\nGroup: {p['group']}\nHeight: {fmt(p['height'])}\nNbFrame: {n_frames}\n"
        f"Weight: {fmt(p['weight'])}\n"
    )


def _save_nifti(array: np.ndarray, zooms: tuple[float, float, float], path: Path) -> None:
    img = nib.Nifti1Image(array, None)
    img.header.set_zooms(zooms)
    img.set_sform(np.diag([-1.0, -1.0, 1.0, 1.0]), code="aligned")
    img.set_qform(None, code="unknown")
    tmp = path.with_name(f".{path.name}.tmp.nii.gz")
    nib.save(img, str(tmp))
    os.replace(tmp, path)


def write_patient(folder: str | os.PathLike, frames: dict[str, PhantomScan], params: dict) -> Path:
    """Write one generated patient in the ACDC layout (Info.cfg, frame images and _gt labels)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pid = folder.name
    for scan in frames.values():
        stem = f"{pid}_frame{scan.index:02d}"
        _save_nifti(scan.image, scan.zooms, folder / f"{stem}.nii.gz")
        _save_nifti(scan.label, scan.zooms, folder / f"{stem}_gt.nii.gz")
    (folder / "Info.cfg").write_text(_info_text(params))
    return folder


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
        Number of patients (default 100: 20 per group).
    seed : int
        Seed; patient ``i`` (1-based) draws from ``numpy.random.default_rng([seed, i])``.
    groups : sequence of str
        Groups to use, in patient-number order; sizes by largest remainder (:func:`assign_groups`).
    keep_within : (H, W)
        Centre window the heart stays inside (the protocol crop, default (144, 208)).
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
        If ``n_patients`` or ``groups`` are invalid.
    """
    groups_of = assign_groups(n_patients, groups)
    for g in set(groups_of):
        if g not in GROUP_GEOMETRY:
            raise ValueError(
                f"write_phantom_cohort: unknown group {g!r}; expected some of {list(GROUP_GEOMETRY)}"
            )
    if n_patients > 999:
        raise ValueError(f"write_phantom_cohort: at most 999 patients (patientNNN), got {n_patients}")
    if not float(pixel_scale) > 0:
        raise ValueError(f"write_phantom_cohort: pixel_scale must be > 0, got {pixel_scale!r}")
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
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_patients, desc="phantom", unit="patient")
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
