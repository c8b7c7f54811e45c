"""``MemoryStore``: the storage interface of the memory (SQLite file or PostgreSQL server).

All operations validate their input and raise ``MemoryStoreError`` (a ValueError) with a
human-readable reason; writes that cannot reach the disk raise ``StoreUnavailable``. Every
multi-row operation is atomic. Times are seconds (float); ``t=None`` means "now" (the store's
clock). Embedding ids and unknown ids are one id space ("face ids"): a face keeps its id when it
moves between a person and the unknowns.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from types import TracebackType

import numpy as np

from .errors import MemoryStoreError
from .records import (
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

#: Re-embedding callback: RGB crops in, one vector (or None when it fails) per crop out.
EmbedFn = Callable[[list[np.ndarray]], "Sequence[np.ndarray | None] | np.ndarray"]


class MemoryStore(abc.ABC):
    """Persons, their face embeddings and crops, unknown faces, visits and negative links."""

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release the store."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    @abc.abstractmethod
    def revision(self) -> int:
        """Gallery revision: increases by one on every change the identity engine must see."""

    @property
    @abc.abstractmethod
    def writable(self) -> bool:
        """False when the store was opened read-only (writes raise StoreUnavailable)."""

    # -- persons ---------------------------------------------------------------------------
    @abc.abstractmethod
    def create_person(self, name: str, *, never_remember: bool = False,
                      t: float | None = None) -> PersonRecord:
        """Create a person; refuses a name another person already has."""

    @abc.abstractmethod
    def get_person(self, person_id: int) -> PersonRecord:
        """Return one person with counts; NotFoundError when absent."""

    @abc.abstractmethod
    def find_person(self, name: str) -> PersonRecord | None:
        """Return the person with this name (case-insensitive), or None."""

    @abc.abstractmethod
    def list_persons(self, name_filter: str = "") -> list[PersonRecord]:
        """Return persons whose name contains ``name_filter`` (case-insensitive), by name."""

    @abc.abstractmethod
    def rename_person(self, person_id: int, name: str) -> PersonRecord:
        """Rename a person; refuses a name another person has."""

    @abc.abstractmethod
    def merge_persons(self, source_id: int, target_id: int) -> int:
        """Move everything of ``source_id`` to ``target_id``, delete the source; returns #moved."""

    @abc.abstractmethod
    def split_person(self, person_id: int, embedding_ids: Sequence[int],
                     new_name: str) -> PersonRecord:
        """Move the given embeddings of ``person_id`` to a new person called ``new_name``."""

    @abc.abstractmethod
    def not_this_person(self, person_id: int, embedding_ids: Sequence[int] = (),
                        unknown_cluster_id: int = -1) -> int:
        """Move embeddings back to the unknowns and record negative links; returns #moved."""

    @abc.abstractmethod
    def forget_person(self, person_id: int) -> None:
        """Delete every trace of a person: row, embeddings, crops, visits, negative links."""

    @abc.abstractmethod
    def set_never_remember(self, person_id: int, never_remember: bool) -> PersonRecord:
        """Opt a person out of (or back into) being stored and greeted."""

    # -- embeddings ------------------------------------------------------------------------
    @abc.abstractmethod
    def add_embedding(self, person_id: int, vector: np.ndarray, embedder: str, *,
                      quality: float = 0.0, crop: np.ndarray | None = None, source: str = "",
                      t: float | None = None) -> EmbeddingRecord:
        """Store one face of a known person (enrolment)."""

    @abc.abstractmethod
    def list_embeddings(self, person_id: int, *, with_crops: bool = False
                        ) -> list[EmbeddingRecord]:
        """Return a person's embeddings (crops decoded to RGB when ``with_crops``)."""

    # -- unknown faces ---------------------------------------------------------------------
    @abc.abstractmethod
    def add_unknown(self, vector: np.ndarray, embedder: str, *, crop: np.ndarray | None = None,
                    quality: float = 0.0, t: float | None = None,
                    track_key: str = "", robot_id: str | None = None,
                    candidate_id: int = -1, candidate_similarity: float = float("nan")
                    ) -> UnknownRecord:
        """Store an unknown face seen by ``robot_id`` and assign it to a cluster (or PENDING);
        a face with a ``candidate_id`` waits for a "maybe <name>?" answer instead."""

    @abc.abstractmethod
    def get_unknown(self, unknown_id: int, *, with_crop: bool = False) -> UnknownRecord:
        """Return one unknown face; NotFoundError when absent."""

    @abc.abstractmethod
    def list_unknowns(self, cluster_id: int | None = None, *, with_crops: bool = False
                      ) -> list[UnknownRecord]:
        """Return unknown faces, all or those of one cluster (PENDING for the unclustered)."""

    @abc.abstractmethod
    def list_clusters(self, min_size: int = 1, max_samples: int = 4, *,
                      include_pending: bool = False) -> list[ClusterSummary]:
        """Return unknown clusters, largest first, with up to ``max_samples`` RGB crops each."""

    @abc.abstractmethod
    def label_cluster(self, cluster_id: int, name: str = "", person_id: int = -1,
                      revision: int = 0) -> LabelResult:
        """Give a cluster's faces to a person (by id, or by name: existing or new); with a
        ``revision`` > 0 only the faces it held at that listed revision."""

    @abc.abstractmethod
    def label_unknown(self, unknown_id: int, name: str = "", person_id: int = -1
                      ) -> LabelResult:
        """Give one unknown face to a person (by id, or by name: existing or new)."""

    @abc.abstractmethod
    def label_faces(self, unknown_ids: Sequence[int], name: str = "", person_id: int = -1
                    ) -> LabelResult:
        """Give exactly these unknown faces to a person; refused if one is gone."""

    def label(self, *, cluster_id: int = -1, unknown_id: int = -1, name: str = "",
              person_id: int = -1, unknown_ids: Sequence[int] = (),
              cluster_revision: int = 0) -> LabelResult:
        """Label exactly one of: a cluster (``cluster_id`` >= 0, optionally as listed at
        ``cluster_revision``), a face (``unknown_id`` >= 0) or the faces ``unknown_ids``."""
        given = (int(cluster_id) >= 0) + (int(unknown_id) >= 0) + bool(len(unknown_ids))
        if given != 1:
            raise MemoryStoreError("give exactly one of: a cluster id (>= 0), an unknown id "
                                   "(>= 0) or a list of unknown ids")
        if int(cluster_revision) and int(cluster_id) < 0:
            raise MemoryStoreError("a cluster revision goes with a cluster id")
        if int(cluster_id) >= 0:
            return self.label_cluster(cluster_id, name, person_id, int(cluster_revision))
        if len(unknown_ids):
            return self.label_faces(unknown_ids, name, person_id)
        return self.label_unknown(unknown_id, name, person_id)

    @abc.abstractmethod
    def discard_unknowns(self, *, cluster_id: int = -1, unknown_ids: Sequence[int] = (),
                         reason: str = "", not_a_face: bool = False,
                         cluster_revision: int = 0) -> int:
        """Delete a cluster's or the given unknown faces; returns how many. ``not_a_face``
        keeps their embeddings (no crops) as examples that are not remembered again."""

    @abc.abstractmethod
    def forget_non_faces(self, embedder: str | None = None) -> int:
        """Delete the "not a face" examples (of one embedder, or all); returns how many."""

    @abc.abstractmethod
    def discard_tracks(self, track_keys: Sequence[str], robot_id: str | None = None) -> int:
        """Delete the unknown faces of one robot's tracks (they became known)."""

    @abc.abstractmethod
    def split_cluster(self, unknown_ids: Sequence[int]) -> int:
        """Move the given faces into a new cluster of their own; returns its id."""

    @abc.abstractmethod
    def list_candidates(self, *, with_crops: bool = True) -> list[CandidateFace]:
        """The faces offered as "maybe <name>?", by person, most similar first."""

    @abc.abstractmethod
    def reject_candidates(self, unknown_ids: Sequence[int]) -> int:
        """"Not <name>": negative links to the candidates; the faces become strangers'."""

    @abc.abstractmethod
    def person_thumbnail(self, person_id: int) -> np.ndarray | None:
        """The best-quality crop of a person's faces, or None."""

    @abc.abstractmethod
    def recluster(self) -> int:
        """Re-cluster all unknowns, keeping cluster ids stable; returns #faces that moved."""

    # -- visits ----------------------------------------------------------------------------
    @abc.abstractmethod
    def open_or_extend_visit(self, person_id: int, t: float, *, location: str = "",
                             robot_id: str | None = None, activity: str = "",
                             absence: float | None = None) -> VisitRecord:
        """Extend the person's open visit, or close it after an absence and open a new one."""

    @abc.abstractmethod
    def close_visit(self, visit_id: int, t: float | None = None) -> VisitRecord:
        """Close an open visit at ``t`` (default: when the person was last seen)."""

    @abc.abstractmethod
    def close_stale_visits(self, now: float | None = None, absence: float | None = None,
                           robot_id: str | None = None) -> list[VisitRecord]:
        """Close every open visit (of ``robot_id``, or every robot's) absent > ``absence``."""

    @abc.abstractmethod
    def list_visits(self, person_id: int = -1, limit: int = 50) -> list[VisitRecord]:
        """Return visits newest first, of one person or everybody (-1); limit 0 = all."""

    # -- identity engine -------------------------------------------------------------------
    @abc.abstractmethod
    def gallery(self, embedder: str) -> Gallery:
        """Return the vectors, negatives and opted-out persons for one embedder."""

    @abc.abstractmethod
    def embedders(self) -> dict[str, int]:
        """Return ``{embedder id: vector length}`` of every embedder seen."""

    @abc.abstractmethod
    def reembed(self, embed_fn: EmbedFn, embedder: str, *, batch_size: int = 32,
                include_unknowns: bool = True) -> ReembedReport:
        """Recompute stored vectors from stored crops with another embedder, batch by batch."""

    @abc.abstractmethod
    def events_since(self, revision: int) -> list[MemoryEventRecord]:
        """Return the gallery changes after ``revision``, oldest first."""

    @abc.abstractmethod
    def search_faces(self, vector: np.ndarray, embedder: str, k: int = 5, *,
                     unknowns: bool = True) -> list[tuple[int, float]]:
        """The ``k`` stored faces (unknown faces, or faces of persons) most similar to
        ``vector``: ``(face id, cosine similarity)``, most similar first."""

    def watch(self, callback: Callable[[int], None]) -> bool:
        """Call ``callback(revision)`` from another thread whenever anyone commits a change.

        Returns False when the backend cannot push changes; then poll ``revision``.
        """
        del callback
        return False

    # -- maintenance -----------------------------------------------------------------------
    @abc.abstractmethod
    def purge(self, now: float | None = None, *, unknown_days: float | None = None,
              visit_days: float | None = None) -> PurgeReport:
        """Delete unknowns and closed visits older than their retention (0 days = keep)."""

    @abc.abstractmethod
    def stats(self) -> StoreStats:
        """Return row counts and state for diagnostics."""

    @abc.abstractmethod
    def integrity_check(self) -> str:
        """Return "ok" when the storage is consistent, else the problems found."""
