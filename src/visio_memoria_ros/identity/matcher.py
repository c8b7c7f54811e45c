"""Open-set matching: gallery neighbours -> one score per person -> KNOWN / UNCERTAIN / UNKNOWN.

A query's k nearest gallery vectors are grouped by person and aggregated (max similarity, or the
mean of the person's top-n). A person is excluded for a query when the query is more similar to
one of the person's negative examples ("this is not X") than to the person's own vectors. The
best remaining person is KNOWN at or above the accept threshold, UNKNOWN below the reject
threshold and UNCERTAIN in between. Persons who opted out (never-remember) are never KNOWN: a
face that matches one of them is reported as *suppressed* so callers neither store nor greet it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..core.types import Status
from .index import NO_ID, GalleryIndex, validate_vectors

logger = logging.getLogger(__name__)

AGGREGATES = ("max", "mean_top_n")


@dataclass(frozen=True)
class Thresholds:
    """Open-set cosine thresholds: KNOWN at >= accept, UNKNOWN below reject, UNCERTAIN between.

    ``instant`` (>= accept) is where a single embedding suffices for a track to be KNOWN
    (``TrackVoter``); the default, +inf, always waits for the track's ``min_votes``.
    """

    accept: float
    reject: float
    instant: float = math.inf

    def __post_init__(self) -> None:
        for name in ("accept", "reject"):
            value = getattr(self, name)
            if not (math.isfinite(value) and -1.0 <= value <= 1.0):
                raise ValueError(f"{name} threshold must be a cosine in [-1, 1], got {value}")
        if self.reject > self.accept:
            raise ValueError(f"reject threshold {self.reject} exceeds accept {self.accept}")
        if math.isnan(self.instant) or self.instant < self.accept:
            raise ValueError(f"instant threshold {self.instant} is below accept {self.accept}")

    def classify(self, similarity: float) -> Status:
        """Status of a similarity on its own (no opt-out, no voting)."""
        if not math.isfinite(similarity) or similarity < self.reject:
            return Status.UNKNOWN
        return Status.KNOWN if similarity >= self.accept else Status.UNCERTAIN


@dataclass(frozen=True)
class FrameScores:
    """Per-person similarities of one query embedding.

    ``scores`` holds the aggregated similarity of every retrieved, non-excluded person.
    ``floor`` bounds the similarity of every other person from above (the similarity of the
    last neighbour retrieved; -1 when nothing was retrieved). ``excluded`` lists persons ruled
    out by their negative examples.
    """

    scores: Mapping[int, float] = field(default_factory=dict)
    floor: float = -1.0
    excluded: frozenset[int] = frozenset()

    def get(self, person_id: int) -> float:
        """Similarity of ``person_id``: its score, or ``floor`` when absent or excluded."""
        return float(self.scores.get(person_id, self.floor))

    def ranked(self) -> list[tuple[int, float]]:
        """(person id, similarity) pairs, best first."""
        return sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0]))

    def best(self) -> tuple[int, float]:
        """The most similar person and its similarity, or (-1, nan) when there is none."""
        ranked = self.ranked()
        return ranked[0] if ranked else (NO_ID, float("nan"))


@dataclass(frozen=True)
class MatchResult:
    """Single-embedding decision: status, best person (-1 = none), similarity, suppression."""

    status: Status
    person_id: int
    similarity: float
    scores: FrameScores
    suppressed: bool = False


class Matcher:
    """Turns query embeddings into per-person scores and open-set decisions over a gallery."""

    def __init__(
        self,
        index: GalleryIndex | None,
        thresholds: Thresholds,
        *,
        k: int = 32,
        aggregate: str = "max",
        top_n: int = 3,
        negatives: Mapping[int, np.ndarray] | None = None,
        opted_out: Iterable[int] = (),
    ) -> None:
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
        if k < 1 or top_n < 1:
            raise ValueError(f"k and top_n must be >= 1, got k={k}, top_n={top_n}")
        self.index = index
        self.thresholds = thresholds
        self.k = int(k)
        self.aggregate = aggregate
        self.top_n = int(top_n)
        self.opted_out: frozenset[int] = frozenset(int(p) for p in opted_out)
        self._neg_vectors = np.zeros((0, index.dim if index else 0), np.float32)
        self._neg_owner = np.zeros(0, np.int64)
        if negatives:
            self._set_negatives(negatives)

    @property
    def dim(self) -> int | None:
        """Embedding dimension of the gallery, or None when there is no gallery."""
        return self.index.dim if self.index is not None else None

    def negatives(self) -> dict[int, np.ndarray]:
        """Negative example vectors per person (copies)."""
        return {
            int(p): self._neg_vectors[self._neg_owner == p].copy()
            for p in np.unique(self._neg_owner)
        }

    def _set_negatives(self, negatives: Mapping[int, np.ndarray]) -> None:
        if self.index is None:
            logger.warning("negatives ignored: there is no gallery to match against")
            return
        vecs, owners = [], []
        for person_id, raw in negatives.items():
            arr = np.asarray(raw, dtype=np.float32)
            if arr.size == 0:
                continue
            v = validate_vectors(arr, self.index.dim)
            vecs.append(v)
            owners.append(np.full(len(v), int(person_id), np.int64))
        if vecs:
            self._neg_vectors = np.concatenate(vecs)
            self._neg_owner = np.concatenate(owners)

    def score(self, queries: np.ndarray) -> list[FrameScores]:
        """Per-person scores of each query row (negatives applied, opted-out persons kept)."""
        if self.index is None or len(self.index) == 0:
            n = 0 if np.size(queries) == 0 else np.atleast_2d(queries).shape[0]
            return [FrameScores() for _ in range(n)]
        q = validate_vectors(queries, self.index.dim)
        if len(q) == 0:
            return []
        res = self.index.search(q, self.k)
        neg_sims = q @ self._neg_vectors.T if len(self._neg_owner) else None
        out = []
        for row in range(len(q)):
            valid = res.person_ids[row] != NO_ID
            sims = res.similarities[row][valid]
            pids = res.person_ids[row][valid]
            floor = float(sims[-1]) if len(sims) else -1.0
            per_person: dict[int, list[float]] = {}
            for pid, sim in zip(pids.tolist(), sims.tolist(), strict=True):
                per_person.setdefault(pid, []).append(sim)  # already sorted, best first
            scores: dict[int, float] = {}
            excluded: set[int] = set()
            for pid, person_sims in per_person.items():
                if neg_sims is not None:
                    own = neg_sims[row][self._neg_owner == pid]
                    if len(own) and float(own.max()) > person_sims[0]:
                        excluded.add(pid)
                        continue
                if self.aggregate == "max":
                    scores[pid] = person_sims[0]
                else:
                    scores[pid] = float(np.mean(person_sims[: self.top_n]))
            out.append(FrameScores(scores, floor, frozenset(excluded)))
        return out

    def decide(self, scores: FrameScores) -> MatchResult:
        """Open-set decision for one query's scores (single embedding, no voting)."""
        return decide(scores, self.thresholds, self.opted_out)

    def match(self, queries: np.ndarray) -> list[MatchResult]:
        """Open-set decision for each query row on its own (the CLI's single-image path)."""
        return [self.decide(s) for s in self.score(queries)]


def decide(scores: FrameScores, thresholds: Thresholds, opted_out: frozenset[int]) -> MatchResult:
    """KNOWN / UNCERTAIN / UNKNOWN for one set of scores; a likely opted-out person suppresses."""
    person_id, sim = scores.best()
    if person_id == NO_ID:
        return MatchResult(Status.UNKNOWN, NO_ID, float("nan"), scores)
    if person_id in opted_out and sim >= thresholds.reject:
        return MatchResult(Status.UNCERTAIN, NO_ID, float("nan"), scores, suppressed=True)
    status = thresholds.classify(sim)
    return MatchResult(status, person_id, sim, scores)
