"""identity_node against a memory_node stand-in in the test process, over real DDS.

The stand-in serves ``get_gallery`` and ``list_visits`` and publishes ``memory/events`` the way
memory_node does, but the test decides what happens to each request: drop it (the reply that
DDS loses right after a server starts), hold it and answer later with an older revision, or
refuse it. What identity_node believes is read from /diagnostics (level, message,
``gallery_revision``, ``gallery_embedder``) and from the identities it publishes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.dds

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from reliability_tools import EMBEDDER, perception, unit  # noqa: E402
from visio_memoria.msg import IdentityArray, MemoryEvent, Perception  # noqa: E402
from visio_memoria.srv import GetGallery, ListVisits  # noqa: E402

from visio_memoria_ros.nodes.common import LATCHED_QOS, RELIABLE_QOS  # noqa: E402

RNG = np.random.default_rng(11)
ALICE, BOB = unit(RNG), unit(RNG)
#: A second embedder: another id and dimension (no defaults for it in config/identity.py).
OTHER = "testnet_64"
CAROL = unit(RNG, 64)
OK, WARN, ERROR = 0, 1, 2


class FakeMemory:
    """memory_node's gallery side, scripted: ``people[embedder] = {person_id: (name, vector)}``.

    Its own node, context and executor, spun on a thread with several workers, so a request it
    holds (or drops) blocks only its own callback, never the test's node.
    """

    def __init__(self, revision: int) -> None:
        import rclpy
        from rclpy.callback_groups import ReentrantCallbackGroup
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor

        self.revision = revision
        self.people: dict[str, dict[int, tuple[str, np.ndarray]]] = {EMBEDDER: {}}
        self.requests: list[str] = []  # embedder of every get_gallery request received
        self.drop = 0  # drop this many of the next requests (never answered)
        self.hold = False  # keep requests unanswered until release()
        self.refuse: set[str] = set()  # embedders answered with success=false
        self.answered: list[int] = []  # revision of every answer sent
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._closing = threading.Event()
        self._release_revision = revision
        self.held = 0
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("fake_memory_node", context=self.context)
        group = ReentrantCallbackGroup()
        self.events = self.node.create_publisher(MemoryEvent, "memory/events", LATCHED_QOS)
        self.node.create_service(GetGallery, "visio_memoria/get_gallery", self._get_gallery,
                                 callback_group=group)
        self.node.create_service(ListVisits, "visio_memoria/list_visits", self._list_visits,
                                 callback_group=group)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok() and not self._closing.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def announce(self, kind: str) -> None:
        """Publish a memory event at the current revision."""
        self.events.publish(MemoryEvent(revision=self.revision, kind=kind, message=kind))

    def _list_visits(self, request: Any, response: Any) -> Any:
        response.success = True
        return response

    def _fill(self, request: Any, response: Any, revision: int) -> Any:
        people = self.people.get(request.embedder, {})
        response.revision = revision
        if request.embedder in self.refuse:
            response.success, response.message = False, "store busy"
            return response
        response.success = True
        if people:
            vectors = np.stack([v for _, v in people.values()])
            response.dim = vectors.shape[1]
            response.embedding_ids = list(range(1, len(people) + 1))
            response.person_ids = list(people)
            response.names = [n for n, _ in people.values()]
            response.vectors = vectors.reshape(-1).astype(np.float32)
        with self._lock:
            self.answered.append(revision)
        return response

    def _get_gallery(self, request: Any, response: Any) -> Any:
        with self._lock:
            self.requests.append(request.embedder)
            drop = self.drop > 0
            self.drop -= int(drop)
            hold = self.hold and not drop
            self.held += int(hold)
        if drop:  # this request gets no reply (it is answered only as the test ends)
            self._closing.wait()
            return response
        if hold:
            self._released.wait()
            return self._fill(request, response, self._release_revision)
        return self._fill(request, response, self.revision)

    def release(self, revision: int) -> None:
        """Answer every held request as of ``revision``; answer new ones at once."""
        self._release_revision = revision
        self.hold = False
        self._released.set()

    def close(self) -> None:
        """Unblock every callback and shut the node down."""
        self._closing.set()
        self._released.set()
        self._thread.join(timeout=5.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


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
