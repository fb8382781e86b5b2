"""Losses: soft Dice known answers, L_Grad floor and hand-made values (paper section 2)."""

import pytest
import torch

from tedsnet.network.losses import dice_bce_loss, grad_loss, soft_dice_loss


def test_soft_dice_known_values():
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, :2] = 1  # 8 px
    target[1, 0, 0, 0] = 1  # 1 px
    assert soft_dice_loss(target, target) == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(1 - target, target) == pytest.approx(1.0, abs=1e-6)
    half = target * 0.5
    # batch Dice: 2 * 4.5 / (4.5 + 9) = 2/3
    assert soft_dice_loss(half, target) == pytest.approx(1 / 3, abs=1e-5)
    # per-image Dice is 2/3 for both images too
    assert soft_dice_loss(half, target, per_image=True) == pytest.approx(1 / 3, abs=1e-5)
    # the two reductions differ when images differ
    pred = target.clone()
    pred[1] = 0
    assert soft_dice_loss(pred, target) == pytest.approx(1 - 16 / 17, abs=1e-5)
    assert soft_dice_loss(pred, target, per_image=True) == pytest.approx(0.5, abs=1e-5)


def test_dice_bce_is_dice_plus_bce():
    torch.manual_seed(0)
    pred = torch.rand(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    expected = soft_dice_loss(pred, target, per_image=True) + torch.nn.functional.binary_cross_entropy(
        pred, target
    )
    assert dice_bce_loss(pred, target) == pytest.approx(expected.item(), rel=1e-5)


def test_grad_loss_identity_floor():
    """The identity alone costs 1/(H-1)^2 + 1/(W-1)^2: about 0.18 times beta = 10,000 at 288 x 416."""
    floor = grad_loss(torch.zeros(3, 2, 288, 416))
    assert floor.item() == pytest.approx(1 / 287**2 + 1 / 415**2, rel=1e-5)
    assert (1e4 * floor).item() == pytest.approx(0.18, abs=0.005)
    # four times more at 144 x 208 (A1/A4 are regularised harder for the same beta)
    assert (grad_loss(torch.zeros(1, 2, 144, 208)) / floor).item() == pytest.approx(4.0, rel=0.02)


def test_grad_loss_hand_made_field():
    """u_row = a * row on a 5 x 9 grid: D_row Phi_0 = (1 + a) * 2/4, all other differences as the identity."""
    a = 0.5
    disp = torch.zeros(1, 2, 5, 9)
    disp[0, 0] = a * torch.arange(5.0)[:, None]
    cell_r, cell_c = 2 / 4, 2 / 8
    expected = 0.5 * (((1 + a) * cell_r) ** 2 / 2 + cell_c**2 / 2)
    assert grad_loss(disp).item() == pytest.approx(expected, rel=1e-5)
    # a constant shift costs nothing beyond the identity
    shift = torch.full((1, 2, 5, 9), 3.0)
    assert grad_loss(shift).item() == pytest.approx(grad_loss(torch.zeros(1, 2, 5, 9)).item(), rel=1e-5)


def test_loss_input_checks():
    with pytest.raises(ValueError, match="same shape"):
        soft_dice_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match=r"grad_loss: disp must have shape \(B, 2, H, W\)"):
        grad_loss(torch.zeros(1, 3, 4, 4))


def test_grad_loss_of_the_displacement_alone_is_zero_for_identity_and_rewards_no_contraction():
    zero = torch.zeros(2, 2, 30, 40)
    assert grad_loss(zero, identity=False).item() == 0.0
    assert grad_loss(zero).item() > 0  # the authors' formula: the identity's own floor
    # A uniform contraction u = -0.5 x lowers the authors' L_Grad below the identity's floor, but raises the
    # displacement-only one above zero: only the latter has the identity as its minimum.
    rows = torch.arange(30.0).view(1, 1, 30, 1).expand(2, 1, 30, 40)
    cols = torch.arange(40.0).view(1, 1, 1, 40).expand(2, 1, 30, 40)
    contraction = -0.5 * torch.cat((rows, cols), dim=1)
    assert grad_loss(contraction).item() < grad_loss(zero).item()
    assert grad_loss(contraction, identity=False).item() > 0
    # a constant shift costs nothing without the identity
    assert grad_loss(torch.full((1, 2, 30, 40), 3.0), identity=False).item() == pytest.approx(0.0, abs=1e-12)


def test_voxelmorph_regularises_its_displacement_and_tedsnet_its_transformation():
    from tedsnet.experiments import get_experiment

    assert get_experiment("voxelmorph").grad_identity is False
    assert get_experiment("tedsnet").grad_identity is True
    assert "grad_identity" not in get_experiment("tedsnet").config()  # existing run hashes unchanged


def _autograd_grad_loss(disp, identity=True):
    """L_Grad written with plain autograd: the normalised map, plus the identity, forward differences."""
    height, width = disp.shape[-2:]
    phi = disp * disp.new_tensor([2.0 / (height - 1), 2.0 / (width - 1)]).view(1, 2, 1, 1)
    if identity:
        rows = torch.linspace(-1.0, 1.0, height, dtype=disp.dtype).view(1, 1, height, 1)
        cols = torch.linspace(-1.0, 1.0, width, dtype=disp.dtype).view(1, 1, 1, width)
        phi = torch.cat((phi[:, :1] + rows, phi[:, 1:] + cols), dim=1)
    d_row = phi[:, :, 1:, :] - phi[:, :, :-1, :]
    d_col = phi[:, :, :, 1:] - phi[:, :, :, :-1]
    return 0.5 * (d_row.pow(2).mean() + d_col.pow(2).mean())


@pytest.mark.parametrize("identity", [True, False])
@pytest.mark.parametrize("shape", [(5, 2, 288, 416), (2, 2, 3, 7), (1, 2, 2, 2)])
def test_grad_loss_value_and_gradient_equal_the_autograd_formula(identity, shape):
    """float32 L_Grad and its gradient against the autograd formula in float64: float32 rounding apart."""
    gen = torch.Generator().manual_seed(len(shape) + shape[-1])
    for size in (0.01, 3.0):
        exact = (torch.randn(shape, generator=gen, dtype=torch.float64) * size).requires_grad_()
        disp = exact.detach().float().requires_grad_()
        other = torch.randn(
            shape, generator=gen, dtype=torch.float64
        )  # a second path into the field (the warp)
        ours = 1e4 * grad_loss(disp, identity=identity) + (disp * other.float()).sum()
        reference = 1e4 * _autograd_grad_loss(exact, identity=identity) + (exact * other).sum()
        got, want = torch.autograd.grad(ours, disp)[0], torch.autograd.grad(reference, exact)[0]
        assert ours.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-3)
        assert (got.double() - want).abs().max().item() <= 1e-5 * want.abs().max().item()
        # and in float64 the two agree to float64 rounding
        exact_ours = 1e4 * grad_loss(exact, identity=identity) + (exact * other).sum()
        assert exact_ours.item() == pytest.approx(reference.item(), rel=1e-12, abs=1e-9)
        torch.testing.assert_close(torch.autograd.grad(exact_ours, exact)[0], want, atol=1e-9, rtol=1e-12)


def test_grad_loss_gradient_passes_gradcheck():
    disp = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d: grad_loss(d), (disp,))
    assert torch.autograd.gradcheck(lambda d: grad_loss(d, identity=False), (disp,))
