"""ReliableCall without DDS: timeouts, back-off, lost and late answers, newest request wins.

A fake client stands in for rclpy's (call_async returns futures the test completes or loses)
and a fake clock drives the timeouts, so every case is exact and instant. The same class runs
over real DDS in test_identity_gallery_dds.py.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from visio_memoria_ros.nodes.reliable_call import ReliableCall


class FakeFuture:
    """The part of rclpy's Future that ReliableCall uses."""

    def __init__(self) -> None:
        self._done = False
        self._cancelled = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._callbacks: list[Any] = []

    def add_done_callback(self, callback: Any) -> None:
        self._callbacks.append(callback)

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._done = self._cancelled = True
        self._fire()

    def result(self) -> Any:
        return self._result

    def exception(self) -> BaseException | None:
        return self._exception

    def answer(self, value: Any = None, exception: BaseException | None = None) -> None:
        self._done, self._result, self._exception = True, value, exception
        self._fire()

    def _fire(self) -> None:
        for callback in self._callbacks:
            callback(self)


class FakeClient:
    def __init__(self) -> None:
        self.ready = True
        self.sent: list[tuple[Any, FakeFuture]] = []
        self.forgotten: list[FakeFuture] = []
        self.srv_name = "/visio_memoria/get_gallery"

    def service_is_ready(self) -> bool:
        return self.ready

    def call_async(self, request: Any) -> FakeFuture:
        future = FakeFuture()
        self.sent.append((request, future))
        return future

    def remove_pending_request(self, future: FakeFuture) -> None:
        self.forgotten.append(future)


class FakeTimer:
    def cancel(self) -> None:
        pass


class FakeNode:
    def __init__(self) -> None:
        self.client = FakeClient()

    def create_client(self, srv_type: Any, name: str, callback_group: Any = None) -> FakeClient:
        return self.client

    def create_timer(self, period: float, callback: Any, callback_group: Any = None) -> FakeTimer:
        return FakeTimer()


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def setup():
    node, clock = FakeNode(), Clock()
    call = ReliableCall(node, object, "visio_memoria/get_gallery", timeout=1.0, max_timeout=8.0,
                        backoff=2.0, clock=clock)
    return call, node.client, clock


def advance(call: ReliableCall, clock: Clock, seconds: float, step: float = 0.125) -> None:
    """Let ``seconds`` pass, ticking like the node's timer (binary-exact steps)."""
    end = clock.t + seconds
    while clock.t < end - 1e-9:
        clock.t = min(end, clock.t + step)
        call.tick()


def test_a_lost_reply_is_sent_again_and_the_answer_delivered_once(setup):
    call, client, clock = setup
    replies: list[Any] = []
    call.call("req", replies.append)
    assert len(client.sent) == 1 and call.pending
    advance(call, clock, 0.9)
    assert len(client.sent) == 1  # not before the timeout
    advance(call, clock, 0.2)
    assert len(client.sent) == 2 and call.timeouts == 1 and call.resent == 1
    client.sent[1][1].answer("gallery")
    assert replies == ["gallery"] and not call.pending
    assert client.sent[0][1] in client.forgotten  # the lost attempt no longer listened for
    advance(call, clock, 30.0)
    assert len(client.sent) == 2  # nothing more once answered


def test_resends_back_off_up_to_the_cap(setup):
    call, client, clock = setup
    call.call("req", lambda r: None)
    sent_at = [clock.t]
    for _ in range(6):
        before = len(client.sent)
        while len(client.sent) == before:
            advance(call, clock, 0.125)
        sent_at.append(clock.t)
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(sent_at)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_late_answer_of_an_earlier_attempt_completes_the_request(setup):
    call, client, clock = setup
    replies: list[Any] = []
    call.call("req", replies.append)
    advance(call, clock, 1.1)
    assert len(client.sent) == 2
    client.sent[0][1].answer("late")  # the first attempt was slow, not lost
    assert replies == ["late"]
    client.sent[1][1].answer("second")  # a duplicate answer changes nothing
    assert replies == ["late"] and call.answered == 1


def test_the_newest_request_wins(setup):
    call, client, _ = setup
    replies: list[Any] = []
    call.call("old", lambda r: replies.append(("old", r)))
    call.call("new", lambda r: replies.append(("new", r)))
    assert [r for r, _ in client.sent] == ["old", "new"] and call.superseded == 1
    client.sent[0][1].answer("answer to old")
    assert replies == []  # a replaced request's answer is ignored
    client.sent[1][1].answer("answer to new")
    assert replies == [("new", "answer to new")]


def test_nothing_is_sent_before_the_service_exists_and_no_timeout_counted(setup):
    call, client, clock = setup
    client.ready = False
    call.call("req", lambda r: None)
    advance(call, clock, 5.0)
    assert client.sent == [] and call.timeouts == 0 and call.pending
    assert "not available" in call.describe()
    client.ready = True
    advance(call, clock, 0.1)
    assert len(client.sent) == 1


def test_a_failed_attempt_is_counted_and_retried(setup):
    call, client, clock = setup
    replies: list[Any] = []
    call.call("req", replies.append)
    client.sent[0][1].answer(exception=RuntimeError("server gone"))
    assert call.failed == 1 and "server gone" in call.last_error and replies == []
    advance(call, clock, 1.1)
    client.sent[-1][1].answer("ok")
    assert replies == ["ok"]


def test_cancel_drops_the_request_and_its_late_answer(setup):
    call, client, clock = setup
    replies: list[Any] = []
    call.call("req", replies.append)
    call.cancel()
    assert not call.pending and client.sent[0][1] in client.forgotten
    advance(call, clock, 10.0)
    assert len(client.sent) == 1 and replies == []


def test_counters_are_named_for_diagnostics(setup):
    call, _, _ = setup
    names = set(call.counters("gallery_calls"))
    assert {"gallery_calls_sent", "gallery_calls_resent", "gallery_calls_timeouts",
            "gallery_calls_answered", "gallery_calls_ignored"} <= names


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ReliableCall(FakeNode(), object, "x", timeout=0.0)
    with pytest.raises(ValueError):
        ReliableCall(FakeNode(), object, "x", timeout=2.0, max_timeout=1.0)
