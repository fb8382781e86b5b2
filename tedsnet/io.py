"""Atomic file writes: a file appears complete under its final name or not at all.

Every output of the suite is written to a temporary file in its folder and renamed into place, so a failing
writer (an exception, a killed process) never leaves a partial file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "COMPOUND_SUFFIXES",
    "atomic_path",
    "savefig_atomic",
    "remove_stale_temporaries",
    "stale_temporaries",
    "write_csv_atomic",
    "write_text_atomic",
]

#: Suffixes that a writer recognises as a whole (``nibabel`` compresses ``.nii.gz`` by its name).
COMPOUND_SUFFIXES = (".nii.gz", ".tar.gz")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, ``.nii.gz`` kept whole); rename it to ``path`` when
    the block succeeds.

    The parent folder is created. The file gets the permissions a plain ``open(path, "w")`` would give (0666 less
    the umask; ``mkstemp`` alone would leave it 0600). On an exception the temporary file is removed and the
    exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temporary_prefix_suffix(path)
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _temporary_prefix_suffix(path: Path) -> tuple[str, str]:
    """The prefix and suffix of :func:`atomic_path`'s temporary names for ``path`` (mkstemp puts a random part
    between them)."""
    suffix = "".join(path.suffixes[-2:]) if path.name.lower().endswith(COMPOUND_SUFFIXES) else path.suffix
    return f".{path.name[: len(path.name) - len(suffix)]}.", f".tmp{suffix}"


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files :func:`atomic_path` left beside ``path`` when its writer was killed.

    Only names of :func:`atomic_path`'s own pattern match: ``.<stem>.<8 random characters>.tmp<suffix>`` in the
    folder of ``path`` (``.last.k2j4_x9a.tmp.pt`` for ``last.pt``). Call it when no writer of ``path`` is running,
    e.g. when a job that owns the folder starts.

    Parameters
    ----------
    path : path
        The final file (it need not exist).

    Returns
    -------
    list of Path
        The matching files, sorted; empty when the folder does not exist.
    """
    path = Path(path)
    prefix, suffix = _temporary_prefix_suffix(path)
    pattern = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}" + re.escape(suffix))
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def remove_stale_temporaries(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete the :func:`stale_temporaries` of every path in ``paths``; returns what was deleted.

    Call it only when no writer of those paths is running (a job that owns the folder, at its start).
    """
    stale = [tmp for path in paths for tmp in stale_temporaries(path)]
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write a DataFrame as CSV (no index unless ``index=True``) atomically; returns the path."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def savefig_atomic(figure: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the suffix of ``path``); returns the path."""
    kwargs.setdefault("bbox_inches", "tight")
    fmt = Path(path).suffix.lstrip(".") or None
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, **kwargs)
    return Path(path)
