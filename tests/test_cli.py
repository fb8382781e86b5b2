"""``tedsnet segment``: a phantom volume round trip, and every bad input gets exit status 2 and writes nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from tedsnet.cli import main
from tedsnet.data.slices import crop_window
from tedsnet.experiments import get_experiment
from tedsnet.inference.predict import predict
from tedsnet.training.checkpoint import load_checkpoint, read_checkpoint
from tedsnet.training.engine import train

ROOT = Path(__file__).resolve().parents[1]


def _prior_checkpoint(out: Path, size: tuple[int, int], radius: float, thickness: float) -> Path:
    """best.pt of the untrained ``prior`` experiment at ``size`` (no training needed)."""
    data = (np.zeros((1, *size), np.float32), np.zeros((1, *size), np.uint8))
    experiment = get_experiment("prior", prior_radius=radius, prior_thickness=thickness)
    return train(experiment, data, data, out, epochs=0, progress=False, device="cpu").paths.best


@pytest.fixture(scope="module")
def full_checkpoint(tmp_path_factory) -> Path:
    """The ``prior`` experiment at the protocol size 144 x 208 (ring radius 30, thickness 7)."""
    return _prior_checkpoint(tmp_path_factory.mktemp("prior_full"), (144, 208), 30, 7)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A cheaper ``prior`` checkpoint at 64 x 96 (ring radius 20, thickness 5) for the other tests."""
    return _prior_checkpoint(tmp_path_factory.mktemp("prior_small"), (64, 96), 20, 5)


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    """The ED image of one phantom patient (ACDC layout and header conventions)."""
    from tedsnet.data.phantom import write_phantom_cohort

    root = tmp_path_factory.mktemp("phantom")
    write_phantom_cohort(root, n_patients=1, seed=0)
    images = sorted(
        p for p in (root / "training" / "patient001").glob("*.nii.gz") if not p.name.endswith("_gt.nii.gz")
    )
    return images[0]


@pytest.fixture(scope="module")
def small_scan(scan, tmp_path_factory) -> Path:
    """Three slices of the phantom scan (same affine and header): cheaper for the option tests."""
    image = nib.load(scan)
    path = tmp_path_factory.mktemp("small") / "scan3.nii.gz"
    nib.save(image.slicer[:, :, 4:7], path)
    return path


def test_segment_round_trips_a_phantom_volume(tmp_path, full_checkpoint, scan, capsys):
    checkpoint = full_checkpoint
    output, table = tmp_path / "out" / "mask.nii.gz", tmp_path / "out" / "slices.csv"
    status = main(
        [
            "segment",
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(scan),
            "--output",
            str(output),
            "--csv",
            str(table),
        ]
    )
    assert status == 0
    assert "slices segmented with prior" in capsys.readouterr().out
    assert read_checkpoint(checkpoint)["image_size"] == [144, 208]
    source, mask = nib.load(scan), nib.load(output)
    assert mask.shape == source.shape
    np.testing.assert_array_equal(mask.affine, source.affine)
    assert mask.header.get_zooms() == source.header.get_zooms()
    assert mask.get_data_dtype() == np.uint8
    data = np.asarray(mask.dataobj)
    assert set(np.unique(data)) <= {0, 1}
    # Zero fields: every slice gets the same ring, put back at the centre crop window of the input grid.
    model, experiment = load_checkpoint(checkpoint)
    ring = predict(
        model, np.zeros((1, 144, 208), np.float32), experiment.prior((144, 208)), device="cpu"
    ).binary[0]
    src0, dst0, _ = crop_window(source.shape[0], 144)
    src1, dst1, _ = crop_window(source.shape[1], 208)
    expected = np.zeros(source.shape[:2], np.uint8)
    expected[src0, src1] = ring[dst0, dst1]
    for z in range(source.shape[2]):
        np.testing.assert_array_equal(data[:, :, z], expected)
    rows = pd.read_csv(table)
    assert list(rows.columns) == [
        "z", "status", "b0", "b1", "correct_topology", "foreground_px", "nonpos_jac_bulk_pct", "nonpos_jac_ft_pct",
    ]  # fmt: skip
    assert rows.z.tolist() == list(range(source.shape[2])) and (rows.status == "ok").all()
    assert (
        rows.correct_topology.all() and (rows.nonpos_jac_ft_pct == 0).all()
    )  # the prior model: one ring each
    assert rows.foreground_px.tolist() == [int(data[:, :, z].sum()) for z in range(source.shape[2])]


def test_segment_console_script(tmp_path, checkpoint, small_scan):
    scan = small_scan
    command = shutil.which("tedsnet")
    argv = [command] if command else [sys.executable, "-m", "tedsnet.cli"]
    output = tmp_path / "mask.nii"
    proc = subprocess.run(
        [*argv, "segment", "--checkpoint", str(checkpoint), "--input", str(scan), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert nib.load(output).shape == nib.load(scan).shape


def test_segment_accepts_a_single_frame_4d_volume_and_scaled_input(tmp_path, checkpoint, small_scan):
    scan = small_scan
    source = nib.load(scan)
    data = np.asarray(source.dataobj)[..., None]
    four_d = nib.Nifti1Image(data, source.affine)
    four_d.header.set_slope_inter(2.0, 0.0)  # scaled integers: the mask must still read back as 0/1
    nib.save(four_d, tmp_path / "cine.nii.gz")
    output = tmp_path / "mask.nii.gz"
    assert (
        main(
            [
                "segment",
                "--checkpoint",
                str(checkpoint),
                "--input",
                str(tmp_path / "cine.nii.gz"),
                "--output",
                str(output),
            ]
        )
        == 0
    )
    mask = nib.load(output)
    assert mask.shape == data.shape
    np.testing.assert_array_equal(mask.affine, source.affine)
    assert set(np.unique(mask.get_fdata())) <= {0.0, 1.0} and mask.get_fdata().sum() > 0


def _write(path: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, np.eye(4)), path)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_input", "does not exist"),
        ("text_input", "is not a NIfTI file"),
        ("corrupt_nifti", "is not a readable NIfTI file"),
        ("two_d", r"expected a 3-D short-axis volume \(X, Y, Z\) or a 4-D volume with a single frame"),
        ("two_frames", r"has shape \(40, 48, 3, 2\): expected a 3-D"),
        ("missing_checkpoint", "does not exist"),
        ("garbage_checkpoint", "is not a file written by torch.save"),
        ("foreign_checkpoint", "is not a tedsnet checkpoint"),
        ("existing_output", "already exists; pass --overwrite"),
        ("bad_output_name", r"must end in \.nii or \.nii\.gz"),
        ("existing_csv", "already exists; pass --overwrite"),
        ("bad_threshold", r"--threshold must be in \(0, 1\)"),
        ("input_directory", r"is a directory; pass one short-axis volume file, \.nii or \.nii\.gz"),
        (
            "checkpoint_directory",
            r"is a directory, not a checkpoint file \(it holds best\.pt: pass .*best\.pt\)",
        ),
        ("empty_image_size", r"records image_size \[\]: expected the training size \[H, W\]"),
        ("zero_image_size", r"records image_size \[0, 0\]: expected the training size \[H, W\]"),
        (
            "mismatched_weights",
            r"weights do not fit .*1 missing keys heads\.bulk\.weight; 1 unexpected keys spare",
        ),
        ("no_slices", r"has shape \(40, 48, 0\): it holds no voxels"),
        ("output_is_input", r"is the input file .*scan\.nii\.gz; writing it would replace the scan"),
        ("csv_is_output", "output and CSV are the same file"),
        ("all_nan", r"none of its 3 slices can be segmented \(3 with NaN or infinite voxels\)"),
        ("all_zero", r"none of its 3 slices can be segmented \(3 with no intensity contrast"),
        ("output_directory", r"mask\.nii\.gz is a directory; give a file name"),
        ("damaged_spacing", r"records pixel_spacing_mm \{'min': 1\.0\}: expected \{'min', 'median', 'max'\}"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, checkpoint, capsys, case, message):
    volume = np.zeros((40, 48, 3), np.int16)
    args = {"--checkpoint": str(checkpoint), "--input": str(_write(tmp_path / "scan.nii.gz", volume))}
    output, table = tmp_path / "mask.nii.gz", tmp_path / "slices.csv"
    extra: list[str] = []
    if case == "missing_input":
        args["--input"] = str(tmp_path / "nope.nii.gz")
    elif case == "text_input":
        (tmp_path / "scan.txt").write_text("hello")
        args["--input"] = str(tmp_path / "scan.txt")
    elif case == "corrupt_nifti":
        (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
        args["--input"] = str(tmp_path / "bad.nii.gz")
    elif case == "two_d":
        args["--input"] = str(_write(tmp_path / "slice.nii.gz", volume[:, :, 0]))
    elif case == "two_frames":
        args["--input"] = str(_write(tmp_path / "cine.nii.gz", np.zeros((40, 48, 3, 2), np.int16)))
    elif case == "missing_checkpoint":
        args["--checkpoint"] = str(tmp_path / "nope.pt")
    elif case == "garbage_checkpoint":
        (tmp_path / "garbage.pt").write_text("definitely not torch")
        args["--checkpoint"] = str(tmp_path / "garbage.pt")
    elif case == "foreign_checkpoint":
        torch.save({"model": {"weight": torch.zeros(2)}}, tmp_path / "foreign.pt")
        args["--checkpoint"] = str(tmp_path / "foreign.pt")
    elif case == "existing_output":
        output.write_bytes(b"precious")
    elif case == "bad_output_name":
        output = tmp_path / "mask.png"
    elif case == "existing_csv":
        table.write_text("precious")
    elif case == "bad_threshold":
        extra = ["--threshold", "1.5"]
    elif case == "input_directory":
        args["--input"] = str(tmp_path)
    elif case == "checkpoint_directory":
        args["--checkpoint"] = str(checkpoint.parent)
    elif case in ("empty_image_size", "zero_image_size", "mismatched_weights"):
        stored = read_checkpoint(checkpoint)
        if case == "mismatched_weights":
            stored["model_state"]["spare"] = stored["model_state"].pop("heads.bulk.weight")
        else:
            stored["image_size"] = [] if case == "empty_image_size" else [0, 0]
        torch.save(stored, tmp_path / "edited.pt")
        args["--checkpoint"] = str(tmp_path / "edited.pt")
    elif case == "no_slices":
        args["--input"] = str(_write(tmp_path / "empty.nii.gz", np.zeros((40, 48, 0), np.int16)))
    elif case == "output_is_input":
        output = tmp_path / "scan.nii.gz"
        extra = ["--overwrite"]
    elif case == "csv_is_output":
        table = output = tmp_path / "same.csv"
    elif case == "all_nan":
        args["--input"] = str(_write(tmp_path / "nan.nii.gz", np.full((40, 48, 3), np.nan, np.float32)))
    elif case == "all_zero":
        pass  # the default volume: every slice is zero
    elif case == "output_directory":
        output.mkdir()  # refused as a folder at once, not first as "already exists"
    elif case == "damaged_spacing":
        stored = read_checkpoint(checkpoint)
        stored["pixel_spacing_mm"] = {"min": 1.0}
        torch.save(stored, tmp_path / "edited.pt")
        args["--checkpoint"] = str(tmp_path / "edited.pt")
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    argv = [
        "segment",
        *[x for kv in args.items() for x in kv],
        "--output",
        str(output),
        "--csv",
        str(table),
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tedsnet segment: error: ")
    assert len(re.findall(message, err)) == 1, err
    assert "weights_only" not in err and "Traceback" not in err
    after = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing changed


def test_overwrite_replaces_existing_outputs(tmp_path, checkpoint, small_scan):
    scan = small_scan
    output, table = tmp_path / "mask.nii.gz", tmp_path / "slices.csv"
    output.write_bytes(b"old")
    table.write_text("old")
    argv = [
        "segment",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(scan),
        "--output",
        str(output),
        "--csv",
        str(table),
    ]
    assert main([*argv, "--overwrite"]) == 0
    assert (
        nib.load(output).shape == nib.load(scan).shape
        and pd.read_csv(table).shape[0] == nib.load(scan).shape[2]
    )


def test_no_arguments_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tedsnet") and "segment" in out


def test_version_prints_the_package_version(capsys):
    from tedsnet import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tedsnet {__version__}"


def test_missing_arguments_are_usage_errors():
    with pytest.raises(SystemExit) as info:
        main(["segment", "--input", "x.nii.gz"])
    assert info.value.code == 2


def _scan(path: Path, volume: np.ndarray, spacing: float = 1.0) -> Path:
    """A NIfTI volume with in-plane pixel spacing ``spacing`` mm (header zooms)."""
    image = nib.Nifti1Image(volume, np.eye(4))
    image.header.set_zooms((spacing, spacing, 8.0))
    nib.save(image, path)
    return path


def test_nan_inf_and_empty_slices_are_refused_in_the_csv_and_on_stderr(tmp_path, checkpoint, capsys):
    volume = np.random.default_rng(0).random((40, 48, 5)).astype(np.float32) * 300
    volume[3, 4, 1] = np.nan
    volume[10, 10, 2] = np.inf
    volume[:, :, 4] = 0
    output, table = tmp_path / "mask.nii.gz", tmp_path / "slices.csv"
    argv = [
        "segment",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(_scan(tmp_path / "scan.nii.gz", volume)),
    ]
    assert main([*argv, "--output", str(output), "--csv", str(table)]) == 3  # written, some slices refused
    err = capsys.readouterr().err
    assert "3 of 5 slices refused" in err and "z 1, 2: nonfinite_input" in err and "z 4: empty_input" in err
    rows = pd.read_csv(table)
    assert rows.status.tolist() == ["ok", "nonfinite_input", "nonfinite_input", "ok", "empty_input"]
    refused = rows.status != "ok"
    assert rows.loc[refused, ["b0", "b1", "correct_topology"]].isna().all().all()
    assert (rows.foreground_px[refused] == 0).all() and rows.correct_topology[~refused].all()
    mask = np.asarray(nib.load(output).dataobj)
    assert mask[:, :, [1, 2, 4]].sum() == 0 and mask[:, :, 0].sum() > 0


def test_an_input_far_smaller_than_the_training_size_warns_that_it_is_padded(tmp_path, checkpoint, capsys):
    volume = np.random.default_rng(0).random((20, 48, 2)).astype(np.float32)  # 20 < 64 / 2 rows
    argv = [
        "segment",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(_scan(tmp_path / "scan.nii.gz", volume)),
    ]
    assert main([*argv, "--output", str(tmp_path / "mask.nii.gz")]) == 0
    err = capsys.readouterr().err
    assert "is 20 x 48 pixels in-plane, under half the training size 64 x 96" in err and "zero-padded" in err


@pytest.fixture(scope="module")
def spacing_checkpoint(tmp_path_factory) -> Path:
    """A ``prior`` checkpoint at 64 x 96 trained on a prepared split whose scans have 1.4 and 1.6 mm pixels."""
    from tedsnet.data.prepared import PreparedSplit

    table = pd.DataFrame({"spacing_row_mm": [1.4, 1.6], "spacing_col_mm": [1.4, 1.6]})
    split = PreparedSplit(np.zeros((2, 64, 96), np.float32), np.zeros((2, 64, 96), np.uint8), table)
    experiment = get_experiment("prior", prior_radius=20, prior_thickness=5)
    out = tmp_path_factory.mktemp("prior_spacing")
    return train(experiment, split, split, out, epochs=0, progress=False, device="cpu").paths.best


@pytest.mark.parametrize(
    ("spacing", "extra", "status", "message"),
    [
        (1.5, [], 0, None),  # inside the training range
        (1.9, [], 0, None),  # above it, inside the 20 % margin (1.6 * 1.2 = 1.92)
        (1.95, [], 2, r"pixel spacing 1\.95 x 1\.95 mm is outside the range the model was trained on"),
        (1.17, [], 0, None),  # below it, inside the margin (1.4 / 1.2 = 1.167)
        (1.1, [], 2, r"accepted with a 20% margin: 1\.17 to 1\.92 mm"),
        (1.1, ["--ignore-spacing"], 0, r"warning: .*segmenting it anyway \(--ignore-spacing\)"),
    ],
)
def test_pixel_spacing_outside_the_training_range_is_refused(
    tmp_path, spacing_checkpoint, capsys, spacing, extra, status, message
):
    assert read_checkpoint(spacing_checkpoint)["pixel_spacing_mm"] == {"min": 1.4, "median": 1.5, "max": 1.6}
    volume = np.random.default_rng(0).random((64, 96, 2)).astype(np.float32)
    scan = _scan(tmp_path / "scan.nii.gz", volume, spacing)
    output = tmp_path / "mask.nii.gz"
    argv = ["segment", "--checkpoint", str(spacing_checkpoint), "--input", str(scan), "--output", str(output)]
    assert main([*argv, *extra]) == status
    err = capsys.readouterr().err
    assert output.exists() == (status == 0)
    if message is None:
        assert err == ""
    else:
        assert re.search(message, err), err


def test_a_checkpoint_without_training_spacing_warns_that_spacing_cannot_be_checked(
    tmp_path, checkpoint, capsys
):
    assert read_checkpoint(checkpoint)["pixel_spacing_mm"] is None  # trained from bare arrays
    stored = read_checkpoint(checkpoint)
    del stored["pixel_spacing_mm"]  # a checkpoint written before the key existed
    torch.save(stored, tmp_path / "old.pt")
    volume = np.random.default_rng(0).random((64, 96, 2)).astype(np.float32)
    for name in ("old.pt", None):
        argv = ["segment", "--checkpoint", str(tmp_path / name) if name else str(checkpoint)]
        argv += [
            "--input",
            str(_scan(tmp_path / "scan.nii.gz", volume, 9.0)),
            "--output",
            str(tmp_path / "m.nii"),
        ]
        assert main([*argv, "--overwrite"]) == 0
        assert "spacing cannot be checked" in capsys.readouterr().err
