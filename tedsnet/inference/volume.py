"""Segmenting a whole short-axis volume slice by slice, with each slice's topology checked.

A slice the model cannot be given faithfully is refused, never segmented: one with a NaN or infinite voxel
(``nonfinite_input``) or one whose intensities carry nothing to normalise (``empty_input``: the 1st and 99th
percentiles of its field of view are equal, e.g. an all-zero slice). Normalisation would turn either into a blank
image, on which a prior-based model returns its undeformed prior: a confident ring for a slice it never read.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from tedsnet.data.slices import CLIP_PERCENTILES, crop_window, normalise_intensity
from tedsnet.evaluation.metrics import RING_BETTI, betti_numbers, nonpositive_jacobian_percent
from tedsnet.experiments import Experiment
from tedsnet.inference.predict import binarise, predict
from tedsnet.network.outputs import FIELD_NAMES, THRESHOLD

__all__ = [
    "SLICE_COLUMNS",
    "SLICE_OK",
    "SLICE_REFUSALS",
    "SPACING_TOLERANCE",
    "VolumeSegmentation",
    "prepare_volume",
    "segment_volume",
    "slice_statuses",
    "spacing_problem",
]

#: ``status`` of a slice that was segmented.
SLICE_OK = "ok"
#: ``status`` of each kind of refused slice, and what it means.
SLICE_REFUSALS = {
    "nonfinite_input": "NaN or infinite voxels",
    "empty_input": "no intensity contrast: its 1st and 99th percentiles are equal, e.g. all zeros",
}
#: Relative margin around the training data's pixel-spacing range within which an input's spacing is accepted:
#: [min / (1 + t), max * (1 + t)].
SPACING_TOLERANCE = 0.2

#: Columns of the per-slice table of :func:`segment_volume` (and of ``tedsnet segment --csv``).
SLICE_COLUMNS = (
    "z",
    "status",
    "b0",
    "b1",
    "correct_topology",
    "foreground_px",
    "nonpos_jac_bulk_pct",
    "nonpos_jac_ft_pct",
)


class VolumeSegmentation(NamedTuple):
    """Result of :func:`segment_volume`.

    Attributes
    ----------
    mask : np.ndarray
        uint8 (X, Y, Z) in {0, 1}, the input's in-plane size (the crop undone; outside the window 0).
    soft : np.ndarray
        float32 (X, Y, Z) in [0, 1], likewise.
    table : pandas.DataFrame
        One row per z-slice, columns :data:`SLICE_COLUMNS`: status (:data:`SLICE_OK` or a key of
        :data:`SLICE_REFUSALS`), Betti numbers of the slice's mask (4-connected foreground), correct_topology =
        (b0, b1) == (1, 1), foreground pixels, and the % non-positive Jacobian determinants (forward differences)
        of each field (NaN when the model has no such field). A refused slice has mask 0, foreground_px 0 and the
        other columns empty (missing values).
    """

    mask: np.ndarray
    soft: np.ndarray
    table: pd.DataFrame


def prepare_volume(volume: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Every z-slice centre-cropped/zero-padded to ``size`` and normalised as in training.

    Uses the data layer's rules (:func:`tedsnet.data.slices.crop_window` and
    :func:`tedsnet.data.slices.normalise_intensity`, percentiles of the cropped field of view, padding 0), exactly
    as :func:`tedsnet.data.slices.extract_slices` does.

    Parameters
    ----------
    volume : np.ndarray
        (X, Y, Z) short-axis stack, any real dtype.
    size : (H, W)
        The model's input size in pixels.

    Returns
    -------
    np.ndarray
        float32 (Z, H, W).
    """
    src0, dst0, _ = crop_window(volume.shape[0], size[0])
    src1, dst1, _ = crop_window(volume.shape[1], size[1])
    images = np.zeros((volume.shape[2], *size), dtype=np.float32)
    for z in range(volume.shape[2]):
        images[z][dst0, dst1] = normalise_intensity(volume[src0, src1, z])
    return images


def slice_statuses(volume: np.ndarray, size: tuple[int, int]) -> list[str]:
    """Whether each z-slice can be segmented: :data:`SLICE_OK` or the key of :data:`SLICE_REFUSALS` that applies.

    Parameters
    ----------
    volume : np.ndarray
        (X, Y, Z) short-axis stack, any real dtype.
    size : (H, W)
        The model's input size; the contrast is judged on the field of view cropped to it, as normalisation is.

    Returns
    -------
    list of str
        One status per slice: ``"nonfinite_input"`` when any voxel of the slice is NaN or infinite,
        ``"empty_input"`` when the 1st and 99th percentiles of its cropped field of view are equal, else ``"ok"``.
    """
    src0, _, _ = crop_window(volume.shape[0], size[0])
    src1, _, _ = crop_window(volume.shape[1], size[1])
    statuses = []
    for z in range(volume.shape[2]):
        image = np.asarray(volume[:, :, z], dtype=np.float32)  # the precision normalisation works in
        if not np.isfinite(image).all():
            statuses.append("nonfinite_input")
            continue
        lo, hi = np.percentile(image[src0, src1], CLIP_PERCENTILES)
        statuses.append(SLICE_OK if hi > lo else "empty_input")
    return statuses


def spacing_problem(
    spacing: tuple[float, float], trained: dict[str, float], tolerance: float = SPACING_TOLERANCE
) -> str | None:
    """Why an input's in-plane pixel spacing does not suit a model, or None when it does.

    Slices are cropped or padded to the training size, never resampled (as in training), so a model sees anatomy at
    the scale of its input's pixels; it knows only the scales it was trained on.

    Parameters
    ----------
    spacing : (row_mm, col_mm)
        The input's in-plane pixel spacing (NIfTI header zooms), mm.
    trained : dict
        ``{"min", "median", "max"}`` of the training images' in-plane spacing, mm (a checkpoint's
        ``pixel_spacing_mm``).
    tolerance : float
        Relative margin: accepted spacings lie in ``[min / (1 + tolerance), max * (1 + tolerance)]``.

    Returns
    -------
    str or None
        A sentence naming the input's spacing, the training range and the accepted range; None when both spacings
        are in the accepted range.
    """
    low, high = trained["min"] / (1 + tolerance), trained["max"] * (1 + tolerance)
    if all(math.isfinite(s) and low <= s <= high for s in spacing):
        return None
    shown = " x ".join(f"{s:g}" for s in spacing)
    return (
        f"pixel spacing {shown} mm is outside the range the model was trained on ({trained['min']:.3g} to "
        f"{trained['max']:.3g} mm, median {trained['median']:.3g}; accepted with a {tolerance:.0%} margin: "
        f"{low:.3g} to {high:.3g} mm)"
    )


def _slice_row(z: int, status: str, mask: np.ndarray, fields: dict[str, np.ndarray | None]) -> dict:
    """The table row of slice ``z``: topology and Jacobians of its mask and fields, or only its status when
    refused."""
    row: dict = {"z": z, "status": status, "foreground_px": int(mask.sum())}
    if status != SLICE_OK:
        return row
    b0, b1 = betti_numbers(mask)
    row.update(b0=b0, b1=b1, correct_topology=(b0, b1) == RING_BETTI)
    for name, field in fields.items():
        row[f"nonpos_jac_{name}_pct"] = float("nan") if field is None else nonpositive_jacobian_percent(field)
    return row


def _slice_table(rows: list[dict]) -> pd.DataFrame:
    """The per-slice table with nullable integer and boolean columns (a refused slice's cells are missing)."""
    table = pd.DataFrame(rows, columns=list(SLICE_COLUMNS))
    return table.astype(
        {"b0": "Int64", "b1": "Int64", "correct_topology": "boolean", "foreground_px": "int64"}
    )


def segment_volume(
    model: nn.Module,
    experiment: Experiment,
    volume: np.ndarray,
    *,
    image_size: tuple[int, int] = (144, 208),
    threshold: float = THRESHOLD,
    batch_size: int = 5,
    device: str | torch.device = "auto",
) -> VolumeSegmentation:
    """Segment every z-slice of a short-axis volume and check each slice's topology.

    Each slice is cropped/padded to ``image_size`` and normalised (:func:`prepare_volume`), segmented with the
    experiment's prior (:func:`predict`), and put back at its place in the original in-plane grid. Slices that
    :func:`slice_statuses` refuses are not segmented: their mask is 0 and their row says why.

    Parameters
    ----------
    model : nn.Module
        A trained model, from :func:`tedsnet.training.checkpoint.load_checkpoint`.
    experiment : Experiment
        Its experiment (gives the prior), from the same call.
    volume : np.ndarray
        (X, Y, Z) real-valued stack (array axes as stored, like the training data).
    image_size : (H, W)
        The training size (a checkpoint's ``image_size``).
    threshold : float
        Binarisation threshold (``soft >= threshold``).
    batch_size : int
        Slices per forward pass.
    device : str or torch.device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    VolumeSegmentation

    Raises
    ------
    ValueError
        If the volume is not a 3-D real-valued array with at least one voxel, if every slice is refused (the
        message counts each reason), or if :func:`~tedsnet.inference.predict.predict` rejects an argument.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise ValueError(f"segment_volume: volume must be 3-D (X, Y, Z), got shape {volume.shape}.")
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
        raise ValueError(f"segment_volume: volume must be real-valued, got dtype {volume.dtype}.")
    size = (int(image_size[0]), int(image_size[1]))
    statuses = slice_statuses(volume, size)
    ok = [z for z, status in enumerate(statuses) if status == SLICE_OK]
    if not ok:
        counts = ", ".join(
            f"{statuses.count(key)} {key} ({why})" for key, why in SLICE_REFUSALS.items() if key in statuses
        )
        raise ValueError(
            f"segment_volume: no slice can be segmented: all {len(statuses)} are refused: {counts}."
        )
    images = prepare_volume(volume[:, :, ok], size)
    predictions = predict(
        model, images, experiment.prior(size), batch_size=batch_size, device=device, threshold=threshold
    )
    src0, dst0, _ = crop_window(volume.shape[0], size[0])
    src1, dst1, _ = crop_window(volume.shape[1], size[1])
    soft = np.zeros(volume.shape, dtype=np.float32)
    soft[src0, src1, ok] = np.moveaxis(predictions.soft[:, dst0, dst1], 0, -1)
    mask = binarise(soft, threshold)
    position = {z: k for k, z in enumerate(ok)}
    rows = []
    for z, status in enumerate(statuses):
        fields = {name: predictions.displacements.get(name) for name in FIELD_NAMES}
        fields = {
            name: None if f is None or z not in position else f[position[z]] for name, f in fields.items()
        }
        rows.append(_slice_row(z, status, mask[:, :, z], fields))
    return VolumeSegmentation(mask=mask, soft=soft, table=_slice_table(rows))
