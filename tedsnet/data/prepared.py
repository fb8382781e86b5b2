"""Prepared dataset on disk: one ``.npz`` per split that training reads fast.

A split file holds ``images`` float32 (N, H, W), ``labels`` uint8 (N, H, W) and the provenance table, one array per
column (``table.<column>``, column order in ``table_columns``), so it loads with ``allow_pickle=False``. Required
table columns: case_id (unique str), patient_id, group, phase, z (int), aug (int, 0 = original), spacing_row_mm,
spacing_col_mm, clipped (bool). :func:`prepare_dataset` adds slice_id, split, aug_kind, rotation_deg, shift_row_px,
shift_col_px, zoom and aug_tries.

:func:`prepare_dataset` runs cohort -> slices (:func:`~tedsnet.data.slices.extract_slices`) -> patient split
(:func:`~tedsnet.data.splits.split_patients` or a given split) -> augmentation of train and val
(:func:`~tedsnet.data.augment.augment_slice`, 8 images per slice) with the test split left un-augmented -> three
``.npz`` files, ``splits.csv``, ``provenance.csv`` (one row per image) and ``dataset.json`` (parameters, counts).
The protocol's slices, splits and augmentation are described in ``docs/protocol.md``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from tedsnet.data.acdc import list_patient_dirs, read_cohort_table, read_patient
from tedsnet.data.augment import AugmentParams, augment_slice
from tedsnet.data.slices import CROP, Slice, extract_slices
from tedsnet.data.splits import FRACTIONS, SPLITS, read_splits, split_patients, write_splits
from tedsnet.io import atomic_path

__all__ = [
    "NORMALISATION",
    "REQUIRED_COLUMNS",
    "PrepareSettings",
    "PreparedDataset",
    "PreparedSplit",
    "load_split",
    "load_split_table",
    "prepare_dataset",
    "save_split",
]

log = logging.getLogger(__name__)

#: Columns every prepared split table has.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "case_id",
    "patient_id",
    "group",
    "phase",
    "z",
    "aug",
    "spacing_row_mm",
    "spacing_col_mm",
    "clipped",
)
_PREFIX = "table."


class PreparedSplit(NamedTuple):
    """One split: images float32 (N, H, W), labels uint8 (N, H, W), table (N rows, see :data:`REQUIRED_COLUMNS`)."""

    images: np.ndarray
    labels: np.ndarray
    table: pd.DataFrame


class PreparedDataset(NamedTuple):
    """Result of :func:`prepare_dataset`.

    paths : dict
        Split name -> ``.npz`` path.
    splits : pandas.DataFrame
        patient_id, group, split (as written to ``splits.csv``).
    provenance : pandas.DataFrame
        One row per image of all splits (as written to ``provenance.csv``).
    counts : dict
        Split name -> number of images.
    seconds : float
        Wall time of the preparation.
    """

    paths: dict[str, Path]
    splits: pd.DataFrame
    provenance: pd.DataFrame
    counts: dict[str, int]
    seconds: float


def _column_array(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(series):
        return series.to_numpy(dtype=np.float64)
    return np.asarray([str(v) for v in series], dtype=np.str_)


def save_split(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, table: pd.DataFrame) -> Path:
    """Write one prepared split atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : path-like
        Output ``.npz``; parent folders are created.
    images : np.ndarray
        float (N, H, W); stored as float32.
    labels : np.ndarray
        (N, H, W) integer or bool with values in 0..255; stored as uint8.
    table : pandas.DataFrame
        N rows with at least :data:`REQUIRED_COLUMNS`; ``case_id`` unique. Bool, integer, float and string
        columns are kept (anything else is stored as strings).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        On shape/dtype/length mismatches, missing columns or duplicated case_id.
    """
    path = Path(path)
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 3 or images.dtype.kind != "f":
        raise ValueError(
            f"save_split({path}): images must be float (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.shape != images.shape:
        raise ValueError(
            f"save_split({path}): labels shape {labels.shape} must equal images shape {images.shape}"
        )
    if labels.dtype.kind not in "uib" or (labels.size and (labels.min() < 0 or labels.max() > 255)):
        raise ValueError(f"save_split({path}): labels must be integers in 0..255 (uint8), got {labels.dtype}")
    if len(table) != images.shape[0]:
        raise ValueError(f"save_split({path}): table has {len(table)} rows for {images.shape[0]} images")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"save_split({path}): table lacks column(s) {missing}; required: {list(REQUIRED_COLUMNS)}"
        )
    dup = table["case_id"][table["case_id"].duplicated()]
    if len(dup):
        raise ValueError(f"save_split({path}): case_id must be unique, repeated: {list(dup[:5])}")
    arrays = {
        "images": images.astype(np.float32, copy=False),
        "labels": labels.astype(np.uint8, copy=False),
        "table_columns": np.asarray([str(c) for c in table.columns], dtype=np.str_),
    }
    for col in table.columns:
        arrays[_PREFIX + str(col)] = _column_array(table[col])
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _read_arrays(path: Path, wanted: Callable[[str], bool]) -> dict[str, np.ndarray]:
    """The arrays of a prepared split file whose names pass ``wanted(name)`` (the others are never read)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: prepared split not found; create it with tedsnet.data.prepared.prepare_dataset"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files if wanted(name)}
    except (OSError, EOFError, ValueError, KeyError, zlib.error, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{path}: cannot read prepared split ({type(err).__name__}: {err}); regenerate it with prepare_dataset"
        ) from err


def _table_of(path: Path, arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    """The provenance table stored in ``arrays`` (``table_columns`` and one ``table.<column>`` per column)."""
    if "table_columns" not in arrays:
        raise ValueError(f"{path}: not a prepared split (missing arrays ['table_columns'])")
    columns = [str(c) for c in arrays["table_columns"]]
    absent = [c for c in columns if _PREFIX + c not in arrays]
    if absent:
        raise ValueError(f"{path}: table column arrays missing: {absent}")
    table = pd.DataFrame({c: arrays[_PREFIX + c] for c in columns}, columns=columns)
    for col in table.columns:
        if table[col].dtype.kind == "U":
            table[col] = table[col].astype(str)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: table lacks column(s) {missing}")
    return table


def load_split(path: str | os.PathLike) -> PreparedSplit:
    """Read a split written by :func:`save_split`.

    Returns
    -------
    PreparedSplit
        images float32 (N, H, W), labels uint8 (N, H, W), table with the stored columns in order (extra columns
        such as ``slice_class`` (str) and ``kept`` (bool) come back with their types).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a prepared split (unreadable, or arrays/columns missing).
    """
    path = Path(path)
    arrays = _read_arrays(path, lambda name: True)
    needed = {"images", "labels", "table_columns"}
    if not needed <= set(arrays):
        raise ValueError(f"{path}: not a prepared split (missing arrays {sorted(needed - set(arrays))})")
    return PreparedSplit(images=arrays["images"], labels=arrays["labels"], table=_table_of(path, arrays))


def load_split_table(path: str | os.PathLike) -> pd.DataFrame:
    """The table of a split written by :func:`save_split`, without reading its images and labels.

    Parameters
    ----------
    path : path-like
        A prepared split ``.npz``.

    Returns
    -------
    pandas.DataFrame
        One row per image, the stored columns in order (as ``load_split(path).table``).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_split`.

    Examples
    --------
    >>> load_split_table("results/default/data/test.npz")["patient_id"].unique()  # doctest: +SKIP
    """
    path = Path(path)
    return _table_of(
        path, _read_arrays(path, lambda name: name == "table_columns" or name.startswith(_PREFIX))
    )


def _slice_rng(seed: int, slice_id: str) -> np.random.Generator:
    """Generator of one slice's augmentation: depends on the seed and the slice only (not on order or split)."""
    return np.random.default_rng([int(seed), zlib.crc32(slice_id.encode())])


@dataclass(frozen=True)
class PrepareSettings:
    """What :func:`prepare_dataset` does to a cohort; the defaults are the protocol's (``docs/protocol.md``).

    Attributes
    ----------
    seed : int
        Seed of the split (when computed) and of the augmentation (slice ``s`` uses
        ``default_rng([seed, crc32(slice_id)])``, independent of order and split).
    fractions : (train, val, test)
        Patient fractions when the split is computed.
    n_slices : int
        Slices per scan (:func:`~tedsnet.data.slices.extract_slices`).
    crop : (H, W)
        In-plane size of every slice, pixels.
    n_augment : int
        Images per augmented slice, the slice itself included (:func:`~tedsnet.data.augment.augment_slice`).
    rotation_deg, shift_frac, zoom_frac, max_tries
        The ranges and the redraw bound of :func:`~tedsnet.data.augment.augment_slice`.
    augment_splits : tuple of str
        Splits that are augmented (the test split never should be).
    subsets : tuple of str
        Cohort subfolders to use; only ``training`` by default (the protocol's 100 ACDC patients), so a root that
        also holds ``testing/`` still matches the committed split.

    Raises
    ------
    ValueError
        If ``augment_splits`` names a split other than train, val or test.
    """

    seed: int = 0
    fractions: tuple[float, ...] = FRACTIONS
    n_slices: int = 5
    crop: tuple[int, ...] = CROP
    n_augment: int = 8
    rotation_deg: float = 15.0
    shift_frac: float = 0.1
    zoom_frac: float = 0.1
    max_tries: int = 20
    augment_splits: tuple[str, ...] = ("train", "val")
    subsets: tuple[str, ...] = ("training",)

    def __post_init__(self) -> None:
        bad = sorted(set(self.augment_splits) - set(SPLITS))
        if bad:
            raise ValueError(
                f"PrepareSettings: augment_splits {bad} not among {list(SPLITS)}; name splits from that list"
            )

    def augment_kwargs(self) -> dict:
        """Keyword arguments of :func:`~tedsnet.data.augment.augment_slice` other than ``n_images``."""
        return {
            "rotation_deg": self.rotation_deg,
            "shift_frac": self.shift_frac,
            "zoom_frac": self.zoom_frac,
            "max_tries": self.max_tries,
        }

    def record(self) -> dict:
        """The settings as plain JSON values, in ``dataset.json``'s key order."""
        return {
            "subsets": list(self.subsets),
            "seed": int(self.seed),
            "fractions": [float(f) for f in self.fractions],
            "n_slices": int(self.n_slices),
            "crop": [int(c) for c in self.crop],
            "n_augment": int(self.n_augment),
            "rotation_deg": float(self.rotation_deg),
            "shift_frac": float(self.shift_frac),
            "zoom_frac": float(self.zoom_frac),
            "max_tries": int(self.max_tries),
            "augment_splits": list(self.augment_splits),
        }


#: How every slice's intensities are normalised (recorded in ``dataset.json``).
NORMALISATION = "per slice: clip to 1st-99th percentile of the cropped field of view, min-max to [0, 1]"
#: Provenance columns after the required ones, in table order.
_AUG_COLUMNS = ("split", "aug_kind", "rotation_deg", "shift_row_px", "shift_col_px", "zoom", "aug_tries")


def _provenance_rows(s: Slice, split: str, params: Sequence[AugmentParams | None]) -> list[dict]:
    """One provenance row per image of slice ``s``; ``params[k]`` is None for an un-augmented copy."""
    base = {
        "slice_id": s.id,
        "patient_id": s.patient_id,
        "group": s.group,
        "phase": s.phase,
        "z": int(s.z),
        "spacing_row_mm": float(s.spacing[0]),
        "spacing_col_mm": float(s.spacing[1]),
        "clipped": bool(s.clipped),
        "split": split,
    }
    return [
        {
            "case_id": s.id if k == 0 else f"{s.id}_aug{k}",
            **base,
            "aug": k,
            "aug_kind": prm.kind if prm else "original",
            "rotation_deg": prm.rotation_deg if prm else 0.0,
            "shift_row_px": prm.shift_row if prm else 0.0,
            "shift_col_px": prm.shift_col if prm else 0.0,
            "zoom": prm.zoom if prm else 1.0,
            "aug_tries": prm.tries if prm else 0,
        }
        for k, prm in enumerate(params)
    ]


def _build_split(
    slices: Sequence[Slice], split: str, settings: PrepareSettings, progress: bool
) -> PreparedSplit:
    """Images, labels and provenance of one split: every slice augmented (``settings.n_augment`` images) when
    the split is in ``settings.augment_splits``, else copied once."""
    from tqdm import tqdm

    augment = split in settings.augment_splits
    per = settings.n_augment if augment else 1
    n = len(slices) * per
    height, width = slices[0].image.shape if slices else CROP
    images = np.empty((n, height, width), dtype=np.float32)
    labels = np.empty((n, height, width), dtype=np.uint8)
    rows = []
    desc = f"augment {split}" if augment else f"copy {split}"
    for i, s in enumerate(tqdm(slices, desc=desc, disable=not progress)):
        if augment:
            result = augment_slice(
                s.image,
                s.myocardium,
                _slice_rng(settings.seed, s.id),
                n_images=settings.n_augment,
                **settings.augment_kwargs(),
            )
            images[i * per : (i + 1) * per] = result.images
            labels[i * per : (i + 1) * per] = result.labels
            params = result.params
        else:
            images[i], labels[i] = s.image, s.myocardium
            params = [None]
        rows.extend(_provenance_rows(s, split, params))
    order = [REQUIRED_COLUMNS[0], "slice_id", *REQUIRED_COLUMNS[1:], *_AUG_COLUMNS]
    table = pd.DataFrame(rows, columns=order)
    for col in ("z", "aug", "aug_tries"):
        table[col] = table[col].astype(np.int64)
    table["clipped"] = table["clipped"].astype(bool)
    return PreparedSplit(images=images, labels=labels, table=table)


def _resolve_split(
    root: str | os.PathLike,
    splits: pd.DataFrame | str | os.PathLike | None,
    settings: PrepareSettings,
) -> pd.DataFrame:
    """The patient split (patient_id, group, split) for the cohort: given, read from a file, or computed.

    Raises ValueError when the split and the cohort do not hold the same patients.
    """
    cohort = read_cohort_table(root, settings.subsets)
    if splits is None:
        split_table = split_patients(cohort, fractions=settings.fractions, seed=settings.seed)
    elif isinstance(splits, pd.DataFrame):
        split_table = splits[["patient_id", "group", "split"]].astype(str).reset_index(drop=True)
    else:
        split_table = read_splits(splits)
    in_cohort, in_split = set(cohort["patient_id"]), set(split_table["patient_id"])
    if in_cohort != in_split:
        raise ValueError(
            f"prepare_dataset: split and cohort {root} disagree: patients without a split "
            f"{sorted(in_cohort - in_split)[:10]}, split patients not in the cohort {sorted(in_split - in_cohort)[:10]}; "
            "use the split made for this cohort or omit `splits` to compute one"
        )
    return split_table


def _read_slices(
    root: str | os.PathLike, split_table: pd.DataFrame, settings: PrepareSettings, progress: bool
) -> dict[str, list[Slice]]:
    """The protocol's slices of every patient, by split name (patients in folder order)."""
    from tqdm import tqdm

    split_of = dict(zip(split_table["patient_id"], split_table["split"], strict=True))
    by_split: dict[str, list[Slice]] = {name: [] for name in SPLITS}
    folders = list_patient_dirs(root, settings.subsets)
    for folder in tqdm(folders, desc="read + slice", unit="patient", disable=not progress):
        patient = read_patient(folder)
        by_split[split_of[patient.id]].extend(
            extract_slices(patient, n=settings.n_slices, crop=settings.crop)
        )
    log.info("extracted %s slices", {k: len(v) for k, v in by_split.items()})
    return by_split


def _write_split_files(
    by_split: dict[str, list[Slice]],
    out_dir: Path,
    settings: PrepareSettings,
    progress: bool,
    montage: bool,
) -> tuple[dict[str, Path], pd.DataFrame, tuple | None]:
    """Build and save ``<split>.npz`` one split at a time (only one in memory).

    Returns the paths, the provenance of all splits, and (when ``montage``) up to 24 evenly spaced training
    images, labels and case ids for :func:`~tedsnet.data.montage.write_montage`.
    """
    paths: dict[str, Path] = {}
    tables = []
    montage_sample = None
    for name in SPLITS:
        if not by_split[name]:
            log.warning("split %s has no slices", name)
        prepared = _build_split(by_split[name], name, settings, progress)
        paths[name] = save_split(out_dir / f"{name}.npz", prepared.images, prepared.labels, prepared.table)
        tables.append(prepared.table)
        if name == "train" and montage and len(prepared.table):
            idx = np.linspace(0, len(prepared.table) - 1, num=min(24, len(prepared.table))).astype(int)
            montage_sample = (
                prepared.images[idx],
                prepared.labels[idx],
                list(prepared.table["case_id"].iloc[idx]),
            )
        del prepared
    return paths, pd.concat(tables, ignore_index=True), montage_sample


def prepare_dataset(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: PrepareSettings | None = None,
    *,
    splits: pd.DataFrame | str | os.PathLike | None = None,
    montage_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> PreparedDataset:
    """Cohort in the ACDC layout -> ``out_dir/{train,val,test}.npz``, ``splits.csv``, ``provenance.csv`` and
    ``dataset.json`` (the settings, the source of the split, counts, the normalisation and the wall time).

    Parameters
    ----------
    root : path-like
        Cohort root (``root/training/patientNNN``; real ACDC or a phantom). Nothing is written into it.
    out_dir : path-like
        Output folder (created).
    settings : PrepareSettings, optional
        Slices, split and augmentation; default the protocol's.
    splits : DataFrame or path, optional
        A patient split (patient_id, group, split), e.g. the committed ``workflow/resources/acdc_split.csv``;
        it must hold exactly the cohort's patients. Default: :func:`~tedsnet.data.splits.split_patients` of the
        cohort with ``settings.seed`` and ``settings.fractions``.
    montage_path : path-like, optional
        Also write a montage PNG of sample training images with outlines (never commit ACDC montages).
    progress : bool
        tqdm progress bars on stderr.

    Returns
    -------
    PreparedDataset

    Raises
    ------
    FileNotFoundError, ValueError
        From the reader (naming the bad file), on a split that does not hold the cohort's patients, or when a
        scan has fewer than ``settings.n_slices`` ring slices.

    Examples
    --------
    >>> prepare_dataset("phantom", "data", PrepareSettings(n_augment=4), progress=False)  # doctest: +SKIP
    """
    start = time.perf_counter()
    settings = PrepareSettings() if settings is None else settings
    out_dir = Path(out_dir)
    split_table = _resolve_split(root, splits, settings)
    by_split = _read_slices(root, split_table, settings, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, provenance, montage_sample = _write_split_files(
        by_split, out_dir, settings, progress, montage=montage_path is not None
    )
    write_splits(split_table, out_dir / "splits.csv")
    with atomic_path(out_dir / "provenance.csv") as tmp:
        provenance.to_csv(tmp, index=False)
    counts = {name: int((provenance["split"] == name).sum()) for name in SPLITS}
    seconds = time.perf_counter() - start
    source = "computed" if splits is None else ("given" if isinstance(splits, pd.DataFrame) else str(splits))
    meta = {
        "root": str(root),
        **settings.record(),
        "split_source": source,
        "counts": counts,
        "patients": {name: int((split_table["split"] == name).sum()) for name in SPLITS},
        "normalisation": NORMALISATION,
        "seconds": round(seconds, 2),
    }
    (out_dir / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    if montage_sample is not None:
        from tedsnet.data.montage import write_montage

        write_montage(montage_path, *montage_sample, ncols=6)
    log.info("prepared %s in %.1f s -> %s", counts, seconds, out_dir)
    return PreparedDataset(
        paths=paths, splits=split_table, provenance=provenance, counts=counts, seconds=seconds
    )
