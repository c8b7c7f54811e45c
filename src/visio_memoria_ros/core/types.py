"""Dataclasses that flow through the pipeline: one face, one person, one frame.

Conventions: images are RGB ``uint8`` arrays of shape (H, W, 3); boxes are float32
``(x1, y1, x2, y2)`` in pixels of the source image; landmarks are float32 (5, 2) in the order
left eye, right eye, nose tip, left mouth corner, right mouth corner ("left" = smaller x);
embeddings are float32, L2-normalised, 1-D.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

NO_TRACK = -1


def as_box(bbox: object) -> np.ndarray:
    """Return ``bbox`` as a validated float32 (4,) array with x1 <= x2 and y1 <= y2."""
    box = np.asarray(bbox, dtype=np.float32).reshape(-1)
    if box.shape != (4,):
        raise ValueError(f"a box has 4 numbers (x1, y1, x2, y2), got shape {box.shape}")
    if not np.all(np.isfinite(box)):
        raise ValueError(f"box has non-finite coordinates: {box.tolist()}")
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"box corners are inverted: {box.tolist()}")
    return box


def as_landmarks(landmarks: object | None) -> np.ndarray | None:
    """Return landmarks as a float32 (5, 2) array, or None when absent or all NaN."""
    if landmarks is None:
        return None
    pts = np.asarray(landmarks, dtype=np.float32).reshape(-1)
    if pts.size == 0 or np.all(np.isnan(pts)):
        return None
    if pts.shape != (10,):
        raise ValueError(f"5 landmarks need 10 numbers, got {pts.size}")
    return pts.reshape(5, 2)


def l2_normalize(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Return float32 rows scaled to unit length; raises on NaN/inf or all-zero rows."""
    v = np.asarray(vectors, dtype=np.float32)
    single = v.ndim == 1
    v = np.atleast_2d(v)
    if not np.all(np.isfinite(v)):
        raise ValueError("embedding contains NaN or infinite values")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if np.any(norms < eps):
        raise ValueError("embedding has zero length and cannot be normalised")
    out = v / norms
    return out[0] if single else out


def box_area(box: np.ndarray) -> float:
    """Area of an (x1, y1, x2, y2) box in square pixels."""
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


@dataclass
class FaceObservation:
    """One face in one image, filled in stage by stage (detect, track, align, embed)."""

    bbox: np.ndarray
    score: float
    detector: str
    landmarks: np.ndarray | None = None
    track_id: int = NO_TRACK
    quality: float = 0.0
    crop: np.ndarray | None = None
    embedding: np.ndarray | None = None
    embedder: str = ""

    def __post_init__(self) -> None:
        self.bbox = as_box(self.bbox)
        self.landmarks = as_landmarks(self.landmarks)
        self.score = float(self.score)


@dataclass
class PersonObservation:
    """One person (body) in one image, with its scene crop and activity once known."""

    bbox: np.ndarray
    score: float
    detector: str
    track_id: int = NO_TRACK
    face_track_id: int = NO_TRACK
    scene_crop: np.ndarray | None = None
    scene_embedding: np.ndarray | None = None
    scene_embedder: str = ""
    activity: str = ""
    activity_confidence: float = 0.0

    def __post_init__(self) -> None:
        self.bbox = as_box(self.bbox)
        self.score = float(self.score)


@dataclass
class Frame:
    """Everything perceived in one image; ``stamp`` in seconds, ``frame_id`` the camera frame."""

    stamp: float
    frame_id: str
    width: int
    height: int
    faces: list[FaceObservation] = field(default_factory=list)
    persons: list[PersonObservation] = field(default_factory=list)
    processing_time: float = 0.0
    #: The tracker run whose ids the faces carry (ids restart with each run); "" = unknown.
    track_session: str = ""


class Status(IntEnum):
    """Open-set identity status; values match ``Identity.msg`` STATUS_* constants.

    ``UNDECIDED`` is the zero value, so a message nobody filled in is never KNOWN; the
    identity engine never decides it.
    """

    UNDECIDED = 0
    KNOWN = 1
    UNKNOWN = 2
    UNCERTAIN = 3


@dataclass
class IdentityDecision:
    """The identity decided for one face track in one frame."""

    track_id: int
    bbox: np.ndarray
    status: Status = Status.UNCERTAIN
    person_id: int = -1
    name: str = ""
    similarity: float = float("nan")
    unknown_cluster_id: int = -1
    person_track_id: int = NO_TRACK
    new_evidence: bool = False
    embedding: np.ndarray | None = None
    embedder: str = ""
    quality: float = 0.0
    crop: np.ndarray | None = None
    #: Detector score and 5 landmarks (5, 2) of the face behind ``crop``.
    score: float = 0.0
    landmarks: np.ndarray | None = None
    #: Not KNOWN: the enrolled person this face's own embedding resembles in the uncertain
    #: band or above ("maybe <name>?"), and that similarity; -1 / NaN = none.
    candidate_person_id: int = -1
    candidate_similarity: float = float("nan")
