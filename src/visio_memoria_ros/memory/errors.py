"""Exceptions of the memory store: refused requests and an unavailable store."""

from __future__ import annotations


class MemoryStoreError(ValueError):
    """A request the store refuses; ``str(error)`` is a human-readable reason."""


class NotFoundError(MemoryStoreError):
    """A person, embedding, unknown face or cluster id that does not exist."""


class ConflictError(MemoryStoreError):
    """A request that contradicts the stored state (name taken, merge into itself...)."""


class OptedOutError(MemoryStoreError):
    """The person asked never to be remembered: nothing new is stored about them."""


class NotAFaceError(MemoryStoreError):
    """The face matches an example a user rejected as "not a face": it is not remembered."""


class StoreUnavailable(RuntimeError):  # noqa: N818 - the name the node authors expect
    """The store cannot write (read-only file, full disk, I/O error); reads may still work."""

    def __init__(self, message: str, *, reason: str = "unavailable") -> None:
        super().__init__(message)
        #: One of "read_only", "disk_full", "io_error", "locked", "corrupt", "version",
        #: "encryption", "unavailable".
        self.reason = reason


#: Everything a service handler should catch and report as ``success=false``.
STORE_ERRORS: tuple[type[Exception], ...] = (MemoryStoreError, StoreUnavailable)
