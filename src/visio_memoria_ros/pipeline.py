"""The one pipeline: image -> faces (and persons) -> embeddings -> identity decisions.

``Pipeline`` composes exactly what the node graph runs: ``perception.Perceiver`` (detector_node:
detection schedule, tracking, quality, aligned crops), ``embedding.EmbedStage`` (embedding_node:
embed policy, one batch per frame) and, for identification, ``identity.IdentityEngine``
(identity_node: open-set matching, votes per track). The CLI (``detect``, ``enroll``,
``identify``, ``eval``) builds it from the same node parameters, so what ``eval`` measures and
calibrates is what greets people.

Two ways to feed it, an explicit choice of the caller:

* ``still=True`` (photos, enrolment, evaluation): every image is independent. No tracker runs
  (every face is untracked), the detection schedule is reset before each image, every face
  with an aligned crop is embedded (a face seen once is "new" to the embed policy anyway), and
  identity is decided per face from its own embedding, as identity_node decides an untracked
  face. ``pad_retry``: a photo that is only a face (a
  passport-style crop, the BBT gallery crops) often defeats detectors that need some context;
  when nothing is found the image is detected again padded with a black border of
  ``pad_retry`` x its longer side on every side (boxes and landmarks mapped back and clipped,
  the aligned crop cut from the padded image). 0 switches the retry off.
* ``still=False`` (a video, the camera): frames are a sequence, as on the robot: the detection
  schedule and the trackers run across frames, the embed policy picks which faces to embed,
  and identity is voted per track over time (``stamp`` in seconds).

Never imports rclpy.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .core.sources import IMAGE_EXTENSIONS
from .core.types import FaceObservation, Frame, box_area
from .embedding import build_embed_policy, build_face_embedder
from .embedding.stage import EmbedStage
from .perception import Perceiver, PerceiverConfig

logger = logging.getLogger(__name__)

#: Default border added on each side for the retry on tight face crops (x longer side).
DEFAULT_PAD_RETRY = 0.3
#: File endings read as videos by ``iter_inputs`` (anything else is read as an image).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


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


@dataclass
class InputItem:
    """One image to process: a photo, or a frame of a video (``video`` set, ``frame`` its index
    and ``time`` its position [s]); ``error`` instead of ``image`` when it cannot be read."""

    path: str
    image: np.ndarray | None = None
    error: str | None = None
    video: str | None = None
    frame: int | None = None
    time: float | None = None


def iter_inputs(paths: Sequence[str], every: int = 1) -> Iterator[InputItem]:
    """The images of ``paths``: image files, folders (their image files, sorted by name, not
    recursive) and video files (every ``every``-th frame, from the first)."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            files = sorted(f for f in p.iterdir()
                           if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                yield InputItem(str(p), error=f"{p}: a folder without image files "
                                f"({', '.join(IMAGE_EXTENSIONS)})")
            for f in files:
                yield _image_item(str(f))
        elif p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
            yield from _video_items(p, every)
        else:
            yield _image_item(str(p))


def _image_item(path: str) -> InputItem:
    try:
        return InputItem(path, image=load_image(path))
    except ImageError as exc:
        return InputItem(path, error=str(exc))


def _video_items(path: Path, every: int) -> Iterator[InputItem]:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            yield InputItem(str(path), error=f"{path}: is not a video OpenCV can open")
            return
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and np.isfinite(fps) and fps > 0 else 30.0
        index = 0
        while True:
            if index % every == 0:
                ok, bgr = cap.read()
            else:
                ok = cap.grab()
                bgr = None
            if not ok:
                break
            if bgr is not None:
                yield InputItem(str(path), image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                video=str(path), frame=index, time=index / fps)
            index += 1
        if index == 0:
            yield InputItem(str(path), error=f"{path}: a video without frames")
    finally:
        cap.release()


def largest_face(faces: Sequence[FaceObservation]) -> FaceObservation | None:
    """The face with the largest box area, or None for no faces."""
    return max(faces, key=lambda f: box_area(f.bbox), default=None)


def perceiver_config(params: Mapping[str, Any], *, persons: bool = True,
                     warmup: bool | None = None) -> PerceiverConfig:
    """detector_node's PerceiverConfig; ``persons`` False switches the person stages off (the
    faces are the same: person detection never changes them), ``warmup`` overrides it."""
    config = PerceiverConfig.from_params(params)
    changes: dict[str, Any] = {}
    if not persons:
        changes.update(person_backend="none", scene_crops=False)
    if warmup is not None:
        changes["warmup"] = warmup
    return dataclasses.replace(config, **changes) if changes else config


class Pipeline:
    """Perceiver -> EmbedStage -> IdentityEngine, for still photos or a video (see module)."""

    def __init__(
        self,
        perceiver: Perceiver,
        stage: EmbedStage | None = None,
        engine: Any = None,
        *,
        still: bool = True,
        pad_retry: float = DEFAULT_PAD_RETRY,
    ) -> None:
        """Wrap built parts; ``pad_retry`` (still photos only) 0 disables the retry."""
        if not 0.0 <= pad_retry <= 2.0:
            raise ValueError(f"pad_retry must be in [0, 2], got {pad_retry}")
        self.perceiver = perceiver
        self.stage = stage
        self.engine = engine
        self.still = bool(still)
        self.pad_retry = float(pad_retry)
        #: The embed policy a video runs with (embedding_node's; None = every face each frame).
        self.video_policy: Any = None

    @classmethod
    def from_params(
        cls,
        detector_params: Mapping[str, Any],
        embedding_params: Mapping[str, Any] | None = None,
        *,
        face_embedder: str | None = None,
        still: bool = True,
        pad_retry: float = DEFAULT_PAD_RETRY,
        persons: bool = False,
        warmup: bool = False,
    ) -> Pipeline:
        """Build from detector_node (and embedding_node) parameters; no embedder without them.

        ``face_embedder`` overrides the embedding parameter of that name. For a video the
        embed policy comes from the embedding parameters, as in embedding_node. ``warmup``
        (off: a command's first image pays the first call either way) warms the models.
        """
        perceiver = Perceiver(perceiver_config(detector_params, persons=persons, warmup=warmup))
        stage = None
        if embedding_params is not None:
            params = dict(embedding_params)
            kind = face_embedder or str(params.get("face_embedder", "dlib"))
            policy = build_embed_policy(**params)
            stage = EmbedStage(
                face=build_face_embedder(kind, **{**params, "warmup": warmup}),
                policy=None if still else policy,
                max_faces_per_frame=int(params.get("max_faces_per_frame", 16)),
            )
        pipe = cls(perceiver, stage, still=still, pad_retry=pad_retry)
        if stage is not None:
            pipe.video_policy = policy
        return pipe

    # ------------------------------------------------------------------ parts
    @property
    def embedder(self) -> Any:
        """The face embedder (None when the pipeline only detects)."""
        return self.stage.face if self.stage is not None else None

    @property
    def embedder_id(self) -> str:
        """Id of the face embedder ('' when the pipeline only detects)."""
        return self.stage.embedder_id if self.stage is not None else ""

    def start(self, *, still: bool) -> None:
        """Switch to still photos or start a new video: tracks, embed history and votes are
        forgotten; a video embeds with ``video_policy``, photos every face."""
        self.still = bool(still)
        if self.stage is not None:
            self.stage.policy = None if still else self.video_policy
        self.reset()

    def reset(self) -> None:
        """Forget tracks, embed history and votes (a new video, a cut)."""
        self.perceiver.reset()
        if self.stage is not None:
            self.stage.reset()
        if self.engine is not None:
            self.engine.reset_tracks()

    # ------------------------------------------------------------------ stages
    def perceive(self, image: np.ndarray, stamp: float = 0.0) -> Frame:
        """Detection, tracking, quality and aligned crops of one RGB image."""
        if not self.still:
            return self.perceiver.process(image, stamp=stamp)
        self.perceiver.reset()
        frame = self.perceiver.process(image, stamp=stamp, track=False)
        if frame.faces or self.pad_retry <= 0:
            return frame
        frame.faces = self._detect_padded(image, stamp)
        return frame

    def detect(self, image: np.ndarray, stamp: float = 0.0) -> list[FaceObservation]:
        """Faces of one RGB image with box, landmarks, score, quality and aligned crop."""
        return self.perceive(image, stamp).faces

    def embed(self, faces: Sequence[FaceObservation], stamp: float = 0.0) -> list[FaceObservation]:
        """Fill ``embedding``/``embedder`` of the faces the stage chooses; returns all faces."""
        if self.stage is None:
            raise RuntimeError("this pipeline has no face embedder (built without its params)")
        self.stage.embed_faces(faces, stamp)
        return list(faces)

    def process(self, image: np.ndarray, stamp: float = 0.0) -> list[FaceObservation]:
        """Detect, align and embed the faces of one RGB image."""
        return self.embed(self.detect(image, stamp), stamp)

    def process_file(self, path: str | Path) -> list[FaceObservation]:
        """``process`` of an image file (ImageError when the file is not a readable image)."""
        return self.process(load_image(path))

    def identify(self, faces: Sequence[FaceObservation], stamp: float = 0.0) -> list[Any]:
        """The identity engine's decision for each face (``IdentityDecision``), in order."""
        if self.engine is None:
            raise RuntimeError("this pipeline has no identity engine")
        if self.still:
            self.engine.reset_tracks()
        return self.engine.process(list(faces), stamp).decisions

    # ------------------------------------------------------------------ internals
    def _detect_padded(self, image: np.ndarray, stamp: float) -> list[FaceObservation]:
        """Detect on the image padded by ``pad_retry`` x its longer side; boxes mapped back."""
        h, w = image.shape[:2]
        pad = max(1, round(self.pad_retry * max(h, w)))
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        self.perceiver.reset()
        faces = self.perceiver.process(padded, stamp=stamp, track=False).faces
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


__all__ = [
    "DEFAULT_PAD_RETRY",
    "VIDEO_EXTENSIONS",
    "ImageError",
    "InputItem",
    "Pipeline",
    "iter_inputs",
    "largest_face",
    "load_image",
    "perceiver_config",
]
