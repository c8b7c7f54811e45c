"""activity_node over DDS: dynamics labels, a trained head, startup failures, bad messages."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytestmark = pytest.mark.dds

from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visio_memoria.msg import ActivityArray, Perception, Person  # noqa: E402

from visio_memoria_ros.activity import train_head  # noqa: E402
from visio_memoria_ros.nodes.qos import RELIABLE_QOS  # noqa: E402
from visio_memoria_ros.nodes.stamps import s_to_stamp, stamp_to_s  # noqa: E402

T0 = 1_700_000_000.0
EMBEDDER = "test_scene_v1"
DIM = 16


def person(track_id: int, bbox, embedding=(), embedder: str = "", detector: str = "yolo"
           ) -> Person:
    """A Person message with a box and, optionally, a scene embedding."""
    return Person(
        track_id=track_id,
        bbox=[float(v) for v in bbox],
        score=0.9,
        detector=detector,
        face_track_id=-1,
        scene_embedding=[float(v) for v in embedding],
        scene_embedder=embedder,
    )


def perception(t: float, persons: list[Person]) -> Perception:
    """A Perception message of a 640x480 image stamped ``t`` in frame "head_cam"."""
    return Perception(
        header=Header(stamp=s_to_stamp(t), frame_id="head_cam"),
        image_width=640,
        image_height=480,
        persons=persons,
    )


class Exchange:
    """Publishes Perception messages and waits for the ActivityArray of each one."""

    def __init__(self, ros, proc) -> None:
        self.ros, self.proc = ros, proc
        self.received: list[ActivityArray] = []
        sub = ros.node.create_subscription(
            ActivityArray, "activities", self.received.append, RELIABLE_QOS
        )
        self.pub = ros.node.create_publisher(Perception, "perception", RELIABLE_QOS)
        ros.wait_for_subscribers(self.pub, 1, 30, [proc])
        ros.wait_for_publishers(sub, 1, 30, [proc])

    def send(self, msg: Perception) -> ActivityArray:
        """Publish ``msg``; return the ActivityArray stamped like it."""
        stamp = stamp_to_s(msg.header.stamp)

        sent = time.monotonic()

        def answered() -> bool:
            nonlocal sent
            if any(stamp_to_s(a.header.stamp) == stamp for a in self.received):
                return True
            # Discovery can be one-sided for a moment: our reader sees the node's writer before
            # that writer sees our reader, and a volatile reply is then not delivered. Resend.
            if time.monotonic() - sent > 3.0:
                self.pub.publish(msg)
                sent = time.monotonic()
            return False

        self.pub.publish(msg)
        self.ros.spin_until(answered, 30, f"activities stamped {stamp:.3f}", [self.proc])
        return next(a for a in self.received if stamp_to_s(a.header.stamp) == stamp)


def by_track(msg: ActivityArray) -> dict[int, tuple[str, float, str]]:
    return {a.person_track_id: (a.activity, a.confidence, a.method) for a in msg.activities}


def test_dynamics_walking_and_standing_and_bad_boxes(ros, launch):
    proc = launch("activity_node")
    ex = Exchange(ros, proc)
    last = None
    for i in range(15):
        t = T0 + 0.1 * i
        x = 20.0 + 40.0 * i  # 4 box heights per second to the right: walking
        msg = perception(
            t,
            [
                person(1, (x, 100, x + 40, 200)),
                person(2, (500, 60, 540, 180)),  # tall, still
                # the same still box, extrapolated from a face: no evidence of posture
                person(5, (200, 60, 240, 180), detector="face_extrapolated"),
            ],
        )
        last = ex.send(msg)
        assert last.header.frame_id == "head_cam"
        assert last.header.stamp == msg.header.stamp
        if i == 0:  # one frame: nobody's activity is known yet
            assert {a.activity for a in last.activities} == {"unknown"}
    tracks = by_track(last)
    assert tracks[1][0] == "walking" and tracks[1][2] == "dynamics"
    assert tracks[2][0] == "standing" and tracks[2][2] == "dynamics"
    assert tracks[5] == ("unknown", 0.0, "dynamics")
    assert all(0.2 <= c <= 1.0 for a, c, _ in tracks.values() if a != "unknown")

    # A NaN box and an inverted box are left out; the good person in the same message is not.
    t = T0 + 1.5
    bad = ex.send(
        perception(
            t,
            [
                person(3, (math.nan, 10, 50, 100)),
                person(4, (200, 300, 100, 100)),
                person(2, (500, 60, 540, 180)),
            ],
        )
    )
    assert set(by_track(bad)) == {2}
    empty = ex.send(perception(t + 0.1, []))
    assert empty.activities == []
    again = ex.send(perception(t + 0.2, [person(2, (500, 60, 540, 180))]))
    assert by_track(again)[2][0] == "standing"
    assert proc.alive()
    assert "skipped a malformed person" in proc.output()

    # Parameters valid one by one but not together are refused; good changes are taken.
    client = ros.node.create_client(SetParameters, "activity_node/set_parameters")
    refused = ros.call(client, set_request(dynamics_min_span=5.0), 20, [proc])
    assert not refused.results[0].successful
    assert "min_span" in refused.results[0].reason
    taken = ros.call(client, set_request(walk_speed=0.5), 20, [proc])
    assert taken.results[0].successful


def set_request(**values: float) -> SetParameters.Request:
    """A SetParameters request for double parameters."""
    return SetParameters.Request(
        parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
    )


@pytest.fixture
def head_file(tmp_path):
    """A head trained on synthetic DIM-d features: "waving" near +e0, "reading" near -e0."""
    rng = np.random.default_rng(0)
    centre = np.zeros(DIM, np.float32)
    centre[0] = 1.0
    features = np.concatenate(
        [
            centre + 0.1 * rng.standard_normal((20, DIM)),
            -centre + 0.1 * rng.standard_normal((20, DIM)),
        ]
    )
    labels = ["waving"] * 20 + ["reading"] * 20
    head, report = train_head(features, labels, EMBEDDER)
    assert report.cv_accuracy > 0.9
    return head.save(tmp_path / "head.npz"), centre


def test_head_labels_persons_with_matching_embeddings(ros, launch, head_file):
    path, centre = head_file
    proc = launch("activity_node", params={"head_path": str(path)})
    ex = Exchange(ros, proc)
    box = (300, 100, 340, 200)
    for i in range(3):
        msg = perception(
            T0 + 0.1 * i,
            [
                person(1, box, centre, EMBEDDER),
                person(2, box, -centre, EMBEDDER),
                person(3, box, np.ones(DIM + 3), EMBEDDER),  # wrong length: dynamics
                person(4, box, centre, "another_model"),  # other embedder: dynamics
                person(5, box, np.full(DIM, np.nan), EMBEDDER),  # NaN features: dynamics
            ],
        )
        tracks = by_track(ex.send(msg))
    assert tracks[1][0] == "waving" and tracks[1][2] == f"head:{EMBEDDER}"
    assert tracks[2][0] == "reading" and tracks[2][2] == f"head:{EMBEDDER}"
    assert tracks[1][1] > 0.8
    for track in (3, 4, 5):  # dynamics on 0.2 s of boxes: too short to know
        assert tracks[track] == ("unknown", 0.0, "dynamics")
    out = proc.output()
    assert "activity head" in out and "waving" in out
    assert f"expects {DIM}-d features" in out  # the refusal is logged once
    assert proc.alive()


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_bad_head_file_is_one_clear_error_and_nonzero_exit(launch, tmp_path, kind):
    path = tmp_path / "head.npz"
    if kind == "corrupt":
        path.write_bytes(b"this is not an npz archive")
    proc = launch("activity_node", params={"head_path": str(path)})
    assert proc.wait(timeout=30) != 0
    out = proc.output()
    assert "cannot start" in out and str(path) in out
    assert "Traceback" not in out


def test_an_unknown_activity_reaches_the_visit_log_as_unknown(ros, launch, tmp_path):
    """The default person_backend (face_extrapolated) and a still person: activity_node says
    "unknown", and memory_node records the visit's activity as "unknown", not "standing"."""
    from visio_memoria.msg import Identity, IdentityArray
    from visio_memoria.srv import ListVisits

    from visio_memoria_ros.memory import SQLiteStore

    data = tmp_path / "mem"
    data.mkdir()
    with SQLiteStore(data / "memory.db") as store:
        alex = store.create_person("Alex").person_id
    memory = launch("memory_node", params={"data_dir": str(data)})
    activity = launch("activity_node")
    ex = Exchange(ros, activity)
    identities = ros.node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
    ros.wait_for_subscribers(identities, 1, 30, [memory])
    client = ros.node.create_client(ListVisits, "visio_memoria/list_visits")
    box = (300.0, 60.0, 390.0, 270.0)  # extrapolated from a face: aspect ~2.3, "standing" shape

    def sighting(i: int) -> None:
        t = T0 + 0.1 * i
        still = person(3, box, detector="face_extrapolated")
        still.face_track_id = 7
        out = ex.send(perception(t, [still]))
        assert [(a.face_track_id, a.activity) for a in out.activities] == [(7, "unknown")]
        msg = IdentityArray(identities=[Identity(
            track_id=7, person_id=alex, name="Alex", similarity=0.97,
            status=Identity.STATUS_KNOWN, bbox=[320.0, 60.0, 370.0, 110.0],
            unknown_cluster_id=-1, person_track_id=3, quality=0.8, new_evidence=False,
            embedder="dlib_resnet_v1_128")])
        msg.header = perception(t, []).header
        identities.publish(msg)

    for i in range(20):  # 2 s of a still person: never anything but "unknown"
        sighting(i)
    state = {"i": 20}

    def recorded() -> bool:
        sighting(state["i"])
        state["i"] += 1
        visits = ros.call(client, ListVisits.Request(person_id=alex, limit=5), 30,
                          [memory]).visits
        return bool(visits) and visits[0].dominant_activity == "unknown"

    ros.spin_until(recorded, 60, "a visit whose activity is 'unknown'", [memory, activity])
