"""The latest-frame worker: a subscription hands items over, a thread processes the newest."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.node import Node

from .diagnostics import Health, StageDiagnostics, StageStats


class LatestSlot:
    """Holds only the newest item; a worker takes it. Counts the items it had to drop."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.dropped = 0
        self.received = 0

    def put(self, item: Any) -> None:
        """Store ``item``, replacing (and counting as dropped) any item not yet taken."""
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._cond.notify()

    def take(self, timeout: float = 0.5) -> Any:
        """Return the newest item, waiting up to ``timeout`` s; None on timeout or close."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake the worker so it can exit."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closed


class FrameWorker:
    """Runs ``process(item)`` on a thread for the newest item only; the executor never blocks.

    The subscription callback calls ``submit``; processing errors are logged (throttled) and
    counted, never raised into the executor. Diagnostics go to /diagnostics once a second,
    with the node's own ``health`` verdict (see StageDiagnostics).
    """

    def __init__(
        self,
        node: Node,
        process: Callable[[Any], None],
        stamp_of: Callable[[Any], float] | None = None,
        name: str = "worker",
        *,
        health: Callable[[], Health | None] | None = None,
        counters: Callable[[], dict[str, float | str]] | None = None,
    ) -> None:
        self._node = node
        self._process = process
        self._stamp_of = stamp_of
        self.slot = LatestSlot()
        self.stats = StageStats()
        self._name = name
        self._thread = threading.Thread(
            target=self._run, name=f"{node.get_name()}-{name}", daemon=True
        )
        self.diagnostics = StageDiagnostics(
            node,
            name,
            self.stats,
            lambda: {"received": float(self.slot.received), "dropped": float(self.slot.dropped),
                     **(counters() if counters else {})},
            health,
        )
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Hand an item to the worker (the newest one wins)."""
        self.slot.put(item)

    def _run(self) -> None:
        log = self._node.get_logger()
        while not self.slot.closed:
            item = self.slot.take()
            if item is None:
                continue
            t0 = time.monotonic()
            try:
                self._process(item)
            except Exception as exc:  # a bad frame must never kill the node
                if not self._node.context.ok():
                    return  # shutting down: the publisher is gone, nothing to report
                self.stats.error()
                log.error(f"{self._name}: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)
                continue
            lag = 0.0
            if self._stamp_of is not None:
                try:
                    lag = max(0.0, self._now() - self._stamp_of(item))
                except Exception:
                    lag = 0.0
            self.stats.record(time.monotonic() - t0, lag)

    def _now(self) -> float:
        return self._node.get_clock().now().nanoseconds * 1e-9

    def close(self) -> None:
        """Stop the worker thread."""
        self.slot.close()
        self._thread.join(timeout=5.0)
