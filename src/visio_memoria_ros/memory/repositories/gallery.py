"""Gallery assembly: everything the identity engine needs for one embedder."""

from __future__ import annotations

import numpy as np

from ..database import Conn
from ..records import GalleryEntry, GalleryNegative
from .base import Repository


class GalleryRepository(Repository):
    """Reads the vectors of persons and the "not this person" vectors of one embedder."""

    def entries(self, conn: Conn, embedder: str, names: dict[int, str]) -> list[GalleryEntry]:
        """Every face vector of ``embedder``, by id."""
        return [GalleryEntry(int(r[0]), int(r[1]), names[int(r[1])],
                             self.blobs.unvector(r[2], int(r[3])))
                for r in conn.execute("SELECT id, person_id, vector, dim FROM embeddings "
                                      "WHERE embedder = ? ORDER BY id", (embedder,))]

    def vectors(self, conn: Conn, table: str, embedder: str) -> tuple[list[int], np.ndarray]:
        """Ids and vectors of every face of ``embedder`` in ``table`` (for exact search)."""
        assert table in ("embeddings", "unknowns")
        rows = conn.execute(f"SELECT id, vector, dim FROM {table} WHERE embedder = ? "
                            "ORDER BY id", (embedder,)).fetchall()
        if not rows:
            return [], np.zeros((0, 1), np.float32)
        return ([int(r[0]) for r in rows],
                np.stack([self.blobs.unvector(r[1], int(r[2])) for r in rows]))

    def negatives(self, conn: Conn, embedder: str
                  ) -> tuple[list[GalleryNegative], list[tuple[int, int]]]:
        """Vectors that must not match a person, and the (person, cluster) negative links."""
        negatives: list[GalleryNegative] = []
        for table in ("embeddings", "unknowns"):
            negatives.extend(
                GalleryNegative(int(r[0]), self.blobs.unvector(r[2], int(r[3])), int(r[1]))
                for r in conn.execute(
                    f"SELECT n.person_id, f.id, f.vector, f.dim FROM negative_links n "
                    f"JOIN {table} f ON f.id = n.face_id WHERE f.embedder = ? "
                    "ORDER BY n.id", (embedder,)))
        cluster_links = [(int(r[0]), int(r[1])) for r in conn.execute(
            "SELECT person_id, cluster_id FROM negative_links WHERE cluster_id IS NOT NULL "
            "ORDER BY id")]
        negatives.extend(
            GalleryNegative(int(r[0]), self.blobs.unvector(r[2], int(r[3])), int(r[1]),
                            int(r[4]))
            for r in conn.execute(
                "SELECT n.person_id, u.id, u.vector, u.dim, u.cluster_id "
                "FROM negative_links n JOIN unknowns u ON u.cluster_id = n.cluster_id "
                "WHERE u.embedder = ? ORDER BY n.id, u.id", (embedder,)))
        return negatives, cluster_links
