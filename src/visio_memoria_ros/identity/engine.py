"""``IdentityEngine``: the one façade the identity node and the CLI call.

It owns the gallery (index + names + negatives + opted-out persons), the per-track voter and the
greeting policy. ``process`` takes one frame's faces and a time and returns identity decisions,
greetings and ended visits. ``reload`` builds a new gallery off to the side and swaps it in
atomically, so label/forget/merge changes take effect without a restart.

Only vectors made by the active embedder are used: gallery entries and face embeddings from
another embedder are skipped with a logged reason (re-embed the stored crops instead).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..config.identity import (
    EMBEDDER_DEFAULT,
    PARAMS,
    check_params,
    embedder_defaults,
    resolve_instant,
    resolve_margin,
    resolve_thresholds,
)
from ..config.shared import UNTRACKED_HANDOFF, VISIT_ABSENCE
from ..config.spec import validate_value
from ..core.handoff import UntrackedHandoff
from ..core.types import NO_TRACK, FaceObservation, IdentityDecision, Status
from .greeting import Greeting, GreetingPolicy
from .index import NO_ID, GalleryIndex, IndexKind, validate_vectors
from .matcher import FrameScores, Matcher, Thresholds
from .voting import TrackVoter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GalleryEntry:
    """One stored identity vector: its id, owner person, the person's name and its embedder."""

    embedding_id: int
    person_id: int
    name: str
    vector: np.ndarray
    embedder: str


@dataclass(frozen=True)
class NegativeEntry:
    """A "this is not <person>" example vector, made by ``embedder``."""

    person_id: int
    vector: np.ndarray
    embedder: str


@dataclass(frozen=True)
class EngineConfig:
    """All identity settings; ``from_params`` builds it from identity_node parameter values."""

    embedder: str = "dlib_resnet_v1_128"
    accept_threshold: float = EMBEDDER_DEFAULT
    reject_threshold: float = EMBEDDER_DEFAULT
    instant_accept_threshold: float = EMBEDDER_DEFAULT
    accept_margin: float = EMBEDDER_DEFAULT
    untracked_handoff_s: float = float(UNTRACKED_HANDOFF.default)
    search_k: int = 32
    aggregate: str = "centroid"
    aggregate_top_n: int = 3
    vote_window: int = 5
    min_votes: int = 2
    switch_margin: float = 0.05
    track_timeout: float = 5.0
    greeting_template: str = "Welcome back, {name}!"
    visit_absence: float = float(VISIT_ABSENCE.default)
    greeting_cooldown: float = 300.0
    unknown_announcement: str = ""
    index_exact_max_size: int = 10_000
    index_approx_kind: str = "ivf"
    ivf_nlist: int = 0
    ivf_nprobe: int = 0
    hnsw_m: int = 32
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 64

    def __post_init__(self) -> None:
        for spec in PARAMS:
            problem = validate_value(spec, getattr(self, spec.name))
            if problem:
                raise ValueError(problem)
        problem = check_params(self.__dict__)
        if problem:
            raise ValueError(problem)

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> EngineConfig:
        """Build from ``{parameter name: value}`` (unknown names are ignored, missing = default)."""
        names = {s.name for s in PARAMS}
        return cls(**{k: v for k, v in values.items() if k in names})

    @property
    def thresholds(self) -> Thresholds:
        """Accept/reject thresholds with embedder defaults resolved."""
        acc, rej = resolve_thresholds(self.embedder, self.accept_threshold, self.reject_threshold)
        instant = resolve_instant(self.embedder, self.instant_accept_threshold, acc)
        margin = resolve_margin(self.embedder, self.accept_margin)
        return Thresholds(accept=acc, reject=rej, instant=instant, margin=margin)


@dataclass(frozen=True)
class GalleryReport:
    """What a gallery (re)load used and what it skipped, with reasons."""

    num_vectors: int
    num_persons: int
    num_negatives: int
    index_kind: str
    dim: int | None
    skipped: Mapping[str, int] = field(default_factory=dict)


@dataclass
class EngineOutput:
    """Result of one ``process`` call."""

    decisions: list[IdentityDecision]
    greetings: list[Greeting] = field(default_factory=list)
    expired_tracks: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Gallery:
    matcher: Matcher
    names: Mapping[int, str]
    opted_out: frozenset[int]

    @property
    def dim(self) -> int | None:
        return self.matcher.dim


class IdentityEngine:
    """Gallery + open-set matcher + track voting + greeting policy behind one call per frame."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self._state_lock = threading.Lock()
        self._frame_lock = threading.RLock()
        self._gallery = self._build_gallery((), (), ())[0]
        self._voter = self._new_voter()
        self._greeter = self._new_greeter()
        self._warned: set[str] = set()
        # Votes of untracked faces, claimable by the track each becomes (core.handoff).
        self._untracked: UntrackedHandoff[FrameScores] = UntrackedHandoff(
            max_age=self.config.untracked_handoff_s
        )
        self._session = ""  # the tracker run whose ids the tracks are ("" = none seen yet)

    # ------------------------------------------------------------------ gallery
    @property
    def embedder(self) -> str:
        """Id of the active embedder."""
        return self.config.embedder

    @property
    def thresholds(self) -> Thresholds:
        """Thresholds in use."""
        return self._gallery.matcher.thresholds

    @property
    def gallery_size(self) -> int:
        """Number of gallery vectors in use."""
        index = self._gallery.matcher.index
        return len(index) if index is not None else 0

    @property
    def index_kind(self) -> str:
        """FAISS structure in use ('exact', 'ivf', 'hnsw')."""
        index = self._gallery.matcher.index
        return index.kind.value if index is not None else IndexKind.EXACT.value

    def names(self) -> dict[int, str]:
        """Person id -> name of the persons in the gallery."""
        return dict(self._gallery.names)

    @property
    def matcher(self) -> Matcher:
        """The current matcher (single-embedding decisions, e.g. for the CLI)."""
        return self._gallery.matcher

    def load_gallery(
        self,
        entries: Iterable[GalleryEntry],
        negatives: Iterable[NegativeEntry] = (),
        opted_out: Iterable[int] = (),
    ) -> GalleryReport:
        """Replace the gallery with ``entries``; same as ``reload``."""
        return self.reload(entries, negatives, opted_out)

    def reload(
        self,
        entries: Iterable[GalleryEntry],
        negatives: Iterable[NegativeEntry] = (),
        opted_out: Iterable[int] = (),
    ) -> GalleryReport:
        """Build a new gallery and swap it in atomically; tracks of removed persons are reset.

        The new gallery is the whole truth: identity_node reloads the memory's whole gallery
        whenever ``memory/events`` announces a newer revision (labelling, merging, forgetting).
        """
        gallery, report = self._build_gallery(entries, negatives, opted_out)
        with self._state_lock:
            old = self._gallery
            self._gallery = gallery
        gone = set(old.names) - set(gallery.names)
        with self._frame_lock:
            self._voter.forget_persons(gone)
            for pid in gone:
                self._greeter.forget_person(pid)
        logger.info(
            "gallery loaded: %d vectors of %d persons (%s index, embedder %s), %d negatives%s",
            report.num_vectors,
            report.num_persons,
            report.index_kind,
            self.embedder,
            report.num_negatives,
            f", skipped {dict(report.skipped)}" if report.skipped else "",
        )
        return report

    def reconfigure(self, config: EngineConfig) -> bool:
        """Apply new settings without losing tracks or visits; returns True if a reload is due.

        Thresholds, aggregation, voting, greeting and search-time knobs apply at once. Index
        structure knobs (exact size, approximate kind, nlist, HNSW M/efConstruction) apply at the
        next ``reload``. A different embedder empties the gallery (its vectors no longer apply):
        the caller must ``reload`` with vectors of the new embedder.
        """
        old = self.config
        with self._state_lock:
            self.config = config
            gallery = self._gallery
            index = gallery.matcher.index
            if config.embedder != old.embedder:
                logger.warning(
                    "embedder changed %r -> %r: gallery emptied until it is reloaded",
                    old.embedder,
                    config.embedder,
                )
                self._warned.clear()
                index = None
                gallery = _Gallery(
                    self._new_matcher(None, {}, gallery.opted_out), {}, gallery.opted_out
                )
            elif index is not None:
                index.set_search_params(ivf_nprobe=config.ivf_nprobe, hnsw_ef=config.hnsw_ef_search)
            negatives = gallery.matcher.negatives() if index is not None else {}
            matcher = self._new_matcher(index, negatives, gallery.opted_out)
            self._gallery = replace(gallery, matcher=matcher)
        with self._frame_lock:
            if config.embedder != old.embedder:
                self._voter = self._new_voter()
            else:
                self._voter.configure(
                    config.thresholds,
                    window=config.vote_window,
                    min_votes=config.min_votes,
                    switch_margin=config.switch_margin,
                    track_timeout=config.track_timeout,
                )
            self._untracked.max_age = config.untracked_handoff_s
            self._greeter.configure(
                template=config.greeting_template,
                cooldown=config.greeting_cooldown,
                absence=config.visit_absence,
                unknown_text=config.unknown_announcement,
            )
        structural = (
            "index_exact_max_size",
            "index_approx_kind",
            "ivf_nlist",
            "hnsw_m",
            "hnsw_ef_construction",
        )
        return config.embedder != old.embedder or any(
            getattr(config, k) != getattr(old, k) for k in structural
        )

    # ------------------------------------------------------------------ frames
    def process(self, faces: Sequence[FaceObservation], t: float) -> EngineOutput:
        """Decide the identity of each face of one frame at time ``t`` [s]; greet when due.

        Returns one ``IdentityDecision`` per input face, in order. A face's track id keys the
        vote; faces without a track (``NO_TRACK``) are decided from their own embedding. A face
        without an embedding this frame keeps its track's current decision.
        """
        if not math.isfinite(t):
            raise ValueError(f"time must be finite, got {t}")
        gallery = self._gallery  # one consistent snapshot for the whole frame
        with self._frame_lock:
            expired = self._voter.expire(t)
            for tid in expired:
                self._greeter.forget_track(tid)
            self._greeter.expire(t)  # visits ended by absence: the next sighting greets

            queries: list[np.ndarray] = []
            query_of: dict[int, int] = {}
            for i, face in enumerate(faces):
                vec = self._usable_embedding(face, gallery.dim)
                if vec is not None:
                    query_of[i] = len(queries)
                    queries.append(vec)
            scored = gallery.matcher.score(np.stack(queries)) if queries else []

            observations: dict[int, FrameScores | None] = {}
            ephemeral: dict[int, FrameScores | None] = {}
            key_of: list[int] = []
            for i, face in enumerate(faces):
                scores = scored[query_of[i]] if i in query_of else None
                tid = int(face.track_id)
                if tid == NO_TRACK or tid in observations:
                    if tid != NO_TRACK:
                        logger.warning("track %d appears twice in one frame; deciding alone", tid)
                    key = -(10**12) - i  # cannot collide with tracker ids
                    ephemeral[key] = scores
                else:
                    key = tid
                    observations[tid] = scores
                key_of.append(key)
            self._claim_untracked_votes(faces, key_of, observations, gallery, t)
            decided = self._voter.decide_frame(
                observations, t, opted_out=gallery.opted_out, ephemeral=ephemeral
            )
            for i, face in enumerate(faces):
                scores = ephemeral.get(key_of[i])
                if scores is not None:
                    self._untracked.remember(face.bbox, t, scores)

            decisions: list[IdentityDecision] = []
            greetings: list[Greeting] = []
            for i, face in enumerate(faces):
                d = decided[key_of[i]]
                new_evidence = i in query_of and not d.suppressed
                name = gallery.names.get(d.person_id, "") if d.status is Status.KNOWN else ""
                candidate, cand_sim = NO_ID, float("nan")
                if new_evidence and d.status is not Status.KNOWN:
                    candidate, cand_sim = self._candidate(scored[query_of[i]], gallery)
                decisions.append(
                    IdentityDecision(
                        track_id=int(face.track_id),
                        bbox=face.bbox,
                        status=d.status,
                        person_id=d.person_id if d.status is Status.KNOWN else NO_ID,
                        name=name,
                        similarity=float(d.similarity),
                        new_evidence=new_evidence,
                        embedding=queries[query_of[i]] if new_evidence else None,
                        embedder=self.embedder if new_evidence else "",
                        quality=float(face.quality),
                        crop=None if d.suppressed else face.crop,
                        score=float(face.score),
                        landmarks=face.landmarks,
                        candidate_person_id=candidate,
                        candidate_similarity=cand_sim,
                    )
                )
                greeting = None
                if d.status is Status.KNOWN:
                    greeting = self._greeter.on_known(d.person_id, name, t, int(face.track_id))
                elif d.status is Status.UNKNOWN and face.track_id != NO_TRACK:
                    greeting = self._greeter.on_unknown(int(face.track_id), t)
                if greeting is not None:
                    greetings.append(greeting)
        return EngineOutput(decisions, greetings, expired_tracks=expired)

    @staticmethod
    def _candidate(scores: FrameScores, gallery: _Gallery) -> tuple[int, float]:
        """The person a face that is not KNOWN resembles at or above the reject threshold by
        its own embedding ("maybe <name>?"), and that similarity; (-1, NaN) when nobody."""
        for person, similarity in scores.ranked():
            if person in gallery.opted_out:
                continue
            if similarity >= gallery.matcher.thresholds.reject:
                return person, float(similarity)
            break
        return NO_ID, float("nan")

    def _claim_untracked_votes(
        self,
        faces: Sequence[FaceObservation],
        key_of: Sequence[int],
        observations: Mapping[int, FrameScores | None],
        gallery: _Gallery,
        t: float,
    ) -> None:
        """Seed each new track with the vote of the untracked face it was, if any."""
        if not len(self._untracked):
            return
        known_tracks = set(self._voter.track_ids())
        for i, face in enumerate(faces):
            tid = key_of[i]
            if tid not in observations or tid in known_tracks:
                continue
            claimed = self._untracked.claim(face.bbox, t)
            if claimed is None:
                continue
            t_seen, scores = claimed
            # Persons forgotten or merged away since that sighting no longer count.
            kept = {p: v for p, v in scores.scores.items() if p in gallery.names}
            excluded = frozenset(p for p in scores.excluded if p in gallery.names)
            self._voter.seed(tid, FrameScores(kept, scores.floor, excluded), t_seen)

    def reset_tracks(self) -> None:
        """Forget every track's evidence and announcement (e.g. the camera changed)."""
        with self._frame_lock:
            self._untracked.clear()
            for tid in self._voter.track_ids():
                self._voter.forget_track(tid)
                self._greeter.forget_track(tid)

    def observe_session(self, session: str) -> bool:
        """Note the tracker session of the next frame; True when it replaced another one.

        A restarted detector (or a reset tracker) hands out the same track ids again under a
        new session: the old tracks' votes, locks and announcements are then forgotten
        (``reset_tracks``), so they do not pass to the new faces that carry those ids. Visits
        stay, as they are kept per person. The first session seen resets nothing.
        """
        with self._frame_lock:
            if session == self._session:
                return False
            previous, self._session = self._session, session
            if not previous:
                return False
            self.reset_tracks()
            return True

    def resume_visits(self, visits: Iterable[tuple[int, float]], t: float) -> int:
        """Seed the greeting policy with visits still open (person id, start [s]) at ``t``.

        A restarted identity node calls this with the memory's open visits, so a person whose
        visit is in progress is not greeted a second time. Returns how many were taken over.
        """
        n = 0
        with self._frame_lock:
            for person_id, start in visits:
                self._greeter.resume_visit(int(person_id), float(start), t)
                n += 1
        return n

    # ------------------------------------------------------------------ internals
    def _usable_embedding(self, face: FaceObservation, dim: int | None) -> np.ndarray | None:
        if face.embedding is None or np.size(face.embedding) == 0:
            return None
        if face.embedder and face.embedder != self.embedder:
            self._warn_once(
                f"embedder:{face.embedder}",
                "ignoring face embeddings from embedder %r: the active embedder is %r",
                face.embedder,
                self.embedder,
            )
            return None
        vec = np.asarray(face.embedding, dtype=np.float32).reshape(-1)
        expected = dim or embedder_defaults(self.embedder).dim
        if expected is not None and vec.shape[0] != expected:
            self._warn_once(
                f"dim:{vec.shape[0]}",
                "ignoring %d-d face embeddings: the gallery holds %d-d vectors",
                vec.shape[0],
                expected,
            )
            return None
        try:
            return validate_vectors(vec, vec.shape[0])[0]
        except ValueError as exc:
            logger.warning("track %d: unusable embedding: %s", face.track_id, exc)
            return None

    def _warn_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(msg, *args)

    def _filter_entries(
        self, entries: Iterable[GalleryEntry], dim: int | None
    ) -> tuple[list[GalleryEntry], Counter[str]]:
        usable: list[GalleryEntry] = []
        skipped: Counter[str] = Counter()
        expected = dim or embedder_defaults(self.embedder).dim
        seen: set[int] = set()
        for e in entries:
            if e.embedder != self.embedder:
                skipped[f"embedder {e.embedder!r} is not the active {self.embedder!r}"] += 1
                continue
            vec = np.asarray(e.vector, dtype=np.float32).reshape(-1)
            if expected is None:
                expected = vec.shape[0]
            if vec.shape[0] != expected:
                skipped[f"dimension {vec.shape[0]} != {expected}"] += 1
                continue
            if not np.all(np.isfinite(vec)) or float(np.linalg.norm(vec)) < 1e-12:
                skipped["NaN, infinite or zero vector"] += 1
                continue
            if e.embedding_id in seen:
                skipped["duplicate embedding id"] += 1
                continue
            seen.add(e.embedding_id)
            usable.append(e)
        return usable, skipped

    def _build_gallery(
        self,
        entries: Iterable[GalleryEntry],
        negatives: Iterable[NegativeEntry],
        opted_out: Iterable[int],
    ) -> tuple[_Gallery, GalleryReport]:
        usable, skipped = self._filter_entries(entries, None)
        for reason, count in skipped.items():
            logger.warning("gallery: skipped %d vectors: %s", count, reason)
        opted = frozenset(int(p) for p in opted_out)
        index: GalleryIndex | None = None
        if usable:
            index = self._new_index(int(np.asarray(usable[0].vector).size))
            index.add(
                np.array([e.embedding_id for e in usable], np.int64),
                np.array([e.person_id for e in usable], np.int64),
                np.stack([np.asarray(e.vector, np.float32).reshape(-1) for e in usable]),
            )
        names = {e.person_id: e.name for e in usable}
        neg: dict[int, list[np.ndarray]] = {}
        for n in negatives:
            vec = np.asarray(n.vector, dtype=np.float32).reshape(-1)
            if n.embedder != self.embedder:
                skipped[f"negative from embedder {n.embedder!r}"] += 1
            elif index is None or vec.shape[0] != index.dim:
                skipped["negative without a matching gallery"] += 1
            elif not np.all(np.isfinite(vec)) or float(np.linalg.norm(vec)) < 1e-12:
                skipped["negative is NaN, infinite or zero"] += 1
            else:
                neg.setdefault(int(n.person_id), []).append(vec)
        neg_arrays = {p: np.stack(v) for p, v in neg.items()}
        matcher = self._new_matcher(index, neg_arrays, opted)
        gallery = _Gallery(matcher, names, opted)
        report = GalleryReport(
            num_vectors=len(usable),
            num_persons=len(names),
            num_negatives=sum(len(v) for v in neg.values()),
            index_kind=index.kind.value if index is not None else IndexKind.EXACT.value,
            dim=index.dim if index is not None else None,
            skipped=dict(skipped),
        )
        return gallery, report

    def _new_index(self, dim: int) -> GalleryIndex:
        c = self.config
        return GalleryIndex(
            dim,
            exact_max_size=c.index_exact_max_size,
            approx_kind=c.index_approx_kind,
            ivf_nlist=c.ivf_nlist,
            ivf_nprobe=c.ivf_nprobe,
            hnsw_m=c.hnsw_m,
            hnsw_ef_construction=c.hnsw_ef_construction,
            hnsw_ef_search=c.hnsw_ef_search,
        )

    def _new_matcher(
        self,
        index: GalleryIndex | None,
        negatives: Mapping[int, np.ndarray],
        opted_out: frozenset[int],
    ) -> Matcher:
        c = self.config
        return Matcher(
            index,
            c.thresholds,
            k=c.search_k,
            aggregate=c.aggregate,
            top_n=c.aggregate_top_n,
            negatives=negatives,
            opted_out=opted_out,
        )

    def _new_voter(self) -> TrackVoter:
        c = self.config
        return TrackVoter(
            c.thresholds,
            window=c.vote_window,
            min_votes=c.min_votes,
            switch_margin=c.switch_margin,
            track_timeout=c.track_timeout,
        )

    def _new_greeter(self) -> GreetingPolicy:
        c = self.config
        return GreetingPolicy(
            template=c.greeting_template,
            cooldown=c.greeting_cooldown,
            absence=c.visit_absence,
            unknown_text=c.unknown_announcement,
        )
