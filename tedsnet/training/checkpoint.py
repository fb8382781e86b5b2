"""The checkpoint file: its format, the RNG state it carries, the checks before a run resumes from it, and how a
model is rebuilt from it.

A checkpoint is a ``dict`` written with ``torch.save`` and read with ``torch.load(weights_only=True)``: plain
containers, numbers, strings and CPU tensors only, so reading one executes no code. Its keys:

- ``format`` (:data:`CHECKPOINT_FORMAT`), ``version`` (:data:`CHECKPOINT_VERSION`), ``kind`` (``"best"`` or
  ``"last"``), ``torch_version``;
- ``experiment`` (``{"name", "base", "overrides"}``, enough to rebuild the model from the registry) and
  ``experiment_config`` (:meth:`tedsnet.experiments.Experiment.config` at training time);
- ``train_config`` (the training options and data fingerprints of the run), ``config_hash`` (:func:`config_hash`
  of both configurations: the identity a resumed run must match) and ``image_size`` (``[H, W]``);
- ``pixel_spacing_mm``: ``{"min", "median", "max"}`` in-plane pixel spacing of the training images in mm (from the
  prepared split's table), or ``None`` when training was given bare arrays; outside ``train_config``, so it does not
  change a run's identity (a checkpoint without the key reads as ``None``);
- ``model_state`` (the plain model's state dict), ``optimizer_state`` (``None`` in ``best.pt``), ``rng``
  (:func:`rng_states`);
- ``epoch``, ``step``, ``images_seen``, ``elapsed_s``, ``history`` (the rows of history.csv so far) and ``best``
  (``{"epoch", "val_dice"}``): a :class:`RunProgress`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tedsnet.device import resolve_device
from tedsnet.experiments import EXPERIMENTS, Experiment, get_experiment
from tedsnet.io import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "ResumeMismatchError",
    "RunProgress",
    "build_checkpoint",
    "checkpoint_image_size",
    "checkpoint_pixel_spacing",
    "config_hash",
    "file_digest",
    "load_checkpoint",
    "load_initial_weights",
    "read_checkpoint",
    "read_train_config",
    "resume_from",
    "rng_states",
    "save_checkpoint",
    "set_rng_states",
]

#: Value of the ``"format"`` key of every checkpoint the suite writes.
CHECKPOINT_FORMAT = "tedsnet-checkpoint"
#: Version of the checkpoint layout.
CHECKPOINT_VERSION = 1

#: The fix a reader of a trained model's checkpoint is told when the file is missing or not a checkpoint.
_FIX_FOR_INFERENCE = "pass the best.pt written by tedsnet training"
#: The fix when the ``last.pt`` of a run to resume is unreadable.
_FIX_FOR_RESUME = "delete it (or the model directory) to start again"


class ResumeMismatchError(ValueError):
    """An existing ``last.pt`` belongs to another run than the one requested (another experiment, training
    configuration or data), so training cannot resume from it.

    The message names both runs, what differs, and the fixes (another ``out_dir``, deleting the old files, or
    ``resume=False``).
    """


@dataclass
class RunProgress:
    """Where a training run stands at the end of an epoch (what a checkpoint records besides weights and RNG).

    Attributes
    ----------
    epoch : int
        Epochs completed (0 before the first).
    step : int
        Optimisation steps completed.
    images_seen : int
        Training images processed, counting repeats across epochs.
    elapsed_s : float
        Cumulative training wall time in seconds, including earlier, resumed runs.
    history : list of dict
        One row of history.csv per completed epoch.
    best_epoch : int
        Epoch of the best validation Dice so far (0: none yet, or an experiment that does not train).
    best_val_dice : float
        That Dice; ``-inf`` before the first validation.
    """

    epoch: int = 0
    step: int = 0
    images_seen: int = 0
    elapsed_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_dice: float = -math.inf

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> RunProgress:
        """The progress recorded in a checkpoint dict (see the module docstring)."""
        best = checkpoint["best"]
        return cls(
            epoch=int(checkpoint["epoch"]),
            step=int(checkpoint["step"]),
            images_seen=int(checkpoint["images_seen"]),
            elapsed_s=float(checkpoint["elapsed_s"]),
            history=list(checkpoint["history"]),
            best_epoch=int(best["epoch"]),
            best_val_dice=float(best["val_dice"]),
        )


def config_hash(experiment: Experiment, train_config: Mapping[str, Any]) -> str:
    """The identity of a run: 16 hex digits of the SHA-256 of the experiment's and the training configuration.

    Parameters
    ----------
    experiment : Experiment
        Contributes :meth:`~tedsnet.experiments.Experiment.config`.
    train_config : mapping
        JSON-serialisable training options and data fingerprints (the checkpoint's ``train_config``).

    Returns
    -------
    str
        Equal for two runs exactly when both configurations are equal (key order does not matter).
    """
    identity = {"experiment": experiment.config(), "train": dict(train_config)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------- RNG state
def rng_states() -> dict[str, Any]:
    """The state of every random generator training draws from: torch (CPU, and CUDA when available), NumPy's
    global generator and Python's ``random``, as plain containers that ``torch.load(weights_only=True)`` reads."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": numpy_state["state"]["key"].tolist(),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: Mapping[str, Any]) -> None:
    """Restore the generators from :func:`rng_states`' output (the CUDA states only where CUDA is available)."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": np.asarray(numpy_state["key"], dtype=np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    # torch.load returns Python's state as lists; random.setstate needs (int, tuple, float | None).
    python = state["python"]
    random.setstate(tuple(python[:1]) + (tuple(python[1]),) + tuple(python[2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------- write and read
def build_checkpoint(
    kind: str,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    experiment: Experiment,
    train_config: Mapping[str, Any],
    progress: RunProgress,
    pixel_spacing_mm: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict of a run now, with the current RNG states.

    Parameters
    ----------
    kind : {"best", "last"}
        Recorded as ``kind``.
    model : nn.Module
        Its state dict is copied to the CPU.
    optimizer : Optimizer or None
        Its state dict, or None (``best.pt``, an experiment that does not train).
    experiment : Experiment
        The experiment trained.
    train_config : mapping
        The training configuration (must hold ``image_size``); hashed with the experiment by :func:`config_hash`.
    progress : RunProgress
        Epoch, step, images seen, elapsed time, history and best epoch.
    pixel_spacing_mm : mapping, optional
        ``{"min", "median", "max"}`` in-plane pixel spacing of the training images, mm; None when unknown.

    Returns
    -------
    dict
        The keys listed in the module docstring.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kind": kind,
        "experiment": {
            "name": experiment.name,
            "base": experiment.base,
            "overrides": dict(experiment.overrides),
        },
        "experiment_config": experiment.config(),
        "train_config": dict(train_config),
        "config_hash": config_hash(experiment, train_config),
        "image_size": list(train_config["image_size"]),
        "pixel_spacing_mm": None if pixel_spacing_mm is None else dict(pixel_spacing_mm),
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer_state": None if optimizer is None else optimizer.state_dict(),
        "rng": rng_states(),
        "epoch": int(progress.epoch),
        "step": int(progress.step),
        "images_seen": int(progress.images_seen),
        "history": [dict(row) for row in progress.history],
        "best": {"epoch": progress.best_epoch, "val_dice": progress.best_val_dice},
        "elapsed_s": float(progress.elapsed_s),
        "torch_version": str(torch.__version__),
    }


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write a checkpoint dict atomically: ``path`` holds the previous file or the new one, never a partial one."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def _torch_load_problem(error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in the suite's words (never torch's advice to load
    with ``weights_only=False``, which would execute code from the file)."""
    text = str(error)
    if "weights_only" in text or "Weights only" in text:
        return "it holds Python objects other than tensors and plain containers, which no tedsnet checkpoint does"
    first_line = text.splitlines()[0] if text else ""
    return f"torch.load failed: {type(error).__name__}: {first_line}"


def read_checkpoint(path: str | os.PathLike, *, fix: str = _FIX_FOR_INFERENCE) -> dict[str, Any]:
    """Load a checkpoint written by :func:`tedsnet.training.engine.train` (CPU tensors; no code is executed).

    Parameters
    ----------
    path : path
        ``best.pt`` or ``last.pt`` of a model directory.
    fix : str
        The remedy the error messages end with.

    Returns
    -------
    dict
        The checkpoint (keys in the module docstring).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        ``path`` is a directory, is not a zip archive written by ``torch.save`` (a text file, say), is not readable
        by ``torch.load(weights_only=True)`` or is not a tedsnet checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        inside = [name for name in ("best.pt", "last.pt") if (path / name).is_file()]
        hint = f" (it holds {inside[0]}: pass {path / inside[0]})" if inside else ""
        raise ValueError(f"checkpoint {path} is a directory, not a checkpoint file{hint}; {fix}.")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; {fix}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"checkpoint {path} is not a file written by torch.save (a checkpoint is a zip archive; this file is "
            f"not one); {fix}."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - every unreadable file gets the same clear message
        raise ValueError(
            f"checkpoint {path} is not readable as a tedsnet checkpoint ({_torch_load_problem(error)}); {fix}."
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint {path} is not a tedsnet checkpoint (format {CHECKPOINT_FORMAT!r} missing); {fix}."
        )
    return checkpoint


def checkpoint_pixel_spacing(
    checkpoint: Mapping[str, Any], path: str | os.PathLike
) -> dict[str, float] | None:
    """The training images' in-plane pixel spacing recorded in a checkpoint as ``pixel_spacing_mm``.

    Parameters
    ----------
    checkpoint : mapping
        From :func:`read_checkpoint`.
    path : path
        Its file, for the message.

    Returns
    -------
    dict or None
        ``{"min", "median", "max"}`` in mm, all finite and positive; None when the checkpoint records none.

    Raises
    ------
    ValueError
        ``pixel_spacing_mm`` is present but not three positive numbers under those keys.
    """
    spacing = checkpoint.get("pixel_spacing_mm")
    if spacing is None:
        return None
    try:
        values = {key: float(spacing[key]) for key in ("min", "median", "max")}
    except (TypeError, KeyError, ValueError):
        values = {}
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values.values()):
        raise ValueError(
            f"checkpoint {path} records pixel_spacing_mm {spacing!r}: expected {{'min', 'median', 'max'}} in mm, "
            f"three positive numbers (the file is damaged or was not written by tedsnet training); "
            f"{_FIX_FOR_INFERENCE}."
        )
    return values


def checkpoint_image_size(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> tuple[int, int]:
    """The training size ``(H, W)`` recorded in a checkpoint as ``image_size``.

    Parameters
    ----------
    checkpoint : mapping
        From :func:`read_checkpoint`.
    path : path
        Its file, for the message.

    Returns
    -------
    (int, int)
        Height and width in pixels, both >= 1.

    Raises
    ------
    ValueError
        ``image_size`` is missing, not two whole numbers, or not positive.
    """
    size = checkpoint.get("image_size")
    try:
        values = [float(s) for s in size]
    except (TypeError, ValueError):
        values = []
    if len(values) != 2 or not all(math.isfinite(v) and v >= 1 and v == int(v) for v in values):
        raise ValueError(
            f"checkpoint {path} records image_size {size!r}: expected the training size [H, W], two positive "
            f"integers (the file is damaged or was not written by tedsnet training); {_FIX_FOR_INFERENCE}."
        )
    return int(values[0]), int(values[1])


# ------------------------------------------------------------------------------------------------------ resume
def read_train_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``train_config`` of the checkpoint at ``path``; None when there is no file or it holds no readable
    tedsnet training configuration."""
    if not Path(path).is_file():
        return None
    try:
        train_config = read_checkpoint(path, fix=_FIX_FOR_RESUME)["train_config"]
    except (ValueError, KeyError):
        return None
    return dict(train_config) if isinstance(train_config, Mapping) else None


def _differences(stored: Any, current: Mapping[str, Any]) -> list[str]:
    """``key (stored X, now Y)`` for each key whose value differs between two configurations."""
    stored = dict(stored) if isinstance(stored, Mapping) else {}
    return [
        f"{key} (stored {stored.get(key)!r}, now {current.get(key)!r})"
        for key in sorted(set(stored) | set(current))
        if stored.get(key) != current.get(key)
    ]


def _check_same_run(
    checkpoint: Mapping[str, Any], path: Path, experiment: Experiment, train_config: Mapping[str, Any]
) -> None:
    """Raise :class:`ResumeMismatchError` unless ``checkpoint`` was written by this experiment and configuration."""
    expected = config_hash(experiment, train_config)
    if checkpoint.get("config_hash") == expected:
        return
    differences = _differences(checkpoint.get("experiment_config"), experiment.config())
    differences += _differences(checkpoint.get("train_config"), train_config)
    stored_name = (checkpoint.get("experiment") or {}).get("name")
    raise ResumeMismatchError(
        f"{path} belongs to another run (experiment {stored_name!r}, config hash {checkpoint.get('config_hash')}) "
        f"than this one (experiment {experiment.name!r}, config hash {expected}); differing: "
        f"{'; '.join(differences) or 'the configuration format'}. Use another out_dir, delete the old files, or "
        "pass resume=False to start again."
    )


def resume_from(
    path: str | os.PathLike,
    *,
    experiment: Experiment,
    train_config: Mapping[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> RunProgress:
    """Continue a run from its ``last.pt``: check it is this run, then restore weights, optimiser and RNG states.

    Parameters
    ----------
    path : path
        The run's ``last.pt``.
    experiment : Experiment
        The experiment being trained.
    train_config : mapping
        Its training configuration, as :func:`build_checkpoint` records it.
    model : nn.Module
        Receives the stored weights (strictly).
    optimizer : Optimizer
        Receives the stored optimiser state.

    Returns
    -------
    RunProgress
        The progress at the end of the stored epoch.

    Raises
    ------
    ResumeMismatchError
        The checkpoint belongs to another experiment, training configuration or data.
    ValueError
        The file is not a readable tedsnet checkpoint (the message says to delete it).
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, fix=_FIX_FOR_RESUME)
    _check_same_run(checkpoint, path, experiment, train_config)
    model.load_state_dict(checkpoint["model_state"])
    optimizer.load_state_dict(checkpoint["optimizer_state"])
    set_rng_states(checkpoint["rng"])
    return RunProgress.from_checkpoint(checkpoint)


# ------------------------------------------------------------------------------------------------------- models
#: Keys of each kind a weights-mismatch message names before "and N more".
_KEYS_SHOWN = 5


def _named(kind: str, keys: list[str]) -> str:
    """``"missing keys a, b, c (and 4 more)"``: the first :data:`_KEYS_SHOWN` of ``keys``."""
    more = f" (and {len(keys) - _KEYS_SHOWN} more)" if len(keys) > _KEYS_SHOWN else ""
    return f"{len(keys)} {kind} {', '.join(keys[:_KEYS_SHOWN])}{more}"


def _state_mismatch(expected: Mapping[str, Any], stored: Mapping[str, Any]) -> str:
    """What keeps ``stored`` from loading strictly into a model whose state dict is ``expected``: the missing and
    unexpected keys and the shape mismatches, the first few of each; ``""`` when it fits."""
    missing = [key for key in expected if key not in stored]
    unexpected = [key for key in stored if key not in expected]
    reshaped = [
        f"{key} (stored {list(getattr(stored[key], 'shape', ()))}, model {list(expected[key].shape)})"
        for key in expected
        if key in stored
        and (not torch.is_tensor(stored[key]) or tuple(stored[key].shape) != tuple(expected[key].shape))
    ]
    parts = [
        _named(kind, keys)
        for kind, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", reshaped),
        )
        if keys
    ]
    return "; ".join(parts)


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

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_checkpoint`; also a ValueError when the experiment is not registered or the weights do not
        fit it (the message names the first missing, unexpected and mis-shaped keys). A registry entry that changed
        since training only warns.

    Examples
    --------
    >>> model, experiment = load_checkpoint("models/tedsnet/seed0/best.pt")  # doctest: +SKIP
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
    stored_state = checkpoint.get("model_state")
    problems = _state_mismatch(model.state_dict(), stored_state if isinstance(stored_state, Mapping) else {})
    if problems:
        raise ValueError(
            f"checkpoint {path}: weights do not fit experiment {experiment.name!r}: {problems}. The checkpoint was "
            "written for another architecture; pass a checkpoint of this experiment or restore its registry entry."
        )
    model.load_state_dict(stored_state)
    model.to(resolve_device(device)).eval()
    return model, experiment


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes: what a run started from another's weights records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_initial_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load the weights of the checkpoint ``path`` (another experiment's ``best.pt``) strictly into ``model``: the
    start of a fine-tune, or of a model that post-processes a trained one.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_checkpoint`; a ValueError when the weights do not fit ``model`` (the first missing,
        unexpected and mis-shaped keys are named).
    """
    checkpoint = read_checkpoint(path, fix="train the experiment this one starts from first (its best.pt)")
    stored = checkpoint.get("model_state")
    problems = _state_mismatch(model.state_dict(), stored if isinstance(stored, Mapping) else {})
    if problems:
        name = (checkpoint.get("experiment") or {}).get("name")
        raise ValueError(
            f"initial weights {path} (experiment {name!r}) do not fit the model: {problems}. Start from a "
            "checkpoint of the experiment named by init_from."
        )
    model.load_state_dict(stored)
