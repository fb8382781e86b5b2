"""Topology-preserving augmentation of one slice (the protocol's augmentation, ``docs/protocol.md``).

Each slice yields ``n_images`` images (protocol: 8): itself, then random rotations, shifts, zooms and their
combinations (the 7 non-empty subsets of {rotate, shift, zoom}, cycled). Image and label go through the same
affine map about the image centre with linear interpolation (``scipy.ndimage.affine_transform``, order 1, zeros
outside); the label is thresholded at 0.5 and re-checked for Betti numbers (1, 1); a transform that breaks the
ring is redrawn (bounded tries). All draws come from the given ``numpy.random.Generator``, so a seed fixes the
result.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from tedsnet.evaluation.metrics import has_ring_topology

__all__ = [
    "KINDS",
    "AugmentParams",
    "AugmentedSlice",
    "affine_about_center",
    "augment_slice",
    "transform_pair",
]

#: Transform kinds of augmented images 1, 2, ... (cycled when more than 7 are asked for).
KINDS: tuple[str, ...] = (
    "rotate",
    "shift",
    "zoom",
    "rotate+shift",
    "rotate+zoom",
    "shift+zoom",
    "rotate+shift+zoom",
)


class AugmentParams(NamedTuple):
    """Parameters of one augmented image.

    kind : str
        ``"original"`` or one of :data:`KINDS`.
    rotation_deg : float
        Counter-clockwise rotation in the (row, col) plane, degrees.
    shift_row, shift_col : float
        Translation in pixels along array axes (0, 1).
    zoom : float
        Isotropic scale factor (> 1 enlarges).
    tries : int
        Draws needed until the label kept Betti (1, 1) (0 for the original).
    """

    kind: str
    rotation_deg: float
    shift_row: float
    shift_col: float
    zoom: float
    tries: int


class AugmentedSlice(NamedTuple):
    """Result of :func:`augment_slice`: images float32 (N, H, W), labels uint8 (N, H, W), params (N,)."""

    images: np.ndarray
    labels: np.ndarray
    params: list[AugmentParams]


def affine_about_center(
    shape: tuple[int, int], rotation_deg: float, shift: tuple[float, float], zoom: float
) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset for ``scipy.ndimage.affine_transform`` of a rotation/zoom about the centre plus a shift.

    The forward map sends input pixel ``p`` to ``zoom * R (p - c) + c + shift`` with ``c = (shape - 1) / 2``;
    ``affine_transform`` needs its inverse (output -> input): ``matrix = R^T / zoom``,
    ``offset = c - matrix @ (c + shift)``.
    """
    theta = np.deg2rad(rotation_deg)
    cos, sin = np.cos(theta), np.sin(theta)
    rot = np.array([[cos, -sin], [sin, cos]])
    matrix = rot.T / zoom
    center = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    offset = center - matrix @ (center + np.asarray(shift, dtype=float))
    return matrix, offset


def transform_pair(
    image: np.ndarray, label: np.ndarray, rotation_deg: float, shift: tuple[float, float], zoom: float
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one affine map to an image (linear) and a binary label (linear, then threshold 0.5).

    Returns float32 (H, W) and uint8 (H, W) in {0, 1}. Pixels mapped from outside the input are 0.
    """
    matrix, offset = affine_about_center(image.shape, rotation_deg, shift, zoom)
    kwargs = {
        "matrix": matrix,
        "offset": offset,
        "order": 1,
        "mode": "constant",
        "cval": 0.0,
        "prefilter": False,
    }
    out_image = ndimage.affine_transform(image.astype(np.float32, copy=False), **kwargs)
    out_label = ndimage.affine_transform(label.astype(np.float32), **kwargs)
    return out_image.astype(np.float32, copy=False), (out_label >= 0.5).astype(np.uint8)


def _check_range(name: str, value: float, upper: float | None = None) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0 or (upper is not None and value >= upper):
        bound = f" and < {upper}" if upper is not None else ""
        raise ValueError(
            f"augment_slice: {name} must be >= 0{bound}, got {value}; pass a value in that range"
        )
    return value


def _check_inputs(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator, n_images: int, max_tries: int
) -> tuple[np.ndarray, np.ndarray]:
    """float32 image and {0, 1} uint8 label of :func:`augment_slice`, after checking its arguments."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"augment_slice: rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            "pass numpy.random.default_rng(seed)"
        )
    image = np.asarray(image, dtype=np.float32)
    label = np.asarray(label)
    if image.ndim != 2 or image.shape != label.shape:
        raise ValueError(
            f"augment_slice: image and label must be 2-D of the same shape, got {image.shape} and {label.shape}"
        )
    if int(n_images) != n_images or n_images < 1:
        raise ValueError(f"augment_slice: n_images must be a positive integer, got {n_images!r}")
    if int(max_tries) != max_tries or max_tries < 1:
        raise ValueError(f"augment_slice: max_tries must be a positive integer, got {max_tries!r}")
    return image, label


def _draw_ring_keeping(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    kind: str,
    ranges: tuple[float, float, float],
    max_tries: int,
) -> tuple[np.ndarray, np.ndarray, AugmentParams]:
    """One transform of ``kind`` whose label stays one ring, redrawn up to ``max_tries`` times.

    ``ranges`` is (rotation_deg, shift_frac, zoom_frac); after ``max_tries // 2`` failed draws the ranges are
    halved at each further try. Raises ValueError when no draw keeps the ring.
    """
    rotation_deg, shift_frac, zoom_frac = ranges
    height, width = image.shape
    for attempt in range(1, int(max_tries) + 1):
        scale = 1.0 if attempt <= max_tries // 2 else 0.5 ** (attempt - max_tries // 2)
        u = rng.uniform(-1.0, 1.0, size=4)  # always 4 draws: the stream does not depend on the kind
        angle = scale * rotation_deg * u[0] if "rotate" in kind else 0.0
        shift = (
            (scale * shift_frac * height * u[1], scale * shift_frac * width * u[2])
            if "shift" in kind
            else (0.0, 0.0)
        )
        zoom = 1.0 + scale * zoom_frac * u[3] if "zoom" in kind else 1.0
        out_image, out_label = transform_pair(image, label, angle, shift, zoom)
        if has_ring_topology(out_label):
            params = AugmentParams(kind, float(angle), float(shift[0]), float(shift[1]), float(zoom), attempt)
            return out_image, out_label, params
    raise ValueError(
        f"augment_slice: no {kind} transform kept the label one ring in {max_tries} tries; "
        "lower the augmentation ranges or raise max_tries"
    )


def augment_slice(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    n_images: int = 8,
    rotation_deg: float = 15.0,
    shift_frac: float = 0.1,
    zoom_frac: float = 0.1,
    max_tries: int = 20,
) -> AugmentedSlice:
    """The slice itself plus ``n_images - 1`` randomly transformed versions whose label stays one ring.

    Image ``k >= 1`` uses kind ``KINDS[(k - 1) % 7]``: rotation angle ~ U(-rotation_deg, rotation_deg), shift per
    axis ~ U(-shift_frac, shift_frac) * axis size (pixels), zoom ~ U(1 - zoom_frac, 1 + zoom_frac); components not
    in the kind stay identity. If the thresholded label is not Betti (1, 1) the transform is redrawn; after
    ``max_tries // 2`` failed draws the ranges are halved at each further try (ending near the identity).

    Parameters
    ----------
    image : np.ndarray
        float (H, W), e.g. a normalised :class:`~tedsnet.data.slices.Slice` image.
    label : np.ndarray
        binary (H, W) myocardium; must be one ring (Betti (1, 1), 4-connected).
    rng : numpy.random.Generator
        Source of every random draw (same generator state -> same output).
    n_images : int
        Output count including the original (protocol: 8).
    rotation_deg : float
        Maximum absolute rotation in degrees (>= 0, < 180).
    shift_frac : float
        Maximum absolute shift as a fraction of each axis size (>= 0, < 0.5).
    zoom_frac : float
        Maximum relative zoom change (>= 0, < 1).
    max_tries : int
        Draws per augmented image before giving up.

    Returns
    -------
    AugmentedSlice
        images float32 (n_images, H, W), labels uint8 (n_images, H, W) in {0, 1}, every label Betti (1, 1);
        index 0 is the input unchanged.

    Raises
    ------
    ValueError
        If shapes differ, the input label is not one ring, an argument is out of range, or no draw within
        ``max_tries`` keeps the ring (message names the kind).
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.
    """
    image, label = _check_inputs(image, label, rng, n_images, max_tries)
    ranges = (
        _check_range("rotation_deg", rotation_deg, 180.0),
        _check_range("shift_frac", shift_frac, 0.5),
        _check_range("zoom_frac", zoom_frac, 1.0),
    )
    label = (label > 0).astype(np.uint8)
    if not has_ring_topology(label):
        raise ValueError(
            "augment_slice: the input label is not one ring (Betti (1, 1)); augment ring slices only"
        )
    n_images = int(n_images)
    images = np.empty((n_images, *image.shape), dtype=np.float32)
    labels = np.empty((n_images, *image.shape), dtype=np.uint8)
    images[0], labels[0] = image, label
    params = [AugmentParams("original", 0.0, 0.0, 0.0, 1.0, 0)]
    for k in range(1, n_images):
        kind = KINDS[(k - 1) % len(KINDS)]
        images[k], labels[k], drawn = _draw_ring_keeping(image, label, rng, kind, ranges, max_tries)
        params.append(drawn)
    return AugmentedSlice(images=images, labels=labels, params=params)
