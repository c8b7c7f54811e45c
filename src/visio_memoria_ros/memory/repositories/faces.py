"""Faces of persons: embeddings, the embedders registry and "not this person" links."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..database import Conn
from ..errors import MemoryStoreError
from ..records import PENDING, EmbeddingRecord
from ..rules import chunks
from .base import Repository, in_marks


class FaceRepository(Repository):
    """The ``embeddings``, ``embedders`` and ``negative_links`` tables."""

    # -- embedders -----------------------------------------------------------------------
    def embedder_dim(self, conn: Conn, embedder: str) -> int | None:
        """The vector length of an embedder, None when never seen."""
        row = conn.execute("SELECT dim FROM embedders WHERE id = ?", (embedder,)).fetchone()
        return None if row is None else int(row[0])

    def register_embedder(self, conn: Conn, embedder: str, dim: int, t: float) -> None:
        """Remember an embedder's vector length; refuse another length for the same id."""
        known = self.embedder_dim(conn, embedder)
        if known is None:
            conn.execute("INSERT INTO embedders (id, dim, first_seen) VALUES (?, ?, ?)",
                         (embedder, dim, t))
            self.db.embedder_added(conn, embedder, dim)
        elif known != dim:
            raise MemoryStoreError(
                f"embedder {embedder!r} makes {known}-d vectors; this one has {dim}")

    def embedders(self, conn: Conn) -> dict[str, int]:
        """``{embedder id: vector length}``."""
        return {r[0]: int(r[1]) for r in conn.execute("SELECT id, dim FROM embedders")}

    # -- embeddings ----------------------------------------------------------------------
    def insert(self, conn: Conn, face_id: int, person_id: int, v: np.ndarray, *, embedder: str,
               quality: float, crop: bytes | None, t: float, source: str) -> None:
        """Store one face of a person."""
        conn.execute(
            "INSERT INTO embeddings (id, person_id, vector, dim, embedder, quality, crop, "
            "created, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (face_id, person_id, self.blobs.vector(v), int(v.shape[0]), embedder, quality, crop,
             t, source))

    def of_person(self, conn: Conn, person_id: int, with_crops: bool) -> list[EmbeddingRecord]:
        """A person's faces by id."""
        rows = conn.execute(
            "SELECT id, vector, dim, embedder, quality, created, source, "
            f"{'crop' if with_crops else 'NULL'} FROM embeddings WHERE person_id = ? "
            "ORDER BY id", (person_id,)).fetchall()
        return [EmbeddingRecord(int(r[0]), person_id, self.blobs.unvector(r[1], int(r[2])),
                                r[3], float(r[4]), float(r[5]), r[6], self.blobs.uncrop(r[7]))
                for r in rows]

    def best_crop(self, conn: Conn, person_id: int) -> np.ndarray | None:
        """The crop of the person's best-quality face that has one, or None."""
        row = conn.execute("SELECT crop FROM embeddings WHERE person_id = ? AND crop IS NOT NULL "
                           "ORDER BY quality DESC, id DESC LIMIT 1", (person_id,)).fetchone()
        return None if row is None else self.blobs.uncrop(row[0])

    def ids_of(self, conn: Conn, person_id: int) -> list[int]:
        """A person's face ids."""
        return [int(r[0]) for r in conn.execute(
            "SELECT id FROM embeddings WHERE person_id = ? ORDER BY id", (person_id,))]

    def owners(self, conn: Conn, ids: Sequence[int]) -> dict[int, int]:
        """``{embedding id: person id}`` of the given ids that exist."""
        owners: dict[int, int] = {}
        for chunk in chunks(ids):
            owners.update((int(r[0]), int(r[1])) for r in conn.execute(
                f"SELECT id, person_id FROM embeddings WHERE id IN ({in_marks(chunk)})", chunk))
        return owners

    def move(self, conn: Conn, ids: Sequence[int], person_id: int) -> None:
        """Give the faces ``ids`` to ``person_id``."""
        for chunk in chunks(ids):
            conn.execute(f"UPDATE embeddings SET person_id = ? WHERE id IN ({in_marks(chunk)})",
                         (person_id, *chunk))

    def move_all(self, conn: Conn, source: int, target: int) -> int:
        """Give every face of ``source`` to ``target``; returns how many."""
        return int(conn.execute("UPDATE embeddings SET person_id = ? WHERE person_id = ?",
                                (target, source)).rowcount)

    def persons_of(self, conn: Conn, ids: Sequence[int]) -> list[int]:
        """The persons that hold the faces ``ids``."""
        found: set[int] = set()
        for chunk in chunks(ids):
            found.update(int(r[0]) for r in conn.execute(
                f"SELECT DISTINCT person_id FROM embeddings WHERE id IN ({in_marks(chunk)})",
                chunk))
        return sorted(found)

    def to_unknowns(self, conn: Conn, ids: Sequence[int]) -> None:
        """Move faces of persons back to the unknowns (pending, no track), keeping their ids."""
        for chunk in chunks(ids):
            marks = in_marks(chunk)
            conn.execute(
                "INSERT INTO unknowns (id, vector, dim, embedder, quality, crop, first_seen, "
                "last_seen, cluster_id, track_key) SELECT id, vector, dim, embedder, quality, "
                f"crop, created, created, {PENDING}, '' FROM embeddings WHERE id IN ({marks})",
                chunk)
            conn.execute(f"DELETE FROM embeddings WHERE id IN ({marks})", chunk)

    def delete_of_person(self, conn: Conn, person_id: int) -> None:
        """Delete every face of a person."""
        conn.execute("DELETE FROM embeddings WHERE person_id = ?", (person_id,))

    def count(self, conn: Conn) -> int:
        """How many faces of persons."""
        return int(conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    # -- negative links ("not this person") ----------------------------------------------
    def add_face_negatives(self, conn: Conn, person_id: int, face_ids: Sequence[int],
                           t: float) -> None:
        """Record that the faces ``face_ids`` are not ``person_id``."""
        conn.executemany(
            "INSERT INTO negative_links (person_id, face_id, created) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING", [(person_id, i, t) for i in face_ids])

    def add_cluster_negative(self, conn: Conn, person_id: int, cluster_id: int,
                             t: float) -> None:
        """Record that the unknown cluster is not ``person_id``."""
        conn.execute("INSERT INTO negative_links (person_id, cluster_id, created) "
                     "VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (person_id, cluster_id, t))

    def delete_face_negatives(self, conn: Conn, face_ids: Sequence[int],
                              person_id: int | None = None) -> None:
        """Delete the negative links on the faces (of one person, or of everybody)."""
        for chunk in chunks(face_ids):
            if person_id is None:
                conn.execute(f"DELETE FROM negative_links WHERE face_id IN ({in_marks(chunk)})",
                             chunk)
            else:
                conn.execute(f"DELETE FROM negative_links WHERE person_id = ? AND face_id IN "
                             f"({in_marks(chunk)})", (person_id, *chunk))

    def delete_cluster_negatives(self, conn: Conn, cluster_id: int,
                                 person_id: int | None = None) -> None:
        """Delete the negative links on an unknown cluster (of one person, or everybody's)."""
        if person_id is None:
            conn.execute("DELETE FROM negative_links WHERE cluster_id = ?", (cluster_id,))
        else:
            conn.execute("DELETE FROM negative_links WHERE person_id = ? AND cluster_id = ?",
                         (person_id, cluster_id))

    def delete_negatives_of(self, conn: Conn, person_id: int) -> None:
        """Delete every negative link of a person."""
        conn.execute("DELETE FROM negative_links WHERE person_id = ?", (person_id,))

    def merge_negatives(self, conn: Conn, source: int, target: int) -> None:
        """Give ``source``'s negative links to ``target`` (duplicates dropped, self-links too)."""
        conn.execute(
            "DELETE FROM negative_links WHERE person_id = ? AND ("
            "face_id IN (SELECT face_id FROM negative_links WHERE person_id = ? "
            "AND face_id IS NOT NULL) OR "
            "cluster_id IN (SELECT cluster_id FROM negative_links WHERE person_id = ? "
            "AND cluster_id IS NOT NULL))", (source, target, target))
        conn.execute("UPDATE negative_links SET person_id = ? WHERE person_id = ?",
                     (target, source))
        # A negative link of the merged person to one of its own faces contradicts itself.
        conn.execute("DELETE FROM negative_links WHERE person_id = ? AND face_id IN "
                     "(SELECT id FROM embeddings WHERE person_id = ?)", (target, target))
