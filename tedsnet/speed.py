"""Speed modes: the same model run in a plain, an optimised fp32, or a bf16-on-convolutions way.

``eager``
    The model exactly as built from standard torch modules: the reference the benchmark compares against.
``fp32`` (default for training)
    The same maths as ``eager``: eval-mode outputs and fields equal it to float32 rounding (tested within 1e-5);
    only how random dropout masks are drawn and how threads are used change.
``fast``
    ``fp32`` plus bf16 autocast on the convolutional feature networks; the diffeomorphic layers (bounded
    velocity, composition layers, Gaussian smoothing, super upsample, warping) stay in float32.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

SPEED_MODES = ("eager", "fp32", "fast")


class FastDropout(nn.Module):
    """Element-wise dropout, drawn from a uniform tensor instead of ``bernoulli_``.

    Each element is kept with probability ``1 - p`` and scaled by ``1 / (1 - p)`` (the distribution of
    ``nn.Dropout``); in eval mode it is the identity. ``torch.rand_like`` is vectorised on CPU, while
    ``bernoulli_`` with a scalar probability is not, which made dropout about 12 % of a TEDS-Net training step.

    Shapes: any -> the same.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"FastDropout: p must be in [0, 1), got {p}.")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x) >= self.p
        return torch.where(keep, x * (1.0 / (1.0 - self.p)), 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class AutocastFeatures(nn.Module):
    """Run a feature network under bf16 autocast and hand float32 tensors on.

    Shapes: whatever the wrapped module takes and returns; tensors in the output (also inside lists and
    tuples) are cast to float32.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.module = module
        self.dtype = dtype

    def forward(self, *args, **kwargs):
        device_type = next(self.module.parameters()).device.type
        with torch.autocast(device_type=device_type, dtype=self.dtype):
            out = self.module(*args, **kwargs)
        return _to_float(out)


def _to_float(value):
    if isinstance(value, Tensor):
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(v) for v in value)
    return value


def _replace_dropout(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, FastDropout(child.p).train(child.training))
        else:
            _replace_dropout(child)


def _feature_networks(model: nn.Module) -> Iterable[tuple[nn.Module, str]]:
    """(parent, attribute) pairs of the convolutional feature networks of the suite's models."""
    if hasattr(model, "encoder") and hasattr(
        model, "decoders"
    ):  # TEDS-Net: heads and diffeo layers stay fp32
        yield model, "encoder"
        for branch in list(model.decoders):
            yield model.decoders, branch
    elif hasattr(model, "net") and hasattr(model.net, "model"):  # VoxelMorph: its U-Net only
        yield model.net, "model"
    else:  # U-Nets: the whole network (ends in a sigmoid)
        for name in list(model._modules):
            yield model, name


def apply_speed_mode(model: nn.Module, mode: str) -> nn.Module:
    """Switch ``model`` (in place) to a speed mode and return it.

    Parameters
    ----------
    model : nn.Module
        A model of the suite (TEDS-Net, a U-Net, VoxelMorph) built from standard modules.
    mode : {"eager", "fp32", "fast"}
        See the module docstring.

    Returns
    -------
    nn.Module
        The same object. Parameters and their names are unchanged except that ``fast`` nests feature networks
        one level deeper (``encoder.module.*``); load weights before switching to ``fast``.
    """
    if mode not in SPEED_MODES:
        raise ValueError(f"apply_speed_mode: mode must be one of {SPEED_MODES}, got {mode!r}.")
    if mode == "eager":
        return model
    _replace_dropout(model)
    if mode == "fast":
        for parent, name in list(_feature_networks(model)):
            child = parent._modules[name]
            if not isinstance(child, AutocastFeatures) and any(True for _ in child.parameters()):
                parent._modules[name] = AutocastFeatures(child)
    return model
