"""Domain rules of the memory, in plain Python: every backend applies these, none re-writes them.

The repositories fetch and store rows; what a visit, an unknown track or a label *means* is
decided here (names are validated and keyed in ``validation``, clusters formed in
``clustering``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import clustering
from .errors import ConflictError, MemoryStoreError, NotFoundError, OptedOutError
from .records import PENDING
from .validation import name_key, validate_name

DAY = 86400.0
#: A cluster id the caller must allocate (a new cluster starts).
NEW_CLUSTER = -2


# -- visits --------------------------------------------------------------------------------
def visit_continues(open_last_seen: float | None, t: float, absence: float) -> bool:
    """True when a sighting at ``t`` extends the open visit last seen at ``open_last_seen``."""
    return open_last_seen is not None and t - open_last_seen <= absence


def dominant_activity(counts: Mapping[str, int], current: str) -> str:
    """The most frequent activity of a visit; ties keep the one that got there first."""
    if not counts:
        return ""
    best = max(counts.values())
    if counts.get(current, -1) == best:
        return current
    return min(k for k, v in counts.items() if v == best)


def count_activity(counts: Mapping[str, int], activity: str) -> Counter[str]:
    """The visit's activity counts with one more ``activity`` (none when empty)."""
    out = Counter({str(k): int(v) for k, v in counts.items()})
    if activity:
        out[activity] += 1
    return out


def check_absence(absence: float) -> float:
    """The visit gap [s], or a refusal when it is not positive."""
    if not absence > 0:
        raise MemoryStoreError(f"the absence must be > 0 seconds, got {absence}")
    return float(absence)


def check_retention(days: object, what: str) -> float:
    """A retention in days (0 = keep), or a refusal."""
    if not (isinstance(days, (int, float)) and days >= 0):
        raise MemoryStoreError(f"{what} retention must be >= 0 days, got {days}")
    return float(days)


# -- persons -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PersonRow:
    """The stored columns of a person."""

    person_id: int
    name: str
    created: float
    never_remember: bool


def refuse_opted_out(person: PersonRow, consequence: str = "no face is stored") -> None:
    """Nothing new is stored about a person who asked never to be remembered."""
    if person.never_remember:
        raise OptedOutError(f"person {person.person_id} asked never to be remembered; "
                            f"{consequence}")


def refuse_taken_name(owner: int | None, person_id: int | None = None) -> None:
    """A name belongs to one person (case-insensitively, after NFC)."""
    if owner is None or owner == person_id:
        return
    if person_id is None:
        raise ConflictError(f"a person with that name already exists (person {owner})")
    raise ConflictError(f"person {owner} already has that name; merge the two persons instead")


def label_target_by_id(person: PersonRow, name: str) -> None:
    """Labelling to a person by id: a name, when given too, must be theirs; opted out refuses."""
    if isinstance(name, str) and name.strip() and (
            name_key(validate_name(name)) != name_key(person.name)):
        raise ConflictError(f"person {person.person_id} has another name; give either the "
                            "person id or the name, or rename the person first")
    refuse_opted_out(person)


def label_name(name: str) -> str:
    """The name a label without a person id gives, or a refusal."""
    if not (isinstance(name, str) and name.strip()):
        raise MemoryStoreError("give a name or a person id (>= 0)")
    return validate_name(name)


def check_owned(ids: Sequence[int], owners: Mapping[int, int], person_id: int) -> None:
    """Every embedding id exists and belongs to ``person_id``."""
    missing = [i for i in ids if i not in owners]
    if missing:
        raise NotFoundError(f"embedding(s) {fmt_ids(missing)} do not exist")
    foreign = [i for i in ids if owners[i] != person_id]
    if foreign:
        raise ConflictError(f"embedding(s) {fmt_ids(foreign)} do not belong to person "
                            f"{person_id}")


# -- unknown faces -------------------------------------------------------------------------
@dataclass
class UnknownIndex:
    """One embedder's unknown vectors, for incremental clustering (``version``: when read)."""

    ids: list[int]
    vectors: np.ndarray
    clusters: list[int]
    version: int = -1

    def add(self, face_id: int, vector: np.ndarray, cluster: int, promoted: Sequence[int]
            ) -> None:
        """Record a committed new face and the pending faces it promoted into its cluster."""
        moved = set(promoted)
        self.clusters = [cluster if i in moved else c
                         for i, c in zip(self.ids, self.clusters, strict=True)]
        self.ids.append(face_id)
        self.clusters.append(cluster)
        self.vectors = np.vstack([self.vectors.reshape(-1, vector.shape[0]), vector[None, :]])


def assign_cluster(index: UnknownIndex, vector: np.ndarray, params: clustering.ClusterParams,
                   track_clusters: Sequence[int] = ()) -> tuple[int, list[int]]:
    """The cluster a new unknown face joins, and the pending faces promoted with it.

    Similarity to a cluster is the face's average similarity to its members (average linkage,
    as the re-clustering merges). Its track's cluster when the face is at least
    ``params.similarity`` to it (a track whose ids swapped to another person, or a new detector
    session reusing an id, shows another face: it does not join); else the most similar
    cluster at or above the similarity; else a new cluster (``NEW_CLUSTER``) with the pending
    faces close enough, when they make ``min_size`` together (or always when ``min_size`` is
    1); else ``PENDING``.
    """
    clusters = np.asarray(index.clusters, dtype=np.int64)
    means = clustering.means_of(index.vectors, clusters) if len(clusters) else {}
    v = np.asarray(vector, dtype=np.float32)
    known = Counter(int(c) for c in track_clusters if int(c) != PENDING and int(c) in means)
    for cid, _ in known.most_common():
        if float(means[cid] @ v) >= params.similarity:
            return cid, []
    cluster, _ = clustering.nearest_cluster(v, means, params.similarity)
    if cluster != PENDING:
        return cluster, []
    pending = clusters == PENDING
    pending_ids = [i for i, p in zip(index.ids, pending, strict=True) if p]
    promote = clustering.pending_group(v, pending_ids, index.vectors[pending],
                                       params.similarity, params.min_size)
    if promote or params.min_size <= 1:
        return NEW_CLUSTER, promote
    return PENDING, []


@dataclass(frozen=True)
class TrackFace:
    """One stored unknown face of a track: id, quality, cluster, vector."""

    face_id: int
    quality: float
    cluster_id: int
    vector: np.ndarray | None = None


#: What to do with a new face of a track (``track_step``).
INSERT, REPLACE, SKIP = "insert", "replace", "skip"


def same_person(faces: Sequence[TrackFace], vector: np.ndarray, similarity: float
                ) -> list[TrackFace]:
    """The faces of a track that show the same person as ``vector`` (cosine >= similarity)."""
    v = np.asarray(vector, dtype=np.float32)
    return [f for f in faces if f.vector is not None and f.vector.shape == v.shape
            and float(f.vector @ v) >= similarity]


def track_step(faces: Sequence[TrackFace], vector: np.ndarray, quality: float,
               max_per_track: int, similarity: float) -> tuple[str, int | None]:
    """What a new face of a track does: ``(INSERT, None)``, ``(REPLACE, worst id)`` or
    ``(SKIP, id to report)``.

    The cap counts only the track's faces of the same person as the new face: a track whose
    id passed to another person (tracker swap, detector restart) never drops or overwrites
    the first person's faces. At the cap, a better face replaces the worst one of that person
    (the worst is deleted and the new one stored under a new id: no stored face ever changes
    its crop or vector); a face no better is not stored.
    """
    same = sorted(same_person(faces, vector, similarity), key=lambda f: (f.quality, f.face_id))
    if len(same) < max_per_track:
        return INSERT, None
    worst = same[0]
    if quality > worst.quality:
        return REPLACE, worst.face_id
    return SKIP, same[-1].face_id


def non_face_match(vector: np.ndarray, examples: np.ndarray) -> float:
    """The highest cosine similarity of ``vector`` to the non-face examples (-1 when none)."""
    if examples.size == 0 or examples.shape[1] != np.asarray(vector).shape[0]:
        return -1.0
    return float(np.max(examples @ np.asarray(vector, dtype=np.float32)))


def shift_new_clusters(changes: Sequence[tuple[int, int]], start_next: int, shift: int
                       ) -> list[tuple[int, int]]:
    """Move cluster ids handed out by a re-clustering past those allocated meanwhile."""
    return [(c + shift if c >= start_next else c, i) for c, i in changes]


def matching_faces(person_vectors: np.ndarray, ids: Sequence[int], vectors: np.ndarray,
                   similarity: float) -> list[int]:
    """The faces (``ids``/``vectors``) that are the person's: cosine >= ``similarity`` to one of
    ``person_vectors`` (the rule that would cluster them together). Forget-me deletes them."""
    if not len(ids) or not len(person_vectors):
        return []
    best = (np.asarray(vectors, np.float32) @ np.asarray(person_vectors, np.float32).T).max(
        axis=1)
    return [int(i) for i, s in zip(ids, best, strict=True) if s >= similarity]


# -- small helpers -------------------------------------------------------------------------
def chunks(ids: Sequence[int], size: int = 500) -> Iterator[list[int]]:
    """Yield ``ids`` in lists small enough for a statement's parameter limit."""
    ids = list(ids)
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def fmt_ids(ids: Sequence[int], limit: int = 10) -> str:
    """Return "1, 2, 3" (shortened with "...")."""
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (", ..." if len(ids) > limit else "")
