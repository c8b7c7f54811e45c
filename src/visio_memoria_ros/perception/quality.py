"""Face quality: how well a person could recognise this crop, and the gate before memory.

Measured on what is kept (``assess_face``): the canonical aligned crop (``core.face_crop``),
with the box, the 5 landmarks and the detector score of the face it came from.

    score       detector confidence
    face_px     shorter side of the face box in source pixels
    yaw         |nose - eye midpoint| along the eye axis / half the eye distance: 0 frontal,
                about 1 when the nose tip reaches an eye (a 3/4 view), more in profile. Eyes and
                nose only: the mouth corners are the landmarks detectors place worst (a hand or
                a microphone over the mouth), and must not decide a face's pose
    eye_ratio   eye distance / box width: both eyes visible (about 0.4 frontal, small in profile)
    sharpness   variance of the Laplacian of the crop's inner face (grey, 112 x 112): a small
                face is upsampled into the crop and is blurred there, so resolution counts too
    isotropy    variance of the second derivative across the weaker image axis / along the
                stronger one: motion blur smears one direction only (about 0.1), a sharp face
                keeps both (0.3 and more)
    brightness  mean grey level of the inner face; contrast its standard deviation; clipped the
                fraction of its pixels at <= 5 or >= 250 (under- or over-exposed)
    faceness    dlib's HOG frontal-face detector (``FacenessChecker``) on the aligned crop: an
                independent second opinion whose failures differ from the CNN detector's (hair
                seen from behind, a hand); NaN when not measured

    quality = size^0.2 * sharp^0.3 * pose^0.2 * exposure^0.1 * face^0.2   (weighted geometric
              mean; a factor not measured drops out and the weights are renormalised)
              size = min(face_px / size_ref, 1)          sharp = k / (k + sharpness_ref)
              pose = clip(1 - yaw / 2, 0.05, 1)          exposure = 1 - clipped
              face = sigmoid(2 * faceness)

No single landmark ratio can zero the score: a sharp, large face turned by 40 degrees keeps
a fair quality, and the back of a head with symmetric landmarks on its hair scores low on
faceness. ``QualityGate`` decides what memory keeps: every measure against a threshold, each
failure named (the reasons memory_node counts on /diagnostics). The thresholds are measured
on data by ``bench/calibrate_quality_gate.py`` (see bench/README.md for the table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from ..core.face_crop import INNER_BOX

#: Exponents of size, sharpness, pose, exposure and faceness (sum to 1).
QUALITY_WEIGHTS = {"size": 0.2, "sharpness": 0.3, "pose": 0.2, "exposure": 0.1, "faceness": 0.2}
#: Grey levels counted as clipped (under- / over-exposed).
DARK, BRIGHT = 5, 250


@dataclass(frozen=True)
class FaceAssessment:
    """What ``assess_face`` measured on one face crop, and the quality it makes."""

    score: float
    face_px: float
    yaw: float
    eye_ratio: float
    sharpness: float
    isotropy: float
    brightness: float
    contrast: float
    clipped: float
    faceness: float
    quality: float

    def as_dict(self) -> dict[str, float]:
        """The measures by name."""
        return asdict(self)


# -- measures ---------------------------------------------------------------------------------
def face_size(bbox: np.ndarray) -> float:
    """The shorter side of a box [px]."""
    return float(max(0.0, min(bbox[2] - bbox[0], bbox[3] - bbox[1])))


def size_score(bbox: np.ndarray, size_ref: float = 112.0) -> float:
    """Return min(box width, height) / size_ref clipped to [0, 1]."""
    return float(np.clip(face_size(bbox) / max(size_ref, 1e-6), 0.0, 1.0))


def pose_of(landmarks: np.ndarray | None, bbox: np.ndarray) -> tuple[float, float]:
    """Return (yaw, eye_ratio) from the eyes and the nose (see the module docstring).

    Without landmarks: (0, 0.4), no evidence against the face.
    """
    if landmarks is None:
        return 0.0, 0.4
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if not np.all(np.isfinite(pts[:3])):
        return 0.0, 0.4
    le, re, nose = pts[0], pts[1], pts[2]
    axis = re - le
    dist = float(np.linalg.norm(axis))
    width = float(max(bbox[2] - bbox[0], 1e-6))
    if dist < 1e-6:
        return math.inf, 0.0
    offset = float(np.dot(nose - 0.5 * (le + re), axis / dist))
    return abs(offset) / (0.5 * dist), dist / width


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the Laplacian of a grey image (higher = more detail)."""
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def inner_face(crop: np.ndarray, side: int = 112) -> np.ndarray:
    """The grey inner face of a canonical crop, resized to ``side`` x ``side``."""
    x1, y1, x2, y2 = INNER_BOX
    h, w = crop.shape[:2]
    if (h, w) != (192, 192):  # not canonical: use it whole
        x1, y1, x2, y2 = 0, 0, w, h
    region = _grey(crop[y1:y2, x1:x2])
    return cv2.resize(region, (side, side), interpolation=cv2.INTER_AREA)


def box_region(image: np.ndarray, bbox: np.ndarray, side: int = 112) -> np.ndarray | None:
    """The grey box region of a whole image resized to ``side`` x ``side`` (None: too small)."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(np.floor(bbox[0]))), max(0, int(np.floor(bbox[1])))
    x2, y2 = min(w, int(np.ceil(bbox[2]))), min(h, int(np.ceil(bbox[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return cv2.resize(_grey(image[y1:y2, x1:x2]), (side, side), interpolation=cv2.INTER_AREA)


def sharpness_score(
    image: np.ndarray, bbox: np.ndarray, sharpness_ref: float = 100.0, side: int = 112
) -> float:
    """Return v / (v + sharpness_ref), v = Laplacian variance of the box resized to side x side."""
    region = box_region(image, bbox, side)
    if region is None:
        return 0.0
    var = laplacian_variance(region)
    return var / (var + max(sharpness_ref, 1e-6))


def isotropy_of(grey: np.ndarray) -> float:
    """Second-derivative variance across the weaker axis / the stronger one, in [0, 1]."""
    g = grey.astype(np.float64)
    dxx = float(cv2.Sobel(g, cv2.CV_64F, 2, 0, ksize=3).var())
    dyy = float(cv2.Sobel(g, cv2.CV_64F, 0, 2, ksize=3).var())
    top = max(dxx, dyy)
    return min(dxx, dyy) / top if top > 1e-9 else 0.0


def exposure_of(grey: np.ndarray) -> tuple[float, float, float]:
    """(mean, standard deviation, clipped fraction) of a grey face region."""
    g = grey.astype(np.float32)
    clipped = float(np.mean((grey <= DARK) | (grey >= BRIGHT)))
    return float(g.mean()), float(g.std()), clipped


# -- the combination ----------------------------------------------------------------------------
def combine(factors: Mapping[str, float]) -> float:
    """Weighted geometric mean of the factors present (``QUALITY_WEIGHTS``), in [0, 1]."""
    used = {k: float(np.clip(v, 1e-6, 1.0)) for k, v in factors.items() if math.isfinite(v)}
    total = sum(QUALITY_WEIGHTS[k] for k in used)
    if total <= 0:
        return 0.0
    log_q = sum(QUALITY_WEIGHTS[k] * math.log(v) for k, v in used.items()) / total
    return float(np.clip(math.exp(log_q), 0.0, 1.0))


def quality_factors(a: FaceAssessment, *, size_ref: float = 112.0,
                    sharpness_ref: float = 100.0) -> dict[str, float]:
    """The factors in [0, 1] that ``combine`` weighs (see the module docstring)."""
    return {
        "size": min(a.face_px / max(size_ref, 1e-6), 1.0),
        "sharpness": a.sharpness / (a.sharpness + max(sharpness_ref, 1e-6)),
        "pose": float(np.clip(1.0 - a.yaw / 2.0, 0.05, 1.0)) if math.isfinite(a.yaw) else 0.05,
        "exposure": 1.0 - a.clipped,
        "faceness": (1.0 / (1.0 + math.exp(-2.0 * a.faceness)) if math.isfinite(a.faceness)
                     else math.nan),
    }


def assess_face(
    crop: np.ndarray | None,
    bbox: np.ndarray,
    landmarks: np.ndarray | None,
    score: float,
    *,
    image: np.ndarray | None = None,
    faceness: float = math.nan,
    size_ref: float = 112.0,
    sharpness_ref: float = 100.0,
) -> FaceAssessment:
    """Measure one face: on its canonical ``crop`` when given, else on its box in ``image``.

    ``bbox`` and ``landmarks`` are in source-image pixels; ``faceness`` comes from a
    ``FacenessChecker`` (NaN: not measured, left out of the quality).
    """
    bbox = np.asarray(bbox, dtype=np.float32)
    yaw, eye_ratio = pose_of(landmarks, bbox)
    if crop is not None:
        grey = inner_face(crop)
    else:
        region = box_region(image, bbox) if image is not None else None
        grey = region if region is not None else np.zeros((112, 112), np.uint8)
    sharp = laplacian_variance(grey)
    brightness, contrast, clipped = exposure_of(grey)
    partial = FaceAssessment(float(score), face_size(bbox), yaw, eye_ratio, sharp,
                             isotropy_of(grey), brightness, contrast, clipped, float(faceness),
                             0.0)
    q = combine(quality_factors(partial, size_ref=size_ref, sharpness_ref=sharpness_ref))
    return FaceAssessment(**{**partial.as_dict(), "quality": q})


def face_quality(
    image: np.ndarray,
    bbox: np.ndarray,
    landmarks: np.ndarray | None,
    *,
    crop: np.ndarray | None = None,
    score: float = 1.0,
    size_ref: float = 112.0,
    sharpness_ref: float = 100.0,
) -> float:
    """Return the face quality in [0, 1] without the faceness check (see ``assess_face``)."""
    return assess_face(crop, bbox, landmarks, score, image=image, size_ref=size_ref,
                       sharpness_ref=sharpness_ref).quality


# -- the second opinion -------------------------------------------------------------------------
class FacenessChecker:
    """dlib's HOG frontal-face detector on a canonical crop: the best detection score whose box
    holds the crop's centre (−2 when none: the HOG search runs down to that threshold).

    dlib ships the detector inside its wheel (no model file); it looks at gradients, not at the
    textures a CNN learnt, so the two rarely fail on the same crop. About 5-20 ms per crop on
    one CPU core, so it runs only where a face is about to be remembered.
    """

    FLOOR = -2.0

    def __init__(self) -> None:
        """Load dlib's built-in HOG detector."""
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def __call__(self, crop: np.ndarray) -> float:
        """Return the faceness score of one crop (higher = more face-like)."""
        grey = np.ascontiguousarray(_grey(crop))
        h, w = grey.shape[:2]
        boxes, scores, _ = self._detector.run(grey, 0, self.FLOOR)
        best = self.FLOOR
        for box, s in zip(boxes, scores, strict=True):
            if box.left() <= w / 2 <= box.right() and box.top() <= h / 2 <= box.bottom():
                best = max(best, float(s))
        return best


# -- the gate -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class QualityGate:
    """Thresholds a face must pass to be remembered; ``reasons`` names each one it fails.

    Defaults come from ``bench/calibrate_quality_gate.py`` (BBT gallery crops and hand-labelled
    street.mp4 faces as positives; non-face detections, backs of heads and degraded copies as
    negatives; the table is in bench/README.md); memory_node's gate_* parameters default to
    the same values.
    """

    min_score: float = 0.9
    min_face_px: float = 29.364
    max_yaw: float = 1.245
    min_eye_ratio: float = 0.293
    min_sharpness: float = 10.84
    min_isotropy: float = 0.265
    min_brightness: float = 70.261
    max_brightness: float = 191.388
    min_contrast: float = 34.94
    max_clipped: float = 0.147
    min_faceness: float = -1.421

    def __post_init__(self) -> None:
        if self.min_brightness > self.max_brightness:
            raise ValueError(f"gate_min_brightness {self.min_brightness} is above "
                             f"gate_max_brightness {self.max_brightness}")

    #: Every reason ``reasons`` can give, in check order.
    REASONS = ("low_score", "too_small", "turned_away", "eyes_hidden", "blurred",
               "motion_blurred", "too_dark", "too_bright", "flat", "clipped", "not_a_face")

    def reasons(self, a: FaceAssessment) -> list[str]:
        """The gate's reasons to refuse ``a`` (empty: remember it)."""
        out = []
        checks = (
            ("low_score", a.score < self.min_score),
            ("too_small", a.face_px < self.min_face_px),
            ("turned_away", not a.yaw <= self.max_yaw),
            ("eyes_hidden", a.eye_ratio < self.min_eye_ratio),
            ("blurred", a.sharpness < self.min_sharpness),
            ("motion_blurred", a.isotropy < self.min_isotropy),
            ("too_dark", a.brightness < self.min_brightness),
            ("too_bright", a.brightness > self.max_brightness),
            ("flat", a.contrast < self.min_contrast),
            ("clipped", a.clipped > self.max_clipped),
            ("not_a_face", math.isfinite(a.faceness) and a.faceness < self.min_faceness),
        )
        for name, failed in checks:
            if failed:
                out.append(name)
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, Any], prefix: str = "gate_") -> QualityGate:
        """Build from ``{prefix + field: value}`` (missing = default)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k[len(prefix):]: float(v) for k, v in params.items()
                      if k.startswith(prefix) and k[len(prefix):] in names})
