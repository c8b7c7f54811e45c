"""End to end over DDS, the whole identity loop on real faces (BBT).

Replay the gallery crops of three identities -> memory_node clusters them as unknowns (each
person in clusters of its own, at times two of them) -> label each cluster with its person's
name through the services -> replay a group photo -> ``/greeting`` names
exactly those three; an identity never labelled is never welcomed back. Twice: the nodes as
one process each, and all of them in one ``visio_memoria_node`` process (same names,
topics, services and per-node parameter sections).
"""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.dds, pytest.mark.bbt, pytest.mark.slow]

from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from visio_memoria.msg import IdentityArray  # noqa: E402
from visio_memoria.srv import LabelUnknown, ListPersons, ListUnknownClusters  # noqa: E402

from visio_memoria_ros.nodes.images import rgb_to_msg  # noqa: E402
from visio_memoria_ros.nodes.qos import RELIABLE_QOS, SENSOR_QOS  # noqa: E402

# All five are in bbt3.jpg, each face clearly lit and near-frontal there: with the shipped dlib
# thresholds (accept 0.94) each of the three is accepted from crops of other photos (bbt1.jpg's
# faces are too weak for that: Raj 0.926, Leonard 0.943 at best).
LABELLED = ("raj", "leonard", "howard")
NEVER_LABELLED = ("sheldon", "penny")
GROUP = "bbt3.jpg"
PIPELINE = {
    "detector_node": {"torch_threads": 1},
    "embedding_node": {"scene_embedder": "none", "torch_threads": 1},
    "identity_node": {},
    "memory_node": {"recluster_period": 2.0},
}


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _canvas(crops: list[np.ndarray]) -> np.ndarray:
    """One 640x480 frame with the crops side by side (one person per horizontal slot)."""
    canvas = np.full((480, 640, 3), 90, np.uint8)
    for i, crop in enumerate(crops):
        x = 20 + i * 210
        canvas[150 : 150 + crop.shape[0], x : x + crop.shape[1]] = crop
    return canvas


class Replay:
    """Publishes frames stamped like a live camera: camera time advances with wall time."""

    def __init__(self, ros, t0: float) -> None:
        self.pub = ros.node.create_publisher(Image, "image_raw", SENSOR_QOS)
        self.offset = t0 - time.monotonic()
        self.t = t0

    def send(self, rgb: np.ndarray) -> None:
        self.t = time.monotonic() + self.offset
        msg = rgb_to_msg(rgb, encoding="rgb8")
        msg.header.stamp.sec = int(self.t)
        msg.header.stamp.nanosec = round((self.t % 1) * 1e9)
        msg.header.frame_id = "head_camera"
        self.pub.publish(msg)


def _start(launch, tmp_path, single_process: bool) -> list:
    """The four nodes, each its own process or all in one visio_memoria_node process."""
    params = {name: {**p, **({"data_dir": str(tmp_path / "memory")}
                             if name == "memory_node" else {})} for name, p in PIPELINE.items()}
    if not single_process:
        return [launch(name, params=p) for name, p in params.items()]
    from visio_memoria_ros.nodes.processes import install_lib

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(
        {f"/**/{name}": {"ros__parameters": p} for name, p in params.items()}))
    command = [str(install_lib() / "visio_memoria_node"), "--nodes", ",".join(PIPELINE)]
    return [launch(command, params_file=params_file, name="visio_memoria_node")]


@pytest.mark.parametrize("single_process", [False, True], ids=["processes", "one_process"])
def test_unknowns_labelled_by_service_are_greeted_by_name(ros, launch, bbt_dir, tmp_path,
                                                          single_process):
    procs = _start(launch, tmp_path, single_process)
    greetings = ros.collect(String, "greeting", RELIABLE_QOS)
    identities = ros.collect(IdentityArray, "identities", RELIABLE_QOS)
    replay = Replay(ros, 1_800_000_000.0)
    ros.wait_for_subscribers(replay.pub, 1, 180, procs)
    sub = next(s for s in ros.node.subscriptions if s.topic_name == "/identities")
    ros.wait_for_publishers(sub, 1, 180, procs)

    # Who a cluster is, as a user looking at its best sample would tell: the nearest of the
    # three people's own crops, embedded here with the same embedder and alignment.
    from visio_memoria_ros.embedding import build_face_embedder
    from visio_memoria_ros.nodes.images import ImageConverter
    from visio_memoria_ros.perception import Perceiver

    crops = {n: [_rgb(p) for p in sorted((bbt_dir / n).iterdir())] for n in LABELLED}
    embedder = build_face_embedder("dlib")
    converter = ImageConverter()
    reference = {n: embedder.embed([Perceiver().process(crops[n][0]).faces[0].crop])[0]
                 for n in LABELLED}

    def who(cluster) -> str:
        v = embedder.embed([converter.to_rgb(cluster.sample_crops[0])])[0]
        return max(LABELLED, key=lambda n: float(reference[n] @ v))

    # 1. The three strangers stand side by side; their gallery crops cycle.
    list_clusters = ros.node.create_client(ListUnknownClusters,
                                           "visio_memoria/list_unknown_clusters")
    frame = [0]

    def clusters():
        return ros.call(list_clusters, ListUnknownClusters.Request(max_samples=1, min_size=3),
                        30, procs).clusters

    last: list[tuple[int, int]] = []

    def replay_strangers():
        # Name the clusters once they have settled (unchanged over a whole cycle of the crops,
        # re-clustered meanwhile) and each of the three people has one. The clustering keeps
        # clusters pure before complete: one person may sit in two clusters for a while (the
        # user names both, and both join that person).
        k = frame[0]
        frame[0] += 1
        replay.send(_canvas([crops[n][(k // 5) % 5] for n in LABELLED]))
        if k % 25 or k < 50:
            return False
        found = clusters()
        now = sorted((c.cluster_id, c.size) for c in found)
        settled = now == last and {who(c) for c in found} == set(LABELLED)
        last[:] = now
        return settled

    ros.spin_until(replay_strangers, 240, "settled unknown clusters of the three", procs)
    found = clusters()
    assert not greetings, f"a stranger was greeted: {[g.data for g in greetings]}"

    # 2. Label each cluster with the name of the person it shows.
    label = ros.node.create_client(LabelUnknown, "visio_memoria/label_unknown")
    named = set()
    for cluster in found:
        name = who(cluster)
        named.add(name)
        resp = ros.call(label, LabelUnknown.Request(cluster_id=cluster.cluster_id,
                                                    name=name.capitalize(),
                                                    cluster_revision=cluster.revision),
                        30, procs)
        assert resp.success, resp.message
    assert named == set(LABELLED), [(c.cluster_id, c.size, who(c)) for c in found]
    persons = ros.call(ros.node.create_client(ListPersons, "visio_memoria/list_persons"),
                       ListPersons.Request(), 30, procs).persons
    assert sorted(p.name for p in persons) == sorted(n.capitalize() for n in LABELLED)

    # 3. Ten seconds later the group photo: exactly the three are welcomed back.
    replay.offset += 10.0
    group = _rgb(bbt_dir / GROUP)
    labels = json.loads((bbt_dir / "labels.json").read_text())["group_photos"][GROUP]
    assert {x["name"] for x in labels} == {*LABELLED, *NEVER_LABELLED}
    expected = {f"Welcome back, {n.capitalize()}!" for n in LABELLED}

    def replay_group():
        replay.send(group)
        return expected <= {g.data for g in greetings}

    try:
        ros.spin_until(replay_group, 180, f"greetings {sorted(expected)}", procs)
    except AssertionError as exc:
        seen = [[(i.track_id, i.status, round(i.similarity, 3), i.name, i.new_evidence)
                 for i in m.identities] for m in identities[-8:]]
        raise AssertionError(f"{exc}\nlast identities: {seen}\n"
                             f"greetings: {[g.data for g in greetings]}") from None
    for _ in range(30):  # keep watching: nobody else, nobody twice
        replay.send(group)
        ros.executor.spin_once(timeout_sec=0.1)
    said = [g.data for g in greetings]
    assert sorted(said) == sorted(expected), said
    # Sheldon's and Penny's faces are in the photo and never KNOWN.
    for centre in (x["center"] for x in labels if x["name"] in NEVER_LABELLED):
        for msg in identities[-10:]:
            for ident in msg.identities:
                x1, y1, x2, y2 = ident.bbox
                if x1 <= centre[0] <= x2 and y1 <= centre[1] <= y2:
                    assert ident.status != ident.STATUS_KNOWN, ident.name
