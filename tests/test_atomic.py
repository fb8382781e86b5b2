"""tedsnet.io.atomic_path: all or nothing, with the permissions of a plain write."""

import os

import pytest

from tedsnet.io import atomic_path


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
