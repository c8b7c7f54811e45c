"""Retention: what a purge deletes, and the counts of the whole memory."""

from __future__ import annotations

from ..database import Conn
from .base import Repository


class RetentionRepository(Repository):
    """Row counts for statistics; the purge itself composes the aggregates' deletes."""

    def counts(self, conn: Conn) -> dict[str, int]:
        """Rows per table."""
        def count(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        return {
            "persons": count("SELECT COUNT(*) FROM persons"),
            "embeddings": count("SELECT COUNT(*) FROM embeddings"),
            "unknowns": count("SELECT COUNT(*) FROM unknowns"),
            "clusters": count("SELECT COUNT(DISTINCT cluster_id) FROM unknowns "
                              "WHERE cluster_id >= 0"),
            "visits": count("SELECT COUNT(*) FROM visits"),
            "non_faces": count("SELECT COUNT(*) FROM non_faces"),
            "candidates": count("SELECT COUNT(*) FROM unknowns WHERE candidate_id >= 0"),
        }
