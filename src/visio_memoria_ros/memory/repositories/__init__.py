"""Repositories: the SQL of each aggregate of the memory, one module per aggregate.

Each takes a connection inside a read or a transaction (``Database.read``/``transaction``) and
never decides anything: the store (``store.RepositoryStore``) orchestrates one operation, the
domain rules (``rules``) decide, the repositories fetch and write rows. The SQL is written once
for every backend (``?`` placeholders, ``ON CONFLICT``, ``CASE``); what differs is the
``Database``'s.
"""

from __future__ import annotations

from .base import Blobs, in_marks
from .events import EventRepository
from .faces import FaceRepository
from .gallery import GalleryRepository
from .nonfaces import NonFaceRepository
from .persons import PersonRepository
from .reembed import ReembedRepository
from .retention import RetentionRepository
from .unknowns import UnknownRepository
from .visits import VisitRepository

__all__ = [
    "Blobs",
    "EventRepository",
    "FaceRepository",
    "GalleryRepository",
    "NonFaceRepository",
    "PersonRepository",
    "ReembedRepository",
    "RetentionRepository",
    "UnknownRepository",
    "VisitRepository",
    "in_marks",
]
