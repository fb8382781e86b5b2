"""Per-case evaluation of test predictions: one row per test slice (the rows Table 1 summarises).

Every row holds Dice, the Hausdorff distance (maximum, medpy's ``hd``) and HD95 in pixels and in mm, the percentage
of non-positive Jacobian determinants of each field that samples (forward differences, the primary measure, and
central differences as voxelmorph computes them), the Betti numbers (b0, b1) of the binary prediction (4-connected
foreground, 8-connected background) and whether they are one ring's (1, 1). Then, appended after those so that the
earlier columns keep their names, order and values: the ASSD in pixels and mm, the foreground sizes, the
reference's Betti numbers, the Betti, Euler and Betti matching errors against the reference
(:mod:`tedsnet.evaluation.topology`), the kinds of a wrong topology and whether the prediction's Betti numbers are
the reference's. The slice class and whether the protocol keeps the slice come from the test split when it says.

Nothing here raises in the middle of a table: an empty mask gives NaN distances and a ``status`` other than
``"ok"``; a model without a field gives NaN (N/A) in that field's columns; a non-finite field gives NaN and status
``"nonfinite_field"``. Bad *input* (shapes, non-binary masks, unknown field names, missing cases) is rejected up
front with a ValueError that names the argument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tedsnet.data.slices import SLICE_CLASSES
from tedsnet.evaluation import metrics, topology
from tedsnet.network.outputs import FIELD_NAMES

__all__ = [
    "ID_COLUMNS",
    "METRIC_COLUMNS",
    "SPLIT_COLUMNS",
    "STATUSES",
    "CaseMetrics",
    "evaluate_case",
    "evaluate_predictions",
    "prediction_fields",
]

#: Identifier columns of the per-case table, in order.
ID_COLUMNS: tuple[str, ...] = ("case_id", "patient_id", "group", "phase", "z", "experiment")
#: Values of the ``status`` column.
STATUSES: tuple[str, ...] = ("ok", "empty_prediction", "empty_reference", "empty_both", "nonfinite_field")
#: Columns copied from the test split's table after the metrics, with the value of a split that lacks them: the
#: protocol's splits hold ring slices only, all of them kept.
SPLIT_COLUMNS: dict[str, Any] = {"slice_class": SLICE_CLASSES[0], "kept": True}


@dataclass(frozen=True)
class CaseMetrics:
    """Metrics of one test case.

    Attributes
    ----------
    dice : float
        Dice overlap of the binary prediction with the reference (1.0 when both are empty).
    hd_px, hd95_px : float
        Hausdorff distance (maximum, symmetric) and its 95th percentile, in pixels; NaN when a mask is empty.
    hd_mm, hd95_mm : float
        The same in mm (pixel spacing of the slice); NaN when a mask is empty.
    nonpos_jac_bulk_pct, nonpos_jac_ft_pct : float
        % of non-positive Jacobian determinants of the bulk / fine-tune field, forward differences; NaN (N/A) when
        the model has no such field.
    nonpos_jac_bulk_central_pct, nonpos_jac_ft_central_pct : float
        The same with central differences (voxelmorph's ``jacobian_determinant``); NaN when absent.
    b0, b1 : int
        Betti numbers of the binary prediction: components (4-connected) and holes (8-connected background).
    correct_topology : bool
        ``(b0, b1) == (1, 1)``: one ring.
    status : str
        ``"ok"``, ``"empty_prediction"``, ``"empty_reference"``, ``"empty_both"`` or ``"nonfinite_field"``.
    assd_px, assd_mm : float
        Average symmetric surface distance (medpy's ``assd``) in pixels and in mm; NaN when a mask is empty.
    pred_pixels, ref_pixels : int
        Foreground pixels of the binary prediction and of the reference.
    ref_b0, ref_b1 : int
        Betti numbers of the reference (a ring slice: (1, 1); a slice without myocardium: (0, 0)).
    betti_error : int
        ``|b0 - ref_b0| + |b1 - ref_b1|``.
    euler_error : int
        ``|(b0 - b1) - (ref_b0 - ref_b1)|``.
    betti_matching_error : int
        Unmatched persistence bars of both masks in their Betti matching (dimensions 0 and 1).
    topology_error : str
        Kinds of wrong topology (:data:`tedsnet.evaluation.topology.TOPOLOGY_ERROR_KINDS`) joined by ``"+"``,
        judged against one ring and the reference's enclosed region; ``""`` when ``correct_topology``.
    topology_matches_reference : bool
        ``(b0, b1) == (ref_b0, ref_b1)``.
    """

    dice: float
    hd_px: float
    hd95_px: float
    hd_mm: float
    hd95_mm: float
    nonpos_jac_bulk_pct: float
    nonpos_jac_ft_pct: float
    nonpos_jac_bulk_central_pct: float
    nonpos_jac_ft_central_pct: float
    b0: int
    b1: int
    correct_topology: bool
    status: str
    assd_px: float
    assd_mm: float
    pred_pixels: int
    ref_pixels: int
    ref_b0: int
    ref_b1: int
    betti_error: int
    euler_error: int
    betti_matching_error: int
    topology_error: str
    topology_matches_reference: bool

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (column name -> value)."""
        return asdict(self)


#: Metric columns of the per-case table, in order (the fields of :class:`CaseMetrics`).
METRIC_COLUMNS: tuple[str, ...] = tuple(CaseMetrics.__dataclass_fields__)


def _to_numpy(array: Any) -> np.ndarray:
    """A numpy array of ``array`` (torch tensors detached and moved to the CPU)."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _binary_mask(mask: Any, name: str) -> np.ndarray:
    """``mask`` as a bool (H, W) array; ValueError if it is not 2-D or holds values other than 0 and 1."""
    arr = _to_numpy(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask (H, W), got shape {arr.shape}.")
    if arr.dtype != bool:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(
                f"{name} must be binary (values in {{0, 1}}), got values in [{arr.min()}, {arr.max()}]; "
                "threshold the soft prediction first (e.g. soft >= 0.3)."
            )
        arr = arr.astype(bool)
    return arr


def _crop_to_union(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union plus one background pixel on every side.

    Border extraction (erosion with a zero border) and the distance transform to the nearest border pixel give
    exactly the same distances on the crop, which is several times smaller than the slice.
    """
    union = pred | ref
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return np.pad(pred[window], 1), np.pad(ref[window], 1)


def _spacing(spacing: Any) -> tuple[float, float]:
    """``spacing`` as (row_mm, col_mm); ValueError unless it is two positive finite numbers."""
    try:
        values = tuple(float(s) for s in spacing)
    except TypeError:
        raise ValueError(f"spacing must be two numbers (row_mm, col_mm), got {spacing!r}.") from None
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must be two positive finite numbers (row_mm, col_mm), got {spacing!r}.")
    return values


def _field(name: str, disp: Any) -> np.ndarray:
    """Field ``name`` as a (2, h, w) array; ValueError for another shape or h, w < 3."""
    arr = _to_numpy(disp)
    if arr.ndim != 3 or arr.shape[0] != 2 or min(arr.shape[1:]) < 3:
        raise ValueError(
            f"fields[{name!r}] must be a displacement (2, h, w) in voxels with h, w >= 3, got shape {arr.shape}."
        )
    return arr


def evaluate_case(
    pred_binary: Any,
    ref: Any,
    spacing: Sequence[float],
    fields: Mapping[str, Any] | None = None,
) -> CaseMetrics:
    """All metrics of one test case.

    Parameters
    ----------
    pred_binary : array (H, W)
        Binary prediction (bool or {0, 1}).
    ref : array (H, W)
        Binary reference (myocardium).
    spacing : (row_mm, col_mm)
        Pixel size of the slice in mm.
    fields : dict, optional
        ``{"bulk" | "ft": displacement (2, h, w)}`` in voxels of its own grid (numpy or torch); a missing key or a
        None value means the model has no such field (N/A, NaN in the row).

    Returns
    -------
    CaseMetrics
        One row; never raises for empty masks or non-finite fields (see the module docstring).

    Raises
    ------
    ValueError
        If the masks are not 2-D, binary and of equal shape, the spacing is not two positive numbers, a field name
        is not ``"bulk"`` or ``"ft"``, or a field is not (2, h, w).
    ImportError
        If ``topolosses`` (the Betti matching) is not installed.
    """
    pred = _binary_mask(pred_binary, "pred_binary")
    reference = _binary_mask(ref, "ref")
    if pred.shape != reference.shape:
        raise ValueError(
            f"pred_binary and ref must have the same shape, got {pred.shape} and {reference.shape}."
        )
    row_mm, col_mm = _spacing(spacing)
    fields = dict(fields or {})
    unknown = sorted(set(fields) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"fields: unknown field name(s) {unknown}; expected keys among {list(FIELD_NAMES)}.")
    arrays = {name: _field(name, disp) for name, disp in fields.items() if disp is not None}

    status = _mask_status(pred, reference)
    dice = metrics.dice(pred, reference)
    hd_px, hd95_px, assd_px, hd_mm, hd95_mm, assd_mm = _distances(pred, reference, (row_mm, col_mm))
    jac, finite = _jacobian_columns(arrays)
    if not finite and status == "ok":
        status = "nonfinite_field"
    topo = _topology_columns(pred, reference)
    return CaseMetrics(
        dice=float(dice),
        hd_px=float(hd_px),
        hd95_px=float(hd95_px),
        hd_mm=float(hd_mm),
        hd95_mm=float(hd95_mm),
        nonpos_jac_bulk_pct=jac["nonpos_jac_bulk_pct"],
        nonpos_jac_ft_pct=jac["nonpos_jac_ft_pct"],
        nonpos_jac_bulk_central_pct=jac["nonpos_jac_bulk_central_pct"],
        nonpos_jac_ft_central_pct=jac["nonpos_jac_ft_central_pct"],
        status=status,
        assd_px=float(assd_px),
        assd_mm=float(assd_mm),
        pred_pixels=int(np.count_nonzero(pred)),
        ref_pixels=int(np.count_nonzero(reference)),
        **topo,
    )


def _mask_status(pred: np.ndarray, reference: np.ndarray) -> str:
    """``"ok"``, or which of the two masks is empty (``"empty_prediction"``, ``"empty_reference"``, ``"empty_both"``)."""
    pred_empty, ref_empty = not pred.any(), not reference.any()
    if pred_empty and ref_empty:
        return "empty_both"
    if pred_empty:
        return "empty_prediction"
    if ref_empty:
        return "empty_reference"
    return "ok"


def _distances(pred: np.ndarray, reference: np.ndarray, spacing: tuple[float, float]) -> tuple[float, ...]:
    """(HD, HD95, ASSD) in px then (HD, HD95, ASSD) in mm of two binary masks; all NaN when either mask is empty."""
    if not pred.any() or not reference.any():
        return (float("nan"),) * 6
    p, r = _crop_to_union(pred, reference)
    return (*metrics.surface_distances(p, r), *metrics.surface_distances(p, r, spacing=spacing))


def _topology_columns(pred: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """The Betti numbers of both masks and the topology errors of ``pred`` against ``reference``, by column name."""
    if pred.any() or reference.any():
        pred, reference = _crop_to_union(pred, reference)  # topology does not depend on the empty margin
    betti = metrics.betti_numbers(pred, connectivity=4)
    matching = topology.betti_matching(pred, reference)
    ref_betti = matching.ref_betti  # the matching's bars count the reference's features, at no extra cost
    hole_filled = None
    if betti[0] > 0 and betti[1] < metrics.RING_BETTI[1]:
        hole_filled = topology.covers_enclosed_region(pred, reference, connectivity=4)
    kinds = topology.classify_topology(betti, metrics.RING_BETTI, hole_filled)
    return {
        "b0": int(betti[0]),
        "b1": int(betti[1]),
        "correct_topology": tuple(betti) == metrics.RING_BETTI,
        "ref_b0": int(ref_betti[0]),
        "ref_b1": int(ref_betti[1]),
        "betti_error": topology.betti_distance(betti, ref_betti),
        "euler_error": topology.euler_error(pred, reference, connectivity=4),
        "betti_matching_error": sum(matching.unmatched),
        "topology_error": topology.TOPOLOGY_ERROR_SEPARATOR.join(kinds),
        "topology_matches_reference": tuple(betti) == tuple(ref_betti),
    }


def _jacobian_columns(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, float], bool]:
    """The % non-positive Jacobian columns of every field name, and whether every field given was finite.

    A field that is absent or non-finite gives NaN in both of its columns.
    """
    nan = float("nan")
    columns: dict[str, float] = {}
    finite = True
    for name in FIELD_NAMES:
        disp = arrays.get(name)
        forward = central = nan
        if disp is not None:
            if np.isfinite(disp).all():
                forward, central = metrics.nonpositive_jacobian_percents(disp)
            else:
                finite = False
        columns[f"nonpos_jac_{name}_pct"] = forward
        columns[f"nonpos_jac_{name}_central_pct"] = central
    return columns, finite


def prediction_fields(predictions: Any) -> dict[str, np.ndarray]:
    """The displacement arrays of a predictions object, ``{"bulk" | "ft": (N, 2, h, w)}``.

    Accepts the attributes ``disp_bulk`` / ``disp_ft`` (the predictions file format; None or absent when the model
    has no such field) or a ``displacements`` mapping.
    """
    found: dict[str, np.ndarray] = {}
    mapping = getattr(predictions, "displacements", None)
    if isinstance(mapping, Mapping):
        found.update({k: v for k, v in mapping.items() if v is not None})
    for name in FIELD_NAMES:
        value = getattr(predictions, f"disp_{name}", None)
        if value is not None:
            found[name] = value
    unknown = sorted(set(found) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"predictions: unknown field name(s) {unknown}; expected among {list(FIELD_NAMES)}.")
    return {name: _to_numpy(value) for name, value in found.items()}


def _column(table: pd.DataFrame, name: str, what: str) -> pd.Series:
    """Column ``name`` of ``table``; ValueError naming ``what`` when it is missing."""
    if name not in table.columns:
        raise ValueError(f"{what}: the table has no column {name!r} (columns: {list(table.columns)}).")
    return table[name]


def evaluate_predictions(
    predictions: Any,
    test_split: Any,
    experiment: str,
    *,
    seed: int | None = None,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Per-case metrics of one model's predictions on the test split.

    Parameters
    ----------
    predictions : Predictions
        ``case_id`` (N,) str, ``binary`` (N, H, W) {0, 1}, optionally ``soft`` (N, H, W) in [0, 1] and the fields
        ``disp_bulk`` / ``disp_ft`` (N, 2, h, w) (see :mod:`tedsnet.inference.predict`).
    test_split : PreparedSplit
        ``labels`` (M, H, W) {0, 1} and ``table`` with columns case_id, patient_id, group, phase, z,
        spacing_row_mm, spacing_col_mm (see :mod:`tedsnet.data.prepared`), and optionally slice_class and kept
        (a split of all slices).
    experiment : str
        Experiment name written in the ``experiment`` column.
    seed : int, optional
        Training seed; adds a ``seed`` column when given.
    threshold : float, optional
        Re-binarise ``soft >= threshold`` instead of using ``binary`` (e.g. the 0.5 sensitivity check).

    Returns
    -------
    pandas.DataFrame
        One row per test case, in the order of the test table: :data:`ID_COLUMNS` (+ ``seed``), then
        :data:`METRIC_COLUMNS`, then :data:`SPLIT_COLUMNS` (from the table, or their defaults when it has none).

    Raises
    ------
    ValueError
        If a test case has no prediction or a prediction no test case, case ids repeat, shapes disagree, or a
        ``kept`` column holds something other than True/False.
    """
    table = test_split.table.reset_index(drop=True)
    labels = _to_numpy(test_split.labels)
    case_ids = _column(table, "case_id", "test_split").astype(str).tolist()
    if labels.ndim != 3 or labels.shape[0] != len(case_ids):
        raise ValueError(
            f"test_split.labels must be (N, H, W) with N = {len(case_ids)} table rows, got shape {labels.shape}."
        )
    pred_ids = [str(c) for c in _to_numpy(predictions.case_id).tolist()]
    _check_case_ids(case_ids, pred_ids)
    binary = _binary_predictions(predictions, threshold, (len(pred_ids), *labels.shape[1:]))
    fields = prediction_fields(predictions)
    for name, arr in fields.items():
        if arr.ndim != 4 or arr.shape[0] != len(pred_ids) or arr.shape[1] != 2:
            raise ValueError(
                f"predictions disp_{name} must be (N={len(pred_ids)}, 2, h, w), got {arr.shape}."
            )
    position = {c: i for i, c in enumerate(pred_ids)}
    spacing_rows = _column(table, "spacing_row_mm", "test_split").to_numpy(dtype=float)
    spacing_cols = _column(table, "spacing_col_mm", "test_split").to_numpy(dtype=float)
    split_columns = _split_columns(table)

    rows = []
    for k, case_id in enumerate(case_ids):
        i = position[case_id]
        case = evaluate_case(
            binary[i],
            labels[k],
            (spacing_rows[k], spacing_cols[k]),
            {name: arr[i] for name, arr in fields.items()},
        )
        rows.append(case.as_dict())
    ids = _id_columns(table, case_ids, experiment, seed)
    return pd.concat([ids, pd.DataFrame(rows, columns=list(METRIC_COLUMNS)), split_columns], axis=1)


def _check_case_ids(case_ids: list[str], pred_ids: list[str]) -> None:
    """Raise ValueError when ids repeat or the test cases and the predictions are not the same set."""
    for what, ids in (("test_split", case_ids), ("predictions", pred_ids)):
        if len(set(ids)) != len(ids):
            dupes = sorted({c for c in ids if ids.count(c) > 1})[:5]
            raise ValueError(f"{what}: case ids must be unique, repeated: {dupes}.")
    missing = sorted(set(case_ids) - set(pred_ids))
    extra = sorted(set(pred_ids) - set(case_ids))
    if missing or extra:
        raise ValueError(
            f"predictions do not match the test split: {len(missing)} test case(s) without a prediction "
            f"(e.g. {missing[:3]}), {len(extra)} prediction(s) without a test case (e.g. {extra[:3]}); "
            "predict on the same test split that is evaluated."
        )


def _binary_predictions(predictions: Any, threshold: float | None, shape: tuple[int, ...]) -> np.ndarray:
    """``predictions.binary``, or ``soft >= threshold`` when a threshold is given; ValueError unless ``shape``."""
    if threshold is None:
        binary = _to_numpy(predictions.binary)
    else:
        soft = getattr(predictions, "soft", None)
        if soft is None:
            raise ValueError("evaluate_predictions: threshold given but predictions have no 'soft' array.")
        binary = _to_numpy(soft) >= float(threshold)
    if binary.shape != shape:
        raise ValueError(
            f"predictions.binary must be (N, H, W) = {shape} to match the test labels, got {binary.shape}."
        )
    return binary


def _id_columns(table: pd.DataFrame, case_ids: list[str], experiment: str, seed: int | None) -> pd.DataFrame:
    """The identifier columns (:data:`ID_COLUMNS`, plus ``seed`` when given) of the per-case table."""
    ids = pd.DataFrame(
        {
            "case_id": case_ids,
            "patient_id": _column(table, "patient_id", "test_split").astype(str).to_numpy(),
            "group": _column(table, "group", "test_split").astype(str).to_numpy(),
            "phase": _column(table, "phase", "test_split").astype(str).to_numpy(),
            "z": _column(table, "z", "test_split").astype(int).to_numpy(),
            "experiment": experiment,
        }
    )
    if seed is not None:
        ids["seed"] = int(seed)
    return ids


def _split_columns(table: pd.DataFrame) -> pd.DataFrame:
    """:data:`SPLIT_COLUMNS` of the test table, each column the table lacks at its default value."""
    columns = {}
    for name, default in SPLIT_COLUMNS.items():
        values = table[name].tolist() if name in table.columns else [default] * len(table)
        columns[name] = (
            [_as_bool(v, name) for v in values] if isinstance(default, bool) else [str(v) for v in values]
        )
    return pd.DataFrame(columns, index=range(len(table)))


def _as_bool(value: Any, name: str) -> bool:
    """A flag as a table stores it (bool, 0/1 or the words True/False); ValueError for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    words = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    key = str(value).strip().lower()
    if key not in words:
        raise ValueError(
            f"test_split: column {name!r} must hold True/False (or 1/0), got {value!r}; rebuild the split table."
        )
    return words[key]
