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
        "z", "b0", "b1", "correct_topology", "foreground_px", "nonpos_jac_bulk_pct", "nonpos_jac_ft_pct",
    ]  # fmt: skip
    assert rows.z.tolist() == list(range(source.shape[2]))
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
        ("garbage_checkpoint", "is not readable as a tedsnet checkpoint"),
        ("foreign_checkpoint", "is not a tedsnet checkpoint"),
        ("existing_output", "already exists; pass --overwrite"),
        ("bad_output_name", r"must end in \.nii or \.nii\.gz"),
        ("existing_csv", "already exists; pass --overwrite"),
        ("bad_threshold", r"--threshold must be in \(0, 1\)"),
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
