"""``Perceiver``: image in, ``core.Frame`` out. What the detector node and the CLI call.

Stages: validate/convert and cap the image -> detect faces -> track faces -> face quality ->
aligned face crops (``core.face_crop.align_face``) -> detect persons -> track persons -> link
faces to persons -> scene crops -> boxes back to input-image pixels.

Detection stride: with ``detect_stride = N`` the detectors and trackers run on every N-th
frame only. The frames in between *reuse* the last detected frame's observations (same ids,
boxes, landmarks and quality, as shallow copies) instead of predicting motion; identity
downstream is decided per track anyway. Reused faces carry no crop: it would be the detected
frame's crop again, and embedding it twice costs a full embedding for a vote that is not new
evidence.
``Perceiver.last_detected`` tells whether the latest Frame came from a fresh detection. A
change of image size forces a detection.

Detection schedule (``perception.schedule``): on detected frames the full-frame face detector
runs every ``full_detect_interval``-th time (and at once on motion where no face is known,
``motion_threshold``); in between, the previous frame's faces are looked for again near their
boxes, each first moved by its track's motion over the last frames (constant velocity): MTCNN
refines them with its last stage, other backends search crops of ``region_scale`` x the face.
``Perceiver.last_pass`` says which ran: ``full``, ``regions`` or ``reused`` (detect_stride). A
region pass that finds fewer faces than were known (one moved far or left) is followed by a
full pass on the same frame.

Warm-up: with ``warmup`` the detector runs once on a blank frame in the constructor, so the
first camera frame does not pay the kernels' first-call set-up.

Not thread-safe: one Perceiver per processing thread (it owns tracker state).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.face_crop import align_face
from ..core.types import NO_TRACK, FaceObservation, Frame, PersonObservation
from .faces import FACE_BACKENDS, FaceDetector, HaarFaceDetector, create_face_detector
from .image import DEFAULT_MAX_INPUT_SIDE, cap_size, to_rgb_uint8
from .persons import PERSON_BACKENDS, PersonDetector, create_person_detector, scene_crop
from .quality import face_quality
from .schedule import DetectionSchedule, region_boxes, suppress_duplicates
from .tracking import ObservationTracker, link_faces_to_persons

logger = logging.getLogger(__name__)

#: Fields that may change while running (``Perceiver.reconfigure``); the rest need a rebuild.
RUNTIME_FIELDS = frozenset({
    "face_person_upper_fraction", "face_crops", "scene_crops", "scene_context",
    "scene_crop_max_side", "quality_size_ref", "quality_sharpness_ref",
})

STAGES = ("preprocess", "faces", "face_tracking", "quality", "align", "persons",
          "person_tracking", "scene")


@dataclass(frozen=True)
class PerceiverConfig:
    """Every knob of the perception pipeline; field names equal detector_node parameters."""

    face_backend: str = "mtcnn"
    face_model_path: str = "yolov8n-face.pt"
    haar_cascade_path: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    face_score_threshold: float = 0.9
    min_face_size: int = 20
    detect_max_side: int = 0
    detect_stride: int = 1
    full_detect_interval: int = 4
    motion_threshold: float = 0.25
    region_scale: float = 2.5
    person_backend: str = "face_extrapolated"
    person_model_path: str = "yolov8n.pt"
    person_score_threshold: float = 0.5
    person_max_side: int = 640
    body_width_faces: float = 3.0
    body_height_faces: float = 7.0
    track_buffer: int = 30
    track_activation_threshold: float = 0.6
    track_high_threshold: float = 0.5
    track_match_iou: float = 0.2
    track_min_frames: int = 2
    face_person_upper_fraction: float = 0.5
    face_crops: bool = True
    scene_crops: bool = True
    scene_context: float = 0.25
    scene_crop_max_side: int = 384
    quality_size_ref: float = 112.0
    quality_sharpness_ref: float = 100.0
    max_input_side: int = DEFAULT_MAX_INPUT_SIDE
    torch_threads: int = 0
    warmup: bool = True

    def __post_init__(self) -> None:
        """Refuse values no stage could work with, naming the field."""
        if self.face_backend not in FACE_BACKENDS:
            raise ValueError(f"face_backend={self.face_backend!r} not in {list(FACE_BACKENDS)}")
        if self.person_backend not in PERSON_BACKENDS:
            raise ValueError(
                f"person_backend={self.person_backend!r} not in {list(PERSON_BACKENDS)}"
            )
        for name in ("detect_stride", "track_min_frames", "max_input_side",
                     "full_detect_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.face_person_upper_fraction <= 1.0:
            raise ValueError("face_person_upper_fraction must be in (0, 1]")
        if not 0.0 <= self.motion_threshold <= 1.0:
            raise ValueError(f"motion_threshold must be in [0, 1], got {self.motion_threshold}")
        if not 1.2 <= self.region_scale <= 8.0:
            raise ValueError(f"region_scale must be in [1.2, 8], got {self.region_scale}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PerceiverConfig:
        """Build from a parameter dict (e.g. node parameters); unrelated keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})


class Perceiver:
    """The perception pipeline: ``process(image) -> Frame`` with tracked faces and persons."""

    def __init__(
        self,
        config: PerceiverConfig | None = None,
        *,
        face_detector: FaceDetector | None = None,
        person_detector: PersonDetector | None = None,
    ) -> None:
        """Load the configured models once (or use the detectors given) and reset tracking."""
        self.config = cfg = config or PerceiverConfig()
        if cfg.torch_threads > 0:
            import torch

            torch.set_num_threads(cfg.torch_threads)  # process-wide, on purpose and on request
        if face_detector is None:
            if cfg.face_backend == "haar":
                face_detector = HaarFaceDetector(
                    cascade_path=cfg.haar_cascade_path, min_face_size=cfg.min_face_size,
                    max_side=cfg.detect_max_side,
                )
            else:
                face_detector = create_face_detector(
                    cfg.face_backend, model_path=cfg.face_model_path, device=cfg.device,
                    min_face_size=cfg.min_face_size, max_side=cfg.detect_max_side,
                    score_threshold=cfg.face_score_threshold, precision=cfg.precision,
                )
        if person_detector is None:
            person_detector = create_person_detector(
                cfg.person_backend, model_path=cfg.person_model_path, device=cfg.device,
                score_threshold=cfg.person_score_threshold, max_side=cfg.person_max_side,
                width_faces=cfg.body_width_faces, height_faces=cfg.body_height_faces,
                precision=cfg.precision,
            )
        self.face_detector = face_detector
        self.person_detector = person_detector
        tracker_kwargs = {
            "track_buffer": cfg.track_buffer,
            "activation_threshold": cfg.track_activation_threshold,
            "high_threshold": cfg.track_high_threshold,
            "match_iou": cfg.track_match_iou,
            "min_frames": cfg.track_min_frames,
        }
        self.face_tracker: ObservationTracker[FaceObservation] = ObservationTracker(
            **tracker_kwargs
        )
        self.person_tracker: ObservationTracker[PersonObservation] = ObservationTracker(
            **tracker_kwargs
        )
        #: Seconds spent in each stage (``STAGES``) for the latest frame.
        self.stage_times: dict[str, float] = {}
        #: True when the latest Frame came from a detection, False when it reused one.
        self.last_detected = False
        self.frames_processed = 0
        #: Which detection ran for the latest Frame: "full", "regions" or "reused".
        self.last_pass = ""
        self.schedule = DetectionSchedule(cfg.full_detect_interval, cfg.motion_threshold)
        self._known: list[np.ndarray] = []  # the latest faces' boxes, working-image pixels
        self._known_ids: list[int] = []  # their track ids
        self._velocity: dict[int, np.ndarray] = {}  # box motion per frame of each track
        self._last: Frame | None = None
        self._skip_left = 0
        #: Seconds the constructor's warm-up took (0 without one).
        self.warmup_seconds = 0.0
        warm = getattr(self.face_detector, "warmup", None)
        if cfg.warmup and callable(warm):
            self.warmup_seconds = float(warm())
        logger.info(
            "perceiver ready: faces=%s persons=%s stride=%d, full-frame pass every %d "
            "(motion %.2f), warm-up %.2f s",
            getattr(self.face_detector, "name", "?"),
            getattr(self.person_detector, "name", "none"), cfg.detect_stride,
            cfg.full_detect_interval, cfg.motion_threshold, self.warmup_seconds,
        )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Perceiver:
        """Build from a parameter dict, e.g. ``load_node_params('detector_node', PARAMS)``."""
        return cls(PerceiverConfig.from_params(params))

    def reconfigure(self, **changes: Any) -> None:
        """Change RUNTIME_FIELDS values in place; other fields raise ValueError (rebuild)."""
        fixed = sorted(set(changes) - RUNTIME_FIELDS)
        if fixed:
            raise ValueError(f"{fixed} cannot change while running; build a new Perceiver")
        self.config = dataclasses.replace(self.config, **changes)

    def reset(self) -> None:
        """Forget all tracks and the reused frame (e.g. when the camera source changes)."""
        self.face_tracker.reset()
        self.person_tracker.reset()
        self.schedule.reset()
        self._known, self._known_ids, self._velocity = [], [], {}
        self._last = None
        self._skip_left = 0

    def process(self, image: np.ndarray, *, stamp: float = 0.0, frame_id: str = "",
                track: bool = True) -> Frame:
        """Perceive one RGB image (see ``to_rgb_uint8`` for accepted inputs) into a Frame.

        ``track=False`` (a still photo, independent of any other image): no tracker runs, so
        every face and person is untracked (``NO_TRACK``) and no person is linked to a face.
        """
        t_start = time.perf_counter()
        times = dict.fromkeys(STAGES, 0.0)
        rgb = to_rgb_uint8(image)
        height, width = rgb.shape[:2]
        self.frames_processed += 1
        last = self._last
        if (
            self._skip_left > 0 and last is not None
            and (last.width, last.height) == (width, height)
        ):
            self._skip_left -= 1
            self.last_detected = False
            self.last_pass = "reused"
            times["preprocess"] = time.perf_counter() - t_start
            self.stage_times = times
            return Frame(
                stamp=stamp, frame_id=frame_id, width=width, height=height,
                track_session=self.face_tracker.session,
                faces=[dataclasses.replace(f, crop=None) for f in last.faces],
                persons=[dataclasses.replace(p) for p in last.persons],
                processing_time=time.perf_counter() - t_start,
            )
        work, scale = cap_size(rgb, self.config.max_input_side)
        t = _lap(times, "preprocess", t_start)

        faces = self._detect_faces(work)
        t = _lap(times, "faces", t)
        if track:
            self.face_tracker.update(faces)
        else:
            for f in faces:
                f.track_id = NO_TRACK
        self._remember(faces)
        t = _lap(times, "face_tracking", t)
        if self.config.face_crops:
            self._add_face_crops(work, faces)
        t = _lap(times, "align", t)
        self._add_quality(work, faces)  # on the aligned crop: the quality describes it
        t = _lap(times, "quality", t)

        persons: list[PersonObservation] = []
        if self.person_detector is not None:
            persons = self.person_detector.detect(work, faces)
            t = _lap(times, "persons", t)
            if track:
                self.person_tracker.update(persons)
                link_faces_to_persons(
                    faces, persons, upper_fraction=self.config.face_person_upper_fraction
                )
            else:
                for p in persons:
                    p.track_id = p.face_track_id = NO_TRACK
            t = _lap(times, "person_tracking", t)
            if self.config.scene_crops:
                for p in persons:
                    p.scene_crop = scene_crop(
                        work, p.bbox, context=self.config.scene_context,
                        max_side=self.config.scene_crop_max_side,
                    )
            t = _lap(times, "scene", t)

        if scale != 1.0:
            _rescale(faces, persons, 1.0 / scale)
        frame = Frame(
            stamp=stamp, frame_id=frame_id, width=width, height=height,
            track_session=self.face_tracker.session,
            faces=faces, persons=persons, processing_time=time.perf_counter() - t_start,
        )
        self._last = frame
        self._skip_left = self.config.detect_stride - 1
        self.last_detected = True
        self.stage_times = times
        return frame

    def _detect_faces(self, image: np.ndarray) -> list[FaceObservation]:
        """This frame's faces: a full-frame pass or the known faces' regions (the schedule)."""
        regions = region_boxes(self._known, self.config.region_scale)
        if self.schedule.full_pass_due(image, regions):
            self.schedule.did_full_pass(image)
            self.last_pass = "full"
            return self.face_detector.detect(image)
        self.schedule.did_region_pass()
        self.last_pass = "regions"
        detector = self.face_detector
        if hasattr(detector, "detect_regions"):
            found = detector.detect_regions(image, self._predicted())
        else:
            found = self._detect_in_crops(image, regions)
        found = suppress_duplicates(found)
        if len(found) < len(self._known):
            # a known face was not found near its box: it moved far (frames skipped, a fast
            # turn) or left; a full pass now finds it wherever it went
            self.schedule.did_full_pass(image)
            self.schedule.lost_triggers += 1
            self.last_pass = "full"
            return self.face_detector.detect(image)
        return found

    def _remember(self, faces: list[FaceObservation]) -> None:
        """Keep this frame's face boxes and each track's motion for the next region pass."""
        before = dict(zip(self._known_ids, self._known, strict=True))
        velocity: dict[int, np.ndarray] = {}
        for f in faces:
            tid = int(f.track_id)
            if tid >= 0 and tid in before:
                step = f.bbox - before[tid]
                velocity[tid] = 0.5 * (step + self._velocity.get(tid, step))
        self._velocity = velocity
        self._known = [f.bbox.copy() for f in faces]
        self._known_ids = [int(f.track_id) for f in faces]

    def _predicted(self) -> list[np.ndarray]:
        """Where the known faces should be now: their boxes moved by their tracks' motion."""
        return [box + self._velocity.get(tid, 0.0)
                for box, tid in zip(self._known, self._known_ids, strict=True)]

    def _detect_in_crops(
        self, image: np.ndarray, regions: list[np.ndarray]
    ) -> list[FaceObservation]:
        """Run the detector on each region's crop (detectors without a batched region pass)."""
        h, w = image.shape[:2]
        out = []
        for r in regions:
            x1, y1 = max(0, int(r[0])), max(0, int(r[1]))
            x2, y2 = min(w, int(np.ceil(r[2]))), min(h, int(np.ceil(r[3])))
            if x2 - x1 < 8 or y2 - y1 < 8:
                continue
            for f in self.face_detector.detect(np.ascontiguousarray(image[y1:y2, x1:x2])):
                offset = np.array([x1, y1], np.float32)
                f.bbox = (f.bbox + np.tile(offset, 2)).astype(np.float32)
                if f.landmarks is not None:
                    f.landmarks = (f.landmarks + offset).astype(np.float32)
                out.append(f)
        return out

    def _add_quality(self, image: np.ndarray, faces: list[FaceObservation]) -> None:
        """Set each face's ``quality`` (see ``perception.quality``)."""
        for f in faces:
            f.quality = face_quality(
                image, f.bbox, f.landmarks, crop=f.crop, score=f.score,
                size_ref=self.config.quality_size_ref,
                sharpness_ref=self.config.quality_sharpness_ref,
            )

    @staticmethod
    def _add_face_crops(image: np.ndarray, faces: list[FaceObservation]) -> None:
        """Set each face's canonical aligned ``crop``; None when its landmarks are degenerate."""
        for f in faces:
            if f.landmarks is None:
                continue
            try:
                f.crop = align_face(image, f.landmarks)
            except ValueError as exc:
                logger.debug("no aligned crop for face at %s: %s", f.bbox.tolist(), exc)


def _lap(times: dict[str, float], stage: str, since: float) -> float:
    """Add the time since ``since`` to ``times[stage]``; return now."""
    now = time.perf_counter()
    times[stage] += now - since
    return now


def _rescale(
    faces: list[FaceObservation], persons: list[PersonObservation], factor: float
) -> None:
    """Multiply boxes and landmarks by ``factor`` (working image -> input image pixels)."""
    for f in faces:
        f.bbox = (f.bbox * factor).astype(np.float32)
        if f.landmarks is not None:
            f.landmarks = (f.landmarks * factor).astype(np.float32)
    for p in persons:
        p.bbox = (p.bbox * factor).astype(np.float32)
