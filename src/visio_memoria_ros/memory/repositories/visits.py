"""Visits: continuous presence of a person, per robot (the ``visits`` table)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..database import Conn
from ..errors import NotFoundError
from ..records import VisitRecord
from ..rules import chunks
from .base import Repository, in_marks

_COLS = ("v.id, v.person_id, p.name, v.started, v.last_seen, v.ended, v.location, "
         "v.robot_id, v.dominant_activity, v.activity_counts")


def _record(r: Sequence[Any]) -> VisitRecord:
    return VisitRecord(int(r[0]), int(r[1]), r[2], float(r[3]), float(r[4]),
                       0.0 if r[5] is None else float(r[5]), r[6], r[7], r[8],
                       {str(k): int(v) for k, v in json.loads(r[9] or "{}").items()})


class VisitRepository(Repository):
    """Rows of visits, joined with the person's name."""

    def get(self, conn: Conn, visit_id: int) -> VisitRecord:
        """One visit; NotFoundError when absent."""
        r = conn.execute(f"SELECT {_COLS} FROM visits v JOIN persons p ON p.id = v.person_id "
                         "WHERE v.id = ?", (visit_id,)).fetchone()
        if r is None:
            raise NotFoundError(f"visit {visit_id} does not exist")
        return _record(r)

    def open_of(self, conn: Conn, person_id: int, robot_id: str
                ) -> tuple[int, float, float, dict[str, int], str] | None:
        """The person's open visit on this robot: (id, start, last seen, counts, dominant)."""
        r = conn.execute(
            "SELECT id, started, last_seen, activity_counts, dominant_activity FROM visits "
            "WHERE person_id = ? AND robot_id = ? AND ended IS NULL "
            "ORDER BY started DESC LIMIT 1", (person_id, robot_id)).fetchone()
        if r is None:
            return None
        return (int(r[0]), float(r[1]), float(r[2]),
                {str(k): int(v) for k, v in json.loads(r[3]).items()}, str(r[4]))

    def extend(self, conn: Conn, visit_id: int, t: float, counts: Mapping[str, int],
               dominant: str) -> None:
        """The person was seen again at ``t`` during the visit."""
        conn.execute(
            "UPDATE visits SET started = CASE WHEN started > ? THEN ? ELSE started END, "
            "last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END, "
            "activity_counts = ?, dominant_activity = ? WHERE id = ?",
            (t, t, t, t, json.dumps(dict(counts)), dominant, visit_id))

    def end_at_last_seen(self, conn: Conn, ids: Sequence[int]) -> None:
        """Close visits at their last sighting."""
        for chunk in chunks(ids):
            conn.execute(f"UPDATE visits SET ended = last_seen WHERE id IN ({in_marks(chunk)})",
                         chunk)

    def open(self, conn: Conn, person_id: int, t: float, *, location: str, robot_id: str,
             counts: Mapping[str, int], activity: str) -> int:
        """Start a visit; returns its id."""
        return self.db.insert_id(
            conn, "INSERT INTO visits (person_id, started, last_seen, ended, location, "
            "robot_id, activity_counts, dominant_activity) VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
            (person_id, t, t, location, robot_id, json.dumps(dict(counts)), activity))

    def close(self, conn: Conn, visit_id: int, end: float) -> None:
        """Close a visit at ``end`` (its last sighting no later than that)."""
        conn.execute("UPDATE visits SET ended = ?, last_seen = ? WHERE id = ?",
                     (end, end, visit_id))

    def stale(self, conn: Conn, before: float, robot_id: str | None) -> list[int]:
        """Open visits last seen before ``before`` (of one robot, or of every robot)."""
        if robot_id is None:
            return [int(r[0]) for r in conn.execute(
                "SELECT id FROM visits WHERE ended IS NULL AND last_seen < ?", (before,))]
        return [int(r[0]) for r in conn.execute(
            "SELECT id FROM visits WHERE ended IS NULL AND last_seen < ? AND robot_id = ?",
            (before, robot_id))]

    def list(self, conn: Conn, person_id: int | None, limit: int) -> list[VisitRecord]:
        """Visits newest first, of one person or everybody; limit 0 = all."""
        sql = f"SELECT {_COLS} FROM visits v JOIN persons p ON p.id = v.person_id"
        args: list[Any] = []
        if person_id is not None:
            args.append(person_id)
            sql += " WHERE v.person_id = ?"
        sql += " ORDER BY v.started DESC, v.id DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        return [_record(r) for r in conn.execute(sql, args)]

    def move_all(self, conn: Conn, source: int, target: int) -> None:
        """Give every visit of ``source`` to ``target``."""
        conn.execute("UPDATE visits SET person_id = ? WHERE person_id = ?", (target, source))

    def delete_of_person(self, conn: Conn, person_id: int) -> None:
        """Delete every visit of a person."""
        conn.execute("DELETE FROM visits WHERE person_id = ?", (person_id,))

    def delete_ended_before(self, conn: Conn, t: float) -> int:
        """Delete finished visits that ended before ``t``; returns how many."""
        return int(conn.execute("DELETE FROM visits WHERE ended IS NOT NULL AND ended < ?",
                                (t,)).rowcount)

    def count(self, conn: Conn) -> int:
        """How many visits."""
        return int(conn.execute("SELECT COUNT(*) FROM visits").fetchone()[0])
