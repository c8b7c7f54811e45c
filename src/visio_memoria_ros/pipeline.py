"""Image in, faces with embeddings out: the non-ROS façade the CLI and the benchmarks use.

``FacePipeline`` composes the same rooms the nodes use: ``perception.Perceiver`` (detection,
quality, alignment to the canonical crop) and an ``embedding`` face embedder. Each image is
processed on its own (the tracker is reset per image: still photos are not a video).

Tight face crops: a photo that is only a face (a passport-style crop, the BBT gallery crops)
often defeats detectors that need some context around the face. When nothing is found,
``FacePipeline.detect`` retries once on the image padded with a black border of
``pad_retry`` x its longer side on every side; boxes and landmarks are mapped back to the
original image (boxes clipped to it), the aligned crop is cut from the padded image.

Never imports rclpy.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .core.types import FaceObservation, box_area
from .embedding import FaceEmbedder, build_face_embedder
from .perception import Perceiver, PerceiverConfig

logger = logging.getLogger(__name__)

#: Default border added on each side for the retry on tight face crops (x longer side).
DEFAULT_PAD_RETRY = 0.3


class ImageError(ValueError):
    """A file that cannot be read as an image; the message names the file and the reason."""


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); ImageError says why when it cannot."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, not an image file")
    try:
        data = np.fromfile(str(p), dtype=np.uint8)  # also works for non-ASCII paths
    except OSError as exc:
        raise ImageError(f"{p}: cannot be read ({exc.strerror or exc})") from exc
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        what = "is empty" if data.size == 0 else "is not an image OpenCV can decode"
        raise ImageError(f"{p}: {what}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def largest_face(faces: Sequence[FaceObservation]) -> FaceObservation | None:
    """The face with the largest box area, or None for no faces."""
    return max(faces, key=lambda f: box_area(f.bbox), default=None)


def perceiver_config_for_stills(params: Mapping[str, Any]) -> PerceiverConfig:
    """PerceiverConfig from detector_node parameters, with the person stages switched off."""
    config = PerceiverConfig.from_params(params)
    return dataclasses.replace(config, person_backend="none", scene_crops=False, face_crops=True)


class FacePipeline:
    """Detect, align and (optionally) embed the faces of still images, one image at a time."""

    def __init__(
        self,
        perceiver: Perceiver,
        embedder: FaceEmbedder | None = None,
        *,
        pad_retry: float = DEFAULT_PAD_RETRY,
    ) -> None:
        """Wrap a built Perceiver and face embedder; ``pad_retry`` 0 disables the retry."""
        if not 0.0 <= pad_retry <= 2.0:
            raise ValueError(f"pad_retry must be in [0, 2], got {pad_retry}")
        self.perceiver = perceiver
        self.embedder = embedder
        self.pad_retry = float(pad_retry)

    @classmethod
    def from_params(
        cls,
        detector_params: Mapping[str, Any],
        embedding_params: Mapping[str, Any] | None = None,
        *,
        face_embedder: str | None = None,
        pad_retry: float = DEFAULT_PAD_RETRY,
    ) -> FacePipeline:
        """Build from detector_node (and embedding_node) parameters; no embedder without them.

        ``face_embedder`` overrides the embedding parameter of that name (dlib|dinov3|onnx).
        """
        perceiver = Perceiver(perceiver_config_for_stills(detector_params))
        embedder = None
        if embedding_params is not None:
            params = dict(embedding_params)
            kind = face_embedder or str(params.get("face_embedder", "dlib"))
            embedder = build_face_embedder(kind, **params)
        return cls(perceiver, embedder, pad_retry=pad_retry)

    @property
    def embedder_id(self) -> str:
        """Id of the face embedder ('' when the pipeline only detects)."""
        return self.embedder.id if self.embedder is not None else ""

    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        """Faces of one RGB image with box, landmarks, score, quality and aligned crop."""
        self.perceiver.reset()
        faces = self.perceiver.process(image).faces
        if faces or self.pad_retry <= 0:
            return faces
        h, w = image.shape[:2]
        pad = max(1, round(self.pad_retry * max(h, w)))
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        self.perceiver.reset()
        faces = self.perceiver.process(padded).faces
        self.perceiver.reset()
        out = []
        for f in faces:
            box = f.bbox - np.float32(pad)
            box = np.clip(box, 0, [w, h, w, h]).astype(np.float32)
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue  # a detection in the border only
            f.bbox = box
            if f.landmarks is not None:
                f.landmarks = (f.landmarks - np.float32(pad)).astype(np.float32)
            out.append(f)
        if out:
            logger.debug("found %d face(s) only after padding the image by %d px", len(out), pad)
        return out

    def embed(self, faces: Sequence[FaceObservation]) -> list[FaceObservation]:
        """Fill ``embedding``/``embedder`` of every face that has an aligned crop; returns them."""
        if self.embedder is None:
            raise RuntimeError("this pipeline has no face embedder (built without its params)")
        todo = [f for f in faces if f.crop is not None]
        if todo:
            vectors = self.embedder.embed([f.crop for f in todo])
            for f, v in zip(todo, vectors, strict=True):
                f.embedding = v
                f.embedder = self.embedder.id
        return list(faces)

    def process(self, image: np.ndarray) -> list[FaceObservation]:
        """Detect, align and embed the faces of one RGB image."""
        return self.embed(self.detect(image))

    def process_file(self, path: str | Path) -> list[FaceObservation]:
        """``process`` of an image file (ImageError when the file is not a readable image)."""
        return self.process(load_image(path))


__all__ = [
    "DEFAULT_PAD_RETRY",
    "FacePipeline",
    "ImageError",
    "largest_face",
    "load_image",
    "perceiver_config_for_stills",
]
