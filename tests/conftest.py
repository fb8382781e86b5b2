"""Shared test fixtures.

Real ACDC is reached only through the environment variable ``TEDSNET_ACDC_ROOT`` (``.ci/run`` sets it when the
data is present); tests marked ``acdc`` skip cleanly without it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

ACDC_ENV = "TEDSNET_ACDC_ROOT"
REPO = Path(__file__).resolve().parents[1]
METHOD_GUIDE = REPO / "docs" / "adding-a-method.md"


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


@dataclass(frozen=True)
class MethodGuide:
    """The worked example of docs/adding-a-method.md, as the tests run it."""

    python_blocks: tuple[str, ...]  # every ```python block, in order
    module_name: str  # the module the guide saves ("my_method")
    module_source: str  # its code (the block whose docstring starts with "<module_name>.py")
    check_source: str  # the snippet that loads the module, builds the model and calls it
    config: dict  # the guide's two config lines (plugins, experiments)
    experiment: str  # the name the module registers
    label: str  # its display name


@pytest.fixture(scope="session")
def method_guide() -> MethodGuide:
    """The guide's module, model check and config lines, read from docs/adding-a-method.md."""
    text = METHOD_GUIDE.read_text()
    python = tuple(re.findall(r"```python\n(.*?)```", text, re.S))
    modules = [b for b in python if re.match(r'"""\w+\.py: ', b)]
    assert len(modules) == 1, "the guide should hold exactly one module block"
    module_name = re.match(r'"""(\w+)\.py: ', modules[0]).group(1)
    checks = [b for b in python if f'load_plugins(["{module_name}"]' in b]
    assert len(checks) == 1, "the guide should hold exactly one block that loads the module"
    configs = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    config = next(c for c in configs if isinstance(c, dict) and "plugins" in c)
    experiment = re.search(r'name="([^"]+)"', modules[0]).group(1)
    label = re.search(r'label="([^"]+)"', modules[0]).group(1)
    return MethodGuide(python, module_name, modules[0], checks[0], config, experiment, label)
