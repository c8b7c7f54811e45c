"""Copy a robot's SQLite memory into a PostgreSQL memory (``visio-memoria db migrate``).

Persons, their faces (vectors and crops), negative links, unknown faces, non-face examples,
visits and the embedders registry are copied with their ids, so a re-run finds them there and
adds nothing (``ON CONFLICT (id) DO NOTHING``): the copy is safe to repeat. Crops are
decrypted with the source's key and encrypted with the target's (the same key when both use
the same parameters). Afterwards every table is checked: each source id is in the target, and
each copied person has the same name; a target that already holds other people under those
ids (another robot's memory) is refused rather than mixed up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConflictError
from .postgres_store import PostgresStore
from .sqlite_store import SQLiteStore

LOG = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class CopyReport:
    """Rows per table: in the source, newly written, and found in the target afterwards."""

    source: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    verified: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every source row is in the target."""
        return all(self.verified.get(t, -1) == n for t, n in self.source.items())


def _batches(rows: Iterable[Any], size: int = BATCH) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def copy_memory(source: SQLiteStore, target: PostgresStore,
                progress: Callable[[str, int], None] | None = None) -> CopyReport:
    """Copy ``source`` into ``target`` (idempotent); returns the counts, verified."""
    src = source._conn
    s_blobs, t_blobs = source._blobs, target._blobs
    src_rows: dict[str, list[Any]] = {}

    def read(table: str, sql: str) -> list[Any]:
        rows = src.execute(sql).fetchall()
        src_rows[table] = rows
        return rows

    with source.database.lock:
        persons = read("persons", "SELECT id, name, name_key, created, never_remember FROM "
                       "persons ORDER BY id")
        embedders = read("embedders", "SELECT id, dim, first_seen FROM embedders")
        embeddings = read("embeddings", "SELECT id, person_id, vector, dim, embedder, quality, "
                          "crop, created, source FROM embeddings ORDER BY id")
        unknowns = read("unknowns", "SELECT id, vector, dim, embedder, quality, crop, "
                        "first_seen, last_seen, cluster_id, track_key, robot_id, cluster_seq, "
                        "candidate_id, candidate_similarity, pinned FROM unknowns ORDER BY id")
        non_faces = read("non_faces", "SELECT id, vector, dim, embedder, created, source FROM "
                         "non_faces ORDER BY id")
        visits = read("visits", "SELECT id, person_id, started, last_seen, ended, location, "
                      "robot_id, activity_counts, dominant_activity FROM visits ORDER BY id")
        negatives = read("negative_links", "SELECT id, person_id, face_id, cluster_id, created "
                         "FROM negative_links ORDER BY id")
        meta = {r[0]: r[1] for r in src.execute("SELECT key, value FROM meta")}

    def crop(blob: bytes | None) -> bytes | None:
        if blob is None:
            return None
        return t_blobs.cipher.encrypt(s_blobs.cipher.decrypt(blob, "crop"), "crop")

    def vector(blob: bytes, dim: int) -> Any:
        return t_blobs.vector(s_blobs.unvector(blob, int(dim)))

    written: dict[str, int] = {}
    plan: Sequence[tuple[str, str, list[Any], Callable[[Any], tuple[Any, ...]]]] = (
        ("persons", "INSERT INTO persons (id, name, name_key, created, never_remember) "
         "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING", persons, tuple),
        ("embedders", "INSERT INTO embedders (id, dim, first_seen) VALUES (?, ?, ?) "
         "ON CONFLICT (id) DO NOTHING", embedders, tuple),
        ("embeddings", "INSERT INTO embeddings (id, person_id, vector, dim, embedder, quality, "
         "crop, created, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
         embeddings, lambda r: (r[0], r[1], vector(r[2], r[3]), r[3], r[4], r[5], crop(r[6]),
                                r[7], r[8])),
        ("unknowns", "INSERT INTO unknowns (id, vector, dim, embedder, quality, crop, "
         "first_seen, last_seen, cluster_id, track_key, robot_id, cluster_seq, candidate_id, "
         "candidate_similarity, pinned) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (id) DO NOTHING",
         unknowns, lambda r: (r[0], vector(r[1], r[2]), r[2], r[3], r[4], crop(r[5]), *r[6:])),
        ("non_faces", "INSERT INTO non_faces (id, vector, dim, embedder, created, source) "
         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
         non_faces, lambda r: (r[0], vector(r[1], r[2]), *r[2:])),
        ("visits", "INSERT INTO visits (id, person_id, started, last_seen, ended, location, "
         "robot_id, activity_counts, dominant_activity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT DO NOTHING", visits, tuple),
        ("negative_links", "INSERT INTO negative_links (id, person_id, face_id, cluster_id, "
         "created) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", negatives, tuple),
    )
    with target._tx() as conn:
        # The same ids must mean the same persons: refuse to mix two memories.
        for pid, _name, key, *_ in persons:
            row = conn.execute("SELECT name_key FROM persons WHERE id = ?", (pid,)).fetchone()
            owner = conn.execute("SELECT id FROM persons WHERE name_key = ?", (key,)).fetchone()
            if (row is not None and row[0] != key) or (owner is not None and owner[0] != pid):
                raise ConflictError(
                    f"the target memory already holds another person under id {pid} or the "
                    f"name of person {pid}: it is another memory; copy into an empty database")
        for dim_row in embedders:
            target.database.embedder_added(conn, dim_row[0], int(dim_row[1]))
        for table, sql, rows, convert in plan:
            n = 0
            for batch in _batches(rows):
                before = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                conn.executemany(sql, [convert(r) for r in batch])
                n += conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] - before
                if progress is not None:
                    progress(table, len(batch))
            written[table] = n
        # Identity columns and counters continue after the copied ids.
        for table in ("persons", "visits", "negative_links", "non_faces"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))")
        for key in ("next_face_id", "next_cluster_id", "cluster_seq"):
            mine = target.events.meta_int(conn, key)
            target.events.set_meta(conn, key, max(mine, int(meta.get(key, 0))))
        if any(written.values()):
            target._bump(conn, "migrated", [int(p[0]) for p in persons],
                         f"copied {written.get('persons', 0)} persons, "
                         f"{written.get('embeddings', 0)} faces, "
                         f"{written.get('unknowns', 0)} unknown faces, "
                         f"{written.get('visits', 0)} visits")
    verified = {}
    with target._read() as conn:
        for table, rows in src_rows.items():
            ids = [r[0] for r in rows]
            found = 0
            for batch in _batches(ids):
                found += conn.execute(f"SELECT COUNT(*) FROM {table} WHERE id IN "
                                      f"({','.join('?' * len(batch))})", batch).fetchone()[0]
            verified[table] = int(found)
        verified["crops"] = sum(
            int(conn.execute(f"SELECT COUNT(*) FROM {t} WHERE crop IS NOT NULL AND id IN "
                             f"({','.join('?' * len(b))})", b).fetchone()[0])
            for t in ("embeddings", "unknowns")
            for b in _batches([r[0] for r in src_rows[t] if r[6 if t == "embeddings" else 5]
                               is not None]))
    source_counts = {t: len(r) for t, r in src_rows.items()}
    source_counts["crops"] = (sum(1 for r in embeddings if r[6] is not None)
                              + sum(1 for r in unknowns if r[5] is not None))
    report = CopyReport(source_counts, written, verified)
    LOG.info("copied %s into %s: %s written, verified %s", source.where, target.where,
             written, verified)
    return report
