"""Fleet memory on PostgreSQL + pgvector: gallery loads, unknown-face search, sighting writes.

    python bench/bench_fleet.py                                  # 10k and 100k vectors
    python bench/bench_fleet.py --sizes 1000000 --out bench/results/bench_fleet_1m.json
    python bench/bench_fleet.py --url postgresql://user@host/db  # a server of your own

Vectors are synthetic face-like 128-d embeddings (as bench_faiss.py: identities of 5 samples,
a random unit centre plus noise). For each size N:

* **gallery load**: ``store.gallery(embedder)`` of N faces of persons from PostgreSQL and from
  an SQLite file (what identity_node asks memory_node for), then building the FAISS index the
  identity engine searches (``GalleryIndex``: exact up to 10k vectors, IVF above);
* **unknown-face search**: N unknown faces, 200 probes (new samples of stored identities);
  ``store.search_faces`` (pgvector HNSW, m=16, ef_construction=64, at ef_search 40 and 100)
  against FAISS on the same vectors; latency of one probe (median, p95) and recall@1 against
  exact search (the probe's true nearest vector, by a full matrix product);
* the HNSW index build time (CREATE INDEX after the bulk load).

Then **sighting writes per second** with 1, 2 and 4 robots writing at once (one process each,
its own connection and robot id): visit updates of 20 persons each, and every 5th sighting an
unknown face (incremental clustering included), for ``--seconds`` each; SQLite with one writer
for comparison. ``writes_per_s`` is the total of all robots writing at once (also given per
robot). The writers run with memory_node's default ``synchronous: FULL`` (every commit waits
until the server has flushed it); ``--synchronous NORMAL`` measures the faster setting that may
lose the last commits on a power loss (PostgreSQL: ``synchronous_commit = off``).

    python bench/bench_fleet.py --sizes "" --out bench/results/bench_fleet_writers.json

Without ``--url`` a PostgreSQL 16 + pgvector server from the ``pgserver`` wheel is started in a
temporary folder (unix socket, this machine only) and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from visio_memoria_ros.identity.index import GalleryIndex
from visio_memoria_ros.memory import (
    ClusterParams,
    PostgresStore,
    SQLiteStore,
    StoreOptions,
)

EMB = "bench_128"
PER_PERSON = 5
CHUNK = 20_000


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def noisy(centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One face-like sample per centre row (cosine ~0.6-0.85 to its centre)."""
    n, dim = centres.shape
    s2 = rng.uniform(0.2, 0.6, size=(n, 1)).astype(np.float32)
    noise = rng.standard_normal((n, dim), dtype=np.float32) * (np.sqrt(s2) / np.sqrt(dim))
    return unit(centres + noise)


def pct(values: list[float], q: float) -> float:
    """Percentile rounded to 3 decimals."""
    return round(float(np.percentile(values, q)), 3)


class Server:
    """The PostgreSQL server the benchmark uses: ``--url``, or a pgserver one of its own."""

    def __init__(self, url: str) -> None:
        self._pg = None
        if url:
            self.url = url
        else:
            import pgserver

            self._dir = tempfile.mkdtemp(prefix="visio_memoria_bench_pg_")
            self._pg = pgserver.get_server(self._dir, cleanup_mode="delete")
            self.url = self._pg.get_uri()
        import psycopg

        self._admin = psycopg.connect(self.url, autocommit=True)

    def database(self) -> str:
        """A fresh database; returns its URL."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        self._admin.execute(f'CREATE DATABASE "{name}"')
        base, _, query = self.url.partition("?")
        head = base.rsplit("/", 1)[0]
        return f"{head}/{name}" + (f"?{query}" if query else "")

    def close(self) -> None:
        """Disconnect (and delete the server when the benchmark started it)."""
        self._admin.close()
        if self._pg is not None:
            self._pg.cleanup()


def copy_rows(store: PostgresStore, table: str, vectors: np.ndarray, owners: np.ndarray) -> None:
    """Bulk-load faces with COPY (a benchmark shortcut: the store writes one face at a time)."""
    raw = store.database._live()
    n = len(vectors)
    if table == "embeddings":
        with raw.cursor() as cur, cur.copy(
                "COPY embeddings (id, person_id, vector, dim, embedder, quality, created) "
                "FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((i + 1, int(owners[i]) + 1, vectors[i], vectors.shape[1], EMB,
                                0.5, 0.0))
    else:
        with raw.cursor() as cur, cur.copy(
                "COPY unknowns (id, vector, dim, embedder, quality, first_seen, last_seen, "
                "cluster_id) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((n + i + 1, vectors[i], vectors.shape[1], EMB, 0.5, 0.0, 0.0,
                                int(owners[i])))


def drop_hnsw(store: PostgresStore, table: str) -> str:
    """Drop the table's HNSW index before a bulk load (building it once is much faster than
    growing it row by row); returns its name."""
    raw = store.database._live()
    name = raw.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef "
                       "LIKE '%%hnsw%%'", (table,)).fetchone()[0]
    raw.execute(f"DROP INDEX {name}")
    return str(name)


def hnsw_build(store: PostgresStore, table: str, name: str, dim: int) -> float:
    """Create the HNSW index the store makes for an embedder; returns the seconds it took."""
    raw = store.database._live()
    raw.execute("SET maintenance_work_mem = '2GB'")
    t0 = time.perf_counter()
    raw.execute(f"CREATE INDEX {name} ON {table} USING hnsw ((vector::vector({dim})) "
                f"vector_cosine_ops) WHERE embedder = '{EMB}'")
    raw.execute(f"ANALYZE {table}")
    return time.perf_counter() - t0


def sqlite_gallery(path: Path, vectors: np.ndarray, owners: np.ndarray) -> float:
    """Seconds to load the gallery of N faces from an SQLite memory (bulk-filled)."""
    SQLiteStore(path, StoreOptions(synchronous="NORMAL")).close()  # the schema
    conn = sqlite3.connect(path)
    persons = int(owners.max()) + 1
    conn.executemany("INSERT INTO persons (id, name, name_key, created) VALUES (?, ?, ?, 0)",
                     [(p + 1, f"p{p}", f"p{p}") for p in range(persons)])
    conn.execute("INSERT INTO embedders (id, dim, first_seen) VALUES (?, ?, 0)",
                 (EMB, vectors.shape[1]))
    for s in range(0, len(vectors), CHUNK):
        conn.executemany(
            "INSERT INTO embeddings (id, person_id, vector, dim, embedder, created) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            [(s + i + 1, int(owners[s + i]) + 1, v.astype("<f4").tobytes(), len(v), EMB)
             for i, v in enumerate(vectors[s:s + CHUNK])])
    conn.commit()
    conn.close()
    with SQLiteStore(path) as store:
        t0 = time.perf_counter()
        gallery = store.gallery(EMB)
        seconds = time.perf_counter() - t0
    assert len(gallery.entries) == len(vectors)
    return seconds


def run_size(server: Server, n: int, args: argparse.Namespace) -> dict[str, object]:
    """Gallery load and unknown-face search at ``n`` vectors."""
    rng = np.random.default_rng(args.seed + n)
    people = max(1, n // PER_PERSON)
    centres = unit(rng.standard_normal((people, args.dim), dtype=np.float32))
    owners = np.repeat(np.arange(people, dtype=np.int64), PER_PERSON)[:n]
    vectors = np.concatenate([noisy(centres[owners[i:i + CHUNK]], rng)
                              for i in range(0, n, CHUNK)])
    truth_centres = rng.integers(0, people, args.queries)
    probes = noisy(centres[truth_centres], rng)
    exact = np.argmax(probes @ vectors.T, axis=1) if n <= 200_000 else np.concatenate(
        [np.argmax(probes[i:i + 20] @ vectors.T, axis=1) for i in range(0, len(probes), 20)])
    out: dict[str, object] = {"size": n, "dim": args.dim, "persons": people}

    url = server.database()
    store = PostgresStore(url, StoreOptions(synchronous="NORMAL"))
    store.add_unknown(vectors[0], EMB)  # registers the embedder: HNSW indexes created
    store.database._live().execute("TRUNCATE unknowns")
    raw = store.database._live()
    raw.execute("INSERT INTO persons (id, name, name_key, created) SELECT g, 'p' || g, "
                "'p' || g, 0 FROM generate_series(1, %s) g", (people,))
    drop_hnsw(store, "embeddings")  # the gallery load reads by embedder; no search there
    unknowns_index = drop_hnsw(store, "unknowns")
    t0 = time.perf_counter()
    copy_rows(store, "embeddings", vectors, owners)
    copy_rows(store, "unknowns", vectors, owners)
    out["pg_bulk_load_s"] = round(time.perf_counter() - t0, 1)
    out["pg_hnsw_build_s"] = round(hnsw_build(store, "unknowns", unknowns_index, args.dim), 1)
    raw.execute("ANALYZE embeddings")

    t0 = time.perf_counter()
    gallery = store.gallery(EMB)
    out["pg_gallery_load_s"] = round(time.perf_counter() - t0, 3)
    assert len(gallery.entries) == n
    gal_vectors = gallery.vectors
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite_gallery_load_s"] = round(sqlite_gallery(Path(tmp) / "m.db", vectors,
                                                            owners), 3)
    index = GalleryIndex(args.dim)
    t0 = time.perf_counter()
    index.add(np.arange(n, dtype=np.int64), owners, gal_vectors)
    out["faiss_build_s"] = round(time.perf_counter() - t0, 3)
    out["faiss_index"] = index.kind.value
    del gallery, gal_vectors

    ids_of_row = np.arange(n, dtype=np.int64) + n + 1  # the unknowns' ids
    for ef in args.ef_search:
        raw.execute(f"SET hnsw.ef_search = {int(ef)}")
        for q in probes[:10]:
            store.search_faces(q, EMB, k=1)
        ms, hits = [], 0
        for q, want in zip(probes, exact, strict=True):
            t0 = time.perf_counter()
            found = store.search_faces(q, EMB, k=1)
            ms.append((time.perf_counter() - t0) * 1e3)
            hits += bool(found) and found[0][0] == ids_of_row[want]
        out[f"pg_hnsw_ef{ef}_search_median_ms"] = pct(ms, 50)
        out[f"pg_hnsw_ef{ef}_search_p95_ms"] = pct(ms, 95)
        out[f"pg_hnsw_ef{ef}_recall_at_1"] = round(hits / len(probes), 4)
    for q in probes[:10]:
        index.search(q[None], 1)
    ms, hits = [], 0
    for q, want in zip(probes, exact, strict=True):
        t0 = time.perf_counter()
        res = index.search(q[None], 1)
        ms.append((time.perf_counter() - t0) * 1e3)
        hits += int(res.ids[0, 0]) == int(want)
    out["faiss_search_median_ms"] = pct(ms, 50)
    out["faiss_search_p95_ms"] = pct(ms, 95)
    out["faiss_recall_at_1"] = round(hits / len(probes), 4)
    store.close()
    return out


def _writer(url: str, options: StoreOptions, seconds: float, start, counts) -> None:
    """One robot: visit updates of its 20 persons, every 5th sighting an unknown face."""
    robot = options.robot_id
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        store: PostgresStore | SQLiteStore = PostgresStore(url, options)
    else:
        store = SQLiteStore(url, options)
    persons = [store.create_person(f"{robot} person {i}").person_id for i in range(20)]
    rng = np.random.default_rng(abs(hash(robot)) % 2**32)
    faces = unit(rng.standard_normal((50, 128), dtype=np.float32))
    start.wait()
    done, t, deadline = 0, 1000.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done % 5 == 4:
            store.add_unknown(faces[done % 50], EMB, t=t, track_key=f"cam:{done % 7}")
        else:
            store.open_or_extend_visit(persons[done % 20], t, location="hall")
        done += 1
        t += 0.05
    counts.put(done)
    store.close()


def run_writers(url: str, robots: int, seconds: float, synchronous: str) -> dict[str, object]:
    """Sighting writes per second with ``robots`` processes writing at once (total of all)."""
    ctx = multiprocessing.get_context("spawn")
    start, counts = ctx.Barrier(robots + 1), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(
        url, StoreOptions(robot_id=f"robot{i + 1}", synchronous=synchronous,
                          cluster=ClusterParams(0.9, 3)), seconds, start, counts))
             for i in range(robots)]
    for p in procs:
        p.start()
    start.wait()
    total = sum(counts.get(timeout=seconds + 300) for _ in procs)
    for p in procs:
        p.join()
    return {"robots": robots, "seconds": seconds, "synchronous": synchronous, "writes": total,
            "writes_per_s": round(total / seconds, 1),
            "writes_per_s_per_robot": round(total / seconds / robots, 1),
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    """Run the benchmark and write the JSON report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef-search", default="40,100")
    ap.add_argument("--writers", default="1,2,4")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--synchronous", default=StoreOptions().synchronous,
                    choices=["FULL", "NORMAL"], help="the writers' store setting; default: "
                    "memory_node's (FULL)")
    ap.add_argument("--url", default="", help="a server of your own (a user who may create "
                    "databases); default: a pgserver one in a temporary folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/bench_fleet.json")
    args = ap.parse_args()
    args.ef_search = [int(x) for x in args.ef_search.split(",") if x]
    server = Server(args.url)
    report: dict[str, object] = {
        "command": " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1min_at_start": round(os.getloadavg()[0], 2)},
        "sizes": [], "writers": []}
    try:
        for n in [int(x) for x in args.sizes.split(",") if x]:
            t0 = time.perf_counter()
            row = run_size(server, n, args)
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            row["load_avg_1min"] = round(os.getloadavg()[0], 2)
            print(json.dumps(row), flush=True)
            report["sizes"].append(row)  # type: ignore[union-attr]
        for k in [int(x) for x in args.writers.split(",") if x]:
            row = {"backend": "postgresql",
                   **run_writers(server.database(), k, args.seconds, args.synchronous)}
            print(json.dumps(row), flush=True)
            report["writers"].append(row)  # type: ignore[union-attr]
        if args.writers:
            with tempfile.TemporaryDirectory() as tmp:
                row = {"backend": "sqlite", **run_writers(str(Path(tmp) / "m.db"), 1,
                                                          args.seconds, args.synchronous)}
            print(json.dumps(row), flush=True)
            report["writers"].append(row)  # type: ignore[union-attr]
    finally:
        server.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
