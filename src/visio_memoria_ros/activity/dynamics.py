"""Activity from a person track's box history alone, and "unknown" when the boxes cannot tell.

Rules, evaluated on the samples of the last ``window`` seconds of one track (times are the
caller's, e.g. image stamps; nothing here reads the clock):

0. No evidence, no label: while the samples span less than ``min_span`` seconds (too few frames
   to see whether the person moves), and when a still person's box is not a measured body
   (``posture_from_box=False``: a body box extrapolated from the face has its aspect fixed by
   construction, so "standing" would only repeat the assumption), the result is
   ``UNKNOWN_ACTIVITY`` with certainty 0 and uniform probabilities. Motion needs no body box:
   an extrapolated box moves and scales with the face.

1. Motion cues, estimated by least-squares lines through the samples, only when the samples
   span at least ``min_span`` seconds:
   - horizontal speed ``s = |d(centre x)/dt| / median box height``  [box heights per second];
   - scale rate ``g = d(ln box height)/dt``  [1/s]; ``g > 0``: the person grows (comes closer).
     For a person walking straight at the camera at speed v from distance d, ``g = v / d``
     (1.2 m/s at 4 m gives 0.3/s).
2. Each cue is measured against its threshold: ``rs = s / walk_speed`` and
   ``rg = |g| / approach_rate``. If ``max(rs, rg) >= 1`` the stronger cue wins:
   ``rg`` -> "approaching" (g > 0) or "leaving" (g < 0); ``rs`` -> "walking".
3. Otherwise posture from the measured box aspect ``a = height / width`` (median over the
   window): ``a >= sitting_max_aspect`` -> "standing", else "sitting". A full-body standing
   person is about 2.5-3.5 high per width; a seated one about 1.1-1.7.

Certainty ``c`` of the rule, in [0, 1]:
- motion: ``min(max_certainty, 0.5 + 0.5 * min(1, ratio - 1)) * support`` where ``ratio`` is
  the winning cue's ratio and ``support = min(1, span / window)`` (a short history is less sure);
- posture: ``min(max_certainty, 0.5 + aspect_gain * m)`` with the relative margin
  ``m = |a - sitting_max_aspect| / sitting_max_aspect``, multiplied by ``1 - 0.5 * max(rs, rg)``
  (sub-threshold motion makes "still" less certain), by ``0.5 + 0.5 * min(1, span / window)``
  (a short history has not yet shown the person to be still), and by ``truncated_factor``
  when the box touches the image bottom (the body may be cut off, which shortens the box;
  checked only when the image height is known).

The class probabilities mix the rule with an uninformative prior, ``p = c * onehot(label) +
(1 - c) / n_labels``, and the reported confidence is ``p[label]`` (so it never falls below chance,
1/5, and the chosen label is always the most probable one, also after smoothing). An unknown
result has uniform probabilities (it adds no evidence when smoothed) and confidence 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core.types import as_box

#: The labels the dynamics classifier can produce, in the order of its probability vectors.
DYNAMICS_LABELS: tuple[str, ...] = ("standing", "sitting", "walking", "approaching", "leaving")
DYNAMICS_METHOD = "dynamics"
#: The activity published when there is no evidence for any label.
UNKNOWN_ACTIVITY = "unknown"


@dataclass(frozen=True)
class DynamicsConfig:
    """Thresholds of the dynamics rules (see the module docstring); units in the names."""

    window: float = 1.0
    min_span: float = 0.3
    walk_speed: float = 0.25
    approach_rate: float = 0.15
    sitting_max_aspect: float = 1.6
    aspect_gain: float = 1.5
    max_certainty: float = 0.9
    truncated_factor: float = 0.6
    bottom_margin: float = 2.0

    def __post_init__(self) -> None:
        for name in ("window", "walk_speed", "approach_rate", "sitting_max_aspect"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"dynamics {name} must be a positive number, got {value}")
        if not (0 <= self.min_span <= self.window):
            raise ValueError(f"dynamics min_span must lie in [0, window], got {self.min_span}")
        for name in ("max_certainty", "truncated_factor"):
            value = getattr(self, name)
            if not (0 <= value <= 1):
                raise ValueError(f"dynamics {name} must lie in [0, 1], got {value}")


@dataclass(frozen=True)
class DynamicsResult:
    """One dynamics classification with the cues behind it (for logs and tests).

    ``activity`` is one of ``DYNAMICS_LABELS`` or ``UNKNOWN_ACTIVITY``.
    """

    activity: str
    confidence: float
    probabilities: np.ndarray
    certainty: float
    speed: float
    scale_rate: float
    aspect: float
    span: float

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels in the order of ``probabilities``."""
        return DYNAMICS_LABELS


def _slope(t: np.ndarray, v: np.ndarray) -> float:
    """Least-squares slope of v over t (t has spread > 0)."""
    tc = t - t.mean()
    return float(np.dot(tc, v - v.mean()) / np.dot(tc, tc))


class DynamicsClassifier:
    """Rule-based standing / sitting / walking / approaching / leaving from (t, bbox) history."""

    def __init__(self, config: DynamicsConfig | None = None) -> None:
        self.config = config or DynamicsConfig()

    def classify(
        self,
        history: Sequence[tuple[float, object]],
        image_height: int | None = None,
        *,
        posture_from_box: bool = True,
    ) -> DynamicsResult:
        """Classify one track from its ``(t [s], (x1, y1, x2, y2))`` samples, oldest first."""
        if not history:
            raise ValueError("dynamics needs at least one (t, bbox) sample")
        cfg = self.config
        t_last = float(history[-1][0])
        horizon = cfg.window + 1e-6  # stamps like i * 0.1 must not fall out by rounding
        recent = [(float(t), as_box(b)) for t, b in history if t_last - float(t) <= horizon]
        t = np.array([s[0] for s in recent], dtype=np.float64)
        boxes = np.stack([s[1] for s in recent]).astype(np.float64)
        if not np.all(np.isfinite(t)):
            raise ValueError("history times must be finite")
        widths = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
        heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
        height = float(np.median(heights))
        aspect = float(np.median(heights / widths))
        span = float(t.max() - t.min())

        speed = scale_rate = 0.0
        # stamps like T0 + i * 0.1 must reach min_span despite rounding
        enough = len(recent) >= 2 and span + 1e-6 >= max(cfg.min_span, 2e-6)
        if enough:
            centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
            speed = abs(_slope(t, centre_x)) / height
            scale_rate = _slope(t, np.log(heights))
        r_speed = speed / cfg.walk_speed
        r_scale = abs(scale_rate) / cfg.approach_rate
        motion = max(r_speed, r_scale)

        if motion >= 1.0:
            if r_scale >= r_speed:
                label = "approaching" if scale_rate > 0 else "leaving"
            else:
                label = "walking"
            support = min(1.0, span / cfg.window)
            confidence = min(cfg.max_certainty, 0.5 + 0.5 * min(1.0, motion - 1.0)) * support
        elif not enough or not posture_from_box:
            return DynamicsResult(
                activity=UNKNOWN_ACTIVITY, confidence=0.0,
                probabilities=np.full(len(DYNAMICS_LABELS), 1.0 / len(DYNAMICS_LABELS)),
                certainty=0.0, speed=speed, scale_rate=scale_rate, aspect=aspect, span=span,
            )
        else:
            thr = cfg.sitting_max_aspect
            label = "standing" if aspect >= thr else "sitting"
            margin = abs(aspect - thr) / thr
            confidence = min(cfg.max_certainty, 0.5 + cfg.aspect_gain * margin)
            confidence *= (1.0 - 0.5 * motion) * (0.5 + 0.5 * min(1.0, span / cfg.window))
            bottom = float(boxes[-1, 3])
            truncated = image_height is not None and bottom >= image_height - cfg.bottom_margin
            if truncated:
                confidence *= cfg.truncated_factor
        certainty = float(min(1.0, max(0.0, confidence)))
        probs = mixed_probabilities(DYNAMICS_LABELS, label, certainty)
        return DynamicsResult(
            activity=label,
            confidence=float(probs[DYNAMICS_LABELS.index(label)]),
            probabilities=probs,
            certainty=certainty,
            speed=speed,
            scale_rate=scale_rate,
            aspect=aspect,
            span=span,
        )


def mixed_probabilities(labels: Sequence[str], label: str, certainty: float) -> np.ndarray:
    """``certainty * onehot(label) + (1 - certainty) * uniform`` over ``labels``."""
    n = len(labels)
    probs = np.full(n, (1.0 - certainty) / n, dtype=np.float64)
    probs[list(labels).index(label)] += certainty
    return probs
