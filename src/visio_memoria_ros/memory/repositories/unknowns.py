"""Unknown faces: rows, clusters, the in-memory index for incremental clustering, labelling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..database import Conn
from ..records import PENDING, ClusterSummary, UnknownRecord
from ..rules import TrackFace, UnknownIndex, chunks
from .base import Repository, in_marks

_COLS = ("id, vector, dim, embedder, quality, first_seen, last_seen, cluster_id, track_key, "
         "robot_id")


class UnknownRepository(Repository):
    """The ``unknowns`` table, and a cached index of each embedder's unknown vectors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache: dict[str, UnknownIndex] = {}

    # -- the index -----------------------------------------------------------------------
    def forget_index(self) -> None:
        """Drop every cached index (after a write of this process that changed unknowns)."""
        self._cache.clear()

    def drop_index(self, embedder: str) -> None:
        """Drop one embedder's cached index."""
        self._cache.pop(embedder, None)

    def cached_index(self, embedder: str) -> UnknownIndex | None:
        """The cached index of ``embedder``, if any."""
        return self._cache.get(embedder)

    def index(self, conn: Conn, embedder: str, dim: int) -> UnknownIndex:
        """The unknown vectors of ``embedder``, cached while no other connection changes them.

        Another process (the labelling page, the CLI, another robot) may delete or relabel
        faces; the backend's ``unknowns_version`` tells when the cache is stale.
        """
        version = self.db.unknowns_version(conn)
        index = self._cache.get(embedder)
        if index is not None and index.version != version:
            self._cache.clear()
            index = None
        if index is None:
            rows = conn.execute("SELECT id, vector, dim, cluster_id FROM unknowns "
                                "WHERE embedder = ? ORDER BY id", (embedder,)).fetchall()
            vectors = (np.stack([self.blobs.unvector(r[1], int(r[2])) for r in rows])
                       if rows else np.zeros((0, dim), np.float32))
            index = UnknownIndex([int(r[0]) for r in rows], vectors, [int(r[3]) for r in rows],
                                 version)
            self._cache[embedder] = index
        return index

    def settle_index(self, conn: Conn, embedder: str) -> None:
        """After this connection's own change: the cached index is current at this version."""
        index = self._cache.get(embedder)
        if index is not None:
            index.version = self.db.unknowns_version(conn)

    # -- rows ------------------------------------------------------------------------------
    def record(self, r: Sequence[Any], with_crop: bool) -> UnknownRecord:
        """An UnknownRecord of a ``_COLS, crop`` row."""
        return UnknownRecord(
            unknown_id=int(r[0]), vector=self.blobs.unvector(r[1], int(r[2])), embedder=r[3],
            quality=float(r[4]), first_seen=float(r[5]), last_seen=float(r[6]),
            cluster_id=int(r[7]), track_key=r[8], robot_id=r[9],
            crop=self.blobs.uncrop(r[10]) if with_crop else None)

    def track(self, conn: Conn, track_key: str, embedder: str, robot_id: str
              ) -> list[TrackFace]:
        """The stored faces of one robot's track, worst quality first."""
        return [TrackFace(int(r[0]), float(r[1]), int(r[2])) for r in conn.execute(
            "SELECT id, quality, cluster_id FROM unknowns WHERE track_key = ? AND "
            "embedder = ? AND robot_id = ? ORDER BY quality, id",
            (track_key, embedder, robot_id)).fetchall()]

    def replace(self, conn: Conn, face_id: int, v: np.ndarray, *, crop: bytes | None,
                quality: float, t: float) -> None:
        """Overwrite one face of a full track with a better one."""
        conn.execute("UPDATE unknowns SET vector = ?, crop = ?, quality = ?, "
                     "last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END "
                     "WHERE id = ?", (self.blobs.vector(v), crop, quality, t, t, face_id))

    def touch_track(self, conn: Conn, track_key: str, embedder: str, robot_id: str,
                    t: float) -> None:
        """The robot's track was seen at ``t``."""
        conn.execute("UPDATE unknowns SET last_seen = CASE WHEN last_seen < ? THEN ? "
                     "ELSE last_seen END WHERE track_key = ? AND embedder = ? AND robot_id = ?",
                     (t, t, track_key, embedder, robot_id))

    def insert(self, conn: Conn, face_id: int, v: np.ndarray, *, embedder: str, quality: float,
               crop: bytes | None, t: float, cluster: int, track_key: str,
               robot_id: str) -> None:
        """Store one unknown face."""
        conn.execute(
            "INSERT INTO unknowns (id, vector, dim, embedder, quality, crop, first_seen, "
            "last_seen, cluster_id, track_key, robot_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (face_id, self.blobs.vector(v), int(v.shape[0]), embedder, quality, crop, t, t,
             cluster, track_key, robot_id))

    def set_cluster(self, conn: Conn, ids: Sequence[int], cluster: int) -> None:
        """Put the faces ``ids`` into ``cluster``."""
        for chunk in chunks(ids):
            conn.execute(f"UPDATE unknowns SET cluster_id = ? WHERE id IN ({in_marks(chunk)})",
                         (cluster, *chunk))

    def set_clusters(self, conn: Conn, changes: Sequence[tuple[int, int]]) -> None:
        """Apply ``(cluster id, face id)`` changes."""
        conn.executemany("UPDATE unknowns SET cluster_id = ? WHERE id = ?", changes)

    def get(self, conn: Conn, unknown_id: int, with_crop: bool) -> UnknownRecord | None:
        """One unknown face, or None."""
        r = conn.execute(f"SELECT {_COLS}, crop FROM unknowns WHERE id = ?",
                         (unknown_id,)).fetchone()
        return None if r is None else self.record(r, with_crop)

    def list(self, conn: Conn, cluster_id: int | None, with_crops: bool) -> list[UnknownRecord]:
        """Every unknown face, or those of one cluster."""
        crop = "crop" if with_crops else "NULL"
        if cluster_id is None:
            rows = conn.execute(f"SELECT {_COLS}, {crop} FROM unknowns ORDER BY id").fetchall()
        else:
            rows = conn.execute(f"SELECT {_COLS}, {crop} FROM unknowns WHERE cluster_id = ? "
                                "ORDER BY id", (int(cluster_id),)).fetchall()
        return [self.record(r, with_crops) for r in rows]

    def clusters(self, conn: Conn, min_size: int, max_samples: int, include_pending: bool
                 ) -> list[ClusterSummary]:
        """Clusters largest first with their best samples; pending faces last when asked."""
        out: list[ClusterSummary] = []
        groups = conn.execute(
            "SELECT cluster_id, COUNT(*), MIN(first_seen), MAX(last_seen), MIN(embedder) "
            "FROM unknowns WHERE cluster_id >= 0 GROUP BY cluster_id HAVING COUNT(*) >= ? "
            "ORDER BY COUNT(*) DESC, cluster_id", (min_size,)).fetchall()
        for cid, size, first, last, emb in groups:
            samples = conn.execute(
                "SELECT id, crop FROM unknowns WHERE cluster_id = ? "
                "ORDER BY quality DESC, id LIMIT ?", (cid, max_samples)).fetchall()
            out.append(ClusterSummary(
                int(cid), int(size), float(first), float(last), emb,
                [int(s[0]) for s in samples],
                [c for c in (self.blobs.uncrop(s[1]) for s in samples) if c is not None]))
        if include_pending and min_size <= 1:
            rows = conn.execute(
                "SELECT id, first_seen, last_seen, embedder, crop FROM unknowns "
                "WHERE cluster_id = ? ORDER BY last_seen DESC, id", (PENDING,)).fetchall()
            for uid, first, last, emb, crop in rows:
                crops = [] if max_samples == 0 or crop is None else [self.blobs.uncrop(crop)]
                out.append(ClusterSummary(PENDING, 1, float(first), float(last), emb,
                                          [int(uid)] if max_samples else [], crops))
        return out

    def ids_where(self, conn: Conn, where: str, arg: int) -> list[int]:
        """Ids of the faces matching ``where`` (``cluster_id = ?`` or ``id = ?``)."""
        return [int(r[0]) for r in conn.execute(
            f"SELECT id FROM unknowns WHERE {where} ORDER BY id", (arg,))]

    def existing(self, conn: Conn, ids: Sequence[int]) -> set[int]:
        """Which of ``ids`` are unknown faces."""
        found: set[int] = set()
        for chunk in chunks(ids):
            found.update(int(r[0]) for r in conn.execute(
                f"SELECT id FROM unknowns WHERE id IN ({in_marks(chunk)})", chunk))
        return found

    def cluster_size(self, conn: Conn, cluster_id: int) -> int:
        """How many faces a cluster holds."""
        return int(conn.execute("SELECT COUNT(*) FROM unknowns WHERE cluster_id = ?",
                                (cluster_id,)).fetchone()[0])

    def to_person(self, conn: Conn, where: str, arg: int, person_id: int, source: str) -> None:
        """Move the faces matching ``where`` to a person, keeping their ids, crops, vectors."""
        conn.execute(
            "INSERT INTO embeddings (id, person_id, vector, dim, embedder, quality, crop, "
            "created, source) SELECT id, ?, vector, dim, embedder, quality, crop, "
            f"first_seen, ? FROM unknowns WHERE {where}", (person_id, source, arg))
        conn.execute(f"DELETE FROM unknowns WHERE {where}", (arg,))

    def delete(self, conn: Conn, ids: Sequence[int]) -> None:
        """Delete unknown faces."""
        for chunk in chunks(ids):
            conn.execute(f"DELETE FROM unknowns WHERE id IN ({in_marks(chunk)})", chunk)

    def older_than(self, conn: Conn, t: float) -> list[int]:
        """Faces last seen before ``t``."""
        return [int(r[0]) for r in conn.execute(
            "SELECT id FROM unknowns WHERE last_seen < ?", (t,))]

    def embedders(self, conn: Conn) -> list[str]:
        """Embedders that made unknown faces."""
        return [r[0] for r in conn.execute("SELECT DISTINCT embedder FROM unknowns")]

    def recent(self, conn: Conn, embedder: str, limit: int
               ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """The most recent ``limit`` faces of an embedder: ids, vectors, cluster ids."""
        rows = conn.execute(
            "SELECT id, vector, dim, cluster_id FROM unknowns WHERE embedder = ? "
            "ORDER BY last_seen DESC, id DESC LIMIT ?", (embedder, limit)).fetchall()
        return ([int(r[0]) for r in rows],
                np.stack([self.blobs.unvector(r[1], int(r[2])) for r in rows]),
                np.array([int(r[3]) for r in rows], dtype=np.int64))

    def counts(self, conn: Conn) -> tuple[int, int]:
        """(faces, clusters)."""
        n = int(conn.execute("SELECT COUNT(*) FROM unknowns").fetchone()[0])
        c = int(conn.execute("SELECT COUNT(DISTINCT cluster_id) FROM unknowns "
                             "WHERE cluster_id >= 0").fetchone()[0])
        return n, c
