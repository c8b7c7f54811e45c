"""identity_node: ``perception`` -> ``identities`` + ``greeting``, per track, open-set.

The gallery comes from memory_node (``visio_memoria/get_gallery``) at start and again whenever
``memory/events`` announces a new revision, so labelling, merging or forgetting takes effect
without a restart; until memory_node answers, every face is UNKNOWN or UNCERTAIN. Before the
first gallery, the node asks memory_node for the visits still open (``visio_memoria/
list_visits``) and takes them over, so a restart of this node in the middle of somebody's
visit does not greet them a second time. Frames are
decided in arrival order inside the subscription callback: the engine is light (a FAISS search
and a vote per frame) and voting needs every frame it gets.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from std_msgs.msg import String
from visio_memoria.msg import IdentityArray, MemoryEvent, Perception
from visio_memoria.srv import GetGallery, ListVisits

from ..config import identity as identity_params
from ..core.types import NO_TRACK, Status
from ..identity import EngineConfig, GalleryEntry, IdentityEngine, NegativeEntry
from .common import (
    LATCHED_QOS,
    RELIABLE_QOS,
    NodeStartupError,
    StageDiagnostics,
    StageStats,
    VisioNode,
    run_node,
    stamp_to_s,
)
from .convert import frame_from_msg, identities_to_msg
from .images import ImageConverter

#: Newest visits asked from memory_node at start to find the open ones (newest first).
OPEN_VISITS_LIMIT = 500


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
        self._diagnostics = StageDiagnostics(self, "identity", self._stats, self._counters)
        self._lock = threading.Lock()
        self._revision = -1
        self._pending = False
        self._persons_changed = False
        self._clusters: tuple[np.ndarray, np.ndarray, float] | None = None
        self._track_cluster: dict[int, int] = {}
        self._visits_resumed = False
        self._visits_waits = 0

        self._identities = self.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
        # Volatile on purpose: a speech node that starts late must not speak a stale greeting.
        self._greeting = self.create_publisher(String, "greeting", RELIABLE_QOS)
        self._gallery_client = self.create_client(GetGallery, "visio_memoria/get_gallery")
        self._visits_client = self.create_client(ListVisits, "visio_memoria/list_visits")
        self.create_subscription(Perception, "perception", self._on_perception, RELIABLE_QOS)
        self.create_subscription(MemoryEvent, "memory/events", self._on_event, LATCHED_QOS)
        self.create_timer(2.0, self._retry_gallery)
        self.on_params_changed(self._reconfigure)
        self.get_logger().info(
            f"embedder {self.params['embedder']}: accept >= {self._engine.thresholds.accept:.3f} "
            f"({self.params['min_votes']} votes) or >= {self._engine.thresholds.instant:.3f} "
            f"(one), reject < {self._engine.thresholds.reject:.3f}; waiting for the gallery from "
            f"{self._gallery_client.srv_name}"
        )

    # -- gallery -------------------------------------------------------------------------------
    def _on_event(self, msg: MemoryEvent) -> None:
        if int(msg.revision) != self._revision:
            if msg.kind not in ("clustered", "discarded", "started"):
                self._persons_changed = True
            self._request_gallery()

    def _retry_gallery(self) -> None:
        if self._revision < 0:
            self._request_gallery()

    def _request_gallery(self) -> None:
        with self._lock:
            if self._pending or not self._gallery_client.service_is_ready():
                return
            resume = not self._visits_resumed
            if resume and not self._visits_client.service_is_ready():
                # Discovery of the two services may differ by a moment: wait a few retries.
                self._visits_waits += 1
                if self._visits_waits <= 5:
                    return
                self.get_logger().warning("memory_node offers no list_visits: open visits not "
                                          "resumed (a visit in progress may be greeted again)")
                self._visits_resumed, resume = True, False
            self._pending = True
        if resume:  # open visits first: no KNOWN decision (no greeting) before they are in
            future = self._visits_client.call_async(
                ListVisits.Request(person_id=-1, limit=OPEN_VISITS_LIMIT))
            future.add_done_callback(self._on_open_visits)
            return
        future = self._gallery_client.call_async(GetGallery.Request(embedder=self._engine.embedder))
        future.add_done_callback(self._on_gallery)

    def _on_open_visits(self, future: Any) -> None:
        """Take over the visits memory_node still has open, then ask for the gallery."""
        try:
            resp = future.result()
            if not resp.success:
                raise RuntimeError(resp.message)
            open_visits = [(int(v.person_id), stamp_to_s(v.start)) for v in resp.visits
                           if v.end.sec == 0 and v.end.nanosec == 0]
            n = self._engine.resume_visits(open_visits, self.now_s())
            if n:
                self.get_logger().info(f"resumed {n} open visit(s): those persons are not "
                                       "greeted again during their visit")
        except Exception as exc:  # greet twice rather than never
            self.get_logger().warning(f"open visits not resumed: {exc}")
        with self._lock:
            self._visits_resumed = True
            self._pending = False
        self._request_gallery()

    def _on_gallery(self, future: Any) -> None:
        with self._lock:
            self._pending = False
        try:
            resp = future.result()
        except Exception as exc:
            self.get_logger().error(f"gallery request failed: {exc}", throttle_duration_sec=10.0)
            return
        if not resp.success:
            self.get_logger().error(f"memory_node refused the gallery: {resp.message}",
                                    throttle_duration_sec=10.0)
            return
        try:
            report = self._load(resp)
        except ValueError as exc:
            self.get_logger().error(f"gallery not loaded: {exc}")
            return
        self._revision = int(resp.revision)
        if self._persons_changed:
            # Votes cast against the old gallery are stale: tracks decide again from their next
            # embeddings. Visits (and so greetings) are kept per person, not per track.
            self._persons_changed = False
            self._engine.reset_tracks()
            self._track_cluster.clear()
        self.get_logger().info(
            f"gallery revision {resp.revision}: {report.num_vectors} vectors of "
            f"{report.num_persons} persons, {report.num_negatives} negatives, "
            f"index {report.index_kind}"
            + (f"; skipped {dict(report.skipped)}" if report.skipped else "")
        )

    def _load(self, resp: GetGallery.Response) -> Any:
        dim = int(resp.dim)
        embedder = self._engine.embedder
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
            centroids = np.asarray(resp.cluster_centroids, dtype=np.float32).reshape(-1, dim)
            self._clusters = (np.asarray(resp.cluster_ids, np.int64), centroids,
                              float(resp.cluster_similarity))
        else:
            self._clusters = None
        return report

    def _cluster_of(self, vector: np.ndarray) -> int:
        clusters = self._clusters
        if clusters is None or vector.shape[0] != clusters[1].shape[1]:
            return -1
        ids, centroids, threshold = clusters
        sims = centroids @ vector
        best = int(np.argmax(sims))
        return int(ids[best]) if sims[best] >= threshold else -1

    # -- frames --------------------------------------------------------------------------------
    def _counters(self) -> dict[str, float]:
        return {
            "received": float(self._received),
            "dropped": 0.0,
            "gallery_revision": float(self._revision),
            "gallery_vectors": float(self._engine.gallery_size),
        }

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
        self._identities.publish(identities_to_msg(out.decisions, msg.header))
        for greeting in out.greetings:
            self._greeting.publish(String(data=greeting.text))
            who = "an unknown face" if greeting.is_unknown else f"person {greeting.person_id}"
            self.get_logger().info(f"greeted {who} (track {greeting.track_id})")  # no names
        self._stats.record(time.monotonic() - t0, max(0.0, self.now_s() - t))

    def _reconfigure(self, changed: dict[str, Any]) -> None:
        config = EngineConfig.from_params(self.params)
        if self._engine.reconfigure(config):
            self._revision = -1
            self._request_gallery()


def main(args: list[str] | None = None) -> None:
    """Entry point of the identity_node executable."""
    run_node(IdentityNode, args)
