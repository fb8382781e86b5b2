"""The CUDA path: models, training, inference and speed modes on a GPU agree with the CPU.

Tests marked ``cuda`` skip cleanly without a CUDA device; ``tools/gpu_check.sh`` runs them on a GPU machine
(``pytest -m cuda tests/test_cuda.py``). The tests of the check itself (its projection of the paper protocol and
its refusal on a machine without CUDA) run everywhere.

Tolerances. The comparisons with the CPU run with TF32 off (the ``strict_fp32`` fixture): cuDNN and the CPU
convolutions then differ only in the order of their float32 sums, and the outputs of the paper-size TEDS-Net, with
fields of about a voxel, agree to :data:`ATOL` (1e-4) and every parameter's gradient to :data:`GRAD_RTOL` (1e-3)
of its largest entry. With CUDA's default TF32 convolutions (what training uses) the inputs of every convolution are
rounded to 10 mantissa bits; those outputs agree to :data:`TF32_ATOL` (1e-2). Training on CUDA is not bit-identical
from run to run (the backward of grid sampling and bilinear resampling accumulate with atomic additions), so two
runs of the same seed agree to :data:`TRAIN_RTOL` (1e-3) in their losses and differ by at most two Adam steps of
the learning rate per step in any weight.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tedsnet.device import resolve_device
from tedsnet.experiments import SEG_LOSSES, get_experiment
from tedsnet.training.engine import loss_terms

REPO = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()
#: Where the CUDA tests run (a constant so that the same checks can be pointed at another device by hand).
DEVICE = "cuda"
#: Outputs and fields, CUDA vs CPU, TF32 off.
ATOL = 1e-4
#: Each parameter's gradient, CUDA vs CPU, TF32 off, relative to its largest entry.
GRAD_RTOL = 1e-3
#: Outputs, CUDA with TF32 convolutions vs CPU.
TF32_ATOL = 1e-2
#: Loss histories of two CUDA runs of the same seed.
TRAIN_RTOL = 1e-3

cuda = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(
    not HAS_CUDA, reason="needs a CUDA device: run tools/gpu_check.sh on a GPU machine"
)

#: (experiment overrides, (H, W), batch): a small TEDS-Net problem and the paper's.
SIZES = {
    "small": ({"prior_radius": 10, "prior_thickness": 3}, (48, 64), 2),
    "paper": ({}, (144, 208), 5),
}


@pytest.fixture
def strict_fp32():
    """TF32 off in convolutions and matrix products for the test, restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def voxel_sized_fields(model: torch.nn.Module) -> torch.nn.Module:
    """Scale TEDS-Net's heads so that its fields move the prior by about a voxel (initial heads give ~0.04)."""
    with torch.no_grad():
        for head in getattr(model, "heads", {}).values():
            head.weight.mul_(30)
    return model


def problem(size: str, name: str = "tedsnet", seed: int = 0):
    """(experiment, eval-mode model on CPU, images (B, 1, H, W), target (B, 1, H, W)) of one size."""
    overrides, shape, batch = SIZES[size]
    experiment = get_experiment(name, **overrides)
    model = voxel_sized_fields(experiment.build(seed=seed)).eval()
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 1, *shape, generator=gen)
    target = torch.as_tensor(np.broadcast_to(experiment.prior(shape), (batch, 1, *shape)).copy()).float()
    return experiment, model, images, target


def forward_backward(experiment, model, images, target, device):
    """The training loss (paper eq. 2) on ``device``: (output, loss terms, {parameter: gradient on the CPU})."""
    model = model.to(device)
    model.zero_grad(set_to_none=True)
    output = model(images.to(device), experiment.prior_tensor(tuple(images.shape[-2:]), device=device))
    terms = loss_terms(
        output, target.to(device), SEG_LOSSES[experiment.seg_loss], experiment.beta, experiment.grad_identity
    )
    terms["loss"].backward()
    grads = {name: p.grad.detach().cpu() for name, p in model.named_parameters() if p.grad is not None}
    return output, terms, grads


def assert_outputs_close(a, b, atol):
    """Segmentation and every field of two SegmentationOutputs within ``atol`` (fields: relative to their size)."""
    torch.testing.assert_close(a.segmentation.cpu(), b.segmentation.cpu(), atol=atol, rtol=0)
    assert set(a.displacements) == set(b.displacements)
    for key, field in a.displacements.items():
        scale = max(1.0, field.abs().max().item())
        torch.testing.assert_close(field.cpu(), b.displacements[key].cpu(), atol=atol * scale, rtol=0)


# --------------------------------------------------------------------------------------------- device choice
@cuda
@needs_cuda
def test_auto_picks_cuda():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda:0")


# ------------------------------------------------------------------------------------- forward and backward
@cuda
@needs_cuda
@pytest.mark.parametrize("size", sorted(SIZES))
def test_forward_and_backward_on_cuda_match_the_cpu(size, strict_fp32):
    experiment, model, images, target = problem(size)
    cpu_out, cpu_terms, cpu_grads = forward_backward(experiment, copy.deepcopy(model), images, target, "cpu")
    gpu_out, gpu_terms, gpu_grads = forward_backward(experiment, copy.deepcopy(model), images, target, DEVICE)
    assert gpu_out.segmentation.device.type == DEVICE
    assert (
        max(f.abs().max().item() for f in cpu_out.displacements.values()) > 0.1
    )  # the fields move the prior
    assert_outputs_close(cpu_out, gpu_out, ATOL)
    for key, value in cpu_terms.items():
        assert gpu_terms[key].item() == pytest.approx(value.item(), rel=1e-4, abs=1e-6), key
    assert cpu_grads.keys() == gpu_grads.keys() and len(cpu_grads) == len(list(model.parameters()))
    for name, grad in cpu_grads.items():
        scale = grad.abs().max().item()
        assert (gpu_grads[name] - grad).abs().max().item() <= GRAD_RTOL * scale + 1e-8, name


@cuda
@needs_cuda
def test_tf32_convolutions_stay_close_to_the_cpu():
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        experiment, model, images, _ = problem("paper")
        prior = experiment.prior_tensor((144, 208))
        with torch.no_grad():
            cpu_out = copy.deepcopy(model)(images, prior)
            gpu_out = copy.deepcopy(model).to(DEVICE)(images.to(DEVICE), prior.to(DEVICE))
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    assert_outputs_close(cpu_out, gpu_out, TF32_ATOL)


# ---------------------------------------------------------------------------------------------------- training
def ring_split(n: int, shape: tuple[int, int], experiment, seed: int):
    """(images float32 (n, H, W), labels uint8 (n, H, W)): noisy images of the prior ring, shifted a little."""
    rng = np.random.default_rng(seed)
    labels = np.stack(
        [np.roll(experiment.prior(shape), rng.integers(-3, 4, size=2), axis=(0, 1)) for _ in range(n)]
    )
    images = (0.6 * labels + 0.4 * rng.random((n, *shape))).astype(np.float32)
    return images, labels.astype(np.uint8)


@cuda
@needs_cuda
def test_training_on_cuda_runs_and_repeats(tmp_path):
    import pandas as pd

    from tedsnet.training.engine import train

    experiment = get_experiment("tedsnet")
    train_split, val_split = (
        ring_split(10, (144, 208), experiment, 0),
        ring_split(5, (144, 208), experiment, 1),
    )
    lr, epochs = 1e-4, 2
    results = [
        train(
            "tedsnet",
            train_split,
            val_split,
            tmp_path / f"run{i}",
            epochs=epochs,
            batch_size=5,
            lr=lr,
            seed=0,
            device=DEVICE,
            speed_mode="fp32",
            resume=False,
            progress=False,
            log=lambda _: None,
        )  # fmt: skip
        for i in (0, 1)
    ]
    histories = [pd.read_csv(r.paths.history) for r in results]
    assert [r.epochs_run for r in results] == [epochs, epochs]
    for column in ("loss", "seg_loss", "grad_bulk", "grad_ft", "val_loss"):
        assert np.isfinite(histories[0][column]).all()
        np.testing.assert_allclose(
            histories[1][column], histories[0][column], rtol=TRAIN_RTOL, err_msg=column
        )
    assert abs(histories[1].val_dice - histories[0].val_dice).max() <= 0.01
    steps = int(histories[0].step.iloc[-1])
    states = [torch.load(r.paths.last, map_location="cpu", weights_only=True)["model_state"] for r in results]
    for key, weight in states[0].items():
        assert (states[1][key].float() - weight.float()).abs().max().item() <= 2 * lr * steps, key


@cuda
@needs_cuda
def test_a_cuda_checkpoint_predicts_the_same_on_the_cpu(tmp_path, strict_fp32):
    from tedsnet.inference.predict import predict
    from tedsnet.training.checkpoint import load_checkpoint
    from tedsnet.training.engine import train

    experiment = get_experiment("tedsnet")
    split = ring_split(5, (144, 208), experiment, 0)
    result = train(
        "tedsnet",
        split,
        split,
        tmp_path,
        epochs=1,
        batch_size=5,
        device=DEVICE,
        progress=False,
        log=lambda _: None,
    )
    on_gpu, _ = load_checkpoint(result.paths.best, device=DEVICE)
    on_cpu, exp = load_checkpoint(result.paths.best, device="cpu")
    a = predict(on_gpu, split[0], exp.prior((144, 208)), device=DEVICE)
    b = predict(on_cpu, split[0], exp.prior((144, 208)), device="cpu")
    np.testing.assert_allclose(a.soft, b.soft, atol=ATOL, rtol=0)


# --------------------------------------------------------------------------------------------------- inference
@cuda
@needs_cuda
def test_predict_on_cuda_matches_the_cpu(strict_fp32):
    from tedsnet.inference.predict import predict

    experiment, model, _, _ = problem("paper")
    images = np.random.default_rng(0).random((7, 144, 208), dtype=np.float32)  # two batches, the last partial
    prior = experiment.prior((144, 208))
    gpu = predict(copy.deepcopy(model), images, prior, batch_size=5, device=DEVICE)
    cpu = predict(copy.deepcopy(model), images, prior, batch_size=5, device="cpu")
    np.testing.assert_allclose(gpu.soft, cpu.soft, atol=ATOL, rtol=0)
    near_threshold = np.abs(cpu.soft - cpu.threshold) < 10 * ATOL
    assert ((gpu.binary != cpu.binary) <= near_threshold).all()
    for key in cpu.displacements:
        np.testing.assert_allclose(gpu.displacements[key], cpu.displacements[key], atol=ATOL, rtol=0)


@cuda
@needs_cuda
def test_segment_volume_on_cuda_matches_the_cpu(strict_fp32):
    pytest.importorskip("gudhi", reason="segment_volume checks topology with gudhi")
    pytest.importorskip("nibabel", reason="the data layer reads NIfTI with nibabel")
    from tedsnet.inference.volume import segment_volume

    experiment, model, _, _ = problem("paper")
    volume = (np.random.default_rng(0).random((160, 220, 3)) * 400).astype(np.int16)
    gpu = segment_volume(copy.deepcopy(model), experiment, volume, device=DEVICE)
    cpu = segment_volume(copy.deepcopy(model), experiment, volume, device="cpu")
    np.testing.assert_allclose(gpu.soft, cpu.soft, atol=ATOL, rtol=0)
    assert (gpu.mask != cpu.mask).mean() <= 1e-4
    assert gpu.table.z.tolist() == cpu.table.z.tolist()


# ------------------------------------------------------------------------------------------------- speed modes
@cuda
@needs_cuda
@pytest.mark.parametrize("name", ["tedsnet", "unet"])
def test_speed_modes_on_cuda(name, strict_fp32):
    from tedsnet.speed.modes import apply_speed_mode

    experiment, model, images, target = problem("paper", name)
    prior = experiment.prior_tensor((144, 208), device=DEVICE)
    x = images.to(DEVICE)
    models = {
        mode: apply_speed_mode(copy.deepcopy(model), mode).to(DEVICE) for mode in ("eager", "fp32", "fast")
    }
    with torch.no_grad():
        outputs = {mode: m(x, prior) for mode, m in models.items()}
    assert_outputs_close(outputs["eager"], outputs["fp32"], ATOL)  # the same maths, summed in another order
    fast = outputs["fast"]
    assert fast.segmentation.dtype == torch.float32
    assert all(field.dtype == torch.float32 for field in fast.displacements.values())
    assert (fast.segmentation - outputs["fp32"].segmentation).abs().max().item() < 0.05  # bf16 features
    for mode, m in models.items():  # one training step in every mode
        m.train()
        optimiser = torch.optim.Adam(m.parameters(), lr=1e-4)
        output = m(x, prior)
        loss = loss_terms(output, target.to(DEVICE), SEG_LOSSES[experiment.seg_loss], experiment.beta)["loss"]
        loss.backward()
        optimiser.step()
        assert torch.isfinite(loss), mode
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters()), mode


@cuda
@needs_cuda
def test_speed_mode_auto_on_cuda_follows_bf16_support():
    from tedsnet.speed.auto import resolve_speed_mode

    choice = resolve_speed_mode("auto", resolve_device("auto"))
    assert choice.mode == ("fast" if torch.cuda.is_bf16_supported() else "fp32")


# -------------------------------------------------------------------------------- the check itself (any machine)
def _gpu_check_module():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "tools"))
    return gpu_check


def test_the_projection_counts_what_the_paper_workflow_trains(tmp_path):
    """Every model and seed the paper config trains, as Snakemake's DAG of that config has them."""
    protocol = _gpu_check_module().paper_protocol()
    assert (protocol.n_train, protocol.n_val, protocol.n_test) == (6000, 1200, 100)  # docs/protocol.md
    assert (protocol.epochs, protocol.batch_size, protocol.lr, protocol.crop) == (200, 5, 1e-4, (144, 208))
    assert protocol.untrained == ("prior", "unet_post") and "tedsnet_steps16" in protocol.models
    assert protocol.model_epochs["unet_topo"] == 20 and protocol.model_epochs["tedsnet"] == 200  # paper.yaml
    assert protocol.image_steps == (protocol.runs - 3 + 3 * 20 / 200) * 200 * 6000
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    (tmp_path / "training").mkdir()  # an empty ACDC root: a dry run reads no data
    dry = subprocess.run(
        ["snakemake", "-n", "--nolock", "--quiet", "rules", "--configfile", "workflow/config/paper.yaml",
         "--config", f"acdc_root={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]
    train_jobs = {int(line.split()[1]) for line in dry.stdout.splitlines() if line.startswith("train ")}
    assert train_jobs == {protocol.runs + len(protocol.untrained) * len(protocol.seeds)}


def test_the_projection_gives_each_model_its_own_epochs():
    """A fine-tune of 20 epochs costs a tenth of a 200-epoch run at the same speed, and counts once per seed."""
    gpu_check = _gpu_check_module()
    protocol = gpu_check.paper_protocol()
    rate = gpu_check.TrainingRate(
        step_s=0.1, train_images_per_s=50.0, overhead_s_per_val_image=0.001, end_to_end_images_per_s=40.0,
        epochs=2, images_seen=100, n_train=50, n_val=10, seconds=3.0, peak_cuda_mb=0.0, best_val_dice=0.5,
    )  # fmt: skip
    seconds = gpu_check.project(protocol, rate, relative={})
    assert seconds["unet_topo"] == pytest.approx(seconds["tedsnet"] * 20 / 200)
    lines = gpu_check.report_projection(protocol, rate, bench_csv=None)
    total = sum(seconds.values()) * 3
    assert any(f"{total / 3600:,.1f} h" in line for line in lines if line.startswith("RESULT whole"))


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA: the check would run")
def test_the_gpu_check_stops_at_once_without_cuda():
    done = subprocess.run(
        ["bash", str(REPO / "tools" / "gpu_check.sh")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "GPU_CHECK_OUT": "/nonexistent/never"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "no CUDA device, so nothing was run or installed" in done.stderr
    assert "torch.cuda.is_available() = False" in done.stderr
    assert not Path("/nonexistent/never").exists()
