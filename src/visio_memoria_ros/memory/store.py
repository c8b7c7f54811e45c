"""``RepositoryStore``: the one implementation of ``MemoryStore``, over any ``Database``.

Each operation validates its input, opens one transaction of the backend, applies the domain
rules (``rules``) and reads and writes rows through the repositories, one per aggregate
(``repositories/``). It never sees SQL. ``SQLiteStore`` and ``PostgresStore`` differ only in
the ``Database`` they hand over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from . import clustering, rules
from .base import EmbedFn, MemoryStore
from .codec import CropCodec
from .database import WRITE_LOCK, Conn, Database
from .errors import (
    ConflictError,
    MemoryStoreError,
    NotAFaceError,
    NotFoundError,
    StoreUnavailable,
)
from .options import StoreOptions
from .privacy import BlobCipher
from .records import (
    PENDING,
    CandidateFace,
    ClusterSummary,
    EmbeddingRecord,
    Gallery,
    LabelResult,
    MemoryEventRecord,
    PersonRecord,
    PurgeReport,
    ReembedReport,
    StoreStats,
    UnknownRecord,
    VisitRecord,
)
from .repositories import (
    Blobs,
    EventRepository,
    FaceRepository,
    GalleryRepository,
    NonFaceRepository,
    PersonRepository,
    ReembedRepository,
    RetentionRepository,
    UnknownRepository,
    VisitRepository,
)
from .validation import (
    name_key,
    validate_embedder,
    validate_id,
    validate_ids,
    validate_label,
    validate_name,
    validate_quality,
    validate_time,
    validate_vector,
)

LOG = logging.getLogger(__name__)


class RepositoryStore(MemoryStore):
    """MemoryStore over a ``Database``: transactions, rules, repositories."""

    def __init__(self, db: Database, options: StoreOptions, cipher: BlobCipher,
                 clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self._clock = clock
        self._cipher = cipher
        self._db = db
        self._closed = False
        blobs = Blobs(db.vectors, cipher, CropCodec(options.crop_format, options.crop_quality),
                      options.store_crops)
        self._blobs = blobs
        self.events = EventRepository(db, blobs)
        self.persons = PersonRepository(db, blobs)
        self.faces = FaceRepository(db, blobs)
        self.unknowns = UnknownRepository(db, blobs)
        self.visits = VisitRepository(db, blobs)
        self.galleries = GalleryRepository(db, blobs)
        self.reembeds = ReembedRepository(db, blobs)
        self.retention = RetentionRepository(db, blobs)
        self.non_faces = NonFaceRepository(db, blobs)

    # -- plumbing --------------------------------------------------------------------------
    @property
    def database(self) -> Database:
        """The backend this store works through."""
        return self._db

    @property
    def where(self) -> str:
        """Where the memory is: a file path, or a server URL without its password."""
        return self._db.where

    def set_options(self, options: StoreOptions) -> None:
        """Change the store's behaviour at run time; every write from now on follows it.

        Crop storage, crop format and quality, robot id, visit gap, clustering, per-track
        limit and retention may change; durability and read-only mode may not.
        """
        if (options.synchronous.upper() != self.options.synchronous.upper()
                or options.read_only != self.options.read_only):
            raise ValueError("synchronous and read_only apply only when the store is opened")
        codec = CropCodec(options.crop_format, options.crop_quality)
        with self._db.lock:
            self._blobs.codec = codec
            self._blobs.store_crops = options.store_crops
            self.options = options

    def close(self) -> None:
        """Release the backend."""
        with self._db.lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()

    @property
    def writable(self) -> bool:
        """False when the store was opened read-only."""
        return self._db.writable

    @property
    def encrypted(self) -> bool:
        """True when crops (and, where the backend can, vectors) are encrypted at rest."""
        return self._cipher.enabled

    def _now(self, t: float | None) -> float:
        return self._clock() if t is None else validate_time(t)

    @contextmanager
    def _read(self) -> Iterator[Conn]:
        with self._db.lock:
            if self._closed:
                raise StoreUnavailable("the memory store is closed", reason="unavailable")
            with self._db.read() as conn:
                yield conn

    @contextmanager
    def _tx(self, *, keep_cache: bool = False, locks: Sequence[str] = (WRITE_LOCK,)
            ) -> Iterator[Conn]:
        """One write transaction: all of it commits, or none of it (then re-raise)."""
        with self._db.lock:
            if self._closed:
                raise StoreUnavailable("the memory store is closed", reason="unavailable")
            try:
                with self._db.transaction(locks) as conn:
                    yield conn
            except BaseException:
                self.unknowns.forget_index()
                raise
            if not keep_cache:
                self.unknowns.forget_index()

    def _bump(self, conn: Conn, kind: str, person_ids: Sequence[int], message: str) -> int:
        return self.events.bump(conn, kind, person_ids, message, self._clock())

    def watch(self, callback: Callable[[int], None]) -> bool:
        """Call ``callback(revision)`` on every change anyone commits; False: poll instead."""
        return self._db.watch(callback)

    # -- persons ---------------------------------------------------------------------------
    def create_person(self, name: str, *, never_remember: bool = False,
                      t: float | None = None) -> PersonRecord:
        """Create a person; refuses a name another person already has."""
        name = validate_name(name)
        now = self._now(t)
        with self._tx() as conn:
            rules.refuse_taken_name(self.persons.name_owner(conn, name))
            pid = self.persons.insert(conn, name, never_remember, now)
            self._bump(conn, "labelled", [pid], f"person {pid} created")
            record = self.persons.record(conn, self.persons.row(conn, pid))
        LOG.info("created person %d", pid)
        return record

    def get_person(self, person_id: int) -> PersonRecord:
        """Return one person with counts; NotFoundError when absent."""
        with self._read() as conn:
            return self.persons.record(conn, self.persons.row(conn, person_id))

    def find_person(self, name: str) -> PersonRecord | None:
        """Return the person with this name (case-insensitive), or None."""
        name = validate_name(name)
        with self._read() as conn:
            pid = self.persons.name_owner(conn, name)
            return None if pid is None else self.persons.record(conn,
                                                                 self.persons.row(conn, pid))

    def list_persons(self, name_filter: str = "") -> list[PersonRecord]:
        """Return persons whose name contains ``name_filter`` (case-insensitive), by name."""
        if not isinstance(name_filter, str):
            raise MemoryStoreError("the name filter must be text")
        needle = name_key(name_filter.strip())
        with self._read() as conn:
            return [self.persons.record(conn, row) for row, key in self.persons.all_rows(conn)
                    if needle in key]

    def rename_person(self, person_id: int, name: str) -> PersonRecord:
        """Rename a person; refuses a name another person has."""
        name = validate_name(name)
        with self._tx() as conn:
            pid = self.persons.row(conn, person_id).person_id
            rules.refuse_taken_name(self.persons.name_owner(conn, name), pid)
            self.persons.rename(conn, pid, name)
            self._bump(conn, "renamed", [pid], f"person {pid} renamed")
            record = self.persons.record(conn, self.persons.row(conn, pid))
        LOG.info("renamed person %d", pid)
        return record

    def merge_persons(self, source_id: int, target_id: int) -> int:
        """Move everything of ``source_id`` to ``target_id``, delete the source; returns #moved."""
        with self._tx() as conn:
            src = self.persons.row(conn, source_id)
            dst = self.persons.row(conn, target_id)
            s, d = src.person_id, dst.person_id
            if s == d:
                raise ConflictError(f"cannot merge person {s} into itself")
            moved = self.faces.move_all(conn, s, d)
            self.visits.move_all(conn, s, d)
            self.unknowns.move_candidates(conn, s, d)
            self.faces.merge_negatives(conn, s, d)
            if src.never_remember and not dst.never_remember:
                self.persons.set_never_remember(conn, d, True)
            self.persons.delete(conn, s)
            self._bump(conn, "merged", [s, d], f"person {s} merged into person {d} "
                       f"({moved} embeddings)")
        LOG.info("merged person %d into %d (%d embeddings)", s, d, moved)
        return int(moved)

    def split_person(self, person_id: int, embedding_ids: Sequence[int],
                     new_name: str) -> PersonRecord:
        """Move the given embeddings of ``person_id`` to a new person called ``new_name``."""
        new_name = validate_name(new_name)
        ids = validate_ids(embedding_ids, "embedding id")
        now = self._clock()
        with self._tx() as conn:
            row = self.persons.row(conn, person_id)
            pid = row.person_id
            rules.check_owned(ids, self.faces.owners(conn, ids), pid)
            rules.refuse_taken_name(self.persons.name_owner(conn, new_name))
            new_id = self.persons.insert(conn, new_name, row.never_remember, now)
            self.faces.move(conn, ids, new_id)
            self._bump(conn, "split", [pid, new_id],
                       f"{len(ids)} embeddings of person {pid} split into person {new_id}")
            record = self.persons.record(conn, self.persons.row(conn, new_id))
        LOG.info("split %d embeddings of person %d into person %d", len(ids), pid, new_id)
        return record

    def not_this_person(self, person_id: int, embedding_ids: Sequence[int] = (),
                        unknown_cluster_id: int = -1) -> int:
        """Move embeddings back to the unknowns and record negative links; returns #moved."""
        ids = validate_ids(embedding_ids, "embedding id") if len(embedding_ids) else []
        cluster = int(unknown_cluster_id)
        if not ids and cluster < 0:
            raise MemoryStoreError("give the embedding ids that are not this person, or an "
                                   "unknown cluster id (>= 0)")
        now = self._clock()
        with self._tx() as conn:
            pid = self.persons.row(conn, person_id).person_id
            if ids:
                rules.check_owned(ids, self.faces.owners(conn, ids), pid)
                self.faces.to_unknowns(conn, ids)
                self.faces.add_face_negatives(conn, pid, ids, now)
            if cluster >= 0:
                if self.unknowns.cluster_size(conn, cluster) == 0:
                    raise NotFoundError(f"unknown cluster {cluster} does not exist")
                self.faces.add_cluster_negative(conn, pid, cluster, now)
            self._bump(conn, "not_this_person", [pid],
                       f"{len(ids)} embeddings moved out of person {pid}"
                       + (f"; cluster {cluster} is not person {pid}" if cluster >= 0 else ""))
        LOG.info("not person %d: moved %d embeddings, cluster %d", pid, len(ids), cluster)
        return len(ids)

    def forget_person(self, person_id: int) -> None:
        """Delete every trace of a person: row, embeddings, crops, visits, negative links, and
        the unknown faces that match them (sightings stored before they were named)."""
        with self._tx() as conn:
            pid = self.persons.row(conn, person_id).person_id
            own = self.faces.of_person(conn, pid, with_crops=False)
            faces = [e.embedding_id for e in own]
            matching: list[int] = []
            for embedder in sorted({e.embedder for e in own}):
                mine = np.stack([e.vector for e in own if e.embedder == embedder])
                ids, vectors = self.galleries.vectors(conn, "unknowns", embedder)
                matching += rules.matching_faces(mine, ids, vectors,
                                                 self.options.cluster.similarity)
            # Faces offered as "maybe <this person>?" are likely theirs too.
            matching = sorted(set(matching) | set(self.unknowns.candidates_of(conn, pid)))
            self.faces.delete_face_negatives(conn, faces + matching)
            self.unknowns.delete(conn, matching)
            self.faces.delete_negatives_of(conn, pid)
            self.faces.delete_of_person(conn, pid)
            self.visits.delete_of_person(conn, pid)
            self.events.forget_person(conn, pid)
            self.persons.delete(conn, pid)
            self._bump(conn, "forgotten", [pid], f"person {pid} forgotten")
        self._db.erased()
        LOG.info("forgot person %d (%d embeddings, %d matching unknown faces)", pid, len(faces),
                 len(matching))

    def set_never_remember(self, person_id: int, never_remember: bool) -> PersonRecord:
        """Opt a person out of (or back into) being stored and greeted."""
        if not isinstance(never_remember, (bool, np.bool_)):
            raise MemoryStoreError("never_remember must be true or false")
        with self._tx() as conn:
            pid = self.persons.row(conn, person_id).person_id
            self.persons.set_never_remember(conn, pid, bool(never_remember))
            self._bump(conn, "never_remember", [pid], f"person {pid} never_remember="
                       f"{bool(never_remember)}")
            record = self.persons.record(conn, self.persons.row(conn, pid))
        return record

    # -- embeddings ------------------------------------------------------------------------
    def add_embedding(self, person_id: int, vector: np.ndarray, embedder: str, *,
                      quality: float = 0.0, crop: np.ndarray | None = None, source: str = "",
                      t: float | None = None) -> EmbeddingRecord:
        """Store one face of a known person (enrolment)."""
        embedder = validate_embedder(embedder)
        v = validate_vector(vector)
        quality = validate_quality(quality)
        source = validate_label(source, "the source")
        now = self._now(t)
        crop_blob = self._blobs.crop(crop)
        with self._tx() as conn:
            row = self.persons.row(conn, person_id)
            pid = row.person_id
            rules.refuse_opted_out(row)
            self.faces.register_embedder(conn, embedder, v.shape[0], now)
            face_id = self.events.next_face_id(conn)
            self.faces.insert(conn, face_id, pid, v, embedder=embedder, quality=quality,
                              crop=crop_blob, t=now, source=source)
            self._bump(conn, "labelled", [pid], f"embedding {face_id} added to person {pid}")
        return EmbeddingRecord(face_id, pid, v, embedder, quality, now, source,
                               None if crop_blob is None else np.asarray(crop))

    def list_embeddings(self, person_id: int, *, with_crops: bool = False
                        ) -> list[EmbeddingRecord]:
        """Return a person's embeddings (crops decoded to RGB when ``with_crops``)."""
        with self._read() as conn:
            pid = self.persons.row(conn, person_id).person_id
            return self.faces.of_person(conn, pid, with_crops)

    # -- unknowns --------------------------------------------------------------------------
    def add_unknown(self, vector: np.ndarray, embedder: str, *, crop: np.ndarray | None = None,
                    quality: float = 0.0, t: float | None = None,
                    track_key: str = "", robot_id: str | None = None,
                    candidate_id: int = -1, candidate_similarity: float = float("nan")
                    ) -> UnknownRecord:
        """Store an unknown face seen by ``robot_id`` (default: this store's robot) and assign
        it to a cluster (or PENDING).

        A face that joins a cluster must be at least the clustering similarity to it; its
        track's cluster is preferred among those. A track (``track_key``: one tracked person of
        one robot) keeps at most ``max_unknowns_per_track`` faces of each person it showed,
        the best qualities (see ``rules.track_step``); a stored face never changes its crop or
        vector. A face with a ``candidate_id`` (an enrolled person it resembles in the
        uncertain band) waits for a "maybe <name>?" answer and joins no cluster. A face as
        similar as ``non_face_similarity`` to a "not a face" example raises NotAFaceError.
        """
        embedder = validate_embedder(embedder)
        v = validate_vector(vector)
        quality = validate_quality(quality)
        track_key = validate_label(track_key, "the track key")
        robot = validate_label(self.options.robot_id if robot_id is None else robot_id,
                               "the robot id")
        candidate = int(candidate_id)
        cand_sim = (float(candidate_similarity) if candidate >= 0
                    and np.isfinite(candidate_similarity) else None)
        now = self._now(t)
        crop_blob = self._blobs.crop(crop)
        params = self.options.cluster
        with self._tx(keep_cache=True) as conn:
            match = rules.non_face_match(v, self.non_faces.vectors(conn, embedder))
            if match >= self.options.non_face_similarity:
                raise NotAFaceError(f"the face matches a 'not a face' example (cosine "
                                    f"{match:.3f}); it is not remembered")
            if candidate >= 0:
                row = self.persons.find(conn, candidate)
                if row is None:
                    candidate, cand_sim = -1, None  # forgotten meanwhile: a stranger's face
                else:
                    rules.refuse_opted_out(row)  # maybe an opted-out person: not stored
            self.faces.register_embedder(conn, embedder, v.shape[0], now)
            index = self.unknowns.index(conn, embedder, v.shape[0])
            track = (self.unknowns.track(conn, track_key, embedder, robot) if track_key
                     else [])
            step, face = rules.track_step(track, v, quality, self.options.max_unknowns_per_track,
                                          params.similarity)
            if step == rules.SKIP:
                assert face is not None
                self.unknowns.touch_track(conn, track_key, embedder, robot, now)
                self.unknowns.settle_index(conn, embedder)
                rec = self.unknowns.get(conn, face, with_crop=False)
                assert rec is not None
                return rec
            if step == rules.REPLACE:
                assert face is not None
                self.faces.delete_face_negatives(conn, [face])
                self.unknowns.delete(conn, [face])
                self.unknowns.drop_index(embedder)
                index = self.unknowns.index(conn, embedder, v.shape[0])
                track = [f for f in track if f.face_id != face]
            seq = self.events.next_cluster_seq(conn)
            if candidate >= 0:
                cluster, promote = PENDING, []
            else:
                same = rules.same_person(track, v, params.similarity)
                cluster, promote = rules.assign_cluster(index, v, params,
                                                        [f.cluster_id for f in same])
            if cluster == rules.NEW_CLUSTER:
                cluster = self.events.next_cluster_id(conn)
            self.unknowns.set_cluster(conn, promote, cluster, seq)
            face_id = self.events.next_face_id(conn)
            self.unknowns.insert(conn, face_id, v, embedder=embedder, quality=quality,
                                 crop=crop_blob, t=now, cluster=cluster, track_key=track_key,
                                 robot_id=robot, seq=seq if cluster != PENDING else 0,
                                 candidate_id=candidate, candidate_similarity=cand_sim)
            if step == rules.REPLACE:
                self.unknowns.touch_track(conn, track_key, embedder, robot, now)
            self.unknowns.settle_index(conn, embedder)
        # Committed: bring the in-memory index up to date (candidates are not in it).
        if candidate < 0 and self.unknowns.cached_index(embedder) is index:
            index.add(face_id, v, cluster, promote)
        return UnknownRecord(face_id, v, embedder, quality, now, now, cluster, track_key,
                             None if crop_blob is None else np.asarray(crop), robot,
                             seq if cluster != PENDING else 0, candidate,
                             float("nan") if cand_sim is None else cand_sim)

    def get_unknown(self, unknown_id: int, *, with_crop: bool = False) -> UnknownRecord:
        """Return one unknown face; NotFoundError when absent."""
        uid = validate_id(unknown_id, "unknown id")
        with self._read() as conn:
            rec = self.unknowns.get(conn, uid, with_crop)
        if rec is None:
            raise NotFoundError(f"unknown face {uid} does not exist")
        return rec

    def list_unknowns(self, cluster_id: int | None = None, *, with_crops: bool = False
                      ) -> list[UnknownRecord]:
        """Return unknown faces, all or those of one cluster (PENDING for the unclustered)."""
        with self._read() as conn:
            return self.unknowns.list(conn, cluster_id, with_crops)

    def list_clusters(self, min_size: int = 1, max_samples: int = 4, *,
                      include_pending: bool = False) -> list[ClusterSummary]:
        """Return unknown clusters, largest first, with up to ``max_samples`` RGB crops each."""
        min_size = validate_id(min_size, "min_size")
        max_samples = validate_id(max_samples, "max_samples")
        with self._read() as conn:
            return self.unknowns.clusters(conn, min_size, max_samples, include_pending)

    def _resolve_target(self, conn: Conn, name: str, person_id: int,
                        t: float) -> tuple[int, str, bool]:
        """Return (person id, name, created) for a labelling request."""
        if int(person_id) >= 0:
            row = self.persons.row(conn, person_id)
            rules.label_target_by_id(row, name)
            return row.person_id, row.name, False
        clean = rules.label_name(name)
        owner = self.persons.name_owner(conn, clean)
        if owner is not None:
            return self._resolve_target(conn, "", owner, t)
        return self.persons.insert(conn, clean, False, t), clean, True

    def _label(self, select: Callable[[Conn], list[int]], what: str, name: str,
               person_id: int, cluster: int | None = None) -> LabelResult:
        """Give the faces ``select`` picks (in the transaction) to a person."""
        now = self._clock()
        with self._tx() as conn:
            ids = select(conn)
            pid, pname, created = self._resolve_target(conn, name, person_id, now)
            self.unknowns.to_person(conn, ids, pid, what)
            self.faces.delete_face_negatives(conn, ids, person_id=pid)
            if cluster is not None:
                self.faces.delete_cluster_negatives(conn, cluster, person_id=pid)
            self._bump(conn, "labelled", [pid],
                       f"{what} labelled as person {pid} ({len(ids)} faces)")
        LOG.info("labelled %s as person %d (%d faces, new=%s)", what, pid, len(ids), created)
        return LabelResult(pid, pname, len(ids), created)

    def _existing(self, conn: Conn, ids: Sequence[int]) -> list[int]:
        """``ids`` when every one is an unknown face; NotFoundError naming those that are not."""
        found = self.unknowns.existing(conn, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            what = (f"unknown face {missing[0]} does not" if len(missing) == 1
                    else f"unknown faces {rules.fmt_ids(missing)} do not")
            raise NotFoundError(f"{what} exist (labelled, discarded or replaced since it was "
                                "listed?); list the faces again")
        return list(ids)

    def _cluster_faces(self, conn: Conn, cluster_id: int, revision: int) -> list[int]:
        """A cluster's faces, those it held at ``revision`` when > 0; NotFoundError if none."""
        ids = self.unknowns.in_cluster(conn, cluster_id, revision)
        if not ids:
            raise NotFoundError(f"unknown cluster {cluster_id} does not exist"
                                + (f" (or held none of today's faces at revision {revision})"
                                   if revision > 0 else ""))
        return ids

    def label_cluster(self, cluster_id: int, name: str = "", person_id: int = -1,
                      revision: int = 0) -> LabelResult:
        """Give a cluster's faces to a person (by id, or by name: existing or new).

        With ``revision`` > 0 (``ClusterSummary.revision`` as listed) only the faces the
        cluster held at that revision: faces that joined later stay unknown.
        """
        cid = validate_id(cluster_id, "cluster id")
        rev = validate_id(revision, "cluster revision")
        return self._label(lambda conn: self._cluster_faces(conn, cid, rev),
                           f"unknown cluster {cid}", name, person_id, cluster=cid)

    def label_unknown(self, unknown_id: int, name: str = "", person_id: int = -1
                      ) -> LabelResult:
        """Give one unknown face to a person (by id, or by name: existing or new)."""
        uid = validate_id(unknown_id, "unknown id")
        return self.label_faces([uid], name, person_id)

    def label_faces(self, unknown_ids: Sequence[int], name: str = "", person_id: int = -1
                    ) -> LabelResult:
        """Give exactly the unknown faces ``unknown_ids`` (the faces a user was shown) to a
        person; refused when any of them is no longer an unknown face."""
        ids = validate_ids(unknown_ids, "unknown id")
        what = f"unknown face {ids[0]}" if len(ids) == 1 else f"{len(ids)} unknown faces"
        return self._label(lambda conn: self._existing(conn, ids), what, name, person_id)

    def discard_unknowns(self, *, cluster_id: int = -1, unknown_ids: Sequence[int] = (),
                         reason: str = "", not_a_face: bool = False,
                         cluster_revision: int = 0) -> int:
        """Delete a cluster's or the given unknown faces; returns how many.

        ``not_a_face`` keeps their embeddings (no crops) as "not a face" examples: a new face
        as similar as ``non_face_similarity`` to one is not remembered again
        (``forget_non_faces`` drops them). ``cluster_revision`` as in ``label_cluster``.
        """
        reason = validate_label(reason, "the reason", max_length=1024)
        cid = int(cluster_id)
        rev = validate_id(cluster_revision, "cluster revision")
        if (cid >= 0) == bool(len(unknown_ids)):
            raise MemoryStoreError("give exactly one of: a cluster id (>= 0) or unknown ids")
        now = self._clock()
        with self._tx() as conn:
            if cid >= 0:
                ids = self._cluster_faces(conn, cid, rev)
                if len(ids) == self.unknowns.cluster_size(conn, cid):
                    self.faces.delete_cluster_negatives(conn, cid)
            else:
                ids = self._existing(conn, validate_ids(unknown_ids, "unknown id"))
            kept = (self.non_faces.add_from_unknowns(conn, ids, now, reason or "not a face")
                    if not_a_face else 0)
            self.faces.delete_face_negatives(conn, ids)
            self.unknowns.delete(conn, ids)
            self._bump(conn, "discarded", [], f"{len(ids)} unknown faces discarded"
                       + (f", {kept} kept as non-face examples" if kept else ""))
        self._db.erased()
        LOG.info("discarded %d unknown faces (%s)%s", len(ids), reason or "no reason given",
                 " as non-face examples" if not_a_face else "")
        return len(ids)

    def forget_non_faces(self, embedder: str | None = None) -> int:
        """Delete the "not a face" examples (of one embedder, or all); returns how many."""
        emb = None if embedder is None else validate_embedder(embedder)
        with self._tx() as conn:
            n = self.non_faces.delete(conn, emb)
            if n:
                self._bump(conn, "discarded", [], f"{n} non-face examples forgotten")
        LOG.info("forgot %d non-face examples", n)
        return n

    def discard_tracks(self, track_keys: Sequence[str], robot_id: str | None = None) -> int:
        """Delete the unknown faces of one robot's tracks (a track that turned out to be an
        enrolled person: its faces are no evidence of a stranger); returns how many."""
        keys = [validate_label(k, "the track key") for k in track_keys if k]
        robot = validate_label(self.options.robot_id if robot_id is None else robot_id,
                               "the robot id")
        if not keys:
            return 0
        with self._tx() as conn:
            ids = self.unknowns.of_tracks(conn, keys, robot)
            if ids:
                self.faces.delete_face_negatives(conn, ids)
                self.unknowns.delete(conn, ids)
                self._bump(conn, "discarded", [], f"{len(ids)} unknown faces of tracks that "
                           "became known discarded")
        if ids:
            self._db.erased()
            LOG.info("discarded %d unknown faces of %d known tracks", len(ids), len(keys))
        return len(ids)

    def split_cluster(self, unknown_ids: Sequence[int]) -> int:
        """Move the given faces into a new cluster of their own (kept there by re-clustering);
        returns its id."""
        ids = validate_ids(unknown_ids, "unknown id")
        with self._tx() as conn:
            self._existing(conn, ids)
            records = self.unknowns.of_ids(conn, ids, with_crops=False)
            if any(r.candidate_id >= 0 for r in records):
                raise ConflictError("a face offered as 'maybe <name>?' is answered with yes "
                                    "or no, not split")
            cluster = self.events.next_cluster_id(conn)
            self.unknowns.pin(conn, ids, cluster, self.events.next_cluster_seq(conn))
            self._bump(conn, "clustered", [], f"{len(ids)} unknown faces split into cluster "
                       f"{cluster}")
        LOG.info("split %d unknown faces into cluster %d", len(ids), cluster)
        return cluster

    def list_candidates(self, *, with_crops: bool = True) -> list[CandidateFace]:
        """The faces offered as "maybe <name>?", by person, most similar first."""
        with self._read() as conn:
            names = self.persons.ids_and_names(conn)
            return [CandidateFace(u.unknown_id, u.candidate_id, names.get(u.candidate_id, ""),
                                  u.candidate_similarity, u.quality, u.first_seen, u.crop)
                    for u in self.unknowns.candidates(conn, with_crops)]

    def reject_candidates(self, unknown_ids: Sequence[int]) -> int:
        """"No, not <name>": each face gets a negative link to its candidate person (matching
        respects it) and becomes an ordinary unknown face; returns how many."""
        ids = validate_ids(unknown_ids, "unknown id")
        now = self._clock()
        with self._tx() as conn:
            self._existing(conn, ids)
            records = self.unknowns.of_ids(conn, ids, with_crops=False)
            stray = [r.unknown_id for r in records if r.candidate_id < 0]
            if stray:
                raise ConflictError(f"unknown face(s) {rules.fmt_ids(stray)} are not offered "
                                    "as anybody")
            persons = sorted({r.candidate_id for r in records})
            for pid in persons:
                self.faces.add_face_negatives(
                    conn, pid, [r.unknown_id for r in records if r.candidate_id == pid], now)
            self.unknowns.clear_candidates(conn, ids)
            self._bump(conn, "not_this_person", persons,
                       f"{len(ids)} unknown faces are not persons {persons}")
        LOG.info("%d candidate faces rejected", len(ids))
        return len(ids)

    def person_thumbnail(self, person_id: int) -> np.ndarray | None:
        """The best-quality crop of a person's faces (RGB), or None when none is stored."""
        with self._read() as conn:
            pid = self.persons.row(conn, person_id).person_id
            return self.faces.best_crop(conn, pid)

    def recluster(self) -> int:
        """Re-cluster all unknowns, keeping cluster ids stable; returns #faces that moved."""
        params = self.options.cluster
        with self._read() as conn:
            start_next = self.events.meta_int(conn, "next_cluster_id")
            work = [self.unknowns.recent(conn, emb, params.max_items)
                    for emb in self.unknowns.embedders(conn)]
        # The clustering itself runs without the lock: other calls go on meanwhile.
        next_id = start_next
        results = []
        for ids, vectors, old in work:
            new, next_id = clustering.recluster(vectors, old, params, next_id)
            results.append((ids, old, new))
        changes = [(int(n), i) for ids, old, new in results
                   for i, o, n in zip(ids, old, new, strict=True) if o != n]
        if not changes:
            return 0
        with self._tx() as conn:
            # Ids handed out meanwhile by add_unknown: shift our fresh ids past them.
            shift = self.events.meta_int(conn, "next_cluster_id") - start_next
            changes = rules.shift_new_clusters(changes, start_next, shift)
            self.unknowns.set_clusters(conn, changes, self.events.next_cluster_seq(conn))
            self.events.set_meta(conn, "next_cluster_id", next_id + shift)
            self._bump(conn, "clustered", [], f"{len(changes)} unknown faces re-clustered")
        LOG.info("re-clustered unknowns: %d faces changed cluster", len(changes))
        return len(changes)

    # -- visits ----------------------------------------------------------------------------
    def _visit_locks(self, person_id: int, robot: str) -> tuple[str, ...]:
        return (f"visit:{person_id}:{robot}",)

    def open_or_extend_visit(self, person_id: int, t: float, *, location: str = "",
                             robot_id: str | None = None, activity: str = "",
                             absence: float | None = None) -> VisitRecord:
        """Extend the person's open visit, or close it after an absence and open a new one."""
        t = validate_time(t)
        location = validate_label(location, "the location")
        robot = validate_label(self.options.robot_id if robot_id is None else robot_id,
                               "the robot id")
        activity = validate_label(activity, "the activity")
        gap_max = rules.check_absence(self.options.visit_absence if absence is None
                                      else float(absence))
        pid = validate_id(person_id, "person id")
        with self._tx(locks=self._visit_locks(pid, robot)) as conn:
            row = self.persons.row(conn, pid)
            rules.refuse_opted_out(row, "no visit is recorded")
            current = self.visits.open_of(conn, pid, robot)
            if current is not None and rules.visit_continues(current[2], t, gap_max):
                vid, _, _, counts, dominant = current
                new_counts = rules.count_activity(counts, activity)
                self.visits.extend(conn, vid, t, new_counts,
                                   rules.dominant_activity(new_counts, dominant))
            else:
                if current is not None:
                    self.visits.end_at_last_seen(conn, [current[0]])
                counts = rules.count_activity({}, activity)
                vid = self.visits.open(conn, pid, t, location=location, robot_id=robot,
                                       counts=counts, activity=activity)
            return self.visits.get(conn, vid)

    def close_visit(self, visit_id: int, t: float | None = None) -> VisitRecord:
        """Close an open visit at ``t`` (default: when the person was last seen)."""
        vid = validate_id(visit_id, "visit id")
        end = None if t is None else validate_time(t)
        with self._tx() as conn:
            visit = self.visits.get(conn, vid)
            if not visit.open:
                raise ConflictError(f"visit {vid} is already closed")
            end = visit.last_seen if end is None else max(end, visit.start)
            self.visits.close(conn, vid, end)
            return self.visits.get(conn, vid)

    def close_stale_visits(self, now: float | None = None, absence: float | None = None,
                           robot_id: str | None = None) -> list[VisitRecord]:
        """Close every open visit (of ``robot_id``, or of every robot) absent > ``absence``."""
        now = self._now(now)
        gap_max = self.options.visit_absence if absence is None else float(absence)
        robot = None if robot_id is None else validate_label(robot_id, "the robot id")
        with self._tx(locks=()) as conn:
            ids = self.visits.stale(conn, now - gap_max, robot)
            self.visits.end_at_last_seen(conn, ids)
            return [self.visits.get(conn, i) for i in ids]

    def list_visits(self, person_id: int = -1, limit: int = 50) -> list[VisitRecord]:
        """Return visits newest first, of one person or everybody (-1); limit 0 = all."""
        limit = validate_id(limit, "limit")
        with self._read() as conn:
            pid = (self.persons.row(conn, person_id).person_id if int(person_id) >= 0
                   else None)
            return self.visits.list(conn, pid, limit)

    # -- identity engine -------------------------------------------------------------------
    def gallery(self, embedder: str) -> Gallery:
        """Return the vectors, negatives and opted-out persons for one embedder."""
        embedder = validate_embedder(embedder)
        with self._read() as conn:
            revision = self.events.revision(conn)
            dim = self.faces.embedder_dim(conn, embedder) or 0
            names = self.persons.ids_and_names(conn)
            opted = self.persons.opted_out(conn)
            entries = self.galleries.entries(conn, embedder, names)
            negatives, cluster_links = self.galleries.negatives(conn, embedder)
        return Gallery(revision, embedder, dim, entries, negatives, cluster_links, opted, names)

    def embedders(self) -> dict[str, int]:
        """Return ``{embedder id: vector length}`` of every embedder seen."""
        with self._read() as conn:
            return self.faces.embedders(conn)

    def reembed(self, embed_fn: EmbedFn, embedder: str, *, batch_size: int = 32,
                include_unknowns: bool = True) -> ReembedReport:
        """Recompute stored vectors from stored crops with another embedder, batch by batch.

        Each batch is one transaction; an interrupted run resumes where it stopped (rows
        already carrying ``embedder`` are skipped). Faces without a crop, or whose crop
        ``embed_fn`` returns None for, keep their old vector and embedder.
        """
        embedder = validate_embedder(embedder)
        if batch_size < 1:
            raise MemoryStoreError(f"batch_size must be >= 1, got {batch_size}")
        counts = {"embeddings": 0, "unknowns": 0}
        failed = 0
        tables = ("embeddings", "unknowns") if include_unknowns else ("embeddings",)
        with self._read() as conn:
            no_crop = sum(self.reembeds.without_crop(conn, tb, embedder) for tb in tables)
        for table in tables:
            last_id = -1
            while True:
                with self._read() as conn:
                    rows = self.reembeds.batch(conn, table, embedder, last_id, batch_size)
                if not rows:
                    break
                last_id = rows[-1][0]
                vectors = embed_fn([c for _, c, _ in rows if c is not None])
                if len(vectors) != len(rows):
                    raise MemoryStoreError(f"the embedder returned {len(vectors)} vectors for "
                                           f"{len(rows)} crops")
                updates = []
                for (face_id, _, old), vec in zip(rows, vectors, strict=True):
                    if vec is None:
                        failed += 1
                        continue
                    try:
                        v = validate_vector(vec)
                    except MemoryStoreError as exc:
                        LOG.warning("re-embedding face %d failed: %s", face_id, exc)
                        failed += 1
                        continue
                    updates.append((face_id, old, v))
                if not updates:
                    continue
                now = self._clock()
                with self._tx() as conn:
                    for face_id, old, v in updates:
                        self.faces.register_embedder(conn, embedder, v.shape[0], now)
                        counts[table] += self.reembeds.replace(conn, table, face_id, old=old, v=v,
                                                               embedder=embedder)
                    persons = (self.faces.persons_of(conn, [u[0] for u in updates])
                               if table == "embeddings" else [])
                    self._bump(conn, "reembedded", persons,
                               f"{len(updates)} {table} re-embedded with {embedder}")
        LOG.info("re-embedded %d embeddings and %d unknowns with %s (%d without crop, "
                 "%d failed)", counts["embeddings"], counts["unknowns"], embedder, no_crop,
                 failed)
        return ReembedReport(embedder, counts["embeddings"], counts["unknowns"], no_crop, failed)

    def search_faces(self, vector: np.ndarray, embedder: str, k: int = 5, *,
                     unknowns: bool = True) -> list[tuple[int, float]]:
        """The ``k`` most similar stored faces: by the engine's vector index where it has one
        (PostgreSQL: HNSW, approximate), else an exact scan."""
        embedder = validate_embedder(embedder)
        v = validate_vector(vector)
        k = validate_id(k, "k")
        table = "unknowns" if unknowns else "embeddings"
        with self._read() as conn:
            dim = self.faces.embedder_dim(conn, embedder)
            if dim is None or k == 0:
                return []
            if dim != v.shape[0]:
                raise MemoryStoreError(f"embedder {embedder!r} makes {dim}-d vectors; this one "
                                       f"has {v.shape[0]}")
            found = self._db.nearest(conn, table, embedder, v, k)
            if found is not None:
                return found
            ids, vectors = self.galleries.vectors(conn, table, embedder)
        if not ids:
            return []
        sims = vectors @ v
        order = np.argsort(-sims, kind="stable")[:k]
        return [(ids[i], float(sims[i])) for i in order]

    def events_since(self, revision: int) -> list[MemoryEventRecord]:
        """Return the gallery changes after ``revision``, oldest first."""
        with self._read() as conn:
            return self.events.since(conn, revision)

    @property
    def revision(self) -> int:
        """Gallery revision: increases by one on every change the identity engine must see."""
        with self._read() as conn:
            return self.events.revision(conn)

    # -- maintenance -----------------------------------------------------------------------
    def purge(self, now: float | None = None, *, unknown_days: float | None = None,
              visit_days: float | None = None) -> PurgeReport:
        """Delete unknowns and closed visits older than their retention (0 days = keep)."""
        now = self._now(now)
        u_days = rules.check_retention(
            self.options.unknown_retention_days if unknown_days is None else unknown_days,
            "unknown")
        v_days = rules.check_retention(
            self.options.visit_retention_days if visit_days is None else visit_days, "visit")
        n_unknowns = n_visits = 0
        with self._tx() as conn:
            if u_days > 0:
                ids = self.unknowns.older_than(conn, now - u_days * rules.DAY)
                self.faces.delete_face_negatives(conn, ids)
                self.unknowns.delete(conn, ids)
                n_unknowns = len(ids)
            if v_days > 0:
                n_visits = self.visits.delete_ended_before(conn, now - v_days * rules.DAY)
            n_events = self.events.trim(conn, self.options.max_events)
            if n_unknowns:
                self._bump(conn, "discarded", [], f"retention: {n_unknowns} unknown faces "
                           "deleted")
        if n_unknowns or n_visits:
            self._db.erased()
            LOG.info("retention purge: %d unknowns, %d visits", n_unknowns, n_visits)
        return PurgeReport(n_unknowns, n_visits, n_events)

    def stats(self) -> StoreStats:
        """Return row counts and state for diagnostics."""
        with self._read() as conn:
            counts = self.retention.counts(conn)
            return StoreStats(
                revision=self.events.revision(conn),
                num_persons=counts["persons"],
                num_embeddings=counts["embeddings"],
                num_unknowns=counts["unknowns"],
                num_clusters=counts["clusters"],
                num_visits=counts["visits"],
                writable=self._db.writable,
                encrypted=self._cipher.enabled,
                schema_version=self._db.schema_version(conn),
                num_non_faces=counts["non_faces"],
                num_candidates=counts["candidates"],
            )

    def integrity_check(self) -> str:
        """Return "ok" when the storage is consistent, else the problems found."""
        with self._db.lock:
            return self._db.integrity_check()
