"""Topology errors of a 2-D binary segmentation against its reference: Betti, Euler and Betti matching errors,
and what kind of error a wrong topology is.

All functions take bool (or {0, 1}) masks (H, W), numpy or torch. The foreground is 4-connected and the background
8-connected unless ``connectivity=8`` (then the reverse), as for :func:`tedsnet.evaluation.metrics.betti_numbers`.

The Betti matching error (Stucki et al., ICML 2023) matches the persistence bars of the prediction and of the
reference through those of their union (the comparison image of binary masks) by induced matchings, and counts
the bars of either mask left unmatched. It is computed by the Betti-Matching-3D extension that ``topolosses``
bundles, on each mask as a filtration in which the foreground enters before the background (the mask's
superlevel filtration) of a cubical complex whose vertices are the pixels, so components are 4-connected. That extension leaves out the one infinite bar of each image; an anchor
pixel present in both images, older than the foreground and kept apart from it by background, carries that bar,
so that every component of either mask is a finite bar and is matched or counted.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from scipy import ndimage

from tedsnet.evaluation.metrics import RING_BETTI, as_mask, as_mask_pair, betti_numbers

__all__ = [
    "FILLED_HOLE_FRACTION",
    "TOPOLOGY_ERROR_KINDS",
    "TOPOLOGY_ERROR_SEPARATOR",
    "load_topolosses",
    "BettiMatchingCounts",
    "betti_distance",
    "betti_error",
    "betti_matching",
    "betti_matching_error",
    "betti_matching_unmatched",
    "classify_topology",
    "covers_enclosed_region",
    "enclosed_region",
    "euler_characteristic",
    "euler_error",
    "topology_error_kinds",
]

#: Kinds of wrong topology, in the order :func:`topology_error_kinds` lists them.
TOPOLOGY_ERROR_KINDS: tuple[str, ...] = (
    "empty",
    "extra_components",
    "missing_hole",
    "broken_ring",
    "extra_holes",
)
#: Joins the kinds of one case in the per-case table's ``topology_error`` column.
TOPOLOGY_ERROR_SEPARATOR = "+"
#: Share of the reference's enclosed region a prediction without its hole must cover to have filled the hole.
FILLED_HOLE_FRACTION = 0.5
#: Filtration values of the Betti matching input: the anchor, then the foreground, then the background.
_ANCHOR, _FOREGROUND, _BACKGROUND = -1.0, 0.0, 1.0


def _check_connectivity(connectivity: int, caller: str) -> None:
    """Raise ValueError unless ``connectivity`` is 4 or 8."""
    if connectivity not in (4, 8):
        raise ValueError(f"{caller}: connectivity must be 4 or 8 (foreground), got {connectivity!r}.")


def euler_characteristic(mask, connectivity: int = 4) -> int:
    """Euler characteristic ``b0 - b1`` of a binary mask, by counting 2 x 2 pixel patterns (Gray's bit quads).

    Parameters
    ----------
    mask : array (H, W)
        Binary mask.
    connectivity : {4, 8}
        Foreground connectivity; the background takes the other one.

    Returns
    -------
    int
        ``(n1 - n3 + 2 nd) / 4`` for 4-connectivity, ``(n1 - n3 - 2 nd) / 4`` for 8, with n1, n3 the 2 x 2 windows
        holding one or three foreground pixels and nd those holding two on a diagonal. A ring: 0; a disc: 1.

    Raises
    ------
    ValueError
        If the mask is not 2-D or the connectivity is not 4 or 8.

    Examples
    --------
    >>> euler_characteristic(np.eye(2, dtype=bool), connectivity=4), euler_characteristic(np.eye(2, dtype=bool), 8)
    (2, 1)
    """
    _check_connectivity(connectivity, "euler_characteristic")
    padded = np.pad(as_mask(mask), 1).astype(np.int8)
    a, b, c, d = padded[:-1, :-1], padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:]
    count = a + b + c + d
    one, three = np.count_nonzero(count == 1), np.count_nonzero(count == 3)
    diagonal = np.count_nonzero((count == 2) & (a == d))
    sign = 1 if connectivity == 4 else -1
    return int(one - three + sign * 2 * diagonal) // 4


def betti_distance(betti_a: Sequence[int], betti_b: Sequence[int]) -> int:
    """``|b0_a - b0_b| + |b1_a - b1_b|`` of two Betti-number pairs."""
    return int(sum(abs(int(x) - int(y)) for x, y in zip(betti_a, betti_b, strict=True)))


def betti_error(pred, ref, connectivity: int = 4) -> int:
    """Betti error ``|b0 - b0_ref| + |b1 - b1_ref|`` of a prediction against its reference.

    Parameters
    ----------
    pred, ref : array (H, W)
        Binary masks of one shape.
    connectivity : {4, 8}
        Foreground connectivity.

    Returns
    -------
    int
        0 when the counts agree, even if the features sit elsewhere (:func:`betti_matching_error` sees that).

    Raises
    ------
    ValueError
        If the masks are not 2-D of one shape or the connectivity is not 4 or 8.
    """
    pred, ref = as_mask_pair(pred, ref)
    return betti_distance(betti_numbers(pred, connectivity), betti_numbers(ref, connectivity))


def euler_error(pred, ref, connectivity: int = 4) -> int:
    """Euler error ``|chi - chi_ref|`` of a prediction against its reference (:func:`euler_characteristic`).

    Blind to errors that change b0 and b1 by the same amount: two rings against one give 0 (Betti error 2).

    Raises
    ------
    ValueError
        If the masks are not 2-D of one shape or the connectivity is not 4 or 8.
    """
    pred, ref = as_mask_pair(pred, ref)
    return abs(euler_characteristic(pred, connectivity) - euler_characteristic(ref, connectivity))


def load_topolosses(module: str) -> ModuleType:
    """A module of ``topolosses.losses`` (e.g. ``"betti_matching.src"``), imported without the package's ``__init__``.

    That ``__init__`` also loads topolosses' topograph extension, which brings a second OpenMP runtime into the
    process, and torch's CPU training then slows by orders of magnitude; a bare package entry skips it.

    Raises
    ------
    ImportError
        If ``topolosses`` is not installed (the message gives the fix).
    """
    spec = importlib.util.find_spec("topolosses")
    if spec is None or not spec.origin:
        raise ImportError(
            "the Betti matching error and loss need the package topolosses; install it with `pip install topolosses` "
            "(see envs/requirements.txt)."
        )
    if "topolosses.losses" not in sys.modules:
        package = ModuleType("topolosses.losses")
        package.__path__ = [str(Path(spec.origin).parent / "losses")]
        sys.modules["topolosses.losses"] = package
    return importlib.import_module(f"topolosses.losses.{module}")


@functools.cache
def _betti_matching_extension() -> ModuleType:
    """The Betti-Matching-3D extension that ``topolosses`` bundles."""
    return load_topolosses("betti_matching.src").betti_matching


def _matching_filtration(mask: np.ndarray) -> np.ndarray:
    """The mask as a float64 superlevel filtration: anchor at the corner, foreground, background (2 px margin)."""
    values = np.pad(np.where(mask, _FOREGROUND, _BACKGROUND), 2, constant_values=_BACKGROUND)
    values[0, 0] = _ANCHOR
    return np.ascontiguousarray(values)


@dataclass(frozen=True)
class BettiMatchingCounts:
    """Counts of the persistence bars of a Betti matching, per dimension (components, holes).

    Attributes
    ----------
    matched : (int, int)
        Pairs of a prediction bar and a reference bar matched through their union.
    unmatched_pred, unmatched_ref : (int, int)
        Bars of the prediction, of the reference, left unmatched.
    """

    matched: tuple[int, int]
    unmatched_pred: tuple[int, int]
    unmatched_ref: tuple[int, int]

    @property
    def pred_betti(self) -> tuple[int, int]:
        """Betti numbers (b0, b1) of the prediction: every one of its bars, matched or not."""
        return (self.matched[0] + self.unmatched_pred[0], self.matched[1] + self.unmatched_pred[1])

    @property
    def ref_betti(self) -> tuple[int, int]:
        """Betti numbers (b0, b1) of the reference."""
        return (self.matched[0] + self.unmatched_ref[0], self.matched[1] + self.unmatched_ref[1])

    @property
    def unmatched(self) -> tuple[int, int]:
        """Unmatched bars of both masks, per dimension."""
        return (
            self.unmatched_pred[0] + self.unmatched_ref[0],
            self.unmatched_pred[1] + self.unmatched_ref[1],
        )


def betti_matching(pred, ref) -> BettiMatchingCounts:
    """The Betti matching (Stucki et al., ICML 2023) of a prediction and its reference, counted.

    Parameters
    ----------
    pred, ref : array (H, W)
        Binary masks of one shape; 4-connected foreground.

    Returns
    -------
    BettiMatchingCounts
        Matched and unmatched bars of dimension 0 (components) and 1 (holes); all zero when both masks are empty.
        Its ``pred_betti`` and ``ref_betti`` are the masks' Betti numbers.

    Raises
    ------
    ValueError
        If the masks are not 2-D of one shape.
    ImportError
        If ``topolosses`` is not installed.
    """
    pred, ref = as_mask_pair(pred, ref)
    union = pred | ref
    if not union.any():
        return BettiMatchingCounts((0, 0), (0, 0), (0, 0))
    # A common crop keeps the order of the pixels (the extension's tie-break), so the matching is the same.
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    result = _betti_matching_extension().compute_matching(
        _matching_filtration(pred[window]), _matching_filtration(ref[window])
    )

    def pair(counts) -> tuple[int, int]:
        return int(counts[0]), int(counts[1])

    return BettiMatchingCounts(
        pair(result.num_matched), pair(result.num_unmatched_input1), pair(result.num_unmatched_input2)
    )


def betti_matching_unmatched(pred, ref) -> tuple[int, int]:
    """Unmatched bars of dimension 0 and 1 of both masks in their Betti matching (:func:`betti_matching`).

    Identical masks: (0, 0); a ring against the same ring moved clear of it: (2, 2).

    Raises
    ------
    ValueError
        If the masks are not 2-D of one shape.
    ImportError
        If ``topolosses`` is not installed.
    """
    return betti_matching(pred, ref).unmatched


def betti_matching_error(pred, ref) -> int:
    """Betti matching error (Stucki et al., ICML 2023): unmatched bars of dimensions 0 and 1 of both masks.

    Parameters
    ----------
    pred, ref : array (H, W)
        Binary masks of one shape; 4-connected foreground.

    Returns
    -------
    int
        The sum of :func:`betti_matching_unmatched`: 0 for identical masks, 1 for the same ring with an island
        added, 4 for a ring against the same ring moved clear of it (whose Betti error is 0).

    Raises
    ------
    ValueError
        If the masks are not 2-D of one shape.
    ImportError
        If ``topolosses`` is not installed.

    Examples
    --------
    >>> from tedsnet.network.priors import ring_prior
    >>> ring = ring_prior((40, 80), 10, 3, center=(20, 20))
    >>> betti_matching_error(ring, ring), betti_matching_error(ring, np.roll(ring, 40, axis=1))
    (0, 4)
    """
    return sum(betti_matching_unmatched(pred, ref))


def enclosed_region(mask, connectivity: int = 4) -> np.ndarray:
    """The background pixels a mask encloses (its holes; a ring's cavity), as a bool (H, W) array.

    Parameters
    ----------
    mask : array (H, W)
        Binary mask.
    connectivity : {4, 8}
        Foreground connectivity; the holes are background components of the other connectivity that do not
        reach the array border.

    Raises
    ------
    ValueError
        If the mask is not 2-D or the connectivity is not 4 or 8.
    """
    _check_connectivity(connectivity, "enclosed_region")
    mask = as_mask(mask)
    background = ndimage.generate_binary_structure(2, 2 if connectivity == 4 else 1)
    return ndimage.binary_fill_holes(mask, structure=background) & ~mask


def classify_topology(
    betti: Sequence[int], expected: Sequence[int] = RING_BETTI, hole_filled: bool | None = None
) -> tuple[str, ...]:
    """Kinds of topology error (:data:`TOPOLOGY_ERROR_KINDS`) of a prediction with Betti numbers ``betti``.

    Parameters
    ----------
    betti : (b0, b1)
        Betti numbers of the prediction.
    expected : (b0, b1)
        The correct ones; a ring's (1, 1) by default.
    hole_filled : bool, optional
        Whether the prediction covers the reference's enclosed region; decides between ``"missing_hole"`` (True or
        None) and ``"broken_ring"`` (False) when ``b1`` is too small.

    Returns
    -------
    tuple of str
        ``("empty",)`` when ``b0 == 0``; else, in the order of :data:`TOPOLOGY_ERROR_KINDS`,
        ``"extra_components"`` (b0 too large), ``"missing_hole"`` or ``"broken_ring"`` (b1 too small) and
        ``"extra_holes"`` (b1 too large); () when ``betti == expected``. The kinds describe a ring: a non-empty
        prediction with fewer components than an ``expected`` b0 above 1 has no kind of its own.

    Examples
    --------
    >>> classify_topology((2, 0), hole_filled=False)
    ('extra_components', 'broken_ring')
    """
    b0, b1 = (int(v) for v in betti)
    want_b0, want_b1 = (int(v) for v in expected)
    if b0 == 0:
        return () if (want_b0, want_b1) == (0, 0) else ("empty",)
    kinds = []
    if b0 > want_b0:
        kinds.append("extra_components")
    if b1 < want_b1:
        kinds.append("broken_ring" if hole_filled is False else "missing_hole")
    if b1 > want_b1:
        kinds.append("extra_holes")
    return tuple(kinds)


def topology_error_kinds(
    pred, expected: Sequence[int] = RING_BETTI, ref=None, connectivity: int = 4
) -> tuple[str, ...]:
    """What is wrong with the topology of a prediction, as kinds of :data:`TOPOLOGY_ERROR_KINDS`.

    Parameters
    ----------
    pred : array (H, W)
        Binary prediction.
    expected : (b0, b1)
        The correct Betti numbers; a ring's (1, 1) by default.
    ref : array (H, W), optional
        Reference. With fewer holes than expected, a prediction covering at least half of the reference's
        enclosed region (:func:`enclosed_region`) has filled the hole in (``"missing_hole"``); one that leaves it
        open has a gap in the ring (``"broken_ring"``). Without a reference, or one enclosing nothing, it is
        ``"missing_hole"``.
    connectivity : {4, 8}
        Foreground connectivity.

    Returns
    -------
    tuple of str
        () for the expected topology; ``("empty",)`` without foreground; otherwise those of
        ``"extra_components"``, ``"missing_hole"`` or ``"broken_ring"``, ``"extra_holes"`` that apply.

    Raises
    ------
    ValueError
        If a mask is not 2-D, the masks differ in shape, or the connectivity is not 4 or 8.

    Examples
    --------
    >>> from tedsnet.network.priors import ring_prior
    >>> ring = ring_prior((40, 40), 12, 4)
    >>> topology_error_kinds(ring), topology_error_kinds(ring_prior((40, 40), 12, 12) | ring, ref=ring)
    ((), ('missing_hole',))
    """
    pred = as_mask(pred, "pred") if ref is None else as_mask_pair(pred, ref)[0]
    betti = betti_numbers(pred, connectivity)
    hole_filled = None
    if ref is not None and betti[1] < int(expected[1]):
        hole_filled = covers_enclosed_region(pred, ref, connectivity)
    return classify_topology(betti, expected, hole_filled)


def covers_enclosed_region(pred, ref, connectivity: int = 4) -> bool | None:
    """Whether ``pred`` covers at least :data:`FILLED_HOLE_FRACTION` of the region ``ref`` encloses.

    Parameters
    ----------
    pred, ref : array (H, W)
        Binary masks of one shape.
    connectivity : {4, 8}
        Foreground connectivity (:func:`enclosed_region`).

    Returns
    -------
    bool or None
        None when ``ref`` encloses nothing.

    Raises
    ------
    ValueError
        If the masks are not 2-D of one shape or the connectivity is not 4 or 8.
    """
    pred, ref = as_mask_pair(pred, ref)
    cavity = enclosed_region(ref, connectivity)
    size = np.count_nonzero(cavity)
    if size == 0:
        return None
    return bool(np.count_nonzero(pred & cavity) >= FILLED_HOLE_FRACTION * size)
