"""Stores under failure: rollbacks and threads (SQLite and PostgreSQL); read-only and full
disks, locks and migrations of the SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from visio_memoria_ros.memory import (
    LATEST_VERSION,
    ClusterParams,
    MemoryStoreError,
    SQLiteStore,
    StoreOptions,
    StoreUnavailable,
    migrate,
)

DIM = 8
EMB = "emb"


def vec(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


class FailingConn:
    """Wraps a sqlite3 connection and raises ``exc`` on statements containing ``match``."""

    def __init__(self, conn: sqlite3.Connection, match: str, exc: Exception) -> None:
        self._conn = conn
        self.match = match
        self.exc = exc
        self.hits = 0

    def _check(self, sql: str) -> None:
        if self.match in sql:
            self.hits += 1
            raise self.exc

    def execute(self, sql: str, params=()):
        self._check(sql)
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows):
        self._check(sql)
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "memory.db",
                    StoreOptions(cluster=ClusterParams(similarity=0.8, min_size=2)))
    yield s
    s.close()


def snapshot(store: SQLiteStore) -> tuple:
    """Everything a reader can see, for before/after comparisons."""
    return (
        store.revision,
        [(p.person_id, p.name, p.num_embeddings, p.num_visits) for p in store.list_persons()],
        [(u.unknown_id, u.cluster_id) for u in store.list_unknowns()],
        [(v.visit_id, v.person_id, v.end) for v in store.list_visits(limit=0)],
        [(n.person_id, n.face_id) for n in store.gallery(EMB).negatives],
    )


def seeded(store: SQLiteStore) -> tuple[int, int, int]:
    """A person with faces, visits and negatives, plus an unknown cluster."""
    for i in range(3):
        store.add_unknown(vec(1) + 0.01 * vec(100 + i), EMB)
    cid = store.list_unknowns()[0].cluster_id
    pid = store.label_cluster(cid, name="Alice").person_id
    store.open_or_extend_visit(pid, 1000.0, activity="sitting")
    other = store.create_person("Bob").person_id
    for i in range(2):
        store.add_unknown(vec(3) + 0.01 * vec(200 + i), EMB)
    cluster2 = store.list_unknowns()[-1].cluster_id
    return pid, other, cluster2


# -- transactions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("operation", "fails_on"),
    [
        ("label", "DELETE FROM unknowns"),
        ("label", "INSERT INTO events"),
        ("forget", "DELETE FROM persons"),
        ("forget", "DELETE FROM visits"),
        ("merge", "DELETE FROM persons"),
        ("split", "UPDATE embeddings SET person_id"),
        ("not_this", "INSERT INTO negative_links"),
        ("discard", "INSERT INTO events"),
    ],
)
def test_failure_mid_operation_rolls_back(make_store, operation: str, fails_on: str,
                                          monkeypatch) -> None:
    store = make_store(StoreOptions(cluster=ClusterParams(similarity=0.8, min_size=2)))
    pid, other, cluster2 = seeded(store)
    before = snapshot(store)
    faces = [e.embedding_id for e in store.list_embeddings(pid)]
    failing = inject_failure(store, fails_on, RuntimeError("injected failure"), monkeypatch)
    run = {
        "label": lambda: store.label_cluster(cluster2, name="Carol"),
        "forget": lambda: store.forget_person(pid),
        "merge": lambda: store.merge_persons(pid, other),
        "split": lambda: store.split_person(pid, faces[:1], "Dave"),
        "not_this": lambda: store.not_this_person(pid, faces[:2]),
        "discard": lambda: store.discard_unknowns(cluster_id=cluster2),
    }[operation]
    with pytest.raises(RuntimeError, match="injected"):
        run()
    assert failing.hits == 1
    monkeypatch.undo()
    if isinstance(store, SQLiteStore):
        store._conn = failing._conn
    assert not store.database.in_transaction
    assert snapshot(store) == before  # nothing half-written
    assert store.integrity_check() == "ok"
    run()  # and the same operation works once the fault is gone
    assert snapshot(store) != before


def inject_failure(store, match: str, exc: Exception, monkeypatch) -> FailingConn:
    """Make the store's connection raise ``exc`` on statements containing ``match``."""
    if isinstance(store, SQLiteStore):
        failing = FailingConn(store._conn, match, exc)
        store._conn = failing
        return failing
    from visio_memoria_ros.memory import postgres_store

    failing = FailingConn(None, match, exc)
    execute, executemany = postgres_store._PgConn.execute, postgres_store._PgConn.executemany

    def checked_execute(self, sql, params=()):
        failing._check(sql)
        return execute(self, sql, params)

    def checked_executemany(self, sql, rows):
        failing._check(sql)
        return executemany(self, sql, rows)

    monkeypatch.setattr(postgres_store._PgConn, "execute", checked_execute)
    monkeypatch.setattr(postgres_store._PgConn, "executemany", checked_executemany)
    return failing


def test_disk_full_raises_store_unavailable_and_reads_go_on(store: SQLiteStore,
                                                           monkeypatch) -> None:
    pid, _, cluster2 = seeded(store)
    before = snapshot(store)
    full = FailingConn(store._conn, "INSERT", sqlite3.OperationalError("database or disk is full"))
    monkeypatch.setattr(store, "_conn", full)
    with pytest.raises(StoreUnavailable, match="disk is full") as info:
        store.label_cluster(cluster2, name="Carol")
    assert info.value.reason == "disk_full"
    with pytest.raises(StoreUnavailable):
        store.add_unknown(vec(9), EMB)
    assert not isinstance(info.value, ValueError)
    # Reads still work, and saw no partial write.
    assert snapshot(store) == before
    assert store.get_person(pid).name == "Alice"
    assert store.list_clusters()[0].cluster_id == cluster2
    monkeypatch.undo()
    store.label_cluster(cluster2, name="Carol")


def test_real_sqlite_full_error(store: SQLiteStore) -> None:
    """SQLite's own SQLITE_FULL (page limit reached), not a simulated one."""
    seeded(store)
    before = snapshot(store)
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    big = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    with pytest.raises(StoreUnavailable, match="full") as info:
        store.add_unknown(vec(5), EMB, crop=big)
    assert info.value.reason == "disk_full"
    assert snapshot(store) == before
    store._conn.execute(f"PRAGMA max_page_count = {2**30}")
    store.add_unknown(vec(5), EMB, crop=big)


def test_write_lock_timeout_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path, StoreOptions(busy_timeout=0.1)) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable) as info:
            store.create_person("Eve")
        assert info.value.reason == "locked"
        assert store.list_persons() == []
        other.execute("ROLLBACK")
        other.close()
        store.create_person("Eve")


def test_runtime_read_only_database(store: SQLiteStore) -> None:
    seeded(store)
    store._conn.execute("PRAGMA query_only = ON")  # SQLite now refuses every write
    with pytest.raises(StoreUnavailable, match="read-only") as info:
        store.create_person("Frank")
    assert info.value.reason == "read_only"
    assert [p.name for p in store.list_persons()] == ["Alice", "Bob"]
    store._conn.execute("PRAGMA query_only = OFF")
    store.create_person("Frank")


def test_open_read_only(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path) as s:
        pid = s.create_person("Grace").person_id
    with SQLiteStore(path, StoreOptions(read_only=True)) as ro:
        assert not ro.writable and not ro.stats().writable
        assert ro.get_person(pid).name == "Grace"
        for write in (lambda: ro.create_person("Heidi"), lambda: ro.forget_person(pid),
                      lambda: ro.add_unknown(vec(1), EMB)):
            with pytest.raises(StoreUnavailable, match="read-only"):
                write()
    with pytest.raises(StoreUnavailable, match="does not exist"):
        SQLiteStore(tmp_path / "absent.db", StoreOptions(read_only=True))


def _make_read_only(path: Path) -> None:
    """chmod 0400, and as root (who ignores modes) the immutable attribute where it works."""
    os.chmod(path, 0o400)
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            os.chmod(path, 0o600)
            pytest.skip("running as root and chattr +i is unavailable: cannot make a file "
                        "read-only")


def _undo_read_only(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
    os.chmod(path, 0o600)


@pytest.mark.parametrize("trust_access", [False, True])
def test_read_only_file_opens_for_reads(tmp_path: Path, monkeypatch, trust_access: bool) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path) as s:
        s.create_person("Ivan")
    _make_read_only(path)
    if trust_access:  # the write attempt itself must fail and fall back to read-only
        from visio_memoria_ros.memory import sqlite_store

        monkeypatch.setattr(sqlite_store.os, "access", lambda *_a, **_k: True)
    try:
        with SQLiteStore(path) as s:
            assert not s.writable
            assert [p.name for p in s.list_persons()] == ["Ivan"]
            with pytest.raises(StoreUnavailable, match="read-only") as info:
                s.create_person("Judy")
            assert info.value.reason == "read_only"
            assert s.integrity_check() == "ok"
    finally:
        monkeypatch.undo()
        _undo_read_only(path)
    with SQLiteStore(path) as s:
        s.create_person("Judy")


def test_chmod_read_only_seen_by_sqlite(tmp_path: Path, monkeypatch) -> None:
    """A file that turns read-only while open (as non-root) reports the SQLite error."""
    path = tmp_path / "m.db"
    with SQLiteStore(path) as s:
        s.create_person("Ivan")
        ro = FailingConn(s._conn, "INSERT",
                         sqlite3.OperationalError("attempt to write a readonly database"))
        monkeypatch.setattr(s, "_conn", ro)
        with pytest.raises(StoreUnavailable) as info:
            s.create_person("Judy")
        assert info.value.reason == "read_only"
        assert [p.name for p in s.list_persons()] == ["Ivan"]


# -- threads --------------------------------------------------------------------------------
def test_concurrent_operations_keep_the_store_consistent(make_store) -> None:
    store = make_store(StoreOptions(
        synchronous="NORMAL", cluster=ClusterParams(similarity=0.8, min_size=2)))
    errors: list[BaseException] = []
    refused: list[str] = []

    def worker(k: int) -> None:
        try:
            pid = store.create_person(f"worker {k}").person_id
            for i in range(25):
                u = store.add_unknown(vec(k) + 0.02 * vec(1000 * k + i), EMB, t=float(i),
                                      track_key=f"t{k}:{i % 3}")
                store.open_or_extend_visit(pid, float(i), activity="walking")
                if i % 5 == 0:
                    try:
                        store.label_unknown(u.unknown_id, person_id=pid)
                    except MemoryStoreError as exc:  # already labelled / replaced
                        refused.append(str(exc))
                store.list_clusters(max_samples=1)
                store.gallery(EMB)
                if i % 10 == 9:
                    store.recluster()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.integrity_check() == "ok"
    assert len(store.list_persons()) == 4
    assert all(len(store.list_visits(p.person_id)) == 1 for p in store.list_persons())
    st = store.stats()
    events = store.events_since(0)
    assert [e.revision for e in events] == list(range(1, st.revision + 1))


# -- migrations, versions, encryption keys --------------------------------------------------
def test_migrates_a_v1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    assert migrate(conn, target=1) == 1
    blob = vec(1).astype("<f4").tobytes()
    conn.execute("INSERT INTO persons (id, name, name_key, created) VALUES (1, 'Ann', 'ann', 5)")
    conn.execute("INSERT INTO embeddings (id, person_id, vector, dim, embedder, created) "
                 "VALUES (1, 1, ?, ?, ?, 5)", (blob, DIM, EMB))
    conn.execute("INSERT INTO unknowns (id, vector, dim, embedder, first_seen, last_seen) "
                 "VALUES (2, ?, ?, ?, 6, 7)", (vec(2).astype("<f4").tobytes(), DIM, EMB))
    conn.execute("INSERT INTO visits (person_id, started, last_seen, ended) VALUES (1, 5, 9, 9)")
    conn.execute("INSERT INTO negative_links (person_id, face_id, created) VALUES (1, 2, 8)")
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'next_face_id'")
    conn.close()
    with SQLiteStore(path) as store:
        assert store.stats().schema_version == LATEST_VERSION == 4
        assert store.get_person(1).name == "Ann"
        gal = store.gallery(EMB)
        np.testing.assert_allclose(gal.vectors[0], vec(1))
        assert [(n.person_id, n.face_id) for n in gal.negatives] == [(1, 2)]
        assert store.embedders() == {EMB: DIM}
        visit = store.list_visits(1)[0]
        assert visit.activity_counts == {} and visit.dominant_activity == "" and visit.end == 9
        old = store.get_unknown(2)
        assert old.track_key == "" and old.robot_id == ""
        assert (old.cluster_seq, old.candidate_id) == (0, -1)  # v4: a stranger's face
        assert store.stats().num_non_faces == 0
        # New-schema features work on the migrated file.
        new = store.add_unknown(vec(4), EMB, track_key="k")
        assert new.unknown_id == 3
        assert store.integrity_check() == "ok"


def test_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreUnavailable, match="newer") as info:
        SQLiteStore(path)
    assert info.value.reason == "version"


def test_migration_failure_keeps_old_version(tmp_path: Path, monkeypatch) -> None:
    from visio_memoria_ros.memory import schema

    path = tmp_path / "m.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=1)
    broken = schema.Migration(2, "broken", (*schema.MIGRATIONS[1].statements, "NOT SQL"))
    monkeypatch.setattr(schema, "MIGRATIONS", (schema.MIGRATIONS[0], broken))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn)
    assert schema.schema_version(conn) == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "events" not in tables and "negative_links" in tables
    conn.close()
