"""The experiment registry: entries, loss weights, variants by name, the zero-field prior, no import cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tedsnet.experiments as experiments
from baselines import SMPUNet, UNet, VoxelMorph
from tedsnet.evaluation.metrics import dice
from tedsnet.experiments import (
    BETA,
    DEFAULT_SEG_LOSS,
    EXPERIMENTS,
    SEG_LOSSES,
    UNET_OUT_BIAS,
    Experiment,
    get_experiment,
    list_experiments,
    register,
    run_seeds,
    run_training_options,
    scale_length,
    variant_name,
    with_model_settings,
    with_prior_geometry,
)
from tedsnet.network.model import TEDSNet, count_parameters

ROOT = Path(__file__).resolve().parents[1]
TABLE1 = ["prior", "unet", "unet_smp", "voxelmorph", "A1", "A2", "A3", "A4", "A5", "A6", "tedsnet"]
TOPOLOGY_BASELINES = ["unet_post", "unet_cldice", "unet_topo", "unet_bettimatch"]


def test_registry_has_every_table1_row_in_order():
    assert list_experiments() == TABLE1 + TOPOLOGY_BASELINES
    assert len({EXPERIMENTS[n].label for n in list_experiments()}) == len(list_experiments())
    assert all(EXPERIMENTS[n].seg_loss == DEFAULT_SEG_LOSS for n in TABLE1)  # one protocol for every row
    assert set(SEG_LOSSES) == {
        "dice",
        "dice_image",
        "dice_bce",
        "dice_cldice",
        "dice_topology",
        "dice_betti_matching",
    }


def test_topology_baselines_start_from_the_unet_they_name():
    post, cldice, topo, matching = (EXPERIMENTS[n] for n in TOPOLOGY_BASELINES)
    assert (matching.init_from, matching.seg_loss) == (None, "dice_betti_matching")
    assert (post.init_from, post.trains) == ("unet", False)
    assert (topo.init_from, topo.seg_loss) == ("unet", "dice_topology")
    assert (cldice.init_from, cldice.seg_loss) == (None, "dice_cldice")
    # the post-processed U-Net has the U-Net's weights, so the trained U-Net's checkpoint loads into it strictly
    assert post.build(seed=0).state_dict().keys() == EXPERIMENTS["unet"].build(seed=0).state_dict().keys()


def test_budget_variants_by_name():
    long = get_experiment("tedsnet_epochs12")
    assert (long.epochs, long.base, long.overrides) == (12, "tedsnet", {"epochs": 12})
    assert long.config_hash() != EXPERIMENTS["tedsnet"].config_hash()
    assert "epochs" not in EXPERIMENTS["tedsnet"].config()  # hashes of runs from before the field stay valid
    assert get_experiment("unet", epochs=12).name == "unet_epochs12"
    with pytest.raises(ValueError, match="epochs must be None or an integer >= 1"):
        get_experiment("tedsnet", epochs=0)


def test_with_model_settings_keeps_name_and_label_and_ignores_other_keys():
    post = EXPERIMENTS["unet_post"]
    changed = with_model_settings(post, {"closing_radius_px": 3, "threshold": 0.3, "nonsense": 1})
    assert changed.model_kwargs["closing_radius_px"] == 3 and changed.label == post.label
    assert changed.overrides == {"closing_radius_px": 3} and changed.base == "unet_post"
    assert with_model_settings(post, {"closing_radius_px": 1}) is post
    assert with_model_settings(EXPERIMENTS["tedsnet"], {"closing_radius_px": 3}) is EXPERIMENTS["tedsnet"]


def test_loss_weights_follow_the_paper():
    with_grad = {"voxelmorph", "A2", "A4", "A5", "A6", "tedsnet"}
    for name in TABLE1:
        assert EXPERIMENTS[name].beta == (BETA if name in with_grad else 0.0), name
    assert BETA == 10_000
    assert [n for n in TABLE1 if not EXPERIMENTS[n].trains] == ["prior"]
    assert all(EXPERIMENTS[n].prior_radius == 30 and EXPERIMENTS[n].prior_thickness == 7 for n in TABLE1)


def test_models_and_ablation_settings():
    def build(name):
        return EXPERIMENTS[name].build(seed=0)

    assert isinstance(build("unet"), UNet) and build("unet").head.bias.tolist() == [UNET_OUT_BIAS] == [-3.0]
    assert build("unet_smp").net.segmentation_head[0].bias.tolist() == [UNET_OUT_BIAS]
    assert get_experiment("unet", out_bias=0.0).build().head.bias.tolist() == [0.0]  # the plain init
    assert isinstance(build("unet_smp"), SMPUNet) and build("unet_smp").encoder_name == "resnet18"
    assert isinstance(build("voxelmorph"), VoxelMorph) and build("voxelmorph").int_steps == 7
    tedsnet = build("tedsnet")
    assert isinstance(tedsnet, TEDSNet) and count_parameters(tedsnet) == 655_984
    a1, a2, a3, a4, a5, a6 = (build(f"A{k}") for k in range(1, 7))
    assert (a1.smooth_sigma, a1.upsample, EXPERIMENTS["A1"].beta) == (None, 1, 0.0)
    assert (a2.smooth_sigma, a2.upsample) == (None, 2)
    assert (a3.smooth_sigma, a3.upsample, EXPERIMENTS["A3"].beta) == (2.0, 2, 0.0)
    assert (a4.smooth_sigma, a4.upsample) == (2.0, 1)
    assert a5.branches == ("bulk",) and a6.branches == ("ft",)
    assert count_parameters(a5) < count_parameters(a6) < 655_984
    assert all(m.int_steps == 8 for m in (a1, a2, a3, a4, a5, a6, tedsnet))


def test_build_is_seeded():
    a = EXPERIMENTS["unet"].build(seed=3).state_dict()
    b = EXPERIMENTS["unet"].build(seed=3).state_dict()
    c = EXPERIMENTS["unet"].build(seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_prior_experiment_has_exactly_zero_fields_and_returns_the_dilated_prior():
    experiment = EXPERIMENTS["prior"]
    model = experiment.build(seed=0).eval()
    assert all(
        float(p.detach().abs().max()) == 0.0 for n, p in model.named_parameters() if n.startswith("heads")
    )
    prior = experiment.prior((144, 208))
    with torch.no_grad():
        out = model(torch.rand(1, 1, 144, 208), experiment.prior_tensor((144, 208)))
    assert all(float(d.abs().max()) == 0.0 for d in out.displacements.values())
    binary = out.segmentation[0, 0].numpy() >= 0.3
    # Known answer: the prior slightly dilated by the sampling, +25 % foreground, Dice 0.89 against the prior.
    assert binary.sum() / prior.sum() == pytest.approx(1.25, abs=0.03)
    assert dice(binary, prior) == pytest.approx(0.89, abs=0.01)


def test_prior_tensor_is_the_ring_prior():
    experiment = get_experiment("tedsnet_radius20")
    tensor = experiment.prior_tensor((64, 96))
    assert tensor.shape == (1, 1, 64, 96) and tensor.dtype == torch.float32
    distance = np.hypot(*np.meshgrid(np.arange(64) - 31.5, np.arange(96) - 47.5, indexing="ij"))
    assert distance[tensor[0, 0].numpy() > 0].max() <= 20 and distance[tensor[0, 0].numpy() > 0].min() > 13


def test_variants_by_name_and_by_keyword_are_the_same_experiment():
    steps4 = get_experiment("tedsnet_steps4")
    assert steps4.name == "tedsnet_steps4" and steps4.base == "tedsnet"
    assert steps4.overrides == {"int_steps": 4} and steps4.build().int_steps == 4
    assert get_experiment("tedsnet", int_steps=4) == steps4
    assert steps4.config_hash() == get_experiment("tedsnet", int_steps=4).config_hash()
    assert steps4.config_hash() != EXPERIMENTS["tedsnet"].config_hash()
    assert steps4.beta == BETA and steps4.label == "TEDS-Net (int_steps=4)"

    radius = get_experiment("tedsnet_radius20")
    assert radius.prior_radius == 20 and radius.model_kwargs == {} and radius.prior((144, 208)).sum() > 0

    several = get_experiment("A4_steps4_radius20_beta100")
    assert several.name == "A4_steps4_radius20_beta100"
    assert (several.beta, several.prior_radius, several.model_kwargs) == (
        100,
        20,
        {"upsample": 1, "int_steps": 4},
    )
    assert get_experiment("A4_radius20_beta100_steps4").name == several.name  # canonical token order

    assert get_experiment("voxelmorph_steps5").build().int_steps == 5
    assert get_experiment("unet_smp", encoder_name="resnet34").name == "unet_smp_encoder_name-resnet34"
    assert get_experiment("tedsnet_steps8") is EXPERIMENTS["tedsnet"]  # an override equal to the default
    assert get_experiment("tedsnet", seg_loss="dice").seg_loss == "dice"


def test_run_prior_geometry_scales_with_the_grid_and_keeps_labels():
    assert with_prior_geometry("tedsnet") is EXPERIMENTS["tedsnet"]  # nothing to change
    assert with_prior_geometry("tedsnet", 30, 7) is EXPERIMENTS["tedsnet"]
    coarse = with_prior_geometry("A1", pixel_scale=1.5)  # the registry's 30 / 7 on a 1.5x coarser grid
    assert (coarse.prior_radius, coarse.prior_thickness) == (20.0, 4.7)
    assert coarse.name == "A1_radius20_thickness4.7" and coarse.label == EXPERIMENTS["A1"].label
    assert coarse.overrides == get_experiment("A1_radius20_thickness4.7").overrides
    assert coarse.build().upsample == EXPERIMENTS["A1"].build().upsample  # the ablation itself is kept
    # a Figure 4 point names its radius in the run's pixels: kept; the thickness follows the run
    point = with_prior_geometry("tedsnet_radius13.3", pixel_scale=1.5)
    assert (point.prior_radius, point.prior_thickness) == (13.3, 4.7)
    assert point.label == get_experiment("tedsnet_radius13.3").label
    explicit = with_prior_geometry("voxelmorph", prior_radius=24, pixel_scale=2)
    assert (explicit.prior_radius, explicit.prior_thickness) == (12.0, 3.5)
    assert explicit.prior((48, 64)).sum() < EXPERIMENTS["voxelmorph"].prior((96, 128)).sum()
    with pytest.raises(ValueError, match="pixel_scale"):
        with_prior_geometry("tedsnet", pixel_scale=0)
    with pytest.raises(ValueError, match="prior_thickness <= prior_radius"):
        with_prior_geometry("tedsnet", prior_radius=5, prior_thickness=7)


def test_variant_names_and_run_lengths_have_one_definition():
    """The workflow names its Figure 4 points with variant_name and scale_length: the registry's own grammar."""
    for name in ("tedsnet_steps4", "A4_steps4_radius20_beta100", "tedsnet_radius13.3"):
        experiment = get_experiment(name)
        assert variant_name(experiment.base, experiment.overrides) == name
    smp = get_experiment("unet_smp", encoder_name="resnet34")
    assert variant_name("unet_smp", smp.overrides) == smp.name == "unet_smp_encoder_name-resnet34"
    assert variant_name("tedsnet", {}) == "tedsnet"
    assert variant_name("tedsnet", {"int_steps": 8}) == "tedsnet_steps8"  # written, not resolved
    assert (scale_length(30, 1.5), scale_length(20, 1.5), scale_length(7, 1.5)) == (20.0, 13.3, 4.7)
    assert scale_length(22.25, 1.0) == 22.25  # unrounded at the registry's own scale
    assert variant_name("tedsnet", {"prior_radius": scale_length(20, 1.5)}) == "tedsnet_radius13.3"
    assert with_prior_geometry("tedsnet", 20, pixel_scale=1.5).prior_radius == scale_length(20, 1.5)


def test_a_base_entry_resolves_without_importing_its_lazy_factory():
    """The Snakefile resolves every row's name; the smp U-Net's package is imported only when a model is built."""
    code = (
        "import sys; from tedsnet.experiments import get_experiment; get_experiment('unet_smp'); "
        "print('segmentation_models_pytorch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("tedsnet_v2", {}, "unknown experiment 'tedsnet_v2'"),
        ("nonsense", {}, "Known: \\['prior', 'unet'"),
        ("unet_steps4", {}, "does not accept the override 'int_steps'"),
        ("tedsnet", {"learning_rate": 1}, "does not accept the override 'learning_rate'"),
        ("tedsnet_steps4", {"int_steps": 5}, "int_steps is 4 in the name"),
        ("tedsnet", {"seg_loss": "focal"}, "seg_loss must be one of"),
        ("tedsnet", {"prior_thickness": 40}, "prior_thickness <= prior_radius"),
    ],
)
def test_bad_names_and_overrides_are_explained(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        get_experiment(name, **overrides)


def test_register_a_new_method(monkeypatch):
    monkeypatch.setattr(experiments, "EXPERIMENTS", dict(EXPERIMENTS))
    entry = register(Experiment(name="mynet", label="My net", factory=UNet, model_kwargs={"features": 4}))
    assert experiments.get_experiment("mynet") is entry
    assert experiments.get_experiment("mynet_features8").build().encoder.channels[0] == 8
    with pytest.raises(ValueError, match="already registered"):
        register(Experiment(name="mynet", label="again", factory=UNet))
    with pytest.raises(ValueError, match="ends like a variant suffix"):
        register(Experiment(name="mynet_steps4", label="x", factory=UNet))
    with pytest.raises(ValueError, match="name must be"):
        Experiment(name="my net", label="x", factory=UNet)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_never_imports_baselines_and_baselines_never_import_the_registry():
    core = {"functional", "priors", "blocks", "model", "losses", "metrics", "outputs"}
    for path in sorted((ROOT / "tedsnet").rglob("*.py")):
        imported = _imported_modules(path)
        if path.name != "experiments.py":  # the one bridge
            assert not any(m == "baselines" or m.startswith("baselines.") for m in imported), path
        if path.stem in core or path.parent.name == "data":
            assert not imported & {
                "tedsnet.experiments",
                "tedsnet.training.engine",
                "tedsnet.inference.predict",
                "tedsnet.cli",
            }, path
    for path in sorted((ROOT / "baselines").glob("*.py")):
        imported = _imported_modules(path)
        allowed = {
            "tedsnet.network.blocks",
            "tedsnet.network.outputs",
            "tedsnet.network.functional",
            "tedsnet.network.model",
            "tedsnet.network.losses",  # the topology losses add to the soft Dice
            "tedsnet.evaluation.metrics",  # the ring's Betti numbers, defined once
            "tedsnet.evaluation.topology",  # topolosses imported one way for the metric and the loss
        }
        assert {m for m in imported if m.startswith("tedsnet")} <= allowed, path


def test_a_rows_training_takes_its_budget_then_its_overrides():
    """The run's block, then the budget in the row's name, then training.overrides.<row>, later ones winning."""
    training = {
        "epochs": 4, "batch_size": 5, "lr": 1e-3, "seg_loss": None, "patience": None, "time_budget_s": None,
        "seeds": [0],
        "overrides": {"unet_topo": {"epochs": 1, "lr": 1e-4}, "tedsnet_epochs12": {"epochs": 2}, "unet": {"seeds": [0, 1, 2]}},
    }  # fmt: skip
    assert run_training_options("tedsnet", training)["epochs"] == 4
    assert run_training_options("unet_epochs12", training)["epochs"] == 12
    assert run_training_options("tedsnet_epochs12", training)["epochs"] == 2
    assert {k: run_training_options("unet_topo", training)[k] for k in ("epochs", "lr", "batch_size")} == {
        "epochs": 1, "lr": 1e-4, "batch_size": 5,
    }  # fmt: skip
    assert run_seeds("unet", training) == [0, 1, 2] and run_seeds("tedsnet", training) == [0]
    assert run_seeds("tedsnet", {"seeds": [3], "overrides": None}) == [3]
