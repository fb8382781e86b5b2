"""The one experiment registry: an experiment name -> a model, its prior and its loss (DESIGN.md sections 2, 5).

Every Table 1 row and every Figure 4 point is an :class:`Experiment`. The registry holds the base entries
(:data:`EXPERIMENTS`): ``prior``, ``unet``, ``unet_smp``, ``voxelmorph``, ``A1`` .. ``A6`` and ``tedsnet``.
Variants are derived by overrides, either as keyword arguments or encoded in the name::

    get_experiment("tedsnet_steps4")                 # int_steps=4       (Figure 4a)
    get_experiment("tedsnet_radius20")               # prior_radius=20   (Figure 4b)
    get_experiment("tedsnet", int_steps=4)           # the same experiment, named "tedsnet_steps4"
    get_experiment("A4_steps4_radius20_beta100")     # several overrides

Name grammar: ``<base>(_<token><number>)*`` where ``<base>`` is a registered name and ``<token>`` is one of
:data:`NAME_TOKENS` (``steps`` -> model ``int_steps``, ``radius`` -> ``prior_radius``, ``thickness`` ->
``prior_thickness``, ``beta``, ``features`` -> model ``features``). Keyword overrides may name any field of
:class:`Experiment` listed in :data:`EXPERIMENT_OVERRIDES` or any keyword argument of the experiment's model factory.

This module is the only bridge between :mod:`tedsnet` and :mod:`baselines`: the tedsnet core never imports
baselines. Adding a method = one module (a ``nn.Module`` whose ``forward(image, prior)`` returns a
:class:`~tedsnet.network.outputs.SegmentationOutput`) + one :func:`register` call (see :data:`EXPERIMENTS` below).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tedsnet.network.losses import dice_bce_loss, soft_dice_loss
from tedsnet.network.model import TEDSNet
from tedsnet.network.priors import ring_prior

__all__ = [
    "BETA",
    "DEFAULT_SEG_LOSS",
    "EXPERIMENTS",
    "EXPERIMENT_OVERRIDES",
    "NAME_TOKENS",
    "SEG_LOSSES",
    "UNET_OUT_BIAS",
    "Experiment",
    "LazyFactory",
    "get_experiment",
    "list_experiments",
    "register",
    "with_prior_geometry",
    "zero_field_tedsnet",
]

#: L_Grad weight of the paper (eq. 2) for TEDS-Net, its ablations with L_Grad, and VoxelMorph.
BETA = 10_000.0


def _dice_batch(pred: Tensor, target: Tensor) -> Tensor:
    return soft_dice_loss(pred, target, per_image=False)


def _dice_image(pred: Tensor, target: Tensor) -> Tensor:
    return soft_dice_loss(pred, target, per_image=True)


def _dice_bce(pred: Tensor, target: Tensor) -> Tensor:
    return dice_bce_loss(pred, target, per_image=True)


#: Segmentation losses by name: ``(pred (B,1,H,W) in [0,1], target (B,1,H,W) binary) -> scalar``.
#: ``dice``: one soft Dice over the batch (the authors' code); ``dice_image``: mean of per-image soft Dice losses;
#: ``dice_bce``: per-image soft Dice + binary cross-entropy.
SEG_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "dice": _dice_batch,
    "dice_image": _dice_image,
    "dice_bce": _dice_bce,
}

#: The segmentation loss of every registry entry (one protocol for every row). Per-image soft Dice: on the phantom
#: it trains TEDS-Net as well as the authors' batch Dice at lr 1e-4 and better at lr 1e-3, and the U-Nets (with
#: :data:`UNET_OUT_BIAS`) converge in a few hundred steps; Dice + BCE breaks TEDS-Net (BCE shrinks the warped ring
#: away). Measurements: notes/training.md. ``train(seg_loss="dice")`` restores the authors' loss.
DEFAULT_SEG_LOSS = "dice_image"

#: Initial bias (logit) of the U-Nets' output layer: about the log-odds of the 2-5 % myocardium pixels of a
#: 144 x 208 slice (sigmoid(-3) = 0.047). The paper does not state the initialisation; starting at 0 (probability
#: 0.5 everywhere) leaves a U-Net with InstanceNorm'd features hundreds of Adam steps away from predicting
#: background, which is most of why the paper U-Net stays at Dice < 0.3 for 20 CPU minutes (notes/training.md).
UNET_OUT_BIAS = -3.0

#: Tokens of the name grammar -> the override they set.
NAME_TOKENS: dict[str, str] = {
    "steps": "int_steps",
    "radius": "prior_radius",
    "thickness": "prior_thickness",
    "beta": "beta",
    "features": "features",
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
    ``prior`` row of Table 1 is the prior itself (Dice 0.89 against the prior at threshold 0.3, DESIGN.md).
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

    Attributes
    ----------
    name : str
        Unique name (registry key, or the canonical name of a variant, e.g. ``"tedsnet_steps4"``).
    label : str
        Row label for tables and figures (e.g. ``"A2 no Gaussian"``).
    factory : callable
        ``factory(**model_kwargs) -> nn.Module``; the module's ``forward(image, prior)`` returns a
        :class:`~tedsnet.network.outputs.SegmentationOutput`.
    model_kwargs : mapping
        Keyword arguments of ``factory``.
    beta : float
        Weight of L_Grad on every field the model returns (paper: 10,000 for TEDS-Net and VoxelMorph; 0 for A1, A3
        and the U-Nets).
    trains : bool
        False for ``prior``: the model is used as built, with no training.
    grad_identity : bool
        L_Grad of ``identity + displacement`` (True, the authors' formula) or of the displacement alone (False,
        voxelmorph's ``Grad``; see :func:`tedsnet.network.losses.grad_loss`).
    prior_radius, prior_thickness : float
        Outer radius and thickness of the ring prior in pixels (:func:`tedsnet.network.priors.ring_prior`; paper: 30, 7).
    seg_loss : str
        Key of :data:`SEG_LOSSES`.
    paper_label : str or None
        The row's label in the paper's Table 1 (``/work/shared/paper/table1.csv`` style), None for rows the paper
        does not have.
    description : str
        One line for reports.
    base : str
        The registry entry this experiment derives from (its own name for base entries).
    overrides : mapping
        The overrides applied to ``base`` (empty for base entries).
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
)

#: The registry: base experiment name -> Experiment. Use :func:`register` to add to it.
EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment, *, replace_existing: bool = False) -> Experiment:
    """Add ``experiment`` to :data:`EXPERIMENTS` under its name and return it.

    Raises ValueError if the name is taken (unless ``replace_existing``) or could be mistaken for a variant
    (a name ending in ``_<token><number>``).
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
    ValueError
        Unknown name or override key, or an invalid value (the message lists what is allowed).
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
    accepted = _factory_parameters(base.factory)
    field_changes: dict[str, Any] = {}
    model_changes: dict[str, Any] = {}
    for key, value in merged.items():
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
        name=_variant_name(base_name, applied),
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
        value = float(getattr(named, key) if value is None else value)
        value = round(value / float(pixel_scale), 1) if float(pixel_scale) != 1.0 else value
        if value != float(getattr(named, key)):
            geometry[key] = value
    if not geometry:
        return named
    return replace(get_experiment(name, **geometry), label=named.label)


def _default_of(factory: Callable[..., nn.Module], key: str) -> Any:
    try:
        parameter = inspect.signature(_target(factory)).parameters.get(key)
    except (TypeError, ValueError):
        return inspect.Parameter.empty
    return inspect.Parameter.empty if parameter is None else parameter.default


def _variant_name(base: str, applied: Mapping[str, Any]) -> str:
    tokens = [f"{tok}{_format_value(applied[key])}" for tok, key in NAME_TOKENS.items() if key in applied]
    keyed = set(NAME_TOKENS.values())
    tokens += [f"{k}-{_format_value(v)}" for k, v in sorted(applied.items()) if k not in keyed]
    return "_".join([base, *tokens])


def list_experiments() -> list[str]:
    """Names of the registered base experiments, in registration (Table 1) order."""
    return list(EXPERIMENTS)


# --------------------------------------------------------------------------------------------------------------
# The registry (Table 1 order). To add a method: write baselines/<yours>.py and register it here, e.g. with
# factory=LazyFactory("baselines.<yours>:<YourNet>").
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
