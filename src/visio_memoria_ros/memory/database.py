"""``Database``: what a storage backend supplies to the repositories, and nothing more.

The repositories (``repositories/``) hold the SQL of each aggregate in one dialect: ``?``
placeholders, ``ON CONFLICT``, ``CASE`` instead of scalar MIN/MAX. A backend supplies what
differs between database engines: the connection and its transactions (and the locking that
makes concurrent writers safe), how a new row's id comes back, how a vector is stored (an
encrypted blob in SQLite, a pgvector column in PostgreSQL), a version number that changes when
another connection changes the unknown faces, hooks after an embedder is first seen and after
personal data is deleted, and change notifications. The domain rules (``rules``,
``validation``, ``clustering``) are shared; no backend re-implements them.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from .codec import blob_to_vector, vector_to_blob
from .privacy import BlobCipher

#: The lock every write that changes persons, faces, unknowns, events or ids takes (a backend
#: with one writer at a time, like SQLite, needs no lock names).
WRITE_LOCK = "memory"


class Cursor(Protocol):
    """The part of a DB-API cursor the repositories use."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """A connection inside a read or a transaction: ``?`` placeholders, tuples back."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...


class VectorCodec(abc.ABC):
    """How a backend stores a vector column value."""

    @abc.abstractmethod
    def dump(self, vector: np.ndarray) -> Any:
        """The column value of a float32 vector."""

    @abc.abstractmethod
    def load(self, value: Any, dim: int) -> np.ndarray:
        """The float32 vector of a column value."""


class BlobVectors(VectorCodec):
    """Vectors as little-endian float32 blobs, encrypted when the cipher has a key."""

    def __init__(self, cipher: BlobCipher) -> None:
        self.cipher = cipher

    def dump(self, vector: np.ndarray) -> bytes:
        """The (encrypted) blob of a vector."""
        return self.cipher.encrypt(vector_to_blob(vector), "vector")

    def load(self, value: Any, dim: int) -> np.ndarray:
        """The vector of a stored blob."""
        return blob_to_vector(self.cipher.decrypt(value, "vector"), dim)


class Database(abc.ABC):
    """A connection to one memory, with the engine-specific parts of storing it."""

    #: Short engine name ("sqlite", "postgresql").
    engine: str = ""

    def __init__(self, vectors: VectorCodec) -> None:
        self.vectors = vectors
        #: Serialises every call of this process (service handlers, callbacks, timers).
        self.lock = threading.RLock()

    @property
    @abc.abstractmethod
    def writable(self) -> bool:
        """False when opened read-only."""

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Where the memory is, for messages (a path, or a URL without its password)."""

    @abc.abstractmethod
    def read(self) -> AbstractContextManager[Conn]:
        """A consistent read; errors become StoreUnavailable."""

    @abc.abstractmethod
    def transaction(self, locks: Sequence[str] = (WRITE_LOCK,)) -> AbstractContextManager[Conn]:
        """One write transaction, all of it or none; ``locks`` serialise concurrent writers.

        A constraint violation becomes ConflictError, an engine failure StoreUnavailable.
        """

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open on the connection."""
        return False

    @abc.abstractmethod
    def insert_id(self, conn: Conn, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT of one row into a table with a generated ``id``; return that id."""

    @abc.abstractmethod
    def unknowns_version(self, conn: Conn) -> int:
        """A number that changes when another connection commits a change to the unknowns."""

    def embedder_added(self, conn: Conn, embedder: str, dim: int) -> None:  # noqa: B027
        """Called in the transaction that first stores vectors of ``embedder``."""

    def erased(self) -> None:  # noqa: B027
        """Called after personal data was deleted: flush deleted bytes out of side files."""

    def nearest(self, conn: Conn, table: str, embedder: str, vector: np.ndarray, k: int
                ) -> list[tuple[int, float]] | None:
        """The ``k`` nearest faces by an index of the engine, or None (then exact, in Python)."""
        del conn, table, embedder, vector, k
        return None

    @abc.abstractmethod
    def schema_version(self, conn: Conn) -> int:
        """The schema version of the memory."""

    @abc.abstractmethod
    def integrity_check(self) -> str:
        """"ok", or the problems found."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection(s)."""

    def watch(self, callback: Callable[[int], None]) -> bool:
        """Call ``callback(revision)`` from another thread on every change anyone commits.

        Returns False when the engine cannot push changes (then callers poll ``revision``).
        """
        del callback
        return False
