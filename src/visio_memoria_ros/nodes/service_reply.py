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
retry, and reports the timeout only as a ``RuntimeWarning`` (filtered to an error, it becomes a
``SystemError`` that kills the executor), so the warning is how the timeout can be seen.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

#: The text rclpy warns with when rmw gave up waiting for the client's reply reader.
TIMEOUT_TEXT = "failed to send response (timeout)"


def wait_for_client(service: Any, *, wait_s: float = 5.0,
                    on_retry: Callable[[int], None] | None = None,
                    on_lost: Callable[[int], None] | None = None,
                    clock: Callable[[], float] = time.monotonic,
                    pause: Callable[[float], None] = time.sleep) -> Any:
    """Make ``service`` (an rclpy Service) send each reply again while the client is not yet
    reachable, for up to ``wait_s`` seconds (each attempt itself waits rmw's 100 ms).
    ``on_retry(attempts)`` is called once a reply went out after more than one attempt,
    ``on_lost(attempts)`` when it never did. Returns the service.

    The timeout warning is caught around this service's own send only (a process-wide filter
    would turn the same warning of every other service, rclpy's parameter services included,
    into an error); other warnings raised meanwhile are shown as usual.
    """
    send = service.send_response

    def send_response(response: Any, header: Any) -> None:
        deadline = clock() + wait_s
        attempts = 0
        while True:
            attempts += 1
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                send(response, header)
            timed_out = False
            for w in caught:
                if issubclass(w.category, RuntimeWarning) and TIMEOUT_TEXT in str(w.message):
                    timed_out = True
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if not timed_out:
                if attempts > 1 and on_retry is not None:
                    on_retry(attempts)
                return
            if clock() >= deadline:
                if on_lost is not None:
                    on_lost(attempts)
                return
            pause(0.02)  # rmw_fastrtps already waited 100 ms; others may not

    service.send_response = send_response
    return service
