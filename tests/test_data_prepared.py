"""Prepared splits: save/load round trip, validation, and prepare_dataset end to end on a small phantom."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tedsnet.data.prepared import (
    REQUIRED_COLUMNS,
    PrepareSettings,
    load_split,
    load_split_table,
    prepare_dataset,
    save_split,
)
from tedsnet.data.splits import read_splits
from tedsnet.evaluation.metrics import has_ring_topology


def _table(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": [f"patient001_ED_z{i:02d}" for i in range(n)],
            "patient_id": ["patient001"] * n,
            "group": ["NOR"] * n,
            "phase": ["ED"] * n,
            "z": np.arange(n),
            "aug": np.zeros(n, dtype=int),
            "spacing_row_mm": np.full(n, 1.25),
            "spacing_col_mm": np.full(n, 1.5),
            "clipped": [False, True, False][:n],
            "note": ["a", "b", "c"][:n],
        }
    )


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((3, 8, 10)).astype(np.float32)
    labels = (rng.random((3, 8, 10)) > 0.5).astype(np.uint8)
    table = _table(3)
    path = save_split(tmp_path / "sub" / "train.npz", images, labels, table)
    assert path.is_file() and not list(path.parent.glob(".*tmp"))
    out = load_split(path)
    np.testing.assert_array_equal(out.images, images)
    np.testing.assert_array_equal(out.labels, labels)
    assert out.images.dtype == np.float32 and out.labels.dtype == np.uint8
    assert list(out.table.columns) == list(table.columns)
    assert out.table["z"].tolist() == [0, 1, 2] and out.table["clipped"].tolist() == [False, True, False]
    assert out.table["case_id"].tolist() == table["case_id"].tolist()
    assert out.table["spacing_row_mm"].tolist() == [1.25] * 3
    with np.load(path, allow_pickle=False) as data:  # plain arrays: no pickle needed
        assert "images" in data.files


def test_slice_class_and_kept_round_trip_and_the_table_alone(tmp_path):
    """The all-slices sets' columns come back with their types, and the table reads without the images."""
    table = _table(3).assign(
        slice_class=["no_myocardium", "ring", "non_ring_basal"], kept=[False, True, False]
    )
    images = np.zeros((3, 8, 10), np.float32)
    path = save_split(tmp_path / "test_all.npz", images, np.zeros((3, 8, 10), np.uint8), table)
    out = load_split(path).table
    assert out["slice_class"].tolist() == ["no_myocardium", "ring", "non_ring_basal"]
    assert out["kept"].dtype == bool and out["kept"].tolist() == [False, True, False]
    pd.testing.assert_frame_equal(load_split_table(path), out)
    with pytest.raises(FileNotFoundError, match="prepared split not found"):
        load_split_table(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", images=images)
    with pytest.raises(ValueError, match=r"not a prepared split \(missing arrays \['table_columns'\]\)"):
        load_split_table(tmp_path / "other.npz")


def test_save_errors(tmp_path):
    images = np.zeros((2, 4, 4), np.float32)
    labels = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"table has 3 rows for 2 images"):
        save_split(tmp_path / "x.npz", images, labels, _table(3))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['clipped'\]"):
        save_split(tmp_path / "x.npz", images, labels, _table(2).drop(columns="clipped"))
    with pytest.raises(ValueError, match="labels shape"):
        save_split(tmp_path / "x.npz", images, labels[:, :3], _table(2))
    with pytest.raises(ValueError, match="images must be float"):
        save_split(tmp_path / "x.npz", labels, labels, _table(2))
    dup = _table(2)
    dup["case_id"] = "same"
    with pytest.raises(ValueError, match="case_id must be unique"):
        save_split(tmp_path / "x.npz", images, labels, dup)
    assert not (tmp_path / "x.npz").exists()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepared split not found"):
        load_split(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a prepared split"):
        load_split(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read prepared split"):
        load_split(tmp_path / "junk.npz")


def test_prepare_dataset_on_phantom(phantom_root, tmp_path):
    settings = PrepareSettings(seed=0, n_slices=2, n_augment=3)
    out = prepare_dataset(
        phantom_root, tmp_path / "data", settings, montage_path=tmp_path / "montage.png", progress=False
    )
    splits = read_splits(tmp_path / "data" / "splits.csv")
    n_pat = splits["split"].value_counts().to_dict()
    assert n_pat == {"train": 3, "val": 1, "test": 1}  # 5 patients, one per group: pooled fallback
    # 2 slices x 2 phases per patient; train/val x3 augmented, test not
    assert out.counts == {"train": 3 * 4 * 3, "val": 1 * 4 * 3, "test": 1 * 4}
    parts = {name: load_split(tmp_path / "data" / f"{name}.npz") for name in ("train", "val", "test")}
    for name, part in parts.items():
        assert part.images.shape == (out.counts[name], 144, 208) and part.images.dtype == np.float32
        assert set(REQUIRED_COLUMNS) <= set(part.table.columns)
        assert (part.table["split"] == name).all()
        assert all(has_ring_topology(lb) for lb in part.labels)
        assert set(part.table["patient_id"]) == set(splits.loc[splits["split"] == name, "patient_id"])
    assert (parts["test"].table["aug"] == 0).all()
    assert sorted(parts["train"].table["aug"].unique()) == [0, 1, 2]
    ids = [set(p.table["patient_id"]) for p in parts.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])  # patient-disjoint
    provenance = pd.read_csv(tmp_path / "data" / "provenance.csv")
    assert len(provenance) == sum(out.counts.values())
    meta = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert meta["counts"] == out.counts and meta["n_augment"] == 3
    assert (tmp_path / "montage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # deterministic: a second run with the given split reproduces the arrays
    again = prepare_dataset(
        phantom_root, tmp_path / "again", settings, splits=tmp_path / "data" / "splits.csv", progress=False
    )
    assert again.counts == out.counts
    np.testing.assert_array_equal(load_split(tmp_path / "again" / "train.npz").images, parts["train"].images)


def test_prepare_rejects_foreign_split(phantom_root, tmp_path):
    foreign = pd.DataFrame({"patient_id": ["patient900"], "group": ["NOR"], "split": ["train"]})
    with pytest.raises(ValueError, match=r"split and cohort .* disagree: patients without a split"):
        prepare_dataset(phantom_root, tmp_path, splits=foreign, progress=False)


def test_settings_reject_an_unknown_split_to_augment():
    with pytest.raises(ValueError, match=r"augment_splits \['training'\] not among"):
        PrepareSettings(augment_splits=("train", "training"))
