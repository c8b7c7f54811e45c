"""memory_node: the robot's writer of the memory store; visits, unknowns, labelling services.

Subscribes ``identities`` and ``activities``; records visits of known persons and the unknown
faces (embedding + crop) that the identity node marks as new evidence; answers the labelling
and management services under ``visio_memoria/``; publishes ``memory/events`` (latched) after
every change of the gallery, also changes made by another process (the labelling page), so
identity_node reloads without a restart.

The memory is an SQLite file of this robot, or a PostgreSQL server shared by several robots
(``db_path: postgresql://...``). With PostgreSQL a change made anywhere (another robot's
service, the labelling page, the CLI) is pushed by the server (LISTEN/NOTIFY) and published on
``memory/events`` at once; with SQLite the revision is polled every second. While the server
cannot be reached, sightings (visit updates, unknown faces) wait in a bounded buffer and are
written in order once it is back (``sighting_buffer``; counted on /diagnostics); services answer
success=false with the reason; the node keeps running and reconnects with back-off.

Which faces become unknown faces (``memory.remember``, ``perception.quality``): a face decided
UNKNOWN, with new evidence, by a gallery that was loaded (``IdentityArray.gallery_revision``:
faces decided before any gallery arrived are no evidence of a stranger), whose track never was
KNOWN, and whose crop passes the quality gate (``remember_gate``, ``gate_*``; refusals counted
per reason on /diagnostics). A face in the uncertain band of an enrolled person is kept as
"maybe <name>?" (``remember_maybe``). Tracks are keyed by the detector's tracker session, so
restarted track ids never join an old track; untracked faces get keys of their own. When a
track becomes KNOWN, the unknown faces it left are removed. A face that matches a "not a face"
example is not stored.

Parameters apply at run time: crop storage (``store_crops: false`` stops storing crops with the
next face), crop format, clustering, visits and retention (a shorter retention purges at once);
the purge and re-clustering periods reschedule their timers.

It is not the store's only writer: the labelling page and the CLI write to the same memory
(SQLite: whole transactions under BEGIN IMMEDIATE with a busy timeout, see
``memory.sqlite_store``; PostgreSQL: transactions and advisory locks), and their changes reach
this node as revisions.

The node has no face-embedder setting of its own. It learns the embedder id from the
identities it receives (reported on /diagnostics, WARN while stored persons have no vector of
it), and re-embeds stored crops with the embedder that embedding_node's own parameters describe
(asked from embedding_node's parameter service), so one setting decides the embedder.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from rcl_interfaces.srv import GetParameters
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.parameter import parameter_value_to_python
from visio_memoria.msg import (
    ActivityArray,
    IdentityArray,
    MemoryEvent,
    PersonInfo,
    UnknownCluster,
    Visit,
)
from visio_memoria.srv import (
    DiscardUnknowns,
    ForgetNonFaces,
    ForgetPerson,
    GetGallery,
    LabelUnknown,
    ListPersons,
    ListUnknownClusters,
    ListVisits,
    MergePersons,
    NotThisPerson,
    RenamePerson,
    SetNeverRemember,
    SplitPerson,
)

from ..config import embedding as embedding_params
from ..config import memory as memory_params
from ..core.types import Status
from ..memory import (
    PENDING,
    STORE_ERRORS,
    MemoryStoreError,
    NotAFaceError,
    OptedOutError,
    StoreOptions,
    StoreUnavailable,
    open_store,
)
from ..memory.clustering import means_of
from ..memory.remember import TrackBook
from ..memory.sightings import (
    KNOWN_TRACK,
    UNKNOWN,
    VISIT,
    Sighting,
    SightingBuffer,
    is_disconnected,
)
from ..perception.quality import FacenessChecker, QualityGate, assess_face
from .convert import identity_from_msg
from .diagnostics import ERROR, OK, WARN, Health, StageDiagnostics, StageStats
from .images import ImageConverter, rgb_to_msg
from .params import VisioNode
from .qos import LATCHED_QOS, RELIABLE_QOS
from .reliable_call import ReliableCall
from .service_reply import wait_for_client
from .stamps import s_to_stamp, stamp_to_s
from .startup import run_node

#: How often one person's open visit is written while they stay in view [s].
VISIT_WRITE_INTERVAL = 1.0
#: A failed write is reported (ERROR on /diagnostics) for this long after it happened [s].
WRITE_ERROR_HOLD = 30.0
#: Parameters that are StoreOptions: a change is handed to the store at once.
STORE_OPTION_PARAMS = frozenset({
    "store_crops", "crop_format", "crop_quality", "robot_id", "visit_absence",
    "cluster_similarity", "cluster_min_size", "cluster_method", "recluster_max_unknowns",
    "max_unknowns_per_track", "unknown_retention_days", "visit_retention_days",
    "non_face_similarity",
})


def check_store_options(values: dict[str, Any]) -> str | None:
    """Why memory_node values do not make valid store options or a valid gate, or None."""
    try:
        StoreOptions.from_params(values)
        QualityGate.from_params(values)
    except ValueError as exc:
        return str(exc)
    return None


def _fields(msg: Any) -> dict[str, Any]:
    """A message's fields as a dict (lists for arrays)."""
    out = {}
    for field in msg.get_fields_and_field_types():
        value = getattr(msg, field)
        out[field] = (
            list(value) if hasattr(value, "__len__") and not isinstance(value, str) else value
        )
    return out


class MemoryNode(VisioNode):
    """Adapter between the identity/activity topics, the services and the memory store."""

    #: Its service callbacks may wait (a reply re-sent for up to 5 s) while the control timers
    #: and the sightings must go on: a multi-threaded executor, in its own process or not.
    EXECUTOR_THREADS = 3

    def __init__(self) -> None:
        super().__init__("memory_node", memory_params.PARAMS, cross_check=check_store_options)
        # A server that cannot be reached yet is retried with back-off, not a crash loop.
        self._store = open_store(self._store_params(), offline_ok=True)
        log = self.get_logger()
        self._sightings = SightingBuffer(int(self.params["sighting_buffer"]))
        self._sightings_lock = threading.Lock()  # the identities callback and the flush timer
        self._event_lock = threading.Lock()
        try:
            stats = self._store.stats()
        except StoreUnavailable as exc:
            log.error(f"memory at {self._store.where} (robot {self._store.options.robot_id}) "
                      f"cannot be reached: {exc}; sightings are buffered and the connection "
                      "is retried with back-off")
            writable = self._store.writable
        else:
            writable = stats.writable
            log.info(
                f"memory at {self._store.where} (robot {self._store.options.robot_id}): "
                f"{stats.num_persons} persons, "
                f"{stats.num_embeddings} embeddings, {stats.num_unknowns} unknown faces in "
                f"{stats.num_clusters} clusters, {stats.num_visits} visits"
                + ("" if stats.writable else " (READ-ONLY: nothing new is stored)")
                + (" (encrypted)" if stats.encrypted else "")
            )
        self._converter = ImageConverter()
        self._lock = threading.Lock()
        self._activity_by_face: dict[int, str] = {}
        self._last_visit_write: dict[int, float] = {}
        self._start_stamp = f"{self.now_s():.0f}"
        # Track keys, and which tracks turned out KNOWN within their visit (memory.remember).
        self._tracks = TrackBook(forget_after_s=float(self.params["visit_absence"]),
                                 fallback_session=f"m{self._start_stamp}")
        self._gate = QualityGate.from_params(self.params)
        self._faceness = FacenessChecker()
        self._remembered = 0
        self._not_remembered: Counter[str] = Counter()
        self._replies_retried = 0  # replies that reached a client only on a later attempt
        self._replies_lost = 0  # replies whose client never became reachable
        self._published_revision = -1
        self._stats = StageStats()
        self._received = 0
        self._write_error = ""
        self._write_error_at = -1e9
        self._face_embedder = ""  # learned from the identities received
        self._checked_embedder = ""  # "<embedder>@<revision>" of the last count
        self._persons_without_vectors = 0
        self._reembed_state = "off"
        if self.params["reembed_on_start"] and writable:
            self._reembed_state = "waiting for embedding_node"
            self._embedding_params = ReliableCall(
                self, GetParameters, f"{self.params['embedding_node']}/get_parameters")
            self._embedding_params.call(
                GetParameters.Request(names=[s.name for s in embedding_params.PARAMS]),
                self._on_embedding_params)

        self._events = self.create_publisher(MemoryEvent, "memory/events", LATCHED_QOS)
        self.create_subscription(IdentityArray, "identities", self._on_identities, RELIABLE_QOS)
        self.create_subscription(ActivityArray, "activities", self._on_activities, RELIABLE_QOS)

        services: list[tuple[Any, str, Callable[[Any, Any], Any]]] = [
            (LabelUnknown, "label_unknown", self._label_unknown),
            (RenamePerson, "rename_person", self._rename_person),
            (MergePersons, "merge_persons", self._merge_persons),
            (NotThisPerson, "not_this_person", self._not_this_person),
            (SplitPerson, "split_person", self._split_person),
            (ForgetPerson, "forget_person", self._forget_person),
            (DiscardUnknowns, "discard_unknowns", self._discard_unknowns),
            (ForgetNonFaces, "forget_non_faces", self._forget_non_faces),
            (SetNeverRemember, "set_never_remember", self._set_never_remember),
            (ListPersons, "list_persons", self._list_persons),
            (ListUnknownClusters, "list_unknown_clusters", self._list_clusters),
            (ListVisits, "list_visits", self._list_visits),
            (GetGallery, "get_gallery", self._get_gallery),
        ]
        # Services and the revision poll get a callback group of their own: in the node's
        # default group they queued behind the identities subscription, and under a steady
        # stream of faces no labelling call was answered at all (the store is thread-safe).
        control = MutuallyExclusiveCallbackGroup()
        for srv_type, name, handler in services:
            wait_for_client(
                self.create_service(
                    srv_type,
                    f"visio_memoria/{name}",
                    self._guard(name, handler),
                    callback_group=control,
                ),
                on_retry=functools.partial(self._reply_retried, name),
                on_lost=functools.partial(self._reply_lost, name),
            )

        with contextlib.suppress(*STORE_ERRORS):  # else published by the poll once readable
            self._publish_event(
                "started", [], f"memory_node started at revision {self._store.revision}",
                force=True)
        # PostgreSQL pushes every change (LISTEN/NOTIFY) at once; the poll stays as the
        # fallback (SQLite, and changes made while the listener reconnected).
        self._pushed = self._store.watch(self._on_change)
        self.create_timer(1.0, self._poll_revision, callback_group=control)
        self.create_timer(1.0, self._flush_sightings, callback_group=control)
        self.create_timer(1.0, self._check_embedder, callback_group=control)
        self.create_timer(5.0, self._close_stale_visits, callback_group=control)
        self._slow = MutuallyExclusiveCallbackGroup()
        self._recluster_timer: Any = None
        self._purge_timer: Any = None
        self._schedule_recluster()
        self._schedule_purge()
        self._diagnostics = StageDiagnostics(self, "memory", self._stats, self._counters,
                                             self._health)
        self.on_params_changed(self._apply)
        self._close_stale_visits()
        # Retention also at start: a robot restarted more often than purge_period (every night,
        # on each crash) would otherwise never delete expired faces and visits.
        self._purge()

    # -- parameters at run time ----------------------------------------------------------------
    def _store_params(self) -> dict[str, Any]:
        """The store's parameters: this node's, with its namespace (the default robot id)."""
        return {**self.params, "namespace": self.get_namespace()}

    def _apply(self, changed: dict[str, Any]) -> None:
        """Hand changed parameters to the store and the timers; a shorter retention purges now."""
        if changed.keys() & STORE_OPTION_PARAMS:
            self._store.set_options(StoreOptions.from_params(self._store_params()))
        if any(k.startswith("gate_") for k in changed):
            self._gate = QualityGate.from_params(self.params)
        if "visit_absence" in changed:
            with self._lock:
                self._tracks.forget_after_s = float(changed["visit_absence"])
        if "store_crops" in changed:
            self.get_logger().info("face crops are " + (
                "stored again" if changed["store_crops"] else "no longer stored") +
                " from the next face on")
        if "recluster_period" in changed:
            self._schedule_recluster()
        if "purge_period" in changed:
            self._schedule_purge()
        if changed.keys() & {"unknown_retention_days", "visit_retention_days"}:
            self._purge()

    def _schedule_recluster(self) -> None:
        if self._recluster_timer is not None:
            self.destroy_timer(self._recluster_timer)
            self._recluster_timer = None
        period = float(self.params["recluster_period"])
        if period > 0:  # 0 = never (a 0 s timer would fire non-stop)
            self._recluster_timer = self.create_timer(period, self._recluster,
                                                      callback_group=self._slow)

    def _schedule_purge(self) -> None:
        if self._purge_timer is not None:
            self.destroy_timer(self._purge_timer)
        self._purge_timer = self.create_timer(float(self.params["purge_period"]), self._purge,
                                              callback_group=self._slow)

    # -- health ----------------------------------------------------------------------------------
    def _counters(self) -> dict[str, float | str]:
        options = self._store.options
        return {
            "received": float(self._received),
            "dropped": float(self._sightings.dropped),
            "backend": self._store.database.engine,
            "memory": self._store.where,
            "robot_id": options.robot_id,
            "connected": float(getattr(self._store, "connected", True)),
            "sightings_buffered": float(len(self._sightings)),
            "sightings_written_late": float(self._sightings.written),
            "sightings_dropped": float(self._sightings.dropped),
            "sightings_refused": float(self._sightings.refused),
            "revision": float(self._published_revision),
            "writable": float(self._store.writable),
            "store_crops": float(options.store_crops),
            "crop_format": options.crop_format,
            "cluster_min_size": float(options.cluster.min_size),
            "unknown_retention_days": float(options.unknown_retention_days),
            "visit_retention_days": float(options.visit_retention_days),
            "face_embedder": self._face_embedder,
            "persons_without_vectors": float(self._persons_without_vectors),
            "reembed": self._reembed_state,
            "unknowns_remembered": float(self._remembered),
            "remember_gate": float(bool(self.params["remember_gate"])),
            **{f"not_remembered_{reason}": float(n)
               for reason, n in sorted(self._not_remembered.items())},
            "service_replies_retried": float(self._replies_retried),
            "service_replies_lost": float(self._replies_lost),
        }

    def _health(self) -> Health:
        """ERROR while writes fail; WARN when read-only or persons lack the active embedder."""
        found: list[Health] = []
        if not getattr(self._store, "connected", True):
            found.append((ERROR, f"the memory server {self._store.where} cannot be reached; "
                                 f"{len(self._sightings)} sightings buffered, "
                                 f"{self._sightings.dropped} dropped"))
        elif self._sightings.dropped:
            found.append((WARN, f"{self._sightings.dropped} sightings were dropped while the "
                                "memory server could not be reached (sighting_buffer full)"))
        if time.monotonic() - self._write_error_at < WRITE_ERROR_HOLD:
            found.append((ERROR, f"cannot store: {self._write_error}"))
        if not self._store.writable:
            found.append((WARN, "the memory is read-only: nothing new is stored"))
        if self._persons_without_vectors:
            found.append((WARN, f"{self._persons_without_vectors} persons have no face vector "
                                f"made by {self._face_embedder} (the embedder of the faces "
                                f"arriving): they cannot be recognised until re-embedded "
                                f"({self._reembed_state})"))
        if not found:
            return OK, "ok"
        return max(level for level, _ in found), "; ".join(text for _, text in found)

    def _write_failed(self, problem: str) -> None:
        self._stats.error()
        self._write_error, self._write_error_at = problem, time.monotonic()

    # -- the face embedder -------------------------------------------------------------------
    def _on_embedding_params(self, resp: GetParameters.Response) -> None:
        """embedding_node's parameters are in: re-embed stale vectors with its embedder."""
        names = [spec.name for spec in embedding_params.PARAMS]
        params = {}
        for name, value in zip(names, resp.values, strict=False):
            python = parameter_value_to_python(value)
            if python is not None:
                params[name] = python
        self._reembed_state = "checking"
        threading.Thread(target=self._reembed, args=(params,), name="memory_node-reembed",
                         daemon=True).start()

    def _reembed(self, params: dict[str, Any]) -> None:
        """Re-embed stored crops made by another embedder than embedding_node's (a thread)."""
        from ..embedding import build_face_embedder
        from ..embedding.factory import tolerant_embed_fn

        log = self.get_logger()
        kind = str(params.get("face_embedder", "dlib"))
        try:
            embedder = build_face_embedder(kind, **params)
        except (FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
            self._reembed_state = f"cannot build embedding_node's {kind} embedder: {exc}"
            log.warning(f"stored faces not checked for re-embedding: {exc}")
            return
        try:
            stale = self._store.stats().num_embeddings - len(
                self._store.gallery(embedder.id).entries)
            stale_unknowns = sum(1 for u in self._store.list_unknowns()
                                 if u.embedder != embedder.id)
            if stale <= 0 and not stale_unknowns:
                self._reembed_state = f"every stored face is made by {embedder.id}"
                return
            log.info(f"re-embedding {stale} stored faces and {stale_unknowns} unknown faces with "
                     f"{embedder.id} (embedding_node's {kind}; the gallery was made by another "
                     "embedder)")
            self._reembed_state = f"re-embedding with {embedder.id}"
            report = self._store.reembed(tolerant_embed_fn(embedder), embedder.id)
        except STORE_ERRORS as exc:
            self._reembed_state = f"failed: {exc}"
            log.error(f"re-embedding failed: {exc}")
            return
        self._reembed_state = f"re-embedded with {embedder.id}"
        log.info(f"re-embedded {report.num_embeddings} faces and {report.num_unknowns} unknown "
                 f"faces with {embedder.id}; {report.num_without_crop} without a crop and "
                 f"{report.num_failed} failed keep their old vectors")

    def _check_embedder(self) -> None:
        """Count the persons who have no vector of the embedder the faces arrive from."""
        embedder = self._face_embedder
        if not embedder:
            return
        try:
            key = f"{embedder}@{self._store.revision}"
            if key == self._checked_embedder:
                return  # neither the embedder nor the gallery changed since the last count
            gallery = self._store.gallery(embedder)
            have = {e.person_id for e in gallery.entries} | set(gallery.opted_out)
            missing = [p.person_id for p in self._store.list_persons("")
                       if p.num_embeddings and p.person_id not in have]
        except STORE_ERRORS as exc:
            self.get_logger().warning(f"cannot check the gallery of {embedder}: {exc}",
                                      throttle_duration_sec=60.0)
            return
        self._checked_embedder = key
        if missing and len(missing) != self._persons_without_vectors:
            self.get_logger().warning(
                f"{len(missing)} persons have no face vector made by {embedder}, the embedder "
                "of the faces arriving: they cannot be recognised until their stored crops are "
                "re-embedded (reembed_on_start, or `visio-memoria db reembed`)")
        self._persons_without_vectors = len(missing)

    # -- topics ------------------------------------------------------------------------------
    def _on_activities(self, msg: ActivityArray) -> None:
        with self._lock:
            for a in msg.activities:
                if a.face_track_id >= 0 and a.activity:
                    self._activity_by_face[int(a.face_track_id)] = a.activity
            if len(self._activity_by_face) > 1000:
                self._activity_by_face.clear()

    def _on_identities(self, msg: IdentityArray) -> None:
        t0 = time.monotonic()
        self._received += 1
        t = stamp_to_s(msg.header.stamp)
        location = msg.header.frame_id
        failed = False
        for ident in msg.identities:
            if ident.embedder and len(ident.embedding) and ident.embedder != self._face_embedder:
                self.get_logger().info(f"faces arrive embedded by {ident.embedder}")
                self._face_embedder = ident.embedder
            try:
                self._record(ident, t, location, msg)
            except OptedOutError:
                continue
            except NotAFaceError:
                self._refused("matches_non_face")
            except StoreUnavailable as exc:
                failed = True
                self._write_failed(str(exc))
                self.get_logger().error(f"cannot store: {exc}", throttle_duration_sec=10.0)
            except Exception as exc:  # one bad identity must not stop the others
                failed = True
                self._write_failed(f"{type(exc).__name__}: {exc}")
                self.get_logger().error(
                    f"dropped identity of track {ident.track_id}: {type(exc).__name__}: {exc}",
                    throttle_duration_sec=5.0,
                )
        if self._received % 50 == 0:
            with self._lock:
                self._tracks.prune(t)
        if not failed:
            self._stats.record(time.monotonic() - t0, max(0.0, self.now_s() - t))

    def _record(self, ident: Any, t: float, location: str, msg: Any) -> None:
        status = int(ident.status)
        if status not in (Status.KNOWN, Status.UNKNOWN, Status.UNCERTAIN):
            # STATUS_UNDECIDED (a message nobody filled in): neither a visit nor a stranger.
            self._refused("undecided")
            return
        with self._lock:
            key = self._tracks.key(location, msg.track_session, int(ident.track_id),
                                   ident.bbox, t)
        if status == Status.KNOWN and ident.person_id >= 0:
            pid = int(ident.person_id)
            with self._lock:
                gone = self._tracks.known(key)
                last = self._last_visit_write.get(pid, -1e18)
                write_visit = t - last >= VISIT_WRITE_INTERVAL
                if write_visit:
                    self._last_visit_write[pid] = t
                activity = self._activity_by_face.get(int(ident.track_id), "")
            if gone:
                # An enrolled person: faces of this track stored as unknowns before it was
                # named are no evidence of a stranger.
                self._write(Sighting(KNOWN_TRACK, {"track_keys": gone}))
            if write_visit:
                self._write(Sighting(VISIT, {"person_id": pid, "t": t, "location": location,
                                             "activity": activity}))
            return
        if not (ident.new_evidence and len(ident.embedding)):
            return
        candidate = int(ident.candidate_person_id)
        if status == Status.UNCERTAIN and (candidate < 0 or not self.params["remember_maybe"]):
            return  # not enough evidence yet for anything
        if status not in (Status.UNKNOWN, Status.UNCERTAIN):
            return  # KNOWN without a person id
        if not self.params["remember_maybe"]:
            candidate = -1
        if msg.gallery_revision < 0:
            self._refused("no_gallery")  # decided before a gallery was loaded
            return
        with self._lock:
            known = self._tracks.is_known(key)
        if known:
            self._refused("known_track")
            return
        decision = identity_from_msg(ident, self._converter)
        quality = float(decision.quality)
        if self.params["remember_gate"]:
            if decision.crop is None:
                self._refused("no_crop")
                return
            assessment = assess_face(
                decision.crop, decision.bbox, decision.landmarks, decision.score,
                faceness=self._faceness(decision.crop))
            reasons = self._gate.reasons(assessment)
            if reasons:
                for reason in reasons:
                    self._refused(reason)
                return
            quality = assessment.quality
        self._write(Sighting(UNKNOWN, {
            "vector": decision.embedding,
            "embedder": decision.embedder,
            "crop": decision.crop,
            "quality": quality,
            "t": t,
            "track_key": key,
            "candidate_id": candidate,
            "candidate_similarity": float(decision.candidate_similarity),
        }))
        with self._lock:
            self._remembered += 1

    def _reply_retried(self, name: str, attempts: int) -> None:
        with self._lock:
            self._replies_retried += 1
        self.get_logger().info(f"{name}: reply sent on attempt {attempts} (the client was "
                               "still being discovered)")

    def _reply_lost(self, name: str, attempts: int) -> None:
        with self._lock:
            self._replies_lost += 1
        self.get_logger().warning(f"{name}: reply lost, the client never became reachable "
                                  f"({attempts} attempts)")

    def _refused(self, reason: str) -> None:
        """Count an unknown face not remembered, by reason (on /diagnostics)."""
        with self._lock:
            self._not_remembered[reason] += 1

    def _write(self, sighting: Sighting) -> None:
        """Write a sighting now, or buffer it while the memory server cannot be reached."""
        with self._sightings_lock:
            written = self._sightings.record(self._store, sighting)
        if not written:
            self.get_logger().warning(
                f"memory server unreachable: {len(self._sightings)} sightings buffered",
                throttle_duration_sec=10.0)

    def _flush_sightings(self) -> None:
        """Write the buffered sightings once the memory server is back (in arrival order)."""
        if not len(self._sightings):
            return
        with self._sightings_lock:
            written = self._sightings.flush(self._store)
        if written:
            self.get_logger().info(f"memory server back: {written} buffered sightings written"
                                   + (f", {len(self._sightings)} still waiting"
                                      if len(self._sightings) else ""))

    # -- events --------------------------------------------------------------------------------
    def _publish_event(
        self, kind: str, person_ids: list[int], message: str, force: bool = False
    ) -> None:
        revision = self._store.revision
        if not force and revision == self._published_revision:
            return
        self._published_revision = revision
        self._events.publish(
            MemoryEvent(
                stamp=self.get_clock().now().to_msg(),
                revision=int(revision),
                kind=kind,
                person_ids=[int(p) for p in person_ids],
                message=message,
            )
        )

    def _on_change(self, revision: int) -> None:
        """The server announced a change (a thread of the store): publish it at once."""
        if revision != self._published_revision:
            self._poll_revision()

    def _poll_revision(self) -> None:
        """Publish changes made by anyone (services, other robots, the labelling page, the CLI)."""
        with self._event_lock:
            try:
                revision = self._store.revision
                if revision == self._published_revision:
                    return
                events = self._store.events_since(max(self._published_revision, 0))
            except Exception as exc:
                level = "warning" if is_disconnected(exc) else "error"
                getattr(self.get_logger(), level)(f"cannot read the store: {exc}",
                                                  throttle_duration_sec=30.0)
                return
            last = events[-1] if events else None
            kind = last.kind if last else "changed"
            pids = sorted({p for e in events for p in e.person_ids})
            self._publish_event(kind, pids, last.message if last else f"revision {revision}")

    # -- timers --------------------------------------------------------------------------------
    def _close_stale_visits(self) -> None:
        try:
            closed = self._store.close_stale_visits(self.now_s(),
                                                    robot_id=self._store.options.robot_id)
        except STORE_ERRORS as exc:
            self.get_logger().warning(f"cannot close visits: {exc}", throttle_duration_sec=60.0)
            return
        for visit in closed or []:
            # Ids only in logs: a forgotten person's name must not linger in ~/.ros/log.
            self.get_logger().info(f"visit {visit.visit_id} of person {visit.person_id} ended")

    def _recluster(self) -> None:
        try:
            changed = self._store.recluster()
        except STORE_ERRORS as exc:
            self.get_logger().warning(f"re-clustering skipped: {exc}", throttle_duration_sec=60.0)
            return
        if changed:
            self.get_logger().info(f"re-clustered unknown faces: {changed} changed")

    def _purge(self) -> None:
        try:
            report = self._store.purge(self.now_s())
        except STORE_ERRORS as exc:
            self.get_logger().warning(f"retention purge skipped: {exc}", throttle_duration_sec=60.0)
            return
        if report.num_unknowns or report.num_visits:
            self.get_logger().info(
                f"retention purge: {report.num_unknowns} unknown faces, "
                f"{report.num_visits} visits removed"
            )

    # -- services ------------------------------------------------------------------------------
    def _guard(self, name: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """Answer refusals and failures with success=false and the reason; never raise."""

        def call(request: Any, response: Any) -> Any:
            try:
                handler(request, response)
                response.success = True
            except STORE_ERRORS as exc:
                response.success = False
                response.message = str(exc)
                self.get_logger().warning(f"{name} refused: {exc}")
            except Exception as exc:
                response.success = False
                response.message = f"internal error: {type(exc).__name__}: {exc}"
                self.get_logger().error(f"{name} failed: {response.message}")
            else:
                if not name.startswith("list_"):
                    self._poll_revision()
                    ids = {k: v for k, v in _fields(request).items() if k.endswith(("_id", "_ids"))}
                    self.get_logger().info(f"{name} done: {ids}")  # ids only, never names
            return response

        return call

    def _label_unknown(self, req: LabelUnknown.Request, resp: LabelUnknown.Response) -> None:
        result = self._store.label(
            cluster_id=req.cluster_id,
            unknown_id=req.unknown_id,
            name=req.name,
            person_id=req.person_id,
            unknown_ids=[int(i) for i in req.unknown_ids],
            cluster_revision=int(req.cluster_revision),
        )
        resp.person_id = int(result.person_id)
        resp.num_embeddings = int(result.num_embeddings)
        what = (f"cluster {req.cluster_id}" if req.cluster_id >= 0
                else f"face {req.unknown_id}" if req.unknown_id >= 0
                else f"{len(req.unknown_ids)} faces")
        resp.message = (
            f"{what} labelled {result.name!r} ({'new' if result.created else 'existing'}"
            f" person {result.person_id}, {result.num_embeddings} faces)"
        )

    def _rename_person(self, req: RenamePerson.Request, resp: RenamePerson.Response) -> None:
        person = self._store.rename_person(req.person_id, req.name)
        resp.message = f"person {person.person_id} is now {person.name!r}"

    def _merge_persons(self, req: MergePersons.Request, resp: MergePersons.Response) -> None:
        moved = self._store.merge_persons(req.source_id, req.target_id)
        resp.num_embeddings = int(moved)
        resp.message = f"person {req.source_id} merged into {req.target_id} ({moved} faces)"

    def _not_this_person(self, req: NotThisPerson.Request, resp: NotThisPerson.Response) -> None:
        moved = self._store.not_this_person(
            req.person_id, list(req.embedding_ids), req.unknown_cluster_id
        )
        resp.num_moved = int(moved)
        resp.message = f"{moved} faces are not person {req.person_id}; they will not match again"

    def _split_person(self, req: SplitPerson.Request, resp: SplitPerson.Response) -> None:
        person = self._store.split_person(req.person_id, list(req.embedding_ids), req.new_name)
        resp.new_person_id = int(person.person_id)
        resp.message = f"{len(req.embedding_ids)} faces moved to new person {person.name!r}"

    def _forget_person(self, req: ForgetPerson.Request, resp: ForgetPerson.Response) -> None:
        self._store.forget_person(req.person_id)
        with self._lock:
            self._last_visit_write.pop(int(req.person_id), None)
        resp.message = f"person {req.person_id} forgotten: faces, crops and visits deleted"

    def _discard_unknowns(
        self, req: DiscardUnknowns.Request, resp: DiscardUnknowns.Response
    ) -> None:
        ids = [int(i) for i in req.unknown_ids]
        if req.unknown_id >= 0:
            if ids:
                raise MemoryStoreError("give unknown_id or unknown_ids, not both")
            ids = [int(req.unknown_id)]
        n = self._store.discard_unknowns(
            cluster_id=req.cluster_id, unknown_ids=ids, reason=req.reason,
            not_a_face=bool(req.not_a_face), cluster_revision=int(req.cluster_revision),
        )
        resp.num_discarded = int(n)
        resp.message = f"{n} unknown faces discarded" + (
            ", kept as 'not a face' examples" if req.not_a_face else "")

    def _forget_non_faces(
        self, req: ForgetNonFaces.Request, resp: ForgetNonFaces.Response
    ) -> None:
        n = self._store.forget_non_faces(req.embedder or None)
        resp.num_forgotten = int(n)
        resp.message = f"{n} 'not a face' examples forgotten"

    def _set_never_remember(
        self, req: SetNeverRemember.Request, resp: SetNeverRemember.Response
    ) -> None:
        person = self._store.set_never_remember(req.person_id, req.never_remember)
        resp.message = f"person {person.person_id} " + (
            "will never be remembered" if person.never_remember else "may be remembered again"
        )

    def _list_persons(self, req: ListPersons.Request, resp: ListPersons.Response) -> None:
        persons = self._store.list_persons(req.name_filter)
        resp.persons = [
            PersonInfo(
                person_id=p.person_id,
                name=p.name,
                num_embeddings=p.num_embeddings,
                num_visits=p.num_visits,
                first_seen=s_to_stamp(p.first_seen),
                last_seen=s_to_stamp(p.last_seen),
                never_remember=p.never_remember,
            )
            for p in persons
        ]
        resp.message = f"{len(persons)} persons"

    def _list_clusters(
        self, req: ListUnknownClusters.Request, resp: ListUnknownClusters.Response
    ) -> None:
        clusters = self._store.list_clusters(
            min_size=max(1, req.min_size), max_samples=req.max_samples
        )
        resp.clusters = [
            UnknownCluster(
                cluster_id=c.cluster_id,
                size=c.size,
                first_seen=s_to_stamp(c.first_seen),
                last_seen=s_to_stamp(c.last_seen),
                unknown_ids=list(c.unknown_ids),
                sample_crops=[rgb_to_msg(crop) for crop in c.sample_crops],
                qualities=[float(q) for q in c.qualities],
                revision=int(c.revision),
            )
            for c in clusters
        ]
        resp.message = f"{len(clusters)} clusters"

    def _list_visits(self, req: ListVisits.Request, resp: ListVisits.Response) -> None:
        visits = self._store.list_visits(req.person_id, req.limit)
        resp.visits = [
            Visit(
                visit_id=v.visit_id,
                person_id=v.person_id,
                name=v.name,
                start=s_to_stamp(v.start),
                end=s_to_stamp(v.end),
                dominant_activity=v.dominant_activity,
                location=v.location,
                robot_id=v.robot_id,
            )
            for v in visits
        ]
        resp.message = f"{len(visits)} visits"

    def _get_gallery(self, req: GetGallery.Request, resp: GetGallery.Response) -> None:
        gallery = self._store.gallery(req.embedder)
        resp.revision = int(gallery.revision)
        resp.dim = int(gallery.dim)
        resp.embedding_ids = [e.embedding_id for e in gallery.entries]
        resp.person_ids = [e.person_id for e in gallery.entries]
        resp.names = [e.name for e in gallery.entries]
        resp.vectors = gallery.vectors.reshape(-1).astype(np.float32)
        resp.negative_person_ids = [n.person_id for n in gallery.negatives]
        resp.negative_vectors = (
            np.concatenate([n.vector for n in gallery.negatives]).astype(np.float32)
            if gallery.negatives
            else np.zeros(0, np.float32)
        )
        resp.opted_out_person_ids = sorted(gallery.opted_out)
        unknowns = [
            u
            for u in self._store.list_unknowns()
            if u.embedder == req.embedder and u.cluster_id != PENDING
        ]
        means = (
            means_of(np.stack([u.vector for u in unknowns]), [u.cluster_id for u in unknowns])
            if unknowns
            else {}
        )
        resp.cluster_ids = list(means)
        resp.cluster_means = (
            np.concatenate(list(means.values())).astype(np.float32)
            if means
            else np.zeros(0, np.float32)
        )
        resp.cluster_similarity = float(self.params["cluster_similarity"])
        resp.message = (
            f"{len(gallery.entries)} vectors of {len(set(resp.person_ids))} persons "
            f"at revision {gallery.revision}"
        )

    def close(self) -> None:
        """Write what is buffered if the server is back, then close the store."""
        if len(self._sightings):
            self._sightings.flush(self._store)
        if len(self._sightings):
            self.get_logger().error(f"{len(self._sightings)} buffered sightings could not be "
                                    "written: the memory server is still unreachable")
        self._store.close()


def main(args: list[str] | None = None) -> None:
    """Entry point of the memory_node executable."""
    run_node(MemoryNode, args, threads=MemoryNode.EXECUTOR_THREADS)
