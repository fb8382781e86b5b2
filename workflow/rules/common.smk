# Reading and checking the config (types by the schema, validation, experiment names, crop), then the helpers
# shared by the rules: run name and folders, the data source, experiments, seeds and Figure 4 sweeps.
# No rules here (snakemake --lint prefers functions and rules in separate files).

import math
import os
import re

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from tedsnet.experiments import (
    figure4_sweeps,
    get_experiment,
    load_plugins,
    run_seeds,
    run_training_options,
)

ACDC_ENV = "TEDSNET_ACDC_ROOT"
CONDA_ENV = "../../envs/tedsnet.yaml"
SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
# The networks halve the image four times (2x2 poolings), so every side of the crop is a multiple of this.
CROP_MULTIPLE = 16
PLUGIN_HINT = (
    "A method of your own is known once the module that registers it is listed under plugins: in the config "
    "(docs/adding-a-method.md)."
)
_NULLS = ("", "~", "null", "Null", "NULL")
_BOOLEANS = dict(true=True, yes=True, on=True, false=False, no=False, off=False)


def _typed_scalar(text, types):
    """`text` as the first of the schema's `types` it reads as (YAML's spellings of null and booleans, Python's of
    numbers, finite only); unchanged when a string is allowed there or nothing fits."""
    types = [types] if isinstance(types, str) else list(types)
    word = text.strip()
    if "null" in types and word in _NULLS:
        return None
    if "string" in types:
        return text
    if "boolean" in types and word.lower() in _BOOLEANS:
        return _BOOLEANS[word.lower()]
    if {"integer", "number"} & set(types) and re.fullmatch(r"[+-]?\d+", word):
        return int(word)
    if "number" in types:
        try:
            number = float(word)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


def typed_by_schema(value, schema):
    """`value` with every string that sits where `schema` expects a number, an integer, a boolean or null converted
    to it, through properties, additionalProperties and items.

    `--config 'training={epochs: 2}'` reaches the Snakefile as {"epochs": "2"} (Snakemake reads the values nested in
    a --config entry as strings); this gives the 2 a config file would. A string that does not convert is kept, so
    validation reports it with the schema's message ("'two' is not of type 'integer'").
    """
    if isinstance(value, dict):
        known = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        extra = extra if isinstance(extra, dict) else {}
        return {k: typed_by_schema(v, known.get(k, extra)) for k, v in value.items()}
    if isinstance(value, list):
        return [typed_by_schema(v, schema.get("items", {})) for v in value]
    if isinstance(value, str):
        return _typed_scalar(value, schema.get("type", []))
    return value


def _read_config(config):
    """Read the config's strings as the types the schema expects there (:func:`typed_by_schema`), then validate
    it and fill its defaults, in place."""
    with open(SCHEMA, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    config.update(typed_by_schema(dict(config), schema))
    validate(config, SCHEMA)


_read_config(config)


def _resolve_data_source(config):
    """Apply the `acdc_root` shortcut and the environment variable; check the ACDC root exists (part=report reads
    no data and needs none)."""
    data = config["data"]
    switched = False
    if config.get("acdc_root"):
        switched = data["source"] != "acdc"
        data["source"] = "acdc"
        data["acdc_root"] = config["acdc_root"]
    if data["source"] != "acdc":
        return None, False
    root = data["acdc_root"] or os.environ.get(ACDC_ENV, "")
    if not root and config.get("part") == "report":
        return None, switched
    if not root:
        raise WorkflowError(
            "data.source is 'acdc' but no ACDC root is given: pass --config acdc_root=/path/to/acdc "
            f"(the folder holding training/) or set the environment variable {ACDC_ENV}."
        )
    if not os.path.isdir(os.path.join(root, "training")):
        raise WorkflowError(
            f"ACDC root {root!r} has no training/ folder; point acdc_root (or {ACDC_ENV}) at the folder that "
            "holds training/patientNNN/."
        )
    data["acdc_root"] = os.path.abspath(root)
    return data["acdc_root"], switched


# A phantom config switched to ACDC by `--config acdc_root=...` writes to results/<run>-acdc/, so ACDC results
# (and pictures made from ACDC, which must never be committed) never land in a phantom run's folder.
ACDC_ROOT, _SWITCHED = _resolve_data_source(config)
RUN = config["run"]
if _SWITCHED and "acdc" not in RUN.lower():
    RUN = f"{RUN}-acdc"
R = f"results/{RUN}"
# An ACDC run's part=report without an ACDC root has no data to prepare: it must read what the parts left, never
# fall back to generating the phantom (data.smk defines its rules only when this holds).
PREPARES_DATA = not (
    config.get("part") == "report"
    and config["data"]["source"] == "acdc"
    and not ACDC_ROOT
)


def _pixel_scale(config):
    """The run's pixel size relative to the ACDC-like grid: the phantom's `pixel_scale`, 1 for ACDC."""
    data = config["data"]
    return float(data["phantom"]["pixel_scale"]) if data["source"] == "phantom" else 1.0


def _run_crop(crop, scale, multiple=CROP_MULTIPLE):
    """The protocol crop (ACDC-grid pixels) on a grid `scale` times coarser: each side / scale, rounded down to a
    multiple of 16 (four 2x2 poolings), at least 16; unchanged at scale 1."""
    if scale == 1.0:
        return [int(c) for c in crop]
    return [max(multiple, int(c / scale) // multiple * multiple) for c in crop]


def _check_crop(crop, scale, multiple=CROP_MULTIPLE):
    """Every side of `data.crop` (ACDC-grid pixels) must be a multiple of 16; a scaled phantom's crop, derived by
    :func:`_run_crop`, then is one by construction."""
    bad = [int(c) for c in crop if int(c) % multiple]
    if not bad:
        return
    down = [int(c) // multiple * multiple for c in crop]
    up = [-(-int(c) // multiple) * multiple for c in crop]
    scaled = (
        f" (this phantom's pixel_scale {scale:g} then divides each side and rounds it down to a multiple of "
        f"{multiple})"
        if scale != 1.0
        else ""
    )
    raise WorkflowError(
        f"data.crop {list(crop)}: each side must be a multiple of {multiple} (the networks halve the image four "
        f"times), got {bad[0]}. Set data.crop to e.g. {down} or {up}, in ACDC-grid pixels{scaled}."
    )


PIXEL_SCALE = _pixel_scale(config)
_check_crop(config["data"]["crop"], PIXEL_SCALE)
CROP = _run_crop(config["data"]["crop"], PIXEL_SCALE)
# The data settings the prepared dataset depends on (the phantom's only for a phantom run, so that a new phantom
# setting never re-prepares, and so re-trains, an ACDC run).
DATA_PARAMS = {
    k: v
    for k, v in config["data"].items()
    if k != "phantom" or config["data"]["source"] == "phantom"
}
SEEDS = [int(s) for s in config["training"]["seeds"]]
# The rows every other row is tested against at patient level: the reference (TEDS-Net) and the paper's U-Net.
PATIENT_REFERENCES = [config["evaluation"]["reference"], "unet"]
# The settings of models that take them: the post-processing's parameters, at the run's threshold.
MODEL_SETTINGS = {**config["postprocess"], "threshold": config["training"]["threshold"]}


def _import_plugins(modules):
    """Import the config's `plugins` (modules that register methods of their own), the working directory first on
    the module search path, before any experiment name is resolved; every job does the same (scripts/_common.py).
    """
    try:
        load_plugins(modules, search_path=os.getcwd())
    except (ImportError, ValueError) as error:
        raise WorkflowError(f"plugins: {error} (docs/adding-a-method.md)") from error


_import_plugins(config["plugins"])


def _check_names(names, key, unknown_fix=PLUGIN_HINT, alias_fix=""):
    """Every name under the config key `key` must be a registry name in its canonical form, so that the folder of
    what is trained, and the row a setting applies to, names the experiment. `unknown_fix`: the advice for a name
    the registry does not resolve; `alias_fix`: more advice for a non-canonical one."""
    for name in names:
        try:
            canonical = get_experiment(name).name
        except ValueError as error:
            raise WorkflowError(f"{key}: {error} {unknown_fix}") from None
        if canonical != name:
            raise WorkflowError(
                f"{key}: experiment {name!r} resolves to {canonical!r} in the registry (an override equal to "
                f"the base's value is dropped). Name it {canonical!r}{alias_fix}."
            )


def _check_reference(reference, rows):
    """The paired tests compare `evaluation.reference` with every other Table 1 row, so it must be one of them."""
    if reference not in rows:
        raise WorkflowError(
            f"evaluation.reference {reference!r} is not a Table 1 row; expected one of experiments {rows}. Set "
            f"it to one of them (e.g. --config 'evaluation={{reference: {rows[-1]}}}') or add {reference!r} to "
            "experiments."
        )


EXPERIMENTS = list(config["experiments"])
_check_names(EXPERIMENTS, "experiments")
_check_names([config["figure4"]["base"]], "figure4.base")
_check_names(config["training"]["overrides"], "training.overrides")
for _part, _models in config["parts"].items():
    _check_names(_models, f"parts.{_part}")
_check_reference(config["evaluation"]["reference"], EXPERIMENTS)


SWEEPS = figure4_sweeps(config["figure4"], PIXEL_SCALE)


def _sweep_experiments(sweeps):
    """The experiments of the sweeps' points, each once, in order (the base experiment is one of them)."""
    return list(dict.fromkeys(e for points in sweeps.values() for e in points.values()))


SWEEP_EXPERIMENTS = _sweep_experiments(SWEEPS)
_check_names(
    SWEEP_EXPERIMENTS,
    f"figure4 (the sweep points of figure4.base {config['figure4']['base']!r})",
    unknown_fix="Choose a figure4.base that has the swept settings (e.g. tedsnet), or empty "
    "figure4.int_steps / figure4.prior_radius.",
    alias_fix=", or set figure4.base_int_steps / figure4.base_prior_radius to the registry's values",
)
MODELS = list(dict.fromkeys(EXPERIMENTS + SWEEP_EXPERIMENTS))
FIGURE3_MODELS = [
    e for e in ("unet", "unet_smp", config["evaluation"]["reference"]) if e in MODELS
]


def _active_models(part, parts):
    """The models this invocation may train, predict and evaluate (`--config part=...`): all of them (no part),
    one part's, or none (`report`: the tables are built from the per-case CSVs and training logs of the parts
    already run, e.g. committed ones)."""
    if part is None:
        return MODELS
    if part == "report":
        return []
    if part not in parts:
        raise WorkflowError(
            f"part {part!r} is not in this config's parts ({', '.join(parts) or 'none defined'}); use one of "
            "those, or part=report to build the tables from the parts already run."
        )
    unknown = [m for m in parts[part] if m not in MODELS]
    if unknown:
        raise WorkflowError(
            f"part {part!r} lists {unknown}, which are neither Table 1 rows (experiments) nor Figure 4 points."
        )
    return list(parts[part])


def _points_run(sweeps, done):
    """The Figure 4 points whose experiment is `done` (part=report); a sweep with fewer than two is left out.
    Returns (sweeps, the experiments of the points left out)."""
    kept, missing = {}, []
    for key, points in sweeps.items():
        run = {value: exp for value, exp in points.items() if done(exp)}
        if len(run) >= 2:
            kept[key] = run
        missing += [exp for exp in points.values() if exp not in run.values()]
    return kept, list(dict.fromkeys(missing))


PART = config.get("part")
ACTIVE = _active_models(PART, config["parts"])
# Table 1 rows: every experiment, or (part=report) those whose per-case CSV exists; the others are named.
if PART == "report":
    ROWS = [e for e in EXPERIMENTS if os.path.exists(f"{R}/metrics/{e}.csv")]
    MISSING_ROWS = [e for e in EXPERIMENTS if e not in ROWS]
    SWEEPS, MISSING_POINTS = _points_run(
        SWEEPS, lambda e: os.path.exists(f"{R}/metrics/{e}.csv")
    )
    SWEEP_EXPERIMENTS = _sweep_experiments(SWEEPS)
    if not ROWS:
        raise WorkflowError(
            f"part=report found no per-case metrics under {R}/metrics/: run the parts first "
            f"({', '.join(config['parts']) or 'no parts defined'})."
        )
else:
    ROWS, MISSING_ROWS, MISSING_POINTS = EXPERIMENTS, [], []
CURVE_MODELS = [m for m in MODELS if m in ROWS or m in SWEEP_EXPERIMENTS]


# Only the active models have train/predict/evaluate jobs; any other model's files are inputs that must exist.
wildcard_constraints:
    exp="|".join(re.escape(m) for m in ACTIVE) or "(?!)",
    seed=r"\d+",


def train_options(exp):
    """Training options of one experiment: the `training` block, its own budget, then its overrides."""
    return run_training_options(exp, config["training"])


def seeds_of(exp):
    """The seeds an experiment is trained with: its override `seeds`, else `training.seeds`."""
    return run_seeds(exp, config["training"])


def train_inputs(wildcards):
    """The train rule's inputs: the prepared splits, and the trained checkpoint of the same seed of the experiment
    this one starts from (`init_from`: a fine-tune or a post-processed model)."""
    inputs = {"train": f"{R}/data/train.npz", "val": f"{R}/data/val.npz"}
    init_from = get_experiment(wildcards.exp).init_from
    if init_from is not None:
        inputs["init"] = f"{model_dir(init_from, wildcards.seed)}/best.pt"
    return inputs


def model_dir(exp, seed):
    return f"{R}/models/{exp}/seed{seed}"


def _check_starting_checkpoints():
    """A part whose row starts from another row's checkpoint (`init_from`) needs those checkpoints made first;
    say which part makes them instead of Snakemake's missing-input error."""
    for exp in ACTIVE if PART is not None else []:
        source = get_experiment(exp).init_from
        if source is None or source in ACTIVE:
            continue
        wanted = [f"{model_dir(source, s)}/best.pt" for s in seeds_of(exp)]
        missing = [path for path in wanted if not os.path.exists(path)]
        if missing:
            makers = [
                f"part={p}" for p, models in config["parts"].items() if source in models
            ]
            raise WorkflowError(
                f"part {PART!r}: {exp} starts from {source}'s trained checkpoint of the same seed, and "
                f"{', '.join(missing)} are not there yet; run {' or '.join(makers) or f'a part with {source}'} "
                "first, or the whole workflow without part."
            )


_check_starting_checkpoints()


def checkpoint_files(exp):
    return [f"{model_dir(exp, seed)}/best.pt" for seed in seeds_of(exp)]


def predictions(exp, seeds=None):
    return [
        f"{R}/predictions/{exp}/seed{seed}.npz"
        for seed in (seeds_of(exp) if seeds is None else seeds)
    ]


def metrics_files(models):
    return [f"{R}/metrics/{exp}.csv" for exp in models]


def dataset_inputs(wildcards):
    """The prepare rule's inputs: the generated phantom cohort, or (ACDC) the committed official split."""
    if ACDC_ROOT is None:
        return {"cohort": f"{R}/cohort"}
    if config["data"]["split"]["official_acdc"]:
        return {"split": "workflow/resources/acdc_split.csv"}
    return {}


def logged_seeds(exp):
    """The seeds of an experiment with a training history: all of them, or (part=report) those whose history is
    there, so that a part not run yet (more seeds of a row) leaves its seeds out instead of stopping the report.
    """
    seeds = seeds_of(exp)
    if PART == "report":
        seeds = [
            s for s in seeds if os.path.exists(f"{R}/training_logs/{exp}/seed{s}.csv")
        ]
    return seeds


def training_logs(models):
    """Per-epoch training histories copied out of the model folders (numbers only; committed for ACDC runs)."""
    return [
        f"{R}/training_logs/{exp}/seed{seed}.csv"
        for exp in models
        for seed in logged_seeds(exp)
    ]


def figure_outputs():
    """Figure 4 when the config has sweep points, Figure 3 when predictions are local (not part=report)."""
    out = {}
    if SWEEP_EXPERIMENTS:
        out.update(figure4=f"{R}/figure4.png", figure4_csv=f"{R}/figure4.csv")
    if PART is None:
        out["figure3"] = f"{R}/figure3.png"
    return out


def final_outputs():
    """What `all` asks for. Whole run: the published artefacts, plus every checkpoint and per-case table, so that
    deleting one of those re-runs it and exactly what depends on it (Snakemake regenerates a missing intermediate
    file only when some job that needs it runs). One part: its checkpoints, per-case tables and training logs.
    part=report: the tables, figures and report from the parts already run."""
    part_outputs = [
        *[c for exp in ACTIVE for c in checkpoint_files(exp)],
        *metrics_files(ACTIVE),
        *training_logs(ACTIVE),
        *evaluation_set_outputs(),
    ]
    if PART not in (None, "report"):
        return part_outputs
    return [
        *part_outputs,
        *expand(f"{R}/table1.{{ext}}", ext=("csv", "md", "tex")),
        f"{R}/stats.csv",
        *figure_outputs().values(),
        *([f"{R}/figure4.pdf"] if SWEEP_EXPERIMENTS else []),
        f"{R}/learning_curves.png",
        f"{R}/report.md",
    ]


def report_inputs():
    """The report's inputs; the split table is the committed official one when the data are not prepared here."""
    inputs = {
        "table1": f"{R}/table1.csv",
        "stats": f"{R}/stats.csv",
        "curves": f"{R}/learning_curves.png",
        "curves_csv": f"{R}/learning_curves.csv",
        "paper": "workflow/resources/paper_table1.csv",
        **figure_outputs(),
    }
    if (
        PART == "report"
        and config["data"]["source"] == "acdc"
        and config["data"]["split"]["official_acdc"]
    ):
        inputs["splits"] = "workflow/resources/acdc_split.csv"
    else:
        inputs["splits"] = f"{R}/data/splits.csv"
        if not PREPARES_DATA and not os.path.exists(inputs["splits"]):
            raise WorkflowError(
                f"part=report reads the split table {inputs['splits']}, which is not there: give the ACDC root "
                "(acdc_root) to prepare it, or run a part first."
            )
    if PART is None:
        inputs["checkpoints"] = [c for exp in MODELS for c in checkpoint_files(exp)]
    return inputs
