"""Memory room: the store interface, the SQLite store, unknown-face clustering, privacy hooks.

Imports only ``core`` and ``config`` of this package, never rclpy.
"""

from __future__ import annotations

from .base import EmbedFn, MemoryStore
from .clustering import ClusterParams, ClusterQuality, cluster_quality
from .codec import CROP_FORMATS, CropCodec
from .errors import (
    STORE_ERRORS,
    ConflictError,
    MemoryStoreError,
    NotFoundError,
    OptedOutError,
    StoreUnavailable,
)
from .privacy import BlobCipher, load_key
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
from .schema import LATEST_VERSION, MIGRATIONS, migrate
from .sqlite_store import SQLiteStore, StoreOptions
from .validation import validate_name, validate_vector

__all__ = [
    "CROP_FORMATS",
    "LATEST_VERSION",
    "MIGRATIONS",
    "PENDING",
    "STORE_ERRORS",
    "BlobCipher",
    "ClusterParams",
    "ClusterQuality",
    "ClusterSummary",
    "ConflictError",
    "CropCodec",
    "EmbedFn",
    "EmbeddingRecord",
    "Gallery",
    "GalleryEntry",
    "GalleryNegative",
    "LabelResult",
    "MemoryEventRecord",
    "MemoryStore",
    "MemoryStoreError",
    "NotFoundError",
    "OptedOutError",
    "PersonRecord",
    "PurgeReport",
    "ReembedReport",
    "SQLiteStore",
    "StoreOptions",
    "StoreStats",
    "StoreUnavailable",
    "UnknownRecord",
    "VisitRecord",
    "cluster_quality",
    "load_key",
    "migrate",
    "validate_name",
    "validate_vector",
]
