"""Persons: rows, counts, names (the ``persons`` table)."""

from __future__ import annotations

from ..database import Conn
from ..errors import NotFoundError
from ..records import PersonRecord
from ..rules import PersonRow
from ..validation import name_key, validate_id
from .base import Repository


class PersonRepository(Repository):
    """Rows of persons and the counts a PersonRecord carries."""

    def row(self, conn: Conn, person_id: object) -> PersonRow:
        """One person's columns; NotFoundError when absent."""
        pid = validate_id(person_id, "person id")
        r = conn.execute("SELECT id, name, created, never_remember FROM persons WHERE id = ?",
                         (pid,)).fetchone()
        if r is None:
            raise NotFoundError(f"person {pid} does not exist")
        return PersonRow(int(r[0]), str(r[1]), float(r[2]), bool(r[3]))

    def find(self, conn: Conn, person_id: int) -> PersonRow | None:
        """One person's columns, or None when absent."""
        r = conn.execute("SELECT id, name, created, never_remember FROM persons WHERE id = ?",
                         (int(person_id),)).fetchone()
        return None if r is None else PersonRow(int(r[0]), str(r[1]), float(r[2]), bool(r[3]))

    def record(self, conn: Conn, person: PersonRow) -> PersonRecord:
        """A person with face and visit counts and first/last seen."""
        pid = person.person_id
        e = conn.execute("SELECT COUNT(*), MIN(created), MAX(created) FROM embeddings "
                         "WHERE person_id = ?", (pid,)).fetchone()
        v = conn.execute("SELECT COUNT(*), MIN(started), MAX(COALESCE(ended, last_seen)) "
                         "FROM visits WHERE person_id = ?", (pid,)).fetchone()
        firsts = [x for x in (e[1], v[1]) if x is not None]
        lasts = [x for x in (e[2], v[2]) if x is not None]
        return PersonRecord(
            person_id=pid, name=person.name, created=person.created,
            never_remember=person.never_remember, num_embeddings=int(e[0]),
            num_visits=int(v[0]),
            first_seen=float(min(firsts)) if firsts else 0.0,
            last_seen=float(max(lasts)) if lasts else 0.0,
        )

    def name_owner(self, conn: Conn, name: str) -> int | None:
        """The person who has ``name`` (case-insensitive, NFC), or None."""
        row = conn.execute("SELECT id FROM persons WHERE name_key = ?",
                           (name_key(name),)).fetchone()
        return None if row is None else int(row[0])

    def insert(self, conn: Conn, name: str, never_remember: bool, t: float) -> int:
        """Insert a person (the unique name key refuses a duplicate); returns the id."""
        return self.db.insert_id(
            conn, "INSERT INTO persons (name, name_key, created, never_remember) "
            "VALUES (?, ?, ?, ?)", (name, name_key(name), t, int(bool(never_remember))))

    def all_rows(self, conn: Conn) -> list[tuple[PersonRow, str]]:
        """Every person with its name key, ordered by name key then id."""
        return [(PersonRow(int(r[0]), str(r[1]), float(r[2]), bool(r[3])), str(r[4]))
                for r in conn.execute("SELECT id, name, created, never_remember, name_key "
                                      "FROM persons ORDER BY name_key, id").fetchall()]

    def rename(self, conn: Conn, person_id: int, name: str) -> None:
        """Set a person's name."""
        conn.execute("UPDATE persons SET name = ?, name_key = ? WHERE id = ?",
                     (name, name_key(name), person_id))

    def set_never_remember(self, conn: Conn, person_id: int, never: bool) -> None:
        """Opt a person out (or back in)."""
        conn.execute("UPDATE persons SET never_remember = ? WHERE id = ?",
                     (int(bool(never)), person_id))

    def delete(self, conn: Conn, person_id: int) -> None:
        """Delete a person's row."""
        conn.execute("DELETE FROM persons WHERE id = ?", (person_id,))

    def ids_and_names(self, conn: Conn) -> dict[int, str]:
        """``{person id: name}`` of everybody."""
        return {int(r[0]): r[1] for r in conn.execute("SELECT id, name FROM persons")}

    def opted_out(self, conn: Conn) -> frozenset[int]:
        """The persons who asked never to be remembered."""
        return frozenset(int(r[0]) for r in conn.execute(
            "SELECT id FROM persons WHERE never_remember = 1"))

    def count(self, conn: Conn) -> int:
        """How many persons."""
        return int(conn.execute("SELECT COUNT(*) FROM persons").fetchone()[0])
