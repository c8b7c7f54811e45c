"""Service replies sent again while the client is not yet reachable (``wait_for_client``)."""

from __future__ import annotations

import os
import time
import warnings

import pytest

from visio_memoria_ros.nodes.service_reply import TIMEOUT_TEXT, wait_for_client


class FakeService:
    """send_response fails the way rclpy does (the timeout warning, nothing sent) ``failures``
    times, then succeeds."""

    def __init__(self, failures: int, error: type[BaseException] | None = None) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.sent: list[object] = []

    def send_response(self, response: object, header: object) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error("not a timeout")
        if self.calls <= self.failures:  # rclpy warns and returns: nothing was sent
            warnings.warn(f"{TIMEOUT_TEXT}: client will not receive response", RuntimeWarning,
                          stacklevel=1)
            return
        self.sent.append(response)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt + 0.1  # each rmw attempt also waits 100 ms


def test_a_reply_goes_out_once_the_client_is_reachable() -> None:
    svc, clock, retried, lost = FakeService(failures=3), Clock(), [], []
    wait_for_client(svc, wait_s=5.0, on_retry=retried.append, on_lost=lost.append,
                    clock=clock, pause=clock.sleep)
    svc.send_response("answer", "header")
    assert svc.sent == ["answer"] and svc.calls == 4
    assert retried == [4] and lost == []


def test_a_reply_to_a_client_that_never_matches_is_given_up_after_the_wait() -> None:
    svc, clock, retried, lost = FakeService(failures=10**6), Clock(), [], []
    wait_for_client(svc, wait_s=1.0, on_retry=retried.append, on_lost=lost.append,
                    clock=clock, pause=clock.sleep)
    svc.send_response("answer", "header")  # returns: the executor thread is not stuck
    assert svc.sent == [] and retried == [] and lost == [svc.calls]
    assert 5 <= svc.calls <= 10 and clock.t >= 1.0


def test_other_errors_are_not_swallowed() -> None:
    svc = FakeService(failures=0, error=TypeError)
    wait_for_client(svc, wait_s=1.0)
    with pytest.raises(TypeError):
        svc.send_response("answer", "header")
    assert svc.calls == 1


@pytest.mark.dds
def test_rclpys_own_reply_timeout_is_recognised() -> None:
    """A best-effort service never matches a reliable client's reply reader, so rmw times out
    on every attempt: the wrapper must see rclpy's real timeout, retry and give up; a client
    that matches gets its reply through the same wrapper."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_srvs.srv import Trigger

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        server = rclpy.create_node("reply_probe_server", context=context)
        client_node = rclpy.create_node("reply_probe_client", context=context)
        best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        retried: list[int] = []
        lost: list[int] = []

        def answer(_req, resp):
            resp.success = True
            return resp

        for name, qos in (("unreachable", best_effort), ("reachable", QoSProfile(depth=10))):
            wait_for_client(server.create_service(Trigger, name, answer, qos_profile=qos),
                            wait_s=0.5, on_retry=retried.append, on_lost=lost.append)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(server)
        executor.add_node(client_node)

        def call(name: str) -> object:
            client = client_node.create_client(Trigger, name)
            deadline = time.monotonic() + 30
            while not client.service_is_ready() and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
                if name == "unreachable" and time.monotonic() > deadline - 27:
                    break  # its reply reader never matches: never "ready"; the request goes
            assert client.service_is_ready() or name == "unreachable", name
            future = client.call_async(Trigger.Request())
            before = len(lost)
            deadline = time.monotonic() + 30
            while not future.done() and len(lost) == before and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
            return future

        unreachable = call("unreachable")
        assert not unreachable.done() and len(lost) == 1 and lost[0] >= 2, lost
        reachable = call("reachable")
        assert reachable.done() and reachable.result().success
        assert len(lost) == 1
    finally:
        rclpy.shutdown(context=context)


def test_other_warnings_pass_through_and_the_timeout_does_not_escape() -> None:
    class Noisy(FakeService):
        def send_response(self, response: object, header: object) -> None:
            warnings.warn("something else", UserWarning, stacklevel=1)
            super().send_response(response, header)

    svc, clock = Noisy(failures=1), Clock()
    wait_for_client(svc, wait_s=5.0, clock=clock, pause=clock.sleep)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        svc.send_response("answer", "header")
    assert svc.sent == ["answer"]
    assert [str(w.message) for w in seen] == ["something else", "something else"]
