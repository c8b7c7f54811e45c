"""Identity: gallery index, open-set matcher, per-track voting and the greeting policy.

Imports only ``core`` and ``config`` of this package, never rclpy.
"""

from __future__ import annotations

from .engine import (
    EngineConfig,
    EngineOutput,
    GalleryEntry,
    GalleryReport,
    IdentityEngine,
    NegativeEntry,
)
from .greeting import Greeting, GreetingPolicy, Visit, VisitEvent, VisitEventKind, VisitTracker
from .index import GalleryIndex, IndexKind, SearchResult, validate_vectors
from .matcher import FrameScores, Matcher, MatchResult, Thresholds
from .voting import TrackDecision, TrackVoter, assign_unique

__all__ = [
    "EngineConfig",
    "EngineOutput",
    "FrameScores",
    "GalleryEntry",
    "GalleryIndex",
    "GalleryReport",
    "Greeting",
    "GreetingPolicy",
    "IdentityEngine",
    "IndexKind",
    "MatchResult",
    "Matcher",
    "NegativeEntry",
    "SearchResult",
    "Thresholds",
    "TrackDecision",
    "TrackVoter",
    "Visit",
    "VisitEvent",
    "VisitEventKind",
    "VisitTracker",
    "assign_unique",
    "validate_vectors",
]
