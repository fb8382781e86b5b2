"""The ``tedsnet`` console command.

``tedsnet`` alone prints the help; ``tedsnet --version`` prints the version.

``tedsnet segment --checkpoint best.pt --input scan.nii.gz --output mask.nii.gz [--csv per_slice.csv]``
segments every z-slice of a short-axis NIfTI volume (3-D, or 4-D with a single frame) with a trained model, writes
the binary myocardium mask with the input's affine and header, and optionally a CSV with each slice's status, Betti
numbers, topology flag and % non-positive Jacobian determinants.

Exit status: 0 when every slice was segmented; 3 (:data:`EXIT_SLICES_REFUSED`) when the outputs were written but
some slices were refused (NaN or infinite voxels, or no intensity contrast: their mask is 0, their CSV row names the
reason, and stderr lists them); 2 (:data:`EXIT_USAGE`) for any bad input (missing, directory or non-NIfTI file,
wrong dimensionality, a volume with no usable slice, unreadable or foreign checkpoint, a pixel spacing outside the
training range without ``--ignore-spacing``, an output that is the input or exists without ``--overwrite``): one
error line, nothing written. No trained model ships with the repository: each training job of the workflow writes
``results/<run>/models/<experiment>/seed<seed>/best.pt``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tedsnet import __version__
from tedsnet.network.outputs import THRESHOLD

__all__ = ["build_parser", "main"]

#: Exit status for a bad input or argument: nothing was written.
EXIT_USAGE = 2
#: Exit status when the outputs were written but some slices were refused (listed on stderr and in the CSV).
EXIT_SLICES_REFUSED = 3
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class CLIError(Exception):
    """A user error: reported as one line, exit status 2."""


def _is_nifti_name(path: Path) -> bool:
    """Whether the file name ends in .nii or .nii.gz (any case)."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _check_output(path: Path, what: str, suffixes: tuple[str, ...], overwrite: bool) -> None:
    """Raise CLIError unless ``path`` has one of ``suffixes`` and is free (or ``overwrite``) and not a folder."""
    if not path.name.lower().endswith(suffixes):
        raise CLIError(f"{what} {path} must end in {' or '.join(suffixes)}.")
    if path.is_dir():
        raise CLIError(f"{what} {path} is a directory; give a file name.")
    if path.exists() and not overwrite:
        raise CLIError(f"{what} {path} already exists; pass --overwrite to replace it.")


def _warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"tedsnet segment: warning: {message}", file=sys.stderr)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (after resolving links and ``..``, or by inode when both exist)."""
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _check_distinct(input_path: Path, outputs: dict[str, Path | None]) -> None:
    """Raise CLIError when an output would replace the input, or the two outputs are one file."""
    named = {what: path for what, path in outputs.items() if path is not None}
    for what, path in named.items():
        if _same_file(path, input_path):
            raise CLIError(
                f"{what} {path} is the input file {input_path}; writing it would replace the scan. Give another "
                f"{what} name (--overwrite does not allow this)."
            )
    if len(named) == 2 and _same_file(*named.values()):
        raise CLIError(f"output and CSV are the same file {named['output']}; give them different names.")


def _load_volume(path: Path):
    """(nibabel image, float32 (X, Y, Z) volume, original data shape) of a NIfTI file; CLIError for a bad one."""
    import nibabel as nib

    if path.is_dir():
        raise CLIError(f"input {path} is a directory; pass one short-axis volume file, .nii or .nii.gz.")
    if not path.is_file():
        raise CLIError(f"input {path} does not exist.")
    if not _is_nifti_name(path):
        raise CLIError(f"input {path} is not a NIfTI file: expected a .nii or .nii.gz short-axis volume.")
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # noqa: BLE001 - nibabel raises many types for a bad file
        raise CLIError(
            f"input {path} is not a readable NIfTI file ({type(error).__name__}: {error})."
        ) from error
    shape = tuple(int(n) for n in image.shape)  # the header's shape: an empty array reads back as (0,)
    if len(shape) in (3, 4) and 0 in shape:
        raise CLIError(f"input {path} has shape {shape}: it holds no voxels; expected at least one slice.")
    if len(shape) == 4 and shape[3] == 1:
        volume = data[..., 0]
    elif len(shape) == 3:
        volume = data
    else:
        raise CLIError(
            f"input {path} has shape {shape}: expected a 3-D short-axis volume (X, Y, Z) or a 4-D volume with a single "
            "frame (X, Y, Z, 1); extract one frame first."
        )
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
        raise CLIError(f"input {path} has data type {volume.dtype}: expected real-valued intensities.")
    return image, np.asarray(volume, dtype=np.float32), shape


def _load_model(path: Path, device: str):
    """(model, experiment, training size (H, W), training pixel spacing or None) of a checkpoint file."""
    from tedsnet.training.checkpoint import (
        checkpoint_image_size,
        checkpoint_pixel_spacing,
        load_checkpoint,
        read_checkpoint,
    )

    try:
        checkpoint = read_checkpoint(path)
        image_size = checkpoint_image_size(checkpoint, path)
        spacing = checkpoint_pixel_spacing(checkpoint, path)
        model, experiment = load_checkpoint(path, device=device)
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(str(error)) from error
    return model, experiment, image_size, spacing


def _check_slices(path: Path, volume: np.ndarray, image_size: tuple[int, int]) -> None:
    """Raise CLIError when no slice can be segmented; warn when the input is far smaller than the training size."""
    from tedsnet.inference.volume import SLICE_OK, SLICE_REFUSALS, slice_statuses

    statuses = slice_statuses(volume, image_size)
    if SLICE_OK not in statuses:
        reasons = "; ".join(
            f"{statuses.count(key)} with {why}" for key, why in SLICE_REFUSALS.items() if key in statuses
        )
        raise CLIError(
            f"input {path}: none of its {len(statuses)} slices can be segmented ({reasons}); check the scan (a "
            "failed conversion or an empty export)."
        )
    rows, cols = volume.shape[:2]
    if rows < image_size[0] / 2 or cols < image_size[1] / 2:
        _warn(
            f"input {path} is {rows} x {cols} pixels in-plane, under half the training size {image_size[0]} x "
            f"{image_size[1]} along an axis: each slice is zero-padded to it, so the model sees mostly padding; "
            "check that this is the short-axis volume you meant."
        )


def _check_spacing(path: Path, image, trained: dict | None, ignore: bool) -> None:
    """Refuse (CLIError) an input whose in-plane spacing lies outside the training range widened by
    :data:`~tedsnet.inference.volume.SPACING_TOLERANCE`, unless ``ignore``; warn when it cannot be checked."""
    from tedsnet.inference.volume import spacing_problem

    if trained is None:
        if not ignore:
            _warn(
                "the checkpoint records no training pixel spacing (a checkpoint without the key, or one trained "
                "from bare arrays), so the input's spacing cannot be checked; make sure it matches the training data's."
            )
        return
    spacing = tuple(float(z) for z in image.header.get_zooms()[:2])
    problem = spacing_problem(spacing, trained)
    if problem is None:
        return
    if ignore:
        _warn(f"input {path}: {problem}; segmenting it anyway (--ignore-spacing).")
        return
    raise CLIError(
        f"input {path}: {problem}. The model sees anatomy at the scale of the input's pixels: resample the scan to "
        "the training spacing first, or pass --ignore-spacing to segment it as it is."
    )


def _report_refused(path: Path, table) -> None:
    """List the refused slices on stderr, grouped by reason."""
    from tedsnet.inference.volume import SLICE_OK, SLICE_REFUSALS

    groups = [
        f"z {', '.join(str(z) for z in table.z[table.status == key])}: {key} ({why})"
        for key, why in SLICE_REFUSALS.items()
        if (table.status == key).any()
    ]
    refused = int((table.status != SLICE_OK).sum())
    _warn(
        f"input {path}: {refused} of {len(table)} slices refused, not segmented (mask 0, CSV status says why): "
        + "; ".join(groups)
    )


def _write_outputs(out_image, table, output: Path, csv_path: Path | None) -> None:
    """Write the mask (and the CSV) through temporary files, renamed into place only when both are complete."""
    import nibabel as nib

    from tedsnet.io import atomic_path

    with contextlib.ExitStack() as stack:
        mask_tmp = stack.enter_context(atomic_path(output))
        csv_tmp = None if csv_path is None else stack.enter_context(atomic_path(csv_path))
        nib.save(out_image, str(mask_tmp))
        if csv_tmp is not None:
            table.to_csv(csv_tmp, index=False)


def segment_command(args: argparse.Namespace) -> int:
    """``tedsnet segment``: check the arguments, segment the volume, write the mask (and CSV) atomically.

    Returns
    -------
    int
        0 when every slice was segmented; :data:`EXIT_SLICES_REFUSED` when some were refused (outputs written).

    Raises
    ------
    CLIError
        For any bad input; nothing is written then.
    """
    from tedsnet.inference.volume import SLICE_OK, segment_volume

    input_path, output = Path(args.input), Path(args.output)
    csv_path = Path(args.csv) if args.csv else None
    _check_distinct(input_path, {"output": output, "CSV": csv_path})
    _check_output(output, "output", NIFTI_SUFFIXES, args.overwrite)
    if csv_path is not None:
        _check_output(csv_path, "CSV", (".csv",), args.overwrite)
    if not 0 < args.threshold < 1:
        raise CLIError(f"--threshold must be in (0, 1), got {args.threshold}.")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}.")
    image, volume, shape = _load_volume(input_path)
    model, experiment, image_size, trained_spacing = _load_model(Path(args.checkpoint), args.device)
    _check_slices(input_path, volume, image_size)
    _check_spacing(input_path, image, trained_spacing, args.ignore_spacing)

    result = segment_volume(
        model,
        experiment,
        volume,
        image_size=image_size,
        threshold=args.threshold,
        batch_size=args.batch_size,
        device=args.device,
    )
    header = image.header.copy()
    header.set_data_dtype(np.uint8)
    out_image = type(image)(result.mask.reshape(shape), image.affine, header)
    out_image.header.set_slope_inter(1.0, 0.0)
    _write_outputs(out_image, result.table, output, csv_path)

    table = result.table
    ok = table.status == SLICE_OK
    print(
        f"{args.input}: {int(ok.sum())} of {len(table)} slices segmented with {experiment.name} "
        f"({int(table.correct_topology[ok].sum())}/{int(ok.sum())} with one ring, Betti (1, 1)); wrote {output}"
        + (f" and {csv_path}" if csv_path is not None else "")
    )
    if not ok.all():
        _report_refused(input_path, table)
        return EXIT_SLICES_REFUSED
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``tedsnet`` command line: ``--version`` and the ``segment`` subcommand."""
    parser = argparse.ArgumentParser(
        prog="tedsnet",
        description="TEDS-Net reproducibility suite: apply a trained model to short-axis cardiac MRI.",
        epilog="Run 'tedsnet segment --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    segment = sub.add_parser(
        "segment",
        help="segment the myocardium in every slice of a short-axis NIfTI volume",
        description=(
            "Segment every z-slice of a short-axis NIfTI volume (3-D, or 4-D with one frame): each slice is centre "
            "cropped/padded to the training size and normalised as in training, segmented, and put back; the mask "
            "is written with the input's affine and header. Slices with NaN/infinite voxels or no contrast are "
            "refused (mask 0, listed on stderr and in the CSV). Exit status: 0 all slices segmented, 3 some "
            "refused (outputs written), 2 bad input (nothing written)."
        ),
    )
    segment.add_argument(
        "--checkpoint",
        required=True,
        help="best.pt of a trained model (a workflow run writes results/<run>/models/<experiment>/seed<seed>/best.pt)",
    )
    segment.add_argument("--input", required=True, help="short-axis volume, .nii or .nii.gz")
    segment.add_argument("--output", required=True, help="mask to write, .nii or .nii.gz (uint8 0/1)")
    segment.add_argument(
        "--csv", help="per-slice table to write: z, status, Betti numbers, topology, %% non-positive det J"
    )
    segment.add_argument(
        "--threshold", type=float, default=THRESHOLD, help=f"binarisation threshold (default {THRESHOLD})"
    )
    segment.add_argument("--batch-size", type=int, default=5, help="slices per forward pass (default 5)")
    segment.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    segment.add_argument("--overwrite", action="store_true", help="replace existing output files")
    segment.add_argument(
        "--ignore-spacing",
        action="store_true",
        help="segment even when the input's pixel spacing lies outside the checkpoint's training range (warns)",
    )
    segment.set_defaults(func=segment_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tedsnet`` console script; returns the exit status (0 after printing the help)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except CLIError as error:
        print(f"tedsnet {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
