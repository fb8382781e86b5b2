"""The pinned environment files agree with each other and with what is installed."""

from importlib import metadata
from pathlib import Path

import yaml

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
