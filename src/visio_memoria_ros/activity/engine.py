"""``ActivityEngine``: what the activity node calls once per perception message.

For each person it uses the linear head when one is loaded and the person's scene embedding
comes from the head's embedder (same id and dimension); otherwise the dynamics rules on the
track's box history. Results are smoothed per track. Tracks are keyed by person track id, or by
the linked face track id when the person box is untracked; a person with neither is classified
from its single box, unsmoothed.

No evidence, no label: a dynamics result is published as ``UNKNOWN_ACTIVITY`` (confidence 0)
unless its (smoothed) probability beats chance by ``MIN_EVIDENCE``. So a still person whose body
box is extrapolated from the face (``person_backend: face_extrapolated``, the default), or a
track seen for too short a time, is "unknown", never a guessed "standing"; a label that loses
its evidence fades back to "unknown" at the smoothing time constant.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from ..core.models import resolve_model
from ..core.types import NO_TRACK, PersonObservation
from .dynamics import (
    DYNAMICS_LABELS,
    DYNAMICS_METHOD,
    UNKNOWN_ACTIVITY,
    DynamicsClassifier,
    DynamicsConfig,
)
from .head import LinearActivityHead
from .smoothing import ActivitySmoother

logger = logging.getLogger(__name__)

#: Samples kept per track at most (bounds memory at high frame rates).
MAX_HISTORY_SAMPLES = 512

#: Person detectors whose boxes are derived, not measured: their aspect says nothing of posture.
EXTRAPOLATED_DETECTORS = frozenset({"face_extrapolated"})

#: A dynamics label is published only when its probability beats chance (1/5) by this much.
MIN_EVIDENCE = 0.1

TrackKey = tuple[str, int]


class ActivityResult(NamedTuple):
    """The activity of one person, as published in ``Activity.msg``."""

    person_track_id: int
    face_track_id: int
    activity: str
    confidence: float
    method: str


def track_key(person: PersonObservation) -> TrackKey | None:
    """The key a person's history is kept under: its track, its face's track, or None."""
    if person.track_id != NO_TRACK:
        return ("person", int(person.track_id))
    if person.face_track_id != NO_TRACK:
        return ("face", int(person.face_track_id))
    return None


def dynamics_config_from_params(
    params: Mapping[str, Any], base: DynamicsConfig | None = None
) -> DynamicsConfig:
    """A ``DynamicsConfig`` from activity_node parameter values; missing names keep ``base``."""
    base = base or DynamicsConfig()
    names = {
        "dynamics_window": "window",
        "dynamics_min_span": "min_span",
        "walk_speed": "walk_speed",
        "approach_rate": "approach_rate",
        "sitting_max_aspect": "sitting_max_aspect",
    }
    changes = {field: float(params[name]) for name, field in names.items() if name in params}
    return replace(base, **changes)


class ActivityEngine:
    """Head-or-dynamics activity per person track, smoothed over time."""

    def __init__(
        self,
        head: LinearActivityHead | None = None,
        *,
        dynamics: DynamicsConfig | None = None,
        smoothing_time_constant: float = 0.5,
        stale_after: float = 3.0,
    ) -> None:
        self.head = head
        self.dynamics = DynamicsClassifier(dynamics)
        self.smoother = ActivitySmoother(smoothing_time_constant, stale_after)
        self._history: dict[TrackKey, deque[tuple[float, np.ndarray]]] = {}
        self._last_t: float | None = None
        self._refusals: set[str] = set()
        self.stats: dict[str, int] = {"head": 0, "dynamics": 0, "head_refused": 0, "unknown": 0}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ActivityEngine:
        """Build from activity_node parameter values (``config.activity.PARAMS`` names)."""
        head = None
        head_path = str(params.get("head_path", "") or "").strip()
        if head_path:
            head = LinearActivityHead.load(resolve_model(head_path, "activity head (head_path)"))
        return cls(
            head,
            dynamics=dynamics_config_from_params(params),
            smoothing_time_constant=float(params.get("smoothing_time_constant", 0.5)),
            stale_after=float(params.get("stale_after", 3.0)),
        )

    def update_params(self, params: Mapping[str, Any]) -> None:
        """Apply changed run-time parameters (all but ``head_path``); tracks are kept.

        Validates everything before changing anything: raises ValueError and leaves the engine
        as it was when the combination is invalid (e.g. dynamics_min_span > dynamics_window).
        """
        dynamics = dynamics_config_from_params(params, self.dynamics.config)
        smoother = ActivitySmoother(
            float(params.get("smoothing_time_constant", self.smoother.time_constant)),
            float(params.get("stale_after", self.smoother.stale_after)),
        )
        self.dynamics = DynamicsClassifier(dynamics)
        self.smoother.time_constant = smoother.time_constant
        self.smoother.stale_after = smoother.stale_after

    def set_head(self, head: LinearActivityHead | None) -> None:
        """Swap the head (or remove it with None); tracks whose labels change restart smoothing."""
        self.head = head
        self._refusals.clear()

    def reset(self) -> None:
        """Forget every track (histories and smoothing)."""
        self._history.clear()
        self.smoother.clear()
        self._last_t = None

    @property
    def n_tracks(self) -> int:
        """Number of tracks with a box history."""
        return len(self._history)

    def process(
        self,
        t: float,
        persons: Sequence[PersonObservation],
        image_height: int | None = None,
    ) -> list[ActivityResult]:
        """Classify every person seen at time ``t`` [s]; one result per person, in order."""
        t = float(t)
        if self._last_t is not None and t < self._last_t:
            logger.info("time went back (%.3f -> %.3f s): activity tracks reset", self._last_t, t)
            self.reset()
        self._last_t = t
        self._forget_stale(t)

        head_probs = self._head_probabilities(persons)
        results = []
        for i, person in enumerate(persons):
            key = track_key(person)
            if key is not None:
                history = self._history.setdefault(key, deque(maxlen=MAX_HISTORY_SAMPLES))
                history.append((t, person.bbox))
                window = self.dynamics.config.window
                while history and t - history[0][0] > window + 1e-6:
                    history.popleft()
            else:
                history = deque([(t, person.bbox)])

            if i in head_probs and self.head is not None:
                labels, probs, method = self.head.labels, head_probs[i], self.head.method
                self.stats["head"] += 1
            else:
                result = self.dynamics.classify(
                    list(history),
                    image_height,
                    posture_from_box=person.detector not in EXTRAPOLATED_DETECTORS,
                )
                labels, probs, method = DYNAMICS_LABELS, result.probabilities, DYNAMICS_METHOD
                self.stats["dynamics"] += 1

            if key is not None:
                activity, confidence = self.smoother.update(key, t, labels, probs)
            else:
                best = int(np.argmax(probs))
                activity, confidence = labels[best], float(probs[best])
            if method == DYNAMICS_METHOD and confidence < 1.0 / len(labels) + MIN_EVIDENCE:
                activity, confidence = UNKNOWN_ACTIVITY, 0.0
                self.stats["unknown"] += 1
            results.append(
                ActivityResult(
                    int(person.track_id), int(person.face_track_id), activity, confidence, method
                )
            )
        return results

    def _head_probabilities(self, persons: Sequence[PersonObservation]) -> dict[int, np.ndarray]:
        """Head probabilities for the persons whose scene embedding the head accepts."""
        head = self.head
        if head is None:
            return {}
        rows: list[np.ndarray] = []
        index: list[int] = []
        for i, person in enumerate(persons):
            emb = person.scene_embedding
            if emb is None or np.asarray(emb).size == 0:
                continue
            try:
                rows.append(head.check_features(emb, person.scene_embedder)[0])
            except ValueError as exc:
                self.stats["head_refused"] += 1
                reason = str(exc)
                if reason not in self._refusals and len(self._refusals) < 64:
                    self._refusals.add(reason)
                    logger.warning("activity head not used, dynamics instead: %s", reason)
                continue
            index.append(i)
        if not rows:
            return {}
        probs = head.predict_proba(np.stack(rows), head.embedder_id)
        return dict(zip(index, probs.astype(np.float64), strict=True))

    def _forget_stale(self, t: float) -> None:
        """Drop histories and smoothing of tracks unseen for ``stale_after`` seconds."""
        limit = self.smoother.stale_after
        stale = [k for k, h in self._history.items() if not h or t - h[-1][0] > limit]
        for key in stale:
            del self._history[key]
        self.smoother.forget_stale(t)
