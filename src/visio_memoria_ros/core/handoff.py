"""Hand a face's untracked first sighting over to the track it becomes.

A tracker confirms a new face only on a later detection; until then the face has no track id
and is embedded and decided on its own ("untracked"). ``UntrackedHandoff`` remembers those
sightings (box, time, payload) for a short while, and when a new track appears at nearly the
same place (IoU) the track claims the payload: the embedding policy counts that embedding as
the track's first, and the identity voter counts its scores as the track's first vote. So the
untracked embedding is neither wasted nor repeated.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")


def box_iou(a: Any, b: Any) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes (0 when either is empty)."""
    ax1, ay1, ax2, ay2 = (float(v) for v in np.asarray(a, dtype=np.float64)[:4])
    bx1, by1, bx2, by2 = (float(v) for v in np.asarray(b, dtype=np.float64)[:4])
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1) + max(0.0, bx2 - bx1) * max(
        0.0, by2 - by1
    ) - inter
    return inter / union if union > 0 and math.isfinite(union) else 0.0


@dataclass(eq=False)  # compared by identity: removing one must not compare box arrays
class _Sighting(Generic[T]):
    bbox: np.ndarray
    t: float
    payload: T


class UntrackedHandoff(Generic[T]):
    """Recent untracked sightings, claimable once by a new track at the same place."""

    def __init__(self, *, max_age: float = 1.0, min_iou: float = 0.5, capacity: int = 64) -> None:
        if not (max_age >= 0 and 0 < min_iou <= 1 and capacity >= 1):
            raise ValueError("need max_age >= 0, 0 < min_iou <= 1 and capacity >= 1")
        self.max_age = float(max_age)
        self.min_iou = float(min_iou)
        self._items: deque[_Sighting[T]] = deque(maxlen=int(capacity))

    def __len__(self) -> int:
        """Number of sightings remembered."""
        return len(self._items)

    def remember(self, bbox: Any, t: float, payload: T) -> None:
        """Record an untracked sighting at ``bbox`` (x1, y1, x2, y2) and time ``t``.

        With ``max_age`` 0 the hand-over is off: nothing is remembered, nothing can be claimed.
        """
        if self.max_age <= 0:
            return
        box = np.asarray(bbox, dtype=np.float64)[:4]
        if box.shape == (4,) and np.isfinite(box).all() and math.isfinite(t):
            self._items.append(_Sighting(box, float(t), payload))

    def claim(self, bbox: Any, t: float) -> tuple[float, T] | None:
        """Take the best-overlapping sighting at most ``max_age`` old: ``(its time, payload)``.

        A claimed sighting is removed, so one untracked face seeds at most one track.
        """
        self._drop_older_than(t - self.max_age)
        best, best_iou = None, self.min_iou
        for s in self._items:
            if s.t > t:
                continue
            iou = box_iou(s.bbox, bbox)
            if iou >= best_iou:
                best, best_iou = s, iou
        if best is None:
            return None
        self._items.remove(best)
        return best.t, best.payload

    def clear(self) -> None:
        """Forget every sighting (e.g. time went backwards)."""
        self._items.clear()

    def _drop_older_than(self, limit: float) -> None:
        self._items = deque((s for s in self._items if s.t >= limit), maxlen=self._items.maxlen)
