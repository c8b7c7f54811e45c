"""Face quality in [0, 1]: is this crop worth embedding? Size, sharpness and frontality.

    size       s = clip(min(w, h) / size_ref, 0, 1)            (size_ref = 112 px, ArcFace input)
    sharpness  k = v / (v + sharpness_ref)                     v = var(Laplacian) of the face
               region in grey, resized to 112 x 112 (so the measure is per embedder pixel)
    frontality f = sqrt(r_eyes * r_mouth), r = min(a, b) / max(a, b) where a, b are the nose's
               distances to the left and right eye (mouth corner) measured along the eye axis;
               0 when the nose is outside the pair (profile), 1 when perfectly symmetric;
               1 when landmarks are missing (no evidence against)
    quality    q = s^0.4 * k^0.3 * f^0.3                        (weighted geometric mean)

A geometric mean lets any one very bad factor (tiny, blurred, profile) pull the score down.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Exponents of size, sharpness and frontality in the weighted geometric mean (sum to 1).
QUALITY_WEIGHTS = (0.4, 0.3, 0.3)


@dataclass(frozen=True)
class QualityParts:
    """The three factors of a face quality score and their combination, all in [0, 1]."""

    size: float
    sharpness: float
    frontality: float
    quality: float


def size_score(bbox: np.ndarray, size_ref: float = 112.0) -> float:
    """Return min(box width, height) / size_ref clipped to [0, 1]."""
    w, h = float(bbox[2] - bbox[0]), float(bbox[3] - bbox[1])
    return float(np.clip(min(w, h) / max(size_ref, 1e-6), 0.0, 1.0))


def sharpness_score(
    image: np.ndarray, bbox: np.ndarray, sharpness_ref: float = 100.0, side: int = 112
) -> float:
    """Return v / (v + sharpness_ref), v = Laplacian variance of the box resized to side x side."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(np.floor(bbox[0]))), max(0, int(np.floor(bbox[1])))
    x2, y2 = min(w, int(np.ceil(bbox[2]))), min(h, int(np.ceil(bbox[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    region = image[y1:y2, x1:x2]
    grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY) if region.ndim == 3 else region
    grey = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA)
    var = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return var / (var + max(sharpness_ref, 1e-6))


def frontality_score(landmarks: np.ndarray | None) -> float:
    """Return the landmark symmetry in [0, 1] (1 = frontal); 1.0 when landmarks are None."""
    if landmarks is None:
        return 1.0
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    le, re, nose, lm, rm = pts
    axis = re - le
    norm = float(np.linalg.norm(axis))
    if norm < 1e-6:
        return 0.0
    axis /= norm

    def _ratio(left: np.ndarray, right: np.ndarray) -> float:
        a, b = float(np.dot(nose - left, axis)), float(np.dot(right - nose, axis))
        if a <= 0 or b <= 0:
            return 0.0
        return min(a, b) / max(a, b)

    return float(np.sqrt(_ratio(le, re) * _ratio(lm, rm)))


def quality_parts(
    image: np.ndarray,
    bbox: np.ndarray,
    landmarks: np.ndarray | None,
    *,
    size_ref: float = 112.0,
    sharpness_ref: float = 100.0,
) -> QualityParts:
    """Return the size, sharpness and frontality factors and the combined quality."""
    s = size_score(bbox, size_ref)
    k = sharpness_score(image, bbox, sharpness_ref)
    f = frontality_score(landmarks)
    ws, wk, wf = QUALITY_WEIGHTS
    q = (s**ws) * (k**wk) * (f**wf)
    return QualityParts(size=s, sharpness=k, frontality=f, quality=float(np.clip(q, 0.0, 1.0)))


def face_quality(
    image: np.ndarray,
    bbox: np.ndarray,
    landmarks: np.ndarray | None,
    *,
    size_ref: float = 112.0,
    sharpness_ref: float = 100.0,
) -> float:
    """Return the face quality in [0, 1] (see the module docstring for the formula)."""
    return quality_parts(
        image, bbox, landmarks, size_ref=size_ref, sharpness_ref=sharpness_ref
    ).quality
