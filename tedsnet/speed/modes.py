"""Speed modes: the same model run in a plain, an optimised fp32, or a bf16-on-convolutions way.

``eager``
    The model exactly as built from standard torch modules: the reference the benchmark compares against.
``fp32`` (default for training)
    The same maths as ``eager``: eval-mode outputs and fields equal it to float32 rounding (tested within 1e-5);
    dropout masks come from 16-bit integers of a vectorised generator, instance norm runs on the fused group-norm
    kernel, the few-channel convolutions on large inputs run channels-last, and 2 x 2 max pooling without autograd
    is two strided maxima. The process's allocator keeps freed memory (:mod:`tedsnet.speed.allocator`).
``fast``
    ``fp32`` plus bf16 autocast on the convolutional feature networks; the diffeomorphic layers (bounded
    velocity, composition layers, Gaussian smoothing, super upsample, warping) stay in float32. Encoder features
    pass to the decoders in bf16 (the convolutions would round them to bf16 anyway).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from tedsnet.network.functional import separable_window_max
from tedsnet.speed.allocator import keep_freed_memory

#: The speed modes, each described in the module docstring.
SPEED_MODES = ("eager", "fp32", "fast")


#: Resolution of FastDropout's keep probability on CPU: masks come from 16-bit uniform integers.
DROPOUT_LEVELS = 1 << 16


def _keep_array(x: Tensor, p: float) -> np.ndarray:
    """Flat numpy bool array of ``x.numel()`` elements, True with probability ``1 - p`` (see dropout_keep_mask)."""
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    n = x.numel()
    words = np.random.PCG64(seed).random_raw((n + 3) // 4)
    return words.view(np.int16)[:n] >= -(DROPOUT_LEVELS // 2) + round(p * DROPOUT_LEVELS)


def dropout_keep_mask(x: Tensor, p: float) -> Tensor:
    """Boolean mask of ``x``'s shape, each element True (kept) with probability ``1 - p``.

    On CPU the bits come from numpy's PCG64, seeded by one draw from torch's default generator (so
    ``torch.manual_seed`` and saved torch RNG states reproduce the masks), as 16-bit uniform integers: four
    masks per 64-bit draw, because torch's serial CPU generator (mt19937) makes ``torch.rand_like`` the cost of
    dropout. The drop probability is ``p`` rounded to a multiple of 1/65536 (p = 0.2 -> 0.199997). On other
    devices it is ``torch.rand_like(x) >= p``.

    Shapes: any -> the same, dtype bool.
    """
    if x.device.type != "cpu":
        return torch.rand_like(x) >= p
    return torch.from_numpy(_keep_array(x, p)).view(x.shape)


def dropout_multiplier(x: Tensor, p: float) -> Tensor:
    """``1 / (1 - p)`` where :func:`dropout_keep_mask` keeps an element, 0 where it drops it, in ``x``'s dtype.

    The same draw as :func:`dropout_keep_mask` (same generator state, same mask). ``x * dropout_multiplier(x,
    p)`` is one vectorised product forward and one backward, cheaper than ``torch.where`` on a bool mask. The
    scale is rounded to ``x``'s dtype; for float32 that is what ``x * (1 / (1 - p))`` does.

    Shapes: any -> the same, dtype of ``x``.
    """
    scale = 1.0 / (1.0 - p)
    if x.device.type == "cpu" and x.dtype == torch.float32:
        keep = _keep_array(x, p)
        return torch.from_numpy(np.multiply(keep, np.float32(scale), dtype=np.float32)).view(x.shape)
    return dropout_keep_mask(x, p).to(x.dtype).mul_(scale)


class FastDropout(nn.Module):
    """Element-wise dropout whose mask comes from :func:`dropout_keep_mask` instead of ``bernoulli_``.

    Each element is kept with probability ``1 - p`` (to 1/65536 on CPU) and scaled by ``1 / (1 - p)`` (the
    distribution of ``nn.Dropout``); in eval mode it is the identity. It exists because ``bernoulli_`` with a
    scalar probability is not vectorised on CPU. The kept elements are
    ``x * (1 / (1 - p))`` rounded to ``x``'s dtype, as in ``nn.Dropout``: one product with
    :func:`dropout_multiplier` when the scale is exact in that dtype (float32, or bf16 for p = 0.2), otherwise
    the 0/1 mask and then the scale.

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
        scale = 1.0 / (1.0 - self.p)
        if x.dtype == torch.float32 or torch.tensor(scale, dtype=x.dtype).item() == float(np.float32(scale)):
            return x * dropout_multiplier(x, self.p)
        return x * dropout_keep_mask(x, self.p).to(x.dtype) * scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GroupInstanceNorm(nn.Module):
    """Instance normalisation without affine parameters, computed by ``F.group_norm`` with one group per channel.

    The same statistics as ``nn.InstanceNorm2d(C, affine=False)`` (biased variance over H x W per image and
    channel; equal to float32 rounding, tested), but on CPU PyTorch's group-norm kernel is fused while instance
    norm goes through a reshaped batch norm.

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.num_features, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


#: Fewest pixels (H x W) at which ChannelsLastConv2d runs its convolution channels-last.
CHANNELS_LAST_MIN_PIXELS = 5000
#: Most channels (in or out) for which it does: above, the layout copies cost more than they save.
CHANNELS_LAST_MAX_CHANNELS = 24


class _ToChannelsLast(torch.autograd.Function):
    """NCHW -> channels-last copy whose gradient is handed back NCHW-contiguous."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous()


class _ToContiguous(torch.autograd.Function):
    """Channels-last -> NCHW copy whose gradient is handed back channels-last."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


class ChannelsLastConv2d(nn.Conv2d):
    """``nn.Conv2d`` that runs channels-last on large CPU inputs, taking and returning NCHW tensors.

    oneDNN's NCHW kernels are slow for the few-channel, large convolutions at the top of TEDS-Net. Inputs with at
    least :data:`CHANNELS_LAST_MIN_PIXELS` pixels on CPU, and at most :data:`CHANNELS_LAST_MAX_CHANNELS` channels,
    are copied to channels-last, convolved and copied back (the gradients too). Everything else runs the plain
    convolution: smaller inputs, where the copies cost more than they save; calls without autograd (inference,
    where the backward's gain is absent and the copies cancel the forward's); and one-channel inputs (the image),
    which have no input gradient and whose weight gradient is faster NCHW. The maths is the same convolution; only
    the order of float32 sums differs. The rest of the network stays NCHW, where instance norm and bilinear
    resampling are fast.

    Shapes: (B, C_in, H, W) -> (B, C_out, H', W'), NCHW-contiguous.
    """

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> ChannelsLastConv2d:
        """The same layer sharing ``conv``'s parameters (built on the meta device: no init, no RNG draws)."""
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device="meta",
        )
        new.weight = conv.weight
        new.bias = conv.bias
        return new.train(conv.training)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` (NCHW), channels-last inside when the rules of the class docstring say so."""
        if (
            not torch.is_grad_enabled()
            or x.device.type != "cpu"
            or self.in_channels == 1
            or x.shape[-2] * x.shape[-1] < CHANNELS_LAST_MIN_PIXELS
            or max(self.in_channels, self.out_channels) > CHANNELS_LAST_MAX_CHANNELS
        ):
            return super().forward(x)
        return _ToContiguous.apply(super().forward(_ToChannelsLast.apply(x)))


class _MaxPool2x2(torch.autograd.Function):
    """2 x 2, stride-2 max pooling whose backward finds each window's first maximum from the saved input."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = separable_window_max(x, kernel=2, stride=2)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        x, y = ctx.saved_tensors
        out_h, out_w = y.shape[-2:]
        grad_x = torch.zeros_like(x) if x.shape[-2:] != (2 * out_h, 2 * out_w) else torch.empty_like(x)
        unclaimed = torch.ones_like(y, dtype=torch.bool)
        # max_pool2d's scan order: the first maximum of a window gets its gradient
        corners = [(0, 0), (0, 1), (1, 0), (1, 1)]
        for i, j in corners:
            rows = slice(i, i + 2 * out_h - 1, 2)
            cols = slice(j, j + 2 * out_w - 1, 2)
            if (i, j) == corners[-1]:
                torch.mul(grad, unclaimed, out=grad_x[..., rows, cols])
                break
            hit = (x[..., rows, cols] == y).logical_and_(unclaimed)
            torch.mul(grad, hit, out=grad_x[..., rows, cols])
            unclaimed.logical_and_(hit.logical_not_())
        return grad_x


class FastMaxPool2d(nn.Module):
    """2 x 2 max pooling with stride 2, computed as strided element-wise maxima.

    Equal to ``nn.MaxPool2d(2)`` (max is exact; NaN propagates in both; odd sizes floor), forward and backward:
    the forward is the maximum of the even and odd rows, then columns
    (:func:`~tedsnet.network.functional.separable_window_max`), and when the input needs a gradient the backward gives each
    window's gradient to its first maximum in row-major order, as ``max_pool2d``'s argmax does, found by comparing
    the saved input with the output instead of storing int64 indices (a window holding NaN sends its gradient to
    its last element, where ``max_pool2d`` picks its last NaN).

    Shapes: (B, C, H, W) -> (B, C, H // 2, W // 2).
    """

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _MaxPool2x2.apply(x)
        return separable_window_max(x, kernel=2, stride=2)


def _enter_autocast(module: nn.Module, args) -> None:
    """Forward pre-hook: enter autocast to the module's ``autocast_dtype``."""
    device_type = next(module.parameters()).device.type
    context = torch.autocast(device_type=device_type, dtype=module.autocast_dtype)
    context.__enter__()
    module._autocast_contexts.append(context)


def _leave_autocast(module: nn.Module, args, output):
    """Forward hook: leave autocast and, with ``autocast_float_outputs``, cast the output to float32."""
    module._autocast_contexts.pop().__exit__(None, None, None)
    return _to_float(output) if module.autocast_float_outputs else output


def autocast_features(
    module: nn.Module, dtype: torch.dtype = torch.bfloat16, *, float_outputs: bool = True
) -> nn.Module:
    """Run ``module`` (in place) under ``dtype`` autocast and (by default) hand float32 tensors on; return it.

    Done with a forward pre-hook and a forward hook, so the module, its parameter names and its state dict stay
    those of the plain model (checkpoints load in every mode). With ``float_outputs``, tensors in the output
    (also inside lists and tuples) are cast to float32; without it they are handed on as computed (for an
    encoder whose features only feed other autocast modules: no cast there and back). Calling it twice on a
    module does nothing more.

    Shapes: whatever the module takes and returns.
    """
    if getattr(module, "autocast_dtype", None) is not None:
        return module
    module.autocast_dtype = dtype
    module.autocast_float_outputs = bool(float_outputs)
    module._autocast_contexts = []
    module.register_forward_pre_hook(_enter_autocast)
    module.register_forward_hook(_leave_autocast, always_call=True)
    return module


def _to_float(value):
    """Tensors (also inside lists and tuples) cast to float32; anything else unchanged."""
    if isinstance(value, Tensor):
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(v) for v in value)
    return value


def _plain_instance_norm(module: nn.Module) -> bool:
    """Whether ``module`` is exactly ``nn.InstanceNorm2d`` without affine parameters or running statistics."""
    return type(module) is nn.InstanceNorm2d and not module.affine and not module.track_running_stats


def _plain_max_pool_2x2(module: nn.Module) -> bool:
    """Whether ``module`` is exactly ``nn.MaxPool2d(2)`` (stride 2, no padding, dilation or indices)."""

    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    return (
        type(module) is nn.MaxPool2d
        and pair(module.kernel_size) == (2, 2)
        and pair(module.stride) == (2, 2)
        and pair(module.padding) == (0, 0)
        and pair(module.dilation) == (1, 1)
        and not module.ceil_mode
        and not module.return_indices
    )


def _replace_fp32_modules(module: nn.Module) -> None:
    """nn.Conv2d -> ChannelsLastConv2d (sharing its parameters), nn.Dropout -> FastDropout, plain
    nn.InstanceNorm2d -> GroupInstanceNorm, nn.MaxPool2d(2) -> FastMaxPool2d."""
    for name, child in module.named_children():
        if type(child) is nn.Conv2d:
            setattr(module, name, ChannelsLastConv2d.from_conv(child))
        elif type(child) is nn.Dropout:
            setattr(module, name, FastDropout(child.p).train(child.training))
        elif _plain_instance_norm(child):
            setattr(module, name, GroupInstanceNorm(child.num_features, child.eps).train(child.training))
        elif _plain_max_pool_2x2(child):
            setattr(module, name, FastMaxPool2d().train(child.training))
        else:
            _replace_fp32_modules(child)


def _feature_networks(model: nn.Module) -> Iterable[tuple[nn.Module, str, bool]]:
    """(parent, attribute, float_outputs) of the convolutional feature networks of the suite's models.

    ``float_outputs`` is False for the encoders of TEDS-Net and the paper's U-Net, whose skips and bottleneck
    go only to their (autocast) decoders: they stay bf16 rather than being cast to float32 and back (the casts are
    exact, so the results are bit-identical either way).
    """
    if hasattr(model, "encoder") and hasattr(
        model, "decoders"
    ):  # TEDS-Net: heads and diffeo layers stay fp32
        yield model, "encoder", False
        for branch in list(model.decoders):
            yield model.decoders, branch, True
    elif hasattr(model, "net") and hasattr(model.net, "model"):  # VoxelMorph: its U-Net only
        yield model.net, "model", True
    else:  # U-Nets: the whole network (ends in a sigmoid)
        for name in list(model._modules):
            yield model, name, name != "encoder" or not hasattr(model, "decoder")


def apply_speed_mode(model: nn.Module, mode: str) -> nn.Module:
    """Switch ``model`` (in place) to a speed mode and return it.

    ``fp32`` and ``fast`` also raise glibc's malloc thresholds for the whole process
    (:func:`tedsnet.speed.allocator.keep_freed_memory`).

    Parameters
    ----------
    model : nn.Module
        A model of the suite (TEDS-Net, a U-Net, VoxelMorph) built from standard modules.
    mode : {"eager", "fp32", "fast"}
        See the module docstring.

    Returns
    -------
    nn.Module
        The same object, with the same parameters, names and state-dict keys in every mode.

    Raises
    ------
    ValueError
        If ``mode`` is not one of :data:`SPEED_MODES`.

    Examples
    --------
    >>> from tedsnet.network.model import TEDSNet
    >>> model = apply_speed_mode(TEDSNet(), "fp32")
    """
    if mode not in SPEED_MODES:
        raise ValueError(f"apply_speed_mode: mode must be one of {SPEED_MODES}, got {mode!r}.")
    if mode == "eager":
        return model
    keep_freed_memory()
    _replace_fp32_modules(model)
    if mode == "fast":
        for parent, name, float_outputs in list(_feature_networks(model)):
            child = parent._modules[name]
            if any(True for _ in child.parameters()):
                autocast_features(child, float_outputs=float_outputs)
    return model
