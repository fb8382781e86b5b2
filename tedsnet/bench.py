"""Throughput benchmark: ``python -m tedsnet.bench`` prints and writes a CSV.

For each model (TEDS-Net, both U-Nets, VoxelMorph) and speed mode (:mod:`tedsnet.speed`) it measures, at
144 x 208 and batch 5 on the current device: the training step (forward + backward + Adam) and the inference
forward, as median latency and spread (interquartile range) over repeated steps after warm-up, images/s, and the
peak memory of a fresh process. It also times the per-case evaluation of 100 test cases (Betti numbers, Dice,
Hausdorff, Jacobians of both fields) and records the torch version, threads, device and processor flags.

Every (model, mode) runs in its own subprocess so that peak memory and allocator state are its own.
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

from tedsnet.speed import SPEED_MODES

MODELS = ("tedsnet", "unet", "unet_smp", "voxelmorph")
SHAPE = (144, 208)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _quartiles(times: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return float(q1), float(median), float(q3)


def measure_model(
    name: str, mode: str, *, batch: int, warmup: int, repeats: int, device: str, seed: int = 0
) -> dict:
    """Time one model in one speed mode in this process (call it in a fresh process for peak memory)."""
    from tedsnet.experiments import get_experiment
    from tedsnet.speed import apply_speed_mode
    from tedsnet.training import resolve_device

    dev = resolve_device(device)
    experiment = get_experiment(name)
    model = apply_speed_mode(experiment.build(seed=seed), mode).to(dev)
    prior = experiment.prior_tensor(SHAPE, device=dev)
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 1, *SHAPE, generator=gen).to(dev)
    target = (
        torch.as_tensor(np.broadcast_to(experiment.prior(SHAPE), (batch, 1, *SHAPE)).copy()).float().to(dev)
    )
    loss_fn = experiment.seg_loss_fn()
    from tedsnet.losses import grad_loss

    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step() -> None:
        out = model(image, prior)
        loss = loss_fn(out.segmentation, target)
        if experiment.beta:
            loss = loss + experiment.beta * sum(grad_loss(f) for f in out.displacements.values())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def infer_step() -> None:
        with torch.inference_mode():
            model(image, prior)

    rows = {}
    for phase, step, train_mode in (("train", train_step, True), ("infer", infer_step, False)):
        model.train(train_mode)
        for _ in range(warmup):
            step()
        _sync(dev)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            _sync(dev)
            times.append(time.perf_counter() - start)
        q1, median, q3 = _quartiles(times)
        rows[phase] = {"median_s": median, "q1_s": q1, "q3_s": q3, "images_per_s": batch / median}
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_cuda_mb = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else float("nan")
    return {
        "model": name,
        "mode": mode,
        "device": str(dev),
        "batch": batch,
        "repeats": repeats,
        **{f"{phase}_{key}": value for phase, values in rows.items() for key, value in values.items()},
        "peak_rss_mb": peak_rss_mb,
        "peak_cuda_mb": peak_cuda_mb,
    }


def measure_evaluation(n_cases: int = 100, repeats: int = 3, seed: int = 0) -> dict:
    """Seconds to compute every per-case metric of ``n_cases`` TEDS-Net-like predictions (two 288 x 416 fields)."""
    from tedsnet.evaluation import evaluate_case
    from tedsnet.priors import ring_prior

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


def environment() -> dict:
    """Torch version, threads, device and processor flags."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma", "f16c")
                    flags = " ".join(f for f in line.split(":", 1)[1].split() if f in wanted)
                    break
    except OSError:
        pass
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": flags,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }


def _child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    row = measure_model(
        args.model, args.mode, batch=args.batch, warmup=args.warmup, repeats=args.repeats, device=args.device
    )
    print("BENCH-ROW " + json.dumps(row))


def run(args: argparse.Namespace) -> pd.DataFrame:
    rows = []
    for name in args.models:
        for mode in args.modes:
            command = [
                sys.executable, "-m", "tedsnet.bench", "--child", "--model", name, "--mode", mode,
                "--batch", str(args.batch), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
                "--threads", str(args.threads), "--device", args.device,
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            line = [x for x in done.stdout.splitlines() if x.startswith("BENCH-ROW ")]
            if done.returncode != 0 or not line:
                raise RuntimeError(f"benchmark of {name}/{mode} failed:\n{done.stderr[-2000:]}")
            row = json.loads(line[-1][len("BENCH-ROW ") :])
            rows.append(row)
            print(
                f"{name:11s} {mode:5s} train {row['train_images_per_s']:7.1f} img/s "
                f"(median {row['train_median_s'] * 1e3:6.1f} ms, IQR {row['train_q1_s'] * 1e3:.1f}-"
                f"{row['train_q3_s'] * 1e3:.1f})  infer {row['infer_images_per_s']:7.1f} img/s "
                f"(median {row['infer_median_s'] * 1e3:6.1f} ms)  peak RSS {row['peak_rss_mb']:.0f} MB",
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
    env = environment()
    env["threads"] = args.threads
    print("environment: " + json.dumps(env))
    for key, value in {**env, "eval_100_cases_s": evaluation["seconds_median"]}.items():
        table[key] = value
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tedsnet.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--modes", nargs="+", default=list(SPEED_MODES), choices=SPEED_MODES)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--out", type=Path, default=None, help="CSV to write (default: print only)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    table = run(args)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        table.to_csv(tmp, index=False, float_format="%.6g")
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
