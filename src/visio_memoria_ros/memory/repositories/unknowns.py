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
         "robot_id, cluster_seq, candidate_id, candidate_similarity")
#: Faces of strangers: not waiting for a "maybe <person>?" answer.
STRANGERS = "candidate_id < 0"


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
                                f"WHERE embedder = ? AND {STRANGERS} ORDER BY id",
                                (embedder,)).fetchall()
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
            cluster_id=int(r[7]), track_key=r[8], robot_id=r[9], cluster_seq=int(r[10]),
            candidate_id=int(r[11]),
            candidate_similarity=float("nan") if r[12] is None else float(r[12]),
            crop=self.blobs.uncrop(r[13]) if with_crop else None)

    def track(self, conn: Conn, track_key: str, embedder: str, robot_id: str
              ) -> list[TrackFace]:
        """The stored faces of one robot's track (with their vectors), worst quality first."""
        return [TrackFace(int(r[0]), float(r[1]), int(r[2]),
                          self.blobs.unvector(r[3], int(r[4]))) for r in conn.execute(
            "SELECT id, quality, cluster_id, vector, dim FROM unknowns WHERE track_key = ? AND "
            "embedder = ? AND robot_id = ? ORDER BY quality, id",
            (track_key, embedder, robot_id)).fetchall()]

    def touch_track(self, conn: Conn, track_key: str, embedder: str, robot_id: str,
                    t: float) -> None:
        """The robot's track was seen at ``t``."""
        conn.execute("UPDATE unknowns SET last_seen = CASE WHEN last_seen < ? THEN ? "
                     "ELSE last_seen END WHERE track_key = ? AND embedder = ? AND robot_id = ?",
                     (t, t, track_key, embedder, robot_id))

    def insert(self, conn: Conn, face_id: int, v: np.ndarray, *, embedder: str, quality: float,
               crop: bytes | None, t: float, cluster: int, track_key: str,
               robot_id: str, seq: int = 0, candidate_id: int = -1,
               candidate_similarity: float | None = None) -> None:
        """Store one unknown face."""
        conn.execute(
            "INSERT INTO unknowns (id, vector, dim, embedder, quality, crop, first_seen, "
            "last_seen, cluster_id, track_key, robot_id, cluster_seq, candidate_id, "
            "candidate_similarity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (face_id, self.blobs.vector(v), int(v.shape[0]), embedder, quality, crop, t, t,
             cluster, track_key, robot_id, seq, candidate_id, candidate_similarity))

    def set_cluster(self, conn: Conn, ids: Sequence[int], cluster: int, seq: int) -> None:
        """Put the faces ``ids`` into ``cluster`` (at cluster sequence ``seq``)."""
        for chunk in chunks(ids):
            conn.execute("UPDATE unknowns SET cluster_id = ?, cluster_seq = ? "
                         f"WHERE id IN ({in_marks(chunk)})", (cluster, seq, *chunk))

    def set_clusters(self, conn: Conn, changes: Sequence[tuple[int, int]], seq: int) -> None:
        """Apply ``(cluster id, face id)`` changes (at cluster sequence ``seq``)."""
        conn.executemany("UPDATE unknowns SET cluster_id = ?, cluster_seq = ? WHERE id = ?",
                         [(c, seq, i) for c, i in changes])

    def pin(self, conn: Conn, ids: Sequence[int], cluster: int, seq: int) -> None:
        """Put the faces ``ids`` into ``cluster`` by hand: re-clustering leaves them there."""
        for chunk in chunks(ids):
            conn.execute("UPDATE unknowns SET cluster_id = ?, cluster_seq = ?, pinned = 1 "
                         f"WHERE id IN ({in_marks(chunk)})", (cluster, seq, *chunk))

    def in_cluster(self, conn: Conn, cluster_id: int, revision: int = 0) -> list[int]:
        """A cluster's faces; with ``revision`` > 0 only those it held at that revision."""
        if revision > 0:
            return [int(r[0]) for r in conn.execute(
                "SELECT id FROM unknowns WHERE cluster_id = ? AND cluster_seq <= ? ORDER BY id",
                (cluster_id, revision))]
        return [int(r[0]) for r in conn.execute(
            "SELECT id FROM unknowns WHERE cluster_id = ? ORDER BY id", (cluster_id,))]

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
                                f"AND {STRANGERS} ORDER BY id", (int(cluster_id),)).fetchall()
        return [self.record(r, with_crops) for r in rows]

    def of_ids(self, conn: Conn, ids: Sequence[int], with_crops: bool) -> list[UnknownRecord]:
        """The faces ``ids`` that exist, by id."""
        crop = "crop" if with_crops else "NULL"
        out: list[UnknownRecord] = []
        for chunk in chunks(ids):
            out.extend(self.record(r, with_crops) for r in conn.execute(
                f"SELECT {_COLS}, {crop} FROM unknowns WHERE id IN ({in_marks(chunk)})", chunk))
        return sorted(out, key=lambda u: u.unknown_id)

    def candidates(self, conn: Conn, with_crops: bool) -> list[UnknownRecord]:
        """The faces waiting for a "maybe <person>?" answer, best similarity first."""
        crop = "crop" if with_crops else "NULL"
        return [self.record(r, with_crops) for r in conn.execute(
            f"SELECT {_COLS}, {crop} FROM unknowns WHERE candidate_id >= 0 "
            "ORDER BY candidate_id, candidate_similarity DESC, id")]

    def clear_candidates(self, conn: Conn, ids: Sequence[int]) -> None:
        """The faces ``ids`` are strangers after all: pending, no candidate."""
        for chunk in chunks(ids):
            conn.execute("UPDATE unknowns SET candidate_id = -1, candidate_similarity = NULL, "
                         f"cluster_id = {PENDING}, cluster_seq = 0 "
                         f"WHERE id IN ({in_marks(chunk)})", chunk)

    def candidates_of(self, conn: Conn, person_id: int) -> list[int]:
        """The faces offered as "maybe" ``person_id``."""
        return [int(r[0]) for r in conn.execute(
            "SELECT id FROM unknowns WHERE candidate_id = ? ORDER BY id", (person_id,))]

    def move_candidates(self, conn: Conn, source: int, target: int) -> None:
        """Faces offered as ``source`` are offered as ``target`` (persons merged)."""
        conn.execute("UPDATE unknowns SET candidate_id = ? WHERE candidate_id = ?",
                     (target, source))

    def of_tracks(self, conn: Conn, track_keys: Sequence[str], robot_id: str) -> list[int]:
        """The faces of one robot's tracks."""
        found: list[int] = []
        for chunk in chunks(list(track_keys)):
            found.extend(int(r[0]) for r in conn.execute(
                f"SELECT id FROM unknowns WHERE robot_id = ? AND track_key IN "
                f"({in_marks(chunk)}) ORDER BY id", (robot_id, *chunk)))
        return found

    def clusters(self, conn: Conn, min_size: int, max_samples: int, include_pending: bool
                 ) -> list[ClusterSummary]:
        """Clusters largest first with their best samples; pending faces last when asked."""
        out: list[ClusterSummary] = []
        groups = conn.execute(
            "SELECT cluster_id, COUNT(*), MIN(first_seen), MAX(last_seen), MIN(embedder), "
            "MAX(cluster_seq) FROM unknowns WHERE cluster_id >= 0 GROUP BY cluster_id "
            "HAVING COUNT(*) >= ? ORDER BY COUNT(*) DESC, cluster_id", (min_size,)).fetchall()
        for cid, size, first, last, emb, seq in groups:
            samples = conn.execute(
                "SELECT id, crop, quality FROM unknowns WHERE cluster_id = ? "
                "ORDER BY quality DESC, id LIMIT ?", (cid, max_samples)).fetchall()
            crops = [self.blobs.uncrop(s[1]) for s in samples]
            kept = [(s, c) for s, c in zip(samples, crops, strict=True) if c is not None]
            out.append(ClusterSummary(
                int(cid), int(size), float(first), float(last), emb,
                [int(s[0]) for s in samples], [c for _, c in kept], int(seq),
                [float(s[2]) for s in samples]))
        if include_pending and min_size <= 1:
            rows = conn.execute(
                "SELECT id, first_seen, last_seen, embedder, crop, quality FROM unknowns "
                f"WHERE cluster_id = ? AND {STRANGERS} ORDER BY last_seen DESC, id",
                (PENDING,)).fetchall()
            for uid, first, last, emb, crop, quality in rows:
                crops = [] if max_samples == 0 or crop is None else [self.blobs.uncrop(crop)]
                out.append(ClusterSummary(PENDING, 1, float(first), float(last), emb,
                                          [int(uid)] if max_samples else [], crops, 0,
                                          [float(quality)] if max_samples else []))
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

    def to_person(self, conn: Conn, ids: Sequence[int], person_id: int, source: str) -> None:
        """Move the faces ``ids`` to a person, keeping their ids, crops and vectors."""
        for chunk in chunks(ids):
            marks = in_marks(chunk)
            conn.execute(
                "INSERT INTO embeddings (id, person_id, vector, dim, embedder, quality, crop, "
                "created, source) SELECT id, ?, vector, dim, embedder, quality, crop, "
                f"first_seen, ? FROM unknowns WHERE id IN ({marks})",
                (person_id, source, *chunk))
            conn.execute(f"DELETE FROM unknowns WHERE id IN ({marks})", chunk)

    def delete(self, conn: Conn, ids: Sequence[int]) -> None:
        """Delete unknown faces."""
        for chunk in chunks(ids):
            conn.execute(f"DELETE FROM unknowns WHERE id IN ({in_marks(chunk)})", chunk)

    def older_than(self, conn: Conn, t: float) -> list[int]:
        """Faces last seen before ``t``."""
        return [int(r[0]) for r in conn.execute(
            "SELECT id FROM unknowns WHERE last_seen < ?", (t,))]

    def embedders(self, conn: Conn) -> list[str]:
        """Embedders that made unknown faces of strangers."""
        return [r[0] for r in conn.execute(
            f"SELECT DISTINCT embedder FROM unknowns WHERE {STRANGERS}")]

    def recent(self, conn: Conn, embedder: str, limit: int
               ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """The most recent ``limit`` faces of an embedder: ids, vectors, cluster ids."""
        rows = conn.execute(
            f"SELECT id, vector, dim, cluster_id FROM unknowns WHERE embedder = ? AND {STRANGERS} "
            "AND pinned = 0 ORDER BY last_seen DESC, id DESC LIMIT ?", (embedder, limit)
        ).fetchall()
        return ([int(r[0]) for r in rows],
                np.stack([self.blobs.unvector(r[1], int(r[2])) for r in rows]),
                np.array([int(r[3]) for r in rows], dtype=np.int64))

    def counts(self, conn: Conn) -> tuple[int, int]:
        """(faces, clusters)."""
        n = int(conn.execute("SELECT COUNT(*) FROM unknowns").fetchone()[0])
        c = int(conn.execute("SELECT COUNT(DISTINCT cluster_id) FROM unknowns "
                             "WHERE cluster_id >= 0").fetchone()[0])
        return n, c
