"""Sightings kept while the memory server cannot be reached, written in order once it is back.

A sighting is what memory_node writes as faces stream in: a visit update of a known person, an
unknown face, or the removal of the unknown faces of a track that turned out to be KNOWN. When
a write fails because the server is unreachable (``StoreUnavailable`` with reason
``"disconnected"``), the sighting waits here, in arrival order, and later ones queue behind it
so the order is kept. The buffer is bounded: past ``capacity`` the oldest
sighting is dropped and counted. A sighting the store refuses for another reason (a person
forgotten meanwhile, an opt-out) is dropped and counted as refused.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .base import MemoryStore
from .errors import STORE_ERRORS, StoreUnavailable

LOG = logging.getLogger(__name__)

VISIT = "visit"
UNKNOWN = "unknown"
KNOWN_TRACK = "known_track"


@dataclass(frozen=True)
class Sighting:
    """One write of the stream: a visit update (``VISIT``), an unknown face (``UNKNOWN``) or the
    removal of a known track's unknown faces (``KNOWN_TRACK``: ``discard_tracks``)."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def write(self, store: MemoryStore) -> None:
        """Write it (``open_or_extend_visit``, ``add_unknown`` or ``discard_tracks`` with the
        stored arguments)."""
        if self.kind == VISIT:
            store.open_or_extend_visit(**self.args)
        elif self.kind == UNKNOWN:
            store.add_unknown(**self.args)
        elif self.kind == KNOWN_TRACK:
            store.discard_tracks(**self.args)
        else:
            raise ValueError(f"unknown sighting kind {self.kind!r}")


def is_disconnected(exc: BaseException) -> bool:
    """True when ``exc`` says the server cannot be reached (worth retrying later)."""
    return isinstance(exc, StoreUnavailable) and exc.reason == "disconnected"


class SightingBuffer:
    """A bounded, ordered queue of sightings waiting for the memory server."""

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 0:
            raise ValueError(f"the sighting buffer capacity must be >= 0, got {capacity}")
        self.capacity = int(capacity)
        self._queue: deque[Sighting] = deque()
        #: Sightings dropped because the buffer was full, written late, refused by the store.
        self.dropped = 0
        self.written = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, sighting: Sighting) -> None:
        """Queue a sighting; the oldest is dropped (and counted) when full."""
        if self.capacity == 0:
            self.dropped += 1
            return
        if len(self._queue) >= self.capacity:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(sighting)

    def record(self, store: MemoryStore, sighting: Sighting) -> bool:
        """Write ``sighting`` now, or queue it (behind others, or when the server is away).

        Returns True when it was written. Other store errors are raised to the caller.
        """
        if self._queue:
            self.add(sighting)
            self.flush(store)
            return False
        try:
            sighting.write(store)
        except StoreUnavailable as exc:
            if not is_disconnected(exc):
                raise
            self.add(sighting)
            return False
        return True

    def flush(self, store: MemoryStore) -> int:
        """Write queued sightings in order until the server fails again; returns how many."""
        done = 0
        while self._queue:
            sighting = self._queue[0]
            try:
                sighting.write(store)
            except STORE_ERRORS as exc:
                if is_disconnected(exc):
                    break
                LOG.info("a buffered %s sighting was refused: %s", sighting.kind, exc)
                self.refused += 1
            else:
                done += 1
                self.written += 1
            self._queue.popleft()
        return done
