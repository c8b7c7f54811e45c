"""``ReliableCall``: a service client for read-only requests that survives lost replies.

A DDS service reply can be lost without any error on the client's side: right after a server
(re)starts, the client may see the service ready (its request writer matched the server's
request reader) before the server's reply writer has matched the client's reply reader, and
the server then drops the reply (rmw_fastrtps waits only ``max_blocking_time`` for the match).
A server that dies between request and reply loses it too. A plain ``call_async`` then never
completes, and a node that waits for it waits for ever.

``ReliableCall`` gives every request a timeout and re-sends it with exponential back-off until
an answer comes; any attempt's answer completes the request. ``call`` while a request is
pending replaces it (the newest request wins): a late answer to the replaced request is
ignored. Use it only for requests that may be repeated (reads): a re-sent write would be done
twice. The counters (sent, re-sent, timed out, answered, ignored, failed) go on /diagnostics.

Hand-written rather than taken from a library: rclpy offers no retrying client, and the retry
must run on the node's own executor (a timer and future callbacks), never block it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: At most this many unanswered attempts of one request are kept listening for a late answer.
MAX_ATTEMPTS_KEPT = 4


@dataclass
class _Request:
    """One logical request and the attempts made for it."""

    request: Any
    on_reply: Callable[[Any], None]
    generation: int
    created: float
    attempts: int = 0
    deadline: float = 0.0
    futures: list[Any] = field(default_factory=list)


class ReliableCall:
    """A service client whose requests time out and are re-sent with back-off; newest wins."""

    def __init__(
        self,
        node: Any,
        srv_type: Any,
        srv_name: str,
        *,
        timeout: float = 1.0,
        max_timeout: float = 30.0,
        backoff: float = 2.0,
        tick_period: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        callback_group: Any = None,
    ) -> None:
        if timeout <= 0 or max_timeout < timeout or backoff < 1.0:
            raise ValueError("need 0 < timeout <= max_timeout and backoff >= 1")
        self._node = node
        self._client = node.create_client(srv_type, srv_name, callback_group=callback_group)
        self._timeout = float(timeout)
        self._max_timeout = float(max_timeout)
        self._backoff = float(backoff)
        self._clock = clock
        self._lock = threading.Lock()
        self._current: _Request | None = None
        self._generation = 0
        self.sent = 0
        self.resent = 0
        self.timeouts = 0
        self.answered = 0
        self.ignored = 0
        self.failed = 0
        self.superseded = 0
        self.last_error = ""
        self._timer = node.create_timer(tick_period, self.tick, callback_group=callback_group)

    # -- public -----------------------------------------------------------------------------
    @property
    def srv_name(self) -> str:
        """The resolved service name."""
        return str(self._client.srv_name)

    @property
    def pending(self) -> bool:
        """True while a request waits for its answer."""
        return self._current is not None

    def pending_for(self) -> float:
        """Seconds the pending request has waited (0 when none is pending)."""
        current = self._current
        return self._clock() - current.created if current is not None else 0.0

    def service_is_ready(self) -> bool:
        """True when a server of the service is discovered."""
        return bool(self._client.service_is_ready())

    def call(self, request: Any, on_reply: Callable[[Any], None]) -> None:
        """Send ``request`` (replacing any pending one); ``on_reply(response)`` on its answer.

        ``on_reply`` runs on the node's executor, once, for the first answer of any attempt.
        """
        with self._lock:
            if self._current is not None:
                self.superseded += 1
                self._abandon(self._current)
            self._generation += 1
            self._current = _Request(request, on_reply, self._generation, self._clock())
            self._attempt(self._current)

    def cancel(self) -> None:
        """Stop waiting for the pending request; a late answer is ignored."""
        with self._lock:
            if self._current is not None:
                self._abandon(self._current)
                self._current = None

    def counters(self, prefix: str) -> dict[str, float]:
        """The counters as ``{prefix + name: value}`` for /diagnostics."""
        return {
            f"{prefix}_sent": float(self.sent),
            f"{prefix}_resent": float(self.resent),
            f"{prefix}_timeouts": float(self.timeouts),
            f"{prefix}_answered": float(self.answered),
            f"{prefix}_ignored": float(self.ignored),
            f"{prefix}_failed": float(self.failed),
            f"{prefix}_pending_s": round(self.pending_for(), 3),
        }

    def describe(self) -> str:
        """One line on the pending request, for logs and /diagnostics."""
        current = self._current
        if current is None:
            return f"{self.srv_name}: nothing pending"
        if current.attempts == 0:
            return f"{self.srv_name} not available for {self.pending_for():.0f} s"
        return (f"{self.srv_name}: {current.attempts} attempt(s) unanswered for "
                f"{self.pending_for():.0f} s")

    def tick(self) -> None:
        """Re-send the pending request when its attempt timed out (the node's timer calls it)."""
        with self._lock:
            current = self._current
            if current is None or self._clock() < current.deadline:
                return
            if current.attempts:
                self.timeouts += 1
            self._attempt(current)

    def destroy(self) -> None:
        """Cancel the timer and the pending request."""
        self.cancel()
        self._timer.cancel()

    # -- internals ----------------------------------------------------------------------------
    def _attempt(self, current: _Request) -> None:
        """Send one attempt now if a server is there, else look again at the next tick."""
        now = self._clock()
        if not self._client.service_is_ready():
            current.deadline = now  # wait for discovery; the back-off starts with the sends
            return
        future = self._client.call_async(current.request)
        self.sent += 1
        if current.attempts:
            self.resent += 1
        current.attempts += 1
        current.futures.append(future)
        while len(current.futures) > MAX_ATTEMPTS_KEPT:
            self._forget(current.futures.pop(0))
        wait = min(self._max_timeout, self._timeout * self._backoff ** (current.attempts - 1))
        current.deadline = now + wait
        future.add_done_callback(functools.partial(self._on_done, current.generation))

    def _on_done(self, generation: int, future: Any) -> None:
        if future.cancelled():
            return
        with self._lock:
            current = self._current
            if current is None or current.generation != generation:
                self.ignored += 1  # the answer to a replaced or cancelled request
                return
            exc = future.exception()
            if exc is not None:
                self.failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                current.deadline = min(current.deadline, self._clock() + self._timeout)
                return
            self._current = None
            self.answered += 1
            for other in current.futures:
                if other is not future:
                    self._forget(other)
        current.on_reply(future.result())

    def _abandon(self, current: _Request) -> None:
        for future in current.futures:
            self._forget(future)
        current.futures.clear()

    def _forget(self, future: Any) -> None:
        """Stop listening for ``future``'s answer (rclpy would keep it pending for ever)."""
        self._client.remove_pending_request(future)
        if not future.done():
            future.cancel()
