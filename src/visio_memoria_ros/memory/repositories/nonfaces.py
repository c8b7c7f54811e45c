"""Non-face examples: embeddings of crops a user rejected as "not a face" (no crop kept)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..database import Conn
from .base import Repository, in_marks


class NonFaceRepository(Repository):
    """The ``non_faces`` table: one embedding per rejected crop, per embedder."""

    def add_from_unknowns(self, conn: Conn, ids: Sequence[int], t: float, source: str) -> int:
        """Keep the embeddings of the unknown faces ``ids`` as non-face examples."""
        n = 0
        for i in range(0, len(ids), 500):
            chunk = list(ids[i:i + 500])
            n += int(conn.execute(
                "INSERT INTO non_faces (vector, dim, embedder, created, source) "
                f"SELECT vector, dim, embedder, ?, ? FROM unknowns WHERE id IN ({in_marks(chunk)})",
                (t, source, *chunk)).rowcount)
        return n

    def vectors(self, conn: Conn, embedder: str) -> np.ndarray:
        """The non-face examples of ``embedder`` as an (N, dim) matrix."""
        rows = conn.execute("SELECT vector, dim FROM non_faces WHERE embedder = ? ORDER BY id",
                            (embedder,)).fetchall()
        if not rows:
            return np.zeros((0, 0), np.float32)
        return np.stack([self.blobs.unvector(r[0], int(r[1])) for r in rows])

    def delete(self, conn: Conn, embedder: str | None = None) -> int:
        """Delete the examples (of one embedder, or all); returns how many."""
        if embedder is None:
            return int(conn.execute("DELETE FROM non_faces").rowcount)
        return int(conn.execute("DELETE FROM non_faces WHERE embedder = ?",
                                (embedder,)).rowcount)

    def count(self, conn: Conn) -> int:
        """How many examples are kept."""
        return int(conn.execute("SELECT COUNT(*) FROM non_faces").fetchone()[0])
