"""Evaluation metrics of the paper's Table 1: Dice, Hausdorff and surface distances, Betti numbers, Jacobians.

All functions take numpy arrays (torch tensors are converted) of one 2-D case. ``docs/protocol.md`` states which
variant of each metric the tables report.
"""

from __future__ import annotations

from collections.abc import Sequence

import gudhi
import numpy as np
from scipy import ndimage

__all__ = [
    "JACOBIAN_SLAB_ROWS",
    "RING_BETTI",
    "as_mask",
    "as_mask_pair",
    "average_surface_distance",
    "betti_numbers",
    "dice",
    "has_ring_topology",
    "hausdorff",
    "jacobian_determinant",
    "jacobian_determinant_central",
    "nonpositive_jacobian_percent",
    "nonpositive_jacobian_percents",
    "surface_distances",
]

#: Betti numbers (b0, b1) of one ring: one component, one hole.
RING_BETTI = (1, 1)


def as_mask(mask, name: str = "mask") -> np.ndarray:
    """``mask`` (numpy or torch) as a bool (H, W) array; ValueError if it is not 2-D."""
    arr = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask (H, W), got shape {arr.shape}.")
    return arr.astype(bool)


def as_mask_pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool arrays; ValueError unless they are 2-D and of the same shape."""
    pred, ref = as_mask(pred, "pred"), as_mask(ref, "ref")
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref must have the same shape, got {pred.shape} and {ref.shape}.")
    return pred, ref


def dice(pred, ref) -> float:
    """Dice overlap ``2 |A & B| / (|A| + |B|)`` of two binary masks (H, W); 1.0 when both are empty."""
    pred, ref = as_mask_pair(pred, ref)
    total = pred.sum() + ref.sum()
    if total == 0:
        return 1.0
    return float(2.0 * np.logical_and(pred, ref).sum() / total)


def _surface_distances(a: np.ndarray, b: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Distances (mm or px) from every border pixel of ``a`` to the nearest border pixel of ``b``."""
    structure = ndimage.generate_binary_structure(2, 1)
    border_a = a ^ ndimage.binary_erosion(a, structure=structure, iterations=1)
    border_b = b ^ ndimage.binary_erosion(b, structure=structure, iterations=1)
    distance_to_b = ndimage.distance_transform_edt(~border_b, sampling=spacing)
    return distance_to_b[border_a]


def _checked_spacing(spacing: Sequence[float] | None, caller: str) -> tuple[float, float]:
    """``spacing`` as (row, col) floats, (1, 1) when None; ValueError unless two positive numbers."""
    if spacing is None:
        return (1.0, 1.0)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 2 or min(spacing) <= 0:
        raise ValueError(f"{caller}: spacing must be two positive numbers (row_mm, col_mm), got {spacing}.")
    return spacing


def _both_directions(
    pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, float]
) -> tuple[np.ndarray, ...]:
    """(pred border -> ref border, ref border -> pred border) distances of two non-empty masks."""
    return _surface_distances(pred, ref, spacing), _surface_distances(ref, pred, spacing)


def _hausdorff_of(forward: np.ndarray, backward: np.ndarray, percentile: float | None) -> float:
    """The maximum of both directions' distances, or their pooled ``percentile``."""
    if percentile is None:
        return float(max(forward.max(), backward.max()))
    return float(np.percentile(np.hstack((forward, backward)), percentile))


def _assd_of(forward: np.ndarray, backward: np.ndarray) -> float:
    """The mean of both directions' distances pooled (medpy's ``assd`` since 0.5)."""
    return float(np.concatenate((forward, backward)).mean())


def hausdorff(pred, ref, spacing: Sequence[float] | None = None, percentile: float | None = None) -> float:
    """Symmetric Hausdorff distance between the borders of two binary masks (medpy's definition).

    Parameters
    ----------
    pred, ref : array (H, W)
        Binary masks.
    spacing : (row_mm, col_mm), optional
        Pixel spacing; the result is in mm when given, in pixels otherwise.
    percentile : float, optional
        None: the maximum (HD). 95: HD95, the 95th percentile of the distances of both directions pooled.

    Returns
    -------
    float
        Distance, or NaN when either mask is empty.
    """
    pred, ref = as_mask_pair(pred, ref)
    spacing = _checked_spacing(spacing, "hausdorff")
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"hausdorff: percentile must be in [0, 100] or None, got {percentile}.")
    if not pred.any() or not ref.any():
        return float("nan")
    return _hausdorff_of(*_both_directions(pred, ref, spacing), percentile)


def average_surface_distance(pred, ref, spacing: Sequence[float] | None = None) -> float:
    """Average symmetric surface distance (ASSD) between the borders of two binary masks (medpy's ``assd``).

    The mean of the distances from every border pixel of ``pred`` to the border of ``ref`` and from every border
    pixel of ``ref`` to the border of ``pred``, pooled (medpy 0.5; medpy 0.4 averaged the two directions' means,
    which differs when the borders differ in length). Borders are the pixels that a 4-connected erosion removes,
    as in :func:`hausdorff`.

    Parameters
    ----------
    pred, ref : array (H, W)
        Binary masks.
    spacing : (row_mm, col_mm), optional
        Pixel spacing; the result is in mm when given, in pixels otherwise.

    Returns
    -------
    float
        Distance, 0.0 for identical masks, NaN when either mask is empty.

    Raises
    ------
    ValueError
        If the masks are not 2-D of one shape, or the spacing is not two positive numbers.

    Examples
    --------
    >>> square = np.zeros((8, 8), bool); square[2:6, 2:6] = True
    >>> average_surface_distance(square, np.roll(square, 1, axis=1))
    0.5
    """
    pred, ref = as_mask_pair(pred, ref)
    spacing = _checked_spacing(spacing, "average_surface_distance")
    if not pred.any() or not ref.any():
        return float("nan")
    return _assd_of(*_both_directions(pred, ref, spacing))


def surface_distances(pred, ref, spacing: Sequence[float] | None = None) -> tuple[float, float, float]:
    """(HD, HD95, ASSD) of two binary masks from one pair of distance transforms.

    Equal to ``hausdorff(pred, ref, spacing)``, ``hausdorff(pred, ref, spacing, percentile=95)`` and
    ``average_surface_distance(pred, ref, spacing)`` (the same operations on the same distances), at the cost of one.

    Parameters
    ----------
    pred, ref : array (H, W)
        Binary masks.
    spacing : (row_mm, col_mm), optional
        Pixel spacing; the results are in mm when given, in pixels otherwise.

    Returns
    -------
    (float, float, float)
        All NaN when either mask is empty.
    """
    pred, ref = as_mask_pair(pred, ref)
    spacing = _checked_spacing(spacing, "surface_distances")
    if not pred.any() or not ref.any():
        return (float("nan"),) * 3
    forward, backward = _both_directions(pred, ref, spacing)
    return (
        _hausdorff_of(forward, backward, None),
        _hausdorff_of(forward, backward, 95),
        _assd_of(forward, backward),
    )


def betti_numbers(mask, connectivity: int = 4) -> tuple[int, int]:
    """Betti numbers (b0, b1) of a binary mask: connected components and holes.

    Parameters
    ----------
    mask : array (H, W)
        Binary mask.
    connectivity : {4, 8}
        Foreground connectivity. 4 (the suite's protocol): foreground pixels as vertices of a cubical complex
        (``gudhi.CubicalComplex(vertices=...)``), so components join along edges and the background is
        8-connected. 8: foreground pixels as top-dimensional cells, so components also join at corners and the
        background is 4-connected.

    Returns
    -------
    (int, int)
        (b0, b1). One ring is (1, 1).
    """
    mask = as_mask(mask, "mask")
    if connectivity not in (4, 8):
        raise ValueError(f"betti_numbers: connectivity must be 4 or 8, got {connectivity}.")
    if not mask.any():
        return (0, 0)
    # Betti numbers are intrinsic to the foreground: crop to its bounding box (one background pixel of margin)
    # so the complex stays small. Foreground at filtration 0, background at 1: the sublevel set at 0 is the
    # foreground complex.
    rows, cols = np.nonzero(mask)
    mask = np.pad(mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1], 1)
    values = np.where(mask, 0.0, 1.0)
    if connectivity == 4:
        complex_ = gudhi.CubicalComplex(vertices=values)
    else:
        complex_ = gudhi.CubicalComplex(top_dimensional_cells=values)
    complex_.compute_persistence()
    b0, b1 = complex_.persistent_betti_numbers(0.0, 0.0)[:2]
    return int(b0), int(b1)


def has_ring_topology(mask, connectivity: int = 4) -> bool:
    """True when the mask is exactly one ring: Betti numbers (1, 1)."""
    return betti_numbers(mask, connectivity) == RING_BETTI


def _check_field_shape(arr: np.ndarray) -> None:
    """Raise ValueError unless ``arr`` is a (2, H, W) displacement with H, W >= 2."""
    if arr.ndim != 3 or arr.shape[0] != 2 or min(arr.shape[1:]) < 2:
        raise ValueError(
            f"disp must be a 2-D displacement of shape (2, H, W) with H, W >= 2 (voxels), got {arr.shape}."
        )


def _as_field(disp) -> np.ndarray:
    """``disp`` (numpy or torch) as a float64 (2, H, W) array."""
    arr = np.asarray(disp.detach().cpu() if hasattr(disp, "detach") else disp, dtype=np.float64)
    _check_field_shape(arr)
    return arr


def _forward_differences(u: np.ndarray) -> tuple[np.ndarray, ...]:
    """(d0/drow, d0/dcol, d1/drow, d1/dcol) of a (2, H, W) field by forward differences, each (H-1, W-1), fresh."""
    u0, u1 = u[0], u[1]
    return (
        u0[1:, :-1] - u0[:-1, :-1],
        u0[:-1, 1:] - u0[:-1, :-1],
        u1[1:, :-1] - u1[:-1, :-1],
        u1[:-1, 1:] - u1[:-1, :-1],
    )


def _central_differences(u: np.ndarray) -> tuple[np.ndarray, ...]:
    """The same derivatives by central differences (one-sided at the borders), each (H, W), fresh."""
    return _central_differences_of_rows(u, 0, u.shape[1])


def _determinant(d0_dr, d0_dc, d1_dr, d1_dc) -> np.ndarray:
    """``det(I + Du) = (1 + d0/drow)(1 + d1/dcol) - d0/dcol d1/drow``."""
    return (1.0 + d0_dr) * (1.0 + d1_dc) - d0_dc * d1_dr


def jacobian_determinant(disp) -> np.ndarray:
    """Jacobian determinant of ``x -> x + u(x)`` with forward differences (the primary measure).

    Parameters
    ----------
    disp : array (2, H, W)
        Displacement in voxels; channel 0 along rows, 1 along columns.

    Returns
    -------
    np.ndarray
        (H-1, W-1): identity 1, a uniform 1.5x scaling 2.25, a fold negative.
    """
    return _determinant(*_forward_differences(_as_field(disp)))


def _central_difference(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.gradient(a, axis=axis)`` with unit spacing and first-order edges (the same numbers, fewer copies)."""
    out = np.empty_like(a)
    n = a.shape[axis]

    def part(start, stop):
        index = [slice(None)] * a.ndim
        index[axis] = slice(start, stop)
        return tuple(index)

    np.subtract(a[part(2, n)], a[part(0, n - 2)], out=out[part(1, n - 1)])
    out[part(1, n - 1)] *= 0.5
    np.subtract(a[part(1, 2)], a[part(0, 1)], out=out[part(0, 1)])
    np.subtract(a[part(n - 1, n)], a[part(n - 2, n - 1)], out=out[part(n - 1, n)])
    return out


def jacobian_determinant_central(disp) -> np.ndarray:
    """Jacobian determinant with central differences (one-sided at the borders), as voxelmorph computes it.

    Parameters
    ----------
    disp : array (2, H, W)
        Displacement in voxels.

    Returns
    -------
    np.ndarray
        (H, W).
    """
    return _determinant(*_central_differences(_as_field(disp)))


def nonpositive_jacobian_percent(disp, central: bool = False) -> float:
    """Percentage of pixels whose Jacobian determinant is <= 0 (forward differences unless ``central``)."""
    det = jacobian_determinant_central(disp) if central else jacobian_determinant(disp)
    return float(100.0 * np.count_nonzero(det <= 0) / det.size)


#: Rows of the field per slab in :func:`nonpositive_jacobian_percents`: at 416 columns its float64 temporaries stay
#: under glibc's default 128 KiB mmap threshold, so the allocator recycles them instead of mapping fresh pages.
JACOBIAN_SLAB_ROWS = 32


def _count_nonpositive_inplace(d0_dr, d0_dc, d1_dr, d1_dc) -> int:
    """How many ``(1 + d0_dr)(1 + d1_dc) - d0_dc d1_dr <= 0``, computed in place in the (fresh) arrays given.

    The same operations in the same order as :func:`_determinant` (bit-identical determinants), without a new
    array per operation.
    """
    np.add(d0_dr, 1.0, out=d0_dr)
    np.add(d1_dc, 1.0, out=d1_dc)
    np.multiply(d0_dr, d1_dc, out=d0_dr)
    np.multiply(d0_dc, d1_dr, out=d0_dc)
    np.subtract(d0_dr, d0_dc, out=d0_dr)
    return int(np.count_nonzero(d0_dr <= 0))


def _central_differences_of_rows(u: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, ...]:
    """Central differences of ``u`` (float64) on rows ``start:stop``, reading one halo row each side; fresh arrays."""
    lo, hi = max(start - 1, 0), min(stop + 1, u.shape[1])
    slab = u[:, lo:hi].astype(np.float64, copy=False)
    rows = slice(start - lo, stop - lo)
    return tuple(
        _central_difference(slab[c], 0)[rows] if axis == 0 else _central_difference(slab[c, rows], 1)
        for c in (0, 1)
        for axis in (0, 1)
    )


def nonpositive_jacobian_percents(disp) -> tuple[float, float]:
    """(forward, central) percentages of non-positive Jacobian determinants of ``x -> x + u(x)``.

    Equal to ``nonpositive_jacobian_percent(disp)`` and ``nonpositive_jacobian_percent(disp, central=True)``
    (tested): the same float64 operations, computed in place on slabs of :data:`JACOBIAN_SLAB_ROWS` rows (the
    Jacobians dominate the per-case evaluation time, and small temporaries are cheap to allocate).

    Parameters
    ----------
    disp : array (2, H, W)
        Displacement in voxels; channel 0 along rows, 1 along columns.
    """
    u = np.asarray(disp.detach().cpu() if hasattr(disp, "detach") else disp)
    _check_field_shape(u)
    height, width = u.shape[1:]
    forward = central = 0
    for start in range(0, height, JACOBIAN_SLAB_ROWS):
        stop = min(start + JACOBIAN_SLAB_ROWS, height)
        if start < height - 1:  # forward differences of rows start .. min(stop, H - 1) - 1
            slab = u[:, start : min(stop, height - 1) + 1].astype(np.float64, copy=False)
            forward += _count_nonpositive_inplace(*_forward_differences(slab))
        central += _count_nonpositive_inplace(*_central_differences_of_rows(u, start, stop))
    return 100.0 * forward / ((height - 1) * (width - 1)), 100.0 * central / (height * width)
