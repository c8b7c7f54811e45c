"""Stable track ids for faces and persons (ByteTrack), and face <-> person association.

The tracker is roboflow's maintained ByteTrack (``trackers`` package, the successor of
``supervision.ByteTrack``, which supervision 0.31 no longer ships). The wrapper keeps our
observations intact: it only writes ``track_id``, in input order, leaving boxes, landmarks and
every other field as the detector produced them.

Id semantics: ids are non-negative ints, unique per tracker (faces and persons have separate
id spaces). A new object gets ``NO_TRACK`` (-1) until it has been matched in ``min_frames``
consecutive updates; once confirmed its id survives up to ``track_buffer`` updates without a
match. Only updates count, so with a detection stride of N the buffer spans N x track_buffer
camera frames.

Ids restart at 0 with every tracker (a restarted detector) and every ``reset``: ``session``
names the run that handed them out, so (session, id) is unique across restarts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from ..core.types import NO_TRACK, FaceObservation, PersonObservation

logger = logging.getLogger(__name__)

Obs = TypeVar("Obs", FaceObservation, PersonObservation)


class ObservationTracker(Generic[Obs]):
    """ByteTrack over face or person observations; writes ``track_id`` in place."""

    def __init__(
        self,
        *,
        track_buffer: int = 30,
        activation_threshold: float = 0.6,
        high_threshold: float = 0.5,
        match_iou: float = 0.2,
        min_frames: int = 2,
    ) -> None:
        """Create an empty tracker (see the module docstring for the id rules). ByteTrack (and
        the ``trackers`` package, with supervision and scipy) loads on the first ``update``:
        still photos, which are never tracked, do not pay for its import."""
        if track_buffer < 0 or min_frames < 1:
            raise ValueError("track_buffer must be >= 0 and min_frames >= 1")
        self._kwargs = {
            "lost_track_buffer": int(track_buffer),
            "frame_rate": 30.0,  # the buffer is given in 30 FPS frames: 30 = buffer in updates
            "track_activation_threshold": float(activation_threshold),
            "high_conf_det_threshold": float(high_threshold),
            "minimum_iou_threshold": float(match_iou),
            "minimum_consecutive_frames": int(min_frames),
        }
        self._tracker: Any = None
        #: Names this run of track ids (new after ``reset``); unique across processes.
        self.session = new_session()

    def update(self, observations: Sequence[Obs]) -> list[Obs]:
        """Advance one frame with this frame's detections; return them with ``track_id`` set."""
        import supervision as sv

        obs = list(observations)
        if obs:
            detections = sv.Detections(
                xyxy=np.stack([o.bbox for o in obs]).astype(np.float32),
                confidence=np.array([o.score for o in obs], dtype=np.float32),
                data={"index": np.arange(len(obs))},
            )
        else:
            detections = sv.Detections.empty()
        if self._tracker is None:
            from trackers import ByteTrackTracker

            self._tracker = ByteTrackTracker(**self._kwargs)
        tracked = self._tracker.update(detections)
        for o in obs:
            o.track_id = NO_TRACK
        if len(tracked) and tracked.tracker_id is not None:
            for index, track_id in zip(tracked.data["index"], tracked.tracker_id, strict=True):
                obs[int(index)].track_id = int(track_id)
        return obs

    def reset(self) -> None:
        """Forget every track and restart ids from 0 (under a new ``session``)."""
        if self._tracker is not None:
            self._tracker.reset()
        self.session = new_session()


def new_session() -> str:
    """A fresh tracker session name (12 hex digits, random)."""
    return uuid.uuid4().hex[:12]


def associate_faces_to_persons(
    faces: Sequence[FaceObservation],
    persons: Sequence[PersonObservation],
    *,
    upper_fraction: float = 0.5,
) -> list[tuple[int, int]]:
    """Return (face index, person index) pairs, each face and person used at most once.

    A face can belong to a person when its centre lies inside the person box, no lower than
    ``upper_fraction`` of the box height from its top. Among such pairs the assignment
    minimising the distance between the face centre and the expected head point (box centre
    x, 10 % of the height below the top), normalised by the box width, is chosen with the
    Hungarian method (scipy ``linear_sum_assignment``).
    """
    if not faces or not persons:
        return []
    centres = np.array([0.5 * (f.bbox[:2] + f.bbox[2:]) for f in faces], dtype=np.float64)
    boxes = np.stack([p.bbox for p in persons]).astype(np.float64)
    x1, y1, x2, y2 = boxes.T
    bw, bh = np.maximum(x2 - x1, 1e-6), np.maximum(y2 - y1, 1e-6)
    cx, cy = centres[:, 0:1], centres[:, 1:2]
    feasible = (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y1 + upper_fraction * bh)
    if not feasible.any():
        return []
    from scipy.optimize import linear_sum_assignment

    head_x, head_y = 0.5 * (x1 + x2), y1 + 0.1 * bh
    cost = np.hypot(cx - head_x, cy - head_y) / bw
    big = 1e6
    rows, cols = linear_sum_assignment(np.where(feasible, cost, big))
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if feasible[r, c]]


def link_faces_to_persons(
    faces: Sequence[FaceObservation],
    persons: Sequence[PersonObservation],
    *,
    upper_fraction: float = 0.5,
) -> None:
    """Set each person's ``face_track_id`` from ``associate_faces_to_persons`` (else NO_TRACK)."""
    for p in persons:
        p.face_track_id = NO_TRACK
    for fi, pi in associate_faces_to_persons(faces, persons, upper_fraction=upper_fraction):
        persons[pi].face_track_id = faces[fi].track_id
