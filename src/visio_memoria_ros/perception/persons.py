"""Person (body) detectors: YOLOv8 class 0, OpenCV HOG, or a body box extrapolated from a face.

Every backend returns ``PersonObservation`` s whose ``detector`` names the method, so a
consumer can tell a measured body box from an extrapolated one. ``scene_crop`` cuts the body
with some surroundings for scene/activity embedders.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..core.types import FaceObservation, PersonObservation
from .faces import import_yolo, require_file, yolo_half
from .image import clip_box, resize_max_side

logger = logging.getLogger(__name__)

PERSON_BACKENDS = ("yolo", "hog", "face_extrapolated", "none")


@runtime_checkable
class PersonDetector(Protocol):
    """Finds people (body boxes) in an RGB uint8 image; may use the faces already found."""

    name: str

    def detect(
        self, image: np.ndarray, faces: Sequence[FaceObservation] = ()
    ) -> list[PersonObservation]:
        """Return the persons found in ``image`` (RGB uint8, H x W x 3)."""
        ...


class YoloPersonDetector:
    """Ultralytics YOLOv8 detector from a local file; keeps COCO class 0 (person) only."""

    name = "yolo"

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str],
        device: str = "cpu",
        score_threshold: float = 0.5,
        iou_threshold: float = 0.5,
        imgsz: int = 640,
        precision: str = "fp32",
    ) -> None:
        """Load the model once; FileNotFoundError when ``model_path`` does not exist."""
        half = yolo_half(precision, device)
        path = require_file(model_path, "YOLOv8 person model")
        yolo = import_yolo("person_backend 'yolo'")
        self.model = yolo(str(path), task="detect")
        names = getattr(self.model, "names", None) or {}
        if names and str(names.get(0, "person")) != "person":
            logger.warning("%s: class 0 is %r, not 'person'; using class 0 anyway", path, names[0])
        self.device = device
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.imgsz = int(imgsz)
        self.half = half

    def detect(
        self, image: np.ndarray, faces: Sequence[FaceObservation] = ()
    ) -> list[PersonObservation]:
        """Return class-0 boxes above the score threshold (``faces`` is unused)."""
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        result = self.model.predict(
            bgr, conf=self.score_threshold, iou=self.iou_threshold, imgsz=self.imgsz,
            classes=[0], device=self.device, half=self.half, verbose=False,
        )[0]
        if result.boxes is None or len(result.boxes) == 0:
            return []
        h, w = image.shape[:2]
        xyxy = result.boxes.xyxy.cpu().numpy().astype(np.float32)
        conf = result.boxes.conf.cpu().numpy().astype(np.float32)
        cls = result.boxes.cls.cpu().numpy().astype(int)
        return [
            PersonObservation(bbox=clip_box(b, w, h), score=float(s), detector=self.name)
            for b, s, c in zip(xyxy, conf, cls, strict=True)
            if c == 0
        ]


class HogPersonDetector:
    """OpenCV HOG + linear SVM people detector (ships with opencv-python < 5); upright people."""

    name = "hog"

    def __init__(
        self,
        *,
        max_side: int = 640,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        win_stride: int = 8,
        scale: float = 1.05,
    ) -> None:
        """Create the HOG descriptor with the default people SVM."""
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.max_side = int(max_side)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.win_stride = int(win_stride)
        self.scale = float(scale)

    def detect(
        self, image: np.ndarray, faces: Sequence[FaceObservation] = ()
    ) -> list[PersonObservation]:
        """Return people at least 128 px tall in the detection image; score = sigmoid(SVM)."""
        small, scale = resize_max_side(image, self.max_side)
        if small.shape[0] < 128 or small.shape[1] < 64:
            return []
        rects, weights = self._hog.detectMultiScale(
            cv2.cvtColor(small, cv2.COLOR_RGB2GRAY),
            winStride=(self.win_stride, self.win_stride), padding=(8, 8), scale=self.scale,
        )
        rects = np.reshape(rects, (-1, 4))
        if len(rects) == 0:
            return []
        scores = 1.0 / (1.0 + np.exp(-np.reshape(weights, -1).astype(np.float64)))
        keep = cv2.dnn.NMSBoxes(
            rects.tolist(), scores.tolist(), self.score_threshold, self.nms_threshold
        )
        h, w = image.shape[:2]
        out = []
        for i in np.reshape(keep, -1):
            x, y, bw, bh = rects[i]
            box = np.array([x, y, x + bw, y + bh], np.float32) / scale
            out.append(PersonObservation(
                bbox=clip_box(box, w, h), score=float(scores[i]), detector=self.name
            ))
        return out


class FaceExtrapolatedPersonDetector:
    """Body box derived from each face box; costs nothing, assumes an upright person."""

    name = "face_extrapolated"

    def __init__(
        self, *, width_faces: float = 3.0, height_faces: float = 7.0, top_faces: float = 0.3
    ) -> None:
        """Set the body geometry in face-box units (see ``body_box_from_face``)."""
        self.width_faces = float(width_faces)
        self.height_faces = float(height_faces)
        self.top_faces = float(top_faces)

    def detect(
        self, image: np.ndarray, faces: Sequence[FaceObservation] = ()
    ) -> list[PersonObservation]:
        """Return one person per face, score = the face's score, box clipped to the image."""
        h, w = image.shape[:2]
        return [
            PersonObservation(
                bbox=body_box_from_face(
                    f.bbox, w, h, width_faces=self.width_faces,
                    height_faces=self.height_faces, top_faces=self.top_faces,
                ),
                score=f.score,
                detector=self.name,
            )
            for f in faces
        ]


def body_box_from_face(
    face_box: np.ndarray,
    width: int,
    height: int,
    *,
    width_faces: float = 3.0,
    height_faces: float = 7.0,
    top_faces: float = 0.3,
) -> np.ndarray:
    """Extrapolate an upright body box from a face box, clipped to a ``width`` x ``height`` image.

    With face width fw, height fh and centre x cx: the body is ``width_faces * fw`` wide,
    centred on cx (shoulders are about 3 face widths); its top is ``top_faces * fh`` above the
    face box (hair); it is ``height_faces * fh`` tall (an adult is about 7-8 heads tall).
    """
    x1, y1, x2, y2 = np.asarray(face_box, dtype=np.float32)
    fw, fh = x2 - x1, y2 - y1
    cx = 0.5 * (x1 + x2)
    top = y1 - top_faces * fh
    box = np.array(
        [cx - 0.5 * width_faces * fw, top, cx + 0.5 * width_faces * fw, top + height_faces * fh],
        dtype=np.float32,
    )
    return clip_box(box, width, height)


def scene_crop(
    image: np.ndarray, bbox: np.ndarray, *, context: float = 0.25, max_side: int = 384
) -> np.ndarray:
    """Cut ``bbox`` grown by ``context`` x its size on every side, clipped, shrunk to ``max_side``.

    ``context=0.25`` makes a box 1.5 times as wide and tall as the body (before clipping);
    ``max_side`` <= 0 keeps full resolution; small crops are never upscaled.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = np.asarray(bbox, dtype=np.float32)
    mx, my = context * (x2 - x1), context * (y2 - y1)
    cx1, cy1, cx2, cy2 = clip_box(np.array([x1 - mx, y1 - my, x2 + mx, y2 + my]), w, h)
    ix1, iy1 = min(int(np.floor(cx1)), w - 1), min(int(np.floor(cy1)), h - 1)
    ix2, iy2 = max(ix1 + 1, int(np.ceil(cx2))), max(iy1 + 1, int(np.ceil(cy2)))
    crop = image[iy1:iy2, ix1:ix2]  # at least 1 x 1 px, even for a degenerate box
    return np.ascontiguousarray(resize_max_side(crop, max_side)[0])


def create_person_detector(
    backend: str,
    *,
    model_path: str = "",
    device: str = "cpu",
    score_threshold: float = 0.5,
    max_side: int = 640,
    width_faces: float = 3.0,
    height_faces: float = 7.0,
    precision: str = "fp32",
) -> PersonDetector | None:
    """Build the person detector ``backend`` (one of PERSON_BACKENDS); None for ``'none'``."""
    if backend == "none":
        return None
    if backend == "yolo":
        imgsz = max(32, int(np.ceil(max_side / 32.0)) * 32) if max_side > 0 else 640
        return YoloPersonDetector(
            model_path=model_path, device=device, score_threshold=score_threshold, imgsz=imgsz,
            precision=precision,
        )
    if backend == "hog":
        return HogPersonDetector(max_side=max_side, score_threshold=score_threshold)
    if backend == "face_extrapolated":
        return FaceExtrapolatedPersonDetector(width_faces=width_faces, height_faces=height_faces)
    raise ValueError(f"unknown person backend {backend!r}; choose one of {list(PERSON_BACKENDS)}")
