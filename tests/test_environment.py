"""The pinned environment files agree with each other, with pyproject's ranges and with what is installed."""

import importlib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "envs" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_every_requirement_is_an_exact_pin_and_conda_env_matches():
    pins = _requirements()
    assert {"torch", "torchvision", "segmentation-models-pytorch", "voxelmorph", "medpy", "gudhi"} <= set(
        pins
    )
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    env = yaml.safe_load((ROOT / "envs" / "tedsnet.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = dict(item.lower().split("==") for item in pip_section)
    assert conda_pins == pins


def test_installed_versions_match_the_pins():
    mismatched = {}
    for name, version in _requirements().items():
        installed = metadata.version(name)
        if installed.split("+")[0] != version:
            mismatched[name] = (version, installed)
    assert not mismatched, f"installed packages differ from envs/requirements.txt: {mismatched}"


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_declares_ranges_that_the_pins_satisfy():
    project = _pyproject()["project"]
    pins = _requirements()
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra]
    for requirement in requirements:
        assert not any(spec.operator in ("==", "===") for spec in requirement.specifier), (
            f"pyproject pins {requirement} exactly; declare a range there and the pin in envs/requirements.txt"
        )
        name = requirement.name.lower()
        assert name in pins, (
            f"{name} is a dependency in pyproject.toml but has no pin in envs/requirements.txt"
        )
        assert requirement.specifier.contains(pins[name]), (
            f"pin {name}=={pins[name]} is outside {requirement}"
        )


def test_console_scripts_name_existing_entry_points():
    scripts = _pyproject()["project"]["scripts"]
    assert set(scripts) == {"tedsnet", "tedsnet-bench", "tedsnet-speed-equivalence"}
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target
