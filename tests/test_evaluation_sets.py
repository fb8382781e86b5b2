"""The evaluation sets (every slice of the test scans; ACDC's testing/ patients), the split audit, the slice ledger
and the workflow's jobs for them.

The cohort has ACDC's layout with both training/ and testing/: with TEDSNET_ACDC_ROOT set, a few real training
patients, and others linked into testing/ under new ids (patient101, ...); without it, phantom patients, so the tests
always run.
"""

from __future__ import annotations

import doctest
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tedsnet.data.acdc import read_patient
from tedsnet.data.evaluation_sets import (
    EVALUATION_SETS,
    audit_splits,
    evaluation_set_names,
    prepare_evaluation_sets,
)
from tedsnet.data.ledger import LEDGER_COLUMNS, TOTAL_COLUMNS, ledger_totals, scan_ledger
from tedsnet.data.prepared import PrepareSettings, load_split, prepare_dataset
from tedsnet.data.slices import SLICE_CLASSES, extract_slices
from tedsnet.reporting.ledger import ledger_behaviour, ledger_markdown

ACDC_ENV = "TEDSNET_ACDC_ROOT"
CROP = (96, 128)
N_SLICES = 2
TRAINING = ["patient001", "patient002", "patient003", "patient004"]
SPLIT = ["train", "train", "val", "test"]
TESTING = {"patient101": "patient005", "patient102": "patient006"}  # new id -> the real patient linked


def _link_patient(source: Path, folder: Path) -> None:
    """``source`` as the patient ``folder.name``: every file linked under its name with the id replaced."""
    folder.mkdir(parents=True)
    for path in source.iterdir():
        (folder / path.name.replace(source.name, folder.name)).symlink_to(path)


def _phantom_cohort(root: Path) -> None:
    from tedsnet.data.phantom import generate_patient, write_patient, write_phantom_cohort

    write_phantom_cohort(root, n_patients=len(TRAINING), seed=0, keep_within=CROP, pixel_scale=2.0)
    for k, pid in enumerate(TESTING, start=1):
        frames, params = generate_patient(np.random.default_rng([1, k]), "NOR", CROP, pixel_scale=2.0)
        write_patient(root / "testing" / pid, frames, params)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Training and testing patients in the ACDC layout: real ones linked, or a phantom."""
    root = tmp_path_factory.mktemp("cohort")
    real = os.environ.get(ACDC_ENV)
    if real and (Path(real) / "training").is_dir():
        for pid in TRAINING:
            (root / "training").mkdir(exist_ok=True)
            (root / "training" / pid).symlink_to(Path(real) / "training" / pid)
        for new, old in TESTING.items():
            _link_patient(Path(real) / "training" / old, root / "testing" / new)
    else:
        _phantom_cohort(root)
    return root


@pytest.fixture(scope="module")
def prepared(cohort, tmp_path_factory):
    """The protocol's splits of the training patients, then the evaluation sets next to them."""
    out = tmp_path_factory.mktemp("data")
    split = pd.DataFrame(
        {
            "patient_id": TRAINING,
            "group": [read_patient(cohort / "training" / p).group for p in TRAINING],
            "split": SPLIT,
        }
    )
    settings = PrepareSettings(n_slices=N_SLICES, crop=CROP, n_augment=1)
    prepare_dataset(cohort, out, settings, splits=split, progress=False)
    return out, prepare_evaluation_sets(cohort, out, out / "splits.csv", crop=CROP, n_slices=N_SLICES)


def _patients(cohort: Path, subset: str, ids) -> list:
    return [read_patient(cohort / subset / pid) for pid in ids]


def test_sets_hold_every_slice_and_keep_the_protocol_s(cohort, prepared):
    out, result = prepared
    assert evaluation_set_names(cohort) == list(EVALUATION_SETS) and evaluation_set_names(None) == [
        "test_all"
    ]
    sets = {name: load_split(out / f"{name}.npz") for name in EVALUATION_SETS}
    scans = {
        "test_all": _patients(cohort, "training", [TRAINING[SPLIT.index("test")]]),
        "testing_all": _patients(cohort, "testing", TESTING),
    }
    for name, patients in scans.items():
        table = sets[name].table
        assert (
            len(table)
            == result.counts[name]
            == sum(p.frames[f].label.shape[2] for p in patients for f in ("ED", "ES"))
        )
        assert table["kept"].dtype == bool and set(table["slice_class"]) <= set(SLICE_CLASSES)
        assert (table["set"] == name).all() and (table["aug"] == 0).all()
        for patient in patients:
            mine = table[(table["patient_id"] == patient.id) & table["kept"]]
            assert list(zip(mine["phase"], mine["z"], strict=True)) == [
                (s.phase, s.z) for s in extract_slices(patient, n=N_SLICES, crop=CROP)
            ]
        empty = table["slice_class"].to_numpy() == "no_myocardium"
        assert not sets[name].labels[empty].any()
    assert set(sets["test_all"].table["patient_id"]) == set(load_split(out / "test.npz").table["patient_id"])
    testing = sets["testing"]
    assert len(testing.table) == 2 * N_SLICES * len(TESTING) and testing.table["kept"].all()
    assert set(testing.table["patient_id"]) == set(TESTING)
    kept = sets["testing_all"].table["kept"].to_numpy()
    np.testing.assert_array_equal(testing.images, sets["testing_all"].images[kept])
    protocol = [s for p in scans["testing_all"] for s in extract_slices(p, n=N_SLICES, crop=CROP)]
    np.testing.assert_array_equal(testing.images, np.stack([s.image for s in protocol]))
    assert result.short_scans == []


def test_ledger_counts_every_scan(prepared):
    out, result = prepared
    ledger = pd.read_csv(out / "ledger.csv")
    assert list(ledger.columns) == list(LEDGER_COLUMNS) and len(ledger) == 2 * (1 + len(TESTING))
    pd.testing.assert_frame_equal(ledger, result.ledger, check_dtype=False)
    assert (ledger[list(SLICE_CLASSES)].sum(axis=1) == ledger["n_slices"]).all()
    assert (ledger["kept"] == N_SLICES).all() and (ledger["ring"] >= N_SLICES).all()
    meta = json.loads((out / "evaluation_sets.json").read_text())
    totals = {row["set"]: row for row in meta["totals"]}
    assert meta["counts"] == result.counts and meta["sets"] == list(EVALUATION_SETS)
    for name in ("test_all", "testing_all"):
        assert totals[name]["n_slices"] == result.counts[name]
    assert (
        totals["test_all"]["kept"] == 2 * N_SLICES
        and totals["testing_all"]["kept"] == result.counts["testing"]
    )
    assert totals["testing_all"]["n_patients"] == len(TESTING) and totals["testing_all"][
        "n_scans"
    ] == 2 * len(TESTING)


def test_audit_refuses_a_patient_in_two_sets(cohort, prepared, tmp_path):
    out, _ = prepared
    split = pd.read_csv(out / "splits.csv")
    with pytest.raises(ValueError, match=r"patient001 \(train: split table; testing: testing/ folder\)"):
        audit_splits(split, testing_ids=["patient001", "patient101"])
    with pytest.raises(ValueError, match=r"patient001 \(train: split table; test: test.npz\)"):
        audit_splits(split, set_patients={"test": ["patient001"]})
    with pytest.raises(ValueError, match="unknown set 'holdout'"):
        audit_splits(split, set_patients={"holdout": ["patient001"]})
    audit_splits(
        split, testing_ids=list(TESTING), set_patients={"test_all": [TRAINING[3]], "testing": list(TESTING)}
    )

    # a training patient also in testing/: refused before any set is written
    root = tmp_path / "root"
    root.mkdir()
    (root / "training").symlink_to(cohort / "training")
    (root / "testing").mkdir()
    (root / "testing" / "patient002").symlink_to(cohort / "training" / "patient002")
    with pytest.raises(
        ValueError, match=r"patient002 \(train: split table and train.npz; testing: testing/ folder"
    ):
        prepare_evaluation_sets(root, tmp_path / "sets", split, crop=CROP, n_slices=N_SLICES,
                                protocol_files={"train": out / "train.npz"})  # fmt: skip
    assert not (tmp_path / "sets").exists()


def _slice_table() -> pd.DataFrame:
    classes = ["no_myocardium", "non_ring_basal", "ring", "ring", "ring", "non_ring_apical"]
    return pd.DataFrame(
        {
            "set": "test_all",
            "patient_id": ["patient001"] * 6 + ["patient002"] * 6,
            "group": "NOR",
            "phase": (["ED"] * 6 + ["ES"] * 6),
            "slice_class": classes * 2,
            "kept": [False, False, True, True, False, False] * 2,
        }
    )


def test_scan_ledger_known_answer():
    ledger = scan_ledger(_slice_table())
    assert ledger.scans[
        ["patient_id", "phase", "n_slices", "ring", "non_ring_basal", "no_myocardium", "kept"]
    ].values.tolist() == [
        ["patient001", "ED", 6, 3, 1, 1, 2],
        ["patient002", "ES", 6, 3, 1, 1, 2],
    ]
    assert list(ledger.totals.columns) == list(TOTAL_COLUMNS)
    assert ledger.totals.iloc[0][
        ["n_patients", "n_scans", "n_slices", "non_ring_apical", "kept"]
    ].tolist() == [2, 2, 12, 2, 4]
    pd.testing.assert_frame_equal(ledger_totals(ledger.scans), ledger.totals)
    with pytest.raises(ValueError, match=r"unknown slice_class value\(s\) \['apex'\]"):
        scan_ledger(_slice_table().replace({"slice_class": {"non_ring_apical": "apex"}}))
    with pytest.raises(ValueError, match=r"scan_ledger: missing column\(s\) \['kept'\]"):
        scan_ledger(_slice_table().drop(columns="kept"))


def _metrics() -> pd.DataFrame:
    """Two seeds of a TEDS-Net and a U-Net on three ring slices and two without myocardium."""
    rows = []
    for experiment, empty_pixels in (("tedsnet", (400, 200)), ("unet", (0, 30))):
        for seed in (0, 1):
            for k in range(3):
                rows.append((experiment, seed, "ring", k < 2, 0.8 + 0.05 * k, True, True, 500))
            for pixels in empty_pixels:
                rows.append(
                    (
                        experiment,
                        seed,
                        "no_myocardium",
                        False,
                        float(pixels == 0),
                        experiment == "tedsnet",
                        pixels == 0,
                        pixels,
                    )
                )
    columns = [
        "experiment",
        "seed",
        "slice_class",
        "kept",
        "dice",
        "correct_topology",
        "topology_matches_reference",
        "pred_pixels",
    ]
    return pd.DataFrame(rows, columns=columns)


def test_behaviour_known_answer_and_markdown():
    behaviour = ledger_behaviour(_metrics())
    assert behaviour[["experiment", "slice_class"]].values.tolist() == [
        ["tedsnet", "ring"],
        ["tedsnet", "no_myocardium"],
        ["unet", "ring"],
        ["unet", "no_myocardium"],
    ]
    ted = behaviour.set_index(["experiment", "slice_class"]).loc[("tedsnet", "no_myocardium")]
    assert (ted["n_seeds"], ted["n_slices"], ted["n_kept"]) == (2, 2, 0)
    assert (ted["predicts_any_pct"], ted["pred_pixels_mean"], ted["pred_pixels_median"]) == (
        100.0,
        300.0,
        300.0,
    )
    assert (ted["dice_mean"], ted["topology_matches_reference_pct"], ted["correct_topology_pct"]) == (
        0.0,
        0.0,
        100.0,
    )
    unet = behaviour.set_index(["experiment", "slice_class"]).loc[("unet", "no_myocardium")]
    assert (unet["predicts_any_pct"], unet["pred_pixels_median"], unet["topology_matches_reference_pct"]) == (
        50.0,
        15.0,
        50.0,
    )
    ring = behaviour.set_index(["experiment", "slice_class"]).loc[("unet", "ring")]
    assert (
        ring["n_kept"] == 2 and abs(ring["dice_mean"] - 0.85) < 1e-12 and np.isnan(ring["predicts_any_pct"])
    )
    with pytest.raises(ValueError, match=r"missing column\(s\) \['pred_pixels'\]"):
        ledger_behaviour(_metrics().drop(columns="pred_pixels"))
    with pytest.raises(ValueError, match="by must include 'slice_class'"):
        ledger_behaviour(_metrics(), by=("experiment",))

    text = ledger_markdown(scan_ledger(_slice_table()).scans, behaviour)
    assert text.startswith("## Slice ledger")
    assert (
        "A TEDS-Net always outputs a ring" in text
        and "On slices with no myocardium it therefore predicts one" in text
    )
    assert "TEDS-Net: a prediction on 100.0 % of 2 such slices, 300 pixels on average." in text
    assert "| test_all | 2 | 2 | 12 |" in text and "| TEDS-Net | no myocardium | 2 | 0.000 |" in text


def test_dry_run_has_set_jobs_for_acdc_s_testing_folder(tmp_path):
    """The smoke DAG on an ACDC root with testing/: predictions and metrics of every Table 1 row on test_all,
    testing and testing_all, each set's Table 1 and tests, and the ledger."""
    import yaml
    from test_workflow import copy_workflow, job_counts, snakemake

    (tmp_path / "work").mkdir()
    work = copy_workflow(tmp_path / "work")
    snakefile = work / "Snakefile"
    wired = (snakefile.read_text() + (work / "workflow" / "rules" / "common.smk").read_text()).count(
        "evaluation_set_outputs()"
    )
    if not wired:  # until final_outputs() adds them, the `all` target asks for the sets' files here
        snakefile.write_text(
            snakefile.read_text().replace(
                "        final_outputs(),", "        final_outputs() + evaluation_set_outputs(),"
            )
        )
    acdc = tmp_path / "acdc"
    for subset in ("training", "testing"):
        (acdc / subset).mkdir(parents=True)
    result = snakemake(
        work,
        "-n",
        "--cores",
        "2",
        "--configfile",
        "workflow/config/smoke.yaml",
        "--config",
        f"acdc_root={acdc}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    rows = yaml.safe_load((work / "workflow" / "config" / "smoke.yaml").read_text())["experiments"]
    assert counts["prepare_evaluation_sets"] == counts["ledger"] == 1
    assert counts["evaluate_set"] == 3 * len(rows) and counts["predict_set"] >= 3 * len(rows)
    assert counts["table1_set"] == counts["stats_set"] == 3
    out = "results/smoke-acdc"
    for eset in EVALUATION_SETS:
        assert f"{out}/data/{eset}.npz" in result.stdout
        for exp in rows:
            assert f"{out}/predictions/{exp}/seed0.{eset}.npz" in result.stdout
            assert f"{out}/{eset}/metrics/{exp}.csv" in result.stdout
    assert f"{out}/ledger_behaviour.csv" in result.stdout
    for eset in EVALUATION_SETS:  # each set's patient intervals reach the report
        assert re.search(rf"rule report:\n\s+input: .*{out}/{eset}/intervals\.csv", result.stdout), eset


def test_the_ledger_docstring_examples_hold():
    import tedsnet.data.ledger
    import tedsnet.reporting.ledger

    for module in (tedsnet.data.ledger, tedsnet.reporting.ledger):
        assert doctest.testmod(module).failed == 0, module.__name__
