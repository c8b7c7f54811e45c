"""When to run the full-frame face detector, and where to look for known faces in between.

A full-resolution detector pass (MTCNN's pyramid down to ``min_face_size``) is the most
expensive stage of the graph. ``DetectionSchedule`` runs it on every ``full_detect_interval``-th
frame, and earlier when something moved where no face is tracked (a person may have walked
in). On the frames in between, the faces of the previous frame are looked for again in their
regions only (``region_boxes``: squares ``region_scale`` x the face's size around it), where the
detector runs on small crops with a short pyramid (MTCNN: all regions in one batch). A face
that a region pass misses is found again by the next full pass; the tracker keeps its id
meanwhile (its buffer counts frames).

Motion: a 80x60 grey thumbnail of each frame is compared with the thumbnail of the last full
pass; the fraction of thumbnail pixels that changed by more than ``MOTION_PIXEL_DELTA`` grey
levels, outside the regions of the faces already known, is the motion score. A score at or
above ``motion_threshold`` (0 = never) starts a full pass at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.types import FaceObservation

#: Side of the motion thumbnail (width, height) [px].
MOTION_SIZE = (80, 60)
#: A thumbnail pixel counts as changed above this grey-level difference.
MOTION_PIXEL_DELTA = 20


def region_boxes(boxes: Sequence[np.ndarray], scale: float) -> list[np.ndarray]:
    """Square search regions (x1, y1, x2, y2), ``scale`` x each box's longer side, centred on
    it; they may extend past the image border (the crop is black there)."""
    out = []
    for b in boxes:
        x1, y1, x2, y2 = (float(v) for v in b)
        side = max(x2 - x1, y2 - y1, 1.0) * scale
        cx, cy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
        out.append(np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2],
                            dtype=np.float32))
    return out


def crop_region(image: np.ndarray, region: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """The ``size`` x ``size`` crop of ``region`` (black outside the image) and its scale
    (crop px per image px)."""
    x1, y1, x2, y2 = (float(v) for v in region)
    scale = size / max(x2 - x1, 1.0)
    h, w = image.shape[:2]
    ix1, iy1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    ix2, iy2 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
    out = np.zeros((size, size, 3), np.uint8)
    if ix2 - ix1 < 2 or iy2 - iy1 < 2:
        return out, scale
    part = image[iy1:iy2, ix1:ix2]
    pw = max(1, min(size, round((ix2 - ix1) * scale)))
    ph = max(1, min(size, round((iy2 - iy1) * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    part = cv2.resize(part, (pw, ph), interpolation=interp)
    ox = min(size - pw, max(0, round((ix1 - x1) * scale)))
    oy = min(size - ph, max(0, round((iy1 - y1) * scale)))
    out[oy : oy + ph, ox : ox + pw] = part
    return out, scale  # crop px / scale + region origin = image px


def map_from_region(face: FaceObservation, region: np.ndarray, scale: float,
                    width: int, height: int) -> FaceObservation | None:
    """Move a face found in a region crop into image pixels (None when it leaves the image)."""
    origin = np.array(region[:2], dtype=np.float32)
    box = face.bbox / np.float32(scale) + np.tile(origin, 2)
    box = np.clip(box, 0, [width, height, width, height]).astype(np.float32)
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        return None
    face.bbox = box
    if face.landmarks is not None:
        face.landmarks = (face.landmarks / np.float32(scale) + origin).astype(np.float32)
    return face


def suppress_duplicates(faces: list[FaceObservation], iou: float = 0.5) -> list[FaceObservation]:
    """Drop faces overlapping a higher-scoring one by ``iou`` or more (overlapping regions)."""
    kept: list[FaceObservation] = []
    for f in sorted(faces, key=lambda x: x.score, reverse=True):
        if all(_iou(f.bbox, k.bbox) < iou for k in kept):
            kept.append(f)
    return kept


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The grey MOTION_SIZE thumbnail the motion score compares (int16)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, MOTION_SIZE, interpolation=cv2.INTER_AREA).astype(np.int16)


def motion_score(reference: np.ndarray, current: np.ndarray, regions: Sequence[np.ndarray],
                 width: int, height: int) -> float:
    """Fraction of thumbnail pixels outside ``regions`` that changed since ``reference``."""
    changed = np.abs(current - reference) > MOTION_PIXEL_DELTA
    mask = np.ones_like(changed)
    sx, sy = MOTION_SIZE[0] / width, MOTION_SIZE[1] / height
    for r in regions:
        x1, y1 = max(0, int(r[0] * sx)), max(0, int(r[1] * sy))
        x2, y2 = int(np.ceil(r[2] * sx)), int(np.ceil(r[3] * sy))
        mask[y1:y2, x1:x2] = False
    free = int(mask.sum())
    return float((changed & mask).sum() / free) if free else 0.0


@dataclass
class DetectionSchedule:
    """Decides per frame: a full-frame pass, or the known faces' regions only."""

    full_detect_interval: int = 1
    motion_threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.full_detect_interval < 1:
            raise ValueError(f"full_detect_interval must be >= 1, got {self.full_detect_interval}")
        if not 0.0 <= self.motion_threshold <= 1.0:
            raise ValueError(f"motion_threshold must be in [0, 1], got {self.motion_threshold}")
        self._since_full = 0
        self._reference: np.ndarray | None = None
        self._size: tuple[int, int] | None = None
        self.full_passes = 0
        self.region_passes = 0
        self.motion_triggers = 0
        #: Full passes run because a region pass lost a known face (counted by the caller).
        self.lost_triggers = 0

    def reset(self) -> None:
        """Forget the reference frame: the next frame gets a full pass."""
        self._since_full = 0
        self._reference = None
        self._size = None

    def full_pass_due(self, image: np.ndarray, regions: Sequence[np.ndarray]) -> bool:
        """True when this frame needs a full-frame pass (then call ``did_full_pass``); ``regions``
        are the known faces' search regions (masked out of the motion score)."""
        h, w = image.shape[:2]
        if (
            self.full_detect_interval <= 1 or self._reference is None or self._size != (w, h)
            or self._since_full + 1 >= self.full_detect_interval
        ):
            return True
        if self.motion_threshold > 0.0:
            score = motion_score(self._reference, thumbnail(image), regions, w, h)
            if score >= self.motion_threshold:
                self.motion_triggers += 1
                return True
        return False

    def did_full_pass(self, image: np.ndarray) -> None:
        """Record a full pass on ``image`` (the new motion reference)."""
        self._since_full = 0
        self.full_passes += 1
        h, w = image.shape[:2]
        self._size = (w, h)
        if self.motion_threshold > 0.0 and self.full_detect_interval > 1:
            self._reference = thumbnail(image)
        else:
            self._reference = np.zeros((1, 1), np.int16)

    def did_region_pass(self) -> None:
        """Record a region-only pass (undone by a ``did_full_pass`` on the same frame)."""
        self._since_full += 1
        self.region_passes += 1


__all__ = [
    "MOTION_PIXEL_DELTA",
    "MOTION_SIZE",
    "DetectionSchedule",
    "crop_region",
    "map_from_region",
    "motion_score",
    "region_boxes",
    "suppress_duplicates",
    "thumbnail",
]
