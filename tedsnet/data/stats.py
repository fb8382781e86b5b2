"""Image and anatomy statistics of a cohort, to compare the phantom with real ACDC.

The same functions run on any cohort in the ACDC layout. Per scan (patient, phase) they measure the acquisition
(matrix, spacing, slice thickness, slice count), the anatomy on the protocol's selected ring slices (myocardium
outer radius and thickness in mm, LV and RV cavity areas) and the image (myocardium/blood-pool contrast, SNR,
papillary/trabecular dark fraction of the LV cavity), in the stored intensities (no normalisation).

Definitions (per selected slice, then the median over the scan's slices):

- ``r_epi_mm``: equivalent-circle radius of myocardium + enclosed cavity, ``sqrt((A_myo + A_hole) / pi)``;
  ``r_endo_mm`` the same for the hole; ``thick_mm = r_epi_mm - r_endo_mm``.
- ``thick_min_mm`` / ``thick_max_mm``: radial myocardium thickness along 72 rays from the cavity centroid, 5th and
  95th percentile over the rays (a thinned segment lowers the first, HCM raises the second).
- ``contrast``: median(myocardium) / median(LV blood) with the LV cavity eroded by 1 pixel.
- ``noise``: robust noise sigma in the blood pool, ``1.4826 * MAD(x - median3x3(x)) / 1.13`` (the factor makes it
  unbiased for white Gaussian noise; correlated noise, as in zero-filled reconstructions, reads lower).
- ``snr``: mean blood / noise; ``cnr``: (median blood - median myocardium) / noise.
- ``blood_cv``: std / mean of the eroded LV blood pool (noise, flow and papillary muscles together).
- ``dark_frac``: fraction of LV cavity pixels darker than the midpoint of the myocardium and blood medians
  (papillary muscles and trabeculations, which ACDC labels as cavity).
- ``rv_lv_area``: RV cavity area / LV cavity area on the selected slices (0 where no RV).
- ``epi_ambiguity``: fraction of the pixels within 4 pixels outside the myocardium (cavities excluded) whose
  intensity lies in the myocardium's 10th-90th percentile range: how often the outer neighbours (lung, muscle,
  liver, RV wall) look like myocardium, i.e. how weak the epicardial edge is.
- :func:`prior_dice`: Dice of the fixed centred ring prior (radius 30, thickness 7 pixels; Table 1's prior row)
  with each protocol slice: how much position, size and shape vary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from tedsnet.data.acdc import LABELS, PHASES, Patient, iter_cohort
from tedsnet.data.slices import ring_slice_indices, select_slices

__all__ = ["cohort_stats", "comparison_table", "scan_stats", "slice_stats"]

_RAYS = 72
_BAND_PX = 4


def _radial_thickness(myo: np.ndarray, hole: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Myocardium run length (mm) along rays from the hole centroid; (rays,)."""
    c = np.array(ndimage.center_of_mass(hole))
    step = 0.25  # pixels
    radii = np.arange(0, max(myo.shape), step)
    angles = np.linspace(0, 2 * np.pi, _RAYS, endpoint=False)
    rows = c[0] + radii[None, :] * np.cos(angles)[:, None]
    cols = c[1] + radii[None, :] * np.sin(angles)[:, None]
    inside = (rows >= 0) & (rows <= myo.shape[0] - 1) & (cols >= 0) & (cols <= myo.shape[1] - 1)
    r_idx = np.clip(np.rint(rows).astype(int), 0, myo.shape[0] - 1)
    c_idx = np.clip(np.rint(cols).astype(int), 0, myo.shape[1] - 1)
    samples = myo[r_idx, c_idx] & inside
    # mm per step along each ray direction
    mm = step * np.hypot(np.cos(angles) * spacing[0], np.sin(angles) * spacing[1])
    return samples.sum(axis=1) * mm


def slice_stats(image: np.ndarray, label: np.ndarray, spacing: tuple[float, float]) -> dict[str, float]:
    """Statistics of one 2-D slice (see the module docstring).

    Parameters
    ----------
    image : np.ndarray
        (H, W) stored intensities.
    label : np.ndarray
        (H, W) ACDC labels; the myocardium should be one ring.
    spacing : (row_mm, col_mm)

    Returns
    -------
    dict of float
    """
    image = np.asarray(image, dtype=np.float64)
    myo = label == LABELS["myocardium"]
    hole = ndimage.binary_fill_holes(myo) & ~myo
    lv = label == LABELS["lv"]
    rv = label == LABELS["rv"]
    px = float(spacing[0] * spacing[1])
    a_myo, a_hole = myo.sum() * px, hole.sum() * px
    blood_mask = ndimage.binary_erosion(lv, iterations=1)
    if blood_mask.sum() < 10:
        blood_mask = lv
    blood = image[blood_mask]
    myo_px = image[myo]
    med_blood, med_myo = float(np.median(blood)), float(np.median(myo_px))
    resid = image - ndimage.median_filter(image, size=3)
    r = resid[blood_mask]
    noise = float(1.4826 * np.median(np.abs(r - np.median(r))) / 1.13)
    thick = _radial_thickness(myo, hole, spacing) if hole.any() else np.array([np.nan])
    cavity = image[lv]
    band = ndimage.binary_dilation(myo, iterations=_BAND_PX) & ~myo & ~hole
    lo, hi = np.percentile(myo_px, (10, 90))
    near = image[band]
    return {
        "r_epi_mm": float(np.sqrt((a_myo + a_hole) / np.pi)),
        "r_endo_mm": float(np.sqrt(a_hole / np.pi)),
        "thick_mm": float(np.sqrt((a_myo + a_hole) / np.pi) - np.sqrt(a_hole / np.pi)),
        "thick_min_mm": float(np.percentile(thick, 5)),
        "thick_max_mm": float(np.percentile(thick, 95)),
        "contrast": med_myo / med_blood if med_blood > 0 else np.nan,
        "noise": noise,
        "snr": float(blood.mean() / noise) if noise > 0 else np.nan,
        "cnr": (med_blood - med_myo) / noise if noise > 0 else np.nan,
        "blood_cv": float(blood.std() / blood.mean()) if blood.mean() > 0 else np.nan,
        "dark_frac": float((cavity < 0.5 * (med_blood + med_myo)).mean()) if cavity.size else np.nan,
        "rv_lv_area": float(rv.sum() / lv.sum()) if lv.any() else np.nan,
        "epi_ambiguity": float(((near >= lo) & (near <= hi)).mean()) if near.size else np.nan,
    }


def scan_stats(patient: Patient, phase: str, n: int = 5) -> dict[str, float | int | str]:
    """Acquisition and (median over the n selected ring slices) slice statistics of one scan."""
    frame = patient.frames[phase]
    rings, z_range = ring_slice_indices(frame.label)
    bearing = z_range[1] - z_range[0] + 1 if z_range else 0
    row: dict[str, float | int | str] = {
        "patient_id": patient.id,
        "group": patient.group,
        "phase": phase,
        "rows": frame.image.shape[0],
        "cols": frame.image.shape[1],
        "slices": frame.image.shape[2],
        "spacing_mm": float(frame.spacing[0]),
        "thickness_mm": float(frame.spacing[2]),
        "fov_rows_mm": frame.image.shape[0] * float(frame.spacing[0]),
        "fov_cols_mm": frame.image.shape[1] * float(frame.spacing[1]),
        "myo_slices": bearing,
        "ring_slices": len(rings),
    }
    if z_range is None or len(rings) < n:
        return row
    per_slice = [
        slice_stats(frame.image[:, :, z], frame.label[:, :, z], frame.spacing[:2])
        for z in select_slices(rings, z_range, n)
    ]
    for key in per_slice[0]:
        values = np.array([s[key] for s in per_slice], dtype=float)
        row[key] = float(np.median(values[np.isfinite(values)])) if np.isfinite(values).any() else np.nan
    from tedsnet.data.slices import extract_slices

    row["prior_dice"] = float(np.mean(prior_dice(extract_slices(patient, n=n, phases=(phase,)))))
    z = select_slices(rings, z_range, n)[n // 2]
    lv = frame.label[:, :, z] == LABELS["lv"]
    centre = np.array(ndimage.center_of_mass(lv))
    offset = (centre - (np.array(lv.shape) - 1) / 2) * np.array(frame.spacing[:2])
    row["lv_offset_mm"] = float(np.hypot(*offset))
    return row


def prior_dice(slices: Iterable, radius: float = 30.0, thickness: float = 7.0) -> np.ndarray:
    """Dice of the centred ring prior with each slice's myocardium; (n_slices,) float."""
    from tedsnet.evaluation.metrics import dice
    from tedsnet.network.priors import ring_prior

    prior = None
    out = []
    for s in slices:
        if prior is None or prior.shape != s.myocardium.shape:
            prior = ring_prior(s.myocardium.shape, radius, thickness)
        out.append(dice(prior, s.myocardium))
    return np.asarray(out, dtype=float)


def cohort_stats(
    root: str | os.PathLike | None = None, patients: Iterable[Patient] | None = None, n: int = 5
) -> pd.DataFrame:
    """:func:`scan_stats` for every scan (ED and ES) of a cohort root or an iterable of patients.

    Returns
    -------
    pandas.DataFrame
        One row per (patient, phase).
    """
    if patients is None:
        if root is None:
            raise ValueError("cohort_stats: got neither a cohort root nor patients; pass root= or patients=")
        patients = iter_cohort(root)
    return pd.DataFrame([scan_stats(p, phase, n) for p in patients for phase in PHASES])


#: Columns of :func:`comparison_table` with their labels.
TABLE_ROWS: tuple[tuple[str, str], ...] = (
    ("rows", "matrix rows (px)"),
    ("cols", "matrix cols (px)"),
    ("spacing_mm", "in-plane spacing (mm)"),
    ("thickness_mm", "slice thickness (mm)"),
    ("slices", "slices per scan"),
    ("ring_slices", "ring slices per scan"),
    ("lv_offset_mm", "LV centre offset from image centre (mm)"),
    ("r_epi_mm", "myocardium outer radius (mm)"),
    ("r_endo_mm", "LV cavity radius (mm)"),
    ("thick_mm", "myocardium thickness, mean (mm)"),
    ("thick_min_mm", "myocardium thickness, 5th pct of rays (mm)"),
    ("thick_max_mm", "myocardium thickness, 95th pct of rays (mm)"),
    ("contrast", "myocardium / blood-pool median"),
    ("snr", "SNR (blood mean / noise)"),
    ("cnr", "CNR (blood - myo) / noise"),
    ("blood_cv", "blood-pool CV (std/mean)"),
    ("dark_frac", "dark fraction of LV cavity (papillary)"),
    ("rv_lv_area", "RV / LV cavity area"),
    ("epi_ambiguity", "epicardial-edge ambiguity (fraction)"),
    ("prior_dice", "Dice of the centred ring prior (r 30, t 7 px)"),
)


def _fmt(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    q = np.percentile(values, [5, 50, 95])
    digits = 0 if abs(q[1]) >= 100 else (1 if abs(q[1]) >= 3 else 2)
    return f"{q[1]:.{digits}f} [{q[0]:.{digits}f}, {q[2]:.{digits}f}]"


def comparison_table(
    tables: dict[str, pd.DataFrame], by_group: tuple[str, ...] = ("thick_mm", "r_epi_mm", "rv_lv_area")
) -> str:
    """Markdown table: median [5th, 95th percentile] over scans of each statistic, one column per cohort.

    Parameters
    ----------
    tables : dict
        Cohort name -> :func:`cohort_stats` frame.
    by_group : tuple of str
        Statistics also reported per (group, phase).
    """
    names = list(tables)
    lines = ["| statistic | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label in TABLE_ROWS:
        cells = [_fmt(t[key]) if key in t else "-" for t in tables.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for key in by_group:
        label = dict(TABLE_ROWS)[key]
        groups = sorted(set().union(*(set(t["group"]) for t in tables.values())))
        for group in groups:
            for phase in PHASES:
                cells = []
                for t in tables.values():
                    sel = t[(t["group"] == group) & (t["phase"] == phase)]
                    cells.append(_fmt(sel[key]) if key in sel else "-")
                lines.append(f"| {label}, {group} {phase} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tedsnet.data.stats NAME=ROOT [NAME=ROOT ...]``: print the comparison table of the cohorts."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any("=" not in a for a in args):
        print("usage: python -m tedsnet.data.stats NAME=COHORT_ROOT [NAME=COHORT_ROOT ...]", file=sys.stderr)
        return 2
    tables = {name: cohort_stats(root) for name, root in (a.split("=", 1) for a in args)}
    print(comparison_table(tables), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
