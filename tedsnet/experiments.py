"""The one experiment registry: an experiment name -> a model, its prior and its loss.

Every Table 1 row and every Figure 4 point is an :class:`Experiment`. The registry holds the base entries
(:data:`EXPERIMENTS`): ``prior``, ``unet``, ``unet_smp``, ``voxelmorph``, ``A1`` .. ``A6`` and ``tedsnet``
(paper Table 1). Variants are derived by overrides, either as keyword arguments or encoded in the name::

    get_experiment("tedsnet_steps4")                 # int_steps=4       (Figure 4a)
    get_experiment("tedsnet_radius20")               # prior_radius=20   (Figure 4b)
    get_experiment("tedsnet", int_steps=4)           # the same experiment, named "tedsnet_steps4"
    get_experiment("A4_steps4_radius20_beta100")     # several overrides

Name grammar: ``<base>(_<token><number>)*`` where ``<base>`` is a registered name and ``<token>`` is one of
:data:`NAME_TOKENS` (``steps`` -> model ``int_steps``, ``radius`` -> ``prior_radius``, ``thickness`` ->
``prior_thickness``, ``beta``, ``features`` -> model ``features``). Keyword overrides may name any field of
:class:`Experiment` listed in :data:`EXPERIMENT_OVERRIDES` or any keyword argument of the experiment's model factory.
:func:`variant_name` writes a name in this grammar and :func:`scale_length` rounds a prior radius to a coarser
grid; the workflow names its Figure 4 points with both.

This module is the only bridge between :mod:`tedsnet` and :mod:`baselines`: the tedsnet core never imports
baselines. Adding a method needs no edit here: a module of your own defines an ``nn.Module`` whose
``forward(image, prior)`` returns a :class:`~tedsnet.network.outputs.SegmentationOutput` and calls
:func:`register`; the workflow imports it through the config key ``plugins`` (:func:`load_plugins`), and the
method's name in ``experiments`` makes it a Table 1 row (docs/adding-a-method.md).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tedsnet.network.losses import dice_bce_loss, soft_dice_loss
from tedsnet.network.model import TEDSNet
from tedsnet.network.outputs import THRESHOLD
from tedsnet.network.priors import ring_prior

__all__ = [
    "BETA",
    "DEFAULT_SEG_LOSS",
    "EXPERIMENTS",
    "EXPERIMENT_OVERRIDES",
    "NAME_TOKENS",
    "PLUGIN_MODULE_PATTERN",
    "SEG_LOSSES",
    "TRAINING_OPTION_KEYS",
    "UNET_OUT_BIAS",
    "Experiment",
    "LazyFactory",
    "get_experiment",
    "list_experiments",
    "figure4_sweeps",
    "load_plugins",
    "register",
    "run_seeds",
    "run_training_options",
    "scale_length",
    "variant_name",
    "with_model_settings",
    "with_prior_geometry",
    "zero_field_tedsnet",
]

#: Keys of a run's ``training`` block that a row's training takes, and that ``training.overrides.<row>`` may set.
TRAINING_OPTION_KEYS: tuple[str, ...] = (
    "epochs",
    "batch_size",
    "lr",
    "seg_loss",
    "patience",
    "time_budget_s",
)

#: L_Grad weight of the paper (eq. 2) for TEDS-Net, its ablations with L_Grad, and VoxelMorph.
BETA = 10_000.0


def _dice_batch(pred: Tensor, target: Tensor) -> Tensor:
    return soft_dice_loss(pred, target, per_image=False)


def _dice_image(pred: Tensor, target: Tensor) -> Tensor:
    return soft_dice_loss(pred, target, per_image=True)


def _dice_bce(pred: Tensor, target: Tensor) -> Tensor:
    return dice_bce_loss(pred, target, per_image=True)


def _dice_cldice(pred: Tensor, target: Tensor) -> Tensor:
    from baselines.topology_losses import dice_cldice_loss

    return dice_cldice_loss(pred, target)


def _dice_topology(pred: Tensor, target: Tensor) -> Tensor:
    from baselines.topology_losses import dice_topology_loss

    return dice_topology_loss(pred, target)


def _dice_betti_matching(pred: Tensor, target: Tensor) -> Tensor:
    from baselines.topology_losses import dice_betti_matching_loss

    return dice_betti_matching_loss(pred, target)


#: Segmentation losses by name: ``(pred (B,1,H,W) in [0,1], target (B,1,H,W) binary) -> scalar``.
#: ``dice``: one soft Dice over the batch (the authors' code); ``dice_image``: mean of per-image soft Dice losses;
#: ``dice_bce``: per-image soft Dice + binary cross-entropy; ``dice_cldice``: per-image soft Dice + soft clDice
#: (Shit et al., CVPR 2021); ``dice_topology``: per-image soft Dice + the persistent-homology loss with the ring's
#: Betti numbers (1, 1) as prior (Clough et al., TPAMI 2020); ``dice_betti_matching``: per-image soft Dice + the
#: Betti matching loss (Stucki et al., ICML 2023; the package topolosses). The topology losses live in
#: :mod:`baselines.topology_losses`, imported on first use.
SEG_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "dice": _dice_batch,
    "dice_image": _dice_image,
    "dice_bce": _dice_bce,
    "dice_cldice": _dice_cldice,
    "dice_topology": _dice_topology,
    "dice_betti_matching": _dice_betti_matching,
}

#: The segmentation loss of every registry entry (one protocol for every row): per-image soft Dice, which trains
#: every row at the CPU configs' learning rate, whereas Dice + BCE shrinks TEDS-Net's warped ring away
#: (docs/protocol.md). ``train(seg_loss="dice")`` restores the authors' batch Dice.
DEFAULT_SEG_LOSS = "dice_image"

#: Initial bias (logit) of the U-Nets' output layer: about the log-odds of the 2-5 % myocardium pixels of a
#: 144 x 208 slice (sigmoid(-3) = 0.047). The paper does not state the initialisation; starting at 0 (probability
#: 0.5 everywhere) leaves a U-Net with InstanceNorm'd features many Adam steps away from predicting background.
UNET_OUT_BIAS = -3.0

#: Tokens of the name grammar -> the override they set.
NAME_TOKENS: dict[str, str] = {
    "steps": "int_steps",
    "radius": "prior_radius",
    "thickness": "prior_thickness",
    "beta": "beta",
    "features": "features",
    "epochs": "epochs",
}


class LazyFactory:
    """A model factory named ``"package.module:Name"``, imported on first use.

    The registry names the baselines this way so that ``import tedsnet.experiments`` (and a TEDS-Net-only tool such
    as ``tedsnet segment``) does not pay for importing segmentation-models-pytorch and voxelmorph.
    """

    def __init__(self, path: str) -> None:
        if path.count(":") != 1:
            raise ValueError(f"LazyFactory: path must be 'package.module:Name', got {path!r}.")
        self.path = path

    def resolve(self) -> Callable[..., nn.Module]:
        """The named callable (imports its module)."""
        module, name = self.path.split(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, **kwargs: Any) -> nn.Module:
        return self.resolve()(**kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LazyFactory) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"LazyFactory({self.path!r})"


def _target(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """The callable whose signature describes ``factory``'s keyword arguments."""
    if isinstance(factory, LazyFactory):
        return factory.resolve()
    if factory is zero_field_tedsnet:
        return TEDSNet
    return factory


def zero_field_tedsnet(**kwargs: Any) -> TEDSNet:
    """A :class:`~tedsnet.network.model.TEDSNet` whose field heads are exactly zero: its output is the (dilated) prior.

    TEDS-Net's heads start at weights ~ N(0, 1e-5), almost but not exactly zero; this factory zeroes them so the
    ``prior`` row of Table 1 is the prior itself, slightly dilated by the sampling (Dice 0.89 against the prior at
    threshold 0.3).
    """
    model = TEDSNet(**kwargs)
    with torch.no_grad():
        for head in model.heads.values():
            head.weight.zero_()
            head.bias.zero_()
    return model


def _qualname(obj: Any) -> str:
    if isinstance(obj, LazyFactory):
        return obj.path
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


@dataclass(frozen=True)
class Experiment:
    """One model configuration of the benchmark: how to build the model, its prior and its loss.

    Frozen: derive a variant with :func:`get_experiment` (``get_experiment("tedsnet", int_steps=4)``) or
    :func:`dataclasses.replace`, never by assignment.

    Attributes
    ----------
    name : str
        Unique name, letters, digits and ``_ . = + -``, starting with a letter or digit: the registry key, or the
        canonical name of a variant (e.g. ``"tedsnet_steps4"``). It names the row's files under ``results/<run>/``
        (``models/<name>/``, ``metrics/<name>.csv``).
    label : str
        Display name of the row in tables, figures and the report (e.g. ``"A2 no Gaussian"``).
    factory : callable
        ``factory(**model_kwargs) -> nn.Module``. The module's ``forward(image, prior)`` takes the image
        (B, 1, H, W) float32 and the ring prior (1, 1, H, W) float32 in {0, 1} (it broadcasts over B) and returns a
        :class:`~tedsnet.network.outputs.SegmentationOutput`: segmentation (B, 1, H, W) in [0, 1], and the
        displacement fields that warp the prior (``{}`` for a model that does not warp it). A class, a function,
        or a :class:`LazyFactory` naming one.
    model_kwargs : mapping
        Keyword arguments of ``factory`` (JSON-serialisable values: they are stored in checkpoints).
    beta : float
        Weight (>= 0) of L_Grad on every field the model returns (paper eq. 2: 10,000 for TEDS-Net and VoxelMorph;
        0 for A1, A3 and the U-Nets).
    trains : bool
        False for ``prior``: the model is used as built, with no training.
    grad_identity : bool
        L_Grad of ``identity + displacement`` (True, the authors' formula) or of the displacement alone (False,
        voxelmorph's ``Grad``; see :func:`tedsnet.network.losses.grad_loss`).
    prior_radius, prior_thickness : float
        Outer radius and thickness of the ring prior in pixels, ``0 < thickness <= radius``
        (:func:`tedsnet.network.priors.ring_prior`; paper: radius 30; the authors' code: thickness 7).
    seg_loss : str
        Key of :data:`SEG_LOSSES`.
    paper_label : str or None
        The row's label in the paper's Table 1 (``workflow/resources/paper_table1.csv``), None for rows the paper
        does not have.
    description : str
        One line for reports.
    base : str
        The registry entry this experiment derives from; empty means its own name (base entries).
    overrides : mapping
        The overrides applied to ``base`` (empty for base entries).
    epochs : int or None
        The experiment's own training budget in epochs (e.g. ``tedsnet_epochs12``); None trains for the run's
        ``training.epochs``.
    init_from : str or None
        The experiment whose trained checkpoint of the same seed initialises this model's weights (a fine-tune,
        or a model that only post-processes it); None starts from the factory's initialisation.

    Raises
    ------
    ValueError
        A malformed ``name``, an unknown ``seg_loss``, a negative ``beta`` or an invalid prior geometry.
    TypeError
        ``factory`` is not callable.

    Examples
    --------
    >>> from tedsnet.network.model import TEDSNet
    >>> exp = Experiment(name="mine", label="Mine", factory=TEDSNet, model_kwargs={"int_steps": 4}, beta=BETA)
    >>> exp.prior((96, 128)).shape
    (96, 128)
    """

    name: str
    label: str
    factory: Callable[..., nn.Module]
    model_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    beta: float = 0.0
    trains: bool = True
    grad_identity: bool = True
    prior_radius: float = 30.0
    prior_thickness: float = 7.0
    seg_loss: str = DEFAULT_SEG_LOSS
    paper_label: str | None = None
    description: str = ""
    base: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict, hash=False)
    epochs: int | None = None
    init_from: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*", self.name):
            raise ValueError(
                f"Experiment: name must be a non-empty string of letters, digits and _ . = + -, got {self.name!r}."
            )
        if not callable(self.factory):
            raise TypeError(f"Experiment {self.name}: factory must be callable, got {self.factory!r}.")
        if self.seg_loss not in SEG_LOSSES:
            raise ValueError(
                f"Experiment {self.name}: seg_loss must be one of {sorted(SEG_LOSSES)}, got {self.seg_loss!r}."
            )
        if not self.beta >= 0:
            raise ValueError(f"Experiment {self.name}: beta must be >= 0, got {self.beta}.")
        if self.epochs is not None and not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(
                f"Experiment {self.name}: epochs must be None or an integer >= 1, got {self.epochs!r}."
            )
        if not 0 < self.prior_thickness <= self.prior_radius:
            raise ValueError(
                f"Experiment {self.name}: need 0 < prior_thickness <= prior_radius, got thickness "
                f"{self.prior_thickness} and radius {self.prior_radius}."
            )
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        object.__setattr__(self, "overrides", dict(self.overrides))
        if not self.base:
            object.__setattr__(self, "base", self.name)

    def build(self, seed: int | None = None) -> nn.Module:
        """Instantiate the model (``factory(**model_kwargs)``); with ``seed``, ``torch.manual_seed(seed)`` first."""
        if seed is not None:
            torch.manual_seed(seed)
        return self.factory(**self.model_kwargs)

    def prior(self, shape: tuple[int, int]) -> np.ndarray:
        """The ring prior, bool (H, W): :func:`tedsnet.network.priors.ring_prior` with this experiment's radius/thickness."""
        return ring_prior(shape, self.prior_radius, self.prior_thickness)

    def prior_tensor(self, shape: tuple[int, int], device=None, dtype=torch.float32) -> Tensor:
        """The prior as the (1, 1, H, W) float tensor every model's ``forward`` takes (it broadcasts over B)."""
        return torch.as_tensor(self.prior(shape), dtype=dtype, device=device)[None, None]

    def seg_loss_fn(self) -> Callable[[Tensor, Tensor], Tensor]:
        """The segmentation loss ``(pred, target) -> scalar`` named by :attr:`seg_loss`."""
        return SEG_LOSSES[self.seg_loss]

    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description (what checkpoints store and :meth:`config_hash` hashes)."""
        return {
            "name": self.name,
            "base": self.base,
            "overrides": _jsonable(self.overrides),
            "factory": _qualname(self.factory),
            "model_kwargs": _jsonable(self.model_kwargs),
            "beta": float(self.beta),
            "trains": bool(self.trains),
            "prior_radius": float(self.prior_radius),
            "prior_thickness": float(self.prior_thickness),
            "seg_loss": self.seg_loss,
            # only when not the default, so that the hashes of existing runs stay valid
            **({} if self.grad_identity else {"grad_identity": False}),
            **({} if self.epochs is None else {"epochs": int(self.epochs)}),
            **({} if self.init_from is None else {"init_from": self.init_from}),
        }

    def config_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of :meth:`config`."""
        text = json.dumps(self.config(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Fields of :class:`Experiment` that keyword overrides may set (anything else must be a factory argument).
EXPERIMENT_OVERRIDES = (
    "beta",
    "trains",
    "grad_identity",
    "prior_radius",
    "prior_thickness",
    "seg_loss",
    "label",
    "epochs",
    "init_from",
)

#: The registry: base experiment name -> Experiment. Use :func:`register` to add to it.
EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment, *, replace_existing: bool = False) -> Experiment:
    """Add ``experiment`` to :data:`EXPERIMENTS` under its name and return it.

    The entry becomes a base experiment: :func:`get_experiment` resolves its name and its variants
    (``<name>_<token><number>``), the workflow trains it when its name is listed in the config's ``experiments``
    (a module of your own that calls this is named in the config's ``plugins``: docs/adding-a-method.md), and
    :func:`tedsnet.training.checkpoint.load_checkpoint` rebuilds it from a checkpoint once it is registered again.
    Registration order is the row order of :func:`list_experiments`.

    Parameters
    ----------
    experiment : Experiment
        The entry; its ``name`` is the key.
    replace_existing : bool
        Replace an entry of the same name instead of raising.

    Returns
    -------
    Experiment
        ``experiment`` itself.

    Raises
    ------
    TypeError
        ``experiment`` is not an :class:`Experiment`.
    ValueError
        The name is taken (and not ``replace_existing``), or it ends like a variant suffix
        (``_<token><number>`` with a token of :data:`NAME_TOKENS`, e.g. ``mynet_steps4``), which
        :func:`get_experiment` would read as an override.

    Examples
    --------
    >>> from baselines.unet import UNet
    >>> entry = register(Experiment(name="small_unet", label="U-Net (4 features)", factory=UNet,
    ...                             model_kwargs={"features": 4}))
    >>> get_experiment("small_unet") is entry
    True
    """
    if not isinstance(experiment, Experiment):
        raise TypeError(f"register: expected an Experiment, got {type(experiment).__name__}.")
    if experiment.name in EXPERIMENTS and not replace_existing:
        raise ValueError(
            f"register: experiment {experiment.name!r} is already registered; pick another name or pass "
            "replace_existing=True."
        )
    if _TOKEN_RE.fullmatch(experiment.name.rsplit("_", 1)[-1]) and "_" in experiment.name:
        raise ValueError(
            f"register: name {experiment.name!r} ends like a variant suffix (_<token><number>, tokens "
            f"{sorted(NAME_TOKENS)}); choose another name."
        )
    EXPERIMENTS[experiment.name] = experiment
    return experiment


_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_TOKEN_RE = re.compile(rf"({'|'.join(NAME_TOKENS)})({_NUMBER})")


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and re.fullmatch(r"[-+]?\d+", text) else value


def _format_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(_format_value(v) for v in value)
    return str(value)


def _parse_name(name: str) -> tuple[str, dict[str, Any]]:
    """Split ``"<base>_<token><number>..."`` into the base name and its overrides."""
    if name in EXPERIMENTS:
        return name, {}
    for base in sorted(EXPERIMENTS, key=len, reverse=True):
        if not name.startswith(base + "_"):
            continue
        overrides: dict[str, Any] = {}
        for token in name[len(base) + 1 :].split("_"):
            match = _TOKEN_RE.fullmatch(token)
            if match is None:
                break
            key = NAME_TOKENS[match.group(1)]
            if key in overrides:
                raise ValueError(f"get_experiment: {name!r} sets {key} twice.")
            overrides[key] = _number(match.group(2))
        else:
            return base, overrides
    raise ValueError(
        f"get_experiment: unknown experiment {name!r}. Known: {list_experiments()}; variants are "
        f"<name>_<token><number> with tokens {sorted(NAME_TOKENS)} (e.g. 'tedsnet_steps4', 'tedsnet_radius20')."
    )


def _factory_parameters(factory: Callable[..., nn.Module]) -> set[str] | None:
    """Keyword parameters the factory accepts, or None if it takes ``**kwargs`` (accept anything)."""
    try:
        signature = inspect.signature(_target(factory))
    except (TypeError, ValueError):
        return None
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _split_overrides(
    name: str, base: Experiment, overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``overrides`` split into changes of :class:`Experiment` fields and of model keyword arguments; a value equal
    to the base's is dropped. Raises ValueError for a key that is neither."""
    accepted = _factory_parameters(base.factory)
    field_changes: dict[str, Any] = {}
    model_changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in EXPERIMENT_OVERRIDES:
            if getattr(base, key) != value:
                field_changes[key] = value
        elif accepted is None or key in accepted:
            current = base.model_kwargs.get(key, _default_of(base.factory, key))
            if current != value:
                model_changes[key] = value
        else:
            raise ValueError(
                f"get_experiment: {name!r} does not accept the override {key!r}; allowed: "
                f"{sorted(EXPERIMENT_OVERRIDES)} and the model's arguments {sorted(accepted)}."
            )
    return field_changes, model_changes


def get_experiment(name: str, **overrides: Any) -> Experiment:
    """The experiment ``name`` (a registry entry or a variant name), with keyword ``overrides`` applied.

    Parameters
    ----------
    name : str
        A key of :data:`EXPERIMENTS`, or a variant ``<base>_<token><number>...`` (see the module docstring).
    **overrides
        Fields in :data:`EXPERIMENT_OVERRIDES` (``beta``, ``trains``, ``prior_radius``, ``prior_thickness``,
        ``seg_loss``, ``label``) or keyword arguments of the base's model factory (e.g. ``int_steps``,
        ``features``, ``smooth_sigma``).

    Returns
    -------
    Experiment
        The base entry itself when there are no overrides; otherwise a new Experiment named
        ``<base>_<token><value>...`` (tokens in the order of :data:`NAME_TOKENS`, then ``_<key>-<value>`` for
        overrides without a token, sorted), whose ``base`` and ``overrides`` record the derivation. An override
        equal to the base's value is dropped.

    Raises
    ------
    TypeError
        ``name`` is not a string.
    ValueError
        Unknown name or override key, or an invalid value (the message lists what is allowed). A method of your
        own is unknown until the module that registers it is imported (:func:`load_plugins`).

    Examples
    --------
    >>> get_experiment("tedsnet", int_steps=4).name
    'tedsnet_steps4'
    >>> get_experiment("tedsnet_steps8") is EXPERIMENTS["tedsnet"]  # 8 is TEDS-Net's own value
    True
    """
    if not isinstance(name, str):
        raise TypeError(f"get_experiment: name must be a string, got {type(name).__name__}.")
    base_name, parsed = _parse_name(name)
    for key in set(parsed) & set(overrides):
        if parsed[key] != overrides[key]:
            raise ValueError(
                f"get_experiment: {key} is {parsed[key]!r} in the name {name!r} and {overrides[key]!r} as a keyword."
            )
    merged = {**parsed, **overrides}
    base = EXPERIMENTS[base_name]
    if not merged:  # a base entry as registered (without importing a lazy factory's module)
        return base
    field_changes, model_changes = _split_overrides(name, base, merged)
    if not field_changes and not model_changes:
        return base
    applied = {**field_changes, **model_changes}
    applied.pop("label", None)
    label = field_changes.pop("label", None)
    if label is None:
        label = base.label + (
            " (" + ", ".join(f"{k}={_format_value(v)}" for k, v in sorted(applied.items())) + ")"
        )
    return replace(
        base,
        name=variant_name(base_name, applied),
        label=label,
        model_kwargs={**base.model_kwargs, **model_changes},
        base=base_name,
        overrides=applied,
        **field_changes,
    )


def with_prior_geometry(
    name: str,
    prior_radius: float | None = None,
    prior_thickness: float | None = None,
    pixel_scale: float = 1.0,
) -> Experiment:
    """The experiment ``name`` with a run's ring-prior geometry wherever the name does not set its own.

    Radius and thickness are given in pixels of the ACDC-like grid (the registry's 30 and 7, the paper's radius);
    a run on a grid ``pixel_scale`` times coarser (e.g. the default phantom, 1.5) divides them by it, rounded to
    0.1 px, so the prior keeps its size relative to the anatomy. A Figure 4 point that names its radius
    (``tedsnet_radius13.3``, already in the run's pixels) keeps it. The label stays the one of
    ``get_experiment(name)`` (Table 1 rows keep their names; the geometry is in the run's config).

    Parameters
    ----------
    name : str
        Registry or variant name (:func:`get_experiment`).
    prior_radius, prior_thickness : float or None
        Outer radius and thickness of the ring prior in ACDC-grid pixels; None keeps the experiment's own.
    pixel_scale : float
        The run's pixel size relative to the ACDC-like grid (> 0).

    Returns
    -------
    Experiment
        ``get_experiment(name, prior_radius=..., prior_thickness=...)`` with the label of ``name``; the entry of
        ``name`` itself when nothing changes.

    Raises
    ------
    ValueError
        A non-positive ``pixel_scale``, or an invalid geometry (see :class:`Experiment`).
    """
    if not float(pixel_scale) > 0:
        raise ValueError(f"with_prior_geometry: pixel_scale must be > 0, got {pixel_scale!r}")
    named = get_experiment(name)
    _, parsed = _parse_name(name)
    geometry = {}
    for key, value in (("prior_radius", prior_radius), ("prior_thickness", prior_thickness)):
        if key in parsed:
            continue
        value = scale_length(getattr(named, key) if value is None else value, pixel_scale)
        if value != float(getattr(named, key)):
            geometry[key] = value
    if not geometry:
        return named
    return replace(get_experiment(name, **geometry), label=named.label)


def with_model_settings(experiment: Experiment, settings: Mapping[str, Any]) -> Experiment:
    """``experiment`` with those of the run's model ``settings`` its model takes (keys already in its
    ``model_kwargs``, e.g. the post-processing's ``threshold`` and ``closing_radius_px``), its label kept.

    The settings become overrides, so a checkpoint records them and :func:`tedsnet.training.checkpoint.load_checkpoint`
    rebuilds the same model; keys the model does not take are ignored.

    Examples
    --------
    >>> with_model_settings(get_experiment("unet_post"), {"closing_radius_px": 2}).model_kwargs["closing_radius_px"]
    2
    """
    wanted = {k: v for k, v in settings.items() if k in experiment.model_kwargs}
    if all(experiment.model_kwargs[k] == v for k, v in wanted.items()):
        return experiment
    changed = get_experiment(experiment.base, **{**experiment.overrides, **wanted})
    return replace(changed, label=experiment.label)


def _default_of(factory: Callable[..., nn.Module], key: str) -> Any:
    try:
        parameter = inspect.signature(_target(factory)).parameters.get(key)
    except (TypeError, ValueError):
        return inspect.Parameter.empty
    return inspect.Parameter.empty if parameter is None else parameter.default


def variant_name(base: str, overrides: Mapping[str, Any]) -> str:
    """The canonical name of ``base`` with ``overrides``, as :func:`get_experiment` names its variants.

    Tokens of :data:`NAME_TOKENS` come first in that order (``_steps4``, ``_radius13.3``), then every other
    override as ``_<key>-<value>``, sorted by key. Whole numbers are written without a decimal point (20.0 ->
    ``20``), other floats with ``:g``. Unlike :func:`get_experiment` the name is only written: nothing is checked
    against the registry and an override equal to the base's value is kept.

    Parameters
    ----------
    base : str
        A base experiment name.
    overrides : mapping
        Override key -> value (e.g. ``{"prior_radius": 13.3}``).

    Returns
    -------
    str
        ``base`` itself when ``overrides`` is empty.

    Examples
    --------
    >>> variant_name("tedsnet", {"prior_radius": 20.0, "int_steps": 4})
    'tedsnet_steps4_radius20'
    """
    tokens = [f"{tok}{_format_value(overrides[key])}" for tok, key in NAME_TOKENS.items() if key in overrides]
    keyed = set(NAME_TOKENS.values())
    tokens += [f"{k}-{_format_value(v)}" for k, v in sorted(overrides.items()) if k not in keyed]
    return "_".join([base, *tokens])


def scale_length(length: float, pixel_scale: float) -> float:
    """A length in ACDC-grid pixels (a prior radius or thickness) on a grid ``pixel_scale`` times coarser.

    Divided by ``pixel_scale`` and rounded to 0.1 px, the precision variant names write (30 px at scale 1.5 ->
    20.0, 20 px -> 13.3); at scale 1 the length is returned unrounded.

    Parameters
    ----------
    length : float
        Pixels of the ACDC-like grid.
    pixel_scale : float
        The run's pixel size relative to the ACDC-like grid (> 0; ``data.phantom.pixel_scale``).

    Returns
    -------
    float
        Pixels of the run's grid.
    """
    length = float(length)
    return length if float(pixel_scale) == 1.0 else round(length / float(pixel_scale), 1)


def list_experiments() -> list[str]:
    """Names of the registered base experiments, in registration (Table 1) order."""
    return list(EXPERIMENTS)


#: A dotted module name (what ``import`` takes), the form of every entry of the workflow's ``plugins``.
PLUGIN_MODULE_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"


def run_training_options(name: str, training: Mapping[str, Any]) -> dict[str, Any]:
    """How one row trains in a run: the run's ``training`` block, then the row's own budget (``epochs`` of the
    experiment, e.g. ``tedsnet_epochs12``), then the row's ``training.overrides.<name>``, later ones winning.

    Parameters
    ----------
    name : str
        A registry name or variant name (:func:`get_experiment`).
    training : mapping
        A run's ``training`` block with every key of :data:`TRAINING_OPTION_KEYS` (schema defaults filled) and
        optionally ``overrides``.

    Returns
    -------
    dict
        The :data:`TRAINING_OPTION_KEYS` values for this row.

    Examples
    --------
    >>> training = {"epochs": 4, "batch_size": 5, "lr": 1e-3, "seg_loss": None, "patience": None,
    ...             "time_budget_s": None, "overrides": {"unet_topo": {"epochs": 1, "lr": 1e-4}}}
    >>> run_training_options("tedsnet_epochs12", training)["epochs"], run_training_options("unet_topo", training)["lr"]
    (12, 0.0001)
    """
    options = {key: training[key] for key in TRAINING_OPTION_KEYS}
    own_epochs = get_experiment(name).epochs
    if own_epochs is not None:
        options["epochs"] = own_epochs
    overrides = (training.get("overrides") or {}).get(name, {})
    options.update({k: v for k, v in overrides.items() if k in TRAINING_OPTION_KEYS})
    return options


def run_seeds(name: str, training: Mapping[str, Any]) -> list[int]:
    """The seeds one row trains with in a run: ``training.overrides.<name>.seeds``, else ``training.seeds``.

    >>> run_seeds("unet", {"seeds": [0], "overrides": {"unet": {"seeds": [0, 1, 2]}}})
    [0, 1, 2]
    """
    own = (training.get("overrides") or {}).get(name, {}).get("seeds")
    return [int(s) for s in (own or training["seeds"])]


def figure4_sweeps(figure4: Mapping[str, Any], pixel_scale: float = 1.0) -> dict[str, dict[Any, str]]:
    """The Figure 4 points of a run: ``{"int_steps": {value: experiment}, "prior_radius": {...}}``.

    The base's own value reuses the base experiment; every other value is its registry variant
    (:func:`variant_name`). Radii are given on the ACDC grid and named on the run's (:func:`scale_length`).

    Parameters
    ----------
    figure4 : mapping
        The workflow's ``figure4`` config: ``base``, ``base_int_steps``, ``base_prior_radius``, ``int_steps`` and
        ``prior_radius`` (lists of values; an empty list drops that sweep).
    pixel_scale : float
        The run's pixel size relative to the ACDC grid (1 for ACDC).

    Returns
    -------
    dict
        Sweep key -> {value on the run's grid -> experiment name}, sweeps with no value left out.

    Examples
    --------
    >>> fig4 = {"base": "tedsnet", "base_int_steps": 8, "base_prior_radius": 30, "int_steps": [4, 8],
    ...         "prior_radius": [30, 40]}
    >>> figure4_sweeps(fig4, pixel_scale=1.5)
    {'int_steps': {4: 'tedsnet_steps4', 8: 'tedsnet'}, 'prior_radius': {20.0: 'tedsnet', 26.7: 'tedsnet_radius26.7'}}
    """
    base, sweeps = figure4["base"], {}
    for key, base_value, scaled in (
        ("int_steps", figure4["base_int_steps"], False),
        ("prior_radius", figure4["base_prior_radius"], True),
    ):
        if scaled:
            base_value = scale_length(base_value, pixel_scale)
        points = {}
        for value in figure4[key]:
            if scaled:
                value = scale_length(value, pixel_scale)
            points[value] = base if float(value) == float(base_value) else variant_name(base, {key: value})
        if points:
            sweeps[key] = points
    return sweeps


def load_plugins(modules: Iterable[str], search_path: str | os.PathLike | None = None) -> list[ModuleType]:
    """Import the modules that register methods of their own (the workflow's ``plugins`` config key).

    Each module is imported once per process (Python caches it); importing it runs its :func:`register` calls, so
    its experiments resolve by name afterwards. The workflow calls this with the config's ``plugins`` and the
    working directory as ``search_path`` in the Snakefile and in every job, before any name is resolved.

    Parameters
    ----------
    modules : iterable of str
        Dotted module names (``"my_method"`` for a file ``my_method.py``, ``"mypackage.my_method"``).
    search_path : str or os.PathLike, optional
        A folder put first on ``sys.path`` (once) before importing, so a module in it needs no install.

    Returns
    -------
    list of module
        The imported modules, in order.

    Raises
    ------
    ValueError
        An entry is not a dotted module name (e.g. a file name ``"my_method.py"``).
    ModuleNotFoundError
        No module of that name is importable (the message says where it was looked for). An import error
        inside the module itself propagates unchanged.

    Examples
    --------
    >>> import os
    >>> load_plugins([], search_path=os.getcwd())
    []
    """
    if search_path is not None:
        folder = os.fspath(Path(search_path).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
    loaded = []
    for name in modules:
        if not isinstance(name, str) or not re.fullmatch(PLUGIN_MODULE_PATTERN, name) or name.endswith(".py"):
            raise ValueError(
                f"load_plugins: expected a dotted module name such as 'my_method' or 'mypackage.my_method', got "
                f"{name!r}; a file my_method.py is the module 'my_method'."
            )
        try:
            loaded.append(importlib.import_module(name))
        except ModuleNotFoundError as error:
            if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
                raise  # the plugin was found; something it imports is missing
            where = f"{search_path} (searched first) or " if search_path is not None else ""
            raise ModuleNotFoundError(
                f"load_plugins: no module {name!r} in {where}the installed packages. Put {name.split('.')[-1]}.py "
                "in the folder you run snakemake from, or install the package that holds it.",
                name=name,
            ) from None
    return loaded


# --------------------------------------------------------------------------------------------------------------
# The registry, in paper Table 1 order. A method of your own registers itself from its own module
# (docs/adding-a-method.md); a baseline shipped with the suite is registered here with a LazyFactory.
# --------------------------------------------------------------------------------------------------------------
register(
    Experiment(
        name="prior",
        label="Prior (zero fields)",
        factory=zero_field_tedsnet,
        beta=0.0,
        trains=False,
        description="TEDS-Net with exactly zero fields, untrained: the ring prior itself.",
    )
)
register(
    Experiment(
        name="unet",
        label="U-Net (paper)",
        factory=LazyFactory("baselines.unet:UNet"),
        model_kwargs={"out_bias": UNET_OUT_BIAS},
        paper_label="U-Net",
        description=(
            "The paper's U-Net from TEDS-Net's blocks (12 features, 5 layers, dropout 0.2), image only, output bias "
            "initialised at -3."
        ),
    )
)
register(
    Experiment(
        name="unet_smp",
        label="U-Net (smp)",
        factory=LazyFactory("baselines.smp_unet:SMPUNet"),
        model_kwargs={"encoder_name": "resnet18", "out_bias": UNET_OUT_BIAS},
        description=(
            "segmentation-models-pytorch Unet, resnet18 encoder, random init (no download), zero-padded to /32, "
            "output bias initialised at -3."
        ),
    )
)
register(
    Experiment(
        name="voxelmorph",
        label="VoxelMorph",
        factory=LazyFactory("baselines.voxelmorph:VoxelMorph"),
        model_kwargs={"int_steps": 7, "nb_features": (16, 32, 32, 32)},
        beta=BETA,
        grad_identity=False,
        paper_label="VoxelMorph",
        description=(
            "voxelmorph VxmPairwise: prior -> image, 7 scaling-and-squaring steps, L_Grad of its displacement "
            "(voxelmorph's Grad; with the identity term its unbounded velocity collapses the map)."
        ),
    )
)
_ABLATIONS = [
    ("A1", "A1 no Gaussian / L_Grad / super upsample", {"smooth_sigma": None, "upsample": 1}, 0.0),
    ("A2", "A2 no Gaussian", {"smooth_sigma": None}, BETA),
    ("A3", "A3 no L_Grad", {}, 0.0),
    ("A4", "A4 no super upsample", {"upsample": 1}, BETA),
    ("A5", "A5 bulk branch only", {"branches": ("bulk",)}, BETA),
    ("A6", "A6 fine-tune branch only", {"branches": ("ft",)}, BETA),
]
for _name, _label, _kwargs, _beta in _ABLATIONS:
    register(
        Experiment(
            name=_name,
            label=_label,
            factory=TEDSNet,
            model_kwargs=_kwargs,
            beta=_beta,
            paper_label=_label,
            description=f"TEDS-Net ablation {_label}.",
        )
    )
register(
    Experiment(
        name="tedsnet",
        label="TEDS-Net",
        factory=TEDSNet,
        beta=BETA,
        paper_label="TEDS-Net",
        description="TEDS-Net: both branches, 8 composition layers, Gaussian, super upsample, beta 10,000.",
    )
)
del _name, _label, _kwargs, _beta


# Topology-aware baselines: the U-Net with the usual morphological fix, and U-Nets trained with topology losses.
def _register_unet_variant(name: str, label: str, description: str, **fields: Any) -> None:
    """Register a row built on the paper U-Net: its factory (unless given) and output bias, plus ``fields``."""
    extra_kwargs = fields.pop("model_kwargs", {})
    fields.setdefault("factory", LazyFactory("baselines.unet:UNet"))
    register(
        Experiment(
            name=name,
            label=label,
            model_kwargs={"out_bias": UNET_OUT_BIAS, **extra_kwargs},
            description=description,
            **fields,
        )
    )


_register_unet_variant(
    "unet_post",
    "U-Net + post-processing",
    "The trained paper U-Net, its prediction post-processed: largest 4-connected component, binary closing with a "
    "disk, every hole but the largest (the cavity) filled. No training.",
    factory=LazyFactory("baselines.postprocess:PostProcessedUNet"),
    model_kwargs={"threshold": THRESHOLD, "closing_radius_px": 1},
    trains=False,
    init_from="unet",
)
_register_unet_variant(
    "unet_cldice",
    "U-Net + clDice",
    "The paper U-Net trained from scratch with per-image soft Dice + soft clDice (Shit et al. 2021).",
    seg_loss="dice_cldice",
)
_register_unet_variant(
    "unet_topo",
    "U-Net + PH loss (Betti prior)",
    "The trained paper U-Net fine-tuned with per-image soft Dice + a persistent-homology loss whose prior is the "
    "ring's Betti numbers (1, 1) (Clough et al. 2020).",
    seg_loss="dice_topology",
    init_from="unet",
)
_register_unet_variant(
    "unet_bettimatch",
    "U-Net + Betti matching",
    "The paper U-Net trained from scratch with per-image soft Dice + 0.5 x the Betti matching loss (Stucki et al. "
    "2023; the topolosses package).",
    seg_loss="dice_betti_matching",
)
