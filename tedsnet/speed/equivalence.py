"""Do the speed modes change the results? Train, predict and evaluate the same runs in each mode, side by side.

``tedsnet-speed-equivalence --data results/default/data --out results/bench/speed_equivalence.csv`` (or
``python -m tedsnet.speed.equivalence``).

For every experiment, speed mode and seed it trains from scratch on a prepared dataset (the phantom's, by
default), predicts the test split in the same mode, and evaluates every test case as the workflow does. It writes
one row per run (mean Dice, HD, % non-positive Jacobians per field, incorrect topologies, training images/s) and
prints, per experiment, each mode's mean +- std over seeds beside the reference mode's, with the difference and
whether it lies within seed noise: ``|difference| <= 2 * sqrt(s_ref^2 / n_ref + s_mode^2 / n_mode)`` (two standard
errors of a difference of means; counts are compared the same way).

Runs are resumable: a finished run's checkpoint and predictions are reused.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tedsnet.network.outputs import THRESHOLD
from tedsnet.speed.modes import SPEED_MODES

#: Plain-text description for ``--help``.
DESCRIPTION = """\
Do the speed modes change the results? For every experiment, speed mode and
seed, train from scratch on a prepared dataset, predict the test split in the
same mode and evaluate every test case; then compare each mode's mean over
seeds with the reference mode's (the first of --modes) and say whether the
difference lies within two standard errors. Finished runs are reused.

Also available as: python -m tedsnet.speed.equivalence"""

#: Per-run columns compared between modes.
COMPARED = (
    "dice_mean",
    "hd_px_mean",
    "nonpos_jac_bulk_pct_mean",
    "nonpos_jac_ft_pct_mean",
    "incorrect_topology",
)


def run_one(
    experiment: str,
    mode: str,
    seed: int,
    data: Path,
    work: Path,
    *,
    epochs: int,
    lr: float,
    threads: int,
    threshold: float = THRESHOLD,
) -> dict:
    """Train (or resume), predict and evaluate one run; return its summary row.

    Parameters
    ----------
    experiment : str
        Registry name.
    mode : str
        Speed mode of training and prediction.
    seed : int
        Training seed.
    data : Path
        Prepared dataset folder holding ``train.npz``, ``val.npz`` and ``test.npz``.
    work : Path
        Folder of the run folders (``work/experiment/mode/seed<seed>``).
    epochs, lr, threads : int, float, int
        Training epochs, learning rate and torch CPU threads.
    threshold : float
        Binarisation threshold.

    Returns
    -------
    dict
        The run's row: the :data:`COMPARED` columns, training images/s, validation Dice and wall time.
    """
    from tedsnet.training.engine import train

    out = work / experiment / mode / f"seed{seed}"
    start = time.perf_counter()
    result = train(
        experiment,
        data / "train.npz",
        data / "val.npz",
        out,
        epochs=epochs,
        lr=lr,
        seed=seed,
        device="cpu",
        threshold=threshold,
        num_threads=threads,
        speed_mode=mode,
        progress=False,
        log=lambda message: None,
    )
    history = pd.read_csv(result.paths.history)
    trained = history[history["epoch"] > 0]
    train_rate = (
        float(trained["images_seen"].iloc[-1] / trained["seconds"].iloc[-1]) if len(trained) else math.nan
    )
    cases = _predict_and_evaluate(result.paths.best, experiment, mode, seed, data, threads, threshold)
    return {
        "experiment": experiment,
        "mode": mode,
        "seed": seed,
        "epochs": int(trained["epoch"].max()) if len(trained) else 0,
        "images_seen": int(trained["images_seen"].iloc[-1]) if len(trained) else 0,
        "train_images_per_s": train_rate,
        "val_dice": float(history["val_dice"].iloc[-1]),
        "dice_mean": float(cases["dice"].mean()),
        "hd_px_mean": float(cases["hd_px"].mean()),
        "nonpos_jac_bulk_pct_mean": float(cases["nonpos_jac_bulk_pct"].mean()),
        "nonpos_jac_ft_pct_mean": float(cases["nonpos_jac_ft_pct"].mean()),
        "incorrect_topology": int((~cases["correct_topology"].astype(bool)).sum()),
        "n_test": len(cases),
        "wall_s": time.perf_counter() - start,
    }


def _predict_and_evaluate(
    checkpoint: Path, experiment: str, mode: str, seed: int, data: Path, threads: int, threshold: float
) -> pd.DataFrame:
    """Per-case metrics of a checkpoint on ``data/test.npz``, predicted on the CPU in speed mode ``mode``."""
    import torch

    from tedsnet.data.prepared import load_split
    from tedsnet.evaluation.cases import evaluate_predictions
    from tedsnet.inference.predict import predict
    from tedsnet.speed.modes import apply_speed_mode
    from tedsnet.training.checkpoint import load_checkpoint

    model, exp = load_checkpoint(checkpoint, device="cpu")
    model = apply_speed_mode(model, mode)
    test = load_split(data / "test.npz")
    torch.set_num_threads(threads)
    predictions = predict(
        model,
        test.images,
        exp.prior(test.images.shape[1:]),
        device="cpu",
        threshold=threshold,
        case_id=list(test.table["case_id"]),
    )
    return evaluate_predictions(predictions, test, experiment, seed=seed)


def compare_modes(runs: pd.DataFrame, reference: str = "fp32") -> pd.DataFrame:
    """Per experiment, mode and metric: mean and std over seeds, the difference to ``reference``, and whether it
    is within two standard errors of a difference of means (``within_noise``; NaN metrics are skipped).

    Parameters
    ----------
    runs : DataFrame
        One row per run (experiment, mode, seed and the :data:`COMPARED` columns).
    reference : str
        The mode every other mode is compared with.

    Returns
    -------
    DataFrame
        One row per experiment, mode and metric: n_seeds, mean, std, reference_mean, difference, two_se,
        within_noise.
    """
    rows = []
    for (experiment, mode), group in runs.groupby(["experiment", "mode"], sort=False):
        ref = runs[(runs["experiment"] == experiment) & (runs["mode"] == reference)]
        for metric in COMPARED:
            values = group[metric].astype(float).dropna()
            ref_values = ref[metric].astype(float).dropna()
            if values.empty:
                continue
            mean, std = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan
            ref_mean = float(ref_values.mean()) if len(ref_values) else math.nan
            ref_std = float(ref_values.std(ddof=1)) if len(ref_values) > 1 else math.nan
            diff = mean - ref_mean
            noise = (
                2 * math.sqrt(ref_std**2 / len(ref_values) + std**2 / len(values))
                if len(ref_values)
                else math.nan
            )
            rows.append(
                {
                    "experiment": experiment,
                    "mode": mode,
                    "metric": metric,
                    "n_seeds": len(values),
                    "mean": mean,
                    "std": std,
                    "reference_mean": ref_mean,
                    "difference": diff,
                    "two_se": noise,
                    "within_noise": bool(abs(diff) <= noise) if np.isfinite(noise) else None,
                }
            )
    return pd.DataFrame(rows)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``tedsnet-speed-equivalence``."""
    parser = argparse.ArgumentParser(
        prog="tedsnet-speed-equivalence",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("results/default/data"),
        help="prepared dataset folder with train.npz, val.npz, test.npz (default results/default/data)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("results/bench/speed_equivalence"),
        help="folder of the run folders; finished runs there are reused (default results/bench/speed_equivalence)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/bench/speed_equivalence.csv"),
        help="per-run CSV to write; the comparison goes beside it as <name>_comparison.csv",
    )
    parser.add_argument(
        "--experiments",
        nargs="+",
        default=["tedsnet", "unet"],
        metavar="NAME",
        help="registry names of the experiments to run (default: tedsnet unet)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["fp32", "fast"],
        choices=SPEED_MODES,
        metavar="MODE",
        help=f"speed modes among {', '.join(SPEED_MODES)}; the first is the reference (default: fp32 fast)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0, 1, 2],
        metavar="SEED",
        help="training seeds (default: 0 1 2)",
    )
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per run (default 1)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``tedsnet-speed-equivalence``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("train.npz", "val.npz", "test.npz"):
        if not (args.data / name).exists():
            parser.error(
                f"{args.data / name} does not exist: prepare a dataset first (e.g. `snakemake --cores all "
                "results/default/data/test.npz`)."
            )
    rows = []
    for experiment in args.experiments:
        for seed in args.seeds:
            for mode in args.modes:
                row = run_one(
                    experiment,
                    mode,
                    seed,
                    args.data,
                    args.work,
                    epochs=args.epochs,
                    lr=args.lr,
                    threads=args.threads,
                )
                print(
                    f"{experiment} {mode} seed {seed}: Dice {row['dice_mean']:.4f}, incorrect topology "
                    f"{row['incorrect_topology']}/{row['n_test']}, {row['train_images_per_s']:.1f} train images/s",
                    flush=True,
                )
                rows.append(row)
    runs = pd.DataFrame(rows)
    comparison = compare_modes(runs, reference=args.modes[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from tedsnet.io import atomic_path

    with atomic_path(args.out) as tmp:
        runs.to_csv(tmp, index=False)
    with atomic_path(args.out.with_name(args.out.stem + "_comparison.csv")) as tmp:
        comparison.to_csv(tmp, index=False)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(comparison.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
