"""The Snakemake workflow: lint, formatting, dry runs of every config and profile, a method of your own as a row of
the DAG, and (slow) the smoke run with that method as a twelfth row of Table 1.

Every test runs Snakemake in a temporary copy of the workflow (Snakefile, workflow/, the packages), so nothing is
written into the checkout and a run in progress there is not disturbed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("default", "smoke", "paper", "acdc_cpu")
SLURM_PIN = "snakemake-executor-plugin-slurm==2.8.0"
TABLE1_EXPERIMENTS = [
    "prior",
    "unet",
    "unet_smp",
    "voxelmorph",
    "A1",
    "A2",
    "A3",
    "A4",
    "A5",
    "A6",
    "tedsnet",
    "unet_post",
    "unet_cldice",
    "unet_topo",
]
TABLE1_LABELS = [
    "Prior (zero fields)",
    "U-Net (paper)",
    "U-Net (smp)",
    "VoxelMorph",
    "A1 no Gaussian / L_Grad / super upsample",
    "A2 no Gaussian",
    "A3 no L_Grad",
    "A4 no super upsample",
    "A5 bulk branch only",
    "A6 fine-tune branch only",
    "TEDS-Net",
    "U-Net + post-processing",
    "U-Net + clDice",
    "U-Net + PH loss (Betti prior)",
]


def copy_workflow(dest: Path) -> Path:
    """A copy of what the workflow needs, without results or caches."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    for name in ("workflow", "tedsnet", "baselines", "envs"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


@pytest.fixture(scope="module")
def acdc_stub(tmp_path_factory) -> Path:
    """An (empty) ACDC root: enough for a dry run, which reads no data."""
    root = tmp_path_factory.mktemp("acdc")
    (root / "training").mkdir()
    return root


def snakemake(
    cwd: Path, *args: str, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "TEDSNET_ACDC_ROOT"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    counts = {}
    match = re.search(r"job\s+count\n[-\s]+\n(.*?)\ntotal\s+(\d+)", output, re.S)
    assert match, f"no job stats in:\n{output[-3000:]}"
    for line in match.group(1).splitlines():
        name, count = line.split()
        counts[name] = int(count)
    return counts


def test_lint_is_clean(workdir):
    result = snakemake(workdir, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("snakefmt") is None, reason="snakefmt not installed")
def test_rules_are_snakefmt_formatted():
    result = subprocess.run(
        ["snakefmt", "--check", "Snakefile", "workflow/rules"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", CONFIGS)
def test_dry_run_of_every_config(workdir, acdc_stub, name):
    env = {"TEDSNET_ACDC_ROOT": str(acdc_stub)} if name in ("paper", "acdc_cpu") else None
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", f"workflow/config/{name}.yaml", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    import yaml

    config = yaml.safe_load((workdir / "workflow" / "config" / f"{name}.yaml").read_text())
    seeds = len(config["training"]["seeds"])
    base = {"steps": 8, "radius": 30}
    extra = sum(v != base["steps"] for v in config["figure4"]["int_steps"]) + sum(
        v != base["radius"] for v in config["figure4"]["prior_radius"]
    )
    models = len(config["experiments"]) + extra
    overrides = config["training"].get("overrides", {})
    # a row's own seeds (training.overrides.<row>.seeds) replace the run's
    runs = extra * seeds + sum(
        len(overrides.get(e, {}).get("seeds", [0] * seeds)) for e in config["experiments"]
    )
    assert counts["train"] == runs and counts["predict"] == runs
    assert counts["evaluate"] == models
    assert counts["training_log"] == runs
    for rule in ("prepare_dataset", "table1", "stats", "figure3", "learning_curves", "report", "all"):
        assert counts[rule] == 1
    has_sweeps = bool(config["figure4"]["int_steps"] or config["figure4"]["prior_radius"])
    assert counts.get("figure4", 0) == int(has_sweeps)
    assert counts.get("phantom_cohort", 0) == (0 if config["data"]["source"] == "acdc" else 1)
    assert f"results/{config['run']}/report.md" in result.stdout


def test_a_part_runs_only_its_models(workdir, acdc_stub):
    env = {"TEDSNET_ACDC_ROOT": str(acdc_stub)}
    args = ("-n", "--cores", "2", "--configfile", "workflow/config/acdc_cpu.yaml", "--config")
    result = snakemake(workdir, *args, "part=ablations", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["train"] == counts["predict"] == counts["evaluate"] == counts["training_log"] == 6
    assert not {"table1", "stats", "report", "figure3"} & set(counts)
    assert "results/acdc_cpu/metrics/A6.csv" in result.stdout
    assert "models/tedsnet/" not in result.stdout

    unknown = snakemake(workdir, *args, "part=everything", env=env)
    assert unknown.returncode != 0
    assert (
        "part 'everything' is not in this config's parts (main, ablations, figure4, seeds, budget12, topology)"
        in unknown.stdout + unknown.stderr
    )

    # part topology starts from part main's and part seeds' U-Nets: without them it says which part to run first
    early = snakemake(workdir, *args, "part=topology", env=env)
    assert early.returncode != 0
    assert (
        "part 'topology': unet_post starts from unet's trained checkpoint of the same seed, and "
        "results/acdc_cpu/models/unet/seed0/best.pt, results/acdc_cpu/models/unet/seed1/best.pt, "
        "results/acdc_cpu/models/unet/seed2/best.pt are not there yet; run part=main or part=seeds first"
    ) in early.stdout + early.stderr
    # with them there, it trains only its own rows
    for seed in (0, 1, 2):
        done = workdir / f"results/acdc_cpu/models/unet/seed{seed}/best.pt"
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_bytes(b"")
    topology = snakemake(workdir, *args, "part=topology", env=env)
    assert topology.returncode == 0, topology.stdout[-3000:] + topology.stderr[-3000:]
    assert job_counts(topology.stdout)["train"] == 5  # unet_post x 3 seeds, unet_cldice, unet_topo
    assert "models/unet/seed0/history.csv" not in topology.stdout
    assert (
        "input: results/acdc_cpu/data/train.npz, results/acdc_cpu/data/val.npz, results/acdc_cpu/models/unet/seed0/best.pt"
        in topology.stdout
    )

    figure4 = snakemake(workdir, *args, "part=figure4", env=env)  # TEDS-Net's Figure 4 points, not TEDS-Net
    assert figure4.returncode == 0, figure4.stdout[-3000:] + figure4.stderr[-3000:]
    assert job_counts(figure4.stdout)["train"] == 4
    for exp in ("tedsnet_steps4", "tedsnet_steps16", "tedsnet_radius10", "tedsnet_radius50"):
        assert f"results/acdc_cpu/metrics/{exp}.csv" in figure4.stdout
    assert "models/tedsnet/" not in figure4.stdout and "figure4.png" not in figure4.stdout


def test_part_report_builds_the_tables_from_the_parts_already_run(tmp_path):
    """No ACDC root needed: the report reads only per-case CSVs, training logs and the committed split."""
    work = copy_workflow(tmp_path)
    args = ("-n", "--cores", "2", "--configfile", "workflow/config/acdc_cpu.yaml", "--config", "part=report")
    empty = snakemake(work, *args)
    assert empty.returncode != 0
    assert (
        "part=report found no per-case metrics under results/acdc_cpu/metrics/" in empty.stdout + empty.stderr
    )

    out = work / "results" / "acdc_cpu"
    (out / "metrics").mkdir(parents=True)

    def add_point(exp):
        (out / "metrics" / f"{exp}.csv").write_text("case_id\n")
        (out / "training_logs" / exp).mkdir(parents=True)
        (out / "training_logs" / exp / "seed0.csv").write_text("epoch\n")

    for exp in ("prior", "unet", "tedsnet"):  # only some rows: the others are named as not run
        add_point(exp)
    result = snakemake(work, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts == {"table1": 1, "stats": 1, "learning_curves": 1, "report": 1, "all": 1}
    assert "workflow/resources/acdc_split.csv" in result.stdout  # no prepared data needed
    assert "figure4" not in counts  # each sweep has only its base point (TEDS-Net)

    add_point("tedsnet_radius10")  # two radius points: the radius sweep is drawn, the layer sweep is not
    partial = snakemake(work, *args)
    assert partial.returncode == 0, partial.stdout[-3000:] + partial.stderr[-3000:]
    assert job_counts(partial.stdout)["figure4"] == 1
    figure4_job = re.search(r"rule figure4:\n\s+input: (.*)\n", partial.stdout)
    assert figure4_job, partial.stdout[-3000:]
    assert sorted(figure4_job.group(1).split(", ")) == [
        "results/acdc_cpu/metrics/tedsnet.csv",
        "results/acdc_cpu/metrics/tedsnet_radius10.csv",
    ]

    # a committed ledger is read as it is: without prepared data nothing is prepared (not even a phantom cohort)
    (out / "ledger.csv").write_text("set\n")
    (out / "ledger_behaviour.csv").write_text("set\n")
    newer = out / "test_all" / "metrics" / "tedsnet.csv"  # a clone gives files any order of mtimes
    newer.parent.mkdir(parents=True)
    newer.write_text("case_id\n")
    os.utime(newer, (time.time() + 60, time.time() + 60))
    ledger = snakemake(work, *args)
    assert ledger.returncode == 0, ledger.stdout[-3000:] + ledger.stderr[-3000:]
    counts = job_counts(ledger.stdout)
    assert not {"phantom_cohort", "prepare_dataset", "prepare_evaluation_sets", "ledger"} & set(counts), (
        counts
    )
    assert re.search(r"rule report:\n\s+input: .*results/acdc_cpu/ledger\.csv", ledger.stdout)


def test_paper_config_needs_an_acdc_root(workdir):
    result = snakemake(workdir, "-n", "--configfile", "workflow/config/paper.yaml")
    assert result.returncode != 0
    assert "no ACDC root is given" in result.stdout + result.stderr


def test_acdc_override_is_one_key_and_changes_the_run_folder(workdir, acdc_stub):
    result = snakemake(workdir, "-n", "--cores", "2", "--config", f"acdc_root={acdc_stub}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "results/default-acdc/report.md" in result.stdout
    assert "phantom_cohort" not in job_counts(result.stdout)
    # the phantom's pixel scale does not apply to ACDC: Figure 4's radii are the configured ACDC-grid pixels
    assert "models/tedsnet_radius20/" in result.stdout and "models/tedsnet_radius40/" in result.stdout


def test_scaled_phantom_names_its_radii_in_its_own_pixels(workdir):
    """default.yaml draws the phantom at 1.5x ACDC's pixel size: radii 20 / 30 / 40 -> 13.3 / TEDS-Net / 26.7."""
    result = snakemake(workdir, "-n", "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "models/tedsnet_radius13.3/" in result.stdout and "models/tedsnet_radius26.7/" in result.stdout
    assert "models/tedsnet_radius20/" not in result.stdout and "models/tedsnet_radius30/" not in result.stdout
    default = (workdir / "workflow" / "config" / "default.yaml").read_text()
    assert "pixel_scale: 1.5" in default
    (workdir / "native.yaml").write_text(default.replace("pixel_scale: 1.5", "pixel_scale: 1.0"))
    native = snakemake(workdir, "-n", "--cores", "2", "--configfile", "native.yaml")
    assert native.returncode == 0, native.stdout[-3000:] + native.stderr[-3000:]
    assert "models/tedsnet_radius20/" in native.stdout and "models/tedsnet_radius13.3/" not in native.stdout


def test_bad_config_is_rejected_by_the_schema(workdir):
    result = snakemake(workdir, "-n", "--config", "run=bad/name")
    assert result.returncode != 0
    assert (
        "ValidationError" in result.stdout + result.stderr
        or "does not match" in result.stdout + result.stderr
    )


UNKNOWN_NAME = "unknown experiment 'nosuch'"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("experiments=[prior, nosuch, tedsnet]", f"experiments: get_experiment: {UNKNOWN_NAME}"),
        ("training={overrides: {nosuch: {seg_loss: dice}}}", f"training.overrides: get_experiment: {UNKNOWN_NAME}"),
        ("training={overrides: {tedsnet_steps8: {seg_loss: dice}}}", "training.overrides: experiment "
         "'tedsnet_steps8' resolves to 'tedsnet' in the registry"),
        ("figure4={base: nosuch}", f"figure4.base: get_experiment: {UNKNOWN_NAME}"),
        ("figure4={base: unet}", "figure4 (the sweep points of figure4.base 'unet'): get_experiment: 'unet_steps4' "
         "does not accept the override 'int_steps'"),
        ("parts={extra: [prior, nosuch]}", f"parts.extra: get_experiment: {UNKNOWN_NAME}"),
        ("evaluation={reference: nosuch}", "evaluation.reference 'nosuch' is not a Table 1 row; expected one of "
         "experiments ['prior', 'unet'"),
        ("evaluation={reference: tedsnet_steps4}", "evaluation.reference 'tedsnet_steps4' is not a Table 1 row"),
    ],
)  # fmt: skip
def test_every_value_naming_an_experiment_is_checked_by_a_dry_run(workdir, override, message):
    """Each key that names an experiment is checked when the workflow is parsed; the message names the key, what it
    expected and the fix, before any job runs."""
    result = snakemake(workdir, "-n", "--cores", "2", "--config", override)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Building DAG of jobs" not in result.stdout + result.stderr


@pytest.mark.parametrize("pixel_scale", ["1.5", "1.0"])
def test_a_crop_not_divisible_by_16_stops_a_dry_run(workdir, pixel_scale):
    """[100, 208] in a config file: an unscaled run would fail inside its first training job, a scaled phantom
    would silently crop to 64 x 128; both stop when the workflow is parsed, naming the multiples around it."""
    default = (workdir / "workflow" / "config" / "default.yaml").read_text()
    config = default.replace("crop: [144, 208]", "crop: [100, 208]").replace(
        "pixel_scale: 1.5", f"pixel_scale: {pixel_scale}"
    )
    (workdir / f"crop100_{pixel_scale}.yaml").write_text(config)
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", f"crop100_{pixel_scale}.yaml")
    assert result.returncode != 0
    expected = (
        "data.crop [100, 208]: each side must be a multiple of 16 (the networks halve the image four times), got "
        "100. Set data.crop to e.g. [96, 208] or [112, 208], in ACDC-grid pixels"
    )
    assert expected in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]
    assert ("this phantom's pixel_scale 1.5" in result.stdout + result.stderr) == (pixel_scale == "1.5")


def test_nested_overrides_reach_the_rules_typed_by_the_schema(workdir):
    """Snakemake reads the values nested in a --config entry as strings; the Snakefile types them by the schema, so
    integers, floats (1e-3 included), booleans, null and lists of integers work, and strings stay strings."""
    (workdir / "probe.smk").write_text(
        'include: "Snakefile"\n\n\n'
        'print("TRAINING", {k: config["training"][k] for k in ("epochs", "lr", "resume", "patience", "device", '
        '"seeds")}, "CROP", config["data"]["crop"], "GPU", config["resources"]["gpu"])\n'
    )
    overrides = (
        "training={epochs: 2, lr: 1e-3, resume: false, patience: null, device: cuda, seeds: [0, 1]}",
        "data={crop: [96, 128]}",
        "resources={gpu: 1}",
    )
    result = snakemake(workdir, "-s", "probe.smk", "-n", "--cores", "2", "all", "--config", *overrides)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = (
        "TRAINING {'epochs': 2, 'lr': 0.001, 'resume': False, 'patience': None, 'device': 'cuda', 'seeds': [0, 1]} "
        "CROP [96, 128] GPU 1"
    )
    assert expected in result.stdout
    assert job_counts(result.stdout)["train"] == 2 * job_counts(result.stdout)["evaluate"]  # two seeds


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training={epochs: two}", "'two' is not of type 'integer'"),
        ("training={epochs: 2.5}", "'2.5' is not of type 'integer'"),
        ("training={lr: fast}", "'fast' is not of type 'number'"),
        ("training={lr: inf}", "'inf' is not of type 'number'"),
        ("training={resume: maybe}", "'maybe' is not of type 'boolean'"),
        ("training={epochs: 0}", "0 is less than the minimum of 1"),
    ],
)
def test_a_nested_override_that_is_not_its_type_gets_the_schema_s_message(workdir, override, message):
    result = snakemake(workdir, "-n", "--cores", "2", "--config", override)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]


def test_readme_s_string_overrides_still_dry_run(workdir):
    """The README's and docs' override forms: strings under `training` are left as they are."""
    for override in ("training={device: cuda}", "training={speed_mode: fast}"):
        result = snakemake(workdir, "-n", "--cores", "2", "--config", override)
        assert result.returncode == 0, override + result.stdout[-3000:] + result.stderr[-3000:]


def test_default_profile_dry_run(workdir):
    result = snakemake(workdir, "-n", "--profile", "workflow/profiles/default")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Using profile workflow/profiles/default" in result.stdout + result.stderr


def test_slurm_profile_dry_run(workdir):
    args = ["-n", "--profile", "workflow/profiles/slurm"]
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        # Without the plugin the executor name is unknown; check everything else of the profile.
        args += ["--executor", "dryrun"]
    result = snakemake(workdir, *args)
    assert result.returncode == 0, f"(needs {SLURM_PIN}?)\n" + result.stdout[-3000:] + result.stderr[-3000:]
    assert job_counts(result.stdout)["train"] >= 11


def test_slurm_profile_asks_for_the_rules_threads():
    """The profile fixes no CPU count (a node with fewer CPUs never schedules a fixed one): the plugin derives
    --cpus-per-task from each rule's threads, which train and predict take from training.num_threads."""
    import yaml

    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert "cpus_per_task" not in (profile.get("default-resources") or {})
    assert not any("cpus_per_task" in (r or {}) for r in (profile.get("set-resources") or {}).values())
    assert profile["slurm-status-command"] == "squeue"  # sacct needs an accounting database
    rules = (REPO / "workflow" / "rules" / "train.smk").read_text()
    assert rules.count('threads: config["training"]["num_threads"]') == 2


def test_schema_lr_bound_is_the_engine_s():
    """A learning rate the engine refuses is refused when the workflow is parsed."""
    import yaml

    from tedsnet.training.engine import MAX_LR

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    training = schema["properties"]["training"]["properties"]
    assert training["lr"]["maximum"] == MAX_LR
    assert training["overrides"]["additionalProperties"]["properties"]["lr"]["maximum"] == MAX_LR


def with_the_guide_s_method(work: Path, guide, config_name: str = "smoke") -> str:
    """Save the method guide's module in `work` and a config: workflow/config/<config_name>.yaml plus the guide's
    two lines (its plugin, its row after the config's rows). Returns the config's path relative to `work`."""
    import yaml

    (work / f"{guide.module_name}.py").write_text(guide.module_source)
    config = yaml.safe_load((work / "workflow" / "config" / f"{config_name}.yaml").read_text())
    config["plugins"] = guide.config["plugins"]
    config["experiments"] += [e for e in guide.config["experiments"] if e not in config["experiments"]]
    (work / f"{config_name}_with_method.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return f"{config_name}_with_method.yaml"


def test_a_method_of_your_own_is_a_row_of_the_dag(tmp_path, method_guide):
    """The guide's module and config lines (docs/adding-a-method.md) put its model in every per-row rule."""
    work = copy_workflow(tmp_path)
    config = with_the_guide_s_method(work, method_guide)
    result = snakemake(work, "-n", "--cores", "2", "--configfile", config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    smoke = snakemake(work, "-n", "--cores", "2", "--configfile", "workflow/config/smoke.yaml")
    counts, smoke_counts = job_counts(result.stdout), job_counts(smoke.stdout)
    for rule in ("train", "predict", "evaluate", "training_log"):
        assert counts[rule] == smoke_counts[rule] + 1, rule
    name = method_guide.experiment
    for path in (f"models/{name}/seed0/best.pt", f"predictions/{name}/seed0.npz", f"metrics/{name}.csv"):
        assert f"results/smoke/{path}" in result.stdout, path

    # The row without its plugin: the Snakefile says what is missing before anything runs.
    import yaml

    no_plugin = yaml.safe_load((work / config).read_text())
    no_plugin["plugins"] = []
    (work / "no_plugin.yaml").write_text(yaml.safe_dump(no_plugin))
    missing = snakemake(work, "-n", "--configfile", "no_plugin.yaml")
    assert missing.returncode != 0
    assert f"unknown experiment '{name}'" in missing.stdout + missing.stderr
    assert "listed under plugins: in the config" in missing.stdout + missing.stderr
    absent = snakemake(work, "-n", "--configfile", config, "--config", "plugins=[absent_method]")
    assert absent.returncode != 0 and "no module 'absent_method'" in absent.stdout + absent.stderr


# --------------------------------------------------------------------------------------------------- slow tier
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, method_guide):
    """One smoke run (workflow/config/smoke.yaml) with the method guide's module as a twelfth row. Returns the
    folder, the config's arguments, and Table 1 and the report as they were right after the run (the smoke test
    goes on to delete and break files)."""
    work = copy_workflow(tmp_path_factory.mktemp("smoke"))
    args = ["--cores", "2", "--configfile", with_the_guide_s_method(work, method_guide)]
    start = time.perf_counter()
    result = snakemake(work, *args, timeout=1800)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    print(f"smoke workflow: {elapsed:.0f} s")
    out = work / "results" / "smoke"
    return {
        "work": work,
        "args": args,
        "out": out,
        "table1": pd.read_csv(out / "table1.csv"),
        "table1_md": (out / "table1.md").read_text(),
        "stats": pd.read_csv(out / "stats.csv"),
        "report": (out / "report.md").read_text(),
    }


@pytest.mark.slow
def test_a_method_of_your_own_reaches_table1(smoke_run, method_guide):
    """docs/adding-a-method.md end to end: the guide's module, trained for the smoke epochs, is a row of Table 1
    under its display name, compared with TEDS-Net in the paired tests and listed in the report."""
    table = smoke_run["table1"].set_index("experiment")
    name = method_guide.experiment
    assert table.index.tolist() == [*TABLE1_EXPERIMENTS, name]  # after the paper's rows
    assert table.loc[name, "label"] == method_guide.label
    assert table.loc[name, "n_test"] > 0 and 0 <= table.loc[name, "dice_mean"] <= 1
    assert (
        table.loc[name, "parameters"] == 2 * 8 * 9 + 8 + 8 * 9 + 1
    )  # two 3x3 convolutions, 2 -> 8 -> 1 channels
    assert method_guide.label in smoke_run["table1_md"] and method_guide.label in smoke_run["report"]
    assert name in set(smoke_run["stats"]["other"])


@pytest.mark.slow
def test_smoke_workflow_end_to_end(smoke_run, method_guide):
    work, args, out = smoke_run["work"], smoke_run["args"], smoke_run["out"]
    rows = [*TABLE1_EXPERIMENTS, method_guide.experiment]

    table = smoke_run["table1"]
    assert table["experiment"].tolist() == rows
    for column in ("dice_mean", "dice_std", "hd_px_mean", "hd_px_std", "hd_mm_mean", "hd_mm_std",
                   "nonpos_jac_bulk_pct_mean", "nonpos_jac_ft_pct_mean", "incorrect_topology", "n_test",
                   "parameters"):  # fmt: skip
        assert column in table.columns
    assert table["parameters"].notna().all() and (table["n_test"] > 0).all()
    assert table.set_index("experiment").loc["tedsnet", "parameters"] == 655984
    md = smoke_run["table1_md"]
    tex = (out / "table1.tex").read_text()
    for label in TABLE1_LABELS:
        assert label in md
        assert label.replace("_", r"\_") in tex
    for header in ("Dice", "HD (px)", "HD (mm)", "J_bulk", "J_FT", "Incorrect topology", "Parameters"):
        assert header in md
    stats = smoke_run["stats"]
    assert set(stats["other"]) == set(rows) - {"tedsnet"}
    assert set(stats["level"]) == {"slice", "patient"}
    for name in ("figure4.png", "figure4.pdf", "figure3.png", "learning_curves.png"):
        assert (out / name).stat().st_size > 1000, name
    report = smoke_run["report"]
    for heading in ("## Verdict", "## Table 1 (this run)", "## The paper's Table 1 beside ours", "## Paired tests",
                    "## Figure 4", "## Figure 3", "## Learning curves", "## What was run"):  # fmt: skip
        assert heading in report
    assert "Training verdict:" in report and "Wall time per job" in report
    for heading in ("Topology-aware baselines", "MedIA 2024", "intervals", "Slice ledger"):
        assert heading.lower() in report.lower(), heading
    intervals = pd.read_csv(out / "intervals.csv")
    assert {"0", "1", "mean"} <= set(intervals.loc[intervals["experiment"] == "prior", "seed"].astype(str))
    assert set(intervals["phase"]) == {"ED", "ES", "both"}
    ledger = pd.read_csv(out / "ledger_behaviour.csv")
    assert {"tedsnet", "unet_post"} <= set(ledger["experiment"])
    for column in ("assd_mm", "betti_error", "euler_error", "betti_matching_error", "topology_error"):
        assert column in pd.read_csv(out / "metrics" / "unet_topo.csv").columns
    assert not list(out.rglob(".*.tmp*")), "temporary files left behind"

    # Re-running does nothing.
    again = snakemake(work, *args, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr

    # Deleting one model's checkpoint re-runs only what depends on it.
    (out / "models" / "A3" / "seed0" / "best.pt").unlink()
    plan = job_counts(snakemake(work, *args, "-n").stdout)
    assert plan == {
        "train": 1,
        "predict": 1,
        "evaluate": 1,
        "training_log": 1,
        "predict_set": 1,
        "evaluate_set": 1,
        "table1_set": 1,
        "stats_set": 1,
        "ledger": 1,
        "table1": 1,
        "stats": 1,
        "learning_curves": 1,
        "report": 1,
        "all": 1,
    }
    rerun = snakemake(work, *args, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert (out / "models" / "A3" / "seed0" / "best.pt").exists()

    # part=report rebuilds the tables and the report from the per-case CSVs and training logs alone.
    shutil.rmtree(out / "models")
    shutil.rmtree(out / "predictions")
    for name in ("table1.csv", "stats.csv", "learning_curves.png", "report.md"):
        (out / name).unlink()
    from_parts = snakemake(work, *args, "--config", "part=report", timeout=600)
    assert from_parts.returncode == 0, from_parts.stdout[-3000:] + from_parts.stderr[-3000:]
    assert "rule train" not in from_parts.stdout and "rule predict" not in from_parts.stdout
    assert pd.read_csv(out / "table1.csv")["experiment"].tolist() == rows
    assert "Built with `part=report`" in (out / "report.md").read_text()

    # A failing rule leaves no partial output: a broken metrics table makes table1 and stats fail.
    (out / "metrics" / "A3.csv").write_text("not,a\nmetrics,table\n")
    targets = ["results/smoke/table1.csv", "results/smoke/stats.csv"]
    failed = snakemake(work, *args, "--keep-going", *targets, timeout=600)
    assert failed.returncode != 0
    for name in ("table1.csv", "table1.md", "table1.tex", "stats.csv"):
        assert not (out / name).exists(), name
    assert not list(out.rglob(".*.tmp*"))


def _as_snakemake_sees(name: str) -> dict:
    """A config as the Snakefile gets it: default.yaml alone, or workflow/config/<name>.yaml alone (a --configfile
    replaces default.yaml), with the schema's defaults filled in."""
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "workflow" / "config" / f"{name}.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def _epochs_and_lr(config: dict, exp: str) -> tuple[int, float]:
    training = {**config["training"], **config["training"]["overrides"].get(exp, {})}
    return training["epochs"], training["lr"]


def test_each_config_states_its_own_protocol():
    """No config inherits the default run's CPU budget (smp epochs, the phantom's pixel scale); every config but
    smoke, which runs the opt-in fast mode end to end in CI, trains in fp32."""
    default = _as_snakemake_sees("default")
    paper, acdc, smoke = (_as_snakemake_sees(n) for n in ("paper", "acdc_cpu", "smoke"))
    assert _epochs_and_lr(default, "unet_smp")[0] == 2
    modes = [c["training"]["speed_mode"] for c in (default, paper, acdc, smoke)]
    assert modes == ["fp32", "fp32", "fp32", "fast"]
    assert _epochs_and_lr(paper, "unet_smp") == _epochs_and_lr(paper, "tedsnet") == (200, 1e-4)
    assert _epochs_and_lr(paper, "voxelmorph") == (200, 1e-4)
    assert _epochs_and_lr(acdc, "unet_smp")[0] == 1 and _epochs_and_lr(acdc, "voxelmorph")[1] == 1e-4
    assert _epochs_and_lr(smoke, "unet_smp")[0] == _epochs_and_lr(smoke, "tedsnet")[0] == 1
    for config in (paper, acdc):
        assert config["data"]["augment"]["n_images"] == 8 and config["data"]["crop"] == [144, 208]
        assert config["data"]["phantom"]["pixel_scale"] == 1.0


def test_a_configfile_replaces_the_default_config(workdir):
    """default.yaml without its pixel_scale line, given with --configfile, gets the schema's 1.0, not default.yaml's
    1.5 (a merge over default.yaml would name the radii 13.3 and 26.7); --config still overrides it."""
    default = (workdir / "workflow" / "config" / "default.yaml").read_text()
    assert "    pixel_scale: 1.5\n" in default
    (workdir / "unscaled.yaml").write_text(default.replace("    pixel_scale: 1.5\n", ""))
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", "unscaled.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "models/tedsnet_radius20/" in result.stdout and "models/tedsnet_radius13.3/" not in result.stdout
    override = snakemake(
        workdir, "-n", "--cores", "2", "--configfile", "unscaled.yaml", "--config", "run=unscaled"
    )
    assert override.returncode == 0, override.stdout[-3000:] + override.stderr[-3000:]
    assert "results/unscaled/models/tedsnet_radius20/" in override.stdout


@pytest.mark.parametrize(("mode", "accepted"), [("auto", True), ("fast", True), ("bf16", False)])
def test_schema_takes_the_speed_modes_train_takes(mode, accepted):
    import yaml
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from tedsnet.speed.auto import REQUESTABLE_SPEED_MODES

    config = yaml.safe_load((REPO / "workflow" / "config" / "default.yaml").read_text())
    config["training"]["speed_mode"] = mode
    assert (mode in REQUESTABLE_SPEED_MODES) == accepted
    if accepted:
        validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    else:
        with pytest.raises(WorkflowError, match="speed_mode|bf16"):
            validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
