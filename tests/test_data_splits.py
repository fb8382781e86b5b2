"""Patient splits: disjoint, stratified (15/3/2 per group of 20), seeded, small-cohort fallback, the committed split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tedsnet.data.splits import allocate_counts, largest_remainder, read_splits, split_patients, write_splits

GROUPS = ("DCM", "HCM", "MINF", "NOR", "RV")
OFFICIAL = Path(__file__).resolve().parents[1] / "workflow" / "resources" / "acdc_split.csv"


def _table(sizes: dict[str, int]) -> pd.DataFrame:
    rows, i = [], 1
    for group, n in sizes.items():
        for _ in range(n):
            rows.append({"patient_id": f"patient{i:03d}", "group": group})
            i += 1
    return pd.DataFrame(rows)


def test_largest_remainder():
    assert largest_remainder(20, (0.75, 0.15, 0.10)) == [15, 3, 2]
    assert largest_remainder(100, (0.75, 0.15, 0.10)) == [75, 15, 10]
    assert largest_remainder(7, (0.75, 0.15, 0.10)) == [5, 1, 1]
    assert largest_remainder(3, (0.75, 0.15, 0.10)) == [2, 1, 0]


def test_acdc_sized_cohort_is_stratified_15_3_2():
    table = _table({g: 20 for g in GROUPS})
    split = split_patients(table, seed=0)
    counts = split.groupby(["group", "split"]).size().unstack()
    for g in GROUPS:
        assert (counts.loc[g, "train"], counts.loc[g, "val"], counts.loc[g, "test"]) == (15, 3, 2)
    assert len(split) == 100 and split["patient_id"].is_unique  # disjoint: one split per patient
    assert set(split["patient_id"]) == set(table["patient_id"])
    assert (split.set_index("patient_id")["group"] == table.set_index("patient_id")["group"]).all()


def test_seeded():
    table = _table({g: 20 for g in GROUPS})
    a, b, c = split_patients(table, seed=0), split_patients(table, seed=0), split_patients(table, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(c["split"])
    # row order of the input does not matter
    shuffled = table.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(split_patients(shuffled, seed=0), a)


def test_slice_level_rows_collapse_to_patients():
    table = _table({"NOR": 4, "RV": 4})
    per_slice = pd.concat([table] * 5, ignore_index=True)
    pd.testing.assert_frame_equal(split_patients(per_slice, seed=0), split_patients(table, seed=0))


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ({"A": 1, "B": 2, "C": 1}, (2, 1, 1)),  # every group below 3: pooled, each split gets one
        ({"A": 1, "B": 2}, (1, 1, 1)),  # the minimum cohort
        ({g: 3 for g in GROUPS}, (11, 2, 2)),  # strata sums (10/5/0) reconciled to the overall targets
        ({"A": 10, "B": 1}, (8, 2, 1)),  # a stratified group plus a pooled singleton
    ],
)
def test_small_cohort_fallback(sizes, expected):
    split = split_patients(_table(sizes), seed=0)
    got = tuple(int((split["split"] == s).sum()) for s in ("train", "val", "test"))
    assert got == expected
    assert split["patient_id"].is_unique


def test_fallback_pools_small_groups():
    counts = allocate_counts({"A": 20, "B": 2, "C": 1})
    assert counts["A"] == [15, 3, 2]
    assert "<pooled>" in counts and sum(counts["<pooled>"]) == 3 and "B" not in counts


def test_errors():
    with pytest.raises(ValueError, match="need at least 3 patients"):
        split_patients(_table({"A": 2}))
    with pytest.raises(ValueError, match="lacks column"):
        split_patients(pd.DataFrame({"patient_id": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match="must sum to 1"):
        split_patients(_table({"A": 5}), fractions=(0.5, 0.2, 0.2))
    bad = pd.DataFrame({"patient_id": ["p1", "p1", "p2", "p3"], "group": ["A", "B", "A", "A"]})
    with pytest.raises(ValueError, match="more than one group"):
        split_patients(bad)


def test_csv_round_trip_and_validation(tmp_path):
    split = split_patients(_table({"NOR": 5, "RV": 5}), seed=2)
    path = write_splits(split, tmp_path / "splits.csv")
    pd.testing.assert_frame_equal(read_splits(path), split.reset_index(drop=True))
    assert path.read_text().splitlines()[0] == "patient_id,group,split"
    (tmp_path / "bad.csv").write_text("patient_id,group,split\np1,A,train\np2,A,holdout\n")
    with pytest.raises(ValueError, match=r"unknown split name\(s\) \['holdout'\]"):
        read_splits(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="splits file not found"):
        read_splits(tmp_path / "none.csv")


def test_committed_acdc_split():
    split = read_splits(OFFICIAL)
    assert len(split) == 100
    assert list(split["patient_id"]) == [f"patient{i:03d}" for i in range(1, 101)]
    counts = split.groupby(["group", "split"]).size().unstack()
    assert (counts["train"] == 15).all() and (counts["val"] == 3).all() and (counts["test"] == 2).all()
    expected_group = {
        i: GROUPS[(i - 1) // 20] for i in range(1, 101)
    }  # ACDC numbering: 20 per group in order
    assert all(split["group"] == [expected_group[i] for i in range(1, 101)])
    # it is the seed-0 split of the ACDC table (patient IDs and groups only)
    pd.testing.assert_frame_equal(split_patients(split[["patient_id", "group"]], seed=0), split)


@pytest.mark.acdc
def test_committed_split_matches_real_acdc(acdc_root):
    from tedsnet.data.acdc import read_cohort_table

    table = read_cohort_table(acdc_root, subsets=("training",))
    pd.testing.assert_frame_equal(split_patients(table, seed=0), read_splits(OFFICIAL))
