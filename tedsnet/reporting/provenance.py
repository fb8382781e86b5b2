"""What a report rests on: package versions, fingerprints of the checkpoints, wall time per workflow job."""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

__all__ = ["PACKAGES", "file_fingerprints", "package_versions", "read_benchmarks"]

#: Distributions whose versions the report lists.
PACKAGES: tuple[str, ...] = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "segmentation-models-pytorch",
    "voxelmorph",
    "gudhi",
    "medpy",
    "nibabel",
    "matplotlib",
    "seaborn",
    "snakemake",
)


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution, plus Python's.

    Parameters
    ----------
    packages : sequence of str
        Distribution names as pip knows them.

    Returns
    -------
    dict
        ``{"python": ..., <package>: <version> or "not installed"}`` in the order given.
    """
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def file_fingerprints(files: Sequence[tuple[str, int, str | os.PathLike]]) -> pd.DataFrame:
    """Size and SHA-256 (first 16 hex digits) of files, e.g. the checkpoints a report rests on.

    Parameters
    ----------
    files : sequence of (experiment, seed, path)

    Returns
    -------
    DataFrame
        experiment, seed, file, size_mb (10^6 bytes), sha256; one row per file, in the order given.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    """
    rows = []
    for experiment, seed, path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        rows.append(
            {
                "experiment": str(experiment),
                "seed": int(seed),
                "file": str(path),
                "size_mb": os.path.getsize(path) / 1e6,
                "sha256": digest.hexdigest()[:16],
            }
        )
    return pd.DataFrame(rows, columns=["experiment", "seed", "file", "size_mb", "sha256"])


def read_benchmarks(root: str | os.PathLike) -> pd.DataFrame:
    """Wall time per job from Snakemake benchmark files (``root/<rule>/<job>.tsv``).

    Parameters
    ----------
    root : path
        The run's benchmark folder; a missing folder reads as no benchmark.

    Returns
    -------
    DataFrame
        rule, job, seconds, max_rss_mb (NaN when not measured); empty when there is no benchmark file. With
        ``--benchmark-repeats`` the mean over repeats is taken. Empty or unreadable files are skipped.
    """
    root = Path(root)
    rows = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        try:
            bench = pd.read_csv(path, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if "s" not in bench.columns or bench.empty:
            continue
        rel = path.relative_to(root).with_suffix("")
        rss = pd.to_numeric(bench.get("max_rss", pd.Series([math.nan])), errors="coerce")
        rows.append(
            {
                "rule": rel.parts[0],
                "job": "/".join(rel.parts[1:]) or rel.parts[0],
                "seconds": float(pd.to_numeric(bench["s"], errors="coerce").mean()),
                "max_rss_mb": float(rss.mean()),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "max_rss_mb"])
