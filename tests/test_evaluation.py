"""Per-case evaluation (tedsnet.evaluation.cases): known answers, NaN handling, table assembly and speed."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tedsnet.evaluation import metrics, topology
from tedsnet.evaluation.cases import (
    ID_COLUMNS,
    METRIC_COLUMNS,
    SPLIT_COLUMNS,
    CaseMetrics,
    evaluate_case,
    evaluate_predictions,
    prediction_fields,
)
from tedsnet.network.priors import ring_prior

SHAPE = (144, 208)


def ring(radius=30, thickness=7, center=None):
    return ring_prior(SHAPE, radius, thickness, center=center).astype(np.uint8)


def test_identical_ring_known_answers():
    ref = ring()
    row = evaluate_case(ref, ref, (1.5, 1.5))
    assert isinstance(row, CaseMetrics)
    assert row.dice == 1.0
    assert row.hd_px == 0.0 and row.hd95_px == 0.0 and row.hd_mm == 0.0 and row.hd95_mm == 0.0
    assert (row.b0, row.b1) == (1, 1) and row.correct_topology
    assert row.status == "ok"
    # no fields: every Jacobian column is N/A (NaN)
    for name in ("bulk", "ft"):
        assert math.isnan(getattr(row, f"nonpos_jac_{name}_pct"))
        assert math.isnan(getattr(row, f"nonpos_jac_{name}_central_pct"))


def test_old_columns_come_first_in_their_order():
    assert METRIC_COLUMNS[:13] == (
        "dice", "hd_px", "hd95_px", "hd_mm", "hd95_mm", "nonpos_jac_bulk_pct", "nonpos_jac_ft_pct",
        "nonpos_jac_bulk_central_pct", "nonpos_jac_ft_central_pct", "b0", "b1", "correct_topology", "status",
    )  # fmt: skip
    assert METRIC_COLUMNS[13:] == (
        "assd_px", "assd_mm", "pred_pixels", "ref_pixels", "ref_b0", "ref_b1", "betti_error", "euler_error",
        "betti_matching_error", "topology_error", "topology_matches_reference",
    )  # fmt: skip
    committed = sorted((Path(__file__).resolve().parents[1] / "results").glob("*/metrics/*.csv"))
    for path in committed:  # the result tables evaluated before the new columns existed
        header = pd.read_csv(path, nrows=0).columns.tolist()
        assert header[: len(ID_COLUMNS) + 1 + 13] == [*ID_COLUMNS, "seed", *METRIC_COLUMNS[:13]], path.name


def test_identical_ring_new_columns():
    ref = ring()
    row = evaluate_case(ref, ref, (1.5, 1.5))
    assert row.assd_px == 0.0 and row.assd_mm == 0.0
    assert row.pred_pixels == row.ref_pixels == int(ref.sum()) > 0
    assert (row.ref_b0, row.ref_b1) == (1, 1)
    assert row.betti_error == row.euler_error == row.betti_matching_error == 0
    assert row.topology_error == "" and row.topology_matches_reference


def test_shifted_ring_distances_in_px_and_mm():
    ref = ring()
    pred = np.roll(ref, 3, axis=1)  # 3 px along columns
    row = evaluate_case(pred, ref, (2.0, 0.5))
    assert row.hd_px == pytest.approx(3.0)
    assert row.hd_mm == pytest.approx(1.5)  # 3 columns x 0.5 mm
    assert row.hd95_px <= row.hd_px
    assert row.dice == pytest.approx(metrics.dice(pred, ref))
    assert row.assd_px == pytest.approx(metrics.average_surface_distance(pred, ref)) and 0 < row.assd_px < 3
    assert row.assd_mm == pytest.approx(metrics.average_surface_distance(pred, ref, spacing=(2.0, 0.5)))


def test_crop_gives_the_same_distances_as_the_full_slice():
    rng = np.random.default_rng(0)
    ref = ring(28, 6, center=(70, 100))
    pred = ring(31, 8, center=(74, 98))
    pred[rng.random(SHAPE) < 0.02] = 1  # speckle far from the ring
    pred[0, 0] = 1  # touches the array border
    row = evaluate_case(pred, ref, (1.3, 0.7))
    assert row.hd_px == pytest.approx(metrics.hausdorff(pred, ref))
    assert row.hd95_px == pytest.approx(metrics.hausdorff(pred, ref, percentile=95))
    assert row.hd_mm == pytest.approx(metrics.hausdorff(pred, ref, spacing=(1.3, 0.7)))
    assert row.hd95_mm == pytest.approx(metrics.hausdorff(pred, ref, spacing=(1.3, 0.7), percentile=95))
    assert row.assd_px == pytest.approx(metrics.average_surface_distance(pred, ref))
    assert row.assd_mm == pytest.approx(metrics.average_surface_distance(pred, ref, spacing=(1.3, 0.7)))
    # the topology columns do not depend on the crop either
    assert (row.b0, row.b1) == metrics.betti_numbers(pred)
    assert row.betti_matching_error == topology.betti_matching_error(pred, ref)
    assert row.euler_error == topology.euler_error(pred, ref)


def test_empty_prediction_gives_nan_and_status_never_raises():
    row = evaluate_case(np.zeros(SHAPE, np.uint8), ring(), (1.0, 1.0))
    assert row.status == "empty_prediction"
    assert row.dice == 0.0
    assert all(
        math.isnan(v) for v in (row.hd_px, row.hd95_px, row.hd_mm, row.hd95_mm, row.assd_px, row.assd_mm)
    )
    assert (row.b0, row.b1) == (0, 0) and not row.correct_topology
    assert row.topology_error == "empty" and row.pred_pixels == 0
    assert row.betti_error == 2 and row.betti_matching_error == 2 and row.euler_error == 0


def test_empty_reference_and_empty_both_never_raise():
    row = evaluate_case(ring(), np.zeros(SHAPE, np.uint8), (1.0, 1.0))
    assert row.status == "empty_reference" and math.isnan(row.assd_px) and math.isnan(row.hd_mm)
    assert (row.ref_b0, row.ref_b1, row.ref_pixels) == (0, 0, 0)
    assert row.betti_error == 2 and row.betti_matching_error == 2 and not row.topology_matches_reference
    assert (
        row.correct_topology and row.topology_error == ""
    )  # judged against one ring, as correct_topology is
    both = evaluate_case(np.zeros(SHAPE), np.zeros(SHAPE), (1.0, 1.0))
    assert both.status == "empty_both" and both.dice == 1.0 and math.isnan(both.assd_mm)
    assert both.betti_error == both.euler_error == both.betti_matching_error == 0
    assert both.topology_matches_reference and both.topology_error == "empty"


def test_topology_error_kinds_and_reference_match():
    ref = ring()
    filled = ring(30, 30)  # a disc: the cavity filled in
    gap = ring()
    gap[60:80, 100:] = 0  # one cut through the right side: the cavity open
    island = ring()
    island[5:8, 5:8] = 1
    moved = ring(center=(71.5, 103.5 + 66))  # clear of the reference: right Betti numbers, wrong place
    masks = {"filled": filled, "gap": gap, "island": island, "moved": moved}
    rows = {name: evaluate_case(mask, ref, (1, 1)) for name, mask in masks.items()}
    assert rows["filled"].topology_error == "missing_hole" and rows["filled"].betti_error == 1
    assert rows["gap"].topology_error == "broken_ring" and rows["gap"].betti_matching_error == 1
    assert rows["island"].topology_error == "extra_components" and rows["island"].betti_matching_error == 1
    assert not any(r.topology_matches_reference for k, r in rows.items() if k != "moved")
    assert rows["moved"].topology_matches_reference and rows["moved"].topology_error == ""
    assert rows["moved"].betti_error == 0 and rows["moved"].betti_matching_error == 4


def test_broken_ring_and_two_components_topology():
    broken = ring()
    broken[:, 100:108] = 0  # cut the ring on both sides: two arcs, no hole
    row = evaluate_case(broken, ring(), (1.0, 1.0))
    assert (row.b0, row.b1) == (2, 0) and not row.correct_topology
    assert row.topology_error == "extra_components+broken_ring"
    disc = ring(30, 30)
    assert evaluate_case(disc, ring(), (1, 1)).b1 == 0


def test_jacobian_columns_forward_and_central():
    zero = np.zeros((2, 288, 416), np.float32)
    fold = np.zeros((2, 20, 20))
    fold[0, 10:, :] = -3.0  # rows 10.. jump back 3 px: forward difference -3 -> det -2 on one row
    row = evaluate_case(ring(), ring(), (1, 1), {"bulk": zero, "ft": fold})
    assert row.nonpos_jac_bulk_pct == 0.0 and row.nonpos_jac_bulk_central_pct == 0.0
    assert row.nonpos_jac_ft_pct == pytest.approx(metrics.nonpositive_jacobian_percent(fold))
    assert row.nonpos_jac_ft_pct == pytest.approx(100 * 19 / (19 * 19))
    assert row.nonpos_jac_ft_central_pct == pytest.approx(
        metrics.nonpositive_jacobian_percent(fold, central=True)
    )
    only_ft = evaluate_case(ring(), ring(), (1, 1), {"ft": zero, "bulk": None})
    assert math.isnan(only_ft.nonpos_jac_bulk_pct) and only_ft.nonpos_jac_ft_pct == 0.0


def test_nonfinite_field_is_nan_with_status():
    bad = np.zeros((2, 10, 10))
    bad[0, 3, 3] = np.nan
    row = evaluate_case(ring(), ring(), (1, 1), {"ft": bad})
    assert math.isnan(row.nonpos_jac_ft_pct) and row.status == "nonfinite_field"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pred_binary": np.zeros((3, 4, 4))}, "pred_binary must be a 2-D mask"),
        ({"pred_binary": np.full(SHAPE, 0.4)}, "pred_binary must be binary"),
        ({"ref": np.zeros((10, 10))}, "same shape"),
        ({"spacing": (1.0,)}, "spacing must be two positive"),
        ({"spacing": (1.0, -1.0)}, "spacing must be two positive"),
        ({"fields": {"fine": np.zeros((2, 5, 5))}}, "unknown field name"),
        ({"fields": {"ft": np.zeros((3, 5, 5))}}, r"fields\['ft'\] must be a displacement"),
    ],
)
def test_bad_input_messages(kwargs, match):
    args = {"pred_binary": ring(), "ref": ring(), "spacing": (1.0, 1.0), "fields": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        evaluate_case(**args)


def make_split(n=10):
    rng = np.random.default_rng(1)
    labels = np.stack([ring(26 + rng.integers(0, 8), 7) for _ in range(n)])
    table = pd.DataFrame(
        {
            "case_id": [f"p{i // 2:03d}_{'ED' if i % 2 == 0 else 'ES'}_z{i:02d}" for i in range(n)],
            "patient_id": [f"p{i // 2:03d}" for i in range(n)],
            "group": "NOR",
            "phase": ["ED" if i % 2 == 0 else "ES" for i in range(n)],
            "z": np.arange(n),
            "aug": 0,
            "spacing_row_mm": 1.25,
            "spacing_col_mm": 1.25,
        }
    )
    return SimpleNamespace(images=labels.astype(np.float32), labels=labels, table=table)


def test_evaluate_predictions_table_order_and_values():
    split = make_split()
    order = np.arange(10)[::-1]  # predictions in another order than the table
    binary = split.labels[order].copy()
    binary[0] = 0  # the last test case (order[0] == 9) is empty
    preds = SimpleNamespace(
        case_id=np.asarray(split.table["case_id"])[order],
        binary=binary,
        soft=binary.astype(np.float32),
        disp_ft=np.zeros((10, 2, 288, 416), np.float32),
        disp_bulk=None,
    )
    df = evaluate_predictions(preds, split, "tedsnet", seed=3)
    assert list(df.columns) == [*ID_COLUMNS, "seed", *METRIC_COLUMNS, *SPLIT_COLUMNS]
    assert df["slice_class"].eq("ring").all() and df["kept"].eq(True).all()  # a protocol split: ring slices
    assert df["case_id"].tolist() == split.table["case_id"].tolist()
    assert (df["experiment"] == "tedsnet").all() and (df["seed"] == 3).all()
    assert df["dice"].iloc[:9].eq(1.0).all()
    assert df["status"].iloc[9] == "empty_prediction" and math.isnan(df["hd_px"].iloc[9])
    assert df["nonpos_jac_ft_pct"].eq(0.0).all() and df["nonpos_jac_bulk_pct"].isna().all()
    assert df["correct_topology"].sum() == 9


def test_evaluate_predictions_copies_slice_class_and_kept():
    split = make_split(4)
    split.labels[3] = 0  # a slice without myocardium
    split.table["slice_class"] = ["ring", "non_ring_basal", "ring", "no_myocardium"]
    split.table["kept"] = ["True", "False", "True", "False"]  # as a CSV-backed table may hold them
    preds = SimpleNamespace(case_id=split.table["case_id"].to_numpy(), binary=make_split(4).labels)
    df = evaluate_predictions(preds, split, "x")
    assert df["slice_class"].tolist() == ["ring", "non_ring_basal", "ring", "no_myocardium"]
    assert df["kept"].tolist() == [True, False, True, False] and df["kept"].dtype == bool
    last = df.iloc[3]
    assert last["status"] == "empty_reference" and math.isnan(last["assd_mm"]) and math.isnan(last["hd_mm"])
    assert (last["ref_b0"], last["ref_b1"], last["betti_error"], last["betti_matching_error"]) == (0, 0, 2, 2)
    assert not last["topology_matches_reference"] and last["topology_error"] == ""
    split.table["kept"] = ["yes", "no", "yes", "no"]
    with pytest.raises(ValueError, match="column 'kept' must hold True/False"):
        evaluate_predictions(preds, split, "x")


def test_evaluate_predictions_threshold_rebinarises_soft():
    split = make_split(4)
    soft = split.labels.astype(np.float32) * 0.4
    preds = SimpleNamespace(
        case_id=split.table["case_id"].to_numpy(), binary=np.zeros_like(split.labels), soft=soft
    )
    assert evaluate_predictions(preds, split, "x", threshold=0.3)["dice"].eq(1.0).all()
    assert evaluate_predictions(preds, split, "x")["status"].eq("empty_prediction").all()


def test_evaluate_predictions_mismatch_messages():
    split = make_split(4)
    ids = split.table["case_id"].to_numpy()
    preds = SimpleNamespace(case_id=ids[:3], binary=split.labels[:3])
    with pytest.raises(ValueError, match="1 test case\\(s\\) without a prediction"):
        evaluate_predictions(preds, split, "x")
    preds = SimpleNamespace(case_id=np.array([ids[0]] * 4), binary=split.labels)
    with pytest.raises(ValueError, match="predictions: case ids must be unique"):
        evaluate_predictions(preds, split, "x")
    preds = SimpleNamespace(case_id=ids, binary=split.labels[:, :10])
    with pytest.raises(ValueError, match="predictions.binary must be"):
        evaluate_predictions(preds, split, "x")


def test_prediction_fields_accepts_mapping_and_attributes():
    preds = SimpleNamespace(displacements={"bulk": np.zeros((1, 2, 3, 3))}, disp_ft=np.ones((1, 2, 3, 3)))
    fields = prediction_fields(preds)
    assert set(fields) == {"bulk", "ft"}
    with pytest.raises(ValueError, match="unknown field name"):
        prediction_fields(SimpleNamespace(displacements={"x": np.zeros(1)}))
