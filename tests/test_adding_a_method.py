"""Adding a method of your own (docs/adding-a-method.md): the guide's code, plugin loading and the config key.

The guide's module trained through the smoke workflow to Table 1 is part of the smoke run in
tests/test_workflow.py (slow tier); its dry run is there too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import tedsnet.experiments as experiments
from tedsnet.experiments import PLUGIN_MODULE_PATTERN, get_experiment, load_plugins
from tedsnet.network.outputs import SegmentationOutput

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def isolated_plugins(monkeypatch, tmp_path):
    """A copy of the registry and of sys.path for the test; the modules it imports from tmp_path are forgotten."""
    monkeypatch.setattr(experiments, "EXPERIMENTS", dict(experiments.EXPERIMENTS))
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_the_guide_s_python_passes_the_formatter_and_the_linter(method_guide):
    assert len(method_guide.python_blocks) >= 2
    for block in method_guide.python_blocks:
        for command in (["ruff", "format", "--check"], ["ruff", "check", "--quiet"]):
            result = subprocess.run(
                [*command, "--stdin-filename", "docs/example.py", "-"],
                input=block,
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, (
                f"{' '.join(command)} rejects:\n{block}\n{result.stdout}{result.stderr}"
            )


def test_the_guide_s_module_registers_a_working_method(tmp_path, method_guide, isolated_plugins):
    (tmp_path / f"{method_guide.module_name}.py").write_text(method_guide.module_source)
    assert method_guide.config["plugins"] == [method_guide.module_name]
    assert method_guide.config["experiments"][-1] == method_guide.experiment
    with pytest.raises(ValueError, match="unknown experiment"):
        get_experiment(method_guide.experiment)

    (module,) = load_plugins(method_guide.config["plugins"], search_path=tmp_path)
    assert module.__file__ == str(tmp_path / f"{method_guide.module_name}.py")
    experiment = get_experiment(method_guide.experiment)
    assert experiment.label == method_guide.label and experiment.beta == 0 and experiment.trains
    model = experiment.build(seed=0)
    output = model(torch.rand(3, 1, 32, 48), experiment.prior_tensor((32, 48)))
    assert isinstance(output, SegmentationOutput) and output.displacements == {}
    assert output.segmentation.shape == (3, 1, 32, 48)
    exec(compile(method_guide.check_source, "docs/adding-a-method.md", "exec"), {})  # the guide's own check

    # what the guide promises beyond the row: variants by name, one import per process
    wide = get_experiment(f"{method_guide.experiment}_features16")
    assert wide.base == method_guide.experiment and wide.build().net[0].out_channels == 16
    assert load_plugins(method_guide.config["plugins"], search_path=tmp_path) == [module]


def test_load_plugins_explains_what_is_wrong(tmp_path, isolated_plugins):
    for entry in ("my_method.py", "my method", "3d_net", ""):
        with pytest.raises(ValueError, match="expected a dotted module name"):
            load_plugins([entry])
    with pytest.raises(
        ModuleNotFoundError, match="no module 'absent_plugin' in .* the folder you run snakemake"
    ):
        load_plugins(["absent_plugin"], search_path=tmp_path)
    # a plugin that is found but fails to import reports its own error, unchanged
    (tmp_path / "broken_plugin.py").write_text("import not_a_dependency_of_anything\n")
    with pytest.raises(ModuleNotFoundError) as failure:
        load_plugins(["broken_plugin"], search_path=tmp_path)
    assert failure.value.name == "not_a_dependency_of_anything"


def test_the_schema_takes_the_module_names_load_plugins_takes():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["plugins"]["items"]["pattern"] == f"^{PLUGIN_MODULE_PATTERN}$"
    config = yaml.safe_load((REPO / "workflow" / "config" / "smoke.yaml").read_text())
    validate(config, str(SCHEMA))
    assert config["plugins"] == []  # the default the Snakefile imports: nothing
    validate({**config, "plugins": ["my_method", "mypackage.sub.my_method"]}, str(SCHEMA))
    for bad in (["my-method"], "my_method", ["a..b"]):
        with pytest.raises(WorkflowError):
            validate({**config, "plugins": bad}, str(SCHEMA))
