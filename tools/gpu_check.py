"""Helpers of ``tools/gpu_check.sh``: missing packages, CUDA facts, a timed paper-protocol run and its projection.

Subcommands (``python tools/gpu_check.py --help``):

``missing``
    The pinned requirements (``envs/requirements.txt``) the check needs that are not installed, one ``name==version``
    per line; versions that differ from the pins are listed on stderr and kept (a machine's own CUDA build of torch
    is never replaced).
``facts``
    The torch and CUDA facts of this machine: versions, device, memory, bf16 and TF32 settings, what ``auto`` picks.
``protocol``
    What the paper protocol (``workflow/config/paper.yaml``, ``docs/protocol.md``) trains: models, seeds, epochs and
    images per epoch. Needs no GPU.
``train``
    A time-budgeted TEDS-Net run of the paper protocol's settings (crop, batch size, learning rate, speed mode, 8
    augmented images per slice) on a phantom cohort made on the spot, then the projected cost of the whole protocol
    on this device. Lines starting ``RESULT`` are what the check's summary repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "envs" / "requirements.txt"
PAPER_CONFIG = REPO / "workflow" / "config" / "paper.yaml"
CONFIG_SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
OFFICIAL_SPLIT = REPO / "workflow" / "resources" / "acdc_split.csv"

#: Pinned packages the check does not need: the workflow engine, the SLURM plugin, lint tools and the metric tests'
#: reference implementation.
NOT_NEEDED = frozenset(
    {"snakemake", "snakemake-executor-plugin-slurm", "ruff", "snakefmt", "jsonschema", "medpy"}
)
#: Patients of the phantom cohort the timed run trains on (15 train, 3 validation, 2 test patients).
PHANTOM_PATIENTS = 20


def _normalised(name: str) -> str:
    """A distribution name in the form pip compares (PEP 503)."""
    return name.lower().replace("_", "-").replace(".", "-")


def read_pins(path: str | os.PathLike = REQUIREMENTS) -> dict[str, str]:
    """``{name: version}`` of the ``name==version`` lines of a requirements file (comments and blanks skipped)."""
    pins = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = (part.strip() for part in line.split("==", 1))
            pins[_normalised(name)] = version
    return pins


def missing_requirements(
    pins: Mapping[str, str], skip: frozenset[str] = NOT_NEEDED
) -> tuple[list[str], list[str]]:
    """(``name==version`` of each needed pin that is not installed, notes on installed versions off their pin)."""
    missing, notes = [], []
    for name, version in pins.items():
        if name in skip:
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(f"{name}=={version}")
            continue
        if installed.split("+", 1)[0] != version:
            notes.append(f"{name} {installed} is installed (pinned {version}); kept")
    return missing, notes


def cuda_facts() -> list[str]:
    """One line per fact about torch, the CUDA device and the choices the suite makes on it."""
    import torch

    lines = [
        f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    ]
    if not torch.cuda.is_available():
        return [*lines, "CUDA is not available"]
    from tedsnet.device import resolve_device
    from tedsnet.speed.auto import resolve_speed_mode

    props = torch.cuda.get_device_properties(0)
    lines += [
        f"devices: {torch.cuda.device_count()}; device 0: {props.name}, compute capability {props.major}.{props.minor}, "
        f"{props.total_memory / 2**30:.1f} GiB, {props.multi_processor_count} multiprocessors",
        f"bf16 supported: {torch.cuda.is_bf16_supported()}; TF32 in convolutions: "
        f"{torch.backends.cudnn.allow_tf32}, in matrix products: {torch.backends.cuda.matmul.allow_tf32}",
        f"resolve_device('auto') -> {resolve_device('auto')}; speed_mode auto -> "
        f"{resolve_speed_mode('auto', resolve_device('auto')).mode}",
    ]
    return lines


# ------------------------------------------------------------------------------------------- the paper protocol
def with_schema_defaults(config: dict, schema: Mapping) -> dict:
    """``config`` with every default of the JSON schema filled in where a key is absent (recursively), as Snakemake's
    ``validate`` does before the workflow reads it."""
    for key, spec in schema.get("properties", {}).items():
        if key not in config and "default" in spec:
            config[key] = json.loads(json.dumps(spec["default"]))
        if isinstance(config.get(key), dict) and spec.get("type") == "object":
            with_schema_defaults(config[key], spec)
    return config


@dataclass(frozen=True)
class PaperProtocol:
    """What one config trains: every model that trains, each seed, each epoch over the training images.

    Attributes
    ----------
    models : tuple of str
        Models that train: the Table 1 rows (``experiments``) and the Figure 4 sweep points, each once, in the
        workflow's order, without the rows that do not train (``prior``).
    untrained : tuple of str
        Rows evaluated as built (no training cost).
    seeds : tuple of int
        The run's seeds (``training.seeds``).
    epochs, batch_size : int
        The run's ``training.epochs`` and batch size.
    model_epochs, model_seeds : dict
        Model -> its own epochs and seeds (its budget in the name, e.g. ``_epochs12``, or its
        ``training.overrides``; :func:`tedsnet.experiments.run_training_options`).
    lr : float
    speed_mode : str
    crop : (H, W)
    patients : dict
        Patients per split (train, val, test).
    n_train, n_val, n_test : int
        Images per split: patients x frames x slices per scan x augmented images (test: not augmented).
    """

    models: tuple[str, ...]
    untrained: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int
    batch_size: int
    lr: float
    speed_mode: str
    crop: tuple[int, int]
    patients: dict
    n_train: int
    n_val: int
    n_test: int
    model_epochs: dict
    model_seeds: dict

    @property
    def runs(self) -> int:
        """Training runs: each model's seeds, summed."""
        return sum(len(self.model_seeds[m]) for m in self.models)

    @property
    def image_steps(self) -> int:
        """Training images seen by all runs together."""
        return sum(len(self.model_seeds[m]) * self.model_epochs[m] for m in self.models) * self.n_train


def _patients_per_split(config: Mapping) -> dict:
    """Patients in train / val / test: the committed official ACDC split, or the fractions of 100 patients."""
    split = config["data"]["split"]
    if config["data"]["source"] == "acdc" and split["official_acdc"]:
        import pandas as pd

        counts = pd.read_csv(OFFICIAL_SPLIT)["split"].value_counts()
        return {name: int(counts.get(name, 0)) for name in ("train", "val", "test")}
    return {
        name: round(100 * f) for name, f in zip(("train", "val", "test"), split["fractions"], strict=True)
    }


def paper_protocol(config_path: str | os.PathLike = PAPER_CONFIG) -> PaperProtocol:
    """Read a config (default ``workflow/config/paper.yaml``) and count what it trains (see :class:`PaperProtocol`).

    Raises
    ------
    ValueError
        A model name the registry does not know.
    """
    import yaml

    from tedsnet.data.acdc import PHASES
    from tedsnet.experiments import figure4_sweeps, get_experiment, run_seeds, run_training_options

    config = yaml.safe_load(Path(config_path).read_text())
    with_schema_defaults(config, yaml.safe_load(CONFIG_SCHEMA.read_text()))
    data = config["data"]
    pixel_scale = float(data["phantom"]["pixel_scale"]) if data["source"] == "phantom" else 1.0
    sweeps = figure4_sweeps(config["figure4"], pixel_scale)
    names = list(dict.fromkeys([*config["experiments"], *(e for p in sweeps.values() for e in p.values())]))
    trains = {name: get_experiment(name).trains for name in names}
    training = config["training"]
    patients = _patients_per_split(config)
    per_patient = len(PHASES) * int(data["slices_per_scan"])
    n_images = int(data["augment"]["n_images"])
    models = tuple(n for n in names if trains[n])
    return PaperProtocol(
        models=models,
        untrained=tuple(n for n in names if not trains[n]),
        seeds=tuple(int(s) for s in training["seeds"]),
        epochs=int(training["epochs"]),
        batch_size=int(training["batch_size"]),
        lr=float(training["lr"]),
        speed_mode=str(training["speed_mode"]),
        crop=(int(data["crop"][0]), int(data["crop"][1])),
        patients=patients,
        n_train=patients["train"] * per_patient * n_images,
        n_val=patients["val"] * per_patient * n_images,
        n_test=patients["test"] * per_patient,
        model_epochs={m: int(run_training_options(m, training)["epochs"]) for m in models},
        model_seeds={m: tuple(run_seeds(m, training)) for m in models},
    )


def _exceptions(protocol: PaperProtocol) -> str:
    """The models whose epochs or seeds differ from the run's, as a parenthesis (empty when none do)."""
    own = [
        f"{m}: {protocol.model_epochs[m]} epochs, seeds {list(protocol.model_seeds[m])}"
        for m in protocol.models
        if protocol.model_epochs[m] != protocol.epochs or protocol.model_seeds[m] != protocol.seeds
    ]
    return f" (own budgets: {'; '.join(own)})" if own else ""


def describe_protocol(protocol: PaperProtocol) -> list[str]:
    """The protocol in a few lines."""
    return [
        f"models that train ({len(protocol.models)}): {', '.join(protocol.models)}",
        f"not trained: {', '.join(protocol.untrained) or 'none'}",
        f"seeds {list(protocol.seeds)}: {protocol.runs} training runs of {protocol.epochs} epochs{_exceptions(protocol)}, batch "
        f"{protocol.batch_size}, lr {protocol.lr:g}, speed mode {protocol.speed_mode}, crop "
        f"{protocol.crop[0]} x {protocol.crop[1]}",
        f"patients {protocol.patients}: {protocol.n_train} training and {protocol.n_val} validation images per "
        f"epoch, {protocol.n_test} test images",
        f"training images over all runs: {protocol.image_steps:,}",
    ]


# -------------------------------------------------------------------------------------------- the timed run
@dataclass(frozen=True)
class TrainingRate:
    """What the timed run measured.

    Attributes
    ----------
    step_s : float
        Median seconds of one optimisation step of ``batch_size`` images after the first epoch.
    train_images_per_s : float
        ``batch_size / step_s``.
    overhead_s_per_val_image : float
        Per-epoch time outside the steps (validation pass, checkpoints, history), per validation image.
    end_to_end_images_per_s : float
        Training images over the run's whole training time (validation and checkpoints included).
    epochs, images_seen, n_train, n_val : int
    seconds : float
        Training time of the run (what ``time_budget_s`` counts).
    peak_cuda_mb : float
        Peak CUDA memory allocated by the run.
    best_val_dice : float
    """

    step_s: float
    train_images_per_s: float
    overhead_s_per_val_image: float
    end_to_end_images_per_s: float
    epochs: int
    images_seen: int
    n_train: int
    n_val: int
    seconds: float
    peak_cuda_mb: float
    best_val_dice: float


def prepare_phantom(work: Path, protocol: PaperProtocol, n_patients: int, workers: int) -> Path:
    """A phantom cohort prepared with the protocol's slices, crop and augmentation; returns the data folder."""
    import yaml

    from tedsnet.data.phantom import write_phantom_cohort
    from tedsnet.data.prepared import PrepareSettings, prepare_dataset

    data = yaml.safe_load(PAPER_CONFIG.read_text())["data"]
    settings = PrepareSettings(
        seed=0,
        n_slices=int(data["slices_per_scan"]),
        crop=protocol.crop,
        n_augment=int(data["augment"]["n_images"]),
        rotation_deg=float(data["augment"]["rotation_deg"]),
        shift_frac=float(data["augment"]["shift_frac"]),
        zoom_frac=float(data["augment"]["zoom_frac"]),
    )
    start = time.perf_counter()
    write_phantom_cohort(
        work / "cohort", n_patients=n_patients, seed=0, keep_within=protocol.crop, workers=workers
    )
    result = prepare_dataset(work / "cohort", work / "data", settings, progress=False)
    print(f"phantom: {n_patients} patients prepared in {time.perf_counter() - start:.1f} s: {result.counts}")
    return work / "data"


def measure_training(
    data: Path, out_dir: Path, protocol: PaperProtocol, budget_s: float, device: str = "cuda"
) -> TrainingRate:
    """Train TEDS-Net with the protocol's settings for about ``budget_s`` seconds and time its steps and epochs."""
    import numpy as np
    import pandas as pd
    import torch

    from tedsnet.training.engine import train

    stamps: list[tuple[int, float]] = []
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = train(
        "tedsnet", data / "train.npz", data / "val.npz", out_dir, epochs=protocol.epochs,
        batch_size=protocol.batch_size, lr=protocol.lr, seed=0, device=device, speed_mode=protocol.speed_mode,
        time_budget_s=budget_s, resume=False, progress=False, log=print,
        callback=lambda info: stamps.append((int(info["epoch"]), time.perf_counter())),
    )  # fmt: skip
    history = pd.read_csv(result.paths.history)
    steps = pd.DataFrame(stamps, columns=["epoch", "t"])
    steps["dt"] = steps.groupby("epoch")["t"].diff()
    steady = steps[steps.epoch > 1] if history.epoch.max() > 1 else steps.iloc[5:]
    step_s = float(steady.dt.median())
    epoch_s = history.seconds.diff().fillna(history.seconds).to_numpy()
    steps_per_epoch = steps.groupby("epoch").size().reindex(history.epoch).to_numpy()
    # the first epoch's overhead also holds the warm-up, so it is left out when later epochs ran
    overhead = epoch_s - steps_per_epoch * step_s
    overhead_s = float(np.median(overhead[1:] if len(overhead) > 1 else overhead))
    counts = json.loads((data / "dataset.json").read_text())["counts"]
    n_train, n_val = int(counts["train"]), int(counts["val"])
    return TrainingRate(
        step_s=step_s,
        train_images_per_s=protocol.batch_size / step_s,
        overhead_s_per_val_image=max(overhead_s, 0.0) / n_val,
        end_to_end_images_per_s=float(history.images_seen.iloc[-1] / history.seconds.iloc[-1]),
        epochs=int(history.epoch.iloc[-1]),
        images_seen=int(history.images_seen.iloc[-1]),
        n_train=n_train,
        n_val=n_val,
        seconds=float(history.seconds.iloc[-1]),
        peak_cuda_mb=torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan"),
        best_val_dice=float(result.best_val_dice),
    )


def bench_rates(path: str | os.PathLike | None, mode: str) -> dict[str, float]:
    """``{model: training images/s}`` of one speed mode in a ``tedsnet-bench`` CSV; empty without one."""
    if path is None or not Path(path).is_file():
        return {}
    import pandas as pd

    table = pd.read_csv(path)
    rows = table[table["mode"] == mode]
    return {str(m): float(r) for m, r in zip(rows.model, rows.train_images_per_s, strict=True)}


def project(protocol: PaperProtocol, rate: TrainingRate, relative: Mapping[str, float]) -> dict[str, float]:
    """Projected seconds of every model's own epochs on this device, one seed.

    A model's epoch is its training images at the measured TEDS-Net step rate times ``relative`` speed of the
    model's base (1 where the benchmark has no figure: the ablations and sweep points count as TEDS-Net), plus the
    validation pass and checkpoints at the measured time per validation image, scaled the same way.
    """
    from tedsnet.experiments import get_experiment

    seconds = {}
    for name in protocol.models:
        speed = relative.get(get_experiment(name).base, 1.0)
        epoch = protocol.n_train / rate.train_images_per_s + protocol.n_val * rate.overhead_s_per_val_image
        seconds[name] = protocol.model_epochs[name] * epoch / speed
    return seconds


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h ({seconds / 86400:,.2f} days)"


def report_projection(protocol: PaperProtocol, rate: TrainingRate, bench_csv: str | None) -> list[str]:
    """The ``RESULT`` lines: measured rates, one TEDS-Net run and the whole protocol on one device."""
    rates = bench_rates(bench_csv, protocol.speed_mode)
    reference = rates.get("tedsnet")
    relative = {m: r / reference for m, r in rates.items()} if reference else {}
    per_model = project(protocol, rate, relative)
    one_run = per_model.get("tedsnet", next(iter(per_model.values())))
    total = sum(s * len(protocol.model_seeds[m]) for m, s in per_model.items())
    lines = [
        f"RESULT TEDS-Net training ({protocol.speed_mode}, batch {protocol.batch_size}, {protocol.crop[0]} x "
        f"{protocol.crop[1]}): {rate.train_images_per_s:.1f} images/s in the steps, {rate.end_to_end_images_per_s:.1f} "
        f"images/s end to end over {rate.epochs} epochs ({rate.images_seen} images, {rate.seconds:.0f} s), peak CUDA "
        f"memory {rate.peak_cuda_mb:.0f} MB",
        f"RESULT validation and checkpoints: {rate.overhead_s_per_val_image * 1e3:.2f} ms per validation image",
        f"RESULT one TEDS-Net run of the paper protocol ({protocol.epochs} epochs x {protocol.n_train} training + "
        f"{protocol.n_val} validation images): {_hours(one_run)}",
        f"RESULT whole paper protocol ({len(protocol.models)} models, {protocol.runs} runs over their seeds, "
        f"{protocol.image_steps:,} training images): {_hours(total)} on one such GPU; divide by the GPUs "
        "used at once",
    ]
    if relative:
        speeds = ", ".join(f"{m} {s:.2f}x" for m, s in sorted(relative.items()) if m != "tedsnet")
        lines.append(
            f"RESULT baselines scaled by the benchmark's {protocol.speed_mode} training rates vs TEDS-Net: {speeds}"
        )
    fast, plain = bench_rates(bench_csv, "fast").get("tedsnet"), rates.get("tedsnet")
    if fast and plain and protocol.speed_mode != "fast":
        lines.append(
            f"RESULT speed_mode fast trains TEDS-Net {fast / plain:.2f}x as fast as {protocol.speed_mode} in the "
            f"benchmark: the protocol in fast would take about {_hours(total * plain / fast)}"
        )
    return lines


# ------------------------------------------------------------------------------------------------ commands
def _command_train(args: argparse.Namespace) -> int:
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "gpu_check.py train: CUDA is not available; pass --device cpu to time the CPU instead.",
            file=sys.stderr,
        )
        return 2
    protocol = paper_protocol()
    work = Path(args.work)
    data = prepare_phantom(work, protocol, args.patients, args.workers)
    rate = measure_training(data, work / "model", protocol, args.budget, device=args.device)
    lines = report_projection(protocol, rate, args.bench)
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rate": asdict(rate), "protocol": asdict(protocol)}, indent=2) + "\n"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("missing", help="pinned requirements the check needs that are not installed")
    sub.add_parser("facts", help="torch and CUDA facts of this machine")
    sub.add_parser("protocol", help="what the paper protocol trains (no GPU needed)")
    train = sub.add_parser("train", help="time-budgeted TEDS-Net run and the projected cost of the protocol")
    train.add_argument(
        "--work", required=True, help="folder for the phantom, the prepared data and the model"
    )
    train.add_argument(
        "--budget", type=float, default=120.0, help="training seconds (time_budget_s; default 120)"
    )
    train.add_argument("--patients", type=int, default=PHANTOM_PATIENTS, help="phantom patients (default 20)")
    train.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="phantom processes")
    train.add_argument("--device", default="cuda", help="where to train (default cuda)")
    train.add_argument(
        "--bench", default=None, help="a tedsnet-bench CSV of this device, to scale the baselines"
    )
    train.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "missing":
        missing, notes = missing_requirements(read_pins())
        for note in notes:
            print(note, file=sys.stderr)
        print("\n".join(missing))
        return 0
    if args.command == "facts":
        print("\n".join(cuda_facts()))
        return 0
    if args.command == "protocol":
        print("\n".join(describe_protocol(paper_protocol())))
        return 0
    return _command_train(args)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
