"""Plain records returned by a ``MemoryStore``; times are seconds (float), 0.0 = never."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Cluster id of an unknown face that belongs to no cluster yet (noise / pending).
PENDING = -1


@dataclass(frozen=True)
class PersonRecord:
    """A remembered person with counts and first/last time seen."""

    person_id: int
    name: str
    created: float
    never_remember: bool = False
    num_embeddings: int = 0
    num_visits: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0


@dataclass(frozen=True)
class EmbeddingRecord:
    """One stored face of a person: vector, the embedder that made it, optional crop."""

    embedding_id: int
    person_id: int
    vector: np.ndarray
    embedder: str
    quality: float
    created: float
    source: str = ""
    crop: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Length of the vector."""
        return int(self.vector.shape[0])


@dataclass(frozen=True)
class UnknownRecord:
    """One unknown face: vector, crop, when and by which robot it was seen, its cluster."""

    unknown_id: int
    vector: np.ndarray
    embedder: str
    quality: float
    first_seen: float
    last_seen: float
    cluster_id: int = PENDING
    track_key: str = ""
    crop: np.ndarray | None = None
    robot_id: str = ""
    #: When the face took its cluster (``meta.cluster_seq``): a cluster listed at revision R
    #: held exactly its members with ``cluster_seq <= R``.
    cluster_seq: int = 0
    #: "Maybe <person>?": the enrolled person this face resembles in the uncertain band
    #: (-1 = none, a stranger's face) and that similarity (NaN = none).
    candidate_id: int = PENDING
    candidate_similarity: float = float("nan")

    @property
    def dim(self) -> int:
        """Length of the vector."""
        return int(self.vector.shape[0])


@dataclass(frozen=True)
class ClusterSummary:
    """A group of unknown faces; ``unknown_ids``/``sample_crops`` hold the best samples.

    Samples come best quality first (``qualities``); ``revision`` is the cluster's revision as
    listed: labelling or discarding the cluster at that revision acts on exactly the faces it
    held then (faces that joined later stay unknown).
    """

    cluster_id: int
    size: int
    first_seen: float
    last_seen: float
    embedder: str
    unknown_ids: list[int] = field(default_factory=list)
    sample_crops: list[np.ndarray] = field(default_factory=list)
    revision: int = 0
    qualities: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class CandidateFace:
    """An unknown face that may be an enrolled person ("maybe <name>?"), waiting for a yes/no."""

    unknown_id: int
    person_id: int
    name: str
    similarity: float
    quality: float
    first_seen: float
    crop: np.ndarray | None = None


@dataclass(frozen=True)
class VisitRecord:
    """One visit: continuous presence of a person, ``end`` 0.0 while in progress."""

    visit_id: int
    person_id: int
    name: str
    start: float
    last_seen: float
    end: float
    location: str
    robot_id: str
    dominant_activity: str
    activity_counts: dict[str, int] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        """True while the visit is in progress."""
        return self.end == 0.0


@dataclass(frozen=True)
class GalleryEntry:
    """One vector the identity engine may match against."""

    embedding_id: int
    person_id: int
    name: str
    vector: np.ndarray


@dataclass(frozen=True)
class GalleryNegative:
    """A vector that must never be matched to ``person_id`` ("not this person")."""

    person_id: int
    vector: np.ndarray
    face_id: int
    cluster_id: int = PENDING


@dataclass(frozen=True)
class Gallery:
    """Everything the identity engine needs for one embedder, at one revision."""

    revision: int
    embedder: str
    dim: int
    entries: list[GalleryEntry]
    negatives: list[GalleryNegative]
    negative_clusters: list[tuple[int, int]]
    opted_out: frozenset[int]
    names: dict[int, str]

    @property
    def vectors(self) -> np.ndarray:
        """The entries' vectors as an (N, dim) float32 matrix (rows L2-normalised)."""
        if not self.entries:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([e.vector for e in self.entries]).astype(np.float32, copy=False)

    @property
    def person_ids(self) -> np.ndarray:
        """The entries' person ids as an (N,) int64 array, aligned with ``vectors``."""
        return np.array([e.person_id for e in self.entries], dtype=np.int64)


@dataclass(frozen=True)
class LabelResult:
    """Outcome of labelling unknown faces: the person that holds them now."""

    person_id: int
    name: str
    num_embeddings: int
    created: bool


@dataclass(frozen=True)
class MemoryEventRecord:
    """One gallery change, in revision order (mirrors ``MemoryEvent.msg``)."""

    revision: int
    stamp: float
    kind: str
    person_ids: list[int]
    message: str


@dataclass(frozen=True)
class ReembedReport:
    """Outcome of re-embedding stored crops with another embedder."""

    embedder: str
    num_embeddings: int = 0
    num_unknowns: int = 0
    num_without_crop: int = 0
    num_failed: int = 0


@dataclass(frozen=True)
class PurgeReport:
    """Outcome of a retention purge."""

    num_unknowns: int = 0
    num_visits: int = 0
    num_events: int = 0


@dataclass(frozen=True)
class StoreStats:
    """Row counts and state, for diagnostics."""

    revision: int
    num_persons: int
    num_embeddings: int
    num_unknowns: int
    num_clusters: int
    num_visits: int
    writable: bool
    encrypted: bool
    schema_version: int
    num_non_faces: int = 0
    num_candidates: int = 0
