"""The canonical aligned face crop that every embedder derives its input from.

One alignment for all: a 5-point similarity transform maps the landmarks onto the standard
ArcFace 112x112 template, placed in the middle of a larger crop with a margin. The stored
crop therefore serves any embedder, now or after the configured embedder changes:
ArcFace-style models take the inner box, dlib re-detects its own landmarks inside it, DINOv3
resizes it.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The ArcFace (InsightFace) 112x112 template: eyes, nose tip, mouth corners.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)

#: Side of the canonical crop [px].
CANONICAL_SIZE = 192
#: Where the 112x112 ArcFace box sits inside the canonical crop: (x1, y1, x2, y2) [px].
INNER_BOX = (32, 32, 160, 160)
_INNER_SCALE = (INNER_BOX[2] - INNER_BOX[0]) / 112.0
CANONICAL_TEMPLATE = ARCFACE_TEMPLATE_112 * _INNER_SCALE + np.float32(INNER_BOX[0])


def alignment_matrix(landmarks: np.ndarray) -> np.ndarray:
    """Return the 2x3 similarity transform taking image landmarks (5, 2) onto the template."""
    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    if not np.all(np.isfinite(src)):
        raise ValueError("landmarks contain NaN or infinite values")
    matrix, _ = cv2.estimateAffinePartial2D(src, CANONICAL_TEMPLATE, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("landmarks are degenerate; no similarity transform fits them")
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Return the canonical CANONICAL_SIZE x CANONICAL_SIZE aligned crop of one face."""
    matrix = alignment_matrix(landmarks)
    return cv2.warpAffine(
        image,
        matrix,
        (CANONICAL_SIZE, CANONICAL_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def inner_crop(canonical: np.ndarray, size: int = 112) -> np.ndarray:
    """Return the ArcFace-style ``size`` x ``size`` crop from a canonical crop."""
    x1, y1, x2, y2 = INNER_BOX
    inner = canonical[y1:y2, x1:x2]
    if inner.shape[0] != size:
        inner = cv2.resize(inner, (size, size), interpolation=cv2.INTER_AREA)
    return inner
