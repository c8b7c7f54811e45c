"""The face-embedder contract and the input/output checks every embedder shares.

Every face embedder takes canonical aligned crops (``core.face_crop``: RGB ``uint8``,
CANONICAL_SIZE x CANONICAL_SIZE x 3) and returns float32, L2-normalised rows. It never
returns NaN: a non-finite or zero output raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..core.face_crop import CANONICAL_SIZE
from ..core.types import l2_normalize


@runtime_checkable
class FaceEmbedder(Protocol):
    """Turns canonical aligned face crops into identity vectors (N, dim), L2-normalised."""

    @property
    def id(self) -> str:
        """Model + dimension (+ input resolution where it matters), e.g. ``dlib_resnet_v1_128``."""
        ...

    @property
    def dim(self) -> int:
        """Length of one embedding."""
        ...

    def embed(self, canonical_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return (N, dim) float32 L2-normalised rows; (0, dim) for an empty input."""
        ...


def check_image(image: object, index: int, what: str = "crop") -> np.ndarray:
    """Return ``image`` as a contiguous RGB uint8 (H, W, 3) array or raise ValueError."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} {index} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} {index} must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} {index} must have shape (H, W, 3), got {image.shape}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"{what} {index} is too small: {image.shape}")
    return np.ascontiguousarray(image)


def check_canonical_crops(crops: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate canonical face crops (uint8, CANONICAL_SIZE square, RGB); return them as a list."""
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        raise ValueError("embed() takes a sequence of crops; wrap a single crop in a list")
    out = []
    for i, item in enumerate(crops):
        crop = check_image(item, i, "canonical crop")
        if crop.shape[:2] != (CANONICAL_SIZE, CANONICAL_SIZE):
            raise ValueError(
                f"canonical crop {i} must be {CANONICAL_SIZE}x{CANONICAL_SIZE}x3 "
                f"(core.face_crop.align_face), got {crop.shape}"
            )
        out.append(crop)
    return out


def finish_embeddings(raw: np.ndarray, dim: int, source: str) -> np.ndarray:
    """Return (N, dim) float32 unit rows from raw model output; ValueError on NaN/inf/zero."""
    vectors = np.asarray(raw, dtype=np.float32).reshape(-1, dim)
    if not np.all(np.isfinite(vectors)):
        bad = np.flatnonzero(~np.all(np.isfinite(vectors), axis=1)).tolist()
        raise ValueError(f"{source} produced NaN/inf embeddings for inputs {bad}")
    try:
        return l2_normalize(vectors).reshape(-1, dim)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc


def empty_embeddings(dim: int) -> np.ndarray:
    """The (0, dim) float32 result of embedding nothing."""
    return np.zeros((0, dim), dtype=np.float32)
