"""Open-set matching: gallery neighbours -> one score per person -> KNOWN / UNCERTAIN / UNKNOWN.

A query's k nearest gallery vectors are grouped by person and aggregated: ``max`` (the best
vector), ``mean_top_n`` (the mean of the person's top n retrieved vectors) or ``centroid`` (the
cosine to the normalised mean of all the person's vectors, searched in a second index of one
vector per person). A person is excluded for a query when the query is more similar to one of
the person's negative examples ("this is not X") than to the person's own score. The best
remaining person is KNOWN when it reaches the accept threshold AND beats the runner-up (the best
other person, whoever it is) by at least the margin; UNKNOWN below the reject threshold;
UNCERTAIN otherwise. Persons who opted out (never-remember) are never KNOWN: a face that matches
one of them is reported as *suppressed* so callers neither store nor greet it.
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

AGGREGATES = ("max", "mean_top_n", "centroid")
#: Neighbours searched, at least, for a query whose first k all belong to one person.
RUNNER_UP_K = 256


@dataclass(frozen=True)
class Thresholds:
    """Open-set cosine thresholds: KNOWN at >= accept, UNKNOWN below reject, UNCERTAIN between.

    ``instant`` (>= accept) is where a single embedding suffices for a track to be KNOWN
    (``TrackVoter``); the default, +inf, always waits for the track's ``min_votes``. ``margin``
    is how far the best person must stay above the runner-up person to be KNOWN (0 = off).
    """

    accept: float
    reject: float
    instant: float = math.inf
    margin: float = 0.0

    def __post_init__(self) -> None:
        for name in ("accept", "reject"):
            value = getattr(self, name)
            if not (math.isfinite(value) and -1.0 <= value <= 1.0):
                raise ValueError(f"{name} threshold must be a cosine in [-1, 1], got {value}")
        if self.reject > self.accept:
            raise ValueError(f"reject threshold {self.reject} exceeds accept {self.accept}")
        if math.isnan(self.instant) or self.instant < self.accept:
            raise ValueError(f"instant threshold {self.instant} is below accept {self.accept}")
        if not (math.isfinite(self.margin) and 0.0 <= self.margin <= 2.0):
            raise ValueError(f"margin must be a cosine difference in [0, 2], got {self.margin}")

    def classify(self, similarity: float, runner_up: float = -math.inf) -> Status:
        """Status of a best similarity and its runner-up's (no opt-out, no voting)."""
        if not math.isfinite(similarity) or similarity < self.reject:
            return Status.UNKNOWN
        if similarity >= self.accept and self.clear_of(similarity, runner_up):
            return Status.KNOWN
        return Status.UNCERTAIN

    def clear_of(self, similarity: float, runner_up: float) -> bool:
        """True when ``similarity`` beats the runner-up's by at least ``margin``."""
        if self.margin <= 0.0 or not math.isfinite(runner_up):
            return True
        return similarity - runner_up >= self.margin - 1e-9


@dataclass(frozen=True)
class FrameScores:
    """Per-person similarities of one query embedding.

    ``scores`` holds the aggregated similarity of every retrieved, non-excluded person.
    ``floor`` bounds the similarity of every other person from above (the similarity of the
    last neighbour retrieved; -1 when the search retrieved the whole gallery or nothing).
    ``excluded`` lists persons ruled out by their negative examples.
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

    def runner_up(self, person_id: int) -> float:
        """The best similarity of any person other than ``person_id`` (``floor`` if none)."""
        others = [s for p, s in self.scores.items() if p != person_id]
        return max(others) if others else self.floor


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
        self._centroids = self._build_centroids() if aggregate == "centroid" else None
        if negatives:
            self._set_negatives(negatives)

    def _build_centroids(self) -> GalleryIndex | None:
        """One normalised mean vector per person (id = person id), for ``centroid``."""
        if self.index is None or len(self.index) == 0:
            return None
        ids = self.index.ids()
        vectors = self.index.vectors(ids)
        owners = np.array([self.index.person_of(int(i)) for i in ids], np.int64)
        persons = np.unique(owners)
        sums = np.zeros((len(persons), self.index.dim), np.float64)
        np.add.at(sums, np.searchsorted(persons, owners), vectors)
        centroids = GalleryIndex(self.index.dim, exact_max_size=max(len(persons), 1))
        centroids.add(persons, persons, sums.astype(np.float32))  # normalised by the index
        return centroids

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
        searched = self._centroids if self._centroids is not None else self.index
        res = searched.search(q, self.k)
        sims_rows = list(res.similarities)
        pids_rows = list(res.person_ids)
        searched_k = [self.k] * len(q)
        # The margin needs a runner-up: a row whose k neighbours all belong to one person is
        # searched again, deeper, when the gallery holds other persons.
        deeper_k = min(len(searched), max(8 * self.k, RUNNER_UP_K))
        if deeper_k > self.k:
            lonely = [
                r for r in range(len(q)) if len(set(pids_rows[r][pids_rows[r] != NO_ID])) < 2
            ]
            if lonely:
                again = searched.search(q[lonely], deeper_k)
                for j, r in enumerate(lonely):
                    sims_rows[r], pids_rows[r] = again.similarities[j], again.person_ids[j]
                    searched_k[r] = deeper_k
        neg_sims = q @ self._neg_vectors.T if len(self._neg_owner) else None
        out = []
        for row in range(len(q)):
            valid = pids_rows[row] != NO_ID
            sims = sims_rows[row][valid]
            pids = pids_rows[row][valid]
            # Every vector retrieved: no person is left out, so nobody sits at the floor.
            exhausted = searched_k[row] >= len(searched)
            floor = float(sims[-1]) if len(sims) and not exhausted else -1.0
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
                if self.aggregate == "mean_top_n":
                    scores[pid] = float(np.mean(person_sims[: self.top_n]))
                else:  # max, or centroid (one vector per person)
                    scores[pid] = person_sims[0]
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
    status = thresholds.classify(sim, scores.runner_up(person_id))
    return MatchResult(status, person_id, sim, scores)
