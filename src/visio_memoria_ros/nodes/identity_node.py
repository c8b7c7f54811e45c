"""identity_node: ``perception`` -> ``identities`` + ``greeting``, per track, open-set.

The gallery comes from memory_node (``visio_memoria/get_gallery``) at start and again whenever
``memory/events`` announces a newer revision, so labelling, merging or forgetting takes effect
without a restart. Every request to memory_node goes through ``ReliableCall``: it times out and
is re-sent with back-off, so a lost reply or a memory_node restart costs a retry, never the
gallery. The node remembers the newest revision announced and asks again after any reply older
than it, so a change made while a request is pending still ends with the newest gallery.
Before the first gallery, the node asks memory_node for the visits still open
(``visio_memoria/list_visits``) and takes them over, so a restart of this node in the middle of
somebody's visit does not greet them a second time.

The face embedder is the one embedding_node runs: every embedded Face carries its id. The
``embedder`` parameter only says which gallery to load at start; a face of another embedder is
an ERROR in the log and on /diagnostics, and the node loads the gallery of the embedder it
actually receives. /diagnostics is WARN or ERROR while there is no gallery, while it is behind
the memory, or while open visits could not be resumed.

Frames are decided in arrival order inside the subscription callback: the engine is light (a
FAISS search and a vote per frame) and voting needs every frame it gets.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from typing import Any

import numpy as np
from std_msgs.msg import String
from visio_memoria.msg import IdentityArray, MemoryEvent, Perception
from visio_memoria.srv import GetGallery, ListVisits

from ..config import identity as identity_params
from ..core.types import NO_TRACK, Status
from ..identity import EngineConfig, GalleryEntry, IdentityEngine, NegativeEntry
from .convert import frame_from_msg, identities_to_msg
from .diagnostics import ERROR, OK, WARN, Health, StageDiagnostics, StageStats
from .images import ImageConverter
from .params import VisioNode
from .qos import LATCHED_QOS, RELIABLE_QOS
from .reliable_call import ReliableCall
from .stamps import stamp_to_s
from .startup import NodeStartupError, run_node

#: Newest visits asked from memory_node at start to find the open ones (newest first).
OPEN_VISITS_LIMIT = 500
#: Without an answer from list_visits for this long [s], load the gallery without open visits.
OPEN_VISITS_WAIT = 10.0
#: No gallery this long after start [s]: /diagnostics goes from WARN to ERROR.
GALLERY_GRACE = 10.0
#: A gallery behind the announced revision for this long [s] is reported (WARN).
BEHIND_GRACE = 3.0
#: A refused or unloadable gallery is asked for again after this long [s].
GALLERY_RETRY = 2.0
#: Replies older than the announced revision accepted in a row before the announcement is
#: taken as wrong (a memory replaced by an older copy) instead of asking for ever.
MAX_OLDER_REPLIES = 5


class IdentityNode(VisioNode):
    """Matches embedded faces against the gallery, votes per track and greets once per visit."""

    def __init__(self) -> None:
        super().__init__(
            "identity_node", identity_params.PARAMS, cross_check=identity_params.check_params
        )
        try:
            self._engine = IdentityEngine(EngineConfig.from_params(self.params))
        except ValueError as exc:
            raise NodeStartupError(str(exc)) from exc
        self._converter = ImageConverter()
        self._stats = StageStats()
        self._received = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._revision = -1  # revision of the loaded gallery; -1 = none loaded
        self._wanted = -1  # newest revision memory_node announced
        self._older_replies = 0
        self._gallery_embedder = ""  # embedder of the loaded gallery
        self._gallery_problem = ""  # why the last gallery answer was not loaded
        self._retry_at: float | None = None
        self._behind_since: float | None = None
        self._face_embedder = ""  # embedder of the newest embedded face received
        self._switched_at = -1e9
        self._persons_changed = False
        self._clusters: tuple[np.ndarray, np.ndarray, float] | None = None
        self._track_cluster: dict[int, int] = {}
        self._visits_state = "pending"  # pending -> resumed | failed
        self._visits_problem = ""

        self._identities = self.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
        # Volatile on purpose: a speech node that starts late must not speak a stale greeting.
        self._greeting = self.create_publisher(String, "greeting", RELIABLE_QOS)
        self._gallery_call = ReliableCall(self, GetGallery, "visio_memoria/get_gallery")
        self._visits_call = ReliableCall(self, ListVisits, "visio_memoria/list_visits")
        self.create_subscription(Perception, "perception", self._on_perception, RELIABLE_QOS)
        self.create_subscription(MemoryEvent, "memory/events", self._on_event, LATCHED_QOS)
        self.create_timer(0.5, self._watch)
        self._diagnostics = StageDiagnostics(
            self, "identity", self._stats, self._counters, self._health
        )
        self.on_params_changed(self._reconfigure)
        self.get_logger().info(
            f"embedder {self.params['embedder']}: accept >= {self._engine.thresholds.accept:.3f} "
            f"({self.params['min_votes']} votes) or >= {self._engine.thresholds.instant:.3f} "
            f"(one), margin {self._engine.thresholds.margin:.3f} over the runner-up, reject < "
            f"{self._engine.thresholds.reject:.3f}; waiting for the gallery from "
            f"{self._gallery_call.srv_name}"
        )
        # Open visits first: no KNOWN decision (no greeting) before they are in.
        self._visits_call.call(ListVisits.Request(person_id=-1, limit=OPEN_VISITS_LIMIT),
                               self._on_open_visits)

    # -- gallery -------------------------------------------------------------------------------
    def _on_event(self, msg: MemoryEvent) -> None:
        revision = int(msg.revision)
        if msg.kind == "started":
            # A (re)started memory_node: its revision is the truth (even a lower one, when the
            # file was replaced), and a request pending with the old process is void.
            with self._lock:
                self._wanted = revision
            self._request_gallery(restart=True)
            return
        with self._lock:
            self._wanted = max(self._wanted, revision)
            if revision == self._revision:
                return
            if msg.kind not in ("clustered", "discarded"):
                self._persons_changed = True
        self._request_gallery()

    def _request_gallery(self, restart: bool = False) -> None:
        """Ask for the gallery; a pending request is kept unless ``restart`` (newest wins)."""
        with self._lock:
            if self._visits_state == "pending":
                return  # asked for once the open visits are in
            if self._gallery_call.pending and not restart:
                return  # its answer is checked against the wanted revision
            self._retry_at = None
            embedder = self._engine.embedder
        self._gallery_call.call(GetGallery.Request(embedder=embedder),
                                functools.partial(self._on_gallery, embedder))

    def _watch(self) -> None:
        """Give up on open visits after a while; retry a refused gallery; track lag."""
        now = time.monotonic()
        if (self._visits_state == "pending" and now - self._started > OPEN_VISITS_WAIT
                and self._gallery_call.service_is_ready()):
            self._visits_call.cancel()
            self._visits_done("failed", f"no answer from {self._visits_call.srv_name} in "
                                        f"{OPEN_VISITS_WAIT:.0f} s")
        with self._lock:
            due = self._retry_at is not None and now >= self._retry_at
            behind = self._revision < 0 or self._wanted > self._revision
            if not behind:
                self._behind_since = None
            elif self._behind_since is None:
                self._behind_since = now
        if due:
            self._request_gallery(restart=True)

    def _on_open_visits(self, resp: ListVisits.Response) -> None:
        """Take over the visits memory_node still has open, then ask for the gallery."""
        try:
            if not resp.success:
                raise RuntimeError(resp.message)
            open_visits = [(int(v.person_id), stamp_to_s(v.start)) for v in resp.visits
                           if v.end.sec == 0 and v.end.nanosec == 0]
            n = self._engine.resume_visits(open_visits, self.now_s())
            if n:
                self.get_logger().info(f"resumed {n} open visit(s): those persons are not "
                                       "greeted again during their visit")
        except Exception as exc:  # greet twice rather than never
            self._visits_done("failed", str(exc))
            return
        self._visits_done("resumed", "")

    def _visits_done(self, state: str, problem: str) -> None:
        with self._lock:
            if self._visits_state != "pending":
                return
            self._visits_state, self._visits_problem = state, problem
        if problem:
            self.get_logger().warning(f"open visits not resumed ({problem}): a visit in "
                                      "progress may be greeted again")
        self._request_gallery(restart=True)

    def _on_gallery(self, embedder: str, resp: GetGallery.Response) -> None:
        if embedder != self._engine.embedder:
            return  # asked for before the node followed another embedder; asked again since
        if not resp.success:
            self._gallery_failed(f"memory_node refused the gallery: {resp.message}")
            return
        try:
            report = self._load(resp, embedder)
        except ValueError as exc:
            self._gallery_failed(f"gallery not loaded: {exc}")
            return
        revision = int(resp.revision)
        with self._lock:
            self._revision = revision
            self._gallery_embedder = embedder
            self._gallery_problem = ""
            again = revision < self._wanted
            if again:
                self._older_replies += 1
                if self._older_replies > MAX_OLDER_REPLIES:
                    self.get_logger().warning(
                        f"memory_node keeps answering revision {revision} although revision "
                        f"{self._wanted} was announced: taking {revision} as the newest")
                    self._wanted, again = revision, False
            if not again:
                self._older_replies = 0
            reset = self._persons_changed
            self._persons_changed = False
        if reset:
            # Votes cast against the old gallery are stale: tracks decide again from their next
            # embeddings. Visits (and so greetings) are kept per person, not per track.
            self._engine.reset_tracks()
            self._track_cluster.clear()
        self.get_logger().info(
            f"gallery revision {resp.revision} ({embedder}): {report.num_vectors} vectors of "
            f"{report.num_persons} persons, {report.num_negatives} negatives, "
            f"index {report.index_kind}"
            + (f"; skipped {dict(report.skipped)}" if report.skipped else "")
            + (f"; revision {self._wanted} announced meanwhile: asking again" if again else "")
        )
        if again:
            self._request_gallery()

    def _gallery_failed(self, problem: str) -> None:
        self.get_logger().error(problem, throttle_duration_sec=10.0)
        with self._lock:
            self._gallery_problem = problem
            self._retry_at = time.monotonic() + GALLERY_RETRY

    def _load(self, resp: GetGallery.Response, embedder: str) -> Any:
        dim = int(resp.dim)
        vectors = np.asarray(resp.vectors, dtype=np.float32).reshape(-1, dim) if dim else []
        entries = [
            GalleryEntry(int(e), int(p), n, v, embedder)
            for e, p, n, v in zip(resp.embedding_ids, resp.person_ids, resp.names, vectors,
                                  strict=True)
        ]
        negatives = []
        if dim and len(resp.negative_person_ids):
            neg = np.asarray(resp.negative_vectors, dtype=np.float32).reshape(-1, dim)
            negatives = [NegativeEntry(int(p), v, embedder)
                         for p, v in zip(resp.negative_person_ids, neg, strict=True)]
        report = self._engine.reload(entries, negatives, [int(p) for p in
                                                          resp.opted_out_person_ids])
        if dim and len(resp.cluster_ids):
            means = np.asarray(resp.cluster_means, dtype=np.float32).reshape(-1, dim)
            self._clusters = (np.asarray(resp.cluster_ids, np.int64), means,
                              float(resp.cluster_similarity))
        else:
            self._clusters = None
        return report

    def _cluster_of(self, vector: np.ndarray) -> int:
        clusters = self._clusters
        if clusters is None or vector.shape[0] != clusters[1].shape[1]:
            return -1
        ids, means, threshold = clusters
        sims = means @ vector  # the average similarity to each cluster's members
        best = int(np.argmax(sims))
        return int(ids[best]) if sims[best] >= threshold else -1

    # -- health -------------------------------------------------------------------------------
    def _counters(self) -> dict[str, float | str]:
        return {
            "received": float(self._received),
            "dropped": 0.0,
            "gallery_revision": float(self._revision),
            "memory_revision": float(self._wanted),
            "gallery_vectors": float(self._engine.gallery_size),
            "gallery_embedder": self._gallery_embedder,
            "face_embedder": self._face_embedder,
            **self._gallery_call.counters("gallery_calls"),
            **self._visits_call.counters("visits_calls"),
        }

    def _health(self) -> Health:
        """ERROR/WARN while faces cannot be matched, the gallery is missing or behind."""
        now = time.monotonic()
        with self._lock:
            revision, wanted, problem = self._revision, self._wanted, self._gallery_problem
            visits_state, behind_since = self._visits_state, self._behind_since
            mismatch = self._face_embedder and self._face_embedder != self._gallery_embedder
        found: list[Health] = []
        if mismatch and (revision >= 0 or self._switched_at > -1e9):
            found.append((ERROR, f"faces are made by {self._face_embedder!r} but the gallery "
                                 f"is of {self._gallery_embedder or 'no embedder'!r}: they "
                                 "cannot be recognised until its gallery loads (set "
                                 f"identity_node embedder: {self._face_embedder} to load it "
                                 "at start)"))
        if revision < 0:
            if visits_state == "pending":
                why = f"waiting for open visits ({self._visits_call.describe()})"
            else:
                why = problem or self._gallery_call.describe()
            late = now - self._started > GALLERY_GRACE
            found.append((ERROR if late else WARN,
                          f"no gallery: nobody can be recognised ({why})"))
        elif problem:
            found.append((WARN, f"gallery revision {revision} kept: {problem}"))
        elif behind_since is not None and now - behind_since > BEHIND_GRACE:
            found.append((WARN, f"gallery revision {revision} is behind memory revision "
                                f"{wanted} ({self._gallery_call.describe()})"))
        if visits_state == "failed":
            found.append((WARN, f"open visits not resumed: {self._visits_problem}"))
        if not found:
            return OK, "ok"
        return max(level for level, _ in found), "; ".join(text for _, text in found)

    # -- frames --------------------------------------------------------------------------------
    def _on_perception(self, msg: Perception) -> None:
        self._received += 1
        try:
            self._process(msg)
        except Exception as exc:  # a malformed message must not kill the node
            self._stats.error()
            self.get_logger().error(f"frame skipped: {type(exc).__name__}: {exc}",
                                    throttle_duration_sec=5.0)

    def _process(self, msg: Perception) -> None:
        t0 = time.monotonic()
        problems: list[str] = []
        frame = frame_from_msg(msg, self._converter, problems)
        for problem in problems:
            self.get_logger().warning(f"skipped a malformed {problem}", throttle_duration_sec=5.0)
        t = frame.stamp
        made_by = Counter(f.embedder for f in frame.faces
                          if f.embedder and f.embedding is not None and np.size(f.embedding))
        if made_by:
            self._follow_embedder(made_by.most_common(1)[0][0])
        if self._engine.observe_session(frame.track_session):
            # A restarted detector (or a reset tracker) hands out the same ids again: the old
            # tracks' votes and clusters must not pass to the new faces that now carry them.
            self.get_logger().info("the detector's track ids restarted: tracks reset")
            self._track_cluster.clear()
        with self._lock:
            revision = self._revision  # -1: no gallery yet, every face is UNKNOWN meanwhile
        out = self._engine.process(frame.faces, t)
        person_of_face = {p.face_track_id: p.track_id for p in frame.persons
                          if p.face_track_id != NO_TRACK}
        for tid in out.expired_tracks:
            self._track_cluster.pop(tid, None)
        for d in out.decisions:
            d.person_track_id = person_of_face.get(d.track_id, NO_TRACK)
            if d.status is Status.UNKNOWN:
                if d.embedding is not None:
                    cluster = self._cluster_of(d.embedding)
                    if d.track_id != NO_TRACK and cluster >= 0:
                        self._track_cluster[d.track_id] = cluster
                    d.unknown_cluster_id = cluster
                else:
                    d.unknown_cluster_id = self._track_cluster.get(d.track_id, -1)
        self._identities.publish(identities_to_msg(
            out.decisions, msg.header, track_session=frame.track_session,
            gallery_revision=revision))
        for greeting in out.greetings:
            self._greeting.publish(String(data=greeting.text))
            who = "an unknown face" if greeting.is_unknown else f"person {greeting.person_id}"
            self.get_logger().info(f"greeted {who} (track {greeting.track_id})")  # no names
        self._stats.record(time.monotonic() - t0, max(0.0, self.now_s() - t))

    def _follow_embedder(self, embedder: str) -> None:
        """Faces made by another embedder than the gallery's: say so, load that embedder's."""
        self._face_embedder = embedder
        current = self._engine.embedder
        if embedder == current:
            return
        self.get_logger().error(
            f"faces are made by embedder {embedder!r} but the gallery is of {current!r}: they "
            f"cannot be recognised; loading the gallery of {embedder!r} (set identity_node "
            f"embedder: {embedder} to load it at start)", throttle_duration_sec=10.0)
        now = time.monotonic()
        if now - self._switched_at < GALLERY_RETRY:
            return  # faces of two embedders at once: do not reload on every frame
        try:
            config = EngineConfig.from_params({**self.params, "embedder": embedder})
        except ValueError as exc:
            self.get_logger().error(f"cannot follow embedder {embedder!r}: {exc}",
                                    throttle_duration_sec=10.0)
            return
        self._switched_at = now
        self._engine.reconfigure(config)  # empties the gallery of the old embedder
        with self._lock:
            self._revision = -1
            self._gallery_embedder = ""
            self._gallery_problem = ""
            self._clusters = None
            self._track_cluster.clear()
        self._request_gallery(restart=True)

    def _reconfigure(self, changed: dict[str, Any]) -> None:
        # The embedder is the one the faces carry, whatever the start-up parameter said.
        config = EngineConfig.from_params({**self.params, "embedder": self._engine.embedder})
        if self._engine.reconfigure(config):
            self._request_gallery(restart=True)  # index structure: rebuilt from a new gallery


def main(args: list[str] | None = None) -> None:
    """Entry point of the identity_node executable."""
    run_node(IdentityNode, args)
