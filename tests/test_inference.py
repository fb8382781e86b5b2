"""Inference: predictions of known models, the predictions file, checkpoints back to models, volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tedsnet.experiments import get_experiment
from tedsnet.inference.predict import (
    Predictions,
    binarise,
    load_predictions,
    predict,
    save_predictions,
)
from tedsnet.inference.volume import (
    SPACING_TOLERANCE,
    prepare_volume,
    segment_volume,
    slice_statuses,
    spacing_problem,
)
from tedsnet.training.checkpoint import load_checkpoint, read_checkpoint
from tedsnet.training.engine import train

H, W = 32, 48


def small(name: str, **overrides):
    if name in ("unet", "tedsnet", "prior"):
        overrides.setdefault("features", 4)
    return get_experiment(name, prior_radius=10, prior_thickness=3, **overrides)


def images(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, H, W), dtype=np.float32)


def test_binarise_uses_greater_or_equal():
    soft = np.array([0.0, 0.29999, 0.3, 0.7], dtype=np.float32)
    np.testing.assert_array_equal(binarise(soft, 0.3), [0, 0, 1, 1])
    assert binarise(torch.tensor(soft), 0.3).dtype == np.uint8


def test_predict_the_prior_model_known_answer():
    experiment = small("prior")
    model = experiment.build(seed=0)
    prior = experiment.prior((H, W))
    out = predict(model, images(3), prior, batch_size=2, device="cpu", case_id=["a", "b", "c"])
    assert out.case_id.tolist() == ["a", "b", "c"]
    assert out.soft.dtype == np.float32 and out.binary.dtype == np.uint8 and out.threshold == 0.3
    assert out.disp_bulk.shape == (3, 2, 2 * H, 2 * W) and out.disp_ft.shape == (3, 2, 2 * H, 2 * W)
    assert not out.disp_bulk.any() and not out.disp_ft.any()
    assert set(out.displacements) == {"bulk", "ft"}
    # Zero fields: every image gets the same (slightly dilated) prior, which contains the prior.
    assert (out.binary == out.binary[0]).all()
    assert (out.binary[0] >= prior).all() and out.binary[0].sum() > prior.sum()
    np.testing.assert_array_equal(out.binary, binarise(out.soft, 0.3))
    assert model.training  # predict restores the mode it found


def test_predict_does_not_depend_on_the_batch_size():
    torch.manual_seed(0)
    experiment = small("tedsnet")
    model = experiment.build(seed=1)
    with torch.no_grad():
        for head in model.heads.values():
            head.weight.normal_(0, 0.1)
    a = predict(model, images(5), experiment.prior_tensor((H, W)), batch_size=1, device="cpu")
    b = predict(
        model, images(5), experiment.prior_tensor((H, W)), batch_size=5, device="cpu", keep_fields=False
    )
    np.testing.assert_allclose(a.soft, b.soft, atol=1e-4)
    assert float(np.abs(a.disp_ft).max()) > 0.1
    assert b.disp_bulk is None and b.disp_ft is None


def test_predict_rejects_bad_input():
    model = small("unet").build(seed=0)
    with pytest.raises(ValueError, match=r"images must be \(N, H, W\)"):
        predict(model, np.zeros((H, W), np.float32), np.zeros((H, W)))
    with pytest.raises(ValueError, match="prior must be"):
        predict(model, images(2), np.zeros((H + 1, W)))
    with pytest.raises(ValueError, match="case_id must have one entry per image"):
        predict(model, images(2), np.zeros((H, W)), case_id=["x"])


@pytest.mark.parametrize("compress", [False, True])
def test_predictions_file_round_trip(tmp_path, compress):
    experiment = small("voxelmorph")
    out = predict(
        experiment.build(seed=0),
        images(3),
        experiment.prior((H, W)),
        device="cpu",
        case_id=["p1", "p2", "p3"],
    )
    assert out.disp_bulk is None and out.disp_ft.shape == (3, 2, H, W)
    path = save_predictions(tmp_path / "voxelmorph.npz", out, compress=compress)
    back = load_predictions(path)
    assert isinstance(back, Predictions) and back.case_id.tolist() == ["p1", "p2", "p3"]
    for name in ("soft", "binary", "disp_ft"):
        np.testing.assert_array_equal(getattr(back, name), getattr(out, name))
        assert getattr(back, name).dtype == getattr(out, name).dtype
    assert back.disp_bulk is None and back.threshold == 0.3
    with np.load(path, allow_pickle=False) as data:  # the contract's keys, no pickled objects
        assert sorted(data.files) == ["binary", "case_id", "disp_ft", "soft", "threshold"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_predictions_file_errors(tmp_path):
    out = Predictions(np.array(["a"]), np.zeros((1, 4, 4), np.float32), np.zeros((1, 4, 4), np.uint8), 0.3)
    with pytest.raises(ValueError, match="must end in .npz"):
        save_predictions(tmp_path / "x.npy", out)
    with pytest.raises(ValueError, match="binary has 2 entries, case_id has 1"):
        save_predictions(tmp_path / "x.npz", out._replace(binary=np.zeros((2, 4, 4), np.uint8)))
    with pytest.raises(FileNotFoundError, match="no predictions file"):
        load_predictions(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", foo=np.zeros(3))
    with pytest.raises(ValueError, match="lacks"):
        load_predictions(tmp_path / "other.npz")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny TEDS-Net variant trained for one epoch: (TrainResult, experiment)."""
    rng = np.random.default_rng(0)
    data = (rng.random((5, H, W), dtype=np.float32), (rng.random((5, H, W)) > 0.5).astype(np.uint8))
    experiment = small("tedsnet", int_steps=4)
    result = train(
        experiment, data, data, tmp_path_factory.mktemp("model"), epochs=1, progress=False, device="cpu"
    )
    return result, experiment


def test_load_checkpoint_rebuilds_the_trained_model(trained):
    result, experiment = trained
    model, loaded = load_checkpoint(result.paths.best)
    assert loaded == experiment and loaded.name == "tedsnet_steps4_radius10_thickness3_features4"
    assert model.int_steps == 4 and not model.training
    stored = read_checkpoint(result.paths.best)["model_state"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, stored[key]), key
    last_model, _ = load_checkpoint(result.paths.last)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), last_model.state_dict().values(), strict=True)
    )


def test_load_checkpoint_errors(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="is not a file written by torch.save") as info:
        load_checkpoint(tmp_path / "garbage.pt")
    assert "weights_only" not in str(info.value)
    with pytest.raises(ValueError, match=r"is a directory, not a checkpoint file \(it holds best.pt: pass"):
        load_checkpoint(trained[0].paths.best.parent)
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="is not a tedsnet checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    checkpoint = read_checkpoint(trained[0].paths.best)
    checkpoint["experiment"] = {"name": "gone", "base": "gone", "overrides": {}}
    torch.save(checkpoint, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match="not in the registry"):
        load_checkpoint(tmp_path / "unknown.pt")
    checkpoint["experiment"] = {"name": "unet", "base": "unet", "overrides": {}}
    checkpoint.pop("experiment_config")
    torch.save(checkpoint, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="weights do not fit experiment 'unet'") as info:
        load_checkpoint(tmp_path / "mismatch.pt")
    message = str(info.value)  # the first few keys of each kind, then a count
    assert (
        "18 missing keys decoder.steps.0.up.weight, " in message and "20 unexpected keys decoders." in message
    )
    assert "shape mismatches encoder.levels.0.0.weight (stored [4, 1, 3, 3], model [12, 1, 3, 3])" in message
    assert message.count("(and ") == 3


def test_prepare_volume_matches_the_data_layer():
    from tedsnet.data.slices import center_crop_or_pad, normalise_intensity

    volume = np.random.default_rng(0).random((30, 70, 3)) * 500
    prepared = prepare_volume(volume, (40, 48))  # rows padded 30 -> 40, columns cropped 70 -> 48
    assert prepared.shape == (3, 40, 48) and prepared.dtype == np.float32
    expected = center_crop_or_pad(normalise_intensity(volume[:, 11:59, 1]), (40, 48))
    np.testing.assert_array_equal(prepared[1], expected)


@pytest.mark.parametrize(
    ("shape", "window"),
    [
        (
            (40, 60, 2),
            (slice(4, 36), slice(6, 54), slice(None), slice(None)),
        ),  # cropped: mask[4:36, 6:54] = pred
        (
            (28, 40, 1),
            (slice(None), slice(None), slice(2, 30), slice(4, 44)),
        ),  # padded: mask = pred[2:30, 4:44]
    ],
)
def test_segment_volume_puts_slices_back_in_place(shape, window):
    experiment = small("prior")
    model = experiment.build(seed=0)
    volume = np.random.default_rng(0).random(shape) * 100
    result = segment_volume(model, experiment, volume, image_size=(H, W), device="cpu")
    assert result.mask.shape == shape and result.mask.dtype == np.uint8 and result.soft.shape == shape
    ring = predict(model, np.zeros((1, H, W), np.float32), experiment.prior((H, W)), device="cpu").binary[0]
    out_rows, out_cols, in_rows, in_cols = window
    for z in range(shape[2]):
        expected = np.zeros(shape[:2], np.uint8)
        expected[out_rows, out_cols] = ring[in_rows, in_cols]
        np.testing.assert_array_equal(result.mask[:, :, z], expected)
    table = result.table
    assert list(table.columns) == [
        "z", "status", "b0", "b1", "correct_topology", "foreground_px", "nonpos_jac_bulk_pct", "nonpos_jac_ft_pct",
    ]  # fmt: skip
    assert table.z.tolist() == list(range(shape[2])) and table.correct_topology.all()
    assert (table.status == "ok").all()
    assert (table.b0 == 1).all() and (table.b1 == 1).all() and (table.foreground_px == ring.sum()).all()
    assert (table.nonpos_jac_bulk_pct == 0).all() and (table.nonpos_jac_ft_pct == 0).all()


def test_segment_volume_without_fields_reports_nan_jacobians():
    experiment = small("unet")
    volume = np.random.default_rng(0).random((H, W, 2))
    result = segment_volume(experiment.build(seed=0), experiment, volume, image_size=(H, W), device="cpu")
    assert result.table.nonpos_jac_bulk_pct.isna().all() and result.table.nonpos_jac_ft_pct.isna().all()
    with pytest.raises(ValueError, match="volume must be 3-D"):
        segment_volume(experiment.build(seed=0), experiment, np.ones((H, W)), image_size=(H, W))


def test_nan_inf_and_contrast_free_slices_are_refused_not_segmented():
    experiment = small("prior")
    volume = np.random.default_rng(0).random((40, 60, 6)) * 100
    volume[0, 0, 1] = np.nan  # outside the 32 x 48 crop window: still refused, the scan is damaged there
    volume[20, 30, 2] = -np.inf
    volume[:, :, 3] = 0
    volume[:, :, 4] = 7.0
    volume[4:36, 6:54, 5] = 0  # contrast only outside the crop window: the model would see a blank slice
    assert slice_statuses(volume, (H, W)) == [
        "ok", "nonfinite_input", "nonfinite_input", "empty_input", "empty_input", "empty_input",
    ]  # fmt: skip
    result = segment_volume(experiment.build(seed=0), experiment, volume, image_size=(H, W), device="cpu")
    table = result.table
    assert table.status.tolist()[1:] == ["nonfinite_input"] * 2 + ["empty_input"] * 3
    assert (
        result.mask[:, :, 1:].sum() == 0 and result.soft[:, :, 1:].sum() == 0 and result.mask[:, :, 0].any()
    )
    assert table.loc[1:, ["b0", "b1", "correct_topology", "nonpos_jac_ft_pct"]].isna().all().all()
    assert bool(table.correct_topology[0]) and (table.foreground_px[1:] == 0).all()


def test_a_volume_without_a_usable_slice_raises():
    experiment = small("prior")
    volume = np.zeros((H, W, 3))
    volume[:, :, 0] = np.nan
    with pytest.raises(ValueError, match=r"all 3 are refused: 1 nonfinite_input .*, 2 empty_input"):
        segment_volume(experiment.build(seed=0), experiment, volume, image_size=(H, W), device="cpu")


@pytest.mark.parametrize(
    ("spacing", "accepted"),
    [
        ((1.0, 1.0), True),
        ((1.5, 1.5), True),
        ((1.5 * (1 + SPACING_TOLERANCE) - 1e-6,) * 2, True),
        ((1.5 * (1 + SPACING_TOLERANCE) + 1e-6,) * 2, False),
        ((1.0 / (1 + SPACING_TOLERANCE) + 1e-6,) * 2, True),
        ((1.0 / (1 + SPACING_TOLERANCE) - 1e-6,) * 2, False),
        ((1.2, 3.0), False),
        ((float("nan"), 1.2), False),
    ],
)
def test_spacing_problem_both_sides_of_the_tolerance(spacing, accepted):
    trained = {"min": 1.0, "median": 1.2, "max": 1.5}
    problem = spacing_problem(spacing, trained)
    assert (problem is None) == accepted
    if not accepted:
        assert "outside the range the model was trained on (1 to 1.5 mm, median 1.2" in problem
