"""A processing stage's counters and health, published on /diagnostics once a second."""

from __future__ import annotations

import threading
from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

#: Diagnostic levels as plain ints (DiagnosticStatus holds them as one byte).
OK, WARN, ERROR = 0, 1, 2

#: What a node reports about its own health: (level, message), e.g. (ERROR, "no gallery").
Health = tuple[int, str]


class StageStats:
    """Rolling counters for one processing stage, published on /diagnostics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processed = 0
        self.errors = 0
        self._times: list[float] = []
        self._lags: list[float] = []

    def record(self, seconds: float, lag: float) -> None:
        """Record one processed item: its processing time and its lag behind its stamp."""
        with self._lock:
            self.processed += 1
            self._times = [*self._times[-99:], seconds]
            self._lags = [*self._lags[-99:], lag]

    def error(self) -> None:
        """Count one failed item."""
        with self._lock:
            self.errors += 1

    def summary(self) -> dict[str, float]:
        """Mean processing time and lag over the last 100 items, and the counters."""
        with self._lock:
            mean_t = sum(self._times) / len(self._times) if self._times else 0.0
            mean_l = sum(self._lags) / len(self._lags) if self._lags else 0.0
            return {
                "processed": float(self.processed),
                "errors": float(self.errors),
                "mean_processing_time_s": mean_t,
                "mean_lag_s": mean_l,
            }


class StageDiagnostics:
    """Publishes one stage's counters on /diagnostics once a second.

    ``counters`` adds values (numbers or text); ``health`` adds the node's own verdict
    (e.g. ERROR while it has no gallery): the worst of it and the counters' verdict is sent.
    """

    def __init__(
        self,
        node: Node,
        name: str,
        stats: StageStats,
        counters: Callable[[], dict[str, float | str]] | None = None,
        health: Callable[[], Health | None] | None = None,
    ) -> None:
        self._node = node
        self._name = name
        self._stats = stats
        self._counters = counters
        self._health = health
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(1.0, self.publish)

    def status(self) -> DiagnosticStatus:
        """The current status: OK, WARN when dropping most input, ERROR when every item fails,
        or worse when ``health`` says so."""
        summary = self._stats.summary()
        extra = self._counters() if self._counters else {}
        level, message = OK, "ok"
        received, dropped = float(extra.get("received", 0.0)), float(extra.get("dropped", 0.0))
        if summary["errors"] and summary["processed"] == 0:
            level, message = ERROR, "every item failed"
        elif dropped and dropped > received / 2:
            level, message = WARN, "dropping more than half of the input: processing is too slow"
        own = self._health() if self._health else None
        if own is not None and own[0] > OK:
            if own[0] > level:
                level, message = own[0], own[1] if level == OK else f"{own[1]}; {message}"
            else:
                message = f"{message}; {own[1]}"
        status = DiagnosticStatus()
        status.name = f"{self._node.get_fully_qualified_name()}: {self._name}"
        status.hardware_id = "visio_memoria"
        status.level = bytes([level])
        status.message = message
        values = {**summary, **extra}
        status.values = [
            KeyValue(key=k, value=v if isinstance(v, str) else f"{v:.6g}")
            for k, v in values.items()
        ]
        return status

    def publish(self) -> None:
        """Publish the current status."""
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [self.status()]
        self._pub.publish(msg)
