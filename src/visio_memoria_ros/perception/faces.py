"""Face detectors: one protocol, three backends (MTCNN, YOLOv8-face, OpenCV Haar).

Every backend takes an RGB uint8 image and returns ``FaceObservation`` s with a box, a score
in [0, 1] and five landmarks in the core order (left eye, right eye, nose, left mouth, right
mouth; "left" = smaller x), in the coordinates of the image it was given. Models load once, in
the constructor, from local files only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ..core.models import resolve_model
from ..core.types import FaceObservation
from .image import clip_box, resize_max_side

logger = logging.getLogger(__name__)

FACE_BACKENDS = ("mtcnn", "yolo", "haar")

#: MTCNN's P-Net, R-Net, O-Net score thresholds and pyramid factor (facenet-pytorch's).
MTCNN_THRESHOLDS = (0.6, 0.7, 0.7)
MTCNN_FACTOR = 0.709

#: Landmarks of a Haar face box as fractions of its width/height (x, y), in core order: the
#: mean MTCNN landmark position inside 104 Haar boxes of calibration faces (the BBT calibration
#: identities in the group photos and the street.mp4 strangers; std 0.07-0.10), measured by
#: ``python bench/measure_alignment.py``. Approximate by nature (no pose information), and so
#: is alignment.
HAAR_LANDMARKS_REL = np.array(
    [[0.32, 0.36], [0.68, 0.38], [0.49, 0.59], [0.32, 0.76], [0.62, 0.78]], dtype=np.float32
)


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in an RGB uint8 image; boxes, scores and 5 landmarks in image pixels."""

    name: str

    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        """Return the faces found in ``image`` (RGB uint8, H x W x 3)."""
        ...


def canonical_landmarks(points: np.ndarray) -> np.ndarray:
    """Return (5, 2) landmarks with each eye pair and mouth pair ordered by x (core order)."""
    pts = np.asarray(points, dtype=np.float32).reshape(5, 2).copy()
    for a, b in ((0, 1), (3, 4)):
        if pts[a, 0] > pts[b, 0]:
            pts[[a, b]] = pts[[b, a]]
    return pts


def require_file(path: str | os.PathLike[str], what: str) -> Path:
    """Return the model file ``path`` names (absolute, or in the model folders; never ./).

    Raises FileNotFoundError (``ModelNotFoundError``) naming every place searched.
    """
    return resolve_model(path, what)


def import_yolo(what: str) -> Any:
    """Return ultralytics' ``YOLO`` class; ImportError naming the optional package when absent."""
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise ImportError(
            f"{what} needs the optional ultralytics package (AGPL-3.0), which is not "
            f"installed ({exc}): pip install ultralytics (requirements/yolo.txt), or choose "
            "another backend"
        ) from exc
    return YOLO


def yolo_half(precision: str, device: str) -> bool:
    """Whether ultralytics should run ``half`` for ``precision`` on ``device``.

    YOLO runs fp32, or fp16 on CUDA (ultralytics' ``half``); bf16 is refused (ultralytics has
    no bf16 inference), fp16 off CUDA too (with device auto and no GPU: fp32, a warning).
    """
    from ..core.precision import device_type, effective_precision

    auto = (device or "").strip().lower() == "auto"
    name = effective_precision(precision, device_type(device), auto=auto)
    if name == "bf16":
        raise ValueError("precision bf16 is not available for YOLO (ultralytics runs fp32 or "
                         "fp16 on CUDA); use fp32 or fp16")
    return name == "fp16"


def _to_channels_last(net: Any) -> Any:
    """Make a torch module keep its weights and take its input in channels-last (NHWC) format."""
    import torch

    def nhwc_input(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])

    net.to(memory_format=torch.channels_last)
    net.register_forward_pre_hook(nhwc_input)
    return net


class MtcnnFaceDetector:
    """MTCNN with facenet-pytorch's weights (they ship inside that package; ``mtcnn.py`` runs
    the cascade without importing it), optional input downscale."""

    name = "mtcnn"

    def __init__(
        self,
        *,
        device: str = "cpu",
        min_face_size: int = 20,
        max_side: int = 0,
        score_threshold: float = 0.9,
        thresholds: tuple[float, float, float] = MTCNN_THRESHOLDS,
        factor: float = MTCNN_FACTOR,
    ) -> None:
        """Load the three MTCNN stages on ``device``; ``max_side`` > 0 downscales inputs."""
        import torch

        from .mtcnn import load_nets

        if min_face_size < 1:
            raise ValueError(f"min_face_size must be >= 1 px, got {min_face_size}")
        self._torch = torch
        self.device = torch.device(device)
        self.min_face_size = int(min_face_size)
        self.max_side = int(max_side)
        self.score_threshold = float(score_threshold)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self._nets = load_nets(self.device)
        if self.device.type == "cpu":
            # NHWC is ~2-3x faster for P-Net's 10-channel max-pooling on CPU (the bulk of the
            # detector's time); the outputs are the same.
            self._nets = tuple(_to_channels_last(net) for net in self._nets)

    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        """Return faces of at least ``min_face_size`` px (full-resolution) in ``image``."""
        from .mtcnn import detect_faces

        small, scale = resize_max_side(image, self.max_side)
        # min_face_size is in input pixels; the pyramid runs on the downscaled image.
        min_size = max(12.0, self.min_face_size * scale)
        if min(small.shape[:2]) < min_size:
            return []
        with self._torch.inference_mode():
            boxes, points = detect_faces(small, min_size, self._nets, self.thresholds,
                                         self.factor)
        h, w = image.shape[:2]
        faces = []
        for box, pts in zip(boxes.reshape(-1, 5), points.reshape(-1, 5, 2), strict=True):
            score = float(box[4])
            if score < self.score_threshold:
                continue
            bbox = clip_box(box[:4] / scale, w, h)
            if bbox[2] - bbox[0] < 1 or bbox[3] - bbox[1] < 1:
                continue
            faces.append(FaceObservation(
                bbox=bbox, score=score, detector=self.name,
                landmarks=canonical_landmarks(pts / scale),
            ))
        return faces

    def detect_regions(self, image: np.ndarray, boxes: Sequence[np.ndarray],
                       *, refinements: int = 3) -> list[FaceObservation]:
        """Find the faces of the previous frame again near their ``boxes`` (image pixels).

        MTCNN's last stage (O-Net) scores a square face proposal, regresses its box towards the
        face and places the 5 landmarks. Here the proposals are the known faces' boxes (made
        square, as MTCNN's own stages do), all in one batch, refined ``refinements`` times so
        the box follows a moving face: a few milliseconds for every face of the frame, where a
        full pass builds the whole image pyramid. A face that left its box (or the picture)
        scores low and is dropped until the next full pass finds it.
        """
        from .schedule import crop_region

        if not len(boxes):
            return []
        h, w = image.shape[:2]
        squares = np.stack([_square(b) for b in boxes]).astype(np.float32)
        onet = self._nets[2]
        score = np.zeros(len(squares), np.float32)
        points = np.zeros((len(squares), 5, 2), np.float32)
        for _ in range(max(1, refinements)):
            crops = np.stack([crop_region(image, sq, 48)[0] for sq in squares])
            x = self._torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float()
            with self._torch.inference_mode():
                reg, pts, prob = onet((x - 127.5) * 0.0078125)
            reg, pts, prob = (t.float().cpu().numpy() for t in (reg, pts, prob))
            side = (squares[:, 2] - squares[:, 0])[:, None]
            score = prob[:, 1]
            points = np.stack([squares[:, :1] + pts[:, :5] * side,
                               squares[:, 1:2] + pts[:, 5:] * side], axis=2)
            refined = squares + reg * np.tile(side, (1, 4))
            squares = np.stack([_square(b) for b in refined]).astype(np.float32)
        faces = []
        for box, s_, pts in zip(refined, score, points, strict=True):
            if float(s_) < max(self.score_threshold, self.thresholds[2]):
                continue
            bbox = clip_box(box, w, h)
            if bbox[2] - bbox[0] < 1 or bbox[3] - bbox[1] < 1:
                continue
            faces.append(FaceObservation(bbox=bbox, score=float(s_), detector=self.name,
                                         landmarks=canonical_landmarks(pts)))
        return faces

    def warmup(self, width: int = 640, height: int = 480) -> float:
        """Run every stage once on a blank frame and on region crops; return the seconds."""
        import time

        t0 = time.perf_counter()
        blank = np.full((height, width, 3), 128, np.uint8)
        self.detect(blank)
        self.detect_regions(blank, [np.array([0, 0, 64, 64], np.float32)])
        return time.perf_counter() - t0


class YoloFaceDetector:
    """Ultralytics YOLOv8-face (pose model with 5 keypoints) from a local .pt/.onnx/.engine."""

    name = "yolo"

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str],
        device: str = "cpu",
        score_threshold: float = 0.5,
        iou_threshold: float = 0.5,
        imgsz: int = 640,
        min_face_size: int = 0,
        precision: str = "fp32",
    ) -> None:
        """Load the model once; FileNotFoundError when ``model_path`` does not exist."""
        self.half = yolo_half(precision, device)
        path = require_file(model_path, "YOLOv8-face model")
        yolo = import_yolo("face_backend 'yolo'")
        self.model = yolo(str(path), task="pose")
        kpt_shape = getattr(getattr(self.model, "model", None), "kpt_shape", None)
        if kpt_shape is not None and int(kpt_shape[0]) != 5:
            raise ValueError(
                f"{path} is a pose model with {kpt_shape[0]} keypoints; a face model has 5"
            )
        self.device = device
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.imgsz = int(imgsz)
        self.min_face_size = int(min_face_size)

    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        """Return the faces found in ``image`` (RGB; converted to BGR for ultralytics)."""
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        results = self.model.predict(
            bgr, conf=self.score_threshold, iou=self.iou_threshold, imgsz=self.imgsz,
            device=self.device, half=self.half, verbose=False,
        )
        return parse_yolo_faces(results[0], detector=self.name, min_face_size=self.min_face_size)


def parse_yolo_faces(
    result: object, *, detector: str = "yolo", min_face_size: int = 0
) -> list[FaceObservation]:
    """Turn one ultralytics pose ``Results`` (N boxes, N x 5 keypoints) into observations."""
    boxes = result.boxes  # type: ignore[attr-defined]
    keypoints = result.keypoints  # type: ignore[attr-defined]
    if boxes is None or len(boxes) == 0:
        return []
    if keypoints is None:
        raise ValueError("the YOLO face model returned no keypoints: is it a pose model?")
    xyxy = boxes.xyxy.cpu().numpy().astype(np.float32)
    conf = boxes.conf.cpu().numpy().astype(np.float32)
    kpts = keypoints.xy.cpu().numpy().astype(np.float32)
    if kpts.ndim != 3 or kpts.shape[1:] != (5, 2):
        raise ValueError(f"expected (N, 5, 2) face keypoints, got {kpts.shape}")
    h, w = result.orig_shape  # type: ignore[attr-defined]
    faces = []
    for raw, score, pts in zip(xyxy, conf, kpts, strict=True):
        box = clip_box(raw, w, h)
        if min(box[2] - box[0], box[3] - box[1]) < max(1, min_face_size):
            continue
        faces.append(FaceObservation(
            bbox=box, score=float(score), detector=detector, landmarks=canonical_landmarks(pts)
        ))
    return faces


class HaarFaceDetector:
    """OpenCV frontal-face Haar cascade: very light, frontal only, landmarks estimated."""

    name = "haar"

    def __init__(
        self,
        *,
        cascade_path: str | os.PathLike[str] = "",
        min_face_size: int = 20,
        max_side: int = 0,
        min_neighbors: int = 5,
        scale_factor: float = 1.1,
    ) -> None:
        """Load the cascade (default: the one shipped with opencv-python < 5)."""
        if not str(cascade_path):
            cascade_path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        path = require_file(cascade_path, "Haar cascade")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ValueError(f"{path} is not a valid OpenCV cascade")
        self.min_face_size = int(min_face_size)
        self.max_side = int(max_side)
        self.min_neighbors = int(min_neighbors)
        self.scale_factor = float(scale_factor)

    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        """Return frontal faces; score = 1 - exp(-neighbours / min_neighbors); approx. landmarks."""
        small, scale = resize_max_side(image, self.max_side)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_px = max(1, round(self.min_face_size * scale))
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(min_px, min_px),
        )
        h, w = image.shape[:2]
        faces = []
        rects, neighbours = np.reshape(rects, (-1, 4)), np.reshape(neighbours, -1)
        for (x, y, bw, bh), n in zip(rects, neighbours, strict=True):
            box = clip_box(np.array([x, y, x + bw, y + bh], np.float32) / scale, w, h)
            faces.append(FaceObservation(
                bbox=box,
                score=float(1.0 - np.exp(-float(n) / max(1, self.min_neighbors))),
                detector=self.name,
                landmarks=landmarks_from_box(box),
            ))
        return faces


def _square(box: np.ndarray) -> np.ndarray:
    """The square box of the same centre whose side is the box's longer side."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(x2 - x1, y2 - y1, 1.0)
    cx, cy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def landmarks_from_box(box: np.ndarray) -> np.ndarray:
    """Approximate 5 landmarks for a frontal face box (``HAAR_LANDMARKS_REL`` geometry)."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float32)
    size = np.array([x2 - x1, y2 - y1], dtype=np.float32)
    return HAAR_LANDMARKS_REL * size + np.array([x1, y1], dtype=np.float32)


def create_face_detector(
    backend: str,
    *,
    model_path: str = "",
    device: str = "cpu",
    min_face_size: int = 20,
    max_side: int = 0,
    score_threshold: float = 0.9,
    precision: str = "fp32",
) -> FaceDetector:
    """Build the face detector ``backend`` (one of FACE_BACKENDS) from local files."""
    if backend == "mtcnn":
        return MtcnnFaceDetector(
            device=device, min_face_size=min_face_size, max_side=max_side,
            score_threshold=score_threshold,
        )
    if backend == "yolo":
        imgsz = max(32, int(np.ceil(max_side / 32.0)) * 32) if max_side > 0 else 640
        return YoloFaceDetector(
            model_path=model_path, device=device, score_threshold=score_threshold,
            imgsz=imgsz, min_face_size=min_face_size, precision=precision,
        )
    if backend == "haar":
        return HaarFaceDetector(
            cascade_path=model_path, min_face_size=min_face_size, max_side=max_side
        )
    raise ValueError(f"unknown face backend {backend!r}; choose one of {list(FACE_BACKENDS)}")
