"""Revision, change events and id allocation (the ``meta`` and ``events`` tables)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..database import Conn
from ..records import MemoryEventRecord
from .base import Repository


class EventRepository(Repository):
    """The gallery revision, its events (ids only, never names) and the id counters."""

    def meta_int(self, conn: Conn, key: str) -> int:
        """An integer of the ``meta`` table (0 when unset)."""
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def meta_text(self, conn: Conn, key: str) -> str | None:
        """A text value of the ``meta`` table, or None."""
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, conn: Conn, key: str, value: int | str) -> None:
        """Set a ``meta`` value."""
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, str(value)))

    def next_face_id(self, conn: Conn) -> int:
        """Allocate a face id (shared by embeddings and unknowns)."""
        face_id = self.meta_int(conn, "next_face_id")
        self.set_meta(conn, "next_face_id", face_id + 1)
        return face_id

    def next_cluster_id(self, conn: Conn) -> int:
        """Allocate an unknown cluster id."""
        cid = self.meta_int(conn, "next_cluster_id")
        self.set_meta(conn, "next_cluster_id", cid + 1)
        return cid

    def next_cluster_seq(self, conn: Conn) -> int:
        """The sequence number of the next change of unknown faces' clusters (from 1)."""
        seq = self.meta_int(conn, "cluster_seq") + 1
        self.set_meta(conn, "cluster_seq", seq)
        return seq

    def revision(self, conn: Conn) -> int:
        """The gallery revision."""
        return self.meta_int(conn, "revision")

    def bump(self, conn: Conn, kind: str, person_ids: Sequence[int], message: str,
             stamp: float) -> int:
        """Increase the revision and record the event; returns the new revision."""
        revision = self.revision(conn) + 1
        self.set_meta(conn, "revision", revision)
        conn.execute(
            "INSERT INTO events (revision, stamp, kind, person_ids, message) "
            "VALUES (?, ?, ?, ?, ?)",
            (revision, stamp, kind, json.dumps([int(p) for p in person_ids]), message),
        )
        return revision

    def since(self, conn: Conn, revision: int) -> list[MemoryEventRecord]:
        """The events after ``revision``, oldest first."""
        return [MemoryEventRecord(int(r[0]), float(r[1]), r[2], json.loads(r[3]), r[4])
                for r in conn.execute(
                    "SELECT revision, stamp, kind, person_ids, message FROM events "
                    "WHERE revision > ? ORDER BY revision", (int(revision),))]

    def forget_person(self, conn: Conn, person_id: int) -> None:
        """Delete the events that name ``person_id``."""
        stale = [int(r[0]) for r in conn.execute("SELECT revision, person_ids FROM events")
                 if person_id in json.loads(r[1])]
        for i in range(0, len(stale), 500):
            chunk = stale[i:i + 500]
            conn.execute(f"DELETE FROM events WHERE revision IN ({','.join('?' * len(chunk))})",
                         chunk)

    def trim(self, conn: Conn, keep: int) -> int:
        """Keep only the newest ``keep`` events; returns how many were deleted."""
        return conn.execute(
            "DELETE FROM events WHERE revision <= (SELECT MAX(revision) FROM events) - ?",
            (keep,)).rowcount
