"""identity_node against a memory_node stand-in in the test process, over real DDS.

The stand-in serves ``get_gallery`` and ``list_visits`` and publishes ``memory/events`` the way
memory_node does, but the test decides what happens to each request: drop it (the reply that
DDS loses right after a server starts), hold it and answer later with an older revision, or
refuse it. What identity_node believes is read from /diagnostics (level, message,
``gallery_revision``, ``gallery_embedder``) and from the identities it publishes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.dds

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from reliability_tools import EMBEDDER, FakeMemory, perception, unit  # noqa: E402
from visio_memoria.msg import IdentityArray, Perception  # noqa: E402

from visio_memoria_ros.nodes.qos import RELIABLE_QOS  # noqa: E402

RNG = np.random.default_rng(11)
ALICE, BOB = unit(RNG), unit(RNG)
#: A second embedder: another id and dimension (no defaults for it in config/identity.py).
OTHER = "testnet_64"
CAROL = unit(RNG, 64)
OK, WARN, ERROR = 0, 1, 2


@pytest.fixture
def fake_memory():
    """Start FakeMemory(revision) on demand; closed after the test."""
    made: list[FakeMemory] = []

    def make(revision: int) -> FakeMemory:
        made.append(FakeMemory(revision))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


class IdentityWatch:
    """identity_node's /diagnostics status and its identities, as the test node sees them."""

    def __init__(self, ros: Any) -> None:
        self.ros = ros
        self.statuses: list[tuple[int, str, dict[str, str]]] = []
        self.identities = ros.collect(IdentityArray, "identities", RELIABLE_QOS)
        self.pub = ros.node.create_publisher(Perception, "perception", RELIABLE_QOS)
        ros.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith("identity_node: identity"):
                values = {kv.key: kv.value for kv in status.values}
                self.statuses.append((status.level[0], status.message, values))

    def value(self, key: str) -> str | None:
        """The newest reported value of ``key``."""
        return self.statuses[-1][2].get(key) if self.statuses else None

    def revision(self) -> float:
        """The newest reported gallery revision (-1 before any report)."""
        value = self.value("gallery_revision")
        return float(value) if value is not None else -1.0

    def known(self, track_id: int, since: int = 0) -> set[str]:
        """Names decided KNOWN for ``track_id`` in identities published since index ``since``."""
        return {i.name for m in self.identities[since:] for i in m.identities
                if i.track_id == track_id and i.status == i.STATUS_KNOWN}

    def stream_until(self, frame: Any, predicate: Any, timeout: float, what: str,
                     processes: list[Any]) -> None:
        """Publish ``frame()`` at 10 Hz until ``predicate()``."""
        next_t = [0.0]

        def step() -> bool:
            if time.monotonic() >= next_t[0]:
                self.pub.publish(frame())
                next_t[0] = time.monotonic() + 0.1
            return predicate()

        self.ros.spin_until(step, timeout, what, processes)


def test_no_gallery_is_reported_and_a_lost_first_reply_is_sent_again(ros, launch, fake_memory):
    ident = launch("identity_node")
    watch = IdentityWatch(ros)
    ros.spin_until(lambda: any(level >= WARN and "no gallery" in message
                               for level, message, _ in watch.statuses), 30,
                   "WARN/ERROR 'no gallery' on /diagnostics", [ident])

    memory = fake_memory(5)
    memory.people[EMBEDDER] = {1: ("Alice", ALICE)}
    # Two replies lost: the request sent once the open visits are in, and the one the
    # 'started' event may trigger; only a re-send after a timeout can bring the gallery.
    memory.drop = 2
    memory.announce("started")
    ros.spin_until(lambda: watch.revision() == 5, 30, "gallery revision 5 loaded", [ident])
    assert len(memory.requests) >= 3 and set(memory.requests) == {EMBEDDER}
    assert float(watch.value("gallery_calls_timeouts")) >= 1
    assert float(watch.value("gallery_calls_resent")) >= 1
    ros.spin_until(lambda: watch.statuses[-1][0] == OK, 10, "diagnostics back to OK", [ident])
    mark = len(watch.identities)
    watch.stream_until(lambda: perception(time.time(), [(7, ALICE)]),
                       lambda: "Alice" in watch.known(7, mark), 30, "Alice recognised", [ident])
    assert "gallery revision 5" in ident.output()


def test_a_change_during_a_pending_request_ends_with_the_newest_gallery(ros, launch, fake_memory):
    memory = fake_memory(1)
    memory.people[EMBEDDER] = {1: ("Alice", ALICE)}
    memory.hold = True
    memory.announce("started")
    ident = launch("identity_node")
    watch = IdentityWatch(ros)
    ros.spin_until(lambda: memory.held > 0, 30, "a gallery request", [ident])

    memory.revision = 2  # Bob labelled while identity_node's request is pending
    memory.people[EMBEDDER][2] = ("Bob", BOB)
    memory.announce("labelled")
    ros.spin_until(lambda: watch.value("memory_revision") == "2", 30,
                   "identity_node heard of revision 2", [ident])
    memory.release(1)  # the pending request is answered as of revision 1 (made before Bob)

    ros.spin_until(lambda: watch.revision() == 2, 30, "gallery revision 2 loaded", [ident])
    assert memory.answered[0] == 1 and memory.answered[-1] == 2
    mark = len(watch.identities)
    watch.stream_until(lambda: perception(time.time(), [(8, BOB)]),
                       lambda: "Bob" in watch.known(8, mark), 30, "Bob recognised", [ident])


def _other_embedder_frame(track_id: int, vector: np.ndarray) -> Perception:
    msg = perception(time.time(), [(track_id, vector)])
    for face in msg.faces:
        face.embedder = OTHER
    return msg


def test_faces_of_another_embedder_are_an_error_and_its_gallery_is_loaded(ros, launch,
                                                                       fake_memory):
    memory = fake_memory(3)
    memory.people = {EMBEDDER: {1: ("Alice", ALICE)}, OTHER: {3: ("Carol", CAROL)}}
    memory.refuse = {OTHER}  # not yet: the mismatch must be seen first
    memory.announce("started")
    ident = launch("identity_node")  # embedder: dlib_resnet_v1_128 (the default)
    watch = IdentityWatch(ros)
    ros.spin_until(lambda: watch.value("gallery_embedder") == EMBEDDER, 30,
                   f"the {EMBEDDER} gallery loaded", [ident])

    def mismatch_reported() -> bool:
        return any(level == ERROR and f"faces are made by {OTHER!r}" in message
                   for level, message, _ in watch.statuses)

    watch.stream_until(lambda: _other_embedder_frame(9, CAROL), mismatch_reported, 30,
                       "ERROR on /diagnostics for the embedder mismatch", [ident])
    assert OTHER in memory.requests  # it asked for the gallery of what it receives
    assert f"faces are made by embedder {OTHER!r}" in ident.output()
    assert not watch.known(9)  # never silently matched against the wrong gallery

    memory.refuse = set()
    mark = len(watch.identities)
    watch.stream_until(lambda: _other_embedder_frame(9, CAROL),
                       lambda: "Carol" in watch.known(9, mark), 30,
                       f"Carol recognised with the {OTHER} gallery", [ident])
    ros.spin_until(lambda: watch.value("gallery_embedder") == OTHER
                   and watch.statuses[-1][0] == OK, 10, "diagnostics OK again", [ident])
