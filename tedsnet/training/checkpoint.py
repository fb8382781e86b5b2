"""The checkpoint file: its format, how it is read, and how a model is rebuilt from it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tedsnet.device import resolve_device
from tedsnet.experiments import EXPERIMENTS, Experiment, get_experiment

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "load_checkpoint", "read_checkpoint"]

#: Value of the ``"format"`` key of every checkpoint the suite writes.
CHECKPOINT_FORMAT = "tedsnet-checkpoint"
#: Version of the checkpoint layout.
CHECKPOINT_VERSION = 1


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`tedsnet.training.engine.train` (CPU tensors; no code is executed).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not readable by ``torch.load(weights_only=True)`` or is not a tedsnet checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; pass the best.pt of a trained model directory."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - every unreadable file gets the same clear message
        raise ValueError(
            f"checkpoint {path} is not readable as a tedsnet checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); pass the best.pt written by tedsnet training."
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint {path} is not a tedsnet checkpoint (format {CHECKPOINT_FORMAT!r} missing); pass the best.pt "
            "written by tedsnet training."
        )
    return checkpoint


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, Experiment]:
    """Rebuild the model of a checkpoint and load its weights.

    The experiment is rebuilt from the registry (``get_experiment(base, **overrides)``) and the state dict is loaded
    strictly, so a checkpoint whose architecture no longer matches its registry entry fails loudly.

    Parameters
    ----------
    path : path
        ``best.pt`` or ``last.pt`` of a model directory.
    device : str
        Where to put the model (``"auto"``, ``"cpu"``, ``"cuda"``).

    Returns
    -------
    (nn.Module, Experiment)
        The model in eval mode, and its experiment.
    """
    checkpoint = read_checkpoint(path)
    info = checkpoint.get("experiment") or {}
    base, overrides = info.get("base"), dict(info.get("overrides") or {})
    if base not in EXPERIMENTS:
        raise ValueError(
            f"checkpoint {path} was trained for experiment {info.get('name')!r} (base {base!r}), which is not in "
            f"the registry {sorted(EXPERIMENTS)}; register it (tedsnet.experiments.register) before loading."
        )
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    experiment = get_experiment(base, **overrides)
    stored = checkpoint.get("experiment_config")
    if stored is not None and stored != experiment.config():
        warnings.warn(
            f"checkpoint {path}: the registry entry of {experiment.name!r} changed since training "
            f"(stored {stored}, now {experiment.config()}); loading the weights into the current definition.",
            stacklevel=2,
        )
    model = experiment.factory(**experiment.model_kwargs)
    try:
        model.load_state_dict(checkpoint["model_state"])
    except (RuntimeError, KeyError) as error:
        raise ValueError(
            f"checkpoint {path}: weights do not fit experiment {experiment.name!r}: {str(error).splitlines()[0]}"
        ) from error
    model.to(resolve_device(device)).eval()
    return model, experiment
