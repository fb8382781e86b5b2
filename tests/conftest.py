"""Shared test fixtures.

Real ACDC is reached only through the environment variable ``TEDSNET_ACDC_ROOT`` (``.ci/run`` sets it when the
data is present); tests marked ``acdc`` skip cleanly without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ACDC_ENV = "TEDSNET_ACDC_ROOT"


def pytest_configure(config):
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def acdc_root() -> Path:
    """The real ACDC root (folder holding ``training/``), or skip."""
    value = os.environ.get(ACDC_ENV)
    if not value:
        pytest.skip(f"real ACDC not configured: set {ACDC_ENV} to the ACDC root to run this test")
    root = Path(value)
    if not (root / "training").is_dir():
        pytest.skip(f"{ACDC_ENV}={value} has no training/ folder")
    return root


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory) -> Path:
    """A small phantom cohort in the ACDC layout (5 patients, one per group, seed 0), written once per session."""
    from tedsnet.data.phantom import write_phantom_cohort

    root = tmp_path_factory.mktemp("phantom")
    write_phantom_cohort(root, n_patients=5, seed=0)
    return root
