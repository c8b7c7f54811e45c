"""Privacy end to end over DDS: forgetting, retention, opt-out, file modes, encryption at rest.

The store-level versions of these properties are in test_memory_privacy.py; here the running
memory_node (and identity_node) do the work, fed through their topics and services, and the
test looks at what lands on disk: every file under the data directory (db, -wal, -shm and
anything else), byte for byte.
"""

from __future__ import annotations

import base64
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.dds

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from reliability_tools import (  # noqa: E402
    EMBEDDER,
    Services,
    data_files,
    identities,
    integrity,
    known,
    perception,
    read_only,
    stored_bytes,
    unit,
    unknown,
)
from std_msgs.msg import String  # noqa: E402
from visio_memoria.msg import IdentityArray, MemoryEvent, Perception  # noqa: E402
from visio_memoria.srv import (  # noqa: E402
    ForgetPerson,
    LabelUnknown,
    ListPersons,
    ListUnknownClusters,
    ListVisits,
    SetNeverRemember,
)

from visio_memoria_ros.memory import SQLiteStore  # noqa: E402
from visio_memoria_ros.memory.codec import CropCodec  # noqa: E402
from visio_memoria_ros.nodes.qos import LATCHED_QOS, RELIABLE_QOS  # noqa: E402

NAME = "Zebulon Quixote-Ünïcødé"
KEY_ENV = "VM_PRIVACY_TEST_KEY"


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def near(v: np.ndarray, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """A sample of the same face: cosine ~0.999 with ``v``."""
    x = v + noise * rng.normal(size=v.shape) / np.sqrt(v.size)
    return (x / np.linalg.norm(x)).astype(np.float32)


class Harness:
    """Publishers, collectors and service clients around memory_node (+ identity_node)."""

    def __init__(self, ros, processes: list) -> None:
        self.ros, self.processes = ros, processes
        node = ros.node
        self.ident_pub = node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
        self.percept_pub = node.create_publisher(Perception, "perception", RELIABLE_QOS)
        self.identities = ros.collect(IdentityArray, "identities", RELIABLE_QOS)
        self.greetings = ros.collect(String, "greeting", RELIABLE_QOS)
        self.events = ros.collect(MemoryEvent, "memory/events", LATCHED_QOS)
        self.revision = -1.0
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.svc = Services(ros, processes)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for s in msg.status:
            if s.name.endswith("identity_node: identity"):
                self.revision = float({kv.key: kv.value for kv in s.values}["gallery_revision"])

    def wait_memory(self) -> None:
        assert self.svc.call(ListPersons, "list_persons", name_filter="").success
        self.ros.wait_for_subscribers(self.ident_pub, 1, 60, self.processes)

    def unknown_faces(self) -> int:
        resp = self.svc.call(ListUnknownClusters, "list_unknown_clusters", max_samples=0,
                             min_size=1)
        assert resp.success, resp.message
        return sum(c.size for c in resp.clusters)

    def stream(self, faces, seconds: float, until=None, what: str = "", rate: float = 10.0
               ) -> None:
        """Publish perception frames with ``faces`` for ``seconds`` (or until ``until()``)."""
        end = time.monotonic() + seconds
        nxt = [0.0]

        def step() -> bool:
            if time.monotonic() >= nxt[0]:
                self.percept_pub.publish(perception(time.time(), faces))
                nxt[0] = time.monotonic() + 1.0 / rate
            return until() if until else time.monotonic() >= end

        self.ros.spin_until(step, seconds + 5 if until is None else seconds,
                            what or f"{seconds} s of frames", self.processes)

    def known_names(self, since: int = 0) -> set[str]:
        return {i.name for m in self.identities[since:] for i in m.identities
                if i.status == i.STATUS_KNOWN}


def memory_params(data: Path, **extra) -> dict:
    # Synthetic crops: the quality gate (test_memory_node_unknowns.py) would refuse them.
    return {"data_dir": str(data), "cluster_min_size": 2, "crop_format": "png",
            "encryption_key_env": "", "remember_gate": False, **extra}


# -- forget ----------------------------------------------------------------------------------
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "key_from_env"])
def test_forget_person_over_dds_leaves_no_trace(ros, launch, tmp_path, encrypted) -> None:
    data = tmp_path / "mem"
    env = {KEY_ENV: new_key()} if encrypted else {}
    params = memory_params(data, encryption_key_env=KEY_ENV if encrypted else "")
    memory = launch("memory_node", params=params, env=env)
    ident = launch("identity_node")
    h = Harness(ros, [memory, ident])
    h.wait_memory()
    rng = np.random.default_rng(11)
    centre = unit(rng)
    his = [near(centre, rng) for _ in range(4)]
    crops = [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in his]
    other = unit(rng)
    t = time.time()
    for k, (v, c) in enumerate(zip(his, crops, strict=True)):  # one track: one cluster
        h.ident_pub.publish(identities(t + 0.1 * k, [unknown(1, v, c)]))
    h.ident_pub.publish(identities(t, [unknown(2, other), unknown(3, near(other, rng))]))
    ros.spin_until(lambda: h.unknown_faces() == 6, 30, "6 faces stored", h.processes)
    clusters = h.svc.call(ListUnknownClusters, "list_unknown_clusters", min_size=1).clusters
    target = next(c for c in clusters if c.size == 4)
    label = h.svc.call(LabelUnknown, "label_unknown", cluster_id=target.cluster_id, name=NAME)
    assert label.success and label.num_embeddings == 4, label.message
    pid = label.person_id
    for dt in (0.0, 2.0):  # a visit
        h.ident_pub.publish(identities(time.time() + dt, [known(9, pid, NAME)]))
    ros.spin_until(lambda: len(h.svc.call(ListVisits, "list_visits", person_id=pid).visits)
                   == 1, 30, "his visit", h.processes)
    h.stream([(20, his[0])], 30, lambda: NAME in h.known_names(), "him recognised")

    conn = read_only(data / "memory.db")
    blobs = [bytes(b) for r in conn.execute(
        "SELECT vector, crop FROM embeddings WHERE person_id = ?", (pid,)) for b in r]
    conn.close()
    assert len(blobs) == 8
    before = data_files(data)
    assert NAME.encode() in before  # the scan can see his name ...
    if not encrypted:  # ... and his vectors when they are stored in clear
        assert all(stored_bytes(v) in before for v in his)
    else:
        assert not any(stored_bytes(v) in before for v in his)

    revision = max(e.revision for e in h.events)
    resp = h.svc.call(ForgetPerson, "forget_person", person_id=pid)
    assert resp.success, resp.message

    after = data_files(data)
    for needle in (NAME.encode(), NAME.casefold().encode(), NAME.lower().encode()):
        assert needle not in after
    for v in his:
        assert stored_bytes(v) not in after
    for blob in blobs:
        assert blob[-48:] not in after
    assert integrity(data / "memory.db") == "ok"
    assert h.unknown_faces() == 2  # the other person's faces stay
    assert h.svc.call(ListVisits, "list_visits", person_id=-1).visits == []

    # identity_node reloads and no longer knows him (a new sample of his face, new track).
    ros.spin_until(lambda: h.revision > revision, 30, "identity_node reloaded", h.processes)
    mark = len(h.identities)
    h.stream([(21, near(centre, rng, 0.02))], 2.0)
    decided = [i for m in h.identities[mark:] for i in m.identities if i.track_id == 21]
    assert decided and all(i.status != i.STATUS_KNOWN and i.name == "" for i in decided)
    memory.stop()
    final = data_files(data)
    assert NAME.encode() not in final and not any(stored_bytes(v) in final for v in his)


# -- retention ------------------------------------------------------------------------------
@pytest.mark.slow
def test_retention_timer_purges_old_unknowns_and_visits(ros, launch, tmp_path) -> None:
    data = tmp_path / "mem"
    with SQLiteStore(data / "memory.db") as store:
        vera = store.create_person("Vera").person_id
    params = memory_params(data, purge_period=10.0, unknown_retention_days=1e-5,
                           visit_retention_days=1e-5, visit_absence=1.0,  # 1e-5 d = 0.86 s
                           cluster_min_size=1)
    memory = launch("memory_node", params=params)
    h = Harness(ros, [memory])
    h.wait_memory()
    rng = np.random.default_rng(5)
    faces = [unit(rng) for _ in range(3)]
    h.ident_pub.publish(identities(time.time(), [unknown(k, v) for k, v in enumerate(faces)]))
    h.ident_pub.publish(identities(time.time(), [known(7, vera, "Vera")]))
    ros.spin_until(lambda: h.unknown_faces() == 3, 20, "3 unknowns stored", h.processes)
    visits = lambda: h.svc.call(ListVisits, "list_visits", person_id=vera).visits  # noqa: E731
    ros.spin_until(lambda: len(visits()) == 1, 20, "a visit", h.processes)
    assert stored_bytes(faces[0]) in data_files(data)
    ros.spin_until(lambda: h.unknown_faces() == 0 and not visits(), 40,
                   "the purge timer to delete unknowns and the closed visit", h.processes)
    ros.spin_until(lambda: "retention purge" in memory.output(), 5, "the purge logged",
                   h.processes)
    assert not any(stored_bytes(v) in data_files(data) for v in faces)
    assert [p.name for p in h.svc.call(ListPersons, "list_persons").persons] == ["Vera"]


# -- opt-out --------------------------------------------------------------------------------
def test_never_remember_person_is_neither_stored_nor_greeted(ros, launch, tmp_path) -> None:
    data = tmp_path / "mem"
    rng = np.random.default_rng(9)
    olive = unit(rng)
    with SQLiteStore(data / "memory.db") as store:
        oid = store.create_person("Olive").person_id
        store.add_embedding(oid, olive, EMBEDDER, quality=0.9)
    memory = launch("memory_node", params=memory_params(data, cluster_min_size=1))
    ident = launch("identity_node")
    h = Harness(ros, [memory, ident])
    h.wait_memory()
    # Control: before the opt-out she is recognised and greeted.
    h.stream([(1, olive)], 60, lambda: "Welcome back, Olive!" in [g.data for g in h.greetings],
             "Olive greeted")
    resp = h.svc.call(SetNeverRemember, "set_never_remember", person_id=oid,
                      never_remember=True)
    assert resp.success, resp.message
    revision = max(e.revision for e in h.events)
    ros.spin_until(lambda: h.revision >= revision, 30, "identity_node reloaded", h.processes)

    def state():
        conn = read_only(data / "memory.db")
        try:
            return (conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0],
                    conn.execute("SELECT id, last_seen FROM visits ORDER BY id").fetchall(),
                    [bytes(r[0]) for r in conn.execute("SELECT vector FROM unknowns")])
        finally:
            conn.close()

    embeddings, visits, unknowns = state()
    greetings, mark = len(h.greetings), len(h.identities)
    stranger = unit(rng)
    # Olive on new tracks (exact and new samples of her face) next to a stranger, 3 s.
    h.stream([(2, olive), (3, near(olive, rng)), (4, stranger)], 3.0)
    ros.spin_until(lambda: h.unknown_faces() >= len(unknowns) + 1, 20,
                   "the stranger stored (storing works meanwhile)", h.processes)
    embeddings2, visits2, unknowns2 = state()
    assert embeddings2 == embeddings and visits2 == visits
    new = [np.frombuffer(b, np.float32) for b in unknowns2 if b not in unknowns]
    assert new and all(float(v @ olive) < 0.5 for v in new), "a face of Olive was stored"
    assert len(h.greetings) == greetings, [g.data for g in h.greetings[greetings:]]
    hers = [i for m in h.identities[mark:] for i in m.identities if i.track_id in (2, 3)]
    assert hers and all(i.status != i.STATUS_KNOWN and not i.new_evidence
                        and len(i.embedding) == 0 and i.crop.height == 0 for i in hers)


# -- files ----------------------------------------------------------------------------------
def test_files_created_by_the_node_are_owner_only(ros, launch, tmp_path) -> None:
    data = tmp_path / "a" / "b" / "mem"
    old = os.umask(0)  # the node inherits the most permissive umask
    try:
        memory = launch("memory_node", params=memory_params(data))
    finally:
        os.umask(old)
    h = Harness(ros, [memory])
    h.wait_memory()
    rng = np.random.default_rng(1)
    h.ident_pub.publish(identities(time.time(), [unknown(1, unit(rng))]))
    ros.spin_until(lambda: _stats(data) == "1 unknown", 20, "a face stored", h.processes)
    names = {p.name for p in data.iterdir()}
    assert {"memory.db", "memory.db-wal", "memory.db-shm"} <= names
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for p in data.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))


# -- encryption at rest ------------------------------------------------------------------------
@pytest.mark.parametrize("key_source", ["none", "file", "env"])
def test_encryption_at_rest_through_the_node(ros, launch, tmp_path, key_source) -> None:
    pytest.importorskip("cryptography")
    data = tmp_path / "mem"
    params, env = memory_params(data), {}
    if key_source == "file":
        key_file = tmp_path / "key"
        key_file.write_text(new_key() + "\n")
        key_file.chmod(0o600)
        params["encryption_key_file"] = str(key_file)
    elif key_source == "env":
        env[KEY_ENV] = new_key()
        params["encryption_key_env"] = KEY_ENV
    memory = launch("memory_node", params=params, env=env)
    h = Harness(ros, [memory])
    h.wait_memory()
    rng = np.random.default_rng(2)
    vectors = [unit(rng) for _ in range(4)]
    crops = [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in vectors]
    h.ident_pub.publish(identities(time.time(), [unknown(k, v, c) for k, (v, c) in
                                                 enumerate(zip(vectors, crops, strict=True))]))
    ros.spin_until(lambda: _stats(data) == "4 unknown", 20,
                   "4 faces stored", h.processes)
    memory.stop()  # checkpoint: everything is in the main file too
    raw = data_files(data)
    png = [CropCodec("png", 90).encode(c) for c in crops]
    plain = [stored_bytes(v) in raw for v in vectors] + [p[40:104] in raw for p in png]
    if key_source == "none":
        assert all(plain)  # the scan sees clear data
        assert b"\x89PNG" in raw
    else:
        assert not any(plain), "crop or vector plaintext on disk"
        assert b"\x89PNG" not in raw
        assert "(encrypted)" in memory.output()


def _stats(data: Path) -> str:
    conn = read_only(data / "memory.db")
    try:
        n = conn.execute("SELECT COUNT(*) FROM unknowns").fetchone()[0]
    finally:
        conn.close()
    return f"{n} unknown"
