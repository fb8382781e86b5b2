"""Speed modes: fp32 is the eager maths; fast keeps the diffeomorphic layers in float32."""

import copy

import pytest
import torch

from tedsnet.experiments import get_experiment
from tedsnet.speed import AutocastFeatures, FastDropout, apply_speed_mode

H, W = 144, 208


@pytest.mark.parametrize("name", ["tedsnet", "A6", "unet", "voxelmorph"])
def test_fp32_mode_equals_eager_in_eval(name):
    experiment = get_experiment(name)
    eager = experiment.build(seed=0).eval()
    if hasattr(eager, "heads"):  # make the fields non-trivial
        with torch.no_grad():
            for head in eager.heads.values():
                head.weight.mul_(3e4)
    fast = apply_speed_mode(copy.deepcopy(eager), "fp32")
    assert not any(type(m) is torch.nn.Dropout for m in fast.modules())
    image = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(1))
    prior = experiment.prior_tensor((H, W))
    with torch.no_grad():
        a, b = eager(image, prior), fast(image, prior)
    torch.testing.assert_close(b.segmentation, a.segmentation, atol=1e-5, rtol=0)
    assert set(a.displacements) == set(b.displacements)
    for key in a.displacements:
        torch.testing.assert_close(b.displacements[key], a.displacements[key], atol=1e-5, rtol=0)


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
    model = apply_speed_mode(experiment.build(seed=0), "fast").eval()
    assert isinstance(model.encoder, AutocastFeatures)
    assert not isinstance(model.heads["ft"], AutocastFeatures)
    seen = {}
    model.encoder.module.levels[0][0].register_forward_hook(lambda m, i, o: seen.update(conv=o.dtype))
    with torch.no_grad():
        out = model(torch.rand(1, 1, H, W), experiment.prior_tensor((H, W)))
    assert seen["conv"] == torch.bfloat16
    assert out.segmentation.dtype == torch.float32
    assert all(f.dtype == torch.float32 for f in out.displacements.values())


def test_speed_mode_name_is_checked():
    with pytest.raises(ValueError, match="mode must be one of"):
        apply_speed_mode(torch.nn.Linear(1, 1), "turbo")
