"""Known answers and properties of the diffeomorphic layers (paper section 2)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tedsnet.evaluation.metrics import nonpositive_jacobian_percent
from tedsnet.network.functional import (
    bounded_velocity,
    gaussian_kernel1d,
    gaussian_smooth,
    identity_grid,
    integrate_velocity,
    max_pool_3x3_stride2,
    resize_displacement,
    separable_window_max,
    warp,
)


def test_warp_one_pixel_tracker_non_square():
    """out[x] = in[x + u(x)]: a bright pixel at (r0, c0) appears at (r0 - dr, c0 - dc)."""
    image = torch.zeros(1, 1, 20, 33)
    image[0, 0, 12, 25] = 1.0
    disp = torch.zeros(1, 2, 20, 33)
    disp[:, 0] = 3.0  # rows
    disp[:, 1] = -5.0  # columns
    out = warp(image, disp)[0, 0]
    assert out.shape == (20, 33)
    peak = divmod(int(out.argmax()), 33)
    assert peak == (9, 30)
    assert out[9, 30] == pytest.approx(1.0, abs=1e-6)
    assert out.sum() == pytest.approx(1.0, abs=1e-5)


def test_warp_fractional_shift_is_bilinear():
    image = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 4, 6).contiguous()
    disp = torch.zeros(1, 2, 4, 6)
    disp[:, 1] = 0.25
    out = warp(image, disp)[0, 0]
    np.testing.assert_allclose(out[:, :5].numpy(), (np.arange(5) + 0.25)[None].repeat(4, 0), atol=1e-5)
    assert out[0, 5] == pytest.approx(0.75 * 5, abs=1e-5)  # zeros padding beyond the last centre


def test_warp_matches_voxelmorph_spatial_transform():
    import voxelmorph

    torch.manual_seed(0)
    image = torch.rand(2, 3, 17, 23)
    disp = torch.randn(2, 2, 17, 23) * 2
    ours = warp(image, disp)
    theirs = voxelmorph.spatial_transform(image, disp, non_spatial_dims=(0, 1))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_warp_zero_field_on_finer_grid_is_corner_aligned_resize():
    torch.manual_seed(1)
    image = torch.rand(1, 2, 9, 13)
    out = warp(image, torch.zeros(1, 2, 18, 26))
    expected = F.interpolate(image, size=(18, 26), mode="bilinear", align_corners=True)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


def test_integrate_zero_velocity_is_zero():
    out = integrate_velocity(torch.zeros(1, 2, 16, 24), 8)
    assert torch.count_nonzero(out) == 0


def test_integrate_constant_velocity_doubles_each_step_away_from_borders():
    v = torch.full((1, 2, 64, 64), 0.01)
    out = integrate_velocity(v, 4, smooth_sigma=None)
    interior = out[:, :, 8:-8, 8:-8]
    torch.testing.assert_close(interior, torch.full_like(interior, 0.01 * 2**4), atol=1e-6, rtol=0)


def test_integrate_prescaled_constant_velocity_is_itself():
    v = torch.full((1, 2, 64, 64), 0.3)
    out = integrate_velocity(v, 7, prescale=True, smooth_sigma=None)
    interior = out[:, :, 4:-4, 4:-4]
    torch.testing.assert_close(interior, torch.full_like(interior, 0.3), atol=1e-5, rtol=0)


def test_integrate_range_grows_with_steps():
    """Without pre-scaling, n layers reach up to 0.5 * 2**n voxels (here checked on the interior)."""
    v = bounded_velocity(torch.full((1, 2, 96, 96), 10.0))
    for steps in (2, 3, 5):
        out = integrate_velocity(v, steps, smooth_sigma=None)
        assert out[0, 0, 48, 48] == pytest.approx(0.5 * 2**steps, rel=1e-3)


def test_bounded_velocity_never_exceeds_half_a_voxel():
    u = torch.randn(4, 2, 10, 10) * 100
    v = bounded_velocity(u)
    assert v.abs().max() <= 0.5
    assert torch.allclose(bounded_velocity(torch.zeros(1)), torch.zeros(1))
    assert bounded_velocity(torch.tensor([1e-3]))[0] == pytest.approx(0.5e-3, rel=1e-3)


def test_gaussian_kernel_known_values_and_separable_equals_2d():
    k = gaussian_kernel1d(2.0, 5, dtype=torch.float64)
    raw = np.exp(-(np.arange(-2, 3) ** 2) / 8.0)
    np.testing.assert_allclose(k.numpy(), raw / raw.sum())
    x = torch.rand(2, 2, 11, 14, dtype=torch.float64)
    kernel2d = (k[:, None] * k[None, :]).expand(2, 1, 5, 5)
    expected = F.conv2d(x, kernel2d, padding=2, groups=2)
    torch.testing.assert_close(gaussian_smooth(x, 2.0, 5), expected)


def test_resize_displacement_keeps_physical_shift():
    """A constant shift of 1 coarse voxel is (S_out-1)/(S_in-1) fine voxels; warping agrees on both grids."""
    disp = torch.zeros(1, 2, 18, 26)
    disp[:, 0] = 1.0
    disp[:, 1] = -2.0
    fine = resize_displacement(disp, (288, 416))
    assert fine[0, 0].unique().item() == pytest.approx(287 / 17)
    assert fine[0, 1].unique().item() == pytest.approx(-2 * 415 / 25)
    assert fine[0, 0].unique().item() != pytest.approx(288 / 18)  # not the nominal size ratio
    # On grids whose pixel centres nest (5 x 7 -> 9 x 13, factor 2 per axis) the fine warp at the shared centres
    # equals the coarse warp: the same physical shift.
    torch.manual_seed(0)
    image = torch.rand(1, 1, 12, 10)
    coarse = torch.zeros(1, 2, 5, 7)
    coarse[:, 0] = 0.5
    coarse[:, 1] = -0.75
    fine = resize_displacement(coarse, (9, 13))
    torch.testing.assert_close(fine[:, 0], torch.full((1, 9, 13), 1.0))
    torch.testing.assert_close(fine[:, 1], torch.full((1, 9, 13), -1.5))
    torch.testing.assert_close(warp(image, fine)[..., ::2, ::2], warp(image, coarse), atol=1e-6, rtol=0)


def test_smoothing_reduces_folding_of_integrated_random_fields():
    """The A2 effect: the Gaussian after each composition removes most non-positive Jacobians."""
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(4, 2, 72, 104, generator=gen) * 3
    v = bounded_velocity(u)
    rough = integrate_velocity(v, 8, smooth_sigma=None)
    smooth = integrate_velocity(v, 8, smooth_sigma=2.0)
    fold_rough = np.mean([nonpositive_jacobian_percent(f) for f in rough.numpy()])
    fold_smooth = np.mean([nonpositive_jacobian_percent(f) for f in smooth.numpy()])
    assert fold_rough > 5.0
    assert fold_smooth < 0.1 * fold_rough


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: warp(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3, 4, 4)), ValueError, r"shape \(B, 2, H, W\)"),
        (lambda: warp(torch.zeros(4, 4), torch.zeros(1, 2, 4, 4)), ValueError, "image must have shape"),
        (lambda: warp(torch.zeros(3, 1, 4, 4), torch.zeros(2, 2, 4, 4)), ValueError, "must equal disp batch"),
        (lambda: warp(torch.zeros(1, 1, 4, 4), np.zeros((1, 2, 4, 4))), TypeError, "must be a torch.Tensor"),
        (lambda: integrate_velocity(torch.zeros(1, 2, 4, 4), -1), ValueError, "non-negative integer"),
        (lambda: integrate_velocity(torch.zeros(1, 2, 1, 4), 2), ValueError, "at least 2 x 2"),
        (lambda: resize_displacement(torch.zeros(1, 2, 4, 4), (1, 8)), ValueError, "both >= 2"),
        (lambda: bounded_velocity(torch.zeros(1), max_disp=0), ValueError, "max_disp must be > 0"),
        (lambda: gaussian_kernel1d(2.0, 4), ValueError, "positive odd integer"),
    ],
)
def test_input_checks(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _warp_by_grid_sample(image, disp):
    """The textbook formula warp replaces: flip to (col, row), permute, scale, add the identity, grid_sample."""
    height, width = disp.shape[2], disp.shape[3]
    scale = disp.new_tensor([2.0 / (width - 1), 2.0 / (height - 1)])
    grid = identity_grid((height, width), dtype=disp.dtype) + disp.flip(1).permute(0, 2, 3, 1) * scale
    image = image.expand(grid.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


@pytest.mark.parametrize(
    "image_shape, disp_shape",
    [((3, 2, 20, 30), (3, 2, 40, 60)), ((1, 1, 18, 26), (4, 2, 36, 52)), ((2, 2, 9, 13), (2, 2, 9, 13))],
)
def test_warp_value_and_gradients_equal_the_grid_sample_formula(image_shape, disp_shape):
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(image_shape, generator=gen, dtype=torch.float64, requires_grad=True)
    disp = (3 * torch.randn(disp_shape, generator=gen, dtype=torch.float64)).requires_grad_()
    grad = torch.randn(disp_shape[0], image_shape[1], *disp_shape[2:], generator=gen, dtype=torch.float64)
    want = _warp_by_grid_sample(image, disp)
    got = warp(image, disp)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    got_grads = torch.autograd.grad(got, (image, disp), grad)
    want_grads = torch.autograd.grad(want, (image, disp), grad)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_warp_gradcheck_self_composition_and_broadcast_image():
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(2, 2, 7, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: warp(v, v), (v,))  # as in the composition layers
    image = torch.randn(1, 1, 6, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    disp = torch.randn(3, 2, 5, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(warp, (image, disp))


@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2), (3, 1), (2, 3)])
@pytest.mark.parametrize("size", [(8, 10), (9, 7)])
def test_separable_window_max_equals_max_pool2d(kernel, stride, size):
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(5))
    x[0, 0, 1, 1] = float("nan")
    x[1, 2, 2:4, 2:4] = 0.0  # ties
    got = separable_window_max(x, kernel, stride)
    torch.testing.assert_close(got, F.max_pool2d(x, kernel, stride), equal_nan=True, atol=0, rtol=0)
    assert got[0, 0].isnan().any()


@pytest.mark.parametrize("shape", [(5, 1, 288, 416), (2, 3, 7, 9), (1, 1, 2, 2), (1, 2, 3, 4)])
def test_max_pool_3x3_stride2_equals_max_pool2d_with_and_without_autograd(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    want = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    with torch.no_grad():
        assert torch.equal(max_pool_3x3_stride2(x), want)
    leaf = x.clone().requires_grad_()
    out = max_pool_3x3_stride2(leaf)
    assert torch.equal(out, want)
    out.sum().backward()
    assert leaf.grad.sum().item() == out.numel()  # each output's gradient reaches exactly one input
