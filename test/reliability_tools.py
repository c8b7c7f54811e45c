"""Shared pieces of the reliability, fuzz, privacy, gallery and parameter tests: messages,
service calls, db checks, a scripted memory_node stand-in.

Imported by the reliability, fuzz, privacy, gallery and parameter tests only. Messages are
built the way the real nodes build them (rgb_to_msg crops, 128-d dlib-sized embeddings), the
database is inspected with plain ``sqlite3`` opened read-only, so a check never changes what a
restarted node will find.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from visio_memoria.msg import Face, Identity, IdentityArray, MemoryEvent, Perception
from visio_memoria.srv import GetGallery, ListVisits

from visio_memoria_ros.memory.validation import validate_vector
from visio_memoria_ros.nodes.images import rgb_to_msg
from visio_memoria_ros.nodes.qos import LATCHED_QOS
from visio_memoria_ros.nodes.stamps import s_to_stamp

#: The identity node's default embedder: its thresholds (accept 0.925) apply.
EMBEDDER = "dlib_resnet_v1_128"
DIM = 128
FRAME = "front_cam"


def unit(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    """A random unit float32 vector (a stranger: cosine ~0 with any other)."""
    v = rng.normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def stored_bytes(vector: np.ndarray) -> bytes:
    """The exact bytes the store writes for ``vector`` when it is not encrypted."""
    return validate_vector(np.asarray(vector, np.float32)).tobytes()


def identities(t: float, rows: list[Identity], frame_id: str = FRAME) -> IdentityArray:
    """An IdentityArray stamped ``t`` [s]."""
    msg = IdentityArray(identities=rows)
    msg.header.stamp = s_to_stamp(t)
    msg.header.frame_id = frame_id
    return msg


def unknown(track_id: int, vector: np.ndarray, crop: np.ndarray | None = None) -> Identity:
    """An UNKNOWN identity carrying new evidence (memory_node stores it)."""
    ident = Identity(track_id=track_id, person_track_id=-1, person_id=-1, name="",
                     similarity=0.1, status=Identity.STATUS_UNKNOWN, unknown_cluster_id=-1,
                     bbox=[10.0, 10.0, 60.0, 70.0], new_evidence=True,
                     embedding=np.asarray(vector, np.float32).tolist(), embedder=EMBEDDER,
                     quality=0.8)
    if crop is not None:
        ident.crop = rgb_to_msg(crop)
    return ident


def known(track_id: int, person_id: int, name: str = "") -> Identity:
    """A KNOWN identity (memory_node records a visit)."""
    return Identity(track_id=track_id, person_id=person_id, name=name, similarity=0.95,
                    status=Identity.STATUS_KNOWN, bbox=[0.0, 0.0, 10.0, 10.0],
                    unknown_cluster_id=-1, person_track_id=-1, quality=0.5,
                    new_evidence=False, embedder=EMBEDDER)


def perception(t: float, faces: list[tuple[int, np.ndarray]], frame_id: str = FRAME
               ) -> Perception:
    """A Perception message with one embedded face per (track id, vector)."""
    msg = Perception(image_width=640, image_height=480)
    msg.header.stamp = s_to_stamp(t)
    msg.header.frame_id = frame_id
    for track_id, vector in faces:
        msg.faces.append(Face(
            track_id=track_id, bbox=[100.0, 100.0, 200.0, 220.0],
            landmarks=[120.0, 140.0, 180.0, 140.0, 150.0, 170.0, 125.0, 200.0, 175.0, 200.0],
            score=0.99, quality=0.9, detector="synthetic",
            embedding=np.asarray(vector, np.float32).tolist(), embedder=EMBEDDER))
    return msg


class Services:
    """Memory service clients of the test node, created once per service name."""

    def __init__(self, ros: Any, processes: list[Any]) -> None:
        self.ros = ros
        self.processes = processes
        self._clients: dict[str, Any] = {}

    def client(self, srv_type: Any, service: str, /) -> Any:
        """The client of ``visio_memoria/<service>``."""
        if service not in self._clients:
            self._clients[service] = self.ros.node.create_client(
                srv_type, f"visio_memoria/{service}")
        return self._clients[service]

    def call(self, srv_type: Any, service: str, /, timeout: float = 30.0, **fields: Any) -> Any:
        """Call ``visio_memoria/<service>`` and return the response (fails on timeout).

        Read-only services (list_*, get_*) are re-sent after 5 s without an answer, as a real
        client must: a reply to a request sent just after memory_node (re)started can be lost
        (see RosTestNode.call). Writes are sent once.
        """
        read_only = service.startswith(("list_", "get_"))
        return self.ros.call(self.client(srv_type, service), srv_type.Request(**fields),
                             timeout=timeout, processes=self.processes,
                             resend_after=5.0 if read_only else None)

    def call_async(self, srv_type: Any, service: str, /, **fields: Any) -> Any:
        """Send a request without waiting; returns the future."""
        return self.client(srv_type, service).call_async(srv_type.Request(**fields))


class MemoryDiagnostics:
    """memory_node's /diagnostics status (level, message, values) as the test node sees it."""

    def __init__(self, ros: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.statuses: list[tuple[int, str, dict[str, str]]] = []
        ros.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 20)

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith("memory_node: memory"):
                self.statuses.append((status.level[0], status.message,
                                      {kv.key: kv.value for kv in status.values}))

    def seen(self, level: int, text: str) -> bool:
        """True once a status of ``level`` (0 OK, 1 WARN, 2 ERROR) holding ``text`` came."""
        return any(lv == level and text in message for lv, message, _ in self.statuses)


def read_only(db: Path) -> sqlite3.Connection:
    """A read-only connection to the memory file (never checkpoints nor changes it)."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0, isolation_level=None)


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` + foreign keys: "ok" or the problems."""
    conn = read_only(db)
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    if fk:
        problems.append(f"{len(fk)} foreign key violations: {fk[:5]}")
    return "ok" if problems == ["ok"] else "; ".join(problems)


def data_files(data_dir: Path) -> bytes:
    """Every byte of every file under the data directory (db, -wal, -shm, anything else)."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` (no ROS spinning) until true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


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
        self._drained = threading.Event()  # no held request is waiting for its answer
        self._drained.set()
        self._closing = threading.Event()
        self._release_revision = revision
        self.held = 0
        self._outstanding = 0  # held requests not answered yet
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("fake_memory_node", context=self.context)
        group = ReentrantCallbackGroup()
        self.events = self.node.create_publisher(MemoryEvent, "memory/events", LATCHED_QOS)
        self.node.create_service(GetGallery, "visio_memoria/get_gallery", self._get_gallery,
                                 callback_group=group)
        self.node.create_service(ListVisits, "visio_memoria/list_visits", self._list_visits,
                                 callback_group=group)
        self.executor = MultiThreadedExecutor(num_threads=8, context=self.context)
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
            self._outstanding += int(hold)
            if hold:
                self._drained.clear()
        if drop:  # this request gets no reply (it is answered only as the test ends)
            self._closing.wait()
            return response
        if hold:
            self._released.wait()
            answer = self._fill(request, response, self._release_revision)
            with self._lock:
                self._outstanding -= 1
                if self._outstanding == 0:
                    self._drained.set()
            return answer
        # A request that arrives while release() is waking the held ones is answered after
        # them, so the held answers (the older revision) are always sent first.
        self._drained.wait()
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
        self._drained.set()
        self._thread.join(timeout=5.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
