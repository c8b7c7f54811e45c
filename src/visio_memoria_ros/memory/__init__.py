"""Memory room: the store interface, its repositories and backends, clustering, privacy hooks.

``MemoryStore`` (base) is implemented once by ``RepositoryStore`` (store): domain rules in
``rules``/``validation``/``clustering``, the SQL of each aggregate in ``repositories/``, and
a ``Database`` backend underneath (``SQLiteStore`` in sqlite_store).

Imports only ``core`` and ``config`` of this package, never rclpy.
"""

from __future__ import annotations

from .base import EmbedFn, MemoryStore
from .clustering import ClusterParams, ClusterQuality, cluster_quality
from .codec import CROP_FORMATS, CropCodec
from .database import Database
from .errors import (
    STORE_ERRORS,
    ConflictError,
    MemoryStoreError,
    NotAFaceError,
    NotFoundError,
    OptedOutError,
    StoreUnavailable,
)
from .location import (
    Location,
    LocationError,
    is_url,
    location_of,
    open_store,
    parse_location,
)
from .options import StoreOptions, default_robot_id
from .postgres_store import PostgresStore
from .privacy import BlobCipher, load_key
from .records import (
    PENDING,
    CandidateFace,
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
from .sqlite_store import SQLiteStore
from .store import RepositoryStore
from .validation import validate_name, validate_vector

__all__ = [
    "CROP_FORMATS",
    "LATEST_VERSION",
    "MIGRATIONS",
    "PENDING",
    "STORE_ERRORS",
    "BlobCipher",
    "CandidateFace",
    "ClusterParams",
    "ClusterQuality",
    "ClusterSummary",
    "ConflictError",
    "CropCodec",
    "Database",
    "EmbedFn",
    "EmbeddingRecord",
    "Gallery",
    "GalleryEntry",
    "GalleryNegative",
    "LabelResult",
    "Location",
    "LocationError",
    "MemoryEventRecord",
    "MemoryStore",
    "MemoryStoreError",
    "NotAFaceError",
    "NotFoundError",
    "OptedOutError",
    "PersonRecord",
    "PostgresStore",
    "PurgeReport",
    "ReembedReport",
    "RepositoryStore",
    "SQLiteStore",
    "StoreOptions",
    "StoreStats",
    "StoreUnavailable",
    "UnknownRecord",
    "VisitRecord",
    "cluster_quality",
    "default_robot_id",
    "is_url",
    "load_key",
    "location_of",
    "migrate",
    "open_store",
    "parse_location",
    "validate_name",
    "validate_vector",
]
