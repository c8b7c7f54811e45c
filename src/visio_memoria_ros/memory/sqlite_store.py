"""``SQLiteStore``: the embedded ``MemoryStore`` of one robot (one file; the memory node, the
labelling page and the CLI each open their own connection to it).

This module is the SQLite backend only: opening the file, its pragmas and migrations, its
transactions and error mapping. What the memory does is ``store.RepositoryStore``'s.

Durability: WAL journal with ``synchronous=FULL`` by default. Writes are rare (labels, a few
unknown faces a second, visit updates), so an fsync per commit costs little, and FULL makes
every committed change survive a power cut: a robot's battery can die at any moment, and a
"forget me" that is undone by a power loss would be a privacy failure. ``NORMAL`` (still
corruption-safe in WAL mode, may lose the last commits on power loss) is available for slow
storage. ``secure_delete=ON`` overwrites deleted rows with zeros, and operations that delete
personal data end with a WAL checkpoint (TRUNCATE) so no copy stays in the -wal file.

Concurrency: several processes write the same file (memory_node, the labelling page, the
CLI). Every write is one transaction opened with ``BEGIN IMMEDIATE``, which takes the file's
write lock at once: while it runs it is the only writer, and a writer in another process waits
up to ``StoreOptions.busy_timeout`` (5 s; sqlite3's ``timeout`` and ``PRAGMA busy_timeout``)
for it, then fails with ``StoreUnavailable`` (reason ``locked``) having changed nothing. A
transaction commits whole or rolls back, so no writer sees another's half-done change, and
WAL lets readers go on reading the last commit while a write runs. SQLite therefore needs no
lock names (``transaction`` ignores them). In one process, one connection guarded by a lock;
calls from several threads are serialised.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .database import WRITE_LOCK, BlobVectors, Conn, Database
from .errors import ConflictError, StoreUnavailable
from .location import LocationError, location_of
from .options import StoreOptions
from .privacy import BlobCipher, load_key, restrict_existing, secure_dir, secure_file
from .schema import LATEST_VERSION, migrate, schema_version
from .store import RepositoryStore

LOG = logging.getLogger(__name__)

KEY_CHECK = b"visio_memoria key check"

__all__ = ["SQLiteDatabase", "SQLiteStore", "StoreOptions", "sqlite_path"]


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


def sqlite_path(params: Mapping[str, Any], db_path: str | None = None) -> Path:
    """The SQLite file memory_node parameters point at: ``db_path`` (absolute, or inside
    ``data_dir``), else ``<data_dir>/memory.db``. Refuses a relative path leaving data_dir."""
    data_dir = Path(str(params.get("data_dir", "~/.local/share/visio_memoria"))).expanduser()
    db = str(params.get("db_path", "") or "") if db_path is None else db_path
    path = Path(db).expanduser() if db else data_dir / "memory.db"
    if not path.is_absolute():
        path = data_dir / path
        if not path.resolve().is_relative_to(data_dir.resolve()):
            raise StoreUnavailable(f"db_path {db!r} points outside data_dir "
                                   f"{data_dir}; give an absolute path to mean that",
                                   reason="unavailable")
    return path


class SQLiteDatabase(Database):
    """One SQLite file: WAL, foreign keys, secure delete, migrations, key check."""

    engine = "sqlite"

    def __init__(self, path: Path, options: StoreOptions, cipher: BlobCipher) -> None:
        super().__init__(BlobVectors(cipher))
        self.path = path
        self.options = options
        self._cipher = cipher
        self._writable = not options.read_only
        self.conn = self._open()

    # -- opening ---------------------------------------------------------------------------
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
                token = self._cipher.encrypt(KEY_CHECK, "key_check").hex()
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
            ok = self._cipher.decrypt(bytes.fromhex(row[0]), "key_check") == KEY_CHECK
        except StoreUnavailable:
            ok = False
        if not ok:
            conn.close()
            raise StoreUnavailable(
                f"the configured encryption key does not open {self.path} (wrong key?)",
                reason="encryption",
            )

    # -- the Database contract -------------------------------------------------------------
    @property
    def writable(self) -> bool:
        """False when the file was opened read-only."""
        return self._writable

    @property
    def where(self) -> str:
        """The file's path."""
        return str(self.path)

    @contextmanager
    def read(self) -> Iterator[Conn]:
        """The connection, sqlite errors as StoreUnavailable."""
        with self.lock:
            try:
                yield self.conn
            except sqlite3.DatabaseError as exc:
                raise _unavailable(exc) from exc

    @contextmanager
    def transaction(self, locks: Sequence[str] = (WRITE_LOCK,)) -> Iterator[Conn]:
        """``BEGIN IMMEDIATE`` (the file's only writer until it ends) ... ``COMMIT``, or
        ``ROLLBACK``."""
        del locks  # BEGIN IMMEDIATE already excludes every other writer
        with self.lock:
            if not self._writable:
                raise StoreUnavailable(
                    f"the memory file {self.path} is open read-only; nothing was changed",
                    reason="read_only",
                )
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise _unavailable(exc) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
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

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open."""
        return bool(self.conn.in_transaction)

    def insert_id(self, conn: Conn, sql: str, params: Sequence[Any]) -> int:
        """The new row's ``lastrowid``."""
        return int(conn.execute(sql, params).lastrowid)  # type: ignore[attr-defined]

    def unknowns_version(self, conn: Conn) -> int:
        """``PRAGMA data_version``: changes when another connection commits."""
        return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def erased(self) -> None:
        """Checkpoint the WAL so no deleted row stays in the -wal file."""
        self.checkpoint()

    def schema_version(self, conn: Conn) -> int:
        """``PRAGMA user_version``."""
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` and ``foreign_key_check``."""
        with self.read() as conn:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"{len(fk)} foreign key violations")
        return "ok" if problems == ["ok"] else "; ".join(problems)

    def checkpoint(self) -> None:
        """Move the WAL into the main file and truncate it (no deleted data left there)."""
        try:
            with self.read() as conn:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                LOG.warning("WAL checkpoint incomplete: another reader holds %s", self.path)
        except StoreUnavailable as exc:
            LOG.warning("WAL checkpoint failed: %s", exc)

    def close(self) -> None:
        """Optimise and close the connection."""
        with self.lock:
            try:
                if self._writable:
                    self.conn.execute("PRAGMA optimize")
            except sqlite3.Error as exc:
                LOG.debug("PRAGMA optimize failed: %s", exc)
            self.conn.close()


class SQLiteStore(RepositoryStore):
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
        options = options or StoreOptions()
        cipher = BlobCipher(key)
        super().__init__(SQLiteDatabase(self.path, options, cipher), options, cipher, clock)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *,
                    clock: Callable[[], float] = time.time) -> SQLiteStore:
        """Open the store described by memory_node parameters (see config/memory.py)."""
        where = location_of(params)
        if where.path is None:
            raise LocationError(f"{where.shown} is not an SQLite memory (open it with "
                                "memory.open_store)")
        path = where.path
        if not params.get("read_only", False):
            secure_dir(Path(str(params.get("data_dir", "~/.local/share/visio_memoria")))
                       .expanduser())
        options = StoreOptions.from_params(params)
        key = load_key(str(params.get("encryption_key_file", "") or ""),
                       str(params.get("encryption_key_env", "") or ""))
        return cls(path, options, key=key, clock=clock)

    @property
    def _conn(self) -> sqlite3.Connection:
        """The SQLite connection (tests wrap it to inject faults)."""
        return self._db.conn  # type: ignore[attr-defined,no-any-return]

    @_conn.setter
    def _conn(self, conn: sqlite3.Connection) -> None:
        self._db.conn = conn  # type: ignore[attr-defined]

    def checkpoint(self) -> None:
        """Flush the write-ahead log into the database file and truncate it."""
        self._db.checkpoint()  # type: ignore[attr-defined]
