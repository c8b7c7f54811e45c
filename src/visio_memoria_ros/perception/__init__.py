"""Perception: face and person detection, face quality, tracking, alignment, the Perceiver.

Imports only ``core`` and ``config`` of this package, never rclpy. Heavy libraries (torch,
facenet-pytorch, ultralytics) are imported when a backend that needs them is built.
"""

from __future__ import annotations

from .faces import (
    FACE_BACKENDS,
    FaceDetector,
    HaarFaceDetector,
    MtcnnFaceDetector,
    YoloFaceDetector,
    canonical_landmarks,
    create_face_detector,
    landmarks_from_box,
    parse_yolo_faces,
)
from .image import cap_size, resize_max_side, to_rgb_uint8
from .persons import (
    PERSON_BACKENDS,
    FaceExtrapolatedPersonDetector,
    HogPersonDetector,
    PersonDetector,
    YoloPersonDetector,
    body_box_from_face,
    create_person_detector,
    scene_crop,
)
from .pipeline import RUNTIME_FIELDS, STAGES, Perceiver, PerceiverConfig
from .quality import (
    FaceAssessment,
    FacenessChecker,
    QualityGate,
    assess_face,
    face_quality,
)
from .tracking import ObservationTracker, associate_faces_to_persons, link_faces_to_persons

__all__ = [
    "FACE_BACKENDS",
    "PERSON_BACKENDS",
    "RUNTIME_FIELDS",
    "STAGES",
    "FaceAssessment",
    "FaceDetector",
    "FaceExtrapolatedPersonDetector",
    "FacenessChecker",
    "HaarFaceDetector",
    "HogPersonDetector",
    "MtcnnFaceDetector",
    "ObservationTracker",
    "Perceiver",
    "PerceiverConfig",
    "PersonDetector",
    "QualityGate",
    "YoloFaceDetector",
    "YoloPersonDetector",
    "assess_face",
    "associate_faces_to_persons",
    "body_box_from_face",
    "canonical_landmarks",
    "cap_size",
    "create_face_detector",
    "create_person_detector",
    "face_quality",
    "landmarks_from_box",
    "link_faces_to_persons",
    "parse_yolo_faces",
    "resize_max_side",
    "scene_crop",
    "to_rgb_uint8",
]
