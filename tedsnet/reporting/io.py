"""Atomic writes: every output is written to a temporary file in its folder and renamed into place.

A failing writer (an exception, a killed process) therefore never leaves a partial file under the final name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from tedsnet.atomic import atomic_path

__all__ = ["atomic_path", "savefig_atomic", "write_csv_atomic", "write_text_atomic"]


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
