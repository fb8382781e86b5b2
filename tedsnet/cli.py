"""The ``tedsnet`` console command.

``tedsnet`` alone prints the help; ``tedsnet --version`` prints the version.

``tedsnet segment --checkpoint best.pt --input scan.nii.gz --output mask.nii.gz [--csv per_slice.csv]``
segments every z-slice of a short-axis NIfTI volume (3-D, or 4-D with a single frame) with a trained model, writes
the binary myocardium mask with the input's affine and header, and optionally a CSV with each slice's Betti numbers,
topology flag and % non-positive Jacobian determinants. Any bad input (missing or non-NIfTI file, wrong
dimensionality, unreadable or foreign checkpoint, an existing output without ``--overwrite``) prints one clear error
line, exits with status 2 and writes nothing. No trained model ships with the repository: each training job of
the workflow writes ``results/<run>/models/<experiment>/seed<seed>/best.pt``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tedsnet import __version__

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
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
    if path.exists() and not overwrite:
        raise CLIError(f"{what} {path} already exists; pass --overwrite to replace it.")
    if path.exists() and path.is_dir():
        raise CLIError(f"{what} {path} is a directory; give a file name.")


def _load_volume(path: Path):
    """(nibabel image, float32 (X, Y, Z) volume, original data shape) of a NIfTI file; CLIError for a bad one."""
    import nibabel as nib

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
    shape = data.shape
    if data.ndim == 4 and shape[3] == 1:
        volume = data[..., 0]
    elif data.ndim == 3:
        volume = data
    else:
        raise CLIError(
            f"input {path} has shape {shape}: expected a 3-D short-axis volume (X, Y, Z) or a 4-D volume with a single "
            "frame (X, Y, Z, 1); extract one frame first."
        )
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
        raise CLIError(f"input {path} has data type {volume.dtype}: expected real-valued intensities.")
    return image, np.asarray(volume, dtype=np.float32), shape


def _atomic_tmp(path: Path) -> Path:
    """A hidden temporary name beside ``path`` with the same (NIfTI-aware) suffix."""
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix
    return path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")


def segment_command(args: argparse.Namespace) -> int:
    """``tedsnet segment``: check the arguments, segment the volume, write the mask (and CSV) atomically.

    Raises
    ------
    CLIError
        For any bad input; nothing is written then.
    """
    import nibabel as nib

    from tedsnet.inference.volume import segment_volume
    from tedsnet.training.checkpoint import load_checkpoint, read_checkpoint

    output, csv_path = Path(args.output), Path(args.csv) if args.csv else None
    _check_output(output, "output", NIFTI_SUFFIXES, args.overwrite)
    if csv_path is not None:
        _check_output(csv_path, "CSV", (".csv",), args.overwrite)
    if not 0 < args.threshold < 1:
        raise CLIError(f"--threshold must be in (0, 1), got {args.threshold}.")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}.")
    image, volume, shape = _load_volume(Path(args.input))
    checkpoint_path = Path(args.checkpoint)
    try:
        image_size = tuple(int(s) for s in read_checkpoint(checkpoint_path).get("image_size", (144, 208)))
        model, experiment = load_checkpoint(checkpoint_path, device=args.device)
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(str(error)) from error

    result = segment_volume(
        model,
        experiment,
        volume,
        image_size=image_size,
        threshold=args.threshold,
        batch_size=args.batch_size,
        device=args.device,
    )
    mask = result.mask.reshape(shape)
    header = image.header.copy()
    header.set_data_dtype(np.uint8)
    out_image = type(image)(mask, image.affine, header)
    out_image.header.set_slope_inter(1.0, 0.0)

    written: list[Path] = []
    try:
        for target, write in [
            (output, lambda tmp: nib.save(out_image, str(tmp))),
            (csv_path, lambda tmp: result.table.to_csv(tmp, index=False)),
        ]:
            if target is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _atomic_tmp(target)
            write(tmp)
            written.append(tmp)
        for tmp, target in zip(written, [t for t in (output, csv_path) if t is not None], strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in written:
            if tmp.exists():
                tmp.unlink()

    table = result.table
    print(
        f"{args.input}: {len(table)} slices segmented with {experiment.name} "
        f"({int(table.correct_topology.sum())}/{len(table)} with one ring, Betti (1, 1)); wrote {output}"
        + (f" and {csv_path}" if csv_path is not None else "")
    )
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
            "is written with the input's affine and header."
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
        "--csv", help="per-slice table to write: z, Betti numbers, topology, %% non-positive det J"
    )
    segment.add_argument("--threshold", type=float, default=0.3, help="binarisation threshold (default 0.3)")
    segment.add_argument("--batch-size", type=int, default=5, help="slices per forward pass (default 5)")
    segment.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    segment.add_argument("--overwrite", action="store_true", help="replace existing output files")
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
