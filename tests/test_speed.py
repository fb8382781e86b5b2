"""Speed modes: fp32 is the eager maths; fast keeps the diffeomorphic layers in float32."""

import copy

import pytest
import torch

from tedsnet.experiments import get_experiment
from tedsnet.speed.modes import (
    CHANNELS_LAST_MAX_CHANNELS,
    CHANNELS_LAST_MIN_PIXELS,
    ChannelsLastConv2d,
    FastDropout,
    FastMaxPool2d,
    GroupInstanceNorm,
    apply_speed_mode,
    dropout_keep_mask,
    dropout_multiplier,
)

H, W = 144, 208


@pytest.mark.parametrize("name", ["tedsnet", "A6", "unet", "voxelmorph"])
def test_fp32_mode_equals_eager_in_eval(name):
    experiment = get_experiment(name)
    eager = experiment.build(seed=0).eval()
    if hasattr(eager, "heads"):  # fields of about a voxel (initial heads give ~0.04)
        with torch.no_grad():
            for head in eager.heads.values():
                head.weight.mul_(30)
    fast = apply_speed_mode(copy.deepcopy(eager), "fp32")
    assert not any(type(m) in (torch.nn.Dropout, torch.nn.InstanceNorm2d) for m in fast.modules())
    image = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(1))
    prior = experiment.prior_tensor((H, W))
    with torch.no_grad():
        a, b = eager(image, prior), fast(image, prior)
    torch.testing.assert_close(b.segmentation, a.segmentation, atol=1e-5, rtol=0)
    assert set(a.displacements) == set(b.displacements)
    for key in a.displacements:
        assert a.displacements[key].abs().max() > 0.1 or name != "tedsnet"
        torch.testing.assert_close(b.displacements[key], a.displacements[key], atol=1e-5, rtol=0)


def test_fp32_mode_rounding_stays_relative_on_large_fields():
    """Fields of ~10 voxels: group-norm summation order moves them by about 1e-6 of their size."""
    experiment = get_experiment("tedsnet")
    eager = experiment.build(seed=0).eval()
    with torch.no_grad():
        for head in eager.heads.values():
            head.weight.mul_(300)
    fast = apply_speed_mode(copy.deepcopy(eager), "fp32")
    image = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(1))
    prior = experiment.prior_tensor((H, W))
    with torch.no_grad():
        a, b = eager(image, prior), fast(image, prior)
    for key, field in a.displacements.items():
        scale = field.abs().max().item()
        assert scale > 2
        assert (b.displacements[key] - field).abs().max().item() <= 1e-5 * scale
    assert (b.segmentation - a.segmentation).abs().max().item() < 5e-5


def test_fast_dropout_keeps_the_dropout_distribution():
    torch.manual_seed(0)
    layer = FastDropout(0.2)
    x = torch.ones(200_000)
    y = layer(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.8, abs=0.005)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1.25))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # unbiased
    assert torch.equal(layer.eval()(x), x)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        FastDropout(1.0)


def test_fast_mode_runs_convolutions_in_bf16_and_fields_in_fp32():
    experiment = get_experiment("tedsnet")
    plain = experiment.build(seed=0)
    keys = list(plain.state_dict())
    model = apply_speed_mode(plain, "fast").eval()
    assert list(model.state_dict()) == keys  # checkpoints load in every mode
    assert model.encoder.autocast_dtype == torch.bfloat16
    assert getattr(model.heads["ft"], "autocast_dtype", None) is None
    seen = {}
    model.encoder.levels[0][0].register_forward_hook(lambda m, i, o: seen.update(conv=o.dtype))
    with torch.no_grad():
        out = model(torch.rand(1, 1, H, W), experiment.prior_tensor((H, W)))
    assert seen["conv"] == torch.bfloat16
    assert out.segmentation.dtype == torch.float32
    assert all(f.dtype == torch.float32 for f in out.displacements.values())
    assert not torch.is_autocast_enabled("cpu")  # the context is left after every call


@pytest.mark.parametrize("name", ["tedsnet", "unet"])
def test_fast_mode_hands_encoder_features_on_in_bf16_without_changing_the_output(name):
    experiment = get_experiment(name)
    model = apply_speed_mode(experiment.build(seed=0), "fast").eval()
    seen = {}
    model.encoder.register_forward_hook(lambda m, i, o: seen.update(dtypes={t.dtype for t in [*o[0], o[1]]}))
    image = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(3))
    prior = experiment.prior_tensor((H, W))
    with torch.no_grad():
        kept = model(image, prior)
        assert seen["dtypes"] == {torch.bfloat16}
        model.encoder.autocast_float_outputs = True  # the cast to float32 and back it saves is exact
        cast = model(image, prior)
        assert seen["dtypes"] == {torch.float32}
    assert kept.segmentation.dtype == torch.float32
    assert torch.equal(kept.segmentation, cast.segmentation)
    for branch, field in kept.displacements.items():
        assert torch.equal(field, cast.displacements[branch])


def test_fast_mode_leaves_autocast_when_the_forward_fails():
    experiment = get_experiment("tedsnet")
    model = apply_speed_mode(experiment.build(seed=0), "fast")
    with pytest.raises(RuntimeError):
        model(torch.rand(1, 3, H, W), experiment.prior_tensor((H, W)))  # wrong channel count
    assert not torch.is_autocast_enabled("cpu")
    assert model.encoder._autocast_contexts == []


@pytest.mark.parametrize("name", ["tedsnet", "unet", "voxelmorph"])
def test_fast_mode_output_is_close_to_fp32(name):
    experiment = get_experiment(name)
    model = experiment.build(seed=0).eval()
    image = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(2))
    prior = experiment.prior_tensor((H, W))
    with torch.no_grad():
        reference = model(image, prior).segmentation
        fast = apply_speed_mode(model, "fast")(image, prior).segmentation
    assert fast.dtype == torch.float32
    assert (fast - reference).abs().max().item() < 0.05  # bf16 features: ~3 significant digits


def test_speed_mode_name_is_checked():
    with pytest.raises(ValueError, match="mode must be one of"):
        apply_speed_mode(torch.nn.Linear(1, 1), "turbo")


def test_group_instance_norm_equals_instance_norm_forward_and_backward():
    x = torch.randn(3, 7, 20, 33, generator=torch.Generator().manual_seed(0)) * 4 + 2
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    plain = torch.nn.InstanceNorm2d(7)(a)
    fused = GroupInstanceNorm(7)(b)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=0)
    weights = torch.rand_like(x)
    (plain * weights).sum().backward()
    (fused * weights).sum().backward()
    torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=0)
    per_channel = fused.detach().flatten(2)
    assert per_channel.mean(-1).abs().max() < 1e-5
    assert (per_channel.var(-1, unbiased=False) - 1).abs().max() < 1e-3


def test_fp32_mode_replaces_only_plain_instance_norms():
    model = torch.nn.Sequential(
        torch.nn.InstanceNorm2d(4), torch.nn.InstanceNorm2d(4, affine=True), torch.nn.Dropout(0.1)
    )
    apply_speed_mode(model, "fp32")
    assert [type(m).__name__ for m in model] == ["GroupInstanceNorm", "InstanceNorm2d", "FastDropout"]


def test_fast_max_pool_equals_max_pool_with_and_without_autograd():
    x = torch.randn(2, 3, 12, 18, generator=torch.Generator().manual_seed(3))
    x[0, 0, 0, 0] = float("nan")
    pool, fast = torch.nn.MaxPool2d(2), FastMaxPool2d()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), pool(x), equal_nan=True, atol=0, rtol=0)
    odd = torch.randn(1, 2, 7, 9)
    torch.testing.assert_close(fast(odd), pool(odd), atol=0, rtol=0)  # floor, as MaxPool2d
    a, b = x.nan_to_num().requires_grad_(), x.nan_to_num().requires_grad_()
    pool(a).sum().backward()
    fast(b).sum().backward()
    assert torch.equal(a.grad, b.grad)
    model = torch.nn.Sequential(
        torch.nn.MaxPool2d(2), torch.nn.MaxPool2d(3), torch.nn.MaxPool2d(2, ceil_mode=True)
    )
    apply_speed_mode(model, "fp32")
    assert [type(m).__name__ for m in model] == ["FastMaxPool2d", "MaxPool2d", "MaxPool2d"]


@pytest.mark.parametrize("shape", [(2, 3, 12, 18), (1, 2, 7, 9), (2, 3, 8, 11)])
def test_fast_max_pool_backward_gives_ties_to_the_first_maximum_as_max_pool(shape):
    """Integer-valued and ReLU'd inputs tie often (all-zero windows after dropout): the first maximum in
    row-major order gets the gradient, as in max_pool2d's argmax; odd sizes leave the cropped edge at zero."""
    gen = torch.Generator().manual_seed(5)
    for x in (
        torch.randint(0, 3, shape, generator=gen).float(),
        torch.relu(torch.randn(shape, generator=gen)),
    ):
        grad = torch.randn(shape[0], shape[1], shape[3] // 2, shape[2] // 2, generator=gen).transpose(-1, -2)
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        torch.nn.functional.max_pool2d(a, 2).backward(grad)
        FastMaxPool2d()(b).backward(grad)  # a non-contiguous incoming gradient too
        assert torch.equal(a.grad, b.grad)
        assert (b.grad != 0).sum() == (grad != 0).sum()  # one element per window


def test_fast_dropout_equals_the_masked_and_scaled_input_in_float32_and_bf16():
    """x * (1 / (1 - p)) where kept, rounded in x's dtype, as nn.Dropout computes it; the multiplier is the same
    draw as the keep mask."""
    x = torch.rand(3, 5, 40, 40, generator=torch.Generator().manual_seed(2))
    for p in (0.2, 0.3):  # 1.25 is exact in bf16, 1 / 0.7 is not
        for dtype in (torch.float32, torch.bfloat16):
            xd = x.to(dtype)
            torch.manual_seed(7)
            keep = dropout_keep_mask(xd, p)
            torch.manual_seed(7)
            multiplier = dropout_multiplier(xd, p)
            assert multiplier.dtype == dtype
            assert torch.equal(multiplier != 0, keep)
            assert set(multiplier.unique().tolist()) == {0.0, torch.tensor(1 / (1 - p), dtype=dtype).item()}
            torch.manual_seed(7)
            y = FastDropout(p)(xd)
            assert y.dtype == dtype
            assert torch.equal(y, torch.where(keep, xd * (1.0 / (1.0 - p)), 0.0))


def test_dropout_mask_follows_torch_seed_and_quantised_probability():
    x = torch.empty(4, 12, 64, 64)
    torch.manual_seed(3)
    first, second = dropout_keep_mask(x, 0.2), dropout_keep_mask(x, 0.2)
    torch.manual_seed(3)
    assert torch.equal(dropout_keep_mask(x, 0.2), first)  # torch.manual_seed reproduces the masks
    assert not torch.equal(first, second)  # each call draws anew
    assert first.shape == x.shape and first.dtype == torch.bool
    kept = torch.cat([first.flatten(), second.flatten()]).float().mean().item()
    # keep probability 1 - 13107 / 65536 = 0.800003; 393,216 draws give a standard error of 0.0006
    assert kept == pytest.approx(1 - 13107 / 65536, abs=0.003)
    assert dropout_keep_mask(x, 0.0).all()
    # neighbouring elements (which share a 64-bit draw) are independent: P(both kept) = 0.8^2
    pairs = first.flatten().view(-1, 4)
    assert (pairs[:, 0] & pairs[:, 1]).float().mean().item() == pytest.approx(0.64, abs=0.01)


@pytest.mark.parametrize("channels", [(1, 12), (12, 12), (24, 24), (12, 48)])
def test_channels_last_conv_equals_conv_forward_and_backward(channels):
    c_in, c_out = channels
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=c_out == 48)
    state = torch.get_rng_state()
    fast = ChannelsLastConv2d.from_conv(copy.deepcopy(conv))
    assert torch.equal(torch.get_rng_state(), state)  # built on the meta device: no init draws
    assert list(fast.state_dict()) == list(conv.state_dict())
    for size in [(72, 104), (16, 20)]:  # above and below CHANNELS_LAST_MIN_PIXELS
        x = torch.randn(3, c_in, *size)
        with torch.no_grad():  # without autograd it is the plain convolution, bit for bit
            assert torch.equal(fast(x), conv(x))
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = conv(a), fast(b)
        assert yb.is_contiguous()
        torch.testing.assert_close(yb, ya, atol=1e-5, rtol=1e-5)
        grad = torch.randn_like(ya)
        ya.backward(grad)
        yb.backward(grad)
        assert b.grad.is_contiguous()
        # float32 sums in another order: agree to ~1e-6 of the largest gradient (sums of 22,464 products)
        for got, want in ((b.grad, a.grad), (fast.weight.grad, conv.weight.grad)):
            torch.testing.assert_close(got, want, atol=1e-5 * want.abs().max().item(), rtol=0)
        conv.zero_grad()
        fast.zero_grad()
    assert 72 * 104 >= CHANNELS_LAST_MIN_PIXELS > 16 * 20


def test_channels_last_conv_runs_plain_for_one_input_channel_and_without_autograd(monkeypatch):
    import tedsnet.speed.modes as speed

    copies = []
    real = speed._ToChannelsLast.apply
    monkeypatch.setattr(speed._ToChannelsLast, "apply", lambda x: copies.append(x.shape) or real(x))
    x = torch.randn(2, 12, 72, 104)
    for c_in, expected in ((1, 0), (12, 1)):
        conv = ChannelsLastConv2d(c_in, 12, 3, padding=1, bias=False)
        copies.clear()
        conv(x[:, :c_in].clone().requires_grad_()).sum().backward()
        assert len(copies) == expected
        with torch.no_grad():
            conv(x[:, :c_in])
        assert len(copies) == expected


def test_fp32_mode_shares_convolution_parameters_and_keeps_wide_ones_plain():
    model = get_experiment("tedsnet").build(seed=0)
    before = {name: p for name, p in model.named_parameters()}
    keys = list(model.state_dict())
    apply_speed_mode(model, "fp32")
    assert list(model.state_dict()) == keys
    assert all(p is before[name] for name, p in model.named_parameters())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(type(m) is ChannelsLastConv2d for m in convs)
    assert max(m.in_channels for m in convs) > CHANNELS_LAST_MAX_CHANNELS  # those run the plain path
