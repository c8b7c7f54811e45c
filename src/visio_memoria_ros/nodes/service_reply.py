"""Service replies that wait for their client to be reachable, instead of being dropped.

rmw_fastrtps sends a reply only once the client's reply reader has matched the service's reply
writer, and waits for that match at most ``max_blocking_time`` (100 ms by default); after that
it drops the reply, and rclpy only warns ("failed to send response (timeout): client will not
receive response"). The client then waits for ever: a ``ros2 service call`` is a new process
whose discovery can take longer than 100 ms on a busy machine, and every client is new to a
service that has just restarted. A timeout here means the client has not finished matching, so
sending the reply again can still reach it (ros2/rmw_fastrtps#467). ``wait_for_client`` makes a
service send each reply again until it goes out or ``wait_s`` has passed.

Hand-written: rclpy sends the reply itself after the callback returns and offers no hook or
retry; rclpy turns the timeout into a warning (and, with that warning filtered to an error,
into a ``SystemError`` caused by it), so this is how the timeout can be seen at all.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

#: The text rclpy warns with when rmw gave up waiting for the client's reply reader.
TIMEOUT_TEXT = "failed to send response (timeout)"


def _timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` is rclpy's reply timeout (the warning itself, or rclpy's SystemError
    raised from it)."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, RuntimeWarning) and TIMEOUT_TEXT in str(e):
            return True
    return False


def wait_for_client(service: Any, *, wait_s: float = 5.0,
                    on_retry: Callable[[int], None] | None = None,
                    on_lost: Callable[[int], None] | None = None,
                    clock: Callable[[], float] = time.monotonic,
                    pause: Callable[[float], None] = time.sleep) -> Any:
    """Make ``service`` (an rclpy Service) send each reply again while the client is not yet
    reachable, for up to ``wait_s`` seconds (each attempt itself waits rmw's 100 ms).
    ``on_retry(attempts)`` is called once a reply went out after more than one attempt,
    ``on_lost(attempts)`` when it never did. Returns the service."""
    warnings.filterwarnings("error", message=r"failed to send response \(timeout\)",
                            category=RuntimeWarning)
    send = service.send_response

    def send_response(response: Any, header: Any) -> None:
        deadline = clock() + wait_s
        attempts = 0
        while True:
            attempts += 1
            try:
                send(response, header)
            except (RuntimeWarning, SystemError) as exc:
                if not _timed_out(exc):
                    raise
                if clock() < deadline:
                    pause(0.02)  # rmw_fastrtps already waited 100 ms; others may not
                    continue
                if on_lost is not None:
                    on_lost(attempts)
                return
            if attempts > 1 and on_retry is not None:
                on_retry(attempts)
            return

    service.send_response = send_response
    return service
