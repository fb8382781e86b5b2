"""The maths of TEDS-Net's diffeomorphic layers, as pure functions (paper section 2).

Where each part of the method lives, by its name in the paper:

==========================================  ==================================================================
Paper                                       Code
==========================================  ==================================================================
bounded velocity, ``0.5 tanh`` (eq. 1)      :func:`bounded_velocity`
composition layers (integration)            :func:`composition_layer`, :func:`integrate_velocity`
scaling and squaring (voxelmorph's)         :func:`integrate_velocity` with ``prescale=True``
Gaussian smoothing of the field             :func:`gaussian_smooth`
super upsample of the field                 :func:`resize_displacement`
sampling the prior (spatial transformer)    :func:`warp`
max pooling back to the input size          :func:`max_pool_3x3_stride2`
L_Dice, the segmentation loss               :func:`tedsnet.network.losses.soft_dice_loss`
L_Grad (eq. 2)                              :func:`tedsnet.network.losses.grad_loss`
the ring prior                              :func:`tedsnet.network.priors.ring_prior`
bulk and fine-tune branches                 :class:`tedsnet.network.model.TEDSNet`
==========================================  ==================================================================

Conventions: tensors are (B, C, H, W); a displacement is (B, 2, H, W) in voxel units of its own grid, channel i
along array axis i, and warping is backward: ``out[x] = in[x + u(x)]``. Grids are corner-aligned: the first and
last pixel centres of two grids of different size coincide (``align_corners=True``). ``docs/method.md`` maps the
whole method to the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "bounded_velocity",
    "composition_layer",
    "gaussian_kernel1d",
    "gaussian_smooth",
    "grid_cell_size",
    "identity_grid",
    "integrate_velocity",
    "max_pool_3x3_stride2",
    "resize_displacement",
    "separable_window_max",
    "warp",
]


def _check_field(name: str, disp: Tensor) -> None:
    """Raise TypeError / ValueError unless ``disp`` is a (B, 2, H, W) tensor with H, W >= 2."""
    if not isinstance(disp, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 2, H, W), got {type(disp).__name__}.")
    if disp.dim() != 4 or disp.shape[1] != 2:
        raise ValueError(
            f"{name} must have shape (B, 2, H, W) (a 2-D displacement in voxels), got {tuple(disp.shape)}."
        )
    if disp.shape[2] < 2 or disp.shape[3] < 2:
        raise ValueError(
            f"{name} must be at least 2 x 2 pixels (corner-aligned grids need two pixel centres per axis), "
            f"got {tuple(disp.shape[2:])}."
        )


def bounded_velocity(u: Tensor, max_disp: float = 0.5) -> Tensor:
    """Bounded velocity, the diffeomorphic activation of paper eq. 1: ``v = max_disp * tanh(u)``.

    Parameters
    ----------
    u : Tensor
        (B, 2, h, w) raw network output.
    max_disp : float
        Bound on each component, in voxels of the field's own grid (paper: 0.5).

    Returns
    -------
    Tensor
        (B, 2, h, w), each component in ``(-max_disp, max_disp)``.

    Notes
    -----
    A per-component bound does not by itself guarantee a positive Jacobian determinant of the integrated field;
    TEDS-Net relies on the bound together with the composition layers, smoothing and L_Grad.

    Raises
    ------
    ValueError
        If ``max_disp`` is not positive.

    Examples
    --------
    >>> bounded_velocity(torch.tensor([0.0, 100.0]))
    tensor([0.0000, 0.5000])
    """
    if not max_disp > 0:
        raise ValueError(f"bounded_velocity: max_disp must be > 0 voxels, got {max_disp}.")
    return max_disp * torch.tanh(u)


def gaussian_kernel1d(sigma: float, size: int, *, dtype=torch.float32, device=None) -> Tensor:
    """Normalised 1-D Gaussian kernel of odd length ``size`` and standard deviation ``sigma`` (pixels)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian kernel size must be a positive odd integer, got {size}.")
    if not sigma > 0:
        raise ValueError(f"gaussian sigma must be > 0 pixels, got {sigma}.")
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).to(dtype=dtype, device=device)


def _correlate1d(x: Tensor, weights: Sequence[float], dim: int) -> Tensor:
    """Zero-padded 1-D correlation of ``x`` along ``dim`` (-1 or -2), output the same size.

    A weighted sum of shifted views of the padded tensor, because on CPU that is much cheaper than a depthwise
    ``conv2d`` with a 1 x k kernel on two-channel fields.
    """
    size = len(weights)
    pad = size // 2
    n = x.shape[dim]
    padded = F.pad(x, (pad, pad, 0, 0) if dim == -1 else (0, 0, pad, pad))
    out = padded.narrow(dim, 0, n) * weights[0]
    for i in range(1, size):
        out = out.add_(padded.narrow(dim, i, n), alpha=weights[i])
    return out


def gaussian_smooth(x: Tensor, sigma: float = 2.0, size: int = 5) -> Tensor:
    """Gaussian smoothing of a field after each composition layer: a ``size x size`` kernel, zeros padding.

    The 2-D kernel is the outer product of two normalised 1-D kernels, applied separably along rows and then
    columns; with zeros padding this equals the 2-D convolution (to float32 rounding, tested against
    ``conv2d``).

    Parameters
    ----------
    x : Tensor
        (B, C, H, W).
    sigma : float
        Standard deviation in pixels (paper: 2).
    size : int
        Odd kernel size in pixels (paper: 5).

    Returns
    -------
    Tensor
        (B, C, H, W).

    Notes
    -----
    The operator is linear and, its kernel being symmetric, self-adjoint under zeros padding, so its backward is
    the same smoothing of the incoming gradient (:class:`_SelfAdjointSmoothing`): autograd through the shifted
    sums would zero-fill a padded gradient for each of the ten shifts.
    """
    return _SelfAdjointSmoothing.apply(x, _gaussian_weights(float(sigma), int(size)))


@lru_cache(maxsize=32)
def _gaussian_weights(sigma: float, size: int) -> tuple[float, ...]:
    """The 1-D Gaussian kernel as float64 Python numbers (cached per sigma and size)."""
    return tuple(gaussian_kernel1d(sigma, size, dtype=torch.float64).tolist())


def _smooth_separable(x: Tensor, weights: Sequence[float]) -> Tensor:
    """Correlate along rows, then along columns, with the same 1-D kernel."""
    return _correlate1d(_correlate1d(x, weights, -2), weights, -1)


class _SelfAdjointSmoothing(torch.autograd.Function):
    """Separable zero-padded correlation with a symmetric kernel; its adjoint (the backward) is itself."""

    @staticmethod
    def forward(ctx, x: Tensor, weights: tuple[float, ...]) -> Tensor:
        ctx.weights = weights
        return _smooth_separable(x, weights)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return _SelfAdjointSmoothing.apply(grad, ctx.weights), None


@lru_cache(maxsize=32)
def _identity_grid_cached(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(1, H, W, 2) corner-aligned identity grid, last axis (col, row); see :func:`identity_grid`."""
    rows = torch.linspace(-1.0, 1.0, height, dtype=dtype, device=device)
    cols = torch.linspace(-1.0, 1.0, width, dtype=dtype, device=device)
    grid_r, grid_c = torch.meshgrid(rows, cols, indexing="ij")
    # grid_sample wants (x, y) = (col, row) last.
    return torch.stack((grid_c, grid_r), dim=-1).unsqueeze(0)


def identity_grid(size: Sequence[int], *, device=None, dtype=torch.float32) -> Tensor:
    """Corner-aligned identity sampling grid for ``grid_sample``.

    Parameters
    ----------
    size : (H, W)
        Grid size in pixels.

    Returns
    -------
    Tensor
        (1, H, W, 2) in normalised coordinates [-1, 1], last axis (col, row) as ``grid_sample`` expects.
        Cached per size, device and dtype: treat it as read-only.
    """
    return _identity_grid_cached(int(size[0]), int(size[1]), torch.device(device or "cpu"), dtype)


def warp(image: Tensor, disp: Tensor) -> Tensor:
    """Sample ``image`` at ``x + disp(x)``: the spatial transformer that warps the prior (bilinear, zeros padding).

    The output lives on the displacement's grid: output pixel ``x`` of the (H', W') grid samples the image at
    ``x + u(x)`` (voxels of the displacement's grid), mapped to the image's grid so that the first and last pixel
    centres of both grids coincide.

    Parameters
    ----------
    image : Tensor
        (B, C, h, w), any h, w >= 2.
    disp : Tensor
        (B, 2, H', W') displacement in voxels of its own grid; channel 0 along rows, 1 along columns.

    Returns
    -------
    Tensor
        (B, C, H', W').

    Raises
    ------
    ValueError
        If ``disp`` is not (B, 2, H', W') with H', W' >= 2, ``image`` is not 4-D, or the batch sizes differ
        (an image batch of 1 is broadcast).
    """
    _check_field("warp: disp", disp)
    if not isinstance(image, Tensor) or image.dim() != 4:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"warp: image must have shape (B, C, h, w), got {got}.")
    if image.shape[0] != disp.shape[0] and image.shape[0] != 1:
        raise ValueError(
            f"warp: image batch {image.shape[0]} must equal disp batch {disp.shape[0]} (or be 1 to broadcast)."
        )
    if image.shape[0] != disp.shape[0]:
        image = image.expand(disp.shape[0], -1, -1, -1)
    return _DisplacementWarp.apply(image, disp)


def _sampling_grid(disp: Tensor) -> Tensor:
    """(B, 2, H, W) displacement in (row, col) voxels -> (B, H, W, 2) ``grid_sample`` grid, normalised (col, row).

    One pass that writes each grid component as identity + displacement * voxel size (``2 / (S - 1)``).
    """
    batch, _, height, width = disp.shape
    identity = identity_grid((height, width), device=disp.device, dtype=disp.dtype)
    row_size, col_size = grid_cell_size((height, width))
    grid = torch.empty(batch, height, width, 2, dtype=disp.dtype, device=disp.device)
    # grid axis 0 is x (columns, displacement channel 1), axis 1 is y (rows, channel 0)
    torch.add(identity[..., 0], disp[:, 1], alpha=col_size, out=grid[..., 0])
    torch.add(identity[..., 1], disp[:, 0], alpha=row_size, out=grid[..., 1])
    return grid


class _DisplacementWarp(torch.autograd.Function):
    """Bilinear, zeros-padded, corner-aligned ``grid_sample`` of ``image`` at ``x + disp(x)``.

    The same maths as building the grid with ``flip``, ``permute``, a multiply and an add and calling
    ``F.grid_sample``, in fewer passes over the large fields: the grid is written in one pass, and the grid's
    gradient is turned back into the displacement's in one pass.
    """

    @staticmethod
    def forward(ctx, image: Tensor, disp: Tensor) -> Tensor:
        grid = _sampling_grid(disp)
        ctx.save_for_backward(image, grid)
        return torch.grid_sampler_2d(image, grid, 0, 0, True)  # bilinear, zeros, align_corners

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        image, grid = ctx.saved_tensors
        need_image, need_disp = ctx.needs_input_grad
        grad_image, grad_grid = torch.ops.aten.grid_sampler_2d_backward(
            grad.contiguous(), image, grid, 0, 0, True, [need_image, need_disp]
        )
        grad_disp = None
        if need_disp:
            batch, height, width, _ = grid.shape
            row_size, col_size = grid_cell_size((height, width))
            grad_disp = grid.new_empty(batch, 2, height, width)
            torch.mul(grad_grid[..., 1], row_size, out=grad_disp[:, 0])
            torch.mul(grad_grid[..., 0], col_size, out=grad_disp[:, 1])
        return (grad_image if need_image else None), grad_disp


def composition_layer(v: Tensor, smooth_sigma: float | None = 2.0, smooth_kernel: int = 5) -> Tensor:
    """One composition layer of TEDS-Net: ``v <- G * (v + v o v)``, ``G`` the Gaussian (skipped when sigma is None).

    Shapes: (B, 2, h, w) -> (B, 2, h, w), voxels of the same grid.
    """
    v = v + warp(v, v)
    if smooth_sigma is not None:
        v = gaussian_smooth(v, smooth_sigma, smooth_kernel)
    return v


def integrate_velocity(
    v: Tensor,
    steps: int,
    *,
    prescale: bool = False,
    smooth_sigma: float | None = 2.0,
    smooth_kernel: int = 5,
) -> Tensor:
    """Integrate a stationary velocity field by ``steps`` composition layers (paper section 2).

    Each :func:`composition_layer` computes ``v <- v + v o v`` (``v`` warped by itself, bilinear, zeros padding),
    followed by a ``smooth_kernel x smooth_kernel`` Gaussian of standard deviation ``smooth_sigma``. This is
    scaling and squaring without the scaling: TEDS-Net does not pre-scale, so ``steps`` sets the range, up to
    ``0.5 * 2**steps`` voxels for a bounded input.

    Parameters
    ----------
    v : Tensor
        (B, 2, h, w) velocity in voxels of its own grid.
    steps : int
        Number of compositions (paper default 8; Figure 4a sweeps 2-16). 0 returns ``v``.
    prescale : bool
        If True, divide ``v`` by ``2**steps`` first: voxelmorph's scaling and squaring, which integrates a
        constant field to itself.
    smooth_sigma : float or None
        Gaussian sigma in pixels after each composition; None switches smoothing off (ablations A1, A2).
    smooth_kernel : int
        Odd Gaussian kernel size in pixels.

    Returns
    -------
    Tensor
        (B, 2, h, w) displacement in voxels of the same grid.

    Raises
    ------
    ValueError
        If ``v`` is not (B, 2, h, w) or ``steps`` is not a non-negative integer.
    """
    _check_field("integrate_velocity: v", v)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"integrate_velocity: steps must be a non-negative integer, got {steps!r}.")
    if prescale:
        v = v / (2**steps)
    for _ in range(steps):
        v = composition_layer(v, smooth_sigma, smooth_kernel)
    return v


def resize_displacement(disp: Tensor, size: Sequence[int]) -> Tensor:
    """Super upsample: resize a displacement field bilinearly and rescale it to voxels of the new grid.

    Grids are corner-aligned, so one voxel of axis i on the old grid spans ``(S_out - 1) / (S_in - 1)`` voxels on
    the new one; each channel is multiplied by that per-axis factor, not by the nominal ``S_out / S_in``
    (bulk 18 x 26 -> 288 x 416 gives 16.88 along rows and 16.60 along columns).

    Parameters
    ----------
    disp : Tensor
        (B, 2, h, w) in voxels of its grid.
    size : (H, W)
        New grid size in pixels.

    Returns
    -------
    Tensor
        (B, 2, H, W) in voxels of the new grid; the same physical displacement.

    Raises
    ------
    ValueError
        If ``disp`` is not (B, 2, h, w) or ``size`` is not two integers >= 2.
    """
    _check_field("resize_displacement: disp", disp)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 2:
        raise ValueError(f"resize_displacement: size must be (H, W) with both >= 2, got {size}.")
    in_h, in_w = disp.shape[2], disp.shape[3]
    if (in_h, in_w) == size:
        return disp
    factors = disp.new_tensor([(size[0] - 1) / (in_h - 1), (size[1] - 1) / (in_w - 1)]).view(1, 2, 1, 1)
    # Bilinear resizing is linear, so the factors are applied on the small grid (fewer passes over the large one).
    return F.interpolate(disp * factors, size=size, mode="bilinear", align_corners=True)


def grid_cell_size(size: Sequence[int]) -> tuple[float, ...]:
    """Size of one voxel of each axis in normalised [-1, 1] coordinates: ``2 / (S_i - 1)``."""
    return tuple(2.0 / (int(s) - 1) for s in size)


def max_pool_3x3_stride2(x: Tensor) -> Tensor:
    """3 x 3 max pooling with stride 2 and padding 1: how TEDS-Net returns the warped prior to the input size.

    Equal to ``F.max_pool2d(x, 3, stride=2, padding=1)`` (a maximum is exact). With autograd it calls it; without
    (inference) it takes separable strided maxima of the padded input, which skips the argmax indices the pooling
    kernel computes.

    Shapes: (B, C, H, W) -> (B, C, (H - 1) // 2 + 1, (W - 1) // 2 + 1).
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    return separable_window_max(F.pad(x, (1, 1, 1, 1), value=float("-inf")), kernel=3, stride=2)


def separable_window_max(x: Tensor, kernel: int, stride: int) -> Tensor:
    """Maximum over ``kernel x kernel`` windows at ``stride`` (no padding), as strided maxima of rows then columns.

    Equal to ``F.max_pool2d(x, kernel, stride)`` (a maximum is exact; NaN propagates) but without argmax indices or
    autograd bookkeeping: the inference path of the suite's max poolings. Pad ``x`` with ``-inf`` first for padded
    pooling.

    Shapes: (..., H, W) -> (..., (H - kernel) // stride + 1, (W - kernel) // stride + 1).
    """
    out_h, out_w = (x.shape[-2] - kernel) // stride + 1, (x.shape[-1] - kernel) // stride + 1
    rows = x[..., : stride * (out_h - 1) + 1 : stride, :]
    for k in range(1, kernel):
        rows = torch.maximum(rows, x[..., k : k + stride * (out_h - 1) + 1 : stride, :])
    out = rows[..., : stride * (out_w - 1) + 1 : stride]
    for k in range(1, kernel):
        out = torch.maximum(out, rows[..., k : k + stride * (out_w - 1) + 1 : stride])
    return out
