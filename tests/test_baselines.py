"""Baselines: shapes, parameter counts, the no-download rule and voxelmorph's conventions."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import voxelmorph as vxm

from baselines import SMPUNet, UNet, VoxelMorph
from tedsnet.network.functional import integrate_velocity, warp
from tedsnet.network.model import count_parameters
from tedsnet.network.priors import ring_prior

H, W = 144, 208


def _prior() -> torch.Tensor:
    return torch.as_tensor(ring_prior((H, W), 30, 7), dtype=torch.float32)[None, None]


def _forward_backward(model: torch.nn.Module, batch: int = 1):
    torch.manual_seed(0)
    image = torch.rand(batch, 1, H, W)
    out = model(image, _prior())
    assert out.segmentation.shape == (batch, 1, H, W)
    seg = out.segmentation.detach()
    assert float(seg.min()) >= 0.0 and float(seg.max()) <= 1.0
    out.segmentation.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    return out


def test_unet_forward_backward_and_parameter_count():
    model = UNet()
    out = _forward_backward(model)
    assert out.displacements == {}
    assert count_parameters(model) == 519_709
    assert model.decoder.out_channels == 12


def test_unet_ignores_the_prior_unless_asked():
    torch.manual_seed(0)
    model = UNet(features=4).eval()
    image, prior = torch.rand(1, 1, 32, 48), torch.ones(1, 1, 32, 48)
    a = model(image, prior).segmentation
    b = model(image, torch.zeros(1, 1, 32, 48)).segmentation
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (
        count_parameters(UNet(with_prior=True)) == 519_709 + 108
    )  # 12 filters x 3 x 3 for the extra channel
    with_prior = UNet(features=4, with_prior=True).eval()
    c = with_prior(image, prior).segmentation
    d = with_prior(image, torch.zeros(1, 1, 32, 48)).segmentation
    assert not torch.equal(c, d)
    with pytest.raises(ValueError, match="needs the prior"):
        with_prior(image, None)


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_smp_unet_builds_without_network_and_pads_to_32(monkeypatch):
    _no_network(monkeypatch)
    model = SMPUNet()
    assert model.padding(H, W) == (8, 8, 8, 8)  # 144 x 208 -> 160 x 224, centred
    assert model.padding(160, 224) == (0, 0, 0, 0)
    assert count_parameters(model) == 14_321_937
    out = _forward_backward(model)
    assert out.displacements == {}


def test_smp_unet_output_is_the_crop_of_the_padded_prediction():
    torch.manual_seed(0)
    model = SMPUNet().eval()
    image = torch.rand(1, 1, H, W)
    with torch.no_grad():
        cropped = model(image).segmentation
        full = torch.sigmoid(model.net(torch.nn.functional.pad(image, (8, 8, 8, 8))))
    torch.testing.assert_close(cropped, full[..., 8 : 8 + H, 8 : 8 + W], rtol=0, atol=1e-6)


def test_smp_unet_encoder_depth_4_needs_no_padding():
    model = SMPUNet(encoder_depth=4)
    assert model.padding(H, W) == (0, 0, 0, 0)
    with pytest.raises(ValueError, match="encoder_depth"):
        SMPUNet(encoder_depth=6)


def test_voxelmorph_forward_backward_and_parameter_count():
    model = VoxelMorph()
    out = _forward_backward(model)
    assert set(out.displacements) == {"ft"}
    assert out.displacements["ft"].shape == (1, 2, H, W)
    assert count_parameters(model) == 83_544


def test_voxelmorph_package_default_features_fail_at_144x208():
    net = vxm.nn.models.VxmPairwise(ndim=2, source_channels=1, target_channels=1, integration_steps=7)
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        net(torch.zeros(1, 1, H, W), torch.zeros(1, 1, H, W))


def _smooth_field(height: int, width: int, amplitude: float) -> torch.Tensor:
    rows = torch.linspace(0, np.pi, height)[:, None]
    cols = torch.linspace(0, np.pi, width)[None, :]
    return (
        amplitude
        * torch.stack((torch.sin(rows) * torch.cos(cols), torch.cos(2 * rows) * torch.sin(cols)))[None]
    )


def test_voxelmorph_displacement_convention_is_the_suites():
    # A constant shift of +3 rows and -2 columns: out[r, c] = in[r + 3, c - 2] (backward warp, channel 0 = rows).
    image = torch.zeros(1, 1, 20, 24)
    image[0, 0, 10, 12] = 1.0
    disp = torch.zeros(1, 2, 20, 24)
    disp[:, 0], disp[:, 1] = 3.0, -2.0
    moved = vxm.nn.modules.SpatialTransformer()(image, disp)
    assert moved[0, 0, 7, 14] == pytest.approx(1.0)
    torch.testing.assert_close(moved, warp(image, disp), rtol=0, atol=1e-6)
    # A smooth, non-uniform field of several voxels.
    image = torch.rand(2, 1, 40, 56)
    disp = _smooth_field(40, 56, 4.0).expand(2, -1, -1, -1)
    torch.testing.assert_close(
        vxm.nn.modules.SpatialTransformer()(image, disp), warp(image, disp), rtol=0, atol=1e-5
    )


def test_voxelmorph_integration_is_scaling_and_squaring_with_prescale():
    velocity = _smooth_field(36, 52, 6.0)
    ours = integrate_velocity(velocity, 7, prescale=True, smooth_sigma=None)
    theirs = vxm.nn.modules.IntegrateVelocityField(steps=7)(velocity)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-4)


def test_voxelmorph_segmentation_is_the_prior_warped_by_its_field():
    torch.manual_seed(0)
    model = VoxelMorph().eval()
    with torch.no_grad():
        model.net.flow_layer.conv0.weight.normal_(0.0, 2.0)  # a field of a few voxels
        out = model(torch.rand(2, 1, H, W), _prior())
    disp = out.displacements["ft"]
    assert float(disp.abs().max()) > 1.0
    torch.testing.assert_close(out.segmentation, warp(_prior(), disp).clamp(0, 1), rtol=0, atol=1e-4)


def test_voxelmorph_drops_meshgrid_caches_when_moved():
    model = VoxelMorph()
    model(torch.rand(1, 1, 32, 48), torch.zeros(1, 1, 32, 48))
    assert any(isinstance(getattr(m, "meshgrid", None), torch.Tensor) for m in model.modules())
    model.to(torch.float64)
    assert not any(hasattr(m, "meshgrid") for m in model.modules())
    out = model(torch.rand(1, 1, 32, 48, dtype=torch.float64), torch.zeros(1, 1, 32, 48))
    assert out.displacements["ft"].dtype == torch.float64


def test_voxelmorph_rejects_a_bad_prior():
    with pytest.raises(ValueError, match=r"prior must have shape \(B or 1, 1, H, W\)"):
        VoxelMorph()(torch.zeros(1, 1, 32, 48), torch.zeros(32, 48))


def test_output_bias_starts_the_u_nets_at_mostly_background():
    torch.manual_seed(0)
    unet = UNet(features=4, out_bias=-3.0).eval()
    assert unet.head.bias.tolist() == [-3.0] and UNet(features=4).head.bias.tolist() == [0.0]
    with torch.no_grad():
        seg = unet(torch.rand(1, 1, 32, 48)).segmentation
    assert float(seg.mean()) < 0.2  # sigmoid(-3) = 0.047 plus the random weights' spread
    smp_head = SMPUNet(out_bias=-3.0).net.segmentation_head[0]
    assert smp_head.bias.tolist() == [-3.0]
