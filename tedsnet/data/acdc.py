"""Reader for the ACDC cine-MRI layout (and the phantom cohort, which uses the same layout).

Layout of a cohort root (the ACDC challenge release)::

    root/training/patientNNN/Info.cfg
    root/training/patientNNN/patientNNN_frameXX.nii.gz      image, XX = 1-based frame index (2 digits)
    root/training/patientNNN/patientNNN_frameXX_gt.nii.gz   labels 0 bg, 1 RV cavity, 2 myocardium, 3 LV cavity
    root/testing/patientNNN/...                             same, optional

``Info.cfg`` holds ``key: value`` lines: ``ED``, ``ES``, ``Group``, ``Height``, ``NbFrame``, ``Weight``. Only the
ED and ES frames named there are read; everything else in a patient folder (``*_4d.nii.gz``, notes) is ignored.
Spacing comes from the NIfTI header zooms (ACDC affines carry none). Reading never writes anything.

Every reader validates the whole patient before returning it, so a patient is either fully read or an error names
the file and the problem (missing or unreadable frame, truncated or non-NIfTI file, missing Info.cfg key,
image/label shape mismatch, label values outside {0, 1, 2, 3}, a frame without myocardium).
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import nibabel as nib
import numpy as np
import pandas as pd

__all__ = [
    "LABELS",
    "PHASES",
    "Frame",
    "Patient",
    "PatientInfo",
    "iter_cohort",
    "list_patient_dirs",
    "read_cohort",
    "read_cohort_table",
    "read_info",
    "read_patient",
]

#: ACDC label values.
LABELS: Mapping[str, int] = MappingProxyType({"background": 0, "rv": 1, "myocardium": 2, "lv": 3})
#: Cardiac phases read for each patient.
PHASES: tuple[str, str] = ("ED", "ES")
#: Subfolders of a cohort root that hold patients, in reading order.
SUBSETS: tuple[str, str] = ("training", "testing")

_INT_KEYS = ("ED", "ES", "NbFrame")
_FLOAT_KEYS = ("Height", "Weight")
_STR_KEYS = ("Group",)
_REQUIRED_KEYS = (*_INT_KEYS, *_STR_KEYS, *_FLOAT_KEYS)
_PATIENT_DIR = re.compile(r"^patient\d+$")


@dataclass(frozen=True)
class PatientInfo:
    """Parsed ``Info.cfg``.

    Attributes
    ----------
    ed, es : int
        1-based indices of the end-diastolic and end-systolic frames.
    group : str
        Diagnostic group (ACDC: DCM, HCM, MINF, NOR, RV).
    height : float
        Height in cm.
    weight : float
        Weight in kg.
    n_frames : int
        Number of frames of the cine sequence (``NbFrame``).
    """

    ed: int
    es: int
    group: str
    height: float
    weight: float
    n_frames: int


@dataclass(frozen=True, eq=False)
class Frame:
    """One cardiac phase of one patient.

    Attributes
    ----------
    index : int
        1-based frame index in the cine sequence (the ``XX`` of ``frameXX``).
    image : np.ndarray
        float32 (X, Y, Z), intensities as stored (NIfTI scaling applied), array axes as stored (no transpose).
    label : np.ndarray
        uint8 (X, Y, Z) with values in {0, 1, 2, 3}.
    spacing : tuple of 3 floats
        Voxel size in mm along array axes (0, 1, 2), from the image header zooms.
    image_path, label_path : Path
        Files the frame was read from.
    """

    index: int
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    image_path: Path
    label_path: Path


@dataclass(frozen=True, eq=False)
class Patient:
    """One fully read and validated patient.

    Attributes
    ----------
    id : str
        Folder name, e.g. ``"patient001"``.
    group : str
        Diagnostic group from Info.cfg.
    height, weight : float
        cm and kg from Info.cfg.
    n_frames : int
        ``NbFrame`` from Info.cfg.
    frames : Mapping[str, Frame]
        ``"ED"`` and ``"ES"`` (read-only mapping).
    path : Path
        The patient folder.
    """

    id: str
    group: str
    height: float
    weight: float
    n_frames: int
    frames: Mapping[str, Frame] = field(repr=False)
    path: Path

    @property
    def info(self) -> PatientInfo:
        """The Info.cfg content as a :class:`PatientInfo`."""
        return PatientInfo(
            ed=self.frames["ED"].index,
            es=self.frames["ES"].index,
            group=self.group,
            height=self.height,
            weight=self.weight,
            n_frames=self.n_frames,
        )


# ----------------------------------------------------------------------------------------------------- Info.cfg
def _parse_number(path: Path, key: str, text: str, integer: bool) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"{path}: key {key!r} must be a number, got {text!r}; fix the line to read '{key}: <number>'"
        ) from None
    if not np.isfinite(value):
        raise ValueError(f"{path}: key {key!r} must be finite, got {text!r}; write a number")
    if integer:
        if value != int(value):
            raise ValueError(f"{path}: key {key!r} must be an integer, got {text!r}; write a whole number")
        return int(value)
    return value


def read_info(path: str | os.PathLike) -> PatientInfo:
    """Parse an ACDC ``Info.cfg``.

    Parameters
    ----------
    path : path-like
        The ``Info.cfg`` file.

    Returns
    -------
    PatientInfo

    Notes
    -----
    Lines are ``key: value``; whitespace around keys and values is ignored, as are blank lines and lines starting
    with ``#``. Keys match case-insensitively. Numbers may be written as integers or floats (``184`` or
    ``184.0``); ``ED``, ``ES`` and ``NbFrame`` must be integral. Unknown keys are ignored.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a line without ``:``, a duplicated or missing key, a non-numeric value, or ED/ES outside 1..NbFrame.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: Info.cfg not found; every patient folder needs an Info.cfg with keys {', '.join(_REQUIRED_KEYS)}"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read Info.cfg as UTF-8 text ({err}); re-download the file") from err
    canonical = {k.lower(): k for k in _REQUIRED_KEYS}
    raw: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if ":" not in stripped:
            raise ValueError(f"{path}: line {lineno} {line!r} is not 'key: value'; fix or delete the line")
        key, value = (s.strip() for s in stripped.split(":", 1))
        key = canonical.get(key.lower(), key)
        if key in raw:
            raise ValueError(f"{path}: key {key!r} appears twice (line {lineno}); keep one")
        raw[key] = value
    missing = [k for k in _REQUIRED_KEYS if k not in raw or raw[k] == ""]
    if missing:
        raise ValueError(
            f"{path}: missing key(s) {', '.join(missing)} in Info.cfg; expected all of {', '.join(_REQUIRED_KEYS)}"
        )
    ed = _parse_number(path, "ED", raw["ED"], True)
    es = _parse_number(path, "ES", raw["ES"], True)
    n_frames = _parse_number(path, "NbFrame", raw["NbFrame"], True)
    height = _parse_number(path, "Height", raw["Height"], False)
    weight = _parse_number(path, "Weight", raw["Weight"], False)
    if n_frames < 1:
        raise ValueError(f"{path}: NbFrame must be >= 1, got {n_frames}; write the cine frame count")
    for key, value in (("ED", ed), ("ES", es)):
        if not 1 <= value <= n_frames:
            raise ValueError(
                f"{path}: {key} = {value} is outside the frames 1..NbFrame = 1..{n_frames}; "
                "fix ED, ES or NbFrame"
            )
    return PatientInfo(
        ed=int(ed),
        es=int(es),
        group=raw["Group"],
        height=float(height),
        weight=float(weight),
        n_frames=int(n_frames),
    )


# ------------------------------------------------------------------------------------------------------ NIfTI
_READ_ERRORS = (
    nib.filebasedimages.ImageFileError,
    OSError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    ValueError,
    TypeError,
)


def _frame_file(folder: Path, pid: str, index: int, gt: bool) -> Path:
    stem = f"{pid}_frame{index:02d}{'_gt' if gt else ''}"
    path = folder / f"{stem}.nii.gz"
    if not path.exists() and (folder / f"{stem}.nii").exists():
        return folder / f"{stem}.nii"
    return path


def _load_nifti(path: Path, what: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read a 3-D NIfTI fully into memory; returns (array as stored dtype or scaled float, zooms)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found; expected an ACDC NIfTI file (.nii.gz)")
    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise nib.filebasedimages.ImageFileError(f"loaded as {type(img).__name__}")
        data = np.asanyarray(img.dataobj)
        zooms = tuple(float(z) for z in img.header.get_zooms())
    except _READ_ERRORS as err:
        raise ValueError(
            f"{path}: cannot read the {what} as NIfTI (truncated, corrupt or not a NIfTI file: "
            f"{type(err).__name__}: {err}); re-download or regenerate the file"
        ) from err
    if data.ndim > 3 and all(s == 1 for s in data.shape[3:]):
        data = data.reshape(data.shape[:3])
    if data.ndim != 3:
        raise ValueError(f"{path}: the {what} must be a 3-D volume (X, Y, Z), got shape {data.shape}")
    if len(zooms) < 3 or not all(np.isfinite(z) and z > 0 for z in zooms[:3]):
        raise ValueError(f"{path}: header zooms must be 3 positive numbers (voxel size in mm), got {zooms}")
    return data, (zooms[0], zooms[1], zooms[2])


def _read_frame(folder: Path, pid: str, phase: str, index: int) -> Frame:
    image_path = _frame_file(folder, pid, index, gt=False)
    label_path = _frame_file(folder, pid, index, gt=True)
    image, spacing = _load_nifti(image_path, f"{phase} image")
    label_raw, label_spacing = _load_nifti(label_path, f"{phase} label")
    if image.shape != label_raw.shape:
        raise ValueError(
            f"{label_path}: label shape {label_raw.shape} does not match image shape {image.shape} "
            f"({image_path.name}); image and _gt label must cover the same voxels"
        )
    if not np.allclose(spacing, label_spacing, rtol=1e-3, atol=1e-4):
        raise ValueError(
            f"{label_path}: label voxel size {label_spacing} mm differs from the image's {spacing} mm "
            f"({image_path.name})"
        )
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        raise ValueError(f"{image_path}: image contains NaN or infinite values; expected finite intensities")
    if label_raw.dtype.kind in "iub":
        values = np.unique(label_raw)
        bad = values[(values < 0) | (values > 3)]
    else:
        values = np.unique(label_raw)
        bad = values[~np.isin(values, (0, 1, 2, 3))]
    if bad.size:
        raise ValueError(
            f"{label_path}: label values {bad[:10].tolist()} outside {{0, 1, 2, 3}} "
            f"(0 bg, 1 RV, 2 myocardium, 3 LV); expected an ACDC ground-truth file"
        )
    label = label_raw.astype(np.uint8)
    if not (label == LABELS["myocardium"]).any():
        raise ValueError(
            f"{label_path}: no myocardium (label 2) in the {phase} label; every scan needs a myocardium segmentation"
        )
    image.setflags(write=False)
    label.setflags(write=False)
    return Frame(
        index=index, image=image, label=label, spacing=spacing, image_path=image_path, label_path=label_path
    )


# ----------------------------------------------------------------------------------------------------- patients
def read_patient(path: str | os.PathLike) -> Patient:
    """Read one patient folder (Info.cfg, ED and ES images and labels), fully validated.

    Parameters
    ----------
    path : path-like
        A ``patientNNN`` folder in the ACDC layout.

    Returns
    -------
    Patient
        ``frames["ED"]`` and ``frames["ES"]``, each with ``image`` float32 (X, Y, Z), ``label`` uint8 (X, Y, Z)
        and ``spacing`` (3 floats, mm). Arrays are read-only.

    Raises
    ------
    FileNotFoundError
        If the folder, its Info.cfg or an ED/ES image or label file is missing.
    ValueError
        If a file is unreadable, truncated or not NIfTI, Info.cfg lacks a key, image and label shapes differ,
        labels fall outside {0, 1, 2, 3}, or a frame has no myocardium. The message names the file.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: patient folder not found; expected an ACDC 'patientNNN' folder")
    pid = folder.name
    info = read_info(folder / "Info.cfg")
    frames = {
        "ED": _read_frame(folder, pid, "ED", info.ed),
        "ES": _read_frame(folder, pid, "ES", info.es),
    }
    return Patient(
        id=pid,
        group=info.group,
        height=info.height,
        weight=info.weight,
        n_frames=info.n_frames,
        frames=MappingProxyType(frames),
        path=folder,
    )


def list_patient_dirs(root: str | os.PathLike, subsets: Sequence[str] = SUBSETS) -> list[Path]:
    """Patient folders under ``root/<subset>/patientNNN``, sorted by subset order then name.

    Parameters
    ----------
    root : path-like
        Cohort root (the folder that contains ``training/``).
    subsets : sequence of str
        Subfolders to scan; missing ones other than the first are skipped (``testing/`` is optional).

    Raises
    ------
    FileNotFoundError
        If ``root`` or ``root/<subsets[0]>`` does not exist, or no patient folder is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: cohort root not found; expected a folder containing training/patientNNN/ "
            "(set TEDSNET_ACDC_ROOT or the config's data root)"
        )
    if subsets and not (root / subsets[0]).is_dir():
        raise FileNotFoundError(
            f"{root}: no '{subsets[0]}/' folder; expected {root}/{subsets[0]}/patientNNN/"
        )
    dirs: list[Path] = []
    for subset in subsets:
        sub = root / subset
        if sub.is_dir():
            dirs.extend(sorted(p for p in sub.iterdir() if p.is_dir() and _PATIENT_DIR.match(p.name)))
    if not dirs:
        raise FileNotFoundError(
            f"{root}: no patientNNN folders under {', '.join(subsets)}; point the root at the folder holding "
            "training/patientNNN/"
        )
    return dirs


def iter_cohort(root: str | os.PathLike, subsets: Sequence[str] = SUBSETS) -> Iterator[Patient]:
    """Yield :func:`read_patient` for every patient folder of :func:`list_patient_dirs` (memory-light)."""
    for folder in list_patient_dirs(root, subsets):
        yield read_patient(folder)


def read_cohort(root: str | os.PathLike, subsets: Sequence[str] = SUBSETS) -> list[Patient]:
    """Read every patient under ``root/training`` (and ``root/testing`` when present).

    Parameters
    ----------
    root : path-like
        Cohort root, e.g. the ACDC release folder or a phantom cohort.
    subsets : sequence of str
        Subfolders to read, default ``("training", "testing")``.

    Returns
    -------
    list of Patient
        In subset order, then by folder name. About 5 MB per ACDC patient; use :func:`iter_cohort` to stream.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_patient` for the first bad patient; nothing is returned half-read.
    """
    return list(iter_cohort(root, subsets))


def read_cohort_table(root: str | os.PathLike, subsets: Sequence[str] = SUBSETS) -> pd.DataFrame:
    """Patient IDs and groups of a cohort from the Info.cfg files only (fast, reads no image).

    Returns
    -------
    pandas.DataFrame
        Columns ``patient_id`` (str), ``group`` (str), ``subset`` (str), one row per patient folder.
    """
    rows = []
    for folder in list_patient_dirs(root, subsets):
        info = read_info(folder / "Info.cfg")
        rows.append({"patient_id": folder.name, "group": info.group, "subset": folder.parent.name})
    return pd.DataFrame(rows, columns=["patient_id", "group", "subset"])
