"""Inference: checkpoints -> models, images -> soft/binary predictions and fields, and the predictions file.

Predictions file (one ``.npz`` per experiment, the contract's format): ``case_id`` (N,) str, ``soft`` float32
(N, H, W) in [0, 1], ``binary`` uint8 (N, H, W) = ``soft >= threshold``, ``threshold`` float scalar, and
``disp_bulk`` / ``disp_ft`` float32 (N, 2, h, w) in voxels of their grid when the model has that field. Read it
with :func:`load_predictions` (no pickle).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from tedsnet.device import resolve_device
from tedsnet.io import atomic_path
from tedsnet.network.outputs import FIELD_NAMES, THRESHOLD

__all__ = [
    "Predictions",
    "binarise",
    "load_predictions",
    "predict",
    "save_predictions",
]


class Predictions(NamedTuple):
    """Predictions of one model on N images (the predictions file, field for field).

    Attributes
    ----------
    case_id : np.ndarray
        (N,) str.
    soft : np.ndarray
        float32 (N, H, W) in [0, 1].
    binary : np.ndarray
        uint8 (N, H, W) in {0, 1}: ``soft >= threshold``.
    threshold : float
    disp_bulk, disp_ft : np.ndarray or None
        float32 (N, 2, h, w) displacement in voxels of its own grid (channel i = array axis i), or None when the
        model has no such field (U-Nets: neither; VoxelMorph: ft only).
    """

    case_id: np.ndarray
    soft: np.ndarray
    binary: np.ndarray
    threshold: float
    disp_bulk: np.ndarray | None = None
    disp_ft: np.ndarray | None = None

    @property
    def displacements(self) -> dict[str, np.ndarray]:
        """The fields present, ``{"bulk": ..., "ft": ...}``."""
        fields = {"bulk": self.disp_bulk, "ft": self.disp_ft}
        return {name: value for name, value in fields.items() if value is not None}


def binarise(soft: np.ndarray | Tensor, threshold: float) -> np.ndarray:
    """``soft >= threshold`` as uint8 (the suite's one binarisation rule)."""
    if isinstance(soft, Tensor):
        soft = soft.detach().cpu().numpy()
    return (np.asarray(soft) >= threshold).astype(np.uint8)


def _prior_tensor(prior: Any, size: tuple[int, int], device: torch.device) -> Tensor:
    """The prior as a float32 (1, 1, H, W) tensor on ``device``; ValueError unless its H x W is ``size``."""
    tensor = torch.as_tensor(np.asarray(prior.detach().cpu() if isinstance(prior, Tensor) else prior))
    if tensor.dim() == 2:
        tensor = tensor[None, None]
    if tensor.dim() != 4 or tensor.shape[:2] != (1, 1) or tuple(tensor.shape[-2:]) != size:
        raise ValueError(
            f"predict: prior must be (H, W) or (1, 1, H, W) with H x W = {size} (the images'), got "
            f"{tuple(tensor.shape)}."
        )
    return tensor.to(device=device, dtype=torch.float32)


@torch.no_grad()
def predict(
    model: nn.Module,
    images: np.ndarray,
    prior: np.ndarray | Tensor,
    batch_size: int = 5,
    device: str | torch.device = "auto",
    threshold: float = THRESHOLD,
    *,
    case_id: Sequence[str] | None = None,
    keep_fields: bool = True,
    progress: bool = False,
) -> Predictions:
    """Run a model in eval mode on a stack of images.

    Parameters
    ----------
    model : nn.Module
        ``forward(image, prior) -> SegmentationOutput``.
    images : np.ndarray
        float32 (N, H, W), normalised as in training.
    prior : array or Tensor
        Ring prior, bool/float (H, W) or (1, 1, H, W) (e.g. ``experiment.prior((H, W))``).
    batch_size : int
        Images per forward pass.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
    threshold : float
        Binarisation threshold (``soft >= threshold``; paper code: 0.3).
    case_id : sequence of str, optional
        (N,) identifiers; default ``"0", "1", ...``.
    keep_fields : bool
        Return the displacement fields (float32 (N, 2, h, w) each: ``8 * h * w`` bytes per image and field).
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    Predictions

    Raises
    ------
    ValueError
        If the images are not (N, H, W) with N >= 1, ``batch_size`` is not a positive integer, the threshold is not
        in (0, 1), ``case_id`` has not N entries, the prior does not match H x W, or the model returns a field
        other than ``"bulk"``/``"ft"``.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"predict: images must be (N, H, W) with N >= 1, got {images.shape}.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"predict: batch_size must be a positive integer, got {batch_size!r}.")
    if not 0 < threshold < 1:
        raise ValueError(f"predict: threshold must be in (0, 1), got {threshold!r}.")
    n = images.shape[0]
    ids = np.asarray([str(i) for i in range(n)] if case_id is None else [str(c) for c in case_id])
    if ids.shape != (n,):
        raise ValueError(f"predict: case_id must have one entry per image ({n}), got {ids.shape[0]}.")
    device = resolve_device(device)
    model = model.to(device)
    was_training = model.training
    model.eval()
    prior_t = _prior_tensor(prior, images.shape[1:], device)
    try:
        soft, fields = _predict_batches(model, images, prior_t, int(batch_size), keep_fields, progress)
    finally:
        model.train(was_training)
    return Predictions(
        case_id=ids,
        soft=soft,
        binary=binarise(soft, threshold),
        threshold=float(threshold),
        disp_bulk=fields.get("bulk"),
        disp_ft=fields.get("ft"),
    )


def _predict_batches(
    model: nn.Module, images: np.ndarray, prior: Tensor, batch_size: int, keep_fields: bool, progress: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Soft maps (N, H, W) and, with ``keep_fields``, the fields {name: (N, 2, h, w)} of ``model`` batch by batch."""
    n = images.shape[0]
    device = prior.device
    soft = np.empty(images.shape, dtype=np.float32)
    fields: dict[str, np.ndarray] = {}
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="predict", unit="batch", leave=False)
    for start in starts:
        stop = min(start + batch_size, n)
        x = torch.from_numpy(images[start:stop]).to(device)[:, None]
        output = model(x, prior)
        soft[start:stop] = output.segmentation[:, 0].float().cpu().numpy()
        if keep_fields:
            for name, disp in output.displacements.items():
                if name not in FIELD_NAMES:
                    raise ValueError(
                        f"predict: the model returned an unknown field {name!r}; expected {FIELD_NAMES}."
                    )
                if name not in fields:
                    fields[name] = np.empty((n, *disp.shape[1:]), dtype=np.float32)
                fields[name][start:stop] = disp.float().cpu().numpy()
    return soft, fields


def save_predictions(path: str | os.PathLike, predictions: Predictions, *, compress: bool = False) -> Path:
    """Write predictions to one ``.npz`` atomically (tmp file + rename).

    ``compress=False`` (default) uses ``np.savez``: the soft maps and fields are float32 noise-like data that
    zlib shrinks little at a large time cost; ``compress=True`` uses ``np.savez_compressed``.

    Parameters
    ----------
    path : str or PathLike
        Destination, ending in ``.npz``; the parent folder is created.
    predictions : Predictions
        What to write (see the module docstring for the arrays and their dtypes).
    compress : bool
        Compress the arrays with zlib.

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    ValueError
        If the path does not end in ``.npz`` or the arrays disagree in N or are not (N, H, W).
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"save_predictions: path must end in .npz, got {path}.")
    n = len(predictions.case_id)
    arrays: dict[str, np.ndarray] = {
        "case_id": np.asarray(predictions.case_id).astype(str),
        "soft": np.asarray(predictions.soft, dtype=np.float32),
        "binary": np.asarray(predictions.binary, dtype=np.uint8),
        "threshold": np.asarray(float(predictions.threshold)),
    }
    for name in FIELD_NAMES:
        value = getattr(predictions, f"disp_{name}")
        if value is not None:
            arrays[f"disp_{name}"] = np.asarray(value, dtype=np.float32)
    for key, value in arrays.items():
        if key != "threshold" and value.shape[0] != n:
            raise ValueError(f"save_predictions: {key} has {value.shape[0]} entries, case_id has {n}.")
    if arrays["soft"].shape != arrays["binary"].shape or arrays["soft"].ndim != 3:
        raise ValueError(
            f"save_predictions: soft and binary must both be (N, H, W), got {arrays['soft'].shape} and "
            f"{arrays['binary'].shape}."
        )
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        (np.savez_compressed if compress else np.savez)(handle, **arrays)
    return path


def load_predictions(path: str | os.PathLike) -> Predictions:
    """Read a predictions ``.npz`` written by :func:`save_predictions` (no pickle).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is unreadable or lacks ``case_id``, ``soft``, ``binary`` or ``threshold``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_predictions: no predictions file at {path}.")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"case_id", "soft", "binary", "threshold"} - set(data.files)
            if missing:
                raise ValueError(
                    f"load_predictions: {path} lacks {sorted(missing)}; is it a predictions file "
                    "(written by tedsnet.inference.predict.save_predictions)?"
                )
            return Predictions(
                case_id=data["case_id"].astype(str),
                soft=data["soft"],
                binary=data["binary"],
                threshold=float(data["threshold"]),
                disp_bulk=data["disp_bulk"] if "disp_bulk" in data.files else None,
                disp_ft=data["disp_ft"] if "disp_ft" in data.files else None,
            )
    except (OSError, EOFError) as error:
        raise ValueError(f"load_predictions: cannot read {path}: {error}.") from error
