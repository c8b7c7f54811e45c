"""``PostgresStore``: the fleet memory, one PostgreSQL server (with pgvector) shared by robots.

This module is the PostgreSQL backend only; what the memory does is ``store.RepositoryStore``'s,
the same code as the SQLite store's. What this backend supplies:

* the connection (psycopg 3, the ``pgvector`` adapter), schema migrations (``pg_schema``), the
  encryption key check; ``?`` placeholders of the repositories become ``%s``;
* transactions, and locks that make concurrent robots safe: every write that changes persons,
  faces, unknowns, events or ids takes one transaction-level advisory lock (the same
  serialisation SQLite's ``BEGIN IMMEDIATE`` gives), visit writes take a lock per person and
  robot only; unique constraints back them (one name per person, one open visit per person
  and robot);
* vectors in pgvector columns; each embedder gets HNSW (cosine) indexes on
  ``vector::vector(dim)`` for the nearest-face search (``search_faces``);
* LISTEN/NOTIFY: ``watch`` calls back on every change any robot commits;
* reconnection: a lost server makes calls raise ``StoreUnavailable`` (reason
  ``"disconnected"``) at once, and the next call after the back-off (0.5 s doubling to 30 s)
  connects again.

Crops are encrypted with the same key parameter as the SQLite store's; vectors stay in clear
pgvector columns, because the server computes the distances on them (protect the server with
disk encryption and TLS: ``sslmode=verify-full``). The password never comes from the URL
(``location``): libpq reads PGPASSWORD or ~/.pgpass, or ``db_password_file`` names a file.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .database import WRITE_LOCK, Conn, Database, VectorCodec
from .errors import ConflictError, MemoryStoreError, StoreUnavailable
from .location import Location, LocationError, location_of
from .options import StoreOptions
from .pg_schema import CHANNEL, PG_LATEST_VERSION, PG_MIGRATIONS
from .privacy import BlobCipher, load_key
from .store import RepositoryStore

LOG = logging.getLogger(__name__)

KEY_CHECK = b"visio_memoria key check"
#: pgvector's HNSW indexes vectors of at most this many dimensions.
HNSW_MAX_DIM = 2000
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise StoreUnavailable(
            "a postgresql:// memory needs the 'psycopg' and 'pgvector' packages "
            "(pip install 'psycopg[binary]' pgvector)", reason="unavailable") from exc
    return psycopg


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    digest = hashlib.blake2b(f"visio_memoria:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgVectors(VectorCodec):
    """Vectors as pgvector values (numpy in, numpy out)."""

    def dump(self, vector: np.ndarray) -> Any:
        """The float32 array itself (the pgvector adapter sends it)."""
        return np.asarray(vector, dtype=np.float32)

    def load(self, value: Any, dim: int) -> np.ndarray:
        """A float32 array of a pgvector value."""
        v = value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value)
        v = np.asarray(v, dtype=np.float32).reshape(-1)
        if v.shape[0] != dim:
            raise MemoryStoreError(f"a stored vector has {v.shape[0]} values, expected {dim}")
        return v


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """The repositories' SQL with psycopg's placeholders (``?`` -> ``%s``, ``%`` escaped)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _PgConn:
    """A psycopg connection with the repositories' ``?`` placeholders."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    @staticmethod
    def _sql(sql: str) -> str:
        return pg_sql(sql)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (results in binary: vectors load without text parsing)."""
        return self.raw.execute(self._sql(sql), tuple(params) if params else None, binary=True)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        """Run one statement for each row."""
        cur = self.raw.cursor()
        cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        return cur


class PostgresDatabase(Database):
    """A PostgreSQL database: connection with back-off, migrations, locks, NOTIFY."""

    engine = "postgresql"

    def __init__(self, location: Location, options: StoreOptions, cipher: BlobCipher, *,
                 password: str | None = None, offline_ok: bool = False) -> None:
        super().__init__(PgVectors())
        self.location = location
        self.options = options
        self._cipher = cipher
        self._password = password
        self._writable = not options.read_only
        self._conn: Any = None
        self._raw_in_tx = False
        self._next_attempt = 0.0
        self._backoff = BACKOFF_FIRST
        self._last_error = ""
        self._watchers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._closed = False
        try:
            self._connect()
        except StoreUnavailable as exc:
            if not (offline_ok and exc.reason == "disconnected"):
                raise
            LOG.error("%s; retrying with back-off", exc)

    # -- connecting ------------------------------------------------------------------------
    def _connect_raw(self, *, autocommit: bool = True) -> Any:
        psycopg = _psycopg()
        kwargs: dict[str, Any] = {"autocommit": autocommit}
        if self._password is not None:
            kwargs["password"] = self._password
        if "connect_timeout" not in self.location.url:
            kwargs["connect_timeout"] = 5
        try:
            return psycopg.connect(self.location.url, **kwargs)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"cannot reach the memory server {self.location.shown}: "
                f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}",
                reason="disconnected") from exc
        except psycopg.ProgrammingError as exc:
            raise LocationError(f"the memory URL {self.location.shown} is not valid: {exc}"
                                ) from exc

    def _connect(self) -> None:
        psycopg = _psycopg()
        conn = self._connect_raw()
        try:
            if self._writable:
                self._migrate(conn)
            elif self._version(conn) != PG_LATEST_VERSION:
                raise StoreUnavailable(
                    f"the memory at {self.location.shown} has schema "
                    f"v{self._version(conn)}, this software needs v{PG_LATEST_VERSION}; open "
                    "it writable once to migrate", reason="version")
            from pgvector.psycopg import register_vector

            register_vector(conn)
            if self.options.synchronous.upper() == "NORMAL":
                conn.execute("SET synchronous_commit = off")
            if not self._writable:
                conn.execute("SET default_transaction_read_only = on")
            self._check_key(conn)
        except psycopg.OperationalError as exc:
            conn.close()
            raise StoreUnavailable(f"lost the memory server {self.location.shown}: {exc}",
                                   reason="disconnected") from exc
        except psycopg.Error as exc:
            conn.close()
            raise StoreUnavailable(f"cannot open the memory at {self.location.shown}: {exc}",
                                   reason="unavailable") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._backoff = BACKOFF_FIRST
        LOG.info("memory server %s connected (schema v%d, %s, %s)", self.location.shown,
                 PG_LATEST_VERSION, "writable" if self._writable else "read-only",
                 "encrypted crops" if self._cipher.enabled else "plain crops")

    @staticmethod
    def _version(conn: Any) -> int:
        exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
        if not exists:
            return 0
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self, conn: Any) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("migrate"),))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY "
                         "KEY, description TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)")
            current = self._version(conn)
            if current > PG_LATEST_VERSION:
                raise StoreUnavailable(
                    f"the memory at {self.location.shown} has schema version {current}, newer "
                    f"than this software understands ({PG_LATEST_VERSION}); upgrade "
                    "visio_memoria", reason="version")
        for step in PG_MIGRATIONS:
            if step.version <= current:
                continue
            LOG.info("migrating the memory at %s to v%d: %s", self.location.shown, step.version,
                     step.description)
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("migrate"),))
                if self._version(conn) >= step.version:  # another robot migrated meanwhile
                    continue
                for sql in step.statements:
                    conn.execute(sql)
                conn.execute("INSERT INTO schema_version (version, description, applied) "
                             "VALUES (%s, %s, %s)", (step.version, step.description, time.time()))

    def _check_key(self, conn: Any) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None:
            if self._cipher.enabled and self._writable:
                token = self._cipher.encrypt(KEY_CHECK, "key_check").hex()
                conn.execute("INSERT INTO meta (key, value) VALUES ('key_check', %s) "
                             "ON CONFLICT DO NOTHING", (token,))
            return
        if not self._cipher.enabled:
            raise StoreUnavailable(
                f"the memory at {self.location.shown} holds encrypted faces but no encryption "
                "key is configured (encryption_key_file or encryption_key_env)",
                reason="encryption")
        try:
            ok = self._cipher.decrypt(bytes.fromhex(row[0]), "key_check") == KEY_CHECK
        except StoreUnavailable:
            ok = False
        if not ok:
            raise StoreUnavailable(
                f"the configured encryption key does not open the memory at "
                f"{self.location.shown} (wrong key?)", reason="encryption")

    def _lost(self, exc: BaseException) -> StoreUnavailable:
        """Drop a broken connection; the next call after the back-off reconnects."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as close_exc:  # already broken
                LOG.debug("closing a broken connection: %s", close_exc)
        self._conn = None
        self._next_attempt = time.monotonic()  # reconnect at once the first time
        self._last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        LOG.warning("lost the memory server %s: %s", self.location.shown, self._last_error)
        return StoreUnavailable(
            f"lost the memory server {self.location.shown} ({self._last_error}); nothing was "
            "changed, retrying", reason="disconnected")

    def _live(self) -> Any:
        """The connection, reconnecting when the back-off allows; else StoreUnavailable."""
        if self._closed:
            raise StoreUnavailable("the memory store is closed", reason="unavailable")
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._conn = None
        now = time.monotonic()
        if now < self._next_attempt:
            raise StoreUnavailable(
                f"the memory server {self.location.shown} is unreachable "
                f"({self._last_error or 'not connected'}); next try in "
                f"{self._next_attempt - now:.1f} s", reason="disconnected")
        try:
            self._connect()
        except StoreUnavailable as exc:
            if exc.reason == "disconnected":
                self._last_error = str(exc)
                self._next_attempt = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF_MAX)
            raise
        return self._conn

    @property
    def connected(self) -> bool:
        """True while a connection to the server is up (as far as the last call knows)."""
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    # -- the Database contract -------------------------------------------------------------
    @property
    def writable(self) -> bool:
        """False when opened read-only."""
        return self._writable

    @property
    def where(self) -> str:
        """The server URL (never with a password)."""
        return self.location.shown

    def _translate(self, exc: BaseException) -> BaseException:
        psycopg = _psycopg()
        if isinstance(exc, psycopg.errors.IntegrityError):
            return ConflictError(f"the change contradicts stored data: "
                                 f"{str(exc).strip().splitlines()[0]}")
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return StoreUnavailable(f"the memory at {self.location.shown} is read-only; nothing "
                                    "was changed", reason="read_only")
        if isinstance(exc, psycopg.errors.DiskFull):
            return StoreUnavailable(f"the memory server's disk is full ({exc}); nothing was "
                                    "changed, reads still work", reason="disk_full")
        if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.LockNotAvailable):
            return StoreUnavailable(f"another writer holds the memory locked ({exc}); nothing "
                                    "was changed", reason="locked")
        if isinstance(exc, psycopg.OperationalError) or (
                self._conn is not None and (self._conn.closed or self._conn.broken)):
            return self._lost(exc)
        return StoreUnavailable(f"the memory server refused the request ({exc}); nothing was "
                                "changed", reason="unavailable")

    @contextmanager
    def read(self) -> Iterator[Conn]:
        """Autocommit reads on the shared connection."""
        psycopg = _psycopg()
        with self.lock:
            conn = self._live()
            try:
                yield _PgConn(conn)
            except psycopg.Error as exc:
                raise self._translate(exc) from exc

    @contextmanager
    def transaction(self, locks: Sequence[str] = (WRITE_LOCK,)) -> Iterator[Conn]:
        """``BEGIN`` ... ``COMMIT`` with transaction-level advisory locks, or ``ROLLBACK``."""
        psycopg = _psycopg()
        with self.lock:
            if not self._writable:
                raise StoreUnavailable(
                    f"the memory at {self.location.shown} is open read-only; nothing was "
                    "changed", reason="read_only")
            conn = self._live()
            try:
                with conn.transaction():
                    for name in sorted(set(locks)):
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(name),))
                    self._raw_in_tx = True
                    try:
                        yield _PgConn(conn)
                    finally:
                        self._raw_in_tx = False
            except psycopg.Error as exc:
                raise self._translate(exc) from exc

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open on the shared connection."""
        if self._conn is None:
            return False
        from psycopg.pq import TransactionStatus

        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def insert_id(self, conn: Conn, sql: str, params: Sequence[Any]) -> int:
        """``INSERT ... RETURNING id``."""
        return int(conn.execute(sql + " RETURNING id", params).fetchone()[0])

    def unknowns_version(self, conn: Conn) -> int:
        """``meta.unknowns_version``: a trigger counts every statement that changes unknowns."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'unknowns_version'").fetchone()
        return int(row[0]) if row else 0

    def embedder_added(self, conn: Conn, embedder: str, dim: int) -> None:
        """HNSW (cosine) indexes on this embedder's faces and unknown faces."""
        if dim > HNSW_MAX_DIM:
            LOG.warning("embedder %s makes %d-d vectors; pgvector's HNSW indexes at most %d: "
                        "its nearest-face search scans", embedder, dim, HNSW_MAX_DIM)
            return
        from psycopg import sql

        tag = hashlib.blake2b(embedder.encode(), digest_size=6).hexdigest()
        raw = conn.raw  # type: ignore[attr-defined]
        for table in ("embeddings", "unknowns"):
            raw.execute(sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw "
                "((vector::vector({})) vector_cosine_ops) WHERE embedder = {}").format(
                    sql.Identifier(f"{table}_hnsw_{tag}"), sql.Identifier(table),
                    sql.Literal(int(dim)), sql.Literal(embedder)))

    def nearest(self, conn: Conn, table: str, embedder: str, vector: np.ndarray, k: int
                ) -> list[tuple[int, float]] | None:
        """The HNSW index's ``k`` nearest (approximate; exact scan past HNSW_MAX_DIM)."""
        assert table in ("embeddings", "unknowns")
        dim = int(vector.shape[0])
        if dim > HNSW_MAX_DIM:
            return None
        rows = conn.execute(
            f"SELECT id, vector::vector({dim}) <=> ?::vector({dim}) AS d FROM {table} "
            f"WHERE embedder = ? ORDER BY vector::vector({dim}) <=> ?::vector({dim}) LIMIT ?",
            (vector, embedder, vector, k)).fetchall()
        return [(int(r[0]), 1.0 - float(r[1])) for r in rows]

    def erased(self) -> None:
        """VACUUM the tables personal data was deleted from: dead rows become free space."""
        with self.lock:
            try:
                conn = self._live()
                for table in ("persons", "embeddings", "unknowns", "visits", "negative_links",
                              "events"):
                    conn.execute(f"VACUUM {table}")
            except Exception as exc:  # a later VACUUM (autovacuum) does it too
                LOG.warning("VACUUM after deleting personal data failed: %s", exc)

    def schema_version(self, conn: Conn) -> int:
        """The highest applied migration."""
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def integrity_check(self) -> str:
        """Constraints hold by construction; check the schema and the vector lengths."""
        with self.read() as conn:
            problems = []
            version = self.schema_version(conn)
            if version != PG_LATEST_VERSION:
                problems.append(f"schema v{version}, expected v{PG_LATEST_VERSION}")
            for table in ("embeddings", "unknowns"):
                bad = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE vector_dims(vector) "
                                   "<> dim").fetchone()[0]
                if bad:
                    problems.append(f"{bad} {table} rows whose vector length is not their dim")
        return "ok" if not problems else "; ".join(problems)

    def close(self) -> None:
        """Stop the watchers and close the connection."""
        self._stop.set()
        with self.lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        for thread in self._watchers:
            thread.join(timeout=5.0)

    # -- notifications ---------------------------------------------------------------------
    def watch(self, callback: Callable[[int], None]) -> bool:
        """LISTEN on a connection of its own; ``callback(revision)`` per change committed
        anywhere, and ``callback(-1)`` after a reconnection (changes may have been missed)."""
        thread = threading.Thread(target=self._listen, args=(callback,), daemon=True,
                                  name="memory-listen")
        self._watchers.append(thread)
        thread.start()
        return True

    def _listen(self, callback: Callable[[int], None]) -> None:
        backoff = BACKOFF_FIRST
        first = True
        while not self._stop.is_set():
            try:
                conn = self._connect_raw()
            except StoreUnavailable as exc:
                LOG.debug("change listener: %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                if not first:
                    callback(-1)
                first = False
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=0.5):
                        try:
                            callback(int(note.payload))
                        except Exception:  # the listener must survive
                            LOG.exception("memory change callback failed")
            except Exception as exc:  # reconnect on any connection failure
                LOG.debug("change listener lost the server: %s", exc)
            finally:
                conn.close()


def read_password_file(path: str) -> str:
    """The password held in ``path`` (first line); warns when others may read it."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
        mode = p.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreUnavailable(f"cannot read the database password file {p}: "
                               f"{type(exc).__name__}", reason="unavailable") from exc
    if mode & 0o077:
        LOG.warning("database password file %s is readable by others; chmod 600 it", p)
    password = text.splitlines()[0] if text else ""
    if not password:
        raise StoreUnavailable(f"the database password file {p} is empty", reason="unavailable")
    return password


class PostgresStore(RepositoryStore):
    """MemoryStore on a PostgreSQL server with pgvector (shared by every robot of a site)."""

    def __init__(self, url: str, options: StoreOptions | None = None, *,
                 key: bytes | None = None, password_file: str = "",
                 clock: Callable[[], float] = time.time, offline_ok: bool = False) -> None:
        from .location import parse_location

        location = parse_location(url)
        if location.engine != "postgresql":
            raise LocationError(f"{location.shown} is not a postgresql:// URL")
        options = options or StoreOptions()
        cipher = BlobCipher(key)
        password = read_password_file(password_file) if password_file else None
        db = PostgresDatabase(location, options, cipher, password=password,
                              offline_ok=offline_ok)
        super().__init__(db, options, cipher, clock)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *,
                    clock: Callable[[], float] = time.time,
                    offline_ok: bool = False) -> PostgresStore:
        """Open the store memory_node parameters describe (``db_path`` a postgresql:// URL)."""
        where = location_of(params)
        options = StoreOptions.from_params(params)
        key = load_key(str(params.get("encryption_key_file", "") or ""),
                       str(params.get("encryption_key_env", "") or ""))
        return cls(where.url, options, key=key,
                   password_file=str(params.get("db_password_file", "") or ""),
                   clock=clock, offline_ok=offline_ok)

    @property
    def connected(self) -> bool:
        """True while the server connection is up."""
        return self._db.connected  # type: ignore[attr-defined,no-any-return]

    @property
    def _conn(self) -> _PgConn:
        """The connection as the repositories see it (tests wrap it to inject faults)."""
        return _PgConn(self._db._live())  # type: ignore[attr-defined]
