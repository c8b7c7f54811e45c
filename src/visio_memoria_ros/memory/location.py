"""Where the memory is: one setting (``db_path``, ``--db``, ``VISIO_MEMORIA_DB``) for both
backends, and opening the store it names.

Accepted forms:

* a file path, or ``sqlite:///abs/path.db`` / ``sqlite://rel.db``: the SQLite store (a
  relative path lies inside ``data_dir``; empty = ``<data_dir>/memory.db``);
* ``postgresql://user@host:port/dbname?sslmode=require`` (or ``postgres://``): the PostgreSQL
  store. Every libpq parameter in the query (``sslmode``, ``sslrootcert``,
  ``connect_timeout``, ``application_name``...) is passed through to libpq. The password is
  never part of the setting: libpq reads ``PGPASSWORD`` or ``~/.pgpass`` (``PGPASSFILE``), or
  ``db_password_file`` names a file that holds it. A URL that carries a password (in the
  user part, ``user:secret@host``, or as a ``password=`` query key) is refused, so it cannot
  end up in a YAML file or a log line; ``passfile=`` (a path) is accepted.

Anything else with a ``scheme:`` is refused with the forms above; it never becomes a file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import StoreUnavailable

POSTGRES_SCHEMES = ("postgresql", "postgres")
SQLITE_SCHEME = "sqlite"
#: A ``scheme:`` prefix (RFC 3986), as in ``postgresql://`` or ``mysql:``.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
FORMS = ("postgresql://user@host:port/dbname, sqlite:///path/to/memory.db or a file path")
#: Where a PostgreSQL password goes instead of the URL.
PASSWORD_PLACES = "PGPASSWORD, ~/.pgpass or db_password_file"


class LocationError(StoreUnavailable):
    """The memory setting names no store this software can open."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="location")


@dataclass(frozen=True)
class Location:
    """A parsed memory setting: an SQLite file, or a PostgreSQL URL without password."""

    engine: str
    path: Path | None = None
    url: str = ""

    @property
    def shown(self) -> str:
        """For messages and logs (never holds a password)."""
        return str(self.path) if self.path is not None else redact(self.url)


def is_url(value: str) -> bool:
    """True when ``value`` starts with a URL scheme (``postgresql:``, ``sqlite:``, ``x://``)."""
    m = _SCHEME.match(value.strip())
    if not m:
        return False
    scheme = m.group(1).lower()
    return scheme in (*POSTGRES_SCHEMES, SQLITE_SCHEME) or value.strip()[m.end():].startswith("//")


def _is_password_item(item: str) -> bool:
    """True for a ``password=...`` item of a URL query (key percent-decoded, as libpq does)."""
    return unquote(item.split("=", 1)[0]).strip().lower() == "password"


def _redact_query(query: str) -> str:
    """``query`` with the value of every ``password`` key replaced by ``***``."""
    return "&".join(f"{item.split('=', 1)[0]}=***" if _is_password_item(item) else item
                    for item in query.split("&"))


def redact(url: str) -> str:
    """``url`` with any password (user part or ``password=`` query key) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        query = _redact_query(parts.query)
        netloc = parts.netloc
        if parts.password:  # host and port kept as written ("[::1]:5433")
            netloc = f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}"
    except ValueError:
        return "<unparsable URL>"
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_location(db: str, data_dir: str | Path = "~/.local/share/visio_memoria") -> Location:
    """The store ``db`` names (see the module docstring); raises LocationError otherwise."""
    from .sqlite_store import sqlite_path

    value = (db or "").strip()
    m = _SCHEME.match(value)
    params = {"data_dir": str(data_dir)}
    if not is_url(value):
        return Location("sqlite", path=sqlite_path(params, value))
    assert m is not None
    scheme = m.group(1).lower()
    if scheme == SQLITE_SCHEME:
        rest = value[m.end():]
        if not rest.startswith("//"):
            raise LocationError(f"a SQLite URL is sqlite:///absolute/path or "
                                f"sqlite://relative/path, got {value!r}")
        path = rest[2:]
        if not path:
            raise LocationError("the SQLite URL names no file (sqlite:///path/to/memory.db)")
        return Location("sqlite", path=sqlite_path(params, path))
    if scheme in POSTGRES_SCHEMES:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise LocationError(f"the PostgreSQL URL {redact(value)} is malformed ({exc}); "
                                f"use {FORMS}") from exc
        if parts.password:  # "user:@host" (an empty password) says nothing secret
            raise LocationError(
                f"the memory URL {redact(value)} carries a password: remove it and give the "
                f"password in {PASSWORD_PLACES} instead (a password in a URL ends up in "
                "parameter files and logs)")
        if any(_is_password_item(item) for item in parts.query.split("&")):
            raise LocationError(
                f"the memory URL {redact(value)} carries a password in its query "
                f"(password=): remove it and give the password in {PASSWORD_PLACES} instead "
                "(a password in a URL ends up in parameter files and logs)")
        if not value[m.end():].startswith("//"):
            raise LocationError(f"a PostgreSQL URL is postgresql://user@host:port/dbname, "
                                f"got {redact(value)!r}")
        return Location("postgresql", url=value)
    raise LocationError(f"the memory setting {redact(value)!r} has the URL scheme "
                        f"{scheme!r}, which this software does not know; use {FORMS}")


def location_of(params: Mapping[str, Any]) -> Location:
    """The store memory_node parameters (``data_dir``, ``db_path``) point at."""
    return parse_location(str(params.get("db_path", "") or ""),
                          str(params.get("data_dir", "~/.local/share/visio_memoria")))


def open_store(params: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
               offline_ok: bool = False) -> Any:
    """Open the store memory_node parameters describe: SQLite or PostgreSQL.

    ``offline_ok``: a PostgreSQL server that cannot be reached yet gives a store that retries
    with back-off (writes and reads raise StoreUnavailable "disconnected" meanwhile) instead
    of an error; memory_node starts that way.
    """
    where = location_of(params)
    if where.engine == "postgresql":
        from .postgres_store import PostgresStore

        return PostgresStore.from_params(params, clock=clock, offline_ok=offline_ok)
    from .sqlite_store import SQLiteStore

    return SQLiteStore.from_params(params, clock=clock)
