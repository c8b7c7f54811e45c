"""Both memory backends for the tests: SQLite files and a real PostgreSQL server (no mocks).

The server is PostgreSQL 16 + pgvector from the ``pgserver`` wheel (requirements/test.txt),
started once per test session on a free port of 127.0.0.1 (``PgCluster``), or the server that
``VISIO_MEMORIA_TEST_PG_URL`` names (a URL whose user may create databases, with pgvector
installed). Without either, the PostgreSQL cases skip and say why. Every test gets a fresh
database (``pg_url``); ``make_store`` opens a store of the test's backend on it, as often as the
test asks (several stores on one memory are several robots or processes).

On the pgserver cluster the superuser ``postgres`` connects from 127.0.0.1 without a password
(trust); every other role needs its password (scram-sha-256), so the password paths are real.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_URL_ENV = "VISIO_MEMORIA_TEST_PG_URL"
BACKENDS = ("sqlite", "postgresql")


class PgCluster:
    """A PostgreSQL server of this test session: initdb, start, stop, restart, databases."""

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        from pgserver import _commands
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
            find_suitable_port,
        )

        self._commands = _commands
        self.root = root
        self.pgdata = root / "data"
        self.sockets = root / "sock"
        self.log = root / "server.log"
        self.port = find_suitable_port("127.0.0.1")
        self.user: str | None = None
        self.pgdata.mkdir(parents=True)
        self.sockets.mkdir()
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd
            import stat

            self.user = "pgserver"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.pgdata)
            bin_path = _commands.POSTGRES_BIN_PATH
            ensure_prefix_permissions(bin_path)
            read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
            ensure_folder_permissions(bin_path, execute | read)
            ensure_folder_permissions(bin_path.parent / "lib", read)
            pw = pwd.getpwnam(self.user)
            for path in (root, self.pgdata, self.sockets):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            self.log.touch()
            os.chown(self.log, pw.pw_uid, pw.pw_gid)
        _commands.initdb(["--auth-local=trust", "--auth-host=scram-sha-256", "-U", "postgres",
                          "--encoding=utf8", "--locale=C"], pgdata=self.pgdata, user=self.user)
        (self.pgdata / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.sockets}'\nmax_connections = 200\n")
            if not durable:
                # Most test data need no durability: fsync off makes a database per test
                # cheap. A server a test crashes on purpose keeps PostgreSQL's defaults.
                conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        self.start()

    def pg_ctl(self, *args: str, timeout: float = 60) -> None:
        """Run pg_ctl on this cluster."""
        self._commands.pg_ctl(list(args), pgdata=self.pgdata, user=self.user, timeout=timeout)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.pg_ctl("-w", "-l", str(self.log), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        self.pg_ctl("-w", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again (clients lose their connections)."""
        self.stop(mode)
        self.start()

    def admin_url(self, database: str = "postgres") -> str:
        """The superuser's URL (no password needed from 127.0.0.1)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        """Stop the server and delete its files."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class ExternalServer:
    """A server named by VISIO_MEMORIA_TEST_PG_URL (cannot be restarted by the tests)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def admin_url(self, database: str | None = None) -> str:
        """The given URL, on another database when asked."""
        if database is None:
            return self.url
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))

    def close(self) -> None:
        """Nothing to stop."""


def _admin(server: Any) -> Any:
    import psycopg

    return psycopg.connect(server.admin_url(), autocommit=True)


def create_database(server: Any, prefix: str = "vmt") -> str:
    """A fresh, empty database; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin(server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(server: Any, name: str) -> None:
    """Drop a test database, disconnecting whoever is still on it."""
    with contextlib.suppress(Exception), _admin(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_role(server: Any, name: str, password: str, database: str) -> None:
    """A login role with a password that owns ``database``'s public schema."""
    import psycopg
    from psycopg import sql

    with _admin(server) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(
            sql.Identifier(database), sql.Identifier(name)))
    with psycopg.connect(server.admin_url(database), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(name)))


def drop_role(server: Any, name: str) -> None:
    """Drop a test role."""
    from psycopg import sql

    with contextlib.suppress(Exception), _admin(server) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _pg_missing() -> str | None:
    for module in ("psycopg", "pgvector"):
        try:
            __import__(module)
        except ImportError:
            return (f"{module} is not installed (pip install 'psycopg[binary]' pgvector; "
                    "requirements/ml.txt)")
    return None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """The session's PostgreSQL server (pgserver wheel, or VISIO_MEMORIA_TEST_PG_URL)."""
    missing = _pg_missing()
    if missing:
        pytest.skip(missing)
    url = os.environ.get(PG_URL_ENV, "")
    if url:
        server: Any = ExternalServer(url)
    else:
        try:
            import pgserver  # noqa: F401
        except ImportError:
            pytest.skip(f"no PostgreSQL server: install pgserver (requirements/test.txt) or "
                        f"set {PG_URL_ENV} to a server where this user may create databases")
        root = Path(tempfile.mkdtemp(prefix="visio_memoria_pg_"))
        started = time.monotonic()
        server = PgCluster(root)
        print(f"PostgreSQL test server on 127.0.0.1:{server.port}, started in "
              f"{time.monotonic() - started:.1f} s")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_database(pg_server: Any) -> Iterator[str]:
    """A fresh database on the session's server, dropped after the test."""
    name = create_database(pg_server)
    try:
        yield name
    finally:
        drop_database(pg_server, name)


@pytest.fixture
def pg_url(pg_server: Any, pg_database: str) -> str:
    """The superuser URL of a fresh database."""
    return pg_server.admin_url(pg_database)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def memory_location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's memory: an SQLite file path, or a fresh PostgreSQL database's URL."""
    if backend == "sqlite":
        return str(tmp_path / "mem" / "memory.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def make_store(memory_location: str) -> Iterator[Callable[..., Any]]:
    """``make_store(options=None, *, key=None, clock=time.time)``: a store on the test's memory
    (each call a new connection, as another process would have); all closed afterwards."""
    from visio_memoria_ros.memory import PostgresStore, SQLiteStore

    opened: list[Any] = []

    def _open(options: Any = None, **kwargs: Any) -> Any:
        if memory_location.startswith("postgresql://"):
            store = PostgresStore(memory_location, options, **kwargs)
        else:
            store = SQLiteStore(memory_location, options, **kwargs)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()
