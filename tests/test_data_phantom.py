"""Phantom cohort: deterministic bytes, exact ACDC layout read back by the reader, plausible per-group anatomy."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tedsnet.data.acdc import read_cohort, read_patient
from tedsnet.data.phantom import generate_patient, write_phantom_cohort
from tedsnet.data.phantom_anatomy import GROUPS, SLICE_KINDS, PhantomParams, assign_groups
from tedsnet.data.slices import ring_slice_indices, select_slices
from tedsnet.data.stats import cohort_stats, comparison_table, slice_stats
from tedsnet.network.priors import ring_prior


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_assign_groups():
    groups = assign_groups(100)
    assert [groups.count(g) for g in GROUPS] == [20] * 5
    assert groups[:20] == ["DCM"] * 20 and groups[-20:] == ["RV"] * 20  # ACDC numbering
    assert assign_groups(7) == ["DCM", "DCM", "HCM", "HCM", "MINF", "NOR", "RV"]
    with pytest.raises(ValueError, match="positive integer"):
        assign_groups(0)


def test_deterministic_bytes_and_seed_dependence(tmp_path):
    write_phantom_cohort(tmp_path / "a", n_patients=1, seed=3)
    write_phantom_cohort(tmp_path / "b", n_patients=1, seed=3)
    write_phantom_cohort(tmp_path / "c", n_patients=1, seed=4)
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db
    assert da != dc
    pa, pc = (
        read_patient(tmp_path / "a/training/patient001"),
        read_patient(tmp_path / "c/training/patient001"),
    )
    assert pa.frames["ED"].image.shape != pc.frames["ED"].image.shape or not np.array_equal(
        pa.frames["ED"].image, pc.frames["ED"].image
    )


def test_parallel_generation_is_identical(tmp_path):
    write_phantom_cohort(tmp_path / "serial", n_patients=2, seed=0)
    write_phantom_cohort(tmp_path / "parallel", n_patients=2, seed=0, workers=2)
    assert _digest(tmp_path / "serial") == _digest(tmp_path / "parallel")


def test_acdc_layout(phantom_root):
    patients = read_cohort(phantom_root)
    assert [p.id for p in patients] == [f"patient{i:03d}" for i in range(1, 6)]
    assert [p.group for p in patients] == list(GROUPS)
    for p in patients:
        names = sorted(f.name for f in p.path.iterdir())
        ed, es = p.frames["ED"].index, p.frames["ES"].index
        assert names == sorted(
            ["Info.cfg"] + [f"{p.id}_frame{i:02d}{s}.nii.gz" for i in (ed, es) for s in ("", "_gt")]
        )
        assert ed < es <= p.n_frames
        img = nib.load(p.frames["ED"].image_path)
        np.testing.assert_allclose(
            img.affine, np.diag([-1.0, -1.0, 1.0, 1.0])
        )  # spacing lives in the zooms only
        assert img.get_data_dtype() in (np.int16, np.float32)
        assert nib.load(p.frames["ED"].label_path).get_data_dtype() == np.uint8
        rows, cols, nz = p.frames["ED"].image.shape
        sp = p.frames["ED"].spacing
        assert 154 <= min(rows, cols) and max(rows, cols) <= 512 and 6 <= nz <= 18
        assert 0.7 <= sp[0] == sp[1] <= 1.95 and 5.0 <= sp[2] <= 10.0
        for phase in ("ED", "ES"):
            label = p.frames[phase].label
            assert set(np.unique(label)) == {0, 1, 2, 3}
            rings, _ = ring_slice_indices(label)
            assert len(rings) >= 6  # like every ACDC training scan


def test_existing_folder_and_bad_group(tmp_path):
    write_phantom_cohort(tmp_path, n_patients=1)
    with pytest.raises(FileExistsError, match="patient001: already exists"):
        write_phantom_cohort(tmp_path, n_patients=1)
    write_phantom_cohort(tmp_path, n_patients=1, overwrite=True, seed=1)
    with pytest.raises(ValueError, match="unknown group 'XYZ'"):
        write_phantom_cohort(tmp_path / "x", n_patients=2, groups=("NOR", "XYZ"))


def _mid_stats(frames, phase: str) -> dict[str, float]:
    frame = frames[phase]
    rings, z_range = ring_slice_indices(frame.label)
    z = select_slices(rings, z_range, 1)[0]
    return slice_stats(frame.image[:, :, z], frame.label[:, :, z], frame.zooms[:2])


@pytest.fixture(scope="module")
def group_stats() -> dict[str, list[dict[str, dict[str, float]]]]:
    out = {}
    for g in GROUPS:
        out[g] = []
        for i in range(2):
            frames, _ = generate_patient(np.random.default_rng([11, i]), g)
            out[g].append({ph: _mid_stats(frames, ph) for ph in ("ED", "ES")})
    return out


def _mean(stats, group, phase, key):
    return float(np.mean([s[phase][key] for s in stats[group]]))


def test_group_anatomy(group_stats):
    s = group_stats
    for g in GROUPS:  # ES: smaller cavity, thicker wall
        assert _mean(s, g, "ES", "r_endo_mm") < _mean(s, g, "ED", "r_endo_mm")
        assert _mean(s, g, "ES", "thick_mm") > _mean(s, g, "ED", "thick_mm")
    assert _mean(s, "HCM", "ED", "thick_mm") > 1.25 * _mean(s, "NOR", "ED", "thick_mm")  # thick wall
    assert _mean(s, "DCM", "ED", "r_endo_mm") > 1.2 * _mean(s, "NOR", "ED", "r_endo_mm")  # dilated
    dcm_ef = 1 - (_mean(s, "DCM", "ES", "r_endo_mm") / _mean(s, "DCM", "ED", "r_endo_mm")) ** 2
    nor_ef = 1 - (_mean(s, "NOR", "ES", "r_endo_mm") / _mean(s, "NOR", "ED", "r_endo_mm")) ** 2
    assert dcm_ef < 0.5 * nor_ef  # poor contraction
    minf = _mean(s, "MINF", "ED", "thick_min_mm") / _mean(s, "MINF", "ED", "thick_mm")
    nor = _mean(s, "NOR", "ED", "thick_min_mm") / _mean(s, "NOR", "ED", "thick_mm")
    assert minf < nor  # a thinned segment
    assert _mean(s, "RV", "ED", "rv_lv_area") > 1.3 * _mean(s, "NOR", "ED", "rv_lv_area")  # enlarged RV


def test_hard_where_cine_mri_is_hard(group_stats):
    for g in GROUPS:
        for st in group_stats[g]:
            ed = st["ED"]
            assert 0.2 < ed["contrast"] < 0.8  # low myocardium / blood contrast
            assert ed["dark_frac"] > 0.03  # papillary muscles / trabeculae inside the LV label
            assert 10 < ed["snr"] < 200  # noisy
            assert 0 < ed["rv_lv_area"]  # RV present on mid slices


def test_rv_touches_septum_and_papillary_are_cavity():
    frames, params = generate_patient(np.random.default_rng(0), "NOR")
    from scipy import ndimage

    label = frames["ED"].label
    rings, z_range = ring_slice_indices(label)
    z = select_slices(rings, z_range, 1)[0]
    sl = label[:, :, z]
    assert (ndimage.binary_dilation(sl == 1) & (sl == 2)).any()  # RV cavity directly beside the myocardium
    image = frames["ED"].image[:, :, z].astype(float)
    lv = image[sl == 3]
    # dark (myocardium-like) pixels inside the LV label: papillary muscles and trabeculae
    assert (lv < 0.5 * (np.median(lv) + np.median(image[sl == 2]))).mean() > 0.03


def test_stats_known_answer_and_table(phantom_root):
    label = np.zeros((80, 80), np.uint8)
    label[ring_prior((80, 80), 20, 5)] = 2
    label[ring_prior((80, 80), 15, 15)] = 3
    image = np.where(label == 2, 30.0, 100.0)
    st = slice_stats(image, label, (1.5, 1.5))
    assert st["r_epi_mm"] == pytest.approx(30.0, rel=0.03)
    assert st["thick_mm"] == pytest.approx(7.5, rel=0.1)
    assert st["thick_min_mm"] == pytest.approx(7.5, abs=1.6)
    assert st["contrast"] == pytest.approx(0.3)
    table = cohort_stats(patients=read_cohort(phantom_root)[:2])
    assert len(table) == 4 and {"r_epi_mm", "snr", "contrast"} <= set(table.columns)
    md = comparison_table({"a": table, "b": table})
    assert md.startswith("| statistic | a | b |") and "myocardium outer radius (mm)" in md


def test_pixel_scale_draws_the_same_patient_on_a_coarser_grid():
    fine, p1 = generate_patient(np.random.default_rng([0, 3]), "NOR", (144, 208))
    coarse, p15 = generate_patient(np.random.default_rng([0, 3]), "NOR", (96, 128), pixel_scale=1.5)
    assert p15.acquisition.spacing_mm == pytest.approx(1.5 * p1.acquisition.spacing_mm)
    for n1, n15 in zip(p1.acquisition.shape, p15.acquisition.shape, strict=True):
        assert abs(n15 - n1 / 1.5) <= 1 and n15 % 2 == 0
    assert p15.lv == p1.lv and p15.rv == p1.rv and p15.group == p1.group  # same anatomy in mm
    assert coarse["ED"].image.shape[2] == fine["ED"].image.shape[2]  # same slices
    # myocardial area in pixels shrinks by ~1.5^2 (the same heart at a 1.5x coarser pixel size)
    area_fine = (fine["ED"].label == 2).sum()
    area_coarse = (coarse["ED"].label == 2).sum()
    assert area_fine / area_coarse == pytest.approx(1.5**2, rel=0.15)
    with pytest.raises(ValueError, match="pixel_scale"):
        write_phantom_cohort("unused", n_patients=1, pixel_scale=0)


def test_params_are_typed_frozen_and_match_the_frames():
    frames, params = generate_patient(np.random.default_rng([0, 2]), "MINF", (96, 128), pixel_scale=2.0)
    assert isinstance(params, PhantomParams) and params.group == "MINF"
    assert (
        params.lv.infarct is not None and params.lv.septal == 0.0
    )  # MINF: a thinned segment, no septal excess
    assert (frames["ED"].index, frames["ES"].index) == (params.info.ed_frame, params.info.es_frame)
    assert frames["ED"].image.shape[2] == len(params.layout.kinds) and set(params.layout.kinds) <= set(
        SLICE_KINDS
    )
    assert frames["ED"].zooms[:2] == (params.acquisition.spacing_mm,) * 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.group = "NOR"
