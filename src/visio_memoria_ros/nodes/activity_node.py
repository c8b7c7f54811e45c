"""activity_node: ``perception`` (Perception) -> ``activities`` (ActivityArray), one per message.

Each person gets the linear head's label when a head is loaded and the person carries a scene
embedding of the head's embedder; otherwise the dynamics rules on its track's box history
(``activity.ActivityEngine``). The ActivityArray carries the Perception message's header, so
it pairs with the source image by stamp; a message without persons gets an empty array.

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

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from visio_memoria.msg import ActivityArray, Perception

from ..activity import ActivityEngine, dynamics_config_from_params
from ..activity.smoothing import ActivitySmoother
from ..config import activity as activity_params
from ..config import validate_value
from ..core.types import PersonObservation
from .common import RELIABLE_QOS, NodeStartupError, StageStats, VisioNode, run_node, stamp_to_s
from .convert import activities_to_msg


def persons_from_msg(msg: Perception) -> tuple[list[PersonObservation], list[str]]:
    """The persons of a Perception message without their crops, and why any were skipped."""
    persons: list[PersonObservation] = []
    problems: list[str] = []
    for i, p in enumerate(msg.persons):
        embedding = np.asarray(p.scene_embedding, dtype=np.float32)
        try:
            persons.append(
                PersonObservation(
                    bbox=np.asarray(p.bbox, dtype=np.float32),
                    score=float(p.score),
                    detector=p.detector,
                    track_id=int(p.track_id),
                    face_track_id=int(p.face_track_id),
                    scene_embedding=embedding if embedding.size else None,
                    scene_embedder=p.scene_embedder,
                )
            )
        except ValueError as exc:
            problems.append(f"person {i} (track {p.track_id}): {exc}")
    return persons, problems


class ActivityNode(VisioNode):
    """Classifies the activity of every person in every Perception message."""

    def __init__(self) -> None:
        super().__init__("activity_node", activity_params.PARAMS)
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
                "no head_path: activity from track dynamics only "
                "(standing, sitting, walking, approaching, leaving)"
            )
        else:
            self.get_logger().info(
                f"activity head {head_path}: {', '.join(head.labels)} on {head.feature_dim}-d "
                f"{head.embedder_id!r} scene embeddings; other persons use track dynamics"
            )
        self._lock = threading.Lock()  # the engine is shared with the parameter callback
        self._stats = StageStats()
        self._received = 0
        # Called before VisioNode's own check (rclpy calls the newest callback first).
        self.add_on_set_parameters_callback(self._check_combination)
        self.on_params_changed(self._apply)
        self._pub = self.create_publisher(ActivityArray, "activities", RELIABLE_QOS)
        self._sub = self.create_subscription(
            Perception, "perception", self._on_perception, RELIABLE_QOS
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"{self._sub.topic_name} -> {self._pub.topic_name}")

    def _check_combination(self, params: list[Parameter]) -> SetParametersResult:
        """Refuse changes that are valid one by one but not together (min_span > window)."""
        specs = {s.name: s for s in activity_params.PARAMS}
        merged: dict[str, Any] = dict(self.params)
        for param in params:
            spec = specs.get(param.name)
            if spec is None or validate_value(spec, param.value):
                continue  # not ours, or VisioNode refuses it with its own reason
            merged[param.name] = param.value
        try:
            dynamics_config_from_params(merged)
            ActivitySmoother(merged["smoothing_time_constant"], merged["stale_after"])
        except ValueError as exc:
            self.get_logger().warning(f"refused parameter change: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

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

    def _publish_diagnostics(self) -> None:
        summary = self._stats.summary()
        status = DiagnosticStatus(
            name=f"{self.get_fully_qualified_name()}: activity",
            hardware_id="visio_memoria",
            level=DiagnosticStatus.OK,
            message="ok",
        )
        if summary["errors"] and summary["processed"] == 0:
            status.level, status.message = DiagnosticStatus.ERROR, "every message failed"
        with self._lock:
            engine_stats = dict(self._engine.stats)
            tracks = self._engine.n_tracks
        values = {
            **summary,
            "received": float(self._received),
            "dropped": 0.0,
            "tracks": float(tracks),
            **{f"persons_{k}": float(v) for k, v in engine_stats.items()},
        }
        status.values = [KeyValue(key=k, value=f"{v:.6g}") for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def main(args: list[str] | None = None) -> None:
    """Entry point of the activity_node executable."""
    run_node(ActivityNode, args)
