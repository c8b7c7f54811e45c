"""memory_node over DDS: which faces become unknown faces, and labelling exactly what was shown.

Real BBT face crops (box, landmarks, score and aligned crop from the perception pipeline) pass
the quality gate; a flat grey crop does not, and the refusal is counted on /diagnostics. Faces
decided before identity_node had a gallery are not stored; a track that becomes KNOWN takes its
stored unknown faces away (and the untracked face it was); a restarted detector's track ids
start a new track; a face in the uncertain band is kept as "maybe <name>?". The services label
the faces shown (ids, or the cluster revision), discard with "not a face", and forget those
examples.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.dds, pytest.mark.bbt]

from reliability_tools import MemoryDiagnostics  # noqa: E402
from visio_memoria.msg import Identity, IdentityArray  # noqa: E402
from visio_memoria.srv import (  # noqa: E402
    DiscardUnknowns,
    ForgetNonFaces,
    LabelUnknown,
    ListUnknownClusters,
)

from visio_memoria_ros.memory import SQLiteStore, StoreOptions  # noqa: E402
from visio_memoria_ros.nodes.images import rgb_to_msg  # noqa: E402
from visio_memoria_ros.nodes.qos import RELIABLE_QOS  # noqa: E402
from visio_memoria_ros.nodes.stamps import s_to_stamp  # noqa: E402

DIM = 128
EMB = "test_embedder_128"


class Face:
    """One real face as the pipeline sees it: box, landmarks, score, aligned crop."""

    def __init__(self, bbox, landmarks, score, crop) -> None:
        self.bbox, self.landmarks, self.score, self.crop = bbox, landmarks, score, crop


@pytest.fixture(scope="module")
def faces(bbt_dir) -> list[Face]:
    from visio_memoria_ros.config.memory import PARAMS
    from visio_memoria_ros.perception import (
        FacenessChecker,
        Perceiver,
        PerceiverConfig,
        QualityGate,
        assess_face,
    )

    gate = QualityGate.from_params({p.name: p.default for p in PARAMS})
    faceness = FacenessChecker()
    perceiver = Perceiver(PerceiverConfig(warmup=False))
    out: dict[str, list[Face]] = {}
    for who in ("leonard", "raj"):
        for path in sorted((bbt_dir / who).iterdir()):
            perceiver.reset()
            found = perceiver.process(cv2.cvtColor(cv2.imread(str(path)),
                                                   cv2.COLOR_BGR2RGB)).faces
            if found:
                f = max(found, key=lambda f: f.bbox[2] - f.bbox[0])
                a = assess_face(f.crop, f.bbox, f.landmarks, f.score, faceness=faceness(f.crop))
                if not gate.reasons(a):  # faces the default gate keeps
                    out.setdefault(who, []).append(Face(f.bbox, f.landmarks, f.score, f.crop))
    assert len(out["leonard"]) >= 4 and len(out["raj"]) >= 4, {k: len(v) for k, v in out.items()}
    return out["leonard"][:4] + out["raj"][:4]


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def person(k: int, i: int) -> np.ndarray:
    """A vector of synthetic person k (cosine ~0.97 within a person, ~0 across)."""
    rng = np.random.default_rng(1000 * k + i)
    return unit(np.random.default_rng(k).normal(size=DIM) + 0.15 * rng.normal(size=DIM))


def ident(track: int, vector: np.ndarray, face: Face, *, status: int = Identity.STATUS_UNKNOWN,
          person_id: int = -1, candidate: int = -1, crop: np.ndarray | None = None) -> Identity:
    msg = Identity(track_id=track, person_track_id=-1, person_id=person_id, similarity=0.5,
                   status=status, unknown_cluster_id=-1, bbox=face.bbox.tolist(),
                   new_evidence=status != Identity.STATUS_KNOWN,
                   embedding=vector.tolist() if status != Identity.STATUS_KNOWN else [],
                   embedder=EMB, quality=0.5, score=float(face.score),
                   landmarks=face.landmarks.reshape(-1).tolist(),
                   candidate_person_id=candidate,
                   candidate_similarity=0.93 if candidate >= 0 else float("nan"))
    if status != Identity.STATUS_KNOWN:
        msg.crop = rgb_to_msg(face.crop if crop is None else crop)
    return msg


def frame(t: float, rows: list[Identity], *, session: str = "s1", revision: int = 3
          ) -> IdentityArray:
    msg = IdentityArray(identities=rows, track_session=session, gallery_revision=revision)
    msg.header.stamp = s_to_stamp(t)
    msg.header.frame_id = "front_cam"
    return msg


def test_which_faces_become_unknowns_and_labelling_what_was_shown(ros, launch, tmp_path,
                                                                  faces):
    data = tmp_path / "mem"
    db = data / "memory.db"
    with SQLiteStore(db, StoreOptions()) as store:  # an enrolled person for the visits
        amy = store.create_person("Amy").person_id
    node = launch("memory_node", params={"data_dir": str(data), "cluster_min_size": 2,
                                         "cluster_similarity": 0.8, "reembed_on_start": False})
    diag = MemoryDiagnostics(ros)
    pub = ros.node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
    ros.wait_for_subscribers(pub, 1, 60, [node])
    t = time.time() - 100

    def stored() -> list:
        with SQLiteStore(db, StoreOptions(read_only=True)) as s:
            return s.list_unknowns()

    def diagnostics() -> dict[str, str]:
        return diag.statuses[-1][2] if diag.statuses else {}

    def settle(what: str, cond) -> None:
        try:
            ros.spin_until(cond, 60, what, [node])
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n/diagnostics: {diagnostics()}\n"
                                 f"stored: {[(u.unknown_id, u.track_key) for u in stored()]}"
                                 ) from None

    leonard, raj = faces[:4], faces[4:]
    # 1. Before identity_node had a gallery: every face is UNKNOWN, none is evidence.
    pub.publish(frame(t, [ident(1, person(1, 0), leonard[0])], revision=-1))
    # 2. A flat grey crop is no face a person could recognise: refused, counted.
    grey = np.full((192, 192, 3), 128, np.uint8)
    pub.publish(frame(t + 0.1, [ident(2, person(2, 0), leonard[0], crop=grey)]))
    settle("both refusals on /diagnostics", lambda: float(
        diagnostics().get("not_remembered_no_gallery", 0)) >= 1 and float(
        diagnostics().get("not_remembered_flat", 0)) >= 1)
    assert stored() == []

    # 3. Stranger A on track 3, two untracked faces, then the untracked face that becomes
    #    track 4 (same box); track 4 turns out to be Amy: its faces (and that untracked one)
    #    go, the others stay.
    for i in range(3):
        pub.publish(frame(t + 1 + i, [ident(3, person(3, i), leonard[i])]))
    offset = np.array([300.0, 0.0], np.float32)  # another place in the picture
    elsewhere = Face(raj[1].bbox + np.tile(offset, 2), raj[1].landmarks + offset, raj[1].score,
                     raj[1].crop)
    pub.publish(frame(t + 4, [ident(-1, person(5, 0), raj[0]),
                              ident(-1, person(6, 0), elsewhere)]))
    raj2 = Face(raj[0].bbox + 1.0, raj[0].landmarks + 1.0, raj[0].score, raj[2].crop)
    pub.publish(frame(t + 4.2, [ident(4, person(5, 1), raj2)]))
    settle("six unknown faces", lambda: len(stored()) == 6)
    keys = [u.track_key for u in stored()]
    assert len(set(keys)) == 4 and all(k.startswith("front_cam:s1:") for k in keys)
    pub.publish(frame(t + 4.5, [ident(4, person(5, 2), raj2, status=Identity.STATUS_KNOWN,
                                      person_id=amy)]))
    settle("the known track's faces removed", lambda: len(stored()) == 4)
    assert {u.track_key for u in stored()} == {"front_cam:s1:3", keys[4]}
    # A later UNKNOWN face of that track is still not a stranger's.
    pub.publish(frame(t + 5, [ident(4, person(5, 3), raj[3])]))
    settle("known_track counted", lambda: float(
        diagnostics().get("not_remembered_known_track", 0)) >= 1)

    # 4. The detector restarts: track 3 again, another session, another person.
    for i in range(3):
        pub.publish(frame(t + 6 + i, [ident(3, person(7, i), raj[i])], session="s2"))
    settle("seven faces", lambda: len(stored()) == 7)
    by_person = {}
    for u in stored():
        by_person.setdefault(u.cluster_id, set()).add(u.track_key.split(":")[1])
    assert all(len(sessions) == 1 for cid, sessions in by_person.items() if cid >= 0), by_person

    # 5. "Maybe Amy?": uncertain, its own embedding close to Amy's: waits for a yes or no.
    pub.publish(frame(t + 10, [ident(9, person(8, 0), leonard[3],
                                     status=Identity.STATUS_UNCERTAIN, candidate=amy)]))
    settle("a candidate face", lambda: any(u.candidate_id == amy for u in stored()))

    # 6. Label cluster A as listed; a face that joins later stays unknown.
    lister = ros.node.create_client(ListUnknownClusters, "visio_memoria/list_unknown_clusters")
    listed = ros.call(lister, ListUnknownClusters.Request(max_samples=2, min_size=2), 30,
                      [node]).clusters
    a = next(c for c in listed if c.size == 3 and c.unknown_ids[0] in
             {u.unknown_id for u in stored() if u.track_key == "front_cam:s1:3"})
    assert a.revision > 0 and len(a.qualities) == 2 and a.qualities[0] >= a.qualities[1]
    pub.publish(frame(t + 11, [ident(3, person(3, 3), leonard[3])]))
    settle("the late face", lambda: len(stored()) == 9)
    label = ros.node.create_client(LabelUnknown, "visio_memoria/label_unknown")
    resp = ros.call(label, LabelUnknown.Request(cluster_id=a.cluster_id, name="Leonard",
                                                cluster_revision=a.revision), 30, [node])
    assert resp.success and resp.num_embeddings == 3, resp.message
    assert [u.cluster_id for u in stored() if u.track_key == "front_cam:s1:3"] == [a.cluster_id]
    # Exactly the faces shown, by id; one gone meanwhile refuses the call.
    b = [u.unknown_id for u in stored() if u.track_key == "front_cam:s2:3"]
    resp = ros.call(label, LabelUnknown.Request(unknown_ids=b[:2], name="Raj"), 30, [node])
    assert resp.success and resp.num_embeddings == 2, resp.message
    resp = ros.call(label, LabelUnknown.Request(unknown_ids=b, name="Raj"), 30, [node])
    assert not resp.success and "do not exist" in resp.message

    # 7. "Not a face" teaches; forgetting the examples is one call.
    discard = ros.node.create_client(DiscardUnknowns, "visio_memoria/discard_unknowns")
    resp = ros.call(discard, DiscardUnknowns.Request(unknown_ids=b[2:], not_a_face=True,
                                                     reason="a hand"), 30, [node])
    assert resp.success and resp.num_discarded == 1, resp.message
    pub.publish(frame(t + 12, [ident(11, person(7, 2), raj[3])], session="s2"))
    settle("matches_non_face counted", lambda: float(
        diagnostics().get("not_remembered_matches_non_face", 0)) >= 1)
    forget = ros.node.create_client(ForgetNonFaces, "visio_memoria/forget_non_faces")
    resp = ros.call(forget, ForgetNonFaces.Request(), 30, [node])
    assert resp.success and resp.num_forgotten == 1, resp.message
    assert float(diagnostics()["unknowns_remembered"]) >= 9
