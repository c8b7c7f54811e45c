"""Re-embedding: stored crops in batches, vectors replaced (embeddings and unknowns)."""

from __future__ import annotations

import numpy as np

from ..database import Conn
from .base import Repository

TABLES = ("embeddings", "unknowns")


class ReembedRepository(Repository):
    """Reads crops of faces another embedder made, writes the new vectors."""

    def without_crop(self, conn: Conn, table: str, embedder: str) -> int:
        """Faces not made by ``embedder`` that have no crop (cannot be re-embedded)."""
        assert table in TABLES
        return int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE embedder != ? "
                                "AND crop IS NULL", (embedder,)).fetchone()[0])

    def batch(self, conn: Conn, table: str, embedder: str, after_id: int, size: int
              ) -> list[tuple[int, np.ndarray | None, str]]:
        """The next faces (id > ``after_id``) with a crop not made by ``embedder``."""
        assert table in TABLES
        rows = conn.execute(
            f"SELECT id, crop, embedder FROM {table} WHERE embedder != ? AND "
            "crop IS NOT NULL AND id > ? ORDER BY id LIMIT ?",
            (embedder, after_id, size)).fetchall()
        return [(int(r[0]), self.blobs.uncrop(r[1]), str(r[2])) for r in rows]

    def replace(self, conn: Conn, table: str, face_id: int, *, old: str, v: np.ndarray,
                embedder: str) -> int:
        """Replace a face's vector if it still carries ``old``; returns 1 when it did."""
        assert table in TABLES
        return int(conn.execute(f"UPDATE {table} SET vector = ?, dim = ?, embedder = ? "
                                "WHERE id = ? AND embedder = ?",
                                (self.blobs.vector(v), int(v.shape[0]), embedder, face_id,
                                 old)).rowcount)
