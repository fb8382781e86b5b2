"""Training engine: the loss goes down, logs and checkpoints, determinism, resume after a kill, NaN detection."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tedsnet.device import resolve_device
from tedsnet.experiments import Experiment, get_experiment
from tedsnet.network.outputs import SegmentationOutput
from tedsnet.network.priors import ring_prior
from tedsnet.training.checkpoint import (
    CHECKPOINT_FORMAT,
    ResumeMismatchError,
    read_train_config,
    rng_states,
    set_rng_states,
)
from tedsnet.training.engine import (
    HISTORY_COLUMNS,
    NonFiniteLossError,
    loss_terms,
    train,
    validate,
)

H, W = 32, 48
ROOT = Path(__file__).resolve().parents[1]


def rings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n noisy images of rings (32 x 48) with random centre, radius and thickness, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.stack(
        [
            ring_prior(
                (H, W),
                rng.uniform(8, 12),
                rng.uniform(2, 4),
                center=(15.5 + rng.uniform(-3, 3), 23.5 + rng.uniform(-3, 3)),
            )
            for _ in range(n)
        ]
    ).astype(np.uint8)
    images = (0.7 * labels + rng.normal(0, 0.1, labels.shape)).astype(np.float32)
    return images, labels


TRAIN, VAL = rings(10, 0), rings(4, 1)


def tiny(name: str, **overrides) -> Experiment:
    """A registry experiment at 32 x 48 (prior radius 10, thickness 3), with 4 features where the model has them."""
    if name in ("unet", "tedsnet", "prior") or name.startswith("A"):
        overrides.setdefault("features", 4)
    return get_experiment(name, prior_radius=10, prior_thickness=3, **overrides)


def run(experiment, out_dir, **kwargs):
    kwargs = {
        "epochs": 2,
        "lr": 1e-3,
        "seed": 0,
        "progress": False,
        "device": "cpu",
        "num_threads": 1,
        **kwargs,
    }
    return train(experiment, TRAIN, VAL, out_dir, **kwargs)


def history(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


@pytest.mark.parametrize("name", ["unet", "tedsnet"])
def test_a_few_epochs_lower_the_loss(tmp_path, name):
    result = run(tiny(name), tmp_path, epochs=4, lr=3e-3)
    rows = history(result.paths.history)
    losses = [float(r["seg_loss"]) for r in rows]
    assert losses[-1] < losses[0] - 0.01, losses
    assert result.epochs_run == 4 and result.stop_reason == "completed"


def test_history_and_checkpoints(tmp_path):
    result = run(tiny("tedsnet"), tmp_path, epochs=3)
    rows = history(result.paths.history)
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["step"]) for r in rows] == [2, 4, 6]  # 10 images, batch 5
    assert [int(r["images_seen"]) for r in rows] == [10, 20, 30]
    assert all(float(r["grad_bulk"]) > 0 and float(r["grad_ft"]) > 0 for r in rows)
    # loss = seg + beta * (grad_bulk + grad_ft), per epoch means
    r = rows[-1]
    total = float(r["seg_loss"]) + 1e4 * (float(r["grad_bulk"]) + float(r["grad_ft"]))
    assert float(r["loss"]) == pytest.approx(total, rel=1e-5)
    dices = [float(r["val_dice"]) for r in rows]
    assert result.best_epoch == int(np.argmax(dices)) + 1 and result.best_val_dice == pytest.approx(
        max(dices)
    )
    last, best = state(result.paths.last), state(result.paths.best)
    for checkpoint in (last, best):
        assert checkpoint["format"] == CHECKPOINT_FORMAT
        assert checkpoint["experiment"]["name"] == "tedsnet_radius10_thickness3_features4"
        assert checkpoint["experiment"]["overrides"] == {
            "prior_radius": 10,
            "prior_thickness": 3,
            "features": 4,
        }
        assert checkpoint["image_size"] == [H, W]
    assert last["epoch"] == 3 and last["step"] == 6 and last["optimizer_state"] is not None
    assert set(last["rng"]) >= {"torch", "numpy", "python"}
    assert best["epoch"] == result.best_epoch and best["optimizer_state"] is None
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_unet_history_has_no_field_terms(tmp_path):
    rows = history(run(tiny("unet"), tmp_path, epochs=1).paths.history)
    assert rows[0]["grad_bulk"] == "" and rows[0]["grad_ft"] == ""


def test_same_seed_is_bit_identical_and_another_seed_is_not(tmp_path):
    a = run(tiny("tedsnet"), tmp_path / "a", seed=5)
    b = run(tiny("tedsnet"), tmp_path / "b", seed=5)
    c = run(tiny("tedsnet"), tmp_path / "c", seed=6)
    assert_same_weights(state(a.paths.last)["model_state"], state(b.paths.last)["model_state"])
    assert history(a.paths.history)[-1]["loss"] == history(b.paths.history)[-1]["loss"]
    with pytest.raises(AssertionError):
        assert_same_weights(state(a.paths.last)["model_state"], state(c.paths.last)["model_state"])


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_training import run, tiny

    def kill(info):
        if info["epoch"] == 2 and info["batch"] == 1:  # mid-epoch 2, after epoch 1's checkpoint
            os.kill(os.getpid(), signal.SIGKILL)

    run(tiny("tedsnet"), {out!r}, epochs=3, callback=kill)
    """
)


def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(ROOT / "tests"), out=str(killed))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert state(killed / "last.pt")["epoch"] == 1
    assert len(history(killed / "history.csv")) == 1

    resumed = run(tiny("tedsnet"), killed, epochs=3)
    assert resumed.resumed_from == 1 and resumed.epochs_run == 3
    straight = run(tiny("tedsnet"), tmp_path / "straight", epochs=3)
    a, b = state(resumed.paths.last), state(straight.paths.last)
    assert_same_weights(a["model_state"], b["model_state"])
    assert_same_weights(state(resumed.paths.best)["model_state"], state(straight.paths.best)["model_state"])
    assert a["optimizer_state"]["state"].keys() == b["optimizer_state"]["state"].keys()
    for key, value in a["optimizer_state"]["state"].items():
        assert_same_weights(value, b["optimizer_state"]["state"][key])
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in history(resumed.paths.history)]
    assert strip == [
        {k: v for k, v in row.items() if k != "seconds"} for row in history(straight.paths.history)
    ]


def test_stopping_after_n_epochs_and_continuing_equals_one_run(tmp_path):
    run(tiny("unet"), tmp_path / "split", epochs=1)
    continued = run(tiny("unet"), tmp_path / "split", epochs=3)
    assert continued.resumed_from == 1
    straight = run(tiny("unet"), tmp_path / "straight", epochs=3)
    assert_same_weights(state(continued.paths.last)["model_state"], state(straight.paths.last)["model_state"])
    again = run(tiny("unet"), tmp_path / "straight", epochs=3)  # already done: nothing to train
    assert again.epochs_run == 3 and again.resumed_from == 3


def test_resume_refuses_another_configuration(tmp_path):
    run(tiny("unet"), tmp_path, epochs=1)
    with pytest.raises(
        ResumeMismatchError, match=r"belongs to another run.*lr \(stored 0\.001, now 0\.0005\)"
    ):
        run(tiny("unet"), tmp_path, epochs=2, lr=5e-4)
    with pytest.raises(ResumeMismatchError, match="belongs to another run") as info:
        run(tiny("tedsnet"), tmp_path, epochs=2)
    assert isinstance(info.value, ValueError)
    other_data = (TRAIN[0][::-1].copy(), TRAIN[1][::-1].copy())
    with pytest.raises(ResumeMismatchError, match="train_data"):
        train(tiny("unet"), other_data, VAL, tmp_path, epochs=2, lr=1e-3, progress=False, device="cpu")
    fresh = run(tiny("unet"), tmp_path, epochs=1, lr=5e-4, resume=False)
    assert fresh.resumed_from is None
    assert read_train_config(tmp_path / "last.pt")["lr"] == 5e-4
    assert read_train_config(tmp_path / "missing.pt") is None


def test_unreadable_last_checkpoint_says_to_delete_it(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="delete it") as info:
        run(tiny("unet"), tmp_path, epochs=1)
    assert not isinstance(info.value, ResumeMismatchError)


def test_rng_states_round_trip():
    state = rng_states()
    first = (torch.rand(3), np.random.rand(3))
    set_rng_states(state)
    again = (torch.rand(3), np.random.rand(3))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])


def test_a_log_file_gets_one_line_per_epoch_and_no_progress_frames(tmp_path, capsys):
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a tensor that requires grad converted to a float
        run(tiny("tedsnet"), tmp_path, epochs=2, progress=True, log=lines.append)
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest: no bar
    epochs = [line for line in lines if ": epoch " in line]
    assert [line.split(": epoch ")[1].split()[0] for line in epochs] == ["1/2", "2/2"]
    for line in epochs:
        for part in ("loss ", "seg ", "grad_bulk ", "grad_ft ", "val Dice ", " s (total "):
            assert part in line, line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run(tiny("unet"), tmp_path, epochs=1, progress=True, log=lambda line: None)
    assert "step" in terminal.getvalue()


class NanAfter(nn.Module):
    """A 1x1 conv + sigmoid whose output becomes NaN from its ``after``-th training call on."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.after, self.calls = after, 0

    def forward(self, image, prior):
        seg = torch.sigmoid(self.conv(image))
        if self.training:
            self.calls += 1
            if self.calls >= self.after:
                seg = seg * float("nan")
        return SegmentationOutput(seg, {})


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    experiment = Experiment(name="nan_model", label="NaN", factory=NanAfter, model_kwargs={"after": 4})
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss at epoch 2, step 4 \(batch 2 of 2\)"
    ) as info:
        run(experiment, tmp_path, epochs=3)
    assert isinstance(info.value, FloatingPointError)
    assert "last good checkpoint" in str(info.value)
    assert state(tmp_path / "last.pt")["epoch"] == 1
    assert (tmp_path / "best.pt").exists() and len(history(tmp_path / "history.csv")) == 1
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1.*no checkpoint was written yet"):
        run(
            Experiment(name="nan_now", label="NaN", factory=NanAfter, model_kwargs={"after": 1}),
            tmp_path / "b",
        )


def test_prior_experiment_gets_a_checkpoint_without_training(tmp_path):
    result = run(tiny("prior"), tmp_path, epochs=5)
    assert (result.stop_reason, result.epochs_run, result.best_epoch) == ("not_trained", 0, 0)
    rows = history(result.paths.history)
    assert len(rows) == 1 and rows[0]["epoch"] == "0"
    checkpoint = state(result.paths.best)
    heads = [v for k, v in checkpoint["model_state"].items() if k.startswith("heads")]
    assert heads and all(float(v.abs().max()) == 0 for v in heads)
    assert state(result.paths.last)["epoch"] == 0


def test_time_budget_and_patience_stop_early(tmp_path):
    budget = run(tiny("unet"), tmp_path / "budget", epochs=5, time_budget_s=1e-9)
    assert (budget.epochs_run, budget.stop_reason) == (1, "time_budget")
    # lr 1e-12 leaves the weights (and so the validation Dice) unchanged: no improvement after epoch 1.
    patient = run(tiny("unet"), tmp_path / "patience", epochs=6, lr=1e-12, patience=1)
    assert (patient.epochs_run, patient.stop_reason, patient.best_epoch) == (2, "early_stop", 1)


def test_loss_terms_known_answer():
    zero = torch.zeros(2, 2, 8, 12)
    seg = torch.full((2, 1, 8, 12), 0.5)
    target = torch.ones(2, 1, 8, 12)
    terms = loss_terms(
        SegmentationOutput(seg, {"bulk": zero, "ft": zero}), target, lambda p, t: (p - t).abs().mean(), 10.0
    )
    floor = 1 / 7**2 + 1 / 11**2  # identity only: 1/(H-1)^2 + 1/(W-1)^2 (tedsnet.network.losses.grad_loss)
    assert float(terms["grad_bulk"]) == pytest.approx(floor) and float(terms["grad_ft"]) == pytest.approx(
        floor
    )
    assert float(terms["loss"]) == pytest.approx(0.5 + 10.0 * 2 * floor)
    no_beta = loss_terms(
        SegmentationOutput(seg, {"ft": zero}), target, lambda p, t: (p - t).abs().mean(), 0.0
    )
    assert float(no_beta["loss"]) == pytest.approx(0.5) and not no_beta["grad_ft"].requires_grad


class Echo(nn.Module):
    def forward(self, image, prior):
        return SegmentationOutput(image, {})


def test_validate_is_mean_per_image_hard_dice():
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[:, 2:6, 2:6] = 1
    images = labels.astype(np.float32) * 0.3  # exactly at the threshold: counts as foreground (>=)
    images[1] = 0.0  # empty prediction: Dice 0
    images[2, 2:6, 2:4] = 0.0  # half: Dice 2*8/(8+16)
    kwargs = {"batch_size": 2, "device": torch.device("cpu"), "threshold": 0.3, "beta": 0.0}
    val_dice, _ = validate(
        Echo(), images, labels, torch.zeros(1, 1, 8, 8), seg_loss=lambda p, t: p.sum() * 0, **kwargs
    )
    assert val_dice == pytest.approx((1 + 0 + 16 / 24) / 3)


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu0")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": -1}, "epochs must be a non-negative integer"),
        ({"epochs": 0}, "nothing to train"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"seg_loss": "focal"}, "seg_loss must be one of"),
        ({"threshold": 1.5}, "threshold must be in"),
        ({"train_split": (TRAIN[0], TRAIN[1][:3])}, "train_split: images and labels must both be"),
        ({"train_split": (TRAIN[0], TRAIN[1] * 2)}, "labels must be binary"),
        ({"val_split": [1, 2]}, "val_split must be a prepared split"),
        ({"lr": float("inf")}, r"lr must be a finite number in \(0, 1\], got inf"),
        ({"lr": float("nan")}, r"lr must be a finite number in \(0, 1\], got nan"),
        ({"lr": 1e38}, r"lr must be a finite number in \(0, 1\], got 1e\+38: Adam moves every weight"),
        ({"lr": 1.5}, r"lr must be a finite number in \(0, 1\]"),
        ({"lr": 0.0}, r"lr must be a finite number in \(0, 1\]"),
        ({"lr": "fast"}, r"lr must be a finite number in \(0, 1\], got 'fast'"),
    ],
)
def test_bad_arguments_are_explained(tmp_path, kwargs, message):
    splits = {"train_split": kwargs.pop("train_split", TRAIN), "val_split": kwargs.pop("val_split", VAL)}
    args = {"epochs": 1, "progress": False, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        train(tiny("unet"), splits["train_split"], splits["val_split"], tmp_path, **args)


def test_train_reads_prepared_split_files(tmp_path):
    from tedsnet.data.prepared import REQUIRED_COLUMNS, save_split

    paths = {}
    for name, (images, labels) in {"train": TRAIN, "val": VAL}.items():
        n = len(images)
        table = pd.DataFrame(
            {
                "case_id": [f"{name}{i}" for i in range(n)],
                "patient_id": "patient001",
                "group": "NOR",
                "phase": "ED",
                "z": list(range(n)),
                "aug": 0,
                "spacing_row_mm": 1.5,
                "spacing_col_mm": 1.5,
                "clipped": False,
            }
        )
        assert set(REQUIRED_COLUMNS) <= set(table.columns)
        paths[name] = save_split(tmp_path / f"{name}.npz", images, labels, table)
    from_files = train(
        tiny("unet"), paths["train"], paths["val"], tmp_path / "files",
        epochs=1, lr=1e-3, seed=0, progress=False, device="cpu", num_threads=1,
    )  # fmt: skip
    from_arrays = run(tiny("unet"), tmp_path / "arrays", epochs=1)
    files, arrays = state(from_files.paths.last), state(from_arrays.paths.last)
    assert_same_weights(files["model_state"], arrays["model_state"])
    # The training split's pixel spacing is stored beside the configuration, not in the run's identity.
    assert files["pixel_spacing_mm"] == {"min": 1.5, "median": 1.5, "max": 1.5}
    assert state(from_files.paths.best)["pixel_spacing_mm"] == files["pixel_spacing_mm"]
    assert arrays["pixel_spacing_mm"] is None and files["config_hash"] == arrays["config_hash"]


SAVE_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    sys.path.insert(0, {tests!r})
    from test_training import run, tiny

    original = torch.save

    def save_then_die(checkpoint, path):
        if checkpoint["epoch"] == 2 and checkpoint["kind"] == "last":  # killed while writing epoch 2's last.pt
            with open(path, "wb") as handle:
                handle.write(b"partial")
            os.kill(os.getpid(), signal.SIGKILL)
        original(checkpoint, path)

    torch.save = save_then_die
    run(tiny("unet"), {out!r}, epochs=2)
    """
)


def test_a_kill_during_a_checkpoint_write_leaves_no_temporary_after_the_next_run(tmp_path):
    out = tmp_path / "model"
    script = SAVE_KILL_SCRIPT.format(tests=str(ROOT / "tests"), out=str(out))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    litter = sorted(p.name for p in out.glob(".last.*.tmp.pt"))
    assert len(litter) == 1 and state(out / "last.pt")["epoch"] == 1  # the final file stays valid
    (out / ".best.x.tmp.pt").write_bytes(b"not the suite's pattern")  # someone else's file: kept
    (out / "notes.tmp.pt").write_bytes(b"kept")
    lines: list[str] = []
    result = run(tiny("unet"), out, epochs=2, log=lines.append)
    assert result.resumed_from == 1 and result.epochs_run == 2
    assert not list(out.glob(".last.*.tmp.pt"))
    assert sorted(p.name for p in out.iterdir() if ".tmp" in p.name) == [".best.x.tmp.pt", "notes.tmp.pt"]
    assert any(f"removed 1 temporary file(s) a killed run left: {litter[0]}" in line for line in lines)


def test_training_time_is_the_total_over_all_sessions(tmp_path):
    first = run(tiny("unet"), tmp_path, epochs=1)
    stored = state(first.paths.last)["elapsed_s"]
    assert first.seconds == stored > 0
    lines: list[str] = []
    rebuilt = run(tiny("unet"), tmp_path, epochs=1, log=lines.append)  # nothing left to train
    assert rebuilt.resumed_from == 1 and rebuilt.seconds == stored
    assert any(f"after 1 epochs, {stored:.0f} s" in line for line in lines)
    more = run(tiny("unet"), tmp_path, epochs=2)
    rows = history(more.paths.history)
    assert more.seconds > stored and float(rows[0]["seconds"]) == round(stored, 3)
    assert (
        float(rows[-1]["seconds"]) == round(more.seconds, 3) == round(state(more.paths.last)["elapsed_s"], 3)
    )


def test_a_fine_tune_starts_from_the_named_checkpoint_and_records_it(tmp_path):
    base = train(tiny("unet"), TRAIN, VAL, tmp_path / "unet", epochs=1, progress=False, log=lambda m: None)
    tune = tiny("unet", init_from="unet")
    untouched = tune.build(seed=3).state_dict()
    result = train(
        tune, TRAIN, VAL, tmp_path / "tune", epochs=1, seed=3, lr=1e-9, progress=False, log=lambda m: None,
        init_checkpoint=base.paths.best,
    )  # fmt: skip
    start = torch.load(base.paths.best, weights_only=False)["model_state"]
    tuned = torch.load(result.paths.best, weights_only=False)["model_state"]
    # a step of lr 1e-9 from the U-Net's weights stays at them, not at the fresh initialisation of seed 3
    key = "head.weight"
    assert torch.allclose(tuned[key], start[key], atol=1e-6)
    assert not torch.allclose(tuned[key], untouched[key], atol=1e-3)
    assert len(read_train_config(result.paths.best)["init_weights"]) == 16
    assert "init_weights" not in read_train_config(base.paths.best)


def test_init_checkpoint_is_required_exactly_with_init_from(tmp_path):
    quiet = {"epochs": 1, "progress": False, "log": lambda m: None}
    with pytest.raises(ValueError, match="starts from the trained 'unet'; pass init_checkpoint"):
        train(tiny("unet", init_from="unet"), TRAIN, VAL, tmp_path / "a", **quiet)
    with pytest.raises(ValueError, match="drop init_checkpoint"):
        train(tiny("unet"), TRAIN, VAL, tmp_path / "b", init_checkpoint=tmp_path / "x.pt", **quiet)
    with pytest.raises(FileNotFoundError, match="train 'unet' first"):
        train(
            tiny("unet", init_from="unet"),
            TRAIN,
            VAL,
            tmp_path / "c",
            init_checkpoint=tmp_path / "x.pt",
            **quiet,
        )
    prior = train(
        tiny("tedsnet"),
        TRAIN,
        VAL,
        tmp_path / "ted",
        epochs=1,
        **{k: quiet[k] for k in ("progress", "log")},
    )
    with pytest.raises(ValueError, match="do not fit the model"):
        train(
            tiny("unet", init_from="unet"),
            TRAIN,
            VAL,
            tmp_path / "d",
            init_checkpoint=prior.paths.best,
            **quiet,
        )
