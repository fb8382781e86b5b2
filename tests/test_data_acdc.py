"""ACDC reader: Info.cfg parsing, every bad-input case (message checked), a cohort, and (acdc) the real data with
the classes of its slices."""

from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tedsnet.data.acdc import list_patient_dirs, read_cohort, read_cohort_table, read_info, read_patient
from tedsnet.data.slices import apex_at_high_z, classify_slices, extract_slices
from tedsnet.network.priors import ring_prior

INFO = "ED: 1\nES: 3\nGroup: NOR\nHeight: 180.0\nNbFrame: 10\nWeight: 75.0\n"


def _save(array: np.ndarray, path: Path, zooms=(1.5, 1.5, 8.0)) -> None:
    img = nib.Nifti1Image(array, None)
    img.header.set_zooms(zooms)
    img.set_sform(np.diag([-1.0, -1.0, 1.0, 1.0]), code="aligned")
    nib.save(img, str(path))


def _label(shape=(24, 28, 5)) -> np.ndarray:
    """A ring of myocardium (2) around LV (3) on every slice, RV (1) beside it."""
    label = np.zeros(shape, dtype=np.uint8)
    ring = ring_prior(shape[:2], 8, 3)
    hole = ring_prior(shape[:2], 5, 5)
    for z in range(shape[2]):
        label[:, :, z][ring] = 2
        label[:, :, z][hole] = 3
        label[1:4, 10:18, z] = 1
    return label


def make_patient(root: Path, pid: str = "patient001", info: str = INFO, shape=(24, 28, 5)) -> Path:
    folder = root / "training" / pid
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(info)
    rng = np.random.default_rng(0)
    for idx in (1, 3):
        _save(rng.integers(0, 300, shape).astype(np.int16), folder / f"{pid}_frame{idx:02d}.nii.gz")
        _save(_label(shape), folder / f"{pid}_frame{idx:02d}_gt.nii.gz")
    return folder


# ----------------------------------------------------------------------------------------------- Info.cfg
@pytest.mark.parametrize(
    "text",
    [
        INFO,
        "ED: 1\nES: 3\nGroup: NOR\nHeight: 180\nNbFrame: 10\nWeight: 75\n",  # integers
        "  ED :   1  \n\nES:3\n  Group:   NOR\t\nHeight:180.0\r\nNbFrame: 10.0\nWeight: 75.0",  # whitespace, CRLF
        "# comment\ned: 1\nes: 3\ngroup: NOR\nheight: 180.0\nnbframe: 10\nweight: 75.0\nExtra: x\n",  # case, extra
    ],
)
def test_info_variants(tmp_path, text):
    path = tmp_path / "Info.cfg"
    path.write_text(text)
    info = read_info(path)
    assert (info.ed, info.es, info.group, info.n_frames) == (1, 3, "NOR", 10)
    assert info.height == 180.0 and isinstance(info.height, float)
    assert info.weight == 75.0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("ED: 1\nES: 3\nGroup: NOR\nHeight: 180\nNbFrame: 10\n", r"missing key\(s\) Weight"),
        ("ED: 1\nES: 3\nGroup: NOR\nHeight: tall\nNbFrame: 10\nWeight: 75\n", r"'Height' must be a number"),
        ("ED: 1.5\nES: 3\nGroup: NOR\nHeight: 1\nNbFrame: 10\nWeight: 75\n", r"'ED' must be an integer"),
        ("ED: 1\nES: 12\nGroup: NOR\nHeight: 1\nNbFrame: 10\nWeight: 75\n", r"ES = 12 is outside the frames"),
        ("ED: 1\nED: 2\nES: 3\nGroup: NOR\nHeight: 1\nNbFrame: 10\nWeight: 75\n", r"'ED' appears twice"),
        ("ED 1\n", r"line 1 .* is not 'key: value'"),
    ],
)
def test_info_errors(tmp_path, text, match):
    path = tmp_path / "Info.cfg"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        read_info(path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------------------------------------- patients
def test_read_patient(tmp_path):
    folder = make_patient(tmp_path)
    (folder / "patient001_4d.nii.gz").write_bytes(b"not needed, ignored")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    patient = read_patient(folder)
    assert (patient.id, patient.group, patient.height, patient.n_frames) == ("patient001", "NOR", 180.0, 10)
    assert set(patient.frames) == {"ED", "ES"}
    ed = patient.frames["ED"]
    assert ed.index == 1 and patient.frames["ES"].index == 3
    assert ed.image.dtype == np.float32 and ed.image.shape == (24, 28, 5)
    assert ed.label.dtype == np.uint8 and set(np.unique(ed.label)) == {0, 1, 2, 3}
    assert ed.spacing == (1.5, 1.5, 8.0)
    np.testing.assert_array_equal(ed.label, _label())
    assert not ed.image.flags.writeable
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before  # nothing written


def _break(folder: Path, case: str) -> tuple[type[Exception], str, str]:
    """Damage a patient folder; return (exception type, message regex, file named in the message)."""
    img, gt = folder / "patient001_frame03.nii.gz", folder / "patient001_frame03_gt.nii.gz"
    shape = (24, 28, 5)
    if case == "missing_info":
        (folder / "Info.cfg").unlink()
        return FileNotFoundError, "Info.cfg not found", "Info.cfg"
    if case == "missing_key":
        (folder / "Info.cfg").write_text(INFO.replace("Group: NOR\n", ""))
        return ValueError, r"missing key\(s\) Group", "Info.cfg"
    if case == "missing_frame":
        img.unlink()
        return FileNotFoundError, "ES image file not found", img.name
    if case == "missing_label":
        gt.unlink()
        return FileNotFoundError, "ES label file not found", gt.name
    if case == "truncated":
        data = img.read_bytes()
        img.write_bytes(data[: len(data) // 2])
        return ValueError, "cannot read the ES image as NIfTI .*truncated", img.name
    if case == "not_gzip":
        img.write_bytes(b"hello, I am plain text and not a NIfTI file at all" * 10)
        return ValueError, "cannot read the ES image as NIfTI", img.name
    if case == "gzip_not_nifti":
        img.write_bytes(gzip.compress(b"plain text inside gzip, not a NIfTI header" * 20))
        return ValueError, "cannot read the ES image as NIfTI", img.name
    if case == "shape_mismatch":
        _save(_label((24, 26, 5)), gt)
        return ValueError, r"label shape \(24, 26, 5\) does not match image shape \(24, 28, 5\)", gt.name
    if case == "bad_labels":
        label = _label(shape)
        label[0, 0, 0] = 7
        _save(label, gt)
        return ValueError, r"label values \[7\] outside \{0, 1, 2, 3\}", gt.name
    if case == "no_myocardium":
        label = _label(shape)
        label[label == 2] = 0
        _save(label, gt)
        return ValueError, r"no myocardium \(label 2\) in the ES label", gt.name
    if case == "2d":
        _save(np.zeros((24, 28), np.int16), img, zooms=(1.5, 1.5))
        return ValueError, "must be a 3-D volume", img.name
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "missing_info",
        "missing_key",
        "missing_frame",
        "missing_label",
        "truncated",
        "not_gzip",
        "gzip_not_nifti",
        "shape_mismatch",
        "bad_labels",
        "no_myocardium",
        "2d",
    ],
)
def test_bad_inputs(tmp_path, case):
    folder = make_patient(tmp_path)
    exc, match, name = _break(folder, case)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(exc, match=match) as err:
        read_patient(folder)
    assert name in str(err.value)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_missing_folder_and_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="patient folder not found"):
        read_patient(tmp_path / "patient999")
    with pytest.raises(FileNotFoundError, match="cohort root not found"):
        read_cohort(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no 'training/' folder"):
        read_cohort(tmp_path)


def test_cohort(tmp_path):
    make_patient(tmp_path, "patient002")
    make_patient(tmp_path, "patient001", INFO.replace("NOR", "DCM"))
    (tmp_path / "training" / "notes").mkdir()  # not a patient folder: ignored
    test_folder = make_patient(tmp_path / "x", "patient101")
    (tmp_path / "testing").mkdir()
    test_folder.rename(tmp_path / "testing" / "patient101")
    patients = read_cohort(tmp_path)
    assert [p.id for p in patients] == ["patient001", "patient002", "patient101"]
    table = read_cohort_table(tmp_path)
    assert table.to_dict("list") == {
        "patient_id": ["patient001", "patient002", "patient101"],
        "group": ["DCM", "NOR", "NOR"],
        "subset": ["training", "training", "testing"],
    }
    assert [p.name for p in list_patient_dirs(tmp_path, subsets=("training",))] == [
        "patient001",
        "patient002",
    ]


def test_cohort_error_names_patient(tmp_path):
    make_patient(tmp_path, "patient001")
    bad = make_patient(tmp_path, "patient002")
    (bad / "patient002_frame01_gt.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="patient002_frame01_gt.nii.gz"):
        read_cohort(tmp_path)


# ---------------------------------------------------------------------------------------------- real ACDC
@pytest.mark.acdc
def test_real_acdc_reads_and_gives_1000_ring_slices(acdc_root):
    before = {p: p.stat().st_mtime_ns for p in (acdc_root / "training").glob("patient*/*")}
    patients = read_cohort(acdc_root, subsets=("training",))
    assert len(patients) == 100
    assert sorted({p.group for p in patients}) == ["DCM", "HCM", "MINF", "NOR", "RV"]
    slices = [s for p in patients for s in extract_slices(p, n=5, crop=(144, 208))]
    assert len(slices) == 1000
    assert all(s.image.shape == (144, 208) and s.myocardium.shape == (144, 208) for s in slices)
    assert (
        sum(s.clipped for s in slices) == 0
    )  # the protocol crop clips no selected myocardium on ACDC training
    assert {(s.patient_id, s.phase) for s in slices} == {(p.id, ph) for p in patients for ph in ("ED", "ES")}
    # ACDC stores every scan base first, and the class counts pin the classification of its training slices.
    frames = [p.frames[ph] for p in patients for ph in ("ED", "ES")]
    assert all(apex_at_high_z(f.label) for f in frames)
    classes = Counter(c for f in frames for c in classify_slices(f.label))
    assert classes == {
        "ring": 1782,
        "non_ring_basal": 21,
        "non_ring_apical": 21,
        "non_ring_broken": 4,
        "no_myocardium": 74,
    }
    assert {p: p.stat().st_mtime_ns for p in (acdc_root / "training").glob("patient*/*")} == before
    assert not any(name.endswith(".tmp") for name in os.listdir(acdc_root / "training"))
