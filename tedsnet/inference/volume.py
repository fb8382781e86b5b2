"""Segmenting a whole short-axis volume slice by slice, with each slice's topology checked."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from tedsnet.data.slices import crop_window, normalise_intensity
from tedsnet.evaluation.metrics import RING_BETTI, betti_numbers, nonpositive_jacobian_percent
from tedsnet.experiments import Experiment
from tedsnet.inference.predict import binarise, predict
from tedsnet.network.outputs import FIELD_NAMES

__all__ = ["SLICE_COLUMNS", "VolumeSegmentation", "prepare_volume", "segment_volume"]


#: Columns of the per-slice table of :func:`segment_volume` (and of ``tedsnet segment --csv``).
SLICE_COLUMNS = (
    "z",
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
        One row per z-slice, columns :data:`SLICE_COLUMNS`: Betti numbers of the slice's mask (4-connected
        foreground), correct_topology = (b0, b1) == (1, 1), foreground pixels, and the % non-positive Jacobian
        determinants (forward differences) of each field (NaN when the model has no such field).
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


def segment_volume(
    model: nn.Module,
    experiment: Experiment,
    volume: np.ndarray,
    *,
    image_size: tuple[int, int] = (144, 208),
    threshold: float = 0.3,
    batch_size: int = 5,
    device: str | torch.device = "auto",
) -> VolumeSegmentation:
    """Segment every z-slice of a short-axis volume and check each slice's topology.

    Each slice is cropped/padded to ``image_size`` and normalised (:func:`prepare_volume`), segmented with the
    experiment's prior (:func:`predict`), and put back at its place in the original in-plane grid.

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
        If the volume is not a 3-D real-valued array (or :func:`~tedsnet.inference.predict.predict` rejects an
        argument).
    """
    volume = np.asarray(volume)
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise ValueError(f"segment_volume: volume must be 3-D (X, Y, Z), got shape {volume.shape}.")
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
        raise ValueError(f"segment_volume: volume must be real-valued, got dtype {volume.dtype}.")
    size = (int(image_size[0]), int(image_size[1]))
    images = prepare_volume(volume, size)
    predictions = predict(
        model, images, experiment.prior(size), batch_size=batch_size, device=device, threshold=threshold
    )
    src0, dst0, _ = crop_window(volume.shape[0], size[0])
    src1, dst1, _ = crop_window(volume.shape[1], size[1])
    soft = np.zeros(volume.shape, dtype=np.float32)
    soft[src0, src1, :] = np.moveaxis(predictions.soft[:, dst0, dst1], 0, -1)
    mask = binarise(soft, threshold)
    rows = []
    for z in range(volume.shape[2]):
        b0, b1 = betti_numbers(mask[:, :, z])
        row = {
            "z": z,
            "b0": b0,
            "b1": b1,
            "correct_topology": (b0, b1) == RING_BETTI,
            "foreground_px": int(mask[:, :, z].sum()),
        }
        for name in FIELD_NAMES:
            field = predictions.displacements.get(name)
            row[f"nonpos_jac_{name}_pct"] = (
                float("nan") if field is None else nonpositive_jacobian_percent(field[z])
            )
        rows.append(row)
    return VolumeSegmentation(mask=mask, soft=soft, table=pd.DataFrame(rows, columns=list(SLICE_COLUMNS)))
