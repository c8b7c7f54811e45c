"""activity_node: ``perception`` (Perception) -> ``activities`` (ActivityArray), one per message.

Each person gets the linear head's label when a head is loaded and the person carries a scene
embedding of the head's embedder; otherwise the dynamics rules on its track's box history
(``activity.ActivityEngine``), or "unknown" (confidence 0) when the boxes give no evidence: a
track seen too briefly, or a still person whose body box is extrapolated from the face (the
default person_backend), whose aspect says nothing about posture. The ActivityArray carries the
Perception message's header, so it pairs with the source image by stamp; a message without
persons gets an empty array.

Processing happens in the subscription callback, on purpose: the engine keeps a box history
per track and must see every message in stamp order (a latest-only worker would thin the
history it estimates motion from), and its work is a few small numpy operations per person
(well under a millisecond; crops are never decoded here). Processing time and lag go to
/diagnostics like the workers of the other nodes.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from visio_memoria.msg import ActivityArray, Perception

from ..activity import ActivityEngine, dynamics_config_from_params
from ..activity.smoothing import ActivitySmoother
from ..config import activity as activity_params
from .convert import activities_to_msg, persons_from_msg
from .diagnostics import StageDiagnostics, StageStats
from .params import VisioNode
from .qos import RELIABLE_QOS
from .stamps import stamp_to_s
from .startup import NodeStartupError, run_node


def _check_combination(values: dict[str, Any]) -> str | None:
    """Why values valid one by one are not valid together (e.g. min_span > window), or None."""
    try:
        dynamics_config_from_params(values)
        ActivitySmoother(values["smoothing_time_constant"], values["stale_after"])
    except ValueError as exc:
        return str(exc)
    return None


class ActivityNode(VisioNode):
    """Classifies the activity of every person in every Perception message."""

    def __init__(self) -> None:
        super().__init__("activity_node", activity_params.PARAMS, cross_check=_check_combination)
        p = self.params
        head_path = str(p["head_path"]).strip()
        try:
            self._engine = ActivityEngine.from_params(p)
        except FileNotFoundError as exc:
            raise NodeStartupError(f"head_path: {exc}") from exc
        except ValueError as exc:
            what = f"head_path {head_path!r}" if head_path else "activity parameters"
            raise NodeStartupError(f"{what}: {exc}") from exc
        head = self._engine.head
        if head is None:
            self.get_logger().info(
                "no head_path: activity from track dynamics only (standing, sitting, walking, "
                "approaching, leaving; unknown without evidence)"
            )
        else:
            self.get_logger().info(
                f"activity head {head_path}: {', '.join(head.labels)} on {head.feature_dim}-d "
                f"{head.embedder_id!r} scene embeddings; other persons use track dynamics"
            )
        self._lock = threading.Lock()  # the engine is shared with the parameter callback
        self._stats = StageStats()
        self._received = 0
        self.on_params_changed(self._apply)
        self._pub = self.create_publisher(ActivityArray, "activities", RELIABLE_QOS)
        self._sub = self.create_subscription(
            Perception, "perception", self._on_perception, RELIABLE_QOS
        )
        self._diagnostics = StageDiagnostics(self, "activity", self._stats, self._counters)
        self.get_logger().info(f"{self._sub.topic_name} -> {self._pub.topic_name}")

    def _apply(self, changed: dict[str, Any]) -> None:
        with self._lock:
            self._engine.update_params(self.params)

    def _on_perception(self, msg: Perception) -> None:
        t0 = time.monotonic()
        self._received += 1
        try:
            persons, problems = persons_from_msg(msg)
            for problem in problems:
                self.get_logger().warning(
                    f"skipped a malformed person: {problem}", throttle_duration_sec=5.0
                )
            height = int(msg.image_height) or None
            stamp = stamp_to_s(msg.header.stamp)
            with self._lock:
                results = self._engine.process(stamp, persons, height)
            self._pub.publish(activities_to_msg(results, msg.header))
        except Exception as exc:  # a bad message must never kill the node
            self._stats.error()
            self.get_logger().error(
                f"activity failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0
            )
            return
        lag = self.now_s() - stamp
        self._stats.record(time.monotonic() - t0, lag if math.isfinite(lag) else 0.0)

    def _counters(self) -> dict[str, float]:
        with self._lock:
            engine_stats = dict(self._engine.stats)
            tracks = self._engine.n_tracks
        return {
            "received": float(self._received),
            "dropped": 0.0,
            "tracks": float(tracks),
            **{f"persons_{k}": float(v) for k, v in engine_stats.items()},
        }


def main(args: list[str] | None = None) -> None:
    """Entry point of the activity_node executable."""
    run_node(ActivityNode, args)
