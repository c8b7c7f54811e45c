"""The PostgreSQL store against a real server: the URL setting, passwords and TLS, pgvector
and HNSW, many robots, change notifications, lost servers, concurrent writers, forget-me
across every table, crop encryption, and the copy of an SQLite memory.

The server comes from test/memory_backends.py (pgserver wheel, or VISIO_MEMORIA_TEST_PG_URL);
every test gets a fresh database. The conformance tests of both backends are in
test_memory_store.py and its siblings.
"""

from __future__ import annotations

import base64
import logging
import multiprocessing
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from memory_backends import PgCluster, create_database, create_role, drop_database, drop_role

from visio_memoria_ros.memory import (
    ClusterParams,
    ConflictError,
    CropCodec,
    Location,
    LocationError,
    NotAFaceError,
    PostgresStore,
    SQLiteStore,
    StoreOptions,
    StoreUnavailable,
    open_store,
    parse_location,
)

DIM = 16
EMB = "emb"
NAME = "Zebulon Quixote-Ünïcødé"
OPTS = StoreOptions(crop_format="png", cluster=ClusterParams(similarity=0.8, min_size=2))


def vec(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(seed: int, i: int) -> np.ndarray:
    v = vec(seed) + 0.02 * vec(10_000 + 97 * seed + i)
    return (v / np.linalg.norm(v)).astype(np.float32)


def crop(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)


def raw(url: str):
    import psycopg
    from pgvector.psycopg import register_vector

    conn = psycopg.connect(url, autocommit=True)
    register_vector(conn)
    return conn


# -- the one URL setting ---------------------------------------------------------------------
def test_location_forms(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert parse_location("", data).path == data / "memory.db"
    assert parse_location("other.db", data).path == data / "other.db"
    assert parse_location(str(tmp_path / "x.db"), data).path == tmp_path / "x.db"
    assert parse_location(f"sqlite://{tmp_path}/y.db", data).path == tmp_path / "y.db"
    assert parse_location("sqlite://rel.db", data).path == data / "rel.db"
    pg = parse_location("postgresql://robot@db.example:5433/fleet?sslmode=verify-full", data)
    assert pg.engine == "postgresql" and pg.path is None and "sslmode=verify-full" in pg.url
    assert parse_location("postgres://robot@db/fleet").engine == "postgresql"
    for bad, reason in (("mysql://robot@db/fleet", "scheme 'mysql'"),
                        ("redis://x", "does not know"), ("postgresql:/db", "postgresql://"),
                        ("sqlite:relative.db", "sqlite:///"),
                        ("postgresql://robot@db:notaport/fleet", "malformed")):
        with pytest.raises(LocationError, match=reason):
            parse_location(bad, data)
    assert not data.exists()  # parsing creates nothing


def test_password_in_the_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(LocationError, match="PGPASSWORD") as info:
        parse_location("postgresql://robot:s3cret-Pass@db/fleet")
    assert "s3cret-Pass" not in str(info.value)
    # "user:@host" (pgserver's own URLs) carries an empty password: nothing secret, accepted
    assert parse_location("postgresql://robot:@db/fleet").engine == "postgresql"


@pytest.mark.parametrize("url", [
    "postgresql://robot@db/fleet?password=s3cret-Pass",
    "postgres://robot@db:5433/fleet?sslmode=require&password=s3cret-Pass&connect_timeout=3",
    "postgresql://robot@db/fleet?pass%77ord=s3cret-Pass",  # libpq decodes the key too
    "postgresql://robot@db/fleet?PASSWORD=s3cret-Pass",
    "postgresql://robot@db:notaport/fleet?password=s3cret-Pass",  # malformed as well
    "postgresql:/fleet?password=s3cret-Pass",
])
def test_password_in_the_url_query_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(LocationError) as info:
        parse_location(url)
    assert "s3cret-Pass" not in str(info.value)
    if "notaport" not in url and "//" in url:
        assert "PGPASSWORD, ~/.pgpass or db_password_file" in str(info.value)


def test_shown_and_where_never_hold_a_password(pg_url, tmp_path: Path) -> None:
    for url in ("postgresql://robot:s3cret-Pass@[::1]:5433/fleet?sslmode=require",
                "postgresql://robot@db/fleet?sslmode=require&password=s3cret-Pass",
                "postgresql://robot:s3cret-Pass@db/fleet?pass%77ord=s3cret-Pass"):
        shown = Location("postgresql", url=url).shown
        assert "s3cret-Pass" not in shown and "***" in shown and "robot" in shown
    assert "[::1]:5433" in Location("postgresql", url="postgresql://r:x@[::1]:5433/f").shown
    # passfile= names a file, not a password: accepted, and shown as written.
    url = f"{pg_url}?passfile={tmp_path / 'pgpass'}&application_name=robot1"
    assert parse_location(url).shown == url
    with PostgresStore(url) as store:
        assert store.where == url


def test_unknown_scheme_opens_no_local_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = {"data_dir": str(tmp_path / "data"), "db_path": "mongodb://host/db"}
    with pytest.raises(LocationError, match="mongodb"):
        open_store(params)
    with pytest.raises(LocationError):
        SQLiteStore.from_params(params)
    assert list(tmp_path.iterdir()) == []


# -- passwords, TLS --------------------------------------------------------------------------
@pytest.fixture
def robot_role(pg_server, pg_database):
    """A role 'robot_<n>' with a password, owning the fresh database's public schema."""
    if not isinstance(pg_server, PgCluster):
        pytest.skip("password roles are made on the tests' own pgserver cluster")
    name = f"robot_{os.getpid()}_{int(time.monotonic() * 1000) % 100000}"
    password = "pw-" + base64.urlsafe_b64encode(os.urandom(12)).decode()
    create_role(pg_server, name, password, pg_database)
    try:
        yield f"postgresql://{name}@127.0.0.1:{pg_server.port}/{pg_database}", password
    finally:
        drop_database(pg_server, pg_database)
        drop_role(pg_server, name)


def test_password_from_file_env_or_pgpass_never_in_errors_or_logs(
        robot_role, tmp_path: Path, monkeypatch, caplog) -> None:
    url, password = robot_role
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    # No password anywhere: refused by the server, with a reason.
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore(url)
    assert info.value.reason == "disconnected" and "password" in str(info.value)
    # A wrong password from the file: refused, and the text shows neither password.
    wrong = tmp_path / "wrong"
    wrong.write_text("not-" + password + "\n")
    wrong.chmod(0o600)
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore(url, password_file=str(wrong))
    assert password not in str(info.value) and "not-" not in str(info.value)
    # The password file, PGPASSWORD and ~/.pgpass (PGPASSFILE) each open it.
    good = tmp_path / "pw"
    good.write_text(password + "\n")
    good.chmod(0o600)
    with PostgresStore(url, password_file=str(good)) as store:
        store.create_person("Ada")
    monkeypatch.setenv("PGPASSWORD", password)
    with PostgresStore(url) as store:
        assert [p.name for p in store.list_persons()] == ["Ada"]
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:*:*:*:{password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    params = {"db_path": url, "encryption_key_env": ""}
    with open_store(params) as store:
        assert store.where == url
        assert [p.name for p in store.list_persons()] == ["Ada"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert password not in logged and url in logged


def test_sslmode_is_passed_to_libpq(pg_url) -> None:
    with pytest.raises(StoreUnavailable, match="SSL") as info:
        PostgresStore(pg_url + "?sslmode=require")
    assert info.value.reason == "disconnected"
    with PostgresStore(pg_url + "?sslmode=disable") as store:
        assert store.writable


# -- pgvector, HNSW, schema ------------------------------------------------------------------
def test_vectors_in_pgvector_columns_with_hnsw_search(pg_url) -> None:
    store = PostgresStore(pg_url, OPTS)
    for i in range(40):
        store.add_unknown(vec(i), EMB, t=float(i))
    store.add_embedding(store.create_person("Ann").person_id, vec(500), EMB)
    with raw(pg_url) as conn:
        types = dict(conn.execute(
            "SELECT table_name, udt_name FROM information_schema.columns WHERE "
            "column_name = 'vector'").fetchall())
        assert types == {"embeddings": "vector", "unknowns": "vector", "non_faces": "vector"}
        indexes = {r[0]: r[1] for r in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")}
        assert len(indexes) == 2, indexes
        assert all("vector_cosine_ops" in d and f"vector({DIM})" in d for d in indexes.values())
        # Tiny table: tell the planner scans and sorts are dear, then the index serves the
        # ordered search (at fleet sizes it picks it by itself, see bench/bench_fleet.py).
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.execute(f"SET {setting} = off")
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT id FROM unknowns WHERE embedder = 'emb' ORDER BY "
            f"vector::vector({DIM}) <=> %s::vector({DIM}) LIMIT 3", (vec(7),)))
        assert "unknowns_hnsw_" in plan, plan
    found = store.search_faces(vec(7), EMB, k=3)
    assert found[0][0] == store.list_unknowns()[7].unknown_id
    assert found[0][1] == pytest.approx(1.0, abs=1e-5) and found[1][1] < found[0][1]
    assert store.search_faces(vec(500), EMB, k=1, unknowns=False)[0][1] == pytest.approx(1.0,
                                                                                      abs=1e-5)
    store.close()


def test_search_matches_exact_scan_of_the_sqlite_store(pg_url, tmp_path: Path) -> None:
    pg = PostgresStore(pg_url)
    lite = SQLiteStore(tmp_path / "m.db")
    for i in range(60):
        pg.add_unknown(vec(i), EMB, t=float(i))
        lite.add_unknown(vec(i), EMB, t=float(i))
    for probe in range(100, 110):
        assert [i for i, _ in pg.search_faces(vec(probe), EMB, k=5)] == [
            i for i, _ in lite.search_faces(vec(probe), EMB, k=5)]
    pg.close()
    lite.close()


def test_refuses_a_newer_schema(pg_url) -> None:
    PostgresStore(pg_url).close()
    with raw(pg_url) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', 0)")
    with pytest.raises(StoreUnavailable, match="newer") as info:
        PostgresStore(pg_url)
    assert info.value.reason == "version"


def test_migrates_a_v1_database_keeping_its_data(pg_url) -> None:
    import psycopg

    from visio_memoria_ros.memory.pg_schema import PG_LATEST_VERSION, PG_MIGRATIONS

    v1 = PG_MIGRATIONS[0]
    assert v1.version == 1 and PG_LATEST_VERSION == 2
    png = CropCodec("png").encode(crop(1))
    with psycopg.connect(pg_url) as conn:  # the schema a v1 robot made (commits on exit)
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                     "description TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)")
        for sql in v1.statements:
            conn.execute(sql)
        conn.execute("INSERT INTO schema_version VALUES (1, %s, 1)", (v1.description,))
    with raw(pg_url) as conn, conn.transaction():  # and the data it left there
        conn.execute("INSERT INTO persons (id, name, name_key, created) VALUES (1, 'Ann', "
                     "'ann', 5)")
        conn.execute("INSERT INTO embedders VALUES (%s, %s, 5)", (EMB, DIM))
        conn.execute("INSERT INTO embeddings (id, person_id, vector, dim, embedder, quality, "
                     "crop, created, source) VALUES (1, 1, %s, %s, %s, 0.9, %s, 5, 'enrol')",
                     (vec(1), DIM, EMB, png))
        for uid in (2, 3):
            conn.execute("INSERT INTO unknowns (id, vector, dim, embedder, first_seen, "
                         "last_seen, cluster_id, track_key, robot_id) VALUES "
                         "(%s, %s, %s, %s, 6, 7, 0, 't1', 'robot1')",
                         (uid, near(2, uid), DIM, EMB))
        conn.execute("INSERT INTO visits (person_id, started, last_seen, robot_id, location) "
                     "VALUES (1, 5, 9, 'robot2', 'hall')")
        conn.execute("INSERT INTO negative_links (person_id, cluster_id, created) "
                     "VALUES (1, 0, 8)")
        conn.execute("INSERT INTO events VALUES (1, 5, 'labelled', '[1]', 'person 1 created'), "
                     "(2, 8, 'not_this_person', '[1]', 'cluster 0 is not person 1')")
        conn.execute("UPDATE meta SET value = CASE key WHEN 'revision' THEN '2' "
                     "WHEN 'next_face_id' THEN '4' WHEN 'next_cluster_id' THEN '1' "
                     "ELSE value END")

    with PostgresStore(pg_url, OPTS) as store:
        st = store.stats()
        assert (st.schema_version, st.revision) == (2, 2)
        assert (st.num_persons, st.num_embeddings, st.num_unknowns, st.num_visits,
                st.num_non_faces) == (1, 1, 2, 1, 0)
        assert store.get_person(1).name == "Ann"
        face = store.list_embeddings(1, with_crops=True)[0]
        np.testing.assert_allclose(face.vector, vec(1), atol=1e-6)
        np.testing.assert_array_equal(face.crop, crop(1))
        assert (face.quality, face.source) == (pytest.approx(0.9), "enrol")
        gal = store.gallery(EMB)
        assert sorted((n.person_id, n.face_id, n.cluster_id) for n in gal.negatives) == [
            (1, 2, 0), (1, 3, 0)]  # "cluster 0 is not Ann": each of its faces
        old = store.get_unknown(2)
        assert (old.cluster_id, old.track_key, old.robot_id) == (0, "t1", "robot1")
        assert (old.cluster_seq, old.candidate_id) == (0, -1)  # v2 columns, a stranger's face
        visit = store.list_visits(1)[0]
        assert visit.open and (visit.robot_id, visit.location) == ("robot2", "hall")
        assert [e.revision for e in store.events_since(0)] == [1, 2]
        # New-schema features work on the migrated database; ids continue where v1 stopped.
        assert store.add_unknown(vec(4), EMB, t=10.0).unknown_id == 4
        assert store.search_faces(vec(1), EMB, k=1, unknowns=False)[0][0] == 1
        assert store.integrity_check() == "ok"
    with PostgresStore(pg_url, OPTS) as again:  # a second robot: nothing left to migrate
        assert again.get_person(1).name == "Ann"
    with raw(pg_url) as conn:
        assert [r[0] for r in conn.execute(
            "SELECT version FROM schema_version ORDER BY version")] == [1, 2]


# -- many robots -----------------------------------------------------------------------------
def test_robots_share_persons_but_keep_their_own_visits_and_tracks(pg_url) -> None:
    r1 = PostgresStore(pg_url, StoreOptions(robot_id="robot1"))
    r2 = PostgresStore(pg_url, StoreOptions(robot_id="robot2"))
    pid = r1.create_person("Penny").person_id
    assert r2.get_person(pid).name == "Penny"
    v1 = r1.open_or_extend_visit(pid, 100.0, location="hall")
    v2 = r2.open_or_extend_visit(pid, 101.0, location="kitchen")
    assert v1.visit_id != v2.visit_id
    assert (v1.robot_id, v2.robot_id) == ("robot1", "robot2")
    assert r1.open_or_extend_visit(pid, 110.0).visit_id == v1.visit_id
    # robot1 closes only its own stale visits.
    closed = r1.close_stale_visits(now=200.0, robot_id="robot1")
    assert [v.visit_id for v in closed] == [v1.visit_id]
    assert r2.list_visits(pid, 0)[0].open
    # Unknown faces carry their robot; a track key is one robot's.
    a = r1.add_unknown(vec(1), EMB, track_key="cam:1", quality=0.5)
    b = r2.add_unknown(vec(2), EMB, track_key="cam:1", quality=0.5)
    assert (a.robot_id, b.robot_id) == ("robot1", "robot2")
    assert {u.unknown_id: u.robot_id for u in r1.list_unknowns()} == {
        a.unknown_id: "robot1", b.unknown_id: "robot2"}
    r1.close()
    r2.close()


def test_a_robots_faces_join_another_robots_cluster(pg_url) -> None:
    r1 = PostgresStore(pg_url, StoreOptions(robot_id="robot1", cluster=OPTS.cluster))
    r2 = PostgresStore(pg_url, StoreOptions(robot_id="robot2", cluster=OPTS.cluster))
    first = [r1.add_unknown(near(3, i), EMB) for i in range(3)]
    cid = r1.get_unknown(first[0].unknown_id).cluster_id
    assert cid >= 0
    later = r2.add_unknown(near(3, 10), EMB)
    assert later.cluster_id == cid
    r1.discard_unknowns(cluster_id=cid)
    again = r2.add_unknown(near(3, 11), EMB)  # robot2's index follows robot1's discard
    assert again.cluster_id != cid
    r1.close()
    r2.close()


def test_a_change_anywhere_is_pushed_to_every_watcher_within_a_second(pg_url) -> None:
    robots = [PostgresStore(pg_url, StoreOptions(robot_id=f"robot{i}")) for i in (1, 2)]
    seen: dict[int, list[int]] = {1: [], 2: []}
    arrived = {1: threading.Event(), 2: threading.Event()}
    for i, store in zip((1, 2), robots, strict=True):
        assert store.watch(lambda rev, i=i: (seen[i].append(rev), arrived[i].set()))
    time.sleep(0.5)  # LISTEN issued (the listener thread starts asynchronously)
    writer = PostgresStore(pg_url)
    t0 = time.monotonic()
    pid = writer.create_person("Leonard").person_id
    for i in (1, 2):
        assert arrived[i].wait(5.0), f"robot{i} heard nothing"
    latency = time.monotonic() - t0
    assert latency < 1.0, latency
    assert all(seen[i][-1] == writer.revision for i in (1, 2))
    for change in (lambda: writer.rename_person(pid, "Leo"),
                   lambda: writer.set_never_remember(pid, True),
                   lambda: writer.forget_person(pid)):
        for e in arrived.values():
            e.clear()
        change()
        assert all(arrived[i].wait(2.0) for i in (1, 2))
        assert seen[1][-1] == seen[2][-1] == writer.revision
    for store in (*robots, writer):
        store.close()


def test_sqlite_store_cannot_push_changes(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "m.db") as store:
        assert store.watch(lambda rev: None) is False


# -- lost servers ----------------------------------------------------------------------------
@pytest.fixture
def own_cluster(tmp_path_factory):
    """A server of this test alone (it is stopped and restarted)."""
    pytest.importorskip("pgserver")
    import tempfile

    cluster = PgCluster(Path(tempfile.mkdtemp(prefix="visio_memoria_pg_")), durable=True)
    yield cluster
    cluster.close()


def _until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except StoreUnavailable as exc:
            assert exc.reason == "disconnected", exc
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_server_restart_mid_stream_reconnects_and_loses_nothing_acknowledged(own_cluster) -> None:
    db = create_database(own_cluster)
    url = own_cluster.admin_url(db)
    store = PostgresStore(url, OPTS)
    pid = store.create_person("Raj").person_id
    written = [store.add_unknown(vec(i), EMB, t=float(i)).unknown_id for i in range(5)]
    own_cluster.restart("immediate")  # like a crash: connections cut, no goodbye
    failures = 0
    for i in range(5, 10):
        while True:
            try:
                written.append(store.add_unknown(vec(i), EMB, t=float(i)).unknown_id)
                break
            except StoreUnavailable as exc:
                assert exc.reason == "disconnected", exc
                failures += 1
                time.sleep(0.1)
    assert failures >= 1  # the cut was seen, and reported as "disconnected"
    assert [u.unknown_id for u in store.list_unknowns()] == written
    assert store.get_person(pid).name == "Raj"
    store.close()


def test_server_down_at_start_retries_with_backoff(own_cluster) -> None:
    db = create_database(own_cluster)
    url = own_cluster.admin_url(db)
    own_cluster.stop()
    with pytest.raises(StoreUnavailable, match="cannot reach the memory server") as info:
        PostgresStore(url)
    assert info.value.reason == "disconnected" and url in str(info.value)
    store = PostgresStore(url, offline_ok=True)  # memory_node starts like this
    assert not store.connected
    with pytest.raises(StoreUnavailable, match=r"unreachable|cannot reach"):
        store.create_person("Howard")
    with pytest.raises(StoreUnavailable, match="next try in"):
        store.revision  # noqa: B018 - within the back-off: refused at once, no new attempt
    own_cluster.start()
    _until(lambda: store.create_person("Howard"))
    assert store.connected and [p.name for p in store.list_persons()] == ["Howard"]
    store.close()


# -- concurrent writers ----------------------------------------------------------------------
def _label_in_process(url: str, cluster_id: int, name: str, barrier, results) -> None:
    store = PostgresStore(url)
    barrier.wait()
    try:
        res = store.label_cluster(cluster_id, name=name)
        results.put(("ok", res.person_id))
    except Exception as exc:
        results.put((type(exc).__name__, str(exc)))
    finally:
        store.close()


def test_robots_labelling_one_cluster_at_once_make_one_person(pg_url) -> None:
    setup = PostgresStore(pg_url, OPTS)
    cid = next(u.cluster_id for u in [setup.add_unknown(near(5, i), EMB) for i in range(4)]
               if u.cluster_id >= 0)
    setup.close()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_label_in_process, args=(pg_url, cid, "Bernadette", barrier,
                                                          results)) for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [o[0] for o in outcomes].count("ok") == 1, outcomes
    assert all(o[0] == "NotFoundError" for o in outcomes if o[0] != "ok"), outcomes
    with PostgresStore(pg_url) as store:
        persons = store.list_persons()
        assert [(p.name, p.num_embeddings) for p in persons] == [("Bernadette", 4)]
        assert store.list_unknowns() == []


def test_enrolling_the_same_name_at_once_makes_one_person(pg_url) -> None:
    stores = [PostgresStore(pg_url, OPTS) for _ in range(6)]
    unknown_ids = [stores[0].add_unknown(vec(300 + i), EMB).unknown_id for i in range(6)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[object] = []

    def enrol(k: int) -> None:
        store = stores[k]
        barrier.wait()
        try:  # half create by name, half label a face by the same name
            if k % 2:
                outcomes.append(store.create_person("Amy Farrah Fowler").person_id)
            else:
                outcomes.append(store.label_unknown(unknown_ids[k], name="amy farrah fowler")
                                .person_id)
        except ConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=enrol, args=(k,)) for k in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    persons = stores[0].list_persons()
    assert len(persons) == 1, persons
    pid = persons[0].person_id
    assert all(o == pid for o in outcomes if not isinstance(o, ConflictError)), outcomes
    assert all("already exists" in str(o) for o in outcomes if isinstance(o, ConflictError))
    assert persons[0].num_embeddings == 3  # every labelled face went to the one person
    for store in stores:
        store.close()


def test_concurrent_visits_of_one_robot_keep_one_open_visit(pg_url) -> None:
    stores = [PostgresStore(pg_url, StoreOptions(robot_id="robot1")) for _ in range(4)]
    pid = stores[0].create_person("Stuart").person_id
    barrier = threading.Barrier(4)

    def sight(k: int) -> None:
        barrier.wait()
        for i in range(20):
            stores[k].open_or_extend_visit(pid, 1000.0 + i + k / 10)

    threads = [threading.Thread(target=sight, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    visits = stores[0].list_visits(pid, 0)
    assert len(visits) == 1 and visits[0].open and visits[0].last_seen == 1019.3
    for store in stores:
        store.close()


# -- privacy ---------------------------------------------------------------------------------
def every_cell(url: str) -> list[object]:
    """Every value of every table of the database (our schema, and any other table)."""
    values: list[object] = []
    with raw(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                values.extend(row)
    return values


@pytest.mark.parametrize("encrypted", [False, True])
def test_forget_leaves_no_row_crop_or_vector_in_any_table(pg_url, encrypted: bool) -> None:
    key = os.urandom(32) if encrypted else None
    store = PostgresStore(pg_url, OPTS, key=key)
    keep = store.create_person("Keeper").person_id
    store.add_embedding(keep, vec(99), EMB, crop=crop(99))
    target = store.create_person(NAME).person_id
    for i in range(3):
        store.add_embedding(target, vec(i), EMB, crop=crop(i), source=NAME)
    u = store.add_unknown(vec(10), EMB, crop=crop(10))
    store.label_unknown(u.unknown_id, name=NAME.lower())
    store.open_or_extend_visit(target, 100.0, location="hall", activity="waving")
    other = [store.add_unknown(near(50, i), EMB) for i in range(2)]
    store.not_this_person(target, [], unknown_cluster_id=other[1].cluster_id)
    store.rename_person(target, NAME + " Jr")
    with raw(pg_url) as conn:
        gone_crops = [bytes(r[0]) for r in conn.execute(
            "SELECT crop FROM embeddings WHERE person_id = %s", (target,))]
    assert len(gone_crops) == 4
    cells = every_cell(pg_url)
    assert any(NAME in str(c) for c in cells)  # the scan can see names...
    assert any(isinstance(c, bytes) and c in gone_crops for c in cells)  # ...and crops

    store.forget_person(target)

    gone_vectors = [vec(0), vec(1), vec(2), vec(10)]
    for cell in every_cell(pg_url):
        text = str(cell)
        assert NAME not in text and NAME.casefold() not in text
        if isinstance(cell, bytes):
            assert cell not in gone_crops
        if hasattr(cell, "to_numpy"):
            v = cell.to_numpy()
            assert all(not np.allclose(v, g, atol=1e-6) for g in gone_vectors)
    with raw(pg_url) as conn:
        for table, column in (("embeddings", "person_id"), ("visits", "person_id"),
                              ("negative_links", "person_id"), ("persons", "id")):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} = %s",
                                (target,)).fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM events WHERE person_ids LIKE %s",
                            (f"%{target}%",)).fetchone()[0] == 1  # only "person N forgotten"
    assert [p.name for p in store.list_persons()] == ["Keeper"]
    assert len(store.list_unknowns()) == 2
    store.close()


def test_crops_are_encrypted_with_the_same_key_parameter(pg_url) -> None:
    key = os.urandom(32)
    img = crop(3)
    with PostgresStore(pg_url, OPTS, key=key) as store:
        assert store.encrypted
        pid = store.create_person("Trent").person_id
        store.add_embedding(pid, vec(3), EMB, crop=img)
        back = store.list_embeddings(pid, with_crops=True)[0]
        np.testing.assert_array_equal(back.crop, img)
    with raw(pg_url) as conn:
        blob = bytes(conn.execute("SELECT crop FROM embeddings").fetchone()[0])
    assert blob.startswith(b"VMe1") and b"\x89PNG" not in blob
    with pytest.raises(StoreUnavailable, match="no encryption key") as info:
        PostgresStore(pg_url)
    assert info.value.reason == "encryption"
    with pytest.raises(StoreUnavailable, match="wrong key"):
        PostgresStore(pg_url, key=os.urandom(32))


# -- copy of an SQLite memory ----------------------------------------------------------------
def test_copy_of_an_sqlite_memory_is_complete_verified_and_repeatable(pg_url, tmp_path: Path
                                                                      ) -> None:
    from visio_memoria_ros.memory.transfer import copy_memory

    key = os.urandom(32)
    src = SQLiteStore(tmp_path / "robot.db", StoreOptions(
        crop_format="png", robot_id="robot7", cluster=OPTS.cluster), key=key)
    ann = src.create_person("Ann").person_id
    for i in range(3):
        src.add_embedding(ann, vec(i), EMB, crop=crop(i), quality=0.5 + i)
    src.add_embedding(ann, vec(9, 4), "other")
    bob = src.label_cluster(next(u.cluster_id for u in [src.add_unknown(near(20, i), EMB,
                                                                          crop=crop(20 + i))
                                                         for i in range(3)]
                                 if u.cluster_id >= 0), name="Bob").person_id
    src.open_or_extend_visit(ann, 100.0, location="hall", activity="sitting")
    src.close_stale_visits(now=1000.0)
    src.open_or_extend_visit(bob, 2000.0)
    src.not_this_person(bob, [src.list_embeddings(bob)[0].embedding_id])
    for i in range(4):
        src.add_unknown(near(40, i), EMB, crop=crop(40 + i), track_key="cam:3")
    # A "maybe Ann?" face, and a non-face example (embedding only).
    src.add_unknown(near(0, 7), EMB, candidate_id=ann, candidate_similarity=0.93)
    src.discard_unknowns(unknown_ids=[src.add_unknown(vec(60), EMB).unknown_id],
                         not_a_face=True)
    target = PostgresStore(pg_url, key=key)
    report = copy_memory(src, target)
    assert report.ok, report
    assert report.source["persons"] == 2 and report.source["crops"] == 10, report
    assert report.written["embeddings"] == report.source["embeddings"] == 6
    for s, t in ((src.list_persons(), target.list_persons()),
                 (src.list_visits(limit=0), target.list_visits(limit=0)),
                 (src.list_clusters(max_samples=0), target.list_clusters(max_samples=0))):
        assert s == t
    for pid in (ann, bob):
        a, b = src.list_embeddings(pid, with_crops=True), target.list_embeddings(pid,
                                                                                 with_crops=True)
        assert [(e.embedding_id, e.embedder, e.quality) for e in a] == [
            (e.embedding_id, e.embedder, e.quality) for e in b]
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x.vector, y.vector, rtol=1e-6)
            assert (x.crop is None) == (y.crop is None)
            if x.crop is not None:
                np.testing.assert_array_equal(x.crop, y.crop)
    def rows(store):
        return [(u.unknown_id, u.cluster_id, u.robot_id, u.track_key, u.cluster_seq,
                 u.candidate_id, round(u.candidate_similarity, 4) if u.candidate_id >= 0 else 0)
                for u in store.list_unknowns()]

    assert rows(src) == rows(target)
    assert [c.person_id for c in target.list_candidates()] == [ann]
    assert target.stats().num_non_faces == src.stats().num_non_faces == 1
    with pytest.raises(NotAFaceError):
        target.add_unknown(vec(60), EMB)
    assert target.gallery(EMB).negatives[0].face_id == src.gallery(EMB).negatives[0].face_id
    assert target.embedders() == src.embedders()
    # A second copy adds nothing; one interrupted half-way is completed by the next.
    again = copy_memory(src, target)
    assert again.ok and sum(again.written.values()) == 0, again.written
    with raw(pg_url) as conn:
        conn.execute("DELETE FROM unknowns WHERE id IN (SELECT id FROM unknowns ORDER BY id "
                     "DESC LIMIT 2)")
        conn.execute("DELETE FROM visits")
    resumed = copy_memory(src, target)
    assert resumed.ok and resumed.written["unknowns"] == 2 and resumed.written["visits"] == 2
    assert sum(resumed.written.values()) == 4
    # New rows continue after the copied ids.
    assert target.create_person("Cy").person_id == 3
    # (the face discarded as not a face took id max + 1: ids are never reused)
    assert target.add_unknown(vec(77), EMB).unknown_id == max(
        u.unknown_id for u in src.list_unknowns()) + 2
    # Another robot's memory (same ids, other people) is refused, not mixed in.
    other = SQLiteStore(tmp_path / "other.db")
    other.create_person("Zed")
    with pytest.raises(ConflictError, match="another memory"):
        copy_memory(other, target)
    for store in (src, target, other):
        store.close()


# -- sightings while the server is away ------------------------------------------------------
def test_sightings_wait_in_order_while_the_server_is_away(own_cluster) -> None:
    from visio_memoria_ros.memory.sightings import UNKNOWN, VISIT, Sighting, SightingBuffer

    url = own_cluster.admin_url(create_database(own_cluster))
    store = PostgresStore(url, StoreOptions(robot_id="robot1", cluster=OPTS.cluster))
    pid = store.create_person("Leslie").person_id
    buffer = SightingBuffer(capacity=5)
    assert buffer.record(store, Sighting(VISIT, {"person_id": pid, "t": 100.0}))
    own_cluster.stop()
    for i in range(7):  # 7 sightings, room for 5: the two oldest are dropped and counted
        buffer.record(store, Sighting(UNKNOWN, {"vector": vec(i), "embedder": EMB,
                                                "t": 101.0 + i}))
    buffer.record(store, Sighting(VISIT, {"person_id": pid, "t": 110.0, "activity": "waving"}))
    assert len(buffer) == 5 and buffer.dropped == 3 and buffer.written == 0
    assert buffer.flush(store) == 0 and len(buffer) == 5  # still away: nothing lost
    own_cluster.start()
    _until(lambda: store.revision)
    assert buffer.flush(store) == 5 and len(buffer) == 0 and buffer.written == 5
    unknowns = store.list_unknowns()
    assert [u.first_seen for u in unknowns] == [104.0, 105.0, 106.0, 107.0]  # in order
    assert all(u.robot_id == "robot1" for u in unknowns)
    visit = store.list_visits(pid)[0]
    assert (visit.start, visit.last_seen, visit.dominant_activity) == (100.0, 110.0, "waving")
    # A sighting the store refuses (the person was forgotten meanwhile) is dropped, counted.
    store.forget_person(pid)
    buffer.add(Sighting(VISIT, {"person_id": pid, "t": 120.0}))
    assert buffer.flush(store) == 0 and buffer.refused == 1 and len(buffer) == 0
    store.close()


# -- the command line ------------------------------------------------------------------------
def test_cli_db_url_never_becomes_a_local_file(pg_url, tmp_path: Path, monkeypatch,
                                               capsys) -> None:
    from visio_memoria_ros.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VISIO_MEMORIA_DB", raising=False)
    closed_port = pg_url.replace(pg_url.split("@")[1].split("/")[0], "127.0.0.1:9")
    for url, said in ((closed_port, "cannot reach the memory server"),
                      ("mysql://robot@db/fleet", "scheme 'mysql'")):
        assert main(["--db", url, "db", "list"]) == 1
        assert said in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == []  # no ./postgresql:/..., no ./mysql:/...
    with PostgresStore(pg_url) as store:
        store.create_person("Ada")
    assert main(["--db", pg_url, "db", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"name": "Ada"' in out and f'"db": "{pg_url}"' in out
    monkeypatch.setenv("VISIO_MEMORIA_DB", pg_url)  # the same setting from the environment
    assert main(["db", "rename", "1", "Ada L."]) == 0
    with PostgresStore(pg_url) as store:
        assert [p.name for p in store.list_persons()] == ["Ada L."]
    assert list(tmp_path.iterdir()) == []


def test_cli_db_migrate_copies_verifies_and_reruns(pg_url, tmp_path: Path, capsys) -> None:
    import json

    from visio_memoria_ros.cli import main

    db = tmp_path / "robot.db"
    with SQLiteStore(db, StoreOptions(crop_format="png", cluster=OPTS.cluster)) as src:
        pid = src.create_person("Raj").person_id
        src.add_embedding(pid, vec(1), EMB, crop=crop(1))
        src.open_or_extend_visit(pid, 50.0)
        for i in range(3):
            src.add_unknown(near(8, i), EMB, crop=crop(8 + i))
    argv = ["db", "migrate", "--from", str(db), "--to", pg_url, "--json", "-q"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["ok"] and first["source"] == first["verified"]
    assert first["written"]["unknowns"] == 3 and first["source"]["crops"] == 4
    assert main(argv) == 0  # safe to re-run: nothing new written, everything verified
    again = json.loads(capsys.readouterr().out)
    assert again["ok"] and sum(again["written"].values()) == 0
    assert main(["db", "migrate", "--from", str(db), "--to", str(tmp_path / "x.db")]) == 1
    assert "postgresql://" in capsys.readouterr().err
    with PostgresStore(pg_url) as store:
        assert [(p.name, p.num_embeddings, p.num_visits) for p in store.list_persons()] == [
            ("Raj", 1, 1)]
        assert len(store.list_unknowns(with_crops=True)) == 3


def test_labelling_page_opens_the_fleet_memory_by_url(pg_url, monkeypatch) -> None:
    from visio_memoria_ros.ui import actions
    from visio_memoria_ros.ui.settings import open_store as page_store
    from visio_memoria_ros.ui.settings import parse_settings

    settings = parse_settings(["--db", pg_url])
    assert settings.db == pg_url  # a URL is not turned into a path
    with PostgresStore(pg_url, OPTS) as robot:
        cid = next(u.cluster_id for u in [robot.add_unknown(near(6, i), EMB) for i in range(3)]
                   if u.cluster_id >= 0)
    store = page_store(settings)
    try:
        assert store.where == pg_url
        assert actions.name_cluster(store, cid, "Priya").ok
    finally:
        store.close()
    monkeypatch.setenv("VISIO_MEMORIA_DB", "ftp://nowhere/x")
    with pytest.raises(LocationError, match="ftp"):
        page_store(parse_settings([]))
