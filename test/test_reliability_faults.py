"""Faults between nodes and under them: restarts of memory_node and identity_node, full and
read-only disks under memory_node.

* memory_node restarted (SIGKILL) while identity_node runs: identity_node reloads the gallery
  from the new process (a person added meanwhile is recognised, /diagnostics shows the new
  gallery revision); three restarts in a row, faces streaming throughout, each ending at the
  store's newest revision.
* identity_node restarted in the middle of a visit: the visit is still open in the memory, the
  restarted node takes it over (``ListVisits`` at start) and does not greet the person again;
  a person without an open visit is still greeted.

Identities are checked per face track: a track id used only after a restart can be decided
only by the processes started since, never by identities the killed process published and the
test had not read yet.
* a full disk (a small tmpfs) under a running memory_node: a clear error is logged and is an
  ERROR on /diagnostics, refused writes say "the disk is full", every list service still
  answers, and once space is back faces are stored and labels work again. A read-only file
  system: the node starts read-only, says so (log and /diagnostics), answers reads and refuses
  writes with a reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.dds

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from reliability_tools import (  # noqa: E402
    EMBEDDER,
    MemoryDiagnostics,
    Services,
    identities,
    integrity,
    perception,
    unit,
    unknown,
)
from std_msgs.msg import String  # noqa: E402
from visio_memoria.msg import IdentityArray, MemoryEvent, Perception  # noqa: E402
from visio_memoria.srv import (  # noqa: E402
    GetGallery,
    LabelUnknown,
    ListPersons,
    ListUnknownClusters,
    ListVisits,
)

from visio_memoria_ros.memory import SQLiteStore  # noqa: E402
from visio_memoria_ros.nodes.qos import LATCHED_QOS, RELIABLE_QOS  # noqa: E402

RNG = np.random.default_rng(7)
ALICE, BOB = unit(RNG), unit(RNG)


def seed_store(db: Path, people: dict[str, np.ndarray]) -> dict[str, int]:
    """Create persons with one face each directly in the file (the node is not running)."""
    ids = {}
    with SQLiteStore(db) as store:
        for name, vector in people.items():
            pid = store.create_person(name).person_id
            store.add_embedding(pid, vector, EMBEDDER, quality=0.9)
            ids[name] = pid
    return ids


class Pipeline:
    """The test's side of identity_node + memory_node: perception in, identities/greetings out."""

    def __init__(self, ros, processes: list) -> None:
        self.ros = ros
        self.processes = processes
        self.pub = ros.node.create_publisher(Perception, "perception", RELIABLE_QOS)
        self.identities = ros.collect(IdentityArray, "identities", RELIABLE_QOS)
        self.greetings = ros.collect(String, "greeting", RELIABLE_QOS)
        self.events = ros.collect(MemoryEvent, "memory/events", LATCHED_QOS)
        self.revisions: list[float] = []
        ros.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith("identity_node: identity"):
                values = {kv.key: kv.value for kv in status.values}
                self.revisions.append(float(values["gallery_revision"]))

    def names_seen(self, since: int = 0, track_id: int | None = None) -> set[str]:
        """Names of KNOWN identities published since message index ``since`` (of one track)."""
        return {i.name for m in self.identities[since:] for i in m.identities
                if i.status == i.STATUS_KNOWN and track_id in (None, i.track_id)}

    def stream_until(self, faces: list[tuple[int, np.ndarray]], predicate, timeout: float,
                     what: str, rate: float = 10.0) -> None:
        """Publish frames with ``faces`` at ``rate`` Hz (stamped now) until ``predicate()``."""
        next_t = [0.0]

        def step() -> bool:
            now = time.monotonic()
            if now >= next_t[0]:
                self.pub.publish(perception(time.time(), faces))
                next_t[0] = now + 1.0 / rate
            return predicate()

        self.ros.spin_until(step, timeout, what, self.processes)


def test_identity_node_reloads_the_gallery_when_memory_node_restarts(ros, launch, tmp_path):
    data = tmp_path / "mem"
    seed_store(data / "memory.db", {"Alice": ALICE})
    memory = launch("memory_node", params={"data_dir": str(data)})
    ident = launch("identity_node")
    pipe = Pipeline(ros, [memory, ident])
    pipe.stream_until([(1, ALICE)], lambda: "Alice" in pipe.names_seen(), 60,
                      "Alice recognised")
    first_revision = pipe.revisions[-1] if pipe.revisions else -1

    memory.signal(signal.SIGKILL)
    memory.wait(10)
    with SQLiteStore(data / "memory.db") as store:  # labelled meanwhile by another tool
        bob = store.create_person("Bob").person_id
        store.add_embedding(bob, BOB, EMBEDDER, quality=0.9)
        revision = store.revision
    assert revision > first_revision
    memory2 = launch("memory_node", params={"data_dir": str(data)}, name="memory_node_2")
    pipe.processes = [memory2, ident]
    mark = len(pipe.identities)
    pipe.stream_until([(2, BOB)], lambda: "Bob" in pipe.names_seen(mark, track_id=2), 60,
                      "Bob recognised after the memory_node restart")
    ros.spin_until(lambda: pipe.revisions and pipe.revisions[-1] == revision, 10,
                   f"gallery_revision {revision} on /diagnostics", pipe.processes)
    mark = len(pipe.identities)
    pipe.stream_until([(3, ALICE)], lambda: "Alice" in pipe.names_seen(mark, track_id=3), 30,
                      "Alice still recognised")
    assert ident.alive() and "gallery revision" in ident.output()


def test_identity_node_ends_at_the_newest_revision_after_each_of_three_memory_restarts(
        ros, launch, tmp_path):
    data = tmp_path / "mem"
    db = data / "memory.db"
    seed_store(db, {"Alice": ALICE})
    memory = launch("memory_node", params={"data_dir": str(data)})
    ident = launch("identity_node")
    pipe = Pipeline(ros, [memory, ident])
    pipe.stream_until([(1, ALICE)], lambda: "Alice" in pipe.names_seen(track_id=1), 60,
                      "Alice recognised")
    rng = np.random.default_rng(21)

    def restart(memory, cycle: int):
        memory.signal(signal.SIGKILL)  # in the middle of the stream
        memory.wait(10)
        name, vector = f"Person{cycle}", unit(rng)
        with SQLiteStore(db) as store:  # changed while memory_node is down
            pid = store.create_person(name).person_id
            store.add_embedding(pid, vector, EMBEDDER, quality=0.9)
            revision = store.revision
        memory = launch("memory_node", params={"data_dir": str(data)},
                        name=f"memory_node_{cycle + 2}")
        pipe.processes = [memory, ident]
        track = 10 + cycle
        pipe.stream_until([(1, ALICE), (track, vector)],
                          lambda: pipe.revisions and pipe.revisions[-1] == revision, 60,
                          f"gallery_revision {revision} (the store's) on /diagnostics after "
                          f"restart {cycle + 1}")
        mark = len(pipe.identities)
        pipe.stream_until([(1, ALICE), (track, vector)],
                          lambda: name in pipe.names_seen(mark, track_id=track), 30,
                          f"{name} recognised after restart {cycle + 1}")
        return memory

    for cycle in range(3):
        memory = restart(memory, cycle)
    with SQLiteStore(db) as store:
        assert pipe.revisions[-1] == store.revision
    assert ident.alive()


def test_identity_node_restart_mid_visit_does_not_greet_again(ros, launch, tmp_path):
    data = tmp_path / "mem"
    ids = seed_store(data / "memory.db", {"Alice": ALICE, "Bob": BOB})
    memory = launch("memory_node", params={"data_dir": str(data)})
    ident = launch("identity_node")
    pipe = Pipeline(ros, [memory, ident])
    svc = Services(ros, [memory])
    alice_greeted = lambda: [g.data for g in pipe.greetings].count("Welcome back, Alice!")  # noqa: E731
    pipe.stream_until([(1, ALICE)], lambda: alice_greeted() == 1, 60, "Alice greeted")

    def open_visit() -> bool:
        resp = svc.call(ListVisits, "list_visits", person_id=ids["Alice"], limit=5)
        return resp.success and any(v.end.sec == 0 for v in resp.visits)

    pipe.stream_until([(1, ALICE)], open_visit, 30, "Alice's visit open in the memory")

    ident.signal(signal.SIGKILL)  # a crash, not a clean stop
    ident.wait(10)
    ident2 = launch("identity_node", name="identity_node_2")
    pipe.processes = [memory, ident2]
    mark = len(pipe.identities)
    # She is still there: the new node recognises her on a new track, for 3 more seconds.
    # Track 5 is new: only the restarted node can have decided it (identities the killed node
    # published before its death may still be waiting in the test's reader), and only with
    # its gallery loaded.
    pipe.stream_until([(5, ALICE)], lambda: "Alice" in pipe.names_seen(mark, track_id=5), 60,
                      "Alice recognised by the restarted identity_node")
    assert "gallery revision" in ident2.output()
    end = time.monotonic() + 3.0
    pipe.stream_until([(5, ALICE)], lambda: time.monotonic() > end, 10, "3 s more of Alice")
    assert alice_greeted() == 1, [g.data for g in pipe.greetings]
    assert "resumed 1 open visit" in ident2.output(), ident2.output()[-2000:]
    # Bob has no open visit: the restarted node greets him.
    pipe.stream_until([(6, BOB)], lambda: "Welcome back, Bob!" in
                      [g.data for g in pipe.greetings], 30, "Bob greeted")
    assert alice_greeted() == 1


# -- disks ----------------------------------------------------------------------------------
def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                             str(where)], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")


@contextlib.contextmanager
def small_disk(where: Path, size: str, processes: list) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``where``; the processes in ``processes`` are stopped before
    it is unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    _mount_tmpfs(where, size)
    try:
        yield where
    finally:
        for proc in processes:
            proc.stop()
        done = subprocess.run(["umount", str(where)], check=False, capture_output=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the file system is full; returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    written = 0
    try:
        while True:
            written += os.write(fd, b"\0" * 65536)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    try:
        while True:
            written += os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return written


def _cluster_faces(svc: Services) -> int:
    resp = svc.call(ListUnknownClusters, "list_unknown_clusters", max_samples=0, min_size=1)
    assert resp.success, resp.message
    return sum(c.size for c in resp.clusters)


def _reads_answer(svc: Services) -> None:
    for srv, name, fields in ((ListPersons, "list_persons", {"name_filter": ""}),
                              (ListUnknownClusters, "list_unknown_clusters", {}),
                              (ListVisits, "list_visits", {"person_id": -1}),
                              (GetGallery, "get_gallery", {"embedder": EMBEDDER})):
        resp = svc.call(srv, name, **fields)
        assert resp.success, f"{name} failed: {resp.message}"


def test_full_disk_is_reported_reads_go_on_and_writes_recover(ros, launch, tmp_path):
    procs: list = []
    with small_disk(tmp_path / "disk", "1m", procs) as disk:
        data = disk / "mem"
        memory = launch("memory_node", params={"data_dir": str(data), "cluster_min_size": 1,
                                               "crop_format": "png",
                                               "remember_gate": False})  # synthetic crops
        procs.append(memory)
        diag = MemoryDiagnostics(ros)
        svc = Services(ros, [memory])
        pub = ros.node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
        ros.wait_for_subscribers(pub, 1, 60, [memory])
        rng = np.random.default_rng(3)
        track = [0]

        def send_faces(n: int) -> None:
            for _ in range(n):
                track[0] += 1
                crop = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)  # incompressible
                pub.publish(identities(time.time(), [unknown(track[0], unit(rng), crop)]))
                ros.executor.spin_once(timeout_sec=0.01)

        send_faces(3)
        ros.spin_until(lambda: _cluster_faces(svc) == 3, 30, "3 faces stored", [memory])

        filled = fill(disk / "filler")
        assert filled > 0
        for _ in range(40):  # until the WAL cannot grow any more
            send_faces(5)
            if "the disk is full" in memory.output():
                break
        ros.spin_until(lambda: "the disk is full" in memory.output(), 30,
                       "'the disk is full' in the log", [memory])
        assert "cannot store" in memory.output()
        ros.spin_until(lambda: diag.seen(2, "cannot store"), 10,
                       "ERROR 'cannot store' on /diagnostics", [memory])
        _reads_answer(svc)
        stored_when_full = _cluster_faces(svc)
        clusters = svc.call(ListUnknownClusters, "list_unknown_clusters", min_size=1).clusters
        label = svc.call(LabelUnknown, "label_unknown", cluster_id=clusters[0].cluster_id,
                         name="Dora")
        if not label.success:  # refused with the reason, not an "internal error"
            assert "disk is full" in label.message, label.message
        assert memory.alive()

        (disk / "filler").unlink()  # space is back
        send_faces(5)
        ros.spin_until(lambda: _cluster_faces(svc) > stored_when_full - int(label.success)
                       * label.num_embeddings, 30, "new faces stored after space returned",
                       [memory])
        clusters = svc.call(ListUnknownClusters, "list_unknown_clusters", min_size=1).clusters
        again = svc.call(LabelUnknown, "label_unknown", cluster_id=clusters[0].cluster_id,
                         name="Eve")
        assert again.success, again.message
        _reads_answer(svc)
        assert integrity(data / "memory.db") == "ok"
        assert memory.alive()


def test_read_only_disk_serves_reads_and_refuses_writes_with_a_reason(ros, launch, tmp_path):
    procs: list = []
    with small_disk(tmp_path / "disk", "4m", procs) as disk:
        data = disk / "mem"
        seed_store(data / "memory.db", {"Alice": ALICE})
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        memory = launch("memory_node", params={"data_dir": str(data),
                                               "remember_gate": False})  # synthetic faces
        procs.append(memory)
        diag = MemoryDiagnostics(ros)
        svc = Services(ros, [memory])
        persons = svc.call(ListPersons, "list_persons", name_filter="")
        assert persons.success and [p.name for p in persons.persons] == ["Alice"]
        assert "READ-ONLY" in memory.output()
        _reads_answer(svc)
        gallery = svc.call(GetGallery, "get_gallery", embedder=EMBEDDER)
        assert list(gallery.names) == ["Alice"]
        pub = ros.node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
        ros.wait_for_subscribers(pub, 1, 30, [memory])
        for k in range(5):
            pub.publish(identities(time.time(), [unknown(k, unit(RNG))]))
        ros.spin_until(lambda: "cannot store" in memory.output(), 30, "'cannot store' logged",
                       [memory])
        ros.spin_until(lambda: diag.seen(2, "cannot store") and diag.seen(2, "read-only"), 10,
                       "ERROR on /diagnostics: cannot store, read-only memory", [memory])
        from visio_memoria.srv import RenamePerson

        renamed = svc.call(RenamePerson, "rename_person", person_id=persons.persons[0].person_id,
                           name="Alicia")
        assert not renamed.success and "read-only" in renamed.message, renamed.message
        assert memory.alive()
        memory.stop()
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        memory2 = launch("memory_node", params={"data_dir": str(data)}, name="memory_node_rw")
        procs.append(memory2)
        svc2 = Services(ros, [memory2])
        renamed = svc2.call(RenamePerson, "rename_person",
                            person_id=persons.persons[0].person_id, name="Alicia")
        assert renamed.success, renamed.message
        assert integrity(data / "memory.db") == "ok"
