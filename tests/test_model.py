"""TEDS-Net: parameter count, shapes, the zero-field known answer, ablation switches, gradients."""

import numpy as np
import pytest
import torch

from tedsnet.evaluation.metrics import betti_numbers, dice
from tedsnet.network.model import BRANCH_STEPS, TEDSNet, count_parameters
from tedsnet.network.priors import ring_prior

H, W = 144, 208


@pytest.fixture(scope="module")
def prior():
    return torch.from_numpy(ring_prior((H, W), 30, 7)).float()[None, None]


def _zero_heads(model):
    with torch.no_grad():
        for head in model.heads.values():
            head.weight.zero_()
            head.bias.zero_()
    return model


def test_parameter_count_known_answer():
    assert count_parameters(TEDSNet()) == 655_984


def test_output_shapes(prior):
    model = TEDSNet().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, H, W), prior)
    assert out.segmentation.shape == (2, 1, H, W)
    assert set(out.displacements) == {"bulk", "ft"}
    for field in out.displacements.values():
        assert field.shape == (2, 2, 2 * H, 2 * W)
    assert 0 <= out.segmentation.min() and out.segmentation.max() <= 1


def test_zero_fields_give_the_dilated_prior(prior):
    """Table 1's prior row: the prior sampled at 2H x 2W and max-pooled back: +25 % foreground, Dice 0.89."""
    model = _zero_heads(TEDSNet()).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, H, W), prior)
    for field in out.displacements.values():
        assert torch.count_nonzero(field) == 0
    seg = out.segmentation[0, 0].numpy() >= 0.3
    ring = prior[0, 0].numpy() > 0
    assert seg[ring].all()  # a dilation: every prior pixel survives
    assert seg.sum() / ring.sum() == pytest.approx(1.25, abs=0.01)
    assert dice(seg, ring) == pytest.approx(0.89, abs=0.005)
    assert betti_numbers(seg) == (1, 1)


def test_no_super_upsample_with_zero_fields_returns_the_prior(prior):
    model = _zero_heads(TEDSNet(upsample=1)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, H, W), prior)
    assert out.displacements["ft"].shape == (1, 2, H, W)
    torch.testing.assert_close(out.segmentation, prior, atol=1e-4, rtol=0)  # float32 grid rounding


def _same_init(**kwargs):
    torch.manual_seed(0)
    return TEDSNet(**kwargs)


@pytest.mark.parametrize(
    "kwargs, keys, size",
    [
        (dict(smooth_sigma=None), {"bulk", "ft"}, (2 * H, 2 * W)),  # A2
        (dict(upsample=1), {"bulk", "ft"}, (H, W)),  # A4
        (dict(smooth_sigma=None, upsample=1), {"bulk", "ft"}, (H, W)),  # A1 (L_Grad is a loss weight)
        (dict(branches=("bulk",)), {"bulk"}, (2 * H, 2 * W)),  # A5
        (dict(branches=("ft",)), {"ft"}, (2 * H, 2 * W)),  # A6
        (dict(int_steps=4), {"bulk", "ft"}, (2 * H, 2 * W)),  # Figure 4a
        (dict(bounded=False), {"bulk", "ft"}, (2 * H, 2 * W)),
    ],
)
def test_ablation_switches_change_only_what_they_should(prior, kwargs, keys, size):
    reference = _same_init().eval()
    variant = _same_init(**kwargs).eval()
    ref_state = reference.state_dict()
    state = variant.state_dict()
    dropped = set(BRANCH_STEPS) - keys
    # A switch adds no weights; a branch-only model drops exactly the other branch's decoder and head.
    assert set(state) == {
        name
        for name in ref_state
        if not any(name.startswith((f"decoders.{b}.", f"heads.{b}.")) for b in dropped)
    }
    # The encoder comes first in the init order, so it matches whatever the switch; with both branches all does.
    shared = (
        state
        if not dropped
        else {name: value for name, value in state.items() if name.startswith("encoder.")}
    )
    for name, value in shared.items():
        torch.testing.assert_close(value, ref_state[name])
    torch.manual_seed(1)
    image = torch.randn(1, 1, H, W)
    with torch.no_grad():
        for model in (reference, variant):  # make the fields large enough to differ
            for head in model.heads.values():
                head.weight.mul_(1e4)
        ref_out, out = reference(image, prior), variant(image, prior)
    assert set(out.displacements) == keys
    assert all(tuple(f.shape[-2:]) == size for f in out.displacements.values())
    assert not torch.allclose(out.segmentation, ref_out.segmentation)


def test_branch_only_models_drop_the_other_decoder():
    assert set(TEDSNet(branches=("bulk",)).decoders) == {"bulk"}
    assert set(TEDSNet(branches=("ft", "bulk")).branches) == {"bulk", "ft"}
    assert TEDSNet(branches=("ft", "bulk")).branches == ("bulk", "ft")  # bulk always samples first


def test_smoothing_switch_changes_the_integrated_field_only(prior):
    torch.manual_seed(3)
    image = torch.randn(1, 1, H, W)
    smooth, rough = _same_init().eval(), _same_init(smooth_sigma=None).eval()
    with torch.no_grad():
        for model in (smooth, rough):
            for head in model.heads.values():
                head.weight.mul_(1e5)
        a, b = smooth.displacement_fields(image), rough.displacement_fields(image)
    # rough fields have more high-frequency energy
    for key in a:
        lap_a = (a[key][..., 1:, :] - a[key][..., :-1, :]).abs().mean()
        lap_b = (b[key][..., 1:, :] - b[key][..., :-1, :]).abs().mean()
        assert lap_b > lap_a


def test_gradients_reach_every_parameter(prior):
    torch.manual_seed(0)
    model = TEDSNet(dropout=0.0)
    out = model(torch.randn(2, 1, H, W), prior)
    loss = out.segmentation.mean() + sum(f.pow(2).mean() for f in out.displacements.values())
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(branches=()), "non-empty subset"),
        (dict(branches=("bulk", "coarse")), "non-empty subset"),
        (dict(upsample=4), "upsample must be 1"),
        (dict(depth=2), "depth must be >= 3"),
    ],
)
def test_constructor_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TEDSNet(**kwargs)


def test_forward_checks_sizes(prior):
    model = TEDSNet()
    with pytest.raises(ValueError, match="must be divisible by 16"):
        model(torch.randn(1, 1, 100, 208), prior[..., :100, :])
    with pytest.raises(ValueError, match="prior must have shape"):
        model(torch.randn(1, 1, H, W), prior[0])


def test_eval_mode_is_deterministic(prior):
    model = TEDSNet().eval()
    image = torch.randn(1, 1, H, W)
    with torch.no_grad():
        a, b = model(image, prior), model(image, prior)
    assert np.array_equal(a.segmentation.numpy(), b.segmentation.numpy())
