"""A real-video test of the unknown faces, through the node graph over DDS.

The video (``bbt_video``) is made from the five BBT group photos with camera motion: pans,
zooms, a slow roll, motion blur, and one person per shot turning away until only the back of
the head is seen. Two people are enrolled from their gallery crops (Penny and Howard); the
others are strangers. detector_node, embedding_node, identity_node and memory_node run as
separate processes; the test publishes the frames as a live camera would.

Afterwards every stored unknown face is traced back to the frame and box it came from (the
identity message that carried its embedding) and so to the person whose face centre lies in
that box, or to nobody. Checked: no stored unknown is a non-face (nobody's face centre in the
box, or the back of a head); every cluster holds one person (purity >= 0.98); no face of an
enrolled person is kept as a stranger (only as "maybe <name>?", if at all). Printed: those
numbers, and how many faces of the enrolled people were kept as strangers or as
"maybe <name>?".

    python -m pytest test/test_unknowns_video.py -s     # the numbers in bench/README.md
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

pytestmark = [pytest.mark.dds, pytest.mark.bbt, pytest.mark.slow]

from bbt_video import make_video  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from visio_memoria.msg import IdentityArray  # noqa: E402

from visio_memoria_ros.memory import PENDING, SQLiteStore, StoreOptions  # noqa: E402
from visio_memoria_ros.nodes.images import rgb_to_msg  # noqa: E402
from visio_memoria_ros.nodes.qos import SENSOR_QOS  # noqa: E402
from visio_memoria_ros.nodes.stamps import stamp_to_s  # noqa: E402

ENROLLED = ("penny", "howard")
PIPELINE = {
    "detector_node": {"torch_threads": 1},
    "embedding_node": {"scene_embedder": "none", "torch_threads": 1},
    "identity_node": {},
    "memory_node": {"recluster_period": 0.0},
}
RATE = 4.0  # frames per second of camera time


def enrol(db, bbt_dir) -> dict[str, int]:
    """Enrol ``ENROLLED`` from their gallery crops, as `visio-memoria enroll` does."""
    import cv2

    from visio_memoria_ros.embedding import build_face_embedder
    from visio_memoria_ros.perception import Perceiver, PerceiverConfig

    perceiver = Perceiver(PerceiverConfig(warmup=False))
    embedder = build_face_embedder("dlib")
    ids = {}
    with SQLiteStore(db, StoreOptions()) as store:
        for name in ENROLLED:
            pid = store.create_person(name.capitalize()).person_id
            ids[name] = pid
            for path in sorted((bbt_dir / name).iterdir()):
                perceiver.reset()
                faces = perceiver.process(cv2.cvtColor(cv2.imread(str(path)),
                                                       cv2.COLOR_BGR2RGB)).faces
                if faces:
                    f = max(faces, key=lambda f: f.bbox[2] - f.bbox[0])
                    store.add_embedding(pid, embedder.embed([f.crop])[0], embedder.id,
                                        crop=f.crop, quality=f.quality, source=path.name)
    return ids


def test_every_stored_unknown_is_a_face_and_every_cluster_one_person(ros, launch, bbt_dir,
                                                                      tmp_path):
    data = tmp_path / "memory"
    data.mkdir(mode=0o700)
    enrolled = enrol(data / "memory.db", bbt_dir)
    video = make_video(bbt_dir)
    procs = [launch(name, params={**params, **({"data_dir": str(data)}
                                               if name == "memory_node" else {})})
             for name, params in PIPELINE.items()]
    # Every identity message is needed to trace the stored faces: a deep queue of our own.
    identities = ros.collect(IdentityArray, "identities", QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    pub = ros.node.create_publisher(Image, "image_raw", SENSOR_QOS)
    ros.wait_for_subscribers(pub, 1, 180, procs)
    sub = next(s for s in ros.node.subscriptions if s.topic_name == "/identities")
    ros.wait_for_publishers(sub, 1, 180, procs)

    # Camera time advances at RATE; the graph sees the frames as a live camera sends them.
    t0 = 1_800_000_000.0
    warm = video[0].image
    by_stamp = {round(t0 - 1.0, 3): video[0]}  # the first frame, sent until the graph is up
    ros.spin_until(lambda: (pub.publish(_image(warm, t0 - 1.0)) or any(
        m.gallery_revision >= 0 for m in identities)), 180, "identities with a gallery", procs)
    for i, frame in enumerate(video):
        stamp = t0 + i / RATE
        by_stamp[round(stamp, 3)] = frame
        pub.publish(_image(frame.image, stamp))
        deadline = time.monotonic() + 1.0 / RATE
        while time.monotonic() < deadline:
            ros.executor.spin_once(timeout_sec=0.02)
    last = round(t0 + (len(video) - 1) / RATE, 3)
    ros.spin_until(lambda: any(round(stamp_to_s(m.header.stamp), 3) >= last - 2.0
                               for m in identities), 300, "the last frames decided", procs)

    def stored():
        with SQLiteStore(data / "memory.db", StoreOptions(read_only=True)) as store:
            return store.list_unknowns()

    settled = {"n": -1, "since": time.monotonic()}

    def quiet() -> bool:  # memory_node has written everything it will
        n = len(stored())
        if n != settled["n"]:
            settled.update(n=n, since=time.monotonic())
        return time.monotonic() - settled["since"] > 3.0

    ros.spin_until(quiet, 60, "memory_node done writing", procs)

    # Trace every stored unknown to the identity message that carried its embedding (same
    # camera stamp, the same vector up to the store's re-normalisation).
    carried: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {}
    for msg in identities:
        stamp = round(stamp_to_s(msg.header.stamp), 3)
        for ident in msg.identities:
            if ident.new_evidence and len(ident.embedding):
                carried.setdefault(stamp, []).append(
                    (np.asarray(ident.embedding, np.float32), np.asarray(ident.bbox, np.float32)))
    unknowns = stored()
    truth: dict[int, str] = {}
    non_faces, untraced = [], []
    for u in unknowns:
        stamp = round(u.first_seen, 3)
        near = [(float(v @ u.vector), box) for v, box in carried.get(stamp, [])]
        sim, box = max(near, key=lambda x: x[0]) if near else (0.0, None)
        if sim < 0.9999 or stamp not in by_stamp:
            untraced.append(u.unknown_id)
            continue
        inside = by_stamp[stamp].who(box)
        faces = [name for name, state in inside if state == "face"]
        if len(faces) == 1:
            truth[u.unknown_id] = faces[0]
        else:
            non_faces.append((u.unknown_id, inside))
    clustered = [u for u in unknowns if u.cluster_id != PENDING and u.unknown_id in truth]
    members: dict[int, Counter] = {}
    for u in clustered:
        members.setdefault(u.cluster_id, Counter())[truth[u.unknown_id]] += 1
    purity = (sum(c.most_common(1)[0][1] for c in members.values()) / len(clustered)
              if clustered else 1.0)
    strangers_enrolled = [u.unknown_id for u in unknowns if truth.get(u.unknown_id) in enrolled
                          and u.candidate_id < 0]
    maybes = [u.unknown_id for u in unknowns if u.candidate_id >= 0]
    print(f"\nvideo: {len(video)} frames; stored unknowns {len(unknowns)}, "
          f"non-face {len(non_faces)} ({len(non_faces) / max(1, len(unknowns)):.1%}), "
          f"untraced {len(untraced)}; clusters {len(members)} holding {len(clustered)} faces, "
          f"purity {purity:.3f}; faces of enrolled people kept as strangers "
          f"{len(strangers_enrolled)}, as 'maybe <name>?' {len(maybes)}; "
          f"by person {dict(Counter(truth.values()))}")
    assert unknowns, "nothing was remembered"
    assert not untraced, f"stored unknowns with no identity message behind them: {untraced}"
    assert not non_faces, f"non-face crops stored: {non_faces}"
    assert members, "no cluster formed: the purity would say nothing"
    assert purity >= 0.98, {cid: dict(c) for cid, c in members.items()}
    assert not strangers_enrolled, ("faces of enrolled people kept as strangers",
                                    [(i, truth[i]) for i in strangers_enrolled])


def _image(rgb: np.ndarray, stamp: float) -> Image:
    msg = rgb_to_msg(rgb, encoding="rgb8")
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = round((stamp % 1) * 1e9)
    msg.header.frame_id = "head_camera"
    return msg
