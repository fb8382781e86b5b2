"""Evaluation sets beyond the protocol's test split, the split audit and the per-scan slice ledger.

:func:`prepare_evaluation_sets` writes, next to the prepared ``train/val/test.npz`` (which it only reads):

- ``test_all.npz``: every z of the ED and ES frames of the split's test patients;
- ``testing.npz``: the protocol's slices (:func:`~tedsnet.data.slices.extract_slices`) of the patients in
  ``root/testing/`` (ACDC's official testing set), when the root has that folder;
- ``testing_all.npz``: every z of those patients, with ``testing.npz``;
- ``ledger.csv``: one row per scan of the all-slices sets, the slices of each class and how many the protocol
  keeps (:func:`tedsnet.data.ledger.scan_ledger`);
- ``evaluation_sets.json``: the parameters, the counts and the scans with fewer ring slices than the protocol keeps.

Every slice is cropped or padded and normalised exactly like the protocol's (the same function makes both), never
augmented. Each table holds the prepared-split columns (:data:`~tedsnet.data.prepared.REQUIRED_COLUMNS`, case_id =
slice_id) plus split (``"test"`` or ``"testing"``), set (the file's name), slice_class
(:data:`~tedsnet.data.slices.SLICE_CLASSES`) and kept (True for the slices the protocol selects).

Before anything is read or written, :func:`audit_splits` refuses a patient found in two of train, val, test and
testing: in the split table, the ``testing/`` folder, the prepared splits already written and the sets to write.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from tedsnet.data.acdc import SUBSETS, list_patient_dirs, read_patient
from tedsnet.data.ledger import scan_ledger
from tedsnet.data.prepared import REQUIRED_COLUMNS, PreparedSplit, load_split_table, save_split
from tedsnet.data.slices import CROP, ClassifiedSlice, extract_all_slices
from tedsnet.data.splits import SPLITS, read_splits
from tedsnet.io import write_csv_atomic, write_text_atomic

__all__ = [
    "ALL_SLICES_SETS",
    "EVALUATION_SETS",
    "SET_SPLITS",
    "TESTING",
    "TESTING_ALL",
    "TEST_ALL",
    "EvaluationSets",
    "audit_splits",
    "evaluation_set_names",
    "prepare_evaluation_sets",
]

log = logging.getLogger(__name__)

#: Subfolder of a cohort root holding ACDC's official testing patients, and the set of their protocol slices.
TESTING: str = SUBSETS[1]
#: The sets of every z-slice of the test split's scans and of the testing patients' scans.
TEST_ALL: str = f"{SPLITS[2]}_all"
TESTING_ALL: str = f"{TESTING}_all"
#: Evaluation sets, in order.
EVALUATION_SETS: tuple[str, ...] = (TEST_ALL, TESTING, TESTING_ALL)
#: The sets holding every z-slice of their scans.
ALL_SLICES_SETS: tuple[str, ...] = (TEST_ALL, TESTING_ALL)
#: The patient split (train, val, test or testing) behind each prepared file's name.
SET_SPLITS: Mapping[str, str] = {
    **{name: name for name in SPLITS},
    TEST_ALL: SPLITS[2],
    TESTING: TESTING,
    TESTING_ALL: TESTING,
}


class EvaluationSets(NamedTuple):
    """Result of :func:`prepare_evaluation_sets`.

    paths : dict
        Set name -> ``.npz`` path, plus ``"ledger"`` and ``"json"``.
    ledger : pandas.DataFrame
        One row per scan of the all-slices sets (as written to ``ledger.csv``).
    counts : dict
        Set name -> number of slices.
    short_scans : list of str
        ``"<patient_id> <phase>"`` of the scans with fewer ring slices than the protocol keeps (none kept).
    """

    paths: dict[str, Path]
    ledger: pd.DataFrame
    counts: dict[str, int]
    short_scans: list[str]


def evaluation_set_names(root: str | os.PathLike | None) -> list[str]:
    """The sets :func:`prepare_evaluation_sets` writes for a cohort root: ``test_all``, and ``testing`` and
    ``testing_all`` when ``root/testing/`` exists (None, e.g. a cohort not generated yet: ``test_all`` only)."""
    has_testing = root is not None and (Path(root) / TESTING).is_dir()
    return [name for name in EVALUATION_SETS if has_testing or SET_SPLITS[name] != TESTING]


def _memberships(
    split_table: pd.DataFrame, testing_ids: Iterable[str], set_patients: Mapping[str, Iterable[str]]
) -> dict[str, dict[str, list[str]]]:
    """Patient -> split -> the sources that put it there."""
    where: dict[str, dict[str, list[str]]] = {}

    def add(pid: str, split: str, source: str) -> None:
        where.setdefault(str(pid), {}).setdefault(split, [])
        if source not in where[str(pid)][split]:
            where[str(pid)][split].append(source)

    for pid, split in zip(split_table["patient_id"], split_table["split"], strict=True):
        add(pid, str(split), "split table")
    for pid in testing_ids:
        add(pid, TESTING, f"{TESTING}/ folder")
    for name, patients in set_patients.items():
        if name not in SET_SPLITS:
            raise ValueError(
                f"audit_splits: unknown set {name!r}; expected one of {list(SET_SPLITS)} (the prepared files)"
            )
        for pid in patients:
            add(pid, SET_SPLITS[name], f"{name}.npz")
    return where


def _where(pid: str, splits: Mapping[str, Sequence[str]]) -> str:
    """``"patient101 (test: split table; testing: testing/ folder and testing.npz)"``."""
    places = "; ".join(f"{split}: {' and '.join(sources)}" for split, sources in splits.items())
    return f"{pid} ({places})"


def audit_splits(
    split_table: pd.DataFrame,
    testing_ids: Iterable[str] = (),
    set_patients: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Refuse a patient that is in two of train, val, test and testing.

    Parameters
    ----------
    split_table : pandas.DataFrame
        Columns patient_id and split (train, val or test), e.g. ``splits.csv``.
    testing_ids : iterable of str
        The patients of the ``testing/`` folder.
    set_patients : mapping, optional
        Prepared file name (a key of :data:`SET_SPLITS`: train, val, test, test_all, testing, testing_all) -> the
        patient ids it holds (or will hold); each counts for the split :data:`SET_SPLITS` gives it.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        Naming each patient found in more than one split and where each was found, or on an unknown set name.

    Examples
    --------
    >>> split = pd.DataFrame({"patient_id": ["patient001", "patient101"], "split": ["train", "test"]})
    >>> audit_splits(split, testing_ids=["patient101"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: split audit: 1 patient(s) in more than one of train / val / test / testing: patient101 ...
    """
    missing = [c for c in ("patient_id", "split") if c not in split_table.columns]
    if missing:
        raise ValueError(
            f"audit_splits: split table lacks column(s) {missing}; expected patient_id and split"
        )
    where = _memberships(split_table, testing_ids, set_patients or {})
    clashes = {pid: splits for pid, splits in sorted(where.items()) if len(splits) > 1}
    if clashes:
        described = "; ".join(_where(pid, splits) for pid, splits in list(clashes.items())[:10])
        raise ValueError(
            f"split audit: {len(clashes)} patient(s) in more than one of train / val / test / {TESTING}: "
            f"{described}. A patient evaluated in a set must not be trained or validated on, nor be in two test "
            f"sets: remove it from the {TESTING}/ folder or from the split, and prepare the data again."
        )


def _test_folders(root: Path, split_table: pd.DataFrame) -> list[Path]:
    """The training-folder patient folders of the split's test patients; FileNotFoundError naming a missing one."""
    test_ids = sorted(split_table.loc[split_table["split"] == SET_SPLITS[TEST_ALL], "patient_id"].astype(str))
    folders = [root / SUBSETS[0] / pid for pid in test_ids]
    absent = [f.name for f in folders if not f.is_dir()]
    if absent:
        raise FileNotFoundError(
            f"{root / SUBSETS[0]}: test patient folder(s) {absent[:10]} of the split not found; use the split "
            "made for this cohort (the run's splits.csv)"
        )
    return folders


def _read_all_slices(
    folders: Sequence[Path], n_slices: int, crop: tuple[int, int], progress: bool, desc: str
) -> list[ClassifiedSlice]:
    """Every z of every patient of ``folders`` (:func:`~tedsnet.data.slices.extract_all_slices`)."""
    from tqdm import tqdm

    out: list[ClassifiedSlice] = []
    for folder in tqdm(folders, desc=desc, unit="patient", disable=not progress):
        out.extend(extract_all_slices(read_patient(folder), n=n_slices, crop=crop))
    return out


_SET_COLUMNS = (*REQUIRED_COLUMNS, "slice_id", "split", "set", "slice_class", "kept")


def _set_split(rows: Sequence[ClassifiedSlice], name: str, crop: tuple[int, int]) -> PreparedSplit:
    """Images, labels and table of one evaluation set (columns: see the module docstring)."""
    images = np.zeros((len(rows), *crop), dtype=np.float32)
    labels = np.zeros((len(rows), *crop), dtype=np.uint8)
    records = []
    for i, row in enumerate(rows):
        s = row.slice
        images[i], labels[i] = s.image, s.myocardium
        records.append(
            {
                "case_id": s.id,
                "slice_id": s.id,
                "patient_id": s.patient_id,
                "group": s.group,
                "phase": s.phase,
                "z": int(s.z),
                "aug": 0,
                "spacing_row_mm": float(s.spacing[0]),
                "spacing_col_mm": float(s.spacing[1]),
                "clipped": bool(s.clipped),
                "split": SET_SPLITS[name],
                "set": name,
                "slice_class": row.slice_class,
                "kept": bool(row.kept),
            }
        )
    table = pd.DataFrame(records, columns=_SET_COLUMNS)
    table = table.astype({"z": np.int64, "aug": np.int64, "clipped": bool, "kept": bool})
    return PreparedSplit(images=images, labels=labels, table=table)


def _short_scans(rows: Sequence[ClassifiedSlice]) -> list[str]:
    """``"<patient_id> <phase>"`` of the scans of ``rows`` none of whose slices is kept."""
    scans: dict[str, bool] = {}
    for row in rows:
        key = f"{row.slice.patient_id} {row.slice.phase}"
        scans[key] = scans.get(key, False) or row.kept
    return [key for key, kept in scans.items() if not kept]


def _protocol_patients(
    out_dir: Path, protocol_files: Mapping[str, str | os.PathLike] | None
) -> dict[str, list[str]]:
    """Patient ids of the prepared splits to audit: the given files, else ``out_dir/{train,val,test}.npz`` found."""
    if protocol_files is None:
        protocol_files = {n: out_dir / f"{n}.npz" for n in SPLITS if (out_dir / f"{n}.npz").is_file()}
    return {
        name: sorted(set(load_split_table(path)["patient_id"].astype(str)))
        for name, path in protocol_files.items()
    }


def _write_sets(
    sets: Mapping[str, PreparedSplit], out_dir: Path, meta: dict
) -> tuple[dict[str, Path], pd.DataFrame]:
    """Save every set, ``ledger.csv`` and ``evaluation_sets.json``; returns the paths and the ledger."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: save_split(out_dir / f"{name}.npz", *split) for name, split in sets.items()}
    tables = [sets[name].table for name in ALL_SLICES_SETS if name in sets]
    ledger = scan_ledger(pd.concat(tables, ignore_index=True))
    paths["ledger"] = write_csv_atomic(ledger.scans, out_dir / "ledger.csv")
    meta["totals"] = ledger.totals.to_dict(orient="records")
    paths["json"] = write_text_atomic(
        out_dir / "evaluation_sets.json", json.dumps(meta, indent=2, default=int) + "\n"
    )
    return paths, ledger.scans


def prepare_evaluation_sets(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    split_table: pd.DataFrame | str | os.PathLike,
    crop: Sequence[int] = CROP,
    n_slices: int = 5,
    *,
    protocol_files: Mapping[str, str | os.PathLike] | None = None,
    progress: bool = False,
) -> EvaluationSets:
    """Write the evaluation sets of a cohort, its slice ledger and ``evaluation_sets.json`` into ``out_dir``.

    Parameters
    ----------
    root : path-like
        Cohort root in the ACDC layout (``root/training/patientNNN``, optionally ``root/testing/patientNNN``).
        Nothing is written into it.
    out_dir : path-like
        Output folder (created), normally the prepared dataset's.
    split_table : DataFrame or path
        The patient split (patient_id, group, split), e.g. the run's ``splits.csv``; its test patients make
        ``test_all``.
    crop : (H, W)
        In-plane size, as the prepared dataset's.
    n_slices : int
        Slices per scan the protocol keeps, as the prepared dataset's.
    protocol_files : mapping, optional
        Prepared split name -> ``.npz`` whose patients the audit checks; default the ``train/val/test.npz`` found
        in ``out_dir``.
    progress : bool
        tqdm progress bars on stderr.

    Returns
    -------
    EvaluationSets
        Paths, the per-scan ledger, slices per set and the scans with too few ring slices (none kept; they are
        absent from ``testing.npz`` and logged).

    Raises
    ------
    ValueError
        From :func:`audit_splits` (a patient in two splits), the reader, or on invalid ``crop`` / ``n_slices``.
    FileNotFoundError
        If a test patient of the split has no folder under ``root/training``.

    Examples
    --------
    >>> prepare_evaluation_sets("acdc", "results/run/data", "results/run/data/splits.csv")  # doctest: +SKIP
    """
    start = time.perf_counter()
    root, out_dir = Path(root), Path(out_dir)
    if not isinstance(split_table, pd.DataFrame):
        split_table = read_splits(split_table)
    crop = tuple(int(c) for c in crop)
    names = evaluation_set_names(root)
    test_dirs = _test_folders(root, split_table)
    testing_dirs = list_patient_dirs(root, (TESTING,)) if TESTING in names else []
    testing_ids = [f.name for f in testing_dirs]
    planned = {TEST_ALL: [f.name for f in test_dirs]}
    planned.update({name: testing_ids for name in names if SET_SPLITS[name] == TESTING})
    audit_splits(split_table, testing_ids, {**_protocol_patients(out_dir, protocol_files), **planned})

    rows = {TEST_ALL: _read_all_slices(test_dirs, n_slices, crop, progress, TEST_ALL)}
    if testing_dirs:
        rows[TESTING_ALL] = _read_all_slices(testing_dirs, n_slices, crop, progress, TESTING_ALL)
        rows[TESTING] = [r for r in rows[TESTING_ALL] if r.kept]
    sets = {name: _set_split(rows[name], name, crop) for name in names}
    short = [scan for name in ALL_SLICES_SETS if name in rows for scan in _short_scans(rows[name])]
    if short:
        log.warning("scans with fewer than %d ring slices (none kept): %s", n_slices, short)
    counts = {name: len(split.table) for name, split in sets.items()}
    meta = {
        "root": str(root),
        "crop": list(crop),
        "n_slices": int(n_slices),
        "sets": names,
        "counts": counts,
        "patients": {name: int(split.table["patient_id"].nunique()) for name, split in sets.items()},
        "short_scans": short,
        "seconds": round(time.perf_counter() - start, 2),
    }
    paths, ledger = _write_sets(sets, out_dir, meta)
    log.info("evaluation sets %s -> %s", counts, out_dir)
    return EvaluationSets(paths=paths, ledger=ledger, counts=counts, short_scans=short)
