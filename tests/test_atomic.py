"""tedsnet.io.atomic_path: all or nothing, with the permissions of a plain write."""

import os

import pytest

from tedsnet.io import atomic_path, stale_temporaries


def test_written_file_has_plain_permissions_and_no_temporary_left(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".csv"
        tmp.write_text("a\n1\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("x")
    assert target.read_text() == "a\n1\n"
    assert os.stat(target).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


def test_failure_leaves_neither_file(tmp_path):
    target = tmp_path / "out.npz"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_match_only_the_writers_own_names(tmp_path):
    target = tmp_path / "last.pt"
    assert stale_temporaries(target) == [] and stale_temporaries(tmp_path / "missing" / "last.pt") == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")  # what a writer killed here would leave
        assert stale_temporaries(target) == [tmp]
    assert stale_temporaries(target) == []
    others = [".last.abcd1234.tmp.csv", ".last.abc.tmp.pt", "last.abcd1234.tmp.pt", ".best.abcd1234.tmp.pt"]
    for name in others:
        (tmp_path / name).write_bytes(b"not a temporary of last.pt")
    (tmp_path / ".last.abcd_234.tmp.pt").write_bytes(b"")
    assert [p.name for p in stale_temporaries(target)] == [".last.abcd_234.tmp.pt"]


def test_nifti_temporaries_keep_the_whole_suffix(tmp_path):
    """nibabel compresses by the file name, so a .nii.gz temporary must end in .nii.gz."""
    target = tmp_path / "mask.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(".mask.") and tmp.name.endswith(".tmp.nii.gz")
        tmp.write_bytes(b"x")
        assert stale_temporaries(target) == [tmp]
    assert target.read_bytes() == b"x" and stale_temporaries(target) == []
