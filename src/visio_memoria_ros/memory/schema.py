"""SQLite schema as an ordered list of migrations; ``PRAGMA user_version`` = the last applied.

Never edit a released migration: append a new one. Each runs in its own transaction, so a
failure leaves the file at the previous version.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One schema step: SQL statements, then an optional Python step, in one transaction."""

    version: int
    description: str
    statements: Sequence[str]
    python: Callable[[sqlite3.Connection], None] | None = None


_V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO meta (key, value) VALUES ('revision', '0'), ('next_face_id', '1'), "
    "('next_cluster_id', '0')",
    """CREATE TABLE persons (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        never_remember INTEGER NOT NULL DEFAULT 0 CHECK (never_remember IN (0, 1)))""",
    # Face ids are shared by embeddings and unknowns (allocated from meta.next_face_id), so a
    # face keeps its id when it moves between the two tables.
    """CREATE TABLE embeddings (
        id INTEGER PRIMARY KEY,
        person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        vector BLOB NOT NULL,
        dim INTEGER NOT NULL CHECK (dim > 0),
        embedder TEXT NOT NULL,
        quality REAL NOT NULL DEFAULT 0,
        crop BLOB,
        created REAL NOT NULL,
        source TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE unknowns (
        id INTEGER PRIMARY KEY,
        vector BLOB NOT NULL,
        dim INTEGER NOT NULL CHECK (dim > 0),
        embedder TEXT NOT NULL,
        quality REAL NOT NULL DEFAULT 0,
        crop BLOB,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        cluster_id INTEGER NOT NULL DEFAULT -1)""",
    """CREATE TABLE visits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        started REAL NOT NULL,
        last_seen REAL NOT NULL,
        ended REAL,
        location TEXT NOT NULL DEFAULT '',
        robot_id TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE negative_links (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        face_id INTEGER NOT NULL,
        created REAL NOT NULL)""",
)

_V2 = (
    "ALTER TABLE visits ADD COLUMN activity_counts TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE visits ADD COLUMN dominant_activity TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE unknowns ADD COLUMN track_key TEXT NOT NULL DEFAULT ''",
    # Negative links may now name an unknown cluster instead of one face.
    """CREATE TABLE negative_links_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        face_id INTEGER,
        cluster_id INTEGER,
        created REAL NOT NULL,
        CHECK ((face_id IS NULL) != (cluster_id IS NULL)),
        UNIQUE (person_id, face_id),
        UNIQUE (person_id, cluster_id))""",
    "INSERT OR IGNORE INTO negative_links_v2 (id, person_id, face_id, cluster_id, created) "
    "SELECT id, person_id, face_id, NULL, created FROM negative_links",
    "DROP TABLE negative_links",
    "ALTER TABLE negative_links_v2 RENAME TO negative_links",
    """CREATE TABLE events (
        revision INTEGER PRIMARY KEY,
        stamp REAL NOT NULL,
        kind TEXT NOT NULL,
        person_ids TEXT NOT NULL DEFAULT '[]',
        message TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE embedders (
        id TEXT PRIMARY KEY,
        dim INTEGER NOT NULL CHECK (dim > 0),
        first_seen REAL NOT NULL)""",
    "INSERT OR IGNORE INTO embedders (id, dim, first_seen) "
    "SELECT embedder, dim, MIN(created) FROM embeddings GROUP BY embedder, dim",
    "INSERT OR IGNORE INTO embedders (id, dim, first_seen) "
    "SELECT embedder, dim, MIN(first_seen) FROM unknowns GROUP BY embedder, dim",
    "CREATE INDEX embeddings_person ON embeddings (person_id)",
    "CREATE INDEX embeddings_embedder ON embeddings (embedder)",
    "CREATE INDEX unknowns_cluster ON unknowns (embedder, cluster_id)",
    "CREATE INDEX unknowns_track ON unknowns (track_key)",
    "CREATE INDEX unknowns_last_seen ON unknowns (last_seen)",
    "CREATE INDEX visits_person ON visits (person_id, started)",
    "CREATE INDEX visits_open ON visits (person_id, robot_id, ended)",
    "CREATE INDEX negative_person ON negative_links (person_id)",
    "CREATE INDEX negative_face ON negative_links (face_id)",
)

_V3 = (
    # Several robots may share one memory (see the PostgreSQL store): which robot saw a face.
    "ALTER TABLE unknowns ADD COLUMN robot_id TEXT NOT NULL DEFAULT ''",
)

_V4 = (
    # Which faces a user was shown: every change of a face's cluster takes the next value of
    # meta.cluster_seq, so "the cluster as listed" is its members up to the listed sequence.
    "ALTER TABLE unknowns ADD COLUMN cluster_seq INTEGER NOT NULL DEFAULT 0",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('cluster_seq', '0')",
    # "Maybe <person>?": a face in the uncertain band of an enrolled person waits for the
    # user's yes or no instead of joining the clusters of strangers (-1 = no candidate).
    "ALTER TABLE unknowns ADD COLUMN candidate_id INTEGER NOT NULL DEFAULT -1",
    "ALTER TABLE unknowns ADD COLUMN candidate_similarity REAL",
    "CREATE INDEX unknowns_candidate ON unknowns (candidate_id)",
    # Faces a user moved into a cluster of their own ("split"): re-clustering leaves them.
    "ALTER TABLE unknowns ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
    # Crops a user rejected as "not a face": the embedding only, no crop.
    """CREATE TABLE non_faces (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        vector BLOB NOT NULL,
        dim INTEGER NOT NULL CHECK (dim > 0),
        embedder TEXT NOT NULL,
        created REAL NOT NULL,
        source TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX non_faces_embedder ON non_faces (embedder)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "persons, embeddings, unknowns, visits, negative links", _V1),
    Migration(2, "visit activities, unknown track keys, cluster negatives, events, embedders,"
              " indexes", _V2),
    Migration(3, "the robot that saw each unknown face", _V3),
    Migration(4, "cluster sequence of unknown faces, 'maybe <person>' candidates, faces split "
              "by hand, non-face examples", _V4),
)

LATEST_VERSION = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the file's ``PRAGMA user_version``."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Apply pending migrations up to ``target`` (default: latest); returns the new version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises RuntimeError when
    the file was written by a newer version of this software.
    """
    target = LATEST_VERSION if target is None else target
    current = schema_version(conn)
    if current > LATEST_VERSION:
        raise RuntimeError(
            f"the memory file has schema version {current}, newer than this software "
            f"understands ({LATEST_VERSION}); upgrade visio_memoria"
        )
    for step in MIGRATIONS:
        if step.version <= current or step.version > target:
            continue
        LOG.info("migrating memory schema to v%d: %s", step.version, step.description)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql in step.statements:
                conn.execute(sql)
            if step.python is not None:
                step.python(conn)
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = step.version
    return current
