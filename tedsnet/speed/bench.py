"""Throughput benchmark of the suite's models in each speed mode; prints a summary and optionally writes a CSV.

Run it as ``tedsnet-bench`` or ``python -m tedsnet.speed.bench`` (options: ``--help``).

For each model (TEDS-Net, both U-Nets, VoxelMorph) and speed mode (:mod:`tedsnet.speed.modes`) it measures, at
144 x 208 and batch 5 on the current device: the training step (forward + backward + Adam) and the inference
forward, as median latency and spread (interquartile range) over repeated steps after warm-up, images/s, and the
peak memory of a fresh process. It also times the per-case evaluation of 100 test cases (Betti numbers, Dice,
Hausdorff, Jacobians of both fields), says which mode ``auto`` picks here (:mod:`tedsnet.speed.auto`), and records
the torch version, threads, device, processor model and flags (the ``fast`` mode's bf16 convolutions pay off on
some processors and not on others, so results are only comparable on the same machine).

Every (model, mode) runs in its own worker process so that peak memory and allocator state are its own, and the
modes of a model take turns in short bursts of consecutive steps (:func:`measure_modes`), so their ratios are
paired even when the machine's speed drifts; images/s come from the steps that follow the first of each burst
(back to back, as in a training or prediction loop), the first step's latency is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tedsnet.io import write_csv_atomic
from tedsnet.speed.modes import SPEED_MODES

#: Registry names of the benchmarked models.
MODELS = ("tedsnet", "unet", "unet_smp", "voxelmorph")
#: (H, W) of the benchmark's images: the protocol's slice size.
SHAPE = (144, 208)

#: Plain-text description for ``--help``.
DESCRIPTION = """\
Time the training step (forward + backward + Adam) and the inference forward
of each model in each speed mode, at 144 x 208 on the chosen device. Each
(model, mode) runs in its own worker process; the modes of a model take turns
in short bursts of steps so that their ratios stay paired. Also times the
per-case evaluation of 100 cases and reports which mode speed_mode=auto picks
on this machine.

Also available as: python -m tedsnet.speed.bench"""


def _sync(device: torch.device) -> None:
    """Wait for queued CUDA work so that a timer reads the whole step (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _quartiles(times: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of ``times``."""
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return float(q1), float(median), float(q3)


class ModelBench:
    """One model in one speed mode, built once, that times single training steps and inference forwards.

    The training step is forward + segmentation loss (+ beta * L_Grad of each field for TEDS-Net) + backward +
    Adam, on a fixed random batch of ``batch`` images at 144 x 208.
    """

    def __init__(self, name: str, mode: str, *, batch: int, device: str, seed: int = 0) -> None:
        from tedsnet.device import resolve_device
        from tedsnet.experiments import get_experiment
        from tedsnet.network.losses import grad_loss
        from tedsnet.speed.modes import apply_speed_mode

        self.device = resolve_device(device)
        experiment = get_experiment(name)
        self.model = apply_speed_mode(experiment.build(seed=seed), mode).to(self.device)
        self.prior = experiment.prior_tensor(SHAPE, device=self.device)
        gen = torch.Generator().manual_seed(seed)
        self.image = torch.rand(batch, 1, *SHAPE, generator=gen).to(self.device)
        self.target = (
            torch.as_tensor(np.broadcast_to(experiment.prior(SHAPE), (batch, 1, *SHAPE)).copy())
            .float()
            .to(self.device)
        )
        self.loss_fn = experiment.seg_loss_fn()
        self.beta = experiment.beta
        self.grad_loss = grad_loss
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=1e-4)

    def _train_step(self) -> None:
        out = self.model(self.image, self.prior)
        loss = self.loss_fn(out.segmentation, self.target)
        if self.beta:
            loss = loss + self.beta * sum(self.grad_loss(f) for f in out.displacements.values())
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()

    def _infer_step(self) -> None:
        with torch.inference_mode():
            self.model(self.image, self.prior)

    def time_step(self, phase: str) -> float:
        """Seconds of one ``"train"`` step or one ``"infer"`` forward (device synchronised)."""
        self.model.train(phase == "train")
        step = self._train_step if phase == "train" else self._infer_step
        _sync(self.device)
        start = time.perf_counter()
        step()
        _sync(self.device)
        return time.perf_counter() - start

    def peak_memory(self) -> dict:
        """Peak resident memory of this process and peak CUDA memory, in MB."""
        cuda = self.device.type == "cuda"
        return {
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_cuda_mb": torch.cuda.max_memory_allocated(self.device) / 2**20 if cuda else float("nan"),
        }


def _worker(args: argparse.Namespace) -> None:
    """A ModelBench answering on stdout, one line per command read from stdin.

    ``train N`` / ``infer N``: N consecutive steps, their seconds on one line; ``memory``: peak memory as JSON.
    """
    torch.set_num_threads(args.threads)
    bench = ModelBench(args.model, args.mode, batch=args.batch, device=args.device)
    print("READY " + str(bench.device), flush=True)
    for line in sys.stdin:
        command, _, count = line.strip().partition(" ")
        if command in ("train", "infer") and count.isdigit() and int(count) > 0:
            print(" ".join(f"{bench.time_step(command):.9f}" for _ in range(int(count))), flush=True)
        elif command == "memory" and not count:
            print(json.dumps(bench.peak_memory()), flush=True)
        else:
            raise SystemExit(f"bench worker: unknown command {line.strip()!r}")


class _Worker:
    """A ``--worker`` subprocess for one (model, mode)."""

    def __init__(self, name: str, mode: str, args: argparse.Namespace) -> None:
        """Start the worker and wait for its ``READY <device>`` line."""
        command = [
            sys.executable, "-m", "tedsnet.speed.bench", "--worker", "--model", name, "--mode", mode,
            "--batch", str(args.batch), "--threads", str(args.threads), "--device", args.device,
        ]  # fmt: skip
        self.label = f"{name}/{mode}"
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.device = self._answer().split(maxsplit=1)[1]

    def _answer(self) -> str:
        """The worker's next line; RuntimeError with its stderr when it has died."""
        line = self.process.stdout.readline()
        if not line:
            self.process.kill()
            raise RuntimeError(f"benchmark of {self.label} failed:\n{self.process.stderr.read()[-2000:]}")
        return line.strip()

    def ask(self, command: str) -> str:
        """Send one command line and return the answer line."""
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        """Close the worker's stdin (it exits) and wait for it."""
        self.process.stdin.close()
        self.process.wait(timeout=60)


def split_bursts(bursts: list[list[float]]) -> tuple[list[float], list[float]]:
    """(first step of every burst, every later step) of a list of bursts of consecutive step times."""
    if any(len(burst) < 2 for burst in bursts):
        raise ValueError("split_bursts: every burst needs at least 2 steps (a first one and a timed one).")
    return [burst[0] for burst in bursts], [t for burst in bursts for t in burst[1:]]


def measure_modes(name: str, modes: list[str], args: argparse.Namespace) -> list[dict]:
    """Time one model in every speed mode, the modes' steps interleaved in bursts.

    One worker process per mode (so peak memory is each mode's own). After ``args.warmup`` steps each, every
    round runs a burst of ``args.burst`` consecutive steps of every mode, starting with a different mode each
    round, so that a drift in the machine's speed falls on all modes alike and their ratios stay paired. The first
    step of a burst follows the other workers' steps (its threads have gone to sleep and its data left the caches),
    so it is reported apart (``*_first_median_s``); the medians, spread and images/s come from the ``burst - 1``
    steps after it, back to back as in a training or prediction loop, at least ``args.repeats`` of them. Training
    steps first, then inference forwards.

    Parameters
    ----------
    name : str
        Registry name of the model (one of :data:`MODELS`).
    modes : list of str
        Speed modes to compare.
    args : argparse.Namespace
        ``batch``, ``warmup``, ``repeats``, ``burst``, ``threads`` and ``device``, as on the command line.

    Returns
    -------
    list of dict
        One row per mode: latencies in seconds, images/s, peak memory in MB.

    Raises
    ------
    ValueError
        If ``args.burst`` is below 2.
    RuntimeError
        If a worker process fails (its stderr is in the message).
    """
    burst = args.burst
    if burst < 2:
        raise ValueError(f"measure_modes: burst must be at least 2, got {burst}.")
    rounds = -(-args.repeats // (burst - 1))
    workers = {}
    bursts = {mode: {"train": [], "infer": []} for mode in modes}
    try:
        for mode in modes:
            workers[mode] = _Worker(name, mode, args)
        for phase in ("train", "infer"):
            for worker in workers.values():
                if args.warmup:
                    worker.ask(f"{phase} {args.warmup}")
            for round_ in range(rounds):
                order = modes[round_ % len(modes) :] + modes[: round_ % len(modes)]
                for mode in order:
                    answer = workers[mode].ask(f"{phase} {burst}")
                    bursts[mode][phase].append([float(t) for t in answer.split()])
        memory = {mode: json.loads(worker.ask("memory")) for mode, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.close()
    rows = []
    for mode in modes:
        row = {
            "model": name,
            "mode": mode,
            "device": workers[mode].device,
            "batch": args.batch,
            "repeats": rounds * (burst - 1),
            "burst": burst,
        }
        for phase in ("train", "infer"):
            first, steady = split_bursts(bursts[mode][phase])
            q1, median, q3 = _quartiles(steady)
            row.update({f"{phase}_median_s": median, f"{phase}_q1_s": q1, f"{phase}_q3_s": q3})
            row[f"{phase}_images_per_s"] = args.batch / median
            row[f"{phase}_first_median_s"] = float(statistics.median(first))
        rows.append({**row, **memory[mode]})
    return rows


def measure_evaluation(n_cases: int = 100, repeats: int = 3, seed: int = 0) -> dict:
    """Seconds to compute every per-case metric of ``n_cases`` TEDS-Net-like predictions (two 288 x 416 fields)."""
    from tedsnet.evaluation.cases import evaluate_case
    from tedsnet.network.priors import ring_prior

    rng = np.random.default_rng(seed)
    ref = ring_prior(SHAPE, 30, 7)
    cases = []
    for _ in range(n_cases):
        pred = np.roll(ring_prior(SHAPE, rng.uniform(25, 35), rng.uniform(5, 9)), rng.integers(-5, 5), axis=1)
        fields = {
            k: rng.normal(0, 0.3, (2, 2 * SHAPE[0], 2 * SHAPE[1])).astype(np.float32) for k in ("bulk", "ft")
        }
        cases.append((pred, fields))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for pred, fields in cases:
            evaluate_case(pred, ref, (1.5, 1.5), fields)
        times.append(time.perf_counter() - start)
    return {"n_cases": n_cases, "seconds_median": float(statistics.median(times)), "seconds_min": min(times)}


#: The processor flags the benchmark records (vector units and bf16 support).
RECORDED_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma", "f16c")


def cpu_info(path: str | Path = "/proc/cpuinfo") -> tuple[str, str]:
    """(model name, recorded flags) of the first processor listed in ``path``; empty strings where absent."""
    model, flags = "", ""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = " ".join(f for f in line.split(":", 1)[1].split() if f in RECORDED_CPU_FLAGS)
                    break
    except OSError:
        pass
    return model, flags


def environment() -> dict:
    """Torch version, threads, device, processor model and flags."""
    model, flags = cpu_info()
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpu_flags": flags,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }


def auto_choice(device: str):
    """What ``speed_mode="auto"`` picks on ``device`` (:func:`tedsnet.speed.auto.resolve_speed_mode`)."""
    from tedsnet.device import resolve_device
    from tedsnet.speed.auto import resolve_speed_mode

    return resolve_speed_mode("auto", resolve_device(device))


def run(args: argparse.Namespace) -> pd.DataFrame:
    """Benchmark every model and mode of ``args``, print one line each, and return the table of the CSV."""
    rows = []
    for name in args.models:
        for row in measure_modes(name, list(args.modes), args):
            rows.append(row)
            print(
                f"{name:11s} {row['mode']:5s} train {row['train_images_per_s']:7.1f} img/s "
                f"(median {row['train_median_s'] * 1e3:6.1f} ms, IQR {row['train_q1_s'] * 1e3:.1f}-"
                f"{row['train_q3_s'] * 1e3:.1f}, first of a burst {row['train_first_median_s'] * 1e3:.1f})  "
                f"infer {row['infer_images_per_s']:7.1f} img/s (median {row['infer_median_s'] * 1e3:6.1f} ms, "
                f"first {row['infer_first_median_s'] * 1e3:.1f})  peak RSS {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    table = pd.DataFrame(rows)
    for name in args.models:
        reference = table[(table.model == name) & (table["mode"] == "eager")]
        if len(reference):
            mask = table.model == name
            table.loc[mask, "train_speedup_vs_eager"] = (
                table.loc[mask, "train_images_per_s"] / reference.train_images_per_s.iloc[0]
            )
            table.loc[mask, "infer_speedup_vs_eager"] = (
                table.loc[mask, "infer_images_per_s"] / reference.infer_images_per_s.iloc[0]
            )
    torch.set_num_threads(args.threads)
    evaluation = measure_evaluation()
    print(f"per-case evaluation of {evaluation['n_cases']} cases: {evaluation['seconds_median']:.2f} s")
    choice = auto_choice(args.device)
    print(f"speed mode auto picks {choice.mode} here ({choice.reason})")
    env = environment()
    env["threads"] = args.threads
    print("environment: " + json.dumps(env))
    extra = {"eval_100_cases_s": evaluation["seconds_median"], "auto_mode": choice.mode}
    for key, value in {**env, **extra}.items():
        table[key] = value
    return table


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``tedsnet-bench``."""
    parser = argparse.ArgumentParser(
        prog="tedsnet-bench",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        choices=MODELS,
        metavar="MODEL",
        help=f"models to benchmark, among {', '.join(MODELS)} (default: all)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=list(SPEED_MODES),
        choices=SPEED_MODES,
        metavar="MODE",
        help=f"speed modes to compare, among {', '.join(SPEED_MODES)} (default: all)",
    )
    parser.add_argument("--batch", type=int, default=5, help="images per step (default 5)")
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed steps per mode and phase first (default 3)"
    )
    parser.add_argument(
        "--repeats", type=int, default=15, help="timed steps per model, mode and phase, at least (default 15)"
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=4,
        help="consecutive steps a mode runs per round; the first is reported apart (default 4, at least 2)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch CPU threads of every worker (default: all cores of this machine)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when present), cpu or cuda (default auto)"
    )
    parser.add_argument("--out", type=Path, default=None, help="CSV to write (default: print only)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``tedsnet-bench``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.burst < 2 or args.repeats < 1:
        parser.error("--burst must be at least 2 and --repeats at least 1")
    if args.worker:
        _worker(args)
        return 0
    table = run(args)
    if args.out is not None:
        write_csv_atomic(table, args.out, float_format="%.6g")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
