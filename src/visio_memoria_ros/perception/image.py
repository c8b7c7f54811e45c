"""Input validation and resizing: every image entering perception becomes RGB uint8 (H, W, 3).

Conversions are explicit and documented; anything that cannot be converted unambiguously is
refused with a ValueError that says why, before it can reach torch or OpenCV.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

logger = logging.getLogger(__name__)

#: Longest side [px] accepted as is by default; larger inputs are downscaled (see ``cap_size``).
DEFAULT_MAX_INPUT_SIDE = 4096


def to_rgb_uint8(image: object) -> np.ndarray:
    """Return ``image`` as a C-contiguous RGB uint8 (H, W, 3) array, or raise ValueError.

    Accepted: (H, W) or (H, W, 1) grey (replicated to 3 channels), (H, W, 3) RGB, (H, W, 4)
    RGBA (alpha dropped). dtypes: uint8 as is; uint16 scaled by 1/257; other integers when
    all values lie in 0..255; floats in [0, 1] (scaled by 255) or [0, 255] (clipped). Refused:
    empty images, bool, complex, NaN/inf, other channel counts or dimensions.
    """
    if not isinstance(image, np.ndarray):
        if image is None:
            raise ValueError("image is None")
        image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    h, w, c = image.shape
    if h == 0 or w == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if c not in (1, 3, 4):
        raise ValueError(f"image must have 1, 3 or 4 channels, got {c}")
    image = _to_uint8(image)
    if c == 1:
        image = np.repeat(image, 3, axis=2)
    elif c == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert pixel values to uint8 following the rules of ``to_rgb_uint8``."""
    dtype = image.dtype
    if dtype == np.uint8:
        return image
    if dtype.kind in "bcOUSV":
        raise ValueError(f"image dtype {dtype} is not a pixel type; expected uint8")
    if dtype == np.uint16:
        return (image.astype(np.uint32) // 257).astype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        lo, hi = int(image.min()), int(image.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"integer image ({dtype}) has values in [{lo}, {hi}], outside 0..255; "
                "convert it to uint8 first"
            )
        return image.astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError("float image contains NaN or infinite values")
        scale = 255.0 if float(image.max()) <= 1.0 else 1.0
        return np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {dtype}")


def resize_max_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale ``image`` so its longer side is at most ``max_side``; return it and the scale.

    ``max_side <= 0`` or an image already small enough returns the input and scale 1.0.
    Coordinates in the returned image divided by the scale are coordinates in the input.
    """
    h, w = image.shape[:2]
    longest = max(h, w)
    if max_side <= 0 or longest <= max_side:
        return image, 1.0
    scale = max_side / float(longest)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def cap_size(image: np.ndarray, max_side: int = DEFAULT_MAX_INPUT_SIDE) -> tuple[np.ndarray, float]:
    """Bound a (validated) image's longer side to ``max_side``, logging when it had to shrink."""
    capped, scale = resize_max_side(image, max_side)
    if scale != 1.0:
        logger.debug("input %dx%d downscaled by %.3f to the %d px cap",
                     image.shape[1], image.shape[0], scale, max_side)
    return capped, scale


def clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """Return ``box`` (x1, y1, x2, y2) clipped to an image of ``width`` x ``height`` px."""
    out = np.asarray(box, dtype=np.float32).copy()
    out[[0, 2]] = np.clip(out[[0, 2]], 0, width)
    out[[1, 3]] = np.clip(out[[1, 3]], 0, height)
    return out
