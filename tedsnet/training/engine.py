"""One training engine for every model of the registry.

:func:`train` fits an :class:`~tedsnet.experiments.Experiment` on a prepared split with Adam and the experiment's
loss ``L = seg_loss(Y, Y_hat) + beta * sum over the model's fields of L_Grad(field)`` (paper eq. 2), validates the
mean per-image hard Dice every epoch, and writes to ``out_dir``:

- ``history.csv``: one row per epoch (:data:`HISTORY_COLUMNS`);
- ``best.pt``: the weights with the best validation Dice (what inference uses);
- ``last.pt``: everything needed to resume (:mod:`tedsnet.training.checkpoint` owns the format).

A run is a sequence of named steps over one frozen :class:`TrainConfig`: restore (or start), then per epoch the
stop rules, one epoch of optimisation, validation and saving.

Determinism and resume: the model is initialised after ``torch.manual_seed(seed)``; epoch ``e`` shuffles with
``numpy.random.default_rng([seed, e])`` and reseeds torch (dropout) from ``(seed, e)``, so an epoch depends only on
the weights and optimiser state at its start. Checkpoints are written atomically at every epoch end; a process
killed at any point and run again resumes from ``last.pt`` and ends with bit-identical weights on CPU (same torch
build and thread count: CPU kernels may reduce in a different order with another number of threads).

Logs: ``log`` receives one line per epoch (epoch, loss terms, validation Dice, seconds) plus a start and a stop
line; a tqdm progress bar is drawn only when stderr is a terminal, so a log file holds no progress frames.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from tedsnet.device import resolve_device
from tedsnet.experiments import SEG_LOSSES, Experiment, get_experiment
from tedsnet.io import atomic_path, remove_stale_temporaries
from tedsnet.network.losses import grad_loss
from tedsnet.network.outputs import THRESHOLD, SegmentationOutput
from tedsnet.speed.auto import REQUESTABLE_SPEED_MODES, resolve_speed_mode
from tedsnet.speed.modes import apply_speed_mode
from tedsnet.training.checkpoint import (
    RunProgress,
    build_checkpoint,
    file_digest,
    load_initial_weights,
    read_train_config,
    resume_from,
    save_checkpoint,
)

__all__ = [
    "HISTORY_COLUMNS",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainPaths",
    "TrainResult",
    "loss_terms",
    "train",
    "validate",
]

LOGGER = logging.getLogger("tedsnet.training.engine")

#: Largest Adam learning rate :func:`train` accepts (Adam's update of a weight is about lr per step).
MAX_LR = 1.0

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
        """``best.pt``, ``last.pt`` and ``history.csv`` inside ``out_dir``."""
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


# ------------------------------------------------------------------------------------------------------ data
def _open_split(split: Any) -> Any:
    """A split file read with ``tedsnet.data.prepared.load_split``; any other ``split`` as given."""
    if isinstance(split, (str, os.PathLike)):
        from tedsnet.data.prepared import load_split  # the data layer; imported only when a path is given

        return load_split(split)
    return split


def _pixel_spacing(split: Any) -> dict[str, float] | None:
    """``{"min", "median", "max"}`` of the in-plane pixel spacing (mm) in a prepared split's table (columns
    ``spacing_row_mm`` and ``spacing_col_mm`` together); None for bare arrays or a table without both columns."""
    table = getattr(split, "table", None)
    columns = ("spacing_row_mm", "spacing_col_mm")
    if table is None or not all(column in getattr(table, "columns", ()) for column in columns):
        return None
    values = np.concatenate([np.asarray(table[column], dtype=np.float64) for column in columns])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return None
    return {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max())}


def _as_split(split: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (N, H, W), labels uint8 (N, H, W)) from a PreparedSplit-like object or a tuple (a path is
    read first by :func:`_open_split`)."""
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


def _write_history(rows: list[dict[str, Any]], path: Path) -> None:
    """Write history.csv atomically: :data:`HISTORY_COLUMNS`, ``None`` as an empty cell."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_COLUMNS})


# ------------------------------------------------------------------------------------------------ loss, Dice
def loss_terms(
    output: SegmentationOutput,
    target: Tensor,
    seg_loss: Callable[[Tensor, Tensor], Tensor],
    beta: float,
    grad_identity: bool = True,
) -> dict[str, Tensor]:
    """The terms of paper eq. 2 for one batch.

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

    An image whose prediction and reference are both empty counts as Dice 1 (as
    :func:`tedsnet.evaluation.metrics.dice`). The model's train/eval mode is restored afterwards.

    Parameters
    ----------
    model : nn.Module
        ``model(x, prior) -> SegmentationOutput``.
    images, labels : ndarray
        float32 (N, H, W) and {0, 1} uint8 (N, H, W).
    prior : Tensor
        (1, 1, H, W) prior on ``device``.
    batch_size : int
        Images per forward pass.
    device : torch.device
        Where the model runs.
    threshold : float
        Binarisation threshold of the soft segmentation.
    seg_loss, beta, grad_identity
        As :func:`loss_terms`.

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


# ------------------------------------------------------------------------------------------- configuration
def _as_experiment(experiment: Experiment | str) -> Experiment:
    """The experiment itself, or the registry's experiment of that name."""
    if isinstance(experiment, str):
        experiment = get_experiment(experiment)
    if not isinstance(experiment, Experiment):
        raise TypeError(
            f"train: experiment must be an Experiment or a name, got {type(experiment).__name__}."
        )
    return experiment


def _check_options(
    *,
    epochs: Any,
    batch_size: Any,
    lr: Any,
    threshold: Any,
    seg_loss: str,
    time_budget_s: Any,
    patience: Any,
    speed_mode: str,
) -> None:
    """Raise ValueError for the first option of :func:`train` out of its range."""
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"train: epochs must be a non-negative integer, got {epochs!r}.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"train: batch_size must be a positive integer, got {batch_size!r}.")
    try:
        lr_value = float(lr)
    except (TypeError, ValueError):
        lr_value = math.nan
    if not (math.isfinite(lr_value) and 0 < lr_value <= MAX_LR):
        raise ValueError(
            f"train: lr must be a finite number in (0, {MAX_LR:g}], got {lr!r}: Adam moves every weight by about lr "
            f"per step, so a larger step throws the weights far from any trained value (the paper uses 1e-4)."
        )
    if not 0 < threshold < 1:
        raise ValueError(f"train: threshold must be in (0, 1), got {threshold!r}.")
    if seg_loss not in SEG_LOSSES:
        raise ValueError(f"train: seg_loss must be one of {sorted(SEG_LOSSES)}, got {seg_loss!r}.")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"train: time_budget_s must be > 0 seconds or None, got {time_budget_s!r}.")
    if patience is not None and patience < 1:
        raise ValueError(f"train: patience must be >= 1 or None, got {patience!r}.")
    if speed_mode not in REQUESTABLE_SPEED_MODES:
        raise ValueError(f"train: speed_mode must be one of {REQUESTABLE_SPEED_MODES}, got {speed_mode!r}.")


def _init_checkpoint(experiment: Experiment, path: Any) -> Path | None:
    """The checkpoint a run starts from: required exactly when the experiment names ``init_from``."""
    if experiment.init_from is None:
        if path is not None:
            raise ValueError(
                f"train: init_checkpoint given, but experiment {experiment.name!r} starts from its own "
                "initialisation (no init_from); drop init_checkpoint."
            )
        return None
    if path is None:
        raise ValueError(
            f"train: experiment {experiment.name!r} starts from the trained {experiment.init_from!r}; pass "
            f"init_checkpoint=<models/{experiment.init_from}/seed<k>/best.pt>."
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"train: init_checkpoint {path} does not exist; train {experiment.init_from!r} first."
        )
    return path


def _auto_speed_mode(last: Path | None, device: torch.device, say: Callable[[str], None]) -> str:
    """``fp32`` or ``fast`` for ``speed_mode="auto"``: the mode of the run in ``last`` when there is one to
    resume, otherwise :func:`tedsnet.speed.auto.resolve_speed_mode`'s choice (probed with the current threads)."""
    if last is not None:
        previous = (read_train_config(last) or {}).get("speed_mode")
        if previous in ("fp32", "fast"):
            say(f"speed mode auto: {previous}, the mode of the run in {last}")
            return previous
    choice = resolve_speed_mode("auto", device)
    say(f"speed mode {choice.mode} ({choice.reason})")
    return choice.mode


@dataclass(frozen=True, eq=False)
class TrainConfig:
    """Everything that fixes one training run, validated once by :meth:`from_arguments` and never changed.

    Attributes
    ----------
    experiment : Experiment
        The experiment trained.
    train_images, val_images : ndarray
        float32 (N, H, W), C-contiguous, finite; both splits share H x W.
    train_labels, val_labels : ndarray
        uint8 (N, H, W) in {0, 1}.
    epochs : int
        Total epochs (>= 0), counting those of earlier, resumed runs.
    batch_size : int
        Images per optimisation step (>= 1).
    lr : float
        Adam learning rate, finite, in (0, :data:`MAX_LR`].
    seed : int
        Seed of the initial weights, every epoch's shuffle and dropout.
    device : torch.device
        Where the model runs.
    threshold : float
        Binarisation threshold of the validation Dice, in (0, 1).
    seg_loss : str
        A key of :data:`tedsnet.experiments.SEG_LOSSES`.
    speed_mode : str
        The mode run: ``"eager"``, ``"fp32"`` or ``"fast"`` (``"auto"`` is resolved before construction).
    resume : bool
        Continue from an existing ``last.pt`` (True) or replace it (False).
    time_budget_s : float or None
        Stop once the cumulative training time reaches this many seconds.
    patience : int or None
        Stop after this many epochs without a better validation Dice.
    progress_bar : bool
        Draw a progress bar (only ever on a terminal).
    pixel_spacing_mm : dict or None
        ``{"min", "median", "max"}`` in-plane pixel spacing of the training images in mm, from a prepared split's
        table; None for bare arrays. Stored in checkpoints beside the configuration (not part of a run's identity).
    init_checkpoint : Path or None
        The checkpoint whose weights the model starts from (the experiment's ``init_from``); None for the
        factory's initialisation.
    init_digest : str or None
        :func:`~tedsnet.training.checkpoint.file_digest` of ``init_checkpoint``, part of the run's identity.
    """

    experiment: Experiment
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    epochs: int
    batch_size: int
    lr: float
    seed: int
    device: torch.device
    threshold: float
    seg_loss: str
    speed_mode: str
    resume: bool
    time_budget_s: float | None
    patience: int | None
    progress_bar: bool
    pixel_spacing_mm: dict[str, float] | None = None
    init_checkpoint: Path | None = None
    init_digest: str | None = None

    @classmethod
    def from_arguments(
        cls,
        experiment: Experiment | str,
        train_split: Any,
        val_split: Any,
        *,
        last_run: Path,
        say: Callable[[str], None],
        **options: Any,
    ) -> TrainConfig:
        """Validate :func:`train`'s arguments and build the configuration.

        ``options`` are :func:`train`'s keyword arguments ``epochs``, ``batch_size``, ``lr``, ``seed``, ``device``,
        ``threshold``, ``seg_loss``, ``speed_mode``, ``resume``, ``time_budget_s``, ``patience``, ``progress`` and
        ``init_checkpoint``.
        ``speed_mode="auto"`` is resolved here (keeping the mode of the run in ``last_run`` when resuming one;
        the choice goes to ``say``), so call it with the run's torch threads set.

        Raises
        ------
        TypeError, ValueError
            An experiment or split of the wrong type, an option out of range, or unsuitable data.
        """
        experiment = _as_experiment(experiment)
        seg_loss = experiment.seg_loss if options["seg_loss"] is None else options["seg_loss"]
        _check_options(
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            lr=options["lr"],
            threshold=options["threshold"],
            seg_loss=seg_loss,
            time_budget_s=options["time_budget_s"],
            patience=options["patience"],
            speed_mode=options["speed_mode"],
        )
        train_split = _open_split(train_split)
        train_images, train_labels = _as_split(train_split, "train_split")
        val_images, val_labels = _as_split(_open_split(val_split), "val_split")
        if train_images.shape[1:] != val_images.shape[1:]:
            raise ValueError(
                f"train: train and val images must have the same H x W, got {train_images.shape[1:]} and "
                f"{val_images.shape[1:]}."
            )
        device = resolve_device(options["device"])
        speed_mode = options["speed_mode"]
        if speed_mode == "auto":
            speed_mode = _auto_speed_mode(last_run if options["resume"] else None, device, say)
        init = _init_checkpoint(experiment, options.get("init_checkpoint"))
        return cls(
            experiment=experiment,
            train_images=train_images,
            train_labels=train_labels,
            val_images=val_images,
            val_labels=val_labels,
            epochs=int(options["epochs"]),
            batch_size=int(options["batch_size"]),
            lr=float(options["lr"]),
            seed=int(options["seed"]),
            device=device,
            threshold=float(options["threshold"]),
            seg_loss=seg_loss,
            speed_mode=speed_mode,
            resume=bool(options["resume"]),
            time_budget_s=options["time_budget_s"],
            patience=options["patience"],
            progress_bar=bool(options["progress"]),
            pixel_spacing_mm=_pixel_spacing(train_split),
            init_checkpoint=init,
            init_digest=None if init is None else file_digest(init),
        )

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of every image."""
        return int(self.train_images.shape[1]), int(self.train_images.shape[2])

    @property
    def n_train(self) -> int:
        """Training images per epoch."""
        return int(self.train_images.shape[0])

    @property
    def steps_per_epoch(self) -> int:
        """Optimisation steps per epoch (the last batch may be smaller)."""
        return math.ceil(self.n_train / self.batch_size)

    @property
    def seg_fn(self) -> Callable[[Tensor, Tensor], Tensor]:
        """The segmentation loss ``(pred, target) -> scalar``."""
        return SEG_LOSSES[self.seg_loss]

    @cached_property
    def record(self) -> dict[str, Any]:
        """The JSON-serialisable configuration a checkpoint stores as ``train_config`` (data as fingerprints)."""
        return {
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seed": self.seed,
            "threshold": self.threshold,
            "seg_loss": self.seg_loss,
            "optimizer": "Adam",
            "speed_mode": self.speed_mode,
            "image_size": list(self.image_size),
            "train_data": _fingerprint(self.train_images, self.train_labels),
            "val_data": _fingerprint(self.val_images, self.val_labels),
            "n_train": self.n_train,
            "n_val": int(self.val_images.shape[0]),
            # only when set, so that the hashes of runs from scratch stay valid
            **({} if self.init_digest is None else {"init_weights": self.init_digest}),
        }


# ------------------------------------------------------------------------------------------------ the steps
def _epoch_line(name: str, row: Mapping[str, Any], epochs: int, improved: bool, seconds: float) -> str:
    """The log line of one epoch: loss terms, validation Dice (``*``: a new best) and its seconds."""
    terms = [f"seg {row['seg_loss']:.4f}"]
    terms += [f"{key} {row[key]:.4g}" for key in ("grad_bulk", "grad_ft") if row[key] is not None]
    return (
        f"{name}: epoch {row['epoch']}/{epochs} loss {row['loss']:.4f} ({', '.join(terms)}) "
        f"val Dice {row['val_dice']:.4f}{' *' if improved else ''} {seconds:.1f} s (total {row['seconds']:.0f} s)"
    )


class _TrainingRun:
    """The mutable state of one run (model, optimiser, progress) and the steps that advance it."""

    def __init__(
        self,
        config: TrainConfig,
        paths: TrainPaths,
        say: Callable[[str], None],
        callback: Callable[[Mapping[str, Any]], None] | None,
    ) -> None:
        self.config, self.paths, self.say, self.callback = config, paths, say, callback
        experiment = config.experiment
        model = experiment.build(seed=config.seed)
        if config.init_checkpoint is not None:
            load_initial_weights(model, config.init_checkpoint)
            say(f"{experiment.name}: starting from the weights of {config.init_checkpoint}")
        self.model = apply_speed_mode(model, config.speed_mode).to(config.device)
        self.prior = experiment.prior_tensor(config.image_size, device=config.device)
        self.optimizer: torch.optim.Optimizer | None = None
        self.progress = RunProgress()

    def run(self) -> TrainResult:
        """Restore or start, train the remaining epochs under the stop rules, and report."""
        config = self.config
        if not config.experiment.trains:
            return self.record_untrained()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        resumed_from = self.restore_or_start()
        if config.epochs == 0 and resumed_from is None:
            raise ValueError(
                "train: epochs=0 with no earlier run in out_dir: nothing to train; use epochs >= 1."
            )
        stop_reason = self.train_epochs()
        progress = self.progress
        self.say(
            f"{config.experiment.name}: stopped ({stop_reason}) after {len(progress.history)} epochs, "
            f"{progress.elapsed_s:.0f} s; best val Dice {progress.best_val_dice:.4f} at epoch {progress.best_epoch}."
        )
        return TrainResult(
            best_epoch=progress.best_epoch,
            best_val_dice=progress.best_val_dice,
            epochs_run=len(progress.history),
            seconds=progress.elapsed_s,
            paths=self.paths,
            stop_reason=stop_reason,
            resumed_from=resumed_from,
        )

    def record_untrained(self) -> TrainResult:
        """An experiment that does not train: validate its initial model and save it as epoch 0."""
        val_dice, val_loss = self.validate()
        row = dict.fromkeys(HISTORY_COLUMNS)
        row.update(epoch=0, step=0, images_seen=0, val_dice=val_dice, val_loss=val_loss, seconds=0.0, lr=0.0)
        self.progress = RunProgress(history=[row], best_epoch=0, best_val_dice=val_dice)
        state = self.checkpoint("best")
        save_checkpoint(state, self.paths.best)
        save_checkpoint({**state, "kind": "last"}, self.paths.last)
        _write_history(self.progress.history, self.paths.history)
        self.say(
            f"{self.config.experiment.name}: not trained (trains=False); val Dice {val_dice:.4f}; "
            f"wrote {self.paths.best}"
        )
        return TrainResult(0, val_dice, 0, 0.0, self.paths, "not_trained", None)

    def restore_or_start(self) -> int | None:
        """Resume from ``last.pt`` when asked and present (returns its epoch); otherwise start (returns None),
        removing an earlier run's files when ``resume`` is False."""
        config, paths = self.config, self.paths
        if config.resume and paths.last.exists():
            self.progress = resume_from(
                paths.last,
                experiment=config.experiment,
                train_config=config.record,
                model=self.model,
                optimizer=self.optimizer,
            )
            self.say(
                f"{config.experiment.name}: resuming from {paths.last} at epoch {self.progress.epoch} "
                f"(step {self.progress.step})."
            )
            return self.progress.epoch
        if not config.resume:
            for path in paths:
                path.unlink(missing_ok=True)
        return None

    def stop_rule(self, epoch: int) -> str | None:
        """``"time_budget"`` or ``"early_stop"`` when the run must stop before ``epoch``; None to go on."""
        config, progress = self.config, self.progress
        if config.time_budget_s is not None and progress.elapsed_s >= config.time_budget_s:
            return "time_budget"
        if (
            config.patience is not None
            and progress.history
            and epoch - 1 - progress.best_epoch >= config.patience
        ):
            return "early_stop"
        return None

    def train_epochs(self) -> str:
        """Run epochs up to ``config.epochs`` until a stop rule fires; returns the stop reason."""
        config = self.config
        first = self.progress.epoch + 1
        bar = self.progress_bar(config.epochs - self.progress.epoch)
        self.say(
            f"{config.experiment.name}: training epochs {first}..{config.epochs} on {config.device}, "
            f"{config.n_train} images, batch {config.batch_size}, lr {config.lr:g}, loss {config.seg_loss} + "
            f"{float(config.experiment.beta):g} * L_Grad, seed {config.seed}."
        )
        try:
            for epoch in range(first, config.epochs + 1):
                reason = self.stop_rule(epoch)
                if reason is not None:
                    return reason
                epoch_start = time.perf_counter()
                sums = self.train_one_epoch(epoch, bar)
                self.end_epoch(epoch, sums, epoch_start)
        finally:
            if bar is not None:
                bar.close()
        return "completed"

    def progress_bar(self, epochs_left: int) -> Any:
        """A tqdm bar over the remaining steps, or None (not asked, nothing to do, or stderr is not a terminal)."""
        if not (self.config.progress_bar and epochs_left > 0 and sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(
            total=epochs_left * self.config.steps_per_epoch,
            desc=self.config.experiment.name,
            unit="step",
            dynamic_ncols=True,
            leave=False,
        )

    def train_one_epoch(self, epoch: int, bar: Any) -> dict[str, float]:
        """Shuffle, reseed dropout and take the epoch's steps; returns each loss term summed over its images."""
        config = self.config
        order = np.random.default_rng([config.seed, epoch]).permutation(config.n_train)
        torch.manual_seed(_derived_seed(config.seed, epoch))
        self.model.train()
        sums: dict[str, float] = {}
        for batch in range(config.steps_per_epoch):
            index = np.sort(order[batch * config.batch_size : (batch + 1) * config.batch_size])
            values = self.train_step(epoch, batch, index)
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value * len(index)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{values['loss']:.4f}", refresh=False)
            if self.callback is not None:
                self.callback(
                    {"epoch": epoch, "step": self.progress.step, "batch": batch + 1, "loss": values["loss"]}
                )
        return sums

    def train_step(self, epoch: int, batch: int, index: np.ndarray) -> dict[str, float]:
        """One optimisation step on the images ``index``; returns the loss terms as floats.

        Raises
        ------
        NonFiniteLossError
            The loss is NaN or infinite (before the step is taken).
        """
        config, progress = self.config, self.progress
        x = torch.from_numpy(config.train_images[index]).to(config.device)[:, None]
        y = torch.from_numpy(config.train_labels[index]).to(config.device)[:, None].float()
        experiment = config.experiment
        output = self.model(x, self.prior)
        terms = loss_terms(output, y, config.seg_fn, float(experiment.beta), experiment.grad_identity)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
            kept = (
                f"last good checkpoint {self.paths.last} (epoch {epoch - 1})"
                if self.paths.last.exists()
                else "no checkpoint was written yet"
            )
            raise NonFiniteLossError(
                f"{config.experiment.name}: non-finite loss at epoch {epoch}, step {progress.step + 1} (batch "
                f"{batch + 1} of {config.steps_per_epoch}): {values}. Training stopped; {kept}. Try a lower lr or "
                "check the data."
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        progress.step += 1
        progress.images_seen += len(index)
        return {key: float(value.detach()) for key, value in terms.items()}

    def validate(self) -> tuple[float, float]:
        """(val Dice, val loss) of the current model on the validation split."""
        config = self.config
        return validate(
            self.model,
            config.val_images,
            config.val_labels,
            self.prior,
            batch_size=config.batch_size,
            device=config.device,
            threshold=config.threshold,
            seg_loss=config.seg_fn,
            beta=float(config.experiment.beta),
            grad_identity=config.experiment.grad_identity,
        )

    def end_epoch(self, epoch: int, sums: Mapping[str, float], epoch_start: float) -> None:
        """Validate, record the epoch's history row, save the checkpoints and log the epoch's line."""
        config, progress = self.config, self.progress
        val_dice, val_loss = self.validate()
        seconds = time.perf_counter() - epoch_start
        progress.elapsed_s += seconds
        n = config.n_train
        row = {
            "epoch": epoch,
            "step": progress.step,
            "images_seen": progress.images_seen,
            "loss": sums["loss"] / n,
            "seg_loss": sums["seg_loss"] / n,
            "grad_bulk": sums["grad_bulk"] / n if "grad_bulk" in sums else None,
            "grad_ft": sums["grad_ft"] / n if "grad_ft" in sums else None,
            "val_dice": val_dice,
            "val_loss": val_loss,
            "seconds": round(progress.elapsed_s, 3),
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        progress.history.append(row)
        progress.epoch = epoch
        improved = val_dice > progress.best_val_dice
        if improved:
            progress.best_epoch, progress.best_val_dice = epoch, val_dice
        self.save(improved=improved)
        self.say(_epoch_line(config.experiment.name, row, config.epochs, improved, seconds))

    def checkpoint(self, kind: str) -> dict[str, Any]:
        """The checkpoint dict of the run now."""
        return build_checkpoint(
            kind,
            model=self.model,
            optimizer=self.optimizer,
            experiment=self.config.experiment,
            train_config=self.config.record,
            progress=self.progress,
            pixel_spacing_mm=self.config.pixel_spacing_mm,
        )

    def save(self, *, improved: bool) -> None:
        """Write best.pt (when ``improved``; without optimiser state), last.pt and history.csv, each atomically."""
        state = self.checkpoint("last")
        if improved:
            save_checkpoint({**state, "kind": "best", "optimizer_state": None}, self.paths.best)
        save_checkpoint(state, self.paths.last)
        _write_history(self.progress.history, self.paths.history)


def _remove_stale_temporaries(paths: TrainPaths, say: Callable[[str], None]) -> None:
    """Delete the temporary files a killed writer of best.pt, last.pt or history.csv left in the model folder
    (only names of :func:`tedsnet.io.atomic_path`'s pattern; the final files are always complete)."""
    stale = remove_stale_temporaries(paths)
    if stale:
        say(f"removed {len(stale)} temporary file(s) a killed run left: {', '.join(p.name for p in stale)}")


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(num_threads)`` (None: unchanged), restoring the count after."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        if num_threads is not None:
            torch.set_num_threads(previous)


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
    threshold: float = THRESHOLD,
    seg_loss: str | None = None,
    num_threads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    resume: bool = True,
    time_budget_s: float | None = None,
    patience: int | None = None,
    callback: Callable[[Mapping[str, Any]], None] | None = None,
    speed_mode: str = "fp32",
    init_checkpoint: str | os.PathLike | None = None,
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
        Adam learning rate (paper: 1e-4), finite and in (0, :data:`MAX_LR`].
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
        Show a tqdm progress bar on stderr when stderr is a terminal (never in a log file).
    log : callable, optional
        ``log(message)`` for one line per epoch (epoch, loss terms, validation Dice, seconds) and the start/stop
        messages; default the ``tedsnet.training.engine`` logger at INFO.
    resume : bool
        True: continue from ``out_dir/last.pt`` when it exists (it must match this experiment and configuration).
        False: start from scratch, replacing existing files.
    time_budget_s : float, optional
        Stop after the epoch at whose end the cumulative training time reaches this budget.
    patience : int, optional
        Stop when the validation Dice has not improved for this many epochs.
    callback : callable, optional
        Called after every optimisation step with a mapping ``{"epoch", "step", "batch", "loss"}`` (``loss`` a
        float).
    speed_mode : {"fp32", "eager", "fast", "auto"}
        How the model runs (:mod:`tedsnet.speed.modes`): ``fp32`` (default) is the plain model's maths with cheaper
        dropout masks; ``eager`` the plain model; ``fast`` adds bf16 autocast on the convolutional feature
        networks; ``auto`` is ``fast`` where bf16 convolutions are faster on this device and ``fp32`` elsewhere
        (:mod:`tedsnet.speed.auto`; the choice is logged, and a resumed run keeps the mode it ran in). The mode
        run is part of the run's configuration (a run resumes only in its own mode); checkpoints hold the plain
        model's state dict in every mode.
    init_checkpoint : path, optional
        The ``best.pt`` whose weights the model starts from; required exactly when the experiment has
        ``init_from`` (e.g. ``unet_topo`` fine-tunes ``models/unet/seed<k>/best.pt``). Its digest is part of the
        run's identity, so a resume after the starting checkpoint changed starts again.

    Returns
    -------
    TrainResult

    Raises
    ------
    NonFiniteLossError
        (a FloatingPointError) when the loss is NaN or infinite; names epoch and step; the checkpoints of the
        last completed epoch are kept.
    tedsnet.training.checkpoint.ResumeMismatchError
        (a ValueError) ``resume`` is True and ``out_dir/last.pt`` belongs to another experiment, configuration or
        data; the message names both runs, what differs, and the fix.
    ValueError
        Invalid arguments or data, or an unreadable ``last.pt``.

    Examples
    --------
    >>> result = train("tedsnet", "data/train.npz", "data/val.npz", "models/tedsnet/seed0", epochs=2)  # doctest: +SKIP
    >>> result.best_epoch, result.paths.best  # doctest: +SKIP
    """
    say = log if log is not None else LOGGER.info
    paths = TrainPaths.in_dir(out_dir)
    with _torch_threads(num_threads):
        config = TrainConfig.from_arguments(
            experiment, train_split, val_split, last_run=paths.last, say=say,
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, threshold=threshold,
            seg_loss=seg_loss, speed_mode=speed_mode, resume=resume, time_budget_s=time_budget_s,
            patience=patience, progress=progress, init_checkpoint=init_checkpoint,
        )  # fmt: skip
        paths.best.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(paths, say)
        return _TrainingRun(config, paths, say, callback).run()
