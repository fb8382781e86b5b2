"""One training engine for every model of the registry (DESIGN.md section 2, issue 4).

:func:`train` fits an :class:`~tedsnet.experiments.Experiment` on a prepared split with Adam and the experiment's
loss ``L = seg_loss(Y, Y_hat) + beta * sum over the model's fields of L_Grad(field)`` (paper eq. 2), validates the
mean per-image hard Dice every epoch, and writes to ``out_dir``:

- ``history.csv``: one row per epoch (:data:`HISTORY_COLUMNS`);
- ``best.pt``: the weights with the best validation Dice (what inference uses);
- ``last.pt``: everything needed to resume (model, optimiser, RNG states, epoch, step, history, configuration).

Determinism and resume: the model is initialised after ``torch.manual_seed(seed)``; epoch ``e`` shuffles with
``numpy.random.default_rng([seed, e])`` and reseeds torch (dropout) from ``(seed, e)``, so an epoch depends only on
the weights and optimiser state at its start. Checkpoints are written atomically at every epoch end; a process
killed at any point and run again resumes from ``last.pt`` and ends with bit-identical weights on CPU (same torch
build and thread count: CPU kernels may reduce in a different order with another number of threads).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from tedsnet.device import resolve_device
from tedsnet.experiments import SEG_LOSSES, Experiment, get_experiment
from tedsnet.io import atomic_path
from tedsnet.network.losses import grad_loss
from tedsnet.network.outputs import SegmentationOutput
from tedsnet.speed.auto import REQUESTABLE_SPEED_MODES, resolve_speed_mode
from tedsnet.speed.modes import apply_speed_mode
from tedsnet.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

__all__ = [
    "HISTORY_COLUMNS",
    "NonFiniteLossError",
    "TrainPaths",
    "TrainResult",
    "loss_terms",
    "train",
    "validate",
]

LOGGER = logging.getLogger("tedsnet.training.engine")

#: Columns of history.csv. loss/seg_loss/grad_* are means over the epoch's images (grad_* empty when the model has
#: no such field); val_loss is the same total loss on the validation split (eval mode); seconds is the cumulative
#: wall time of training including earlier, resumed runs; lr the learning rate.
HISTORY_COLUMNS = (
    "epoch",
    "step",
    "images_seen",
    "loss",
    "seg_loss",
    "grad_bulk",
    "grad_ft",
    "val_dice",
    "val_loss",
    "seconds",
    "lr",
)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the epoch and step, and the last good checkpoint."""


class TrainPaths(NamedTuple):
    """Files of a model directory."""

    best: Path
    last: Path
    history: Path

    @classmethod
    def in_dir(cls, out_dir: str | os.PathLike) -> TrainPaths:
        out = Path(out_dir)
        return cls(best=out / "best.pt", last=out / "last.pt", history=out / "history.csv")


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    Attributes
    ----------
    best_epoch : int
        Epoch (1-based; 0 for an experiment that does not train) of ``best.pt``.
    best_val_dice : float
        Its mean per-image validation Dice.
    epochs_run : int
        Epochs completed in total (including those of earlier, resumed runs).
    seconds : float
        Cumulative training wall time in seconds (including earlier runs).
    paths : TrainPaths
        best.pt, last.pt, history.csv.
    stop_reason : str
        ``"completed"``, ``"not_trained"``, ``"time_budget"`` or ``"early_stop"``.
    resumed_from : int or None
        The epoch of the ``last.pt`` this run resumed from; None when it started from scratch.
    """

    best_epoch: int
    best_val_dice: float
    epochs_run: int
    seconds: float
    paths: TrainPaths
    stop_reason: str
    resumed_from: int | None


# ----------------------------------------------------------------------------------------------------- helpers
def _as_split(split: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (N, H, W), labels uint8 (N, H, W)) from a PreparedSplit-like object, a tuple or a path."""
    if isinstance(split, (str, os.PathLike)):
        from tedsnet.data.prepared import load_split  # the data layer; imported only when a path is given

        split = load_split(split)
    if isinstance(split, tuple) and len(split) == 2 and not hasattr(split, "images"):
        images, labels = split
    elif hasattr(split, "images") and hasattr(split, "labels"):
        images, labels = split.images, split.labels
    else:
        raise TypeError(
            f"{name} must be a prepared split (with .images and .labels), an (images, labels) tuple or a path to a "
            f"split .npz, got {type(split).__name__}."
        )
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = np.asarray(labels)
    if images.ndim != 3 or labels.shape != images.shape or images.shape[0] == 0:
        raise ValueError(
            f"{name}: images and labels must both be (N, H, W) with N >= 1, got {images.shape} and {labels.shape}."
        )
    if labels.dtype != np.uint8:
        labels = labels.astype(np.uint8)
    if labels.max(initial=0) > 1:
        raise ValueError(
            f"{name}: labels must be binary {{0, 1}} (myocardium), got values up to {labels.max()}."
        )
    if not np.isfinite(images).all():
        raise ValueError(f"{name}: images contain NaN or infinite values; check the prepared data.")
    return images, labels


def _fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """Cheap content hash of a split: shape plus up to 64 evenly spaced images and labels."""
    digest = hashlib.sha256(repr(images.shape).encode())
    for index in np.linspace(0, images.shape[0] - 1, num=min(64, images.shape[0])).astype(int):
        digest.update(images[index].tobytes())
        digest.update(labels[index].tobytes())
    return digest.hexdigest()[:16]


def _derived_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for torch's RNG, a deterministic function of (seed, epoch)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 0x7ED5]).generate_state(1, np.uint64)[0] >> 1)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_history(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_COLUMNS})


def _rng_states() -> dict[str, Any]:
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


def _set_rng_states(state: Mapping[str, Any]) -> None:
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
    random.setstate(tuple(state["python"][:1]) + (tuple(state["python"][1]),) + tuple(state["python"][2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def loss_terms(
    output: SegmentationOutput,
    target: Tensor,
    seg_loss: Callable[[Tensor, Tensor], Tensor],
    beta: float,
    grad_identity: bool = True,
) -> dict[str, Tensor]:
    """The terms of eq. 2 for one batch.

    Parameters
    ----------
    output : SegmentationOutput
        The model's output: segmentation (B, 1, H, W), displacements {"bulk"/"ft": (B, 2, h, w)}.
    target : Tensor
        (B, 1, H, W) binary reference.
    seg_loss : callable
        ``(pred, target) -> scalar`` (see :data:`tedsnet.experiments.SEG_LOSSES`).
    beta : float
        L_Grad weight. With ``beta == 0`` the L_Grad terms are still computed for the log, without gradient.
    grad_identity : bool
        L_Grad of ``identity + displacement`` (True) or of the displacement (False); see
        :func:`tedsnet.network.losses.grad_loss`.

    Returns
    -------
    dict
        ``"loss"`` (total, scalar with gradient), ``"seg_loss"``, and ``"grad_<field>"`` for each field the model
        returns (unweighted L_Grad).
    """
    terms = {"seg_loss": seg_loss(output.segmentation, target)}
    total = terms["seg_loss"]
    for name, disp in output.displacements.items():
        if beta > 0:
            value = grad_loss(disp, identity=grad_identity)
            total = total + beta * value
        else:
            with torch.no_grad():
                value = grad_loss(disp, identity=grad_identity)
        terms[f"grad_{name}"] = value
    terms["loss"] = total
    return terms


@torch.no_grad()
def validate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    prior: Tensor,
    *,
    batch_size: int,
    device: torch.device,
    threshold: float,
    seg_loss: Callable[[Tensor, Tensor], Tensor],
    beta: float,
    grad_identity: bool = True,
) -> tuple[float, float]:
    """Mean per-image hard Dice (``soft >= threshold``) and mean total loss on a split, in eval mode.

    An image whose prediction and reference are both empty counts as Dice 1 (as :func:`tedsnet.evaluation.metrics.dice`).

    Returns
    -------
    (float, float)
        (val_dice, val_loss).
    """
    was_training = model.training
    model.eval()
    dice_sum, loss_sum = 0.0, 0.0
    try:
        for start in range(0, images.shape[0], batch_size):
            x = torch.from_numpy(images[start : start + batch_size]).to(device)[:, None]
            y = torch.from_numpy(labels[start : start + batch_size]).to(device)[:, None].float()
            output = model(x, prior)
            loss = loss_terms(output, y, seg_loss, beta, grad_identity)["loss"]
            pred = (output.segmentation >= threshold).float()
            inter = (pred * y).sum(dim=(1, 2, 3))
            total = pred.sum(dim=(1, 2, 3)) + y.sum(dim=(1, 2, 3))
            dice = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))
            dice_sum += float(dice.sum())
            loss_sum += float(loss) * x.shape[0]
    finally:
        model.train(was_training)
    return dice_sum / images.shape[0], loss_sum / images.shape[0]


def _checkpoint(
    *,
    kind: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    experiment: Experiment,
    config: Mapping[str, Any],
    config_hash: str,
    epoch: int,
    step: int,
    images_seen: int,
    history: list[dict[str, Any]],
    best: Mapping[str, Any],
    elapsed: float,
    image_size: tuple[int, int],
) -> dict[str, Any]:
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
        "train_config": dict(config),
        "config_hash": config_hash,
        "image_size": list(image_size),
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer_state": None if optimizer is None else optimizer.state_dict(),
        "rng": _rng_states(),
        "epoch": int(epoch),
        "step": int(step),
        "images_seen": int(images_seen),
        "history": [dict(row) for row in history],
        "best": dict(best),
        "elapsed_s": float(elapsed),
        "torch_version": str(torch.__version__),
    }


def _load_own_checkpoint(path: Path) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ValueError(
            f"cannot read checkpoint {path} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            "; delete it (or the model directory) to start again."
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a tedsnet training checkpoint (no format={CHECKPOINT_FORMAT!r}).")
    return checkpoint


# ------------------------------------------------------------------------------------------------------- train
def train(
    experiment: Experiment | str,
    train_split: Any,
    val_split: Any,
    out_dir: str | os.PathLike,
    *,
    epochs: int,
    batch_size: int = 5,
    lr: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "auto",
    threshold: float = 0.3,
    seg_loss: str | None = None,
    num_threads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    resume: bool = True,
    time_budget_s: float | None = None,
    patience: int | None = None,
    callback: Callable[[Mapping[str, Any]], None] | None = None,
    speed_mode: str = "fp32",
) -> TrainResult:
    """Train (or resume training) one experiment and write best.pt, last.pt and history.csv to ``out_dir``.

    Parameters
    ----------
    experiment : Experiment or str
        The experiment, or a name for :func:`tedsnet.experiments.get_experiment`.
    train_split, val_split : PreparedSplit, (images, labels) or path
        images float32 (N, H, W), labels uint8 {0, 1} (N, H, W); a path is read with
        ``tedsnet.data.prepared.load_split``. H and W must suit the model (144 x 208 in the protocol).
    out_dir : path
        Model directory (created).
    epochs : int
        Total epochs (>= 0). Running again with more epochs continues the same run.
    batch_size : int
        Images per step (paper: 5). The last batch of an epoch may be smaller.
    lr : float
        Adam learning rate (paper: 1e-4).
    seed : int
        Seeds the initial weights, every epoch's shuffle and dropout.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    threshold : float
        Binarisation threshold of the validation Dice (``soft >= threshold``; paper code: 0.3).
    seg_loss : str, optional
        A key of :data:`tedsnet.experiments.SEG_LOSSES`; default the experiment's ``seg_loss``.
    num_threads : int, optional
        ``torch.set_num_threads`` for the run (restored afterwards).
    progress : bool
        Show a tqdm progress bar (stderr).
    log : callable, optional
        ``log(message)`` for one line per epoch and the start/stop messages; default the ``tedsnet.training.engine``
        logger at INFO.
    resume : bool
        True: continue from ``out_dir/last.pt`` when it exists (it must match this experiment and configuration).
        False: start from scratch, replacing existing files.
    time_budget_s : float, optional
        Stop after the epoch at whose end the cumulative training time reaches this budget.
    patience : int, optional
        Stop when the validation Dice has not improved for this many epochs.
    callback : callable, optional
        Called after every optimisation step with a mapping ``{"epoch", "step", "batch", "loss"}``.
    speed_mode : {"fp32", "eager", "fast", "auto"}
        How the model runs (:mod:`tedsnet.speed.modes`): ``fp32`` (default) is the plain model's maths with cheaper
        dropout masks; ``eager`` the plain model; ``fast`` adds bf16 autocast on the convolutional feature
        networks; ``auto`` is ``fast`` where bf16 convolutions are faster on this device and ``fp32`` elsewhere
        (:mod:`tedsnet.speed.auto`; the choice is logged, and a resumed run keeps the mode it ran in). The mode
        run is part of the run's configuration (a run resumes only in its own mode); checkpoints hold the plain
        model's state dict in every mode.

    Returns
    -------
    TrainResult

    Raises
    ------
    NonFiniteLossError
        (a FloatingPointError) when the loss is NaN or infinite; names epoch and step; the checkpoints of the
        last completed epoch are kept.
    ValueError
        Invalid arguments or data, or an existing last.pt from another experiment/configuration (the message
        names both and the fix).
    """
    if isinstance(experiment, str):
        experiment = get_experiment(experiment)
    if not isinstance(experiment, Experiment):
        raise TypeError(
            f"train: experiment must be an Experiment or a name, got {type(experiment).__name__}."
        )
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"train: epochs must be a non-negative integer, got {epochs!r}.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"train: batch_size must be a positive integer, got {batch_size!r}.")
    if not lr > 0:
        raise ValueError(f"train: lr must be > 0, got {lr!r}.")
    if not 0 < threshold < 1:
        raise ValueError(f"train: threshold must be in (0, 1), got {threshold!r}.")
    seg_loss = experiment.seg_loss if seg_loss is None else seg_loss
    if seg_loss not in SEG_LOSSES:
        raise ValueError(f"train: seg_loss must be one of {sorted(SEG_LOSSES)}, got {seg_loss!r}.")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"train: time_budget_s must be > 0 seconds or None, got {time_budget_s!r}.")
    if patience is not None and patience < 1:
        raise ValueError(f"train: patience must be >= 1 or None, got {patience!r}.")
    if speed_mode not in REQUESTABLE_SPEED_MODES:
        raise ValueError(f"train: speed_mode must be one of {REQUESTABLE_SPEED_MODES}, got {speed_mode!r}.")
    epochs, batch_size, seed = int(epochs), int(batch_size), int(seed)
    say = log if log is not None else LOGGER.info

    train_images, train_labels = _as_split(train_split, "train_split")
    val_images, val_labels = _as_split(val_split, "val_split")
    if train_images.shape[1:] != val_images.shape[1:]:
        raise ValueError(
            f"train: train and val images must have the same H x W, got {train_images.shape[1:]} and "
            f"{val_images.shape[1:]}."
        )
    image_size = (int(train_images.shape[1]), int(train_images.shape[2]))
    device = resolve_device(device)
    paths = TrainPaths.in_dir(out_dir)
    paths.best.parent.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        if speed_mode == "auto":  # probed with the run's threads
            speed_mode = _auto_speed_mode(paths.last if resume else None, device, say)
        config = {
            "batch_size": batch_size,
            "lr": float(lr),
            "seed": seed,
            "threshold": float(threshold),
            "seg_loss": seg_loss,
            "optimizer": "Adam",
            "speed_mode": speed_mode,
            "image_size": list(image_size),
            "train_data": _fingerprint(train_images, train_labels),
            "val_data": _fingerprint(val_images, val_labels),
            "n_train": int(train_images.shape[0]),
            "n_val": int(val_images.shape[0]),
        }
        config_hash = hashlib.sha256(
            json.dumps({"experiment": experiment.config(), "train": config}, sort_keys=True).encode()
        ).hexdigest()[:16]
        return _run(
            experiment=experiment,
            train_data=(train_images, train_labels),
            val_data=(val_images, val_labels),
            paths=paths,
            epochs=epochs,
            batch_size=batch_size,
            lr=float(lr),
            seed=seed,
            device=device,
            threshold=float(threshold),
            seg_fn=SEG_LOSSES[seg_loss],
            config=config,
            config_hash=config_hash,
            image_size=image_size,
            progress=progress,
            say=say,
            resume=resume,
            time_budget_s=time_budget_s,
            patience=patience,
            callback=callback,
            speed_mode=speed_mode,
        )
    finally:
        if num_threads is not None:
            torch.set_num_threads(previous_threads)


def _auto_speed_mode(last: Path | None, device: torch.device, say: Callable[[str], None]) -> str:
    """``fp32`` or ``fast`` for ``speed_mode="auto"``: the mode of the run in ``last`` when there is one to
    resume, otherwise :func:`tedsnet.speed.auto.resolve_speed_mode`'s choice (probed with the current threads)."""
    if last is not None and last.exists():
        try:
            previous = _load_own_checkpoint(last)["train_config"]["speed_mode"]
        except (ValueError, KeyError, TypeError):
            previous = None  # not resumable: _run reports it
        if previous in ("fp32", "fast"):
            say(f"speed mode auto: {previous}, the mode of the run in {last}")
            return previous
    choice = resolve_speed_mode("auto", device)
    say(f"speed mode {choice.mode} ({choice.reason})")
    return choice.mode


def _run(
    *,
    experiment: Experiment,
    train_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray],
    paths: TrainPaths,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
    threshold: float,
    seg_fn: Callable[[Tensor, Tensor], Tensor],
    config: Mapping[str, Any],
    config_hash: str,
    image_size: tuple[int, int],
    progress: bool,
    say: Callable[[str], None],
    resume: bool,
    time_budget_s: float | None,
    patience: int | None,
    callback: Callable[[Mapping[str, Any]], None] | None,
    speed_mode: str,
) -> TrainResult:
    train_images, train_labels = train_data
    val_images, val_labels = val_data
    model = apply_speed_mode(experiment.build(seed=seed), speed_mode).to(device)
    prior = experiment.prior_tensor(image_size, device=device)
    beta = float(experiment.beta)
    common = {
        "experiment": experiment,
        "config": config,
        "config_hash": config_hash,
        "image_size": image_size,
    }

    run_validation = functools.partial(
        validate,
        model,
        val_images,
        val_labels,
        prior,
        batch_size=batch_size,
        device=device,
        threshold=threshold,
        seg_loss=seg_fn,
        beta=beta,
        grad_identity=experiment.grad_identity,
    )

    if not experiment.trains:
        val_dice, val_loss = run_validation()
        row = dict.fromkeys(HISTORY_COLUMNS)
        row.update(epoch=0, step=0, images_seen=0, val_dice=val_dice, val_loss=val_loss, seconds=0.0, lr=0.0)
        best = {"epoch": 0, "val_dice": val_dice}
        state = _checkpoint(
            kind="best", model=model, optimizer=None, epoch=0, step=0, images_seen=0, history=[row],
            best=best, elapsed=0.0, **common,
        )  # fmt: skip
        _atomic_torch_save(state, paths.best)
        _atomic_torch_save({**state, "kind": "last"}, paths.last)
        _write_history([row], paths.history)
        say(f"{experiment.name}: not trained (trains=False); val Dice {val_dice:.4f}; wrote {paths.best}")
        return TrainResult(0, val_dice, 0, 0.0, paths, "not_trained", None)

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start_epoch, step, images_seen, elapsed = 0, 0, 0, 0.0
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": 0, "val_dice": -math.inf}
    resumed_from = None
    if resume and paths.last.exists():
        checkpoint = _load_own_checkpoint(paths.last)
        if checkpoint.get("config_hash") != config_hash:
            raise ValueError(
                f"{paths.last} belongs to another run (experiment {checkpoint.get('experiment', {}).get('name')!r}, "
                f"config hash {checkpoint.get('config_hash')}) than this one (experiment {experiment.name!r}, "
                f"config hash {config_hash}; train config {dict(config)}). Use another out_dir, delete the old "
                "files, or pass resume=False to start again."
            )
        model.load_state_dict(checkpoint["model_state"])
        optimizer.load_state_dict(checkpoint["optimizer_state"])
        _set_rng_states(checkpoint["rng"])
        start_epoch, step = int(checkpoint["epoch"]), int(checkpoint["step"])
        images_seen, elapsed = int(checkpoint["images_seen"]), float(checkpoint["elapsed_s"])
        history, best = list(checkpoint["history"]), dict(checkpoint["best"])
        resumed_from = start_epoch
        say(f"{experiment.name}: resuming from {paths.last} at epoch {start_epoch} (step {step}).")
    elif not resume:
        for path in paths:
            if path.exists():
                path.unlink()

    if epochs == 0 and resumed_from is None:
        raise ValueError("train: epochs=0 with no earlier run in out_dir: nothing to train; use epochs >= 1.")
    n_train = train_images.shape[0]
    steps_per_epoch = math.ceil(n_train / batch_size)
    stop_reason = "completed"
    bar = None
    if progress and epochs > start_epoch:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=(epochs - start_epoch) * steps_per_epoch,
            desc=experiment.name,
            unit="step",
            dynamic_ncols=True,
            leave=False,
        )
    say(
        f"{experiment.name}: training epochs {start_epoch + 1}..{epochs} on {device}, {n_train} images, "
        f"batch {batch_size}, lr {lr:g}, loss {config['seg_loss']} + {beta:g} * L_Grad, seed {seed}."
    )
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            if time_budget_s is not None and elapsed >= time_budget_s:
                stop_reason = "time_budget"
                break
            if patience is not None and history and epoch - 1 - int(best["epoch"]) >= patience:
                stop_reason = "early_stop"
                break
            epoch_start = time.perf_counter()
            order = np.random.default_rng([seed, epoch]).permutation(n_train)
            torch.manual_seed(_derived_seed(seed, epoch))
            model.train()
            sums: dict[str, float] = {}
            for batch in range(steps_per_epoch):
                index = np.sort(order[batch * batch_size : (batch + 1) * batch_size])
                x = torch.from_numpy(train_images[index]).to(device)[:, None]
                y = torch.from_numpy(train_labels[index]).to(device)[:, None].float()
                terms = loss_terms(model(x, prior), y, seg_fn, beta, experiment.grad_identity)
                loss = terms["loss"]
                if not torch.isfinite(loss):
                    values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
                    kept = (
                        f"last good checkpoint {paths.last} (epoch {epoch - 1})"
                        if paths.last.exists()
                        else ("no checkpoint was written yet")
                    )
                    raise NonFiniteLossError(
                        f"{experiment.name}: non-finite loss at epoch {epoch}, step {step + 1} (batch {batch + 1} of "
                        f"{steps_per_epoch}): {values}. Training stopped; {kept}. Try a lower lr or check the data."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                images_seen += len(index)
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(index)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{float(loss):.4f}", refresh=False)
                if callback is not None:
                    callback({"epoch": epoch, "step": step, "batch": batch + 1, "loss": float(loss)})
            val_dice, val_loss = run_validation()
            elapsed += time.perf_counter() - epoch_start
            row = {
                "epoch": epoch,
                "step": step,
                "images_seen": images_seen,
                "loss": sums["loss"] / n_train,
                "seg_loss": sums["seg_loss"] / n_train,
                "grad_bulk": sums["grad_bulk"] / n_train if "grad_bulk" in sums else None,
                "grad_ft": sums["grad_ft"] / n_train if "grad_ft" in sums else None,
                "val_dice": val_dice,
                "val_loss": val_loss,
                "seconds": round(elapsed, 3),
                "lr": optimizer.param_groups[0]["lr"],
            }
            history.append(row)
            improved = val_dice > float(best["val_dice"])
            if improved:
                best = {"epoch": epoch, "val_dice": val_dice}
            state = _checkpoint(
                kind="last", model=model, optimizer=optimizer, epoch=epoch, step=step, images_seen=images_seen,
                history=history, best=best, elapsed=elapsed, **common,
            )  # fmt: skip
            if improved:
                _atomic_torch_save({**state, "kind": "best", "optimizer_state": None}, paths.best)
            _atomic_torch_save(state, paths.last)
            _write_history(history, paths.history)
            say(
                f"{experiment.name}: epoch {epoch}/{epochs} loss {row['loss']:.4f} (seg {row['seg_loss']:.4f}) "
                f"val Dice {val_dice:.4f}{' *' if improved else ''} [{elapsed:.0f} s]"
            )
    finally:
        if bar is not None:
            bar.close()
    say(
        f"{experiment.name}: stopped ({stop_reason}) after {len(history)} epochs, {elapsed:.0f} s; best val Dice "
        f"{float(best['val_dice']):.4f} at epoch {best['epoch']}."
    )
    return TrainResult(
        best_epoch=int(best["epoch"]),
        best_val_dice=float(best["val_dice"]),
        epochs_run=len(history),
        seconds=elapsed,
        paths=paths,
        stop_reason=stop_reason,
        resumed_from=resumed_from,
    )
