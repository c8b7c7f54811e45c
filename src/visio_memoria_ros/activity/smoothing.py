"""Per-track temporal smoothing of activity class probabilities.

An exponential moving average whose weight follows the time between updates, so the result
does not depend on the frame rate: ``p <- p + a * (q - p)`` with ``a = 1 - exp(-dt / tau)``
(``tau`` = ``time_constant`` seconds; 0 = no smoothing). The published label is the argmax of
the smoothed probabilities and its confidence is that smoothed probability.

A track's state restarts when its label set changes (e.g. the head was loaded, or the track's
features switched embedder) or when time runs backwards (a replayed bag); tracks not updated
for ``stale_after`` seconds are forgotten by ``forget_stale``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class _TrackState:
    labels: tuple[str, ...]
    probs: np.ndarray
    t: float


class ActivitySmoother:
    """Exponential moving average of class probabilities per track, with staleness."""

    def __init__(self, time_constant: float = 0.5, stale_after: float = 3.0) -> None:
        if not (math.isfinite(time_constant) and time_constant >= 0):
            raise ValueError(f"time_constant must be >= 0 seconds, got {time_constant}")
        if not (math.isfinite(stale_after) and stale_after > 0):
            raise ValueError(f"stale_after must be > 0 seconds, got {stale_after}")
        self.time_constant = float(time_constant)
        self.stale_after = float(stale_after)
        self._tracks: dict[Hashable, _TrackState] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._tracks

    def update(
        self, key: Hashable, t: float, labels: Sequence[str], probabilities: object
    ) -> tuple[str, float]:
        """Fold one observation of track ``key`` at time ``t``; return (label, confidence)."""
        labels = tuple(labels)
        q = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if q.shape != (len(labels),) or not labels:
            raise ValueError(f"{len(labels)} labels but probabilities of shape {q.shape}")
        if not np.all(np.isfinite(q)) or np.any(q < 0) or q.sum() <= 0:
            raise ValueError("probabilities must be finite, non-negative and not all zero")
        q = q / q.sum()
        t = float(t)
        state = self._tracks.get(key)
        if state is None or state.labels != labels or t < state.t:
            state = _TrackState(labels, q.copy(), t)
            self._tracks[key] = state
        else:
            dt = t - state.t
            alpha = 1.0 if self.time_constant == 0 else 1.0 - math.exp(-dt / self.time_constant)
            state.probs += alpha * (q - state.probs)
            state.t = t
        best = int(np.argmax(state.probs))
        return labels[best], float(state.probs[best])

    def probabilities(self, key: Hashable) -> tuple[tuple[str, ...], np.ndarray] | None:
        """The smoothed (labels, probabilities) of a track, or None when unknown."""
        state = self._tracks.get(key)
        return None if state is None else (state.labels, state.probs.copy())

    def forget(self, key: Hashable) -> None:
        """Drop one track's state (no error when unknown)."""
        self._tracks.pop(key, None)

    def forget_stale(self, t: float) -> list[Hashable]:
        """Drop tracks not updated for more than ``stale_after`` seconds; return their keys."""
        stale = [k for k, s in self._tracks.items() if t - s.t > self.stale_after]
        for key in stale:
            del self._tracks[key]
        return stale

    def clear(self) -> None:
        """Forget every track."""
        self._tracks.clear()
