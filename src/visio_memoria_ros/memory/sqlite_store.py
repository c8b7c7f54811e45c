"""``SQLiteStore``: the embedded ``MemoryStore`` (one file, one writer: the memory node).

Durability: WAL journal with ``synchronous=FULL`` by default. Writes are rare (labels, a few
unknown faces a second, visit updates), so an fsync per commit costs little, and FULL makes
every committed change survive a power cut: a robot's battery can die at any moment, and a
"forget me" that is undone by a power loss would be a privacy failure. ``NORMAL`` (still
corruption-safe in WAL mode, may lose the last commits on power loss) is available for slow
storage. ``secure_delete=ON`` overwrites deleted rows with zeros, and operations that delete
personal data end with a WAL checkpoint (TRUNCATE) so no copy stays in the -wal file.

Threads: one connection guarded by a lock; every operation holds it, so calls from several
threads (service handlers, topic callbacks, timers) are serialised.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from . import clustering
from .base import EmbedFn, MemoryStore
from .codec import CropCodec, blob_to_vector, vector_to_blob
from .errors import (
    ConflictError,
    MemoryStoreError,
    NotFoundError,
    OptedOutError,
    StoreUnavailable,
)
from .privacy import BlobCipher, load_key, restrict_existing, secure_dir, secure_file
from .records import (
    PENDING,
    ClusterSummary,
    EmbeddingRecord,
    Gallery,
    GalleryEntry,
    GalleryNegative,
    LabelResult,
    MemoryEventRecord,
    PersonRecord,
    PurgeReport,
    ReembedReport,
    StoreStats,
    UnknownRecord,
    VisitRecord,
)
from .schema import LATEST_VERSION, migrate, schema_version
from .validation import (
    name_key,
    validate_embedder,
    validate_id,
    validate_ids,
    validate_label,
    validate_name,
    validate_quality,
    validate_time,
    validate_vector,
)

LOG = logging.getLogger(__name__)

DAY = 86400.0
_KEY_CHECK = b"visio_memoria key check"


@dataclass(frozen=True)
class StoreOptions:
    """Behaviour of a SQLiteStore (mirrors the memory_node parameters)."""

    crop_format: str = "jpeg"
    crop_quality: int = 90
    store_crops: bool = True
    synchronous: str = "FULL"
    robot_id: str = "robot"
    visit_absence: float = 30.0
    cluster: clustering.ClusterParams = field(default_factory=clustering.ClusterParams)
    max_unknowns_per_track: int = 5
    unknown_retention_days: float = 30.0
    visit_retention_days: float = 365.0
    max_events: int = 10000
    busy_timeout: float = 5.0
    read_only: bool = False

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {self.synchronous}")
        CropCodec(self.crop_format, self.crop_quality)
        if self.visit_absence <= 0:
            raise ValueError(f"visit_absence must be > 0, got {self.visit_absence}")
        if self.max_unknowns_per_track < 1:
            raise ValueError("max_unknowns_per_track must be >= 1")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> StoreOptions:
        """The options memory_node parameters describe (see config/memory.py)."""
        cluster = clustering.ClusterParams(
            similarity=float(params.get("cluster_similarity", 0.75)),
            min_size=int(params.get("cluster_min_size", 3)),
            method=str(params.get("cluster_method", "agglomerative")),
            max_items=int(params.get("recluster_max_unknowns", 4000)),
        )
        return cls(
            crop_format=str(params.get("crop_format", "jpeg")),
            crop_quality=int(params.get("crop_quality", 90)),
            store_crops=bool(params.get("store_crops", True)),
            synchronous=str(params.get("synchronous", "FULL")),
            robot_id=str(params.get("robot_id", "robot")),
            visit_absence=float(params.get("visit_absence", 30.0)),
            cluster=cluster,
            max_unknowns_per_track=int(params.get("max_unknowns_per_track", 5)),
            unknown_retention_days=float(params.get("unknown_retention_days", 30.0)),
            visit_retention_days=float(params.get("visit_retention_days", 365.0)),
            read_only=bool(params.get("read_only", False)),
        )


@dataclass
class _UnknownIndex:
    """In-memory copy of one embedder's unknown vectors, for incremental clustering."""

    ids: list[int]
    vectors: np.ndarray
    clusters: list[int]


def _unavailable(exc: BaseException) -> StoreUnavailable:
    """Translate an sqlite3 error into a StoreUnavailable with a reason."""
    text = str(exc)
    low = text.lower()
    if "readonly" in low or "read-only" in low or "read only" in low:
        reason, what = "read_only", "the memory file is read-only"
    elif "full" in low:
        reason, what = "disk_full", "the disk is full"
    elif "i/o" in low:
        reason, what = "io_error", "a disk I/O error occurred"
    elif "locked" in low or "busy" in low:
        reason, what = "locked", "another process holds the memory file locked"
    elif "malformed" in low or "not a database" in low:
        reason, what = "corrupt", "the memory file is corrupt"
    else:
        reason, what = "unavailable", "the memory file cannot be written"
    return StoreUnavailable(f"{what} ({text}); nothing was changed, reads still work",
                            reason=reason)


class SQLiteStore(MemoryStore):
    """MemoryStore in one SQLite file (WAL, foreign keys, secure delete, migrations)."""

    def __init__(
        self,
        path: str | Path,
        options: StoreOptions | None = None,
        *,
        key: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path).expanduser()
        self.options = options or StoreOptions()
        self._clock = clock
        self._lock = threading.RLock()
        self._codec = CropCodec(self.options.crop_format, self.options.crop_quality)
        self._cipher = BlobCipher(key)
        self._unknown_cache: dict[str, _UnknownIndex] = {}
        self._data_version = -1
        self._writable = not self.options.read_only
        self._closed = False
        self._conn = self._open()

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def from_params(cls, params: Mapping[str, Any], *,
                    clock: Callable[[], float] = time.time) -> SQLiteStore:
        """Open the store described by memory_node parameters (see config/memory.py)."""
        data_dir = Path(str(params.get("data_dir", "~/.local/share/visio_memoria"))).expanduser()
        db_path = str(params.get("db_path", "") or "")
        path = Path(db_path).expanduser() if db_path else data_dir / "memory.db"
        if not path.is_absolute():
            path = data_dir / path
            if not path.resolve().is_relative_to(data_dir.resolve()):
                raise StoreUnavailable(f"db_path {db_path!r} points outside data_dir "
                                       f"{data_dir}; give an absolute path to mean that",
                                       reason="unavailable")
        if not params.get("read_only", False):
            secure_dir(data_dir)
        options = StoreOptions.from_params(params)
        key = load_key(str(params.get("encryption_key_file", "") or ""),
                       str(params.get("encryption_key_env", "") or ""))
        return cls(path, options, key=key, clock=clock)

    def set_options(self, options: StoreOptions) -> None:
        """Change the store's behaviour at run time; every write from now on follows it.

        Crop storage, crop format and quality, robot id, visit gap, clustering, per-track
        limit and retention may change; the file's durability and read-only mode may not.
        """
        if (options.synchronous.upper() != self.options.synchronous.upper()
                or options.read_only != self.options.read_only):
            raise ValueError("synchronous and read_only apply only when the store is opened")
        codec = CropCodec(options.crop_format, options.crop_quality)
        with self._lock:
            self._codec = codec
            self.options = options

    def _connect(self, read_only: bool) -> sqlite3.Connection:
        timeout = self.options.busy_timeout
        if read_only:
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=timeout)
            if not self._wal_readable(conn):
                # A WAL file on read-only media without its -shm: SQLite cannot create the
                # shared-memory file, so open it immutable (nobody can write it there).
                conn.close()
                LOG.warning("%s is on a read-only file system: opened immutable", self.path)
                conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None,
                                       check_same_thread=False, timeout=timeout)
        else:
            conn = sqlite3.connect(str(self.path), isolation_level=None,
                                   check_same_thread=False, timeout=timeout)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        return conn

    def _wal_readable(self, conn: sqlite3.Connection) -> bool:
        """False when a read-only connection cannot read (WAL without -shm, read-only dir)."""
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            shm = Path(f"{self.path}-shm")
            if shm.exists() or os.access(self.path.parent, os.W_OK):
                raise _unavailable(exc) from exc
            return False
        return True

    def _open(self) -> sqlite3.Connection:
        exists = self.path.exists()
        if self._writable and exists and not os.access(self.path, os.W_OK):
            LOG.warning("memory file %s is not writable: opening it read-only", self.path)
            self._writable = False
        if not self._writable and not exists:
            raise StoreUnavailable(f"the memory file {self.path} does not exist",
                                   reason="unavailable")
        try:
            conn = self._open_once()
        except StoreUnavailable as exc:
            if not (self._writable and exists and exc.reason == "read_only"):
                raise
            LOG.warning("memory file %s cannot be written (%s): opening it read-only",
                        self.path, exc)
            self._writable = False
            conn = self._open_once()
        self._check_key(conn)
        LOG.info("memory store %s open (schema v%d, %s, %s)", self.path, LATEST_VERSION,
                 "writable" if self._writable else "read-only",
                 "encrypted blobs" if self._cipher.enabled else "plain blobs")
        return conn

    def _open_once(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            if self._writable:
                if not self.path.parent.exists():
                    secure_dir(self.path.parent)
                secure_file(self.path)
            conn = self._connect(read_only=not self._writable)
            if self._writable:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    LOG.warning("could not switch %s to WAL (journal_mode=%s)", self.path, mode)
                sync = self.options.synchronous.upper()
                conn.execute(f"PRAGMA synchronous = {sync}")
                migrate(conn)
                for suffix in ("-wal", "-shm"):
                    restrict_existing(f"{self.path}{suffix}")
            else:
                version = schema_version(conn)
                if version != LATEST_VERSION:
                    raise StoreUnavailable(
                        f"the read-only memory file {self.path} has schema v{version}, this "
                        f"software needs v{LATEST_VERSION}; open it writable once to migrate",
                        reason="version",
                    )
            return conn
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, StoreUnavailable):
                raise
            if isinstance(exc, PermissionError):
                raise StoreUnavailable(f"cannot open {self.path}: {exc}",
                                       reason="read_only") from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise _unavailable(exc) from exc
            if isinstance(exc, RuntimeError):
                raise StoreUnavailable(str(exc), reason="version") from exc
            raise

    def _check_key(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None:
            if self._cipher.enabled and self._writable:
                token = self._cipher.encrypt(_KEY_CHECK, "key_check").hex()
                conn.execute("INSERT INTO meta (key, value) VALUES ('key_check', ?)", (token,))
            return
        if not self._cipher.enabled:
            conn.close()
            raise StoreUnavailable(
                f"{self.path} holds encrypted faces but no encryption key is configured "
                "(encryption_key_file or encryption_key_env)",
                reason="encryption",
            )
        try:
            ok = self._cipher.decrypt(bytes.fromhex(row[0]), "key_check") == _KEY_CHECK
        except StoreUnavailable:
            ok = False
        if not ok:
            conn.close()
            raise StoreUnavailable(
                f"the configured encryption key does not open {self.path} (wrong key?)",
                reason="encryption",
            )

    # -- plumbing --------------------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint and close the database connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._writable:
                    self._conn.execute("PRAGMA optimize")
            except sqlite3.Error as exc:
                LOG.debug("PRAGMA optimize failed: %s", exc)
            self._conn.close()

    @property
    def writable(self) -> bool:
        """False when the store was opened read-only."""
        return self._writable

    @property
    def encrypted(self) -> bool:
        """True when crops and vectors are encrypted at rest."""
        return self._cipher.enabled

    def _now(self, t: float | None) -> float:
        return self._clock() if t is None else validate_time(t)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the memory store is closed", reason="unavailable")
            try:
                yield self._conn
            except sqlite3.DatabaseError as exc:
                raise _unavailable(exc) from exc

    @contextmanager
    def _tx(self, *, keep_cache: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it (then re-raise)."""
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the memory store is closed", reason="unavailable")
            if not self._writable:
                raise StoreUnavailable(
                    f"the memory file {self.path} is open read-only; nothing was changed",
                    reason="read_only",
                )
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise _unavailable(exc) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                self._unknown_cache.clear()
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error as rb_exc:  # pragma: no cover - rollback itself failed
                    LOG.error("rollback failed: %s", rb_exc)
                if isinstance(exc, sqlite3.IntegrityError):
                    raise ConflictError(f"the change contradicts stored data: {exc}") from exc
                if isinstance(exc, sqlite3.DatabaseError):
                    raise _unavailable(exc) from exc
                raise
            if not keep_cache:
                self._unknown_cache.clear()

    def _checkpoint(self) -> None:
        """Move the WAL into the main file and truncate it (no deleted data left there)."""
        try:
            with self._read() as conn:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                LOG.warning("WAL checkpoint incomplete: another reader holds %s", self.path)
        except StoreUnavailable as exc:
            LOG.warning("WAL checkpoint failed: %s", exc)

    def checkpoint(self) -> None:
        """Flush the write-ahead log into the database file and truncate it."""
        self._checkpoint()

    def vacuum(self) -> None:
        """Rebuild the file to release free pages (slow; run when idle)."""
        with self._lock:
            if not self._writable:
                raise StoreUnavailable("the memory file is open read-only", reason="read_only")
            try:
                self._conn.execute("VACUUM")
            except sqlite3.DatabaseError as exc:
                raise _unavailable(exc) from exc
        self._checkpoint()

    # -- small helpers (called with the lock held) -----------------------------------------
    def _meta_int(self, conn: sqlite3.Connection, key: str) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, conn: sqlite3.Connection, key: str, value: int) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))

    def _alloc_face_id(self, conn: sqlite3.Connection) -> int:
        face_id = self._meta_int(conn, "next_face_id")
        self._set_meta(conn, "next_face_id", face_id + 1)
        return face_id

    def _alloc_cluster_id(self, conn: sqlite3.Connection) -> int:
        cid = self._meta_int(conn, "next_cluster_id")
        self._set_meta(conn, "next_cluster_id", cid + 1)
        return cid

    def _bump(self, conn: sqlite3.Connection, kind: str, person_ids: Sequence[int],
              message: str) -> int:
        """Increase the revision and record the event (ids only, never names)."""
        revision = self._meta_int(conn, "revision") + 1
        self._set_meta(conn, "revision", revision)
        conn.execute(
            "INSERT INTO events (revision, stamp, kind, person_ids, message) "
            "VALUES (?, ?, ?, ?, ?)",
            (revision, self._clock(), kind, json.dumps([int(p) for p in person_ids]), message),
        )
        return revision

    def _person_row(self, conn: sqlite3.Connection, person_id: object) -> sqlite3.Row | tuple:
        pid = validate_id(person_id, "person id")
        row = conn.execute("SELECT id, name, created, never_remember FROM persons WHERE id = ?",
                           (pid,)).fetchone()
        if row is None:
            raise NotFoundError(f"person {pid} does not exist")
        return row

    def _name_owner(self, conn: sqlite3.Connection, name: str) -> int | None:
        row = conn.execute("SELECT id FROM persons WHERE name_key = ?",
                           (name_key(name),)).fetchone()
        return None if row is None else int(row[0])

    def _insert_person(self, conn: sqlite3.Connection, name: str, never_remember: bool,
                       t: float) -> int:
        owner = self._name_owner(conn, name)
        if owner is not None:
            raise ConflictError(f"a person with that name already exists (person {owner})")
        cur = conn.execute(
            "INSERT INTO persons (name, name_key, created, never_remember) VALUES (?, ?, ?, ?)",
            (name, name_key(name), t, int(bool(never_remember))),
        )
        return int(cur.lastrowid)

    def _register_embedder(self, conn: sqlite3.Connection, embedder: str, dim: int,
                           t: float) -> None:
        row = conn.execute("SELECT dim FROM embedders WHERE id = ?", (embedder,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO embedders (id, dim, first_seen) VALUES (?, ?, ?)",
                         (embedder, dim, t))
        elif int(row[0]) != dim:
            raise MemoryStoreError(
                f"embedder {embedder!r} makes {int(row[0])}-d vectors; this one has {dim}"
            )

    def _embedder_dim(self, conn: sqlite3.Connection, embedder: str) -> int | None:
        row = conn.execute("SELECT dim FROM embedders WHERE id = ?", (embedder,)).fetchone()
        return None if row is None else int(row[0])

    def _enc_vector(self, v: np.ndarray) -> bytes:
        return self._cipher.encrypt(vector_to_blob(v), "vector")

    def _dec_vector(self, blob: bytes, dim: int) -> np.ndarray:
        return blob_to_vector(self._cipher.decrypt(blob, "vector"), dim)

    def _enc_crop(self, crop: np.ndarray | None) -> bytes | None:
        if crop is None or not self.options.store_crops:
            return None
        return self._cipher.encrypt(self._codec.encode(crop), "crop")

    def _dec_crop(self, blob: bytes | None) -> np.ndarray | None:
        if blob is None:
            return None
        return self._codec.decode(self._cipher.decrypt(blob, "crop"))

    def _face_ids_of(self, conn: sqlite3.Connection, person_id: int) -> list[int]:
        return [int(r[0]) for r in conn.execute(
            "SELECT id FROM embeddings WHERE person_id = ? ORDER BY id", (person_id,))]

    @staticmethod
    def _in(ids: Sequence[int]) -> str:
        return ",".join("?" * len(ids))

    def _delete_face_negatives(self, conn: sqlite3.Connection, face_ids: Sequence[int]) -> None:
        for chunk in _chunks(face_ids):
            conn.execute(f"DELETE FROM negative_links WHERE face_id IN ({self._in(chunk)})",
                         chunk)

    # -- persons ---------------------------------------------------------------------------
    def _person_record(self, conn: sqlite3.Connection, row: Sequence[Any]) -> PersonRecord:
        pid = int(row[0])
        e = conn.execute("SELECT COUNT(*), MIN(created), MAX(created) FROM embeddings "
                         "WHERE person_id = ?", (pid,)).fetchone()
        v = conn.execute("SELECT COUNT(*), MIN(started), MAX(COALESCE(ended, last_seen)) "
                         "FROM visits WHERE person_id = ?", (pid,)).fetchone()
        firsts = [x for x in (e[1], v[1]) if x is not None]
        lasts = [x for x in (e[2], v[2]) if x is not None]
        return PersonRecord(
            person_id=pid, name=str(row[1]), created=float(row[2]),
            never_remember=bool(row[3]), num_embeddings=int(e[0]), num_visits=int(v[0]),
            first_seen=float(min(firsts)) if firsts else 0.0,
            last_seen=float(max(lasts)) if lasts else 0.0,
        )

    def create_person(self, name: str, *, never_remember: bool = False,
                      t: float | None = None) -> PersonRecord:
        """Create a person; refuses a name another person already has."""
        name = validate_name(name)
        now = self._now(t)
        with self._tx() as conn:
            pid = self._insert_person(conn, name, never_remember, now)
            self._bump(conn, "labelled", [pid], f"person {pid} created")
            record = self._person_record(conn, self._person_row(conn, pid))
        LOG.info("created person %d", pid)
        return record

    def get_person(self, person_id: int) -> PersonRecord:
        """Return one person with counts; NotFoundError when absent."""
        with self._read() as conn:
            return self._person_record(conn, self._person_row(conn, person_id))

    def find_person(self, name: str) -> PersonRecord | None:
        """Return the person with this name (case-insensitive), or None."""
        name = validate_name(name)
        with self._read() as conn:
            pid = self._name_owner(conn, name)
            return None if pid is None else self._person_record(conn, self._person_row(conn, pid))

    def list_persons(self, name_filter: str = "") -> list[PersonRecord]:
        """Return persons whose name contains ``name_filter`` (case-insensitive), by name."""
        if not isinstance(name_filter, str):
            raise MemoryStoreError("the name filter must be text")
        needle = name_key(name_filter.strip())
        with self._read() as conn:
            rows = conn.execute("SELECT id, name, created, never_remember, name_key "
                                "FROM persons ORDER BY name_key, id").fetchall()
            return [self._person_record(conn, r) for r in rows if needle in r[4]]

    def rename_person(self, person_id: int, name: str) -> PersonRecord:
        """Rename a person; refuses a name another person has."""
        name = validate_name(name)
        with self._tx() as conn:
            row = self._person_row(conn, person_id)
            pid = int(row[0])
            owner = self._name_owner(conn, name)
            if owner is not None and owner != pid:
                raise ConflictError(f"person {owner} already has that name; merge the two "
                                    "persons instead")
            conn.execute("UPDATE persons SET name = ?, name_key = ? WHERE id = ?",
                         (name, name_key(name), pid))
            self._bump(conn, "renamed", [pid], f"person {pid} renamed")
            record = self._person_record(conn, self._person_row(conn, pid))
        LOG.info("renamed person %d", pid)
        return record

    def merge_persons(self, source_id: int, target_id: int) -> int:
        """Move everything of ``source_id`` to ``target_id``, delete the source; returns #moved."""
        with self._tx() as conn:
            src = self._person_row(conn, source_id)
            dst = self._person_row(conn, target_id)
            s, d = int(src[0]), int(dst[0])
            if s == d:
                raise ConflictError(f"cannot merge person {s} into itself")
            moved = conn.execute("UPDATE embeddings SET person_id = ? WHERE person_id = ?",
                                 (d, s)).rowcount
            conn.execute("UPDATE visits SET person_id = ? WHERE person_id = ?", (d, s))
            conn.execute("UPDATE OR IGNORE negative_links SET person_id = ? WHERE person_id = ?",
                         (d, s))
            conn.execute("DELETE FROM negative_links WHERE person_id = ?", (s,))
            # A negative link of the merged person to one of its own faces contradicts itself.
            conn.execute("DELETE FROM negative_links WHERE person_id = ? AND face_id IN "
                         "(SELECT id FROM embeddings WHERE person_id = ?)", (d, d))
            if src[3] and not dst[3]:
                conn.execute("UPDATE persons SET never_remember = 1 WHERE id = ?", (d,))
            conn.execute("DELETE FROM persons WHERE id = ?", (s,))
            self._bump(conn, "merged", [s, d], f"person {s} merged into person {d} "
                       f"({moved} embeddings)")
        LOG.info("merged person %d into %d (%d embeddings)", s, d, moved)
        return int(moved)

    def _check_own_embeddings(self, conn: sqlite3.Connection, pid: int,
                              ids: Sequence[int]) -> None:
        owners: dict[int, int] = {}
        for chunk in _chunks(ids):
            owners.update((int(r[0]), int(r[1])) for r in conn.execute(
                f"SELECT id, person_id FROM embeddings WHERE id IN ({self._in(chunk)})", chunk))
        missing = [i for i in ids if i not in owners]
        if missing:
            raise NotFoundError(f"embedding(s) {_fmt_ids(missing)} do not exist")
        foreign = [i for i in ids if owners[i] != pid]
        if foreign:
            raise ConflictError(f"embedding(s) {_fmt_ids(foreign)} do not belong to person {pid}")

    def split_person(self, person_id: int, embedding_ids: Sequence[int],
                     new_name: str) -> PersonRecord:
        """Move the given embeddings of ``person_id`` to a new person called ``new_name``."""
        new_name = validate_name(new_name)
        ids = validate_ids(embedding_ids, "embedding id")
        now = self._clock()
        with self._tx() as conn:
            row = self._person_row(conn, person_id)
            pid = int(row[0])
            self._check_own_embeddings(conn, pid, ids)
            new_id = self._insert_person(conn, new_name, bool(row[3]), now)
            for chunk in _chunks(ids):
                conn.execute(f"UPDATE embeddings SET person_id = ? WHERE id IN "
                             f"({self._in(chunk)})", (new_id, *chunk))
            self._bump(conn, "split", [pid, new_id],
                       f"{len(ids)} embeddings of person {pid} split into person {new_id}")
            record = self._person_record(conn, self._person_row(conn, new_id))
        LOG.info("split %d embeddings of person %d into person %d", len(ids), pid, new_id)
        return record

    def not_this_person(self, person_id: int, embedding_ids: Sequence[int] = (),
                        unknown_cluster_id: int = -1) -> int:
        """Move embeddings back to the unknowns and record negative links; returns #moved."""
        ids = validate_ids(embedding_ids, "embedding id") if len(embedding_ids) else []
        cluster = int(unknown_cluster_id)
        if not ids and cluster < 0:
            raise MemoryStoreError("give the embedding ids that are not this person, or an "
                                   "unknown cluster id (>= 0)")
        now = self._clock()
        with self._tx() as conn:
            pid = int(self._person_row(conn, person_id)[0])
            if ids:
                self._check_own_embeddings(conn, pid, ids)
                for chunk in _chunks(ids):
                    marks = self._in(chunk)
                    conn.execute(
                        "INSERT INTO unknowns (id, vector, dim, embedder, quality, crop, "
                        "first_seen, last_seen, cluster_id, track_key) SELECT id, vector, dim, "
                        f"embedder, quality, crop, created, created, {PENDING}, '' "
                        f"FROM embeddings WHERE id IN ({marks})", chunk)
                    conn.execute(f"DELETE FROM embeddings WHERE id IN ({marks})", chunk)
                conn.executemany(
                    "INSERT OR IGNORE INTO negative_links (person_id, face_id, created) "
                    "VALUES (?, ?, ?)", [(pid, i, now) for i in ids])
            if cluster >= 0:
                n = conn.execute("SELECT COUNT(*) FROM unknowns WHERE cluster_id = ?",
                                 (cluster,)).fetchone()[0]
                if n == 0:
                    raise NotFoundError(f"unknown cluster {cluster} does not exist")
                conn.execute("INSERT OR IGNORE INTO negative_links (person_id, cluster_id, "
                             "created) VALUES (?, ?, ?)", (pid, cluster, now))
            self._bump(conn, "not_this_person", [pid],
                       f"{len(ids)} embeddings moved out of person {pid}"
                       + (f"; cluster {cluster} is not person {pid}" if cluster >= 0 else ""))
        LOG.info("not person %d: moved %d embeddings, cluster %d", pid, len(ids), cluster)
        return len(ids)

    def forget_person(self, person_id: int) -> None:
        """Delete every trace of a person: row, embeddings, crops, visits, negative links."""
        with self._tx() as conn:
            pid = int(self._person_row(conn, person_id)[0])
            faces = self._face_ids_of(conn, pid)
            self._delete_face_negatives(conn, faces)
            conn.execute("DELETE FROM negative_links WHERE person_id = ?", (pid,))
            conn.execute("DELETE FROM embeddings WHERE person_id = ?", (pid,))
            conn.execute("DELETE FROM visits WHERE person_id = ?", (pid,))
            stale = [int(r[0]) for r in conn.execute("SELECT revision, person_ids FROM events")
                     if pid in json.loads(r[1])]
            for chunk in _chunks(stale):
                conn.execute(f"DELETE FROM events WHERE revision IN ({self._in(chunk)})", chunk)
            conn.execute("DELETE FROM persons WHERE id = ?", (pid,))
            self._bump(conn, "forgotten", [pid], f"person {pid} forgotten")
        self._checkpoint()
        LOG.info("forgot person %d (%d embeddings)", pid, len(faces))

    def set_never_remember(self, person_id: int, never_remember: bool) -> PersonRecord:
        """Opt a person out of (or back into) being stored and greeted."""
        if not isinstance(never_remember, (bool, np.bool_)):
            raise MemoryStoreError("never_remember must be true or false")
        with self._tx() as conn:
            pid = int(self._person_row(conn, person_id)[0])
            conn.execute("UPDATE persons SET never_remember = ? WHERE id = ?",
                         (int(bool(never_remember)), pid))
            self._bump(conn, "never_remember", [pid], f"person {pid} never_remember="
                       f"{bool(never_remember)}")
            record = self._person_record(conn, self._person_row(conn, pid))
        return record

    # -- embeddings ------------------------------------------------------------------------
    def add_embedding(self, person_id: int, vector: np.ndarray, embedder: str, *,
                      quality: float = 0.0, crop: np.ndarray | None = None, source: str = "",
                      t: float | None = None) -> EmbeddingRecord:
        """Store one face of a known person (enrolment)."""
        embedder = validate_embedder(embedder)
        v = validate_vector(vector)
        quality = validate_quality(quality)
        source = validate_label(source, "the source")
        now = self._now(t)
        crop_blob = self._enc_crop(crop)
        with self._tx() as conn:
            row = self._person_row(conn, person_id)
            pid = int(row[0])
            if row[3]:
                raise OptedOutError(f"person {pid} asked never to be remembered; "
                                     "no face is stored")
            self._register_embedder(conn, embedder, v.shape[0], now)
            face_id = self._alloc_face_id(conn)
            conn.execute(
                "INSERT INTO embeddings (id, person_id, vector, dim, embedder, quality, crop, "
                "created, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (face_id, pid, self._enc_vector(v), v.shape[0], embedder, quality, crop_blob,
                 now, source))
            self._bump(conn, "labelled", [pid], f"embedding {face_id} added to person {pid}")
        return EmbeddingRecord(face_id, pid, v, embedder, quality, now, source,
                               None if crop_blob is None else np.asarray(crop))

    def list_embeddings(self, person_id: int, *, with_crops: bool = False
                        ) -> list[EmbeddingRecord]:
        """Return a person's embeddings (crops decoded to RGB when ``with_crops``)."""
        with self._read() as conn:
            pid = int(self._person_row(conn, person_id)[0])
            rows = conn.execute(
                "SELECT id, vector, dim, embedder, quality, created, source, "
                f"{'crop' if with_crops else 'NULL'} FROM embeddings WHERE person_id = ? "
                "ORDER BY id", (pid,)).fetchall()
            return [EmbeddingRecord(int(r[0]), pid, self._dec_vector(r[1], int(r[2])), r[3],
                                    float(r[4]), float(r[5]), r[6], self._dec_crop(r[7]))
                    for r in rows]

    # -- unknowns --------------------------------------------------------------------------
    def _unknown_index(self, conn: sqlite3.Connection, embedder: str) -> _UnknownIndex:
        # data_version changes when another connection (the labelling page, the CLI) commits:
        # then the cached unknowns may name deleted or relabelled faces.
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self._data_version:
            self._unknown_cache.clear()
            self._data_version = version
        index = self._unknown_cache.get(embedder)
        if index is None:
            rows = conn.execute("SELECT id, vector, dim, cluster_id FROM unknowns "
                                "WHERE embedder = ? ORDER BY id", (embedder,)).fetchall()
            dim = self._embedder_dim(conn, embedder) or 1
            vectors = (np.stack([self._dec_vector(r[1], int(r[2])) for r in rows])
                       if rows else np.zeros((0, dim), np.float32))
            index = _UnknownIndex([int(r[0]) for r in rows], vectors,
                                  [int(r[3]) for r in rows])
            self._unknown_cache[embedder] = index
        return index

    def _unknown_record(self, r: Sequence[Any], with_crop: bool) -> UnknownRecord:
        return UnknownRecord(
            unknown_id=int(r[0]), vector=self._dec_vector(r[1], int(r[2])), embedder=r[3],
            quality=float(r[4]), first_seen=float(r[5]), last_seen=float(r[6]),
            cluster_id=int(r[7]), track_key=r[8],
            crop=self._dec_crop(r[9]) if with_crop else None)

    _UNKNOWN_COLS = ("id, vector, dim, embedder, quality, first_seen, last_seen, cluster_id, "
                     "track_key")

    def add_unknown(self, vector: np.ndarray, embedder: str, *, crop: np.ndarray | None = None,
                    quality: float = 0.0, t: float | None = None,
                    track_key: str = "") -> UnknownRecord:
        """Store an unknown face and assign it to a cluster (or PENDING).

        Faces with the same ``track_key`` (one tracked person) join the track's cluster; at
        most ``max_unknowns_per_track`` are kept per track, the best qualities win.
        """
        embedder = validate_embedder(embedder)
        v = validate_vector(vector)
        quality = validate_quality(quality)
        track_key = validate_label(track_key, "the track key")
        now = self._now(t)
        crop_blob = self._enc_crop(crop)
        params = self.options.cluster
        with self._tx(keep_cache=True) as conn:
            self._register_embedder(conn, embedder, v.shape[0], now)
            index = self._unknown_index(conn, embedder)
            track_rows = []
            if track_key:
                track_rows = conn.execute(
                    "SELECT id, quality, cluster_id FROM unknowns WHERE track_key = ? AND "
                    "embedder = ? ORDER BY quality, id", (track_key, embedder)).fetchall()
            if len(track_rows) >= self.options.max_unknowns_per_track:
                worst_id, worst_q = int(track_rows[0][0]), float(track_rows[0][1])
                if quality > worst_q:
                    conn.execute("UPDATE unknowns SET vector = ?, crop = ?, quality = ?, "
                                 "last_seen = MAX(last_seen, ?) WHERE id = ?",
                                 (self._enc_vector(v), crop_blob, quality, now, worst_id))
                    self._unknown_cache.pop(embedder, None)
                conn.execute("UPDATE unknowns SET last_seen = MAX(last_seen, ?) "
                             "WHERE track_key = ? AND embedder = ?", (now, track_key, embedder))
                r = conn.execute(f"SELECT {self._UNKNOWN_COLS}, NULL FROM unknowns WHERE id = ?",
                                 (worst_id if quality > worst_q else int(track_rows[-1][0]),)
                                 ).fetchone()
                return self._unknown_record(r, False)
            track_clusters = Counter(int(r[2]) for r in track_rows if int(r[2]) != PENDING)
            promote: list[int] = []
            if track_clusters:
                cluster = track_clusters.most_common(1)[0][0]
            else:
                clusters = np.asarray(index.clusters, dtype=np.int64)
                centroids = (clustering.centroids_of(index.vectors, clusters)
                             if len(clusters) else {})
                cluster, _ = clustering.nearest_cluster(v, centroids, params.similarity)
                if cluster == PENDING:
                    pending = clusters == PENDING
                    pending_ids = [i for i, p in zip(index.ids, pending, strict=True) if p]
                    promote = clustering.pending_group(
                        v, pending_ids, index.vectors[pending], params.similarity,
                        params.min_size)
                    if promote or params.min_size <= 1:
                        cluster = self._alloc_cluster_id(conn)
            for chunk in _chunks(promote):
                conn.execute(f"UPDATE unknowns SET cluster_id = ? WHERE id IN "
                             f"({self._in(chunk)})", (cluster, *chunk))
            face_id = self._alloc_face_id(conn)
            conn.execute(
                "INSERT INTO unknowns (id, vector, dim, embedder, quality, crop, first_seen, "
                "last_seen, cluster_id, track_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (face_id, self._enc_vector(v), v.shape[0], embedder, quality, crop_blob, now,
                 now, cluster, track_key))
        # Committed: bring the in-memory index up to date.
        if embedder in self._unknown_cache:
            promoted = set(promote)
            index.clusters = [cluster if i in promoted else c
                              for i, c in zip(index.ids, index.clusters, strict=True)]
            index.ids.append(face_id)
            index.clusters.append(cluster)
            index.vectors = np.vstack([index.vectors.reshape(-1, v.shape[0]), v[None, :]])
        return UnknownRecord(face_id, v, embedder, quality, now, now, cluster, track_key,
                             None if crop_blob is None else np.asarray(crop))

    def get_unknown(self, unknown_id: int, *, with_crop: bool = False) -> UnknownRecord:
        """Return one unknown face; NotFoundError when absent."""
        uid = validate_id(unknown_id, "unknown id")
        with self._read() as conn:
            r = conn.execute(f"SELECT {self._UNKNOWN_COLS}, crop FROM unknowns WHERE id = ?",
                             (uid,)).fetchone()
            if r is None:
                raise NotFoundError(f"unknown face {uid} does not exist")
            return self._unknown_record(r, with_crop)

    def list_unknowns(self, cluster_id: int | None = None, *, with_crops: bool = False
                      ) -> list[UnknownRecord]:
        """Return unknown faces, all or those of one cluster (PENDING for the unclustered)."""
        crop = "crop" if with_crops else "NULL"
        with self._read() as conn:
            if cluster_id is None:
                rows = conn.execute(f"SELECT {self._UNKNOWN_COLS}, {crop} FROM unknowns "
                                    "ORDER BY id").fetchall()
            else:
                rows = conn.execute(f"SELECT {self._UNKNOWN_COLS}, {crop} FROM unknowns "
                                    "WHERE cluster_id = ? ORDER BY id",
                                    (int(cluster_id),)).fetchall()
            return [self._unknown_record(r, with_crops) for r in rows]

    def list_clusters(self, min_size: int = 1, max_samples: int = 4, *,
                      include_pending: bool = False) -> list[ClusterSummary]:
        """Return unknown clusters, largest first, with up to ``max_samples`` RGB crops each."""
        min_size = validate_id(min_size, "min_size")
        max_samples = validate_id(max_samples, "max_samples")
        out: list[ClusterSummary] = []
        with self._read() as conn:
            groups = conn.execute(
                "SELECT cluster_id, COUNT(*), MIN(first_seen), MAX(last_seen), MIN(embedder) "
                "FROM unknowns WHERE cluster_id >= 0 GROUP BY cluster_id HAVING COUNT(*) >= ? "
                "ORDER BY COUNT(*) DESC, cluster_id", (min_size,)).fetchall()
            for cid, size, first, last, emb in groups:
                samples = conn.execute(
                    "SELECT id, crop FROM unknowns WHERE cluster_id = ? "
                    "ORDER BY quality DESC, id LIMIT ?", (cid, max_samples)).fetchall()
                out.append(ClusterSummary(
                    int(cid), int(size), float(first), float(last), emb,
                    [int(s[0]) for s in samples],
                    [c for c in (self._dec_crop(s[1]) for s in samples) if c is not None]))
            if include_pending and min_size <= 1:
                rows = conn.execute(
                    "SELECT id, first_seen, last_seen, embedder, crop FROM unknowns "
                    "WHERE cluster_id = ? ORDER BY last_seen DESC, id", (PENDING,)).fetchall()
                for uid, first, last, emb, crop in rows:
                    crops = [] if max_samples == 0 or crop is None else [self._dec_crop(crop)]
                    out.append(ClusterSummary(PENDING, 1, float(first), float(last), emb,
                                              [int(uid)] if max_samples else [], crops))
        return out

    def _resolve_target(self, conn: sqlite3.Connection, name: str, person_id: int,
                        t: float) -> tuple[int, str, bool]:
        """Return (person id, name, created) for a labelling request."""
        has_name = isinstance(name, str) and bool(name.strip())
        if int(person_id) >= 0:
            row = self._person_row(conn, person_id)
            pid = int(row[0])
            if has_name and name_key(validate_name(name)) != name_key(row[1]):
                raise ConflictError(f"person {pid} has another name; give either the person id "
                                    "or the name, or rename the person first")
            if row[3]:
                raise OptedOutError(f"person {pid} asked never to be remembered; "
                                     "no face is stored")
            return pid, str(row[1]), False
        if not has_name:
            raise MemoryStoreError("give a name or a person id (>= 0)")
        clean = validate_name(name)
        owner = self._name_owner(conn, clean)
        if owner is not None:
            return self._resolve_target(conn, "", owner, t)
        return self._insert_person(conn, clean, False, t), clean, True

    def _label(self, where: str, arg: int, what: str, name: str, person_id: int) -> LabelResult:
        now = self._clock()
        with self._tx() as conn:
            ids = [int(r[0]) for r in conn.execute(
                f"SELECT id FROM unknowns WHERE {where} ORDER BY id", (arg,))]
            if not ids:
                raise NotFoundError(f"{what} {arg} does not exist")
            pid, pname, created = self._resolve_target(conn, name, person_id, now)
            conn.execute(
                "INSERT INTO embeddings (id, person_id, vector, dim, embedder, quality, crop, "
                "created, source) SELECT id, ?, vector, dim, embedder, quality, crop, "
                f"first_seen, ? FROM unknowns WHERE {where}", (pid, f"{what} {arg}", arg))
            conn.execute(f"DELETE FROM unknowns WHERE {where}", (arg,))
            for chunk in _chunks(ids):
                conn.execute(f"DELETE FROM negative_links WHERE person_id = ? AND face_id IN "
                             f"({self._in(chunk)})", (pid, *chunk))
            if what == "unknown cluster":
                conn.execute("DELETE FROM negative_links WHERE person_id = ? AND cluster_id = ?",
                             (pid, arg))
            self._bump(conn, "labelled", [pid],
                       f"{what} {arg} labelled as person {pid} ({len(ids)} faces)")
        LOG.info("labelled %s %d as person %d (%d faces, new=%s)", what, arg, pid, len(ids),
                 created)
        return LabelResult(pid, pname, len(ids), created)

    def label_cluster(self, cluster_id: int, name: str = "", person_id: int = -1
                      ) -> LabelResult:
        """Give a cluster's faces to a person (by id, or by name: existing or new)."""
        cid = validate_id(cluster_id, "cluster id")
        return self._label("cluster_id = ?", cid, "unknown cluster", name, person_id)

    def label_unknown(self, unknown_id: int, name: str = "", person_id: int = -1
                      ) -> LabelResult:
        """Give one unknown face to a person (by id, or by name: existing or new)."""
        uid = validate_id(unknown_id, "unknown id")
        return self._label("id = ?", uid, "unknown face", name, person_id)

    def discard_unknowns(self, *, cluster_id: int = -1, unknown_ids: Sequence[int] = (),
                         reason: str = "") -> int:
        """Delete a cluster's or the given unknown faces; returns how many."""
        reason = validate_label(reason, "the reason", max_length=1024)
        cid = int(cluster_id)
        if (cid >= 0) == bool(len(unknown_ids)):
            raise MemoryStoreError("give exactly one of: a cluster id (>= 0) or unknown ids")
        with self._tx() as conn:
            if cid >= 0:
                ids = [int(r[0]) for r in conn.execute(
                    "SELECT id FROM unknowns WHERE cluster_id = ?", (cid,))]
                if not ids:
                    raise NotFoundError(f"unknown cluster {cid} does not exist")
                conn.execute("DELETE FROM negative_links WHERE cluster_id = ?", (cid,))
            else:
                ids = validate_ids(unknown_ids, "unknown id")
                found: set[int] = set()
                for chunk in _chunks(ids):
                    found.update(int(r[0]) for r in conn.execute(
                        f"SELECT id FROM unknowns WHERE id IN ({self._in(chunk)})", chunk))
                missing = [i for i in ids if i not in found]
                if missing:
                    raise NotFoundError(f"unknown face(s) {_fmt_ids(missing)} do not exist")
            self._delete_face_negatives(conn, ids)
            for chunk in _chunks(ids):
                conn.execute(f"DELETE FROM unknowns WHERE id IN ({self._in(chunk)})", chunk)
            self._bump(conn, "discarded", [], f"{len(ids)} unknown faces discarded")
        self._checkpoint()
        LOG.info("discarded %d unknown faces (%s)", len(ids), reason or "no reason given")
        return len(ids)

    def recluster(self) -> int:
        """Re-cluster all unknowns, keeping cluster ids stable; returns #faces that moved."""
        params = self.options.cluster
        with self._read() as conn:
            embedders = [r[0] for r in conn.execute("SELECT DISTINCT embedder FROM unknowns")]
            start_next = self._meta_int(conn, "next_cluster_id")
            work = []
            for emb in embedders:
                rows = conn.execute(
                    "SELECT id, vector, dim, cluster_id FROM unknowns WHERE embedder = ? "
                    "ORDER BY last_seen DESC, id DESC LIMIT ?", (emb, params.max_items)
                ).fetchall()
                work.append(([int(r[0]) for r in rows],
                             np.stack([self._dec_vector(r[1], int(r[2])) for r in rows]),
                             np.array([int(r[3]) for r in rows], dtype=np.int64)))
        # The clustering itself runs without the lock: other calls go on meanwhile.
        next_id = start_next
        results = []
        for ids, vectors, old in work:
            new, next_id = clustering.recluster(vectors, old, params, next_id)
            results.append((ids, old, new))
        changes = [(int(n), i) for ids, old, new in results
                   for i, o, n in zip(ids, old, new, strict=True) if o != n]
        if not changes:
            return 0
        with self._tx() as conn:
            # Ids handed out meanwhile by add_unknown: shift our fresh ids past them.
            shift = self._meta_int(conn, "next_cluster_id") - start_next
            changes = [(c + shift if c >= start_next else c, i) for c, i in changes]
            conn.executemany("UPDATE unknowns SET cluster_id = ? WHERE id = ?", changes)
            self._set_meta(conn, "next_cluster_id", next_id + shift)
            self._bump(conn, "clustered", [], f"{len(changes)} unknown faces re-clustered")
        LOG.info("re-clustered unknowns: %d faces changed cluster", len(changes))
        return len(changes)

    # -- visits ----------------------------------------------------------------------------
    _VISIT_COLS = ("v.id, v.person_id, p.name, v.started, v.last_seen, v.ended, v.location, "
                   "v.robot_id, v.dominant_activity, v.activity_counts")

    @staticmethod
    def _visit_record(r: Sequence[Any]) -> VisitRecord:
        return VisitRecord(int(r[0]), int(r[1]), r[2], float(r[3]), float(r[4]),
                           0.0 if r[5] is None else float(r[5]), r[6], r[7], r[8],
                           {str(k): int(v) for k, v in json.loads(r[9] or "{}").items()})

    def _visit(self, conn: sqlite3.Connection, visit_id: int) -> VisitRecord:
        r = conn.execute(f"SELECT {self._VISIT_COLS} FROM visits v JOIN persons p "
                         "ON p.id = v.person_id WHERE v.id = ?", (visit_id,)).fetchone()
        if r is None:
            raise NotFoundError(f"visit {visit_id} does not exist")
        return self._visit_record(r)

    @staticmethod
    def _dominant(counts: Mapping[str, int], current: str) -> str:
        if not counts:
            return ""
        best = max(counts.values())
        if counts.get(current, -1) == best:
            return current  # ties keep the activity that got there first
        return min(k for k, v in counts.items() if v == best)

    def open_or_extend_visit(self, person_id: int, t: float, *, location: str = "",
                             robot_id: str | None = None, activity: str = "",
                             absence: float | None = None) -> VisitRecord:
        """Extend the person's open visit, or close it after an absence and open a new one."""
        t = validate_time(t)
        location = validate_label(location, "the location")
        robot = validate_label(self.options.robot_id if robot_id is None else robot_id,
                               "the robot id")
        activity = validate_label(activity, "the activity")
        gap_max = self.options.visit_absence if absence is None else float(absence)
        if not gap_max > 0:
            raise MemoryStoreError(f"the absence must be > 0 seconds, got {absence}")
        with self._tx() as conn:
            row = self._person_row(conn, person_id)
            pid = int(row[0])
            if row[3]:
                raise OptedOutError(f"person {pid} asked never to be remembered; "
                                     "no visit is recorded")
            r = conn.execute(
                "SELECT id, started, last_seen, activity_counts, dominant_activity FROM visits "
                "WHERE person_id = ? AND robot_id = ? AND ended IS NULL "
                "ORDER BY started DESC LIMIT 1", (pid, robot)).fetchone()
            if r is not None and t - float(r[2]) <= gap_max:
                vid = int(r[0])
                counts = Counter({str(k): int(v) for k, v in json.loads(r[3]).items()})
                if activity:
                    counts[activity] += 1
                conn.execute(
                    "UPDATE visits SET started = MIN(started, ?), last_seen = MAX(last_seen, ?), "
                    "activity_counts = ?, dominant_activity = ? WHERE id = ?",
                    (t, t, json.dumps(dict(counts)), self._dominant(counts, r[4]), vid))
            else:
                if r is not None:
                    conn.execute("UPDATE visits SET ended = last_seen WHERE id = ?", (r[0],))
                counts = Counter({activity: 1} if activity else {})
                cur = conn.execute(
                    "INSERT INTO visits (person_id, started, last_seen, ended, location, "
                    "robot_id, activity_counts, dominant_activity) "
                    "VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
                    (pid, t, t, location, robot, json.dumps(dict(counts)), activity))
                vid = int(cur.lastrowid)
            return self._visit(conn, vid)

    def close_visit(self, visit_id: int, t: float | None = None) -> VisitRecord:
        """Close an open visit at ``t`` (default: when the person was last seen)."""
        vid = validate_id(visit_id, "visit id")
        end = None if t is None else validate_time(t)
        with self._tx() as conn:
            visit = self._visit(conn, vid)
            if not visit.open:
                raise ConflictError(f"visit {vid} is already closed")
            end = visit.last_seen if end is None else max(end, visit.start)
            conn.execute("UPDATE visits SET ended = ?, last_seen = MIN(MAX(last_seen, ?), ?) "
                         "WHERE id = ?", (end, end, end, vid))
            return self._visit(conn, vid)

    def close_stale_visits(self, now: float | None = None, absence: float | None = None
                           ) -> list[VisitRecord]:
        """Close every open visit whose person has been absent longer than ``absence``."""
        now = self._now(now)
        gap_max = self.options.visit_absence if absence is None else float(absence)
        with self._tx() as conn:
            ids = [int(r[0]) for r in conn.execute(
                "SELECT id FROM visits WHERE ended IS NULL AND last_seen < ?", (now - gap_max,))]
            for chunk in _chunks(ids):
                conn.execute(f"UPDATE visits SET ended = last_seen WHERE id IN "
                             f"({self._in(chunk)})", chunk)
            return [self._visit(conn, i) for i in ids]

    def list_visits(self, person_id: int = -1, limit: int = 50) -> list[VisitRecord]:
        """Return visits newest first, of one person or everybody (-1); limit 0 = all."""
        limit = validate_id(limit, "limit")
        with self._read() as conn:
            sql = f"SELECT {self._VISIT_COLS} FROM visits v JOIN persons p ON p.id = v.person_id"
            args: list[Any] = []
            if int(person_id) >= 0:
                args.append(int(self._person_row(conn, person_id)[0]))
                sql += " WHERE v.person_id = ?"
            sql += " ORDER BY v.started DESC, v.id DESC"
            if limit:
                sql += " LIMIT ?"
                args.append(limit)
            return [self._visit_record(r) for r in conn.execute(sql, args)]

    # -- identity engine -------------------------------------------------------------------
    def gallery(self, embedder: str) -> Gallery:
        """Return the vectors, negatives and opted-out persons for one embedder."""
        embedder = validate_embedder(embedder)
        with self._read() as conn:
            revision = self._meta_int(conn, "revision")
            dim = self._embedder_dim(conn, embedder) or 0
            names = {int(r[0]): r[1] for r in conn.execute("SELECT id, name FROM persons")}
            opted = frozenset(int(r[0]) for r in conn.execute(
                "SELECT id FROM persons WHERE never_remember = 1"))
            entries = [
                GalleryEntry(int(r[0]), int(r[1]), names[int(r[1])],
                             self._dec_vector(r[2], int(r[3])))
                for r in conn.execute("SELECT id, person_id, vector, dim FROM embeddings "
                                      "WHERE embedder = ? ORDER BY id", (embedder,))]
            negatives: list[GalleryNegative] = []
            for table in ("embeddings", "unknowns"):
                negatives.extend(
                    GalleryNegative(int(r[0]), self._dec_vector(r[2], int(r[3])), int(r[1]))
                    for r in conn.execute(
                        f"SELECT n.person_id, f.id, f.vector, f.dim FROM negative_links n "
                        f"JOIN {table} f ON f.id = n.face_id WHERE f.embedder = ? "
                        "ORDER BY n.id", (embedder,)))
            cluster_links = [(int(r[0]), int(r[1])) for r in conn.execute(
                "SELECT person_id, cluster_id FROM negative_links WHERE cluster_id IS NOT NULL "
                "ORDER BY id")]
            negatives.extend(
                GalleryNegative(int(r[0]), self._dec_vector(r[2], int(r[3])), int(r[1]),
                                int(r[4]))
                for r in conn.execute(
                    "SELECT n.person_id, u.id, u.vector, u.dim, u.cluster_id "
                    "FROM negative_links n JOIN unknowns u ON u.cluster_id = n.cluster_id "
                    "WHERE u.embedder = ? ORDER BY n.id, u.id", (embedder,)))
        return Gallery(revision, embedder, dim, entries, negatives, cluster_links, opted, names)

    def embedders(self) -> dict[str, int]:
        """Return ``{embedder id: vector length}`` of every embedder seen."""
        with self._read() as conn:
            return {r[0]: int(r[1]) for r in conn.execute("SELECT id, dim FROM embedders")}

    def reembed(self, embed_fn: EmbedFn, embedder: str, *, batch_size: int = 32,
                include_unknowns: bool = True) -> ReembedReport:
        """Recompute stored vectors from stored crops with another embedder, batch by batch.

        Each batch is one transaction; an interrupted run resumes where it stopped (rows
        already carrying ``embedder`` are skipped). Faces without a crop, or whose crop
        ``embed_fn`` returns None for, keep their old vector and embedder.
        """
        embedder = validate_embedder(embedder)
        if batch_size < 1:
            raise MemoryStoreError(f"batch_size must be >= 1, got {batch_size}")
        counts = {"embeddings": 0, "unknowns": 0}
        failed = 0
        tables = ("embeddings", "unknowns") if include_unknowns else ("embeddings",)
        with self._read() as conn:
            no_crop = sum(conn.execute(f"SELECT COUNT(*) FROM {tb} WHERE embedder != ? "
                                       "AND crop IS NULL", (embedder,)).fetchone()[0]
                          for tb in tables)
        for table in tables:
            last_id = -1
            while True:
                with self._read() as conn:
                    rows = conn.execute(
                        f"SELECT id, crop, embedder FROM {table} WHERE embedder != ? AND "
                        "crop IS NOT NULL AND id > ? ORDER BY id LIMIT ?",
                        (embedder, last_id, batch_size)).fetchall()
                    crops = [self._dec_crop(r[1]) for r in rows]
                if not rows:
                    break
                last_id = int(rows[-1][0])
                vectors = embed_fn([c for c in crops if c is not None])
                if len(vectors) != len(rows):
                    raise MemoryStoreError(f"the embedder returned {len(vectors)} vectors for "
                                           f"{len(rows)} crops")
                updates = []
                for r, vec in zip(rows, vectors, strict=True):
                    if vec is None:
                        failed += 1
                        continue
                    try:
                        v = validate_vector(vec)
                    except MemoryStoreError as exc:
                        LOG.warning("re-embedding face %d failed: %s", r[0], exc)
                        failed += 1
                        continue
                    updates.append((int(r[0]), r[2], v))
                if not updates:
                    continue
                now = self._clock()
                with self._tx() as conn:
                    for face_id, old, v in updates:
                        self._register_embedder(conn, embedder, v.shape[0], now)
                        n = conn.execute(f"UPDATE {table} SET vector = ?, dim = ?, embedder = ? "
                                         "WHERE id = ? AND embedder = ?",
                                         (self._enc_vector(v), v.shape[0], embedder, face_id,
                                          old)).rowcount
                        counts[table] += n
                    persons = sorted({int(r[0]) for r in conn.execute(
                        f"SELECT DISTINCT person_id FROM embeddings WHERE id IN "
                        f"({self._in([u[0] for u in updates])})", [u[0] for u in updates])}
                    ) if table == "embeddings" else []
                    self._bump(conn, "reembedded", persons,
                               f"{len(updates)} {table} re-embedded with {embedder}")
        LOG.info("re-embedded %d embeddings and %d unknowns with %s (%d without crop, "
                 "%d failed)", counts["embeddings"], counts["unknowns"], embedder, no_crop,
                 failed)
        return ReembedReport(embedder, counts["embeddings"], counts["unknowns"], no_crop, failed)

    def events_since(self, revision: int) -> list[MemoryEventRecord]:
        """Return the gallery changes after ``revision``, oldest first."""
        with self._read() as conn:
            return [MemoryEventRecord(int(r[0]), float(r[1]), r[2], json.loads(r[3]), r[4])
                    for r in conn.execute(
                        "SELECT revision, stamp, kind, person_ids, message FROM events "
                        "WHERE revision > ? ORDER BY revision", (int(revision),))]

    @property
    def revision(self) -> int:
        """Gallery revision: increases by one on every change the identity engine must see."""
        with self._read() as conn:
            return self._meta_int(conn, "revision")

    # -- maintenance -----------------------------------------------------------------------
    def purge(self, now: float | None = None, *, unknown_days: float | None = None,
              visit_days: float | None = None) -> PurgeReport:
        """Delete unknowns and closed visits older than their retention (0 days = keep)."""
        now = self._now(now)
        u_days = self.options.unknown_retention_days if unknown_days is None else unknown_days
        v_days = self.options.visit_retention_days if visit_days is None else visit_days
        for days, what in ((u_days, "unknown"), (v_days, "visit")):
            if not (isinstance(days, (int, float)) and days >= 0):
                raise MemoryStoreError(f"{what} retention must be >= 0 days, got {days}")
        n_unknowns = n_visits = n_events = 0
        with self._tx() as conn:
            if u_days > 0:
                ids = [int(r[0]) for r in conn.execute(
                    "SELECT id FROM unknowns WHERE last_seen < ?", (now - u_days * DAY,))]
                self._delete_face_negatives(conn, ids)
                for chunk in _chunks(ids):
                    conn.execute(f"DELETE FROM unknowns WHERE id IN ({self._in(chunk)})", chunk)
                n_unknowns = len(ids)
            if v_days > 0:
                n_visits = conn.execute("DELETE FROM visits WHERE ended IS NOT NULL AND "
                                        "ended < ?", (now - v_days * DAY,)).rowcount
            n_events = conn.execute(
                "DELETE FROM events WHERE revision <= (SELECT MAX(revision) FROM events) - ?",
                (self.options.max_events,)).rowcount
            if n_unknowns:
                self._bump(conn, "discarded", [], f"retention: {n_unknowns} unknown faces "
                           "deleted")
        if n_unknowns or n_visits:
            self._checkpoint()
            LOG.info("retention purge: %d unknowns, %d visits", n_unknowns, n_visits)
        return PurgeReport(n_unknowns, n_visits, n_events)

    def stats(self) -> StoreStats:
        """Return row counts and state for diagnostics."""
        with self._read() as conn:
            def count(sql: str) -> int:
                return int(conn.execute(sql).fetchone()[0])

            return StoreStats(
                revision=self._meta_int(conn, "revision"),
                num_persons=count("SELECT COUNT(*) FROM persons"),
                num_embeddings=count("SELECT COUNT(*) FROM embeddings"),
                num_unknowns=count("SELECT COUNT(*) FROM unknowns"),
                num_clusters=count("SELECT COUNT(DISTINCT cluster_id) FROM unknowns "
                                   "WHERE cluster_id >= 0"),
                num_visits=count("SELECT COUNT(*) FROM visits"),
                writable=self._writable,
                encrypted=self._cipher.enabled,
                schema_version=schema_version(conn),
            )

    def integrity_check(self) -> str:
        """Return "ok" when the storage is consistent, else the problems found."""
        with self._read() as conn:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"{len(fk)} foreign key violations")
        return "ok" if problems == ["ok"] else "; ".join(problems)


def _chunks(ids: Sequence[int], size: int = 500) -> Iterator[list[int]]:
    """Yield ``ids`` in lists small enough for SQLite's parameter limit."""
    ids = list(ids)
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _fmt_ids(ids: Sequence[int], limit: int = 10) -> str:
    """Return "1, 2, 3" (shortened with "...")."""
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (", ..." if len(ids) > limit else "")
