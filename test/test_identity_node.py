"""identity_node over DDS without memory_node: strangers, and a bad face costs only itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.dds

from visio_memoria.msg import Face, IdentityArray, Perception  # noqa: E402

from visio_memoria_ros.nodes.qos import RELIABLE_QOS  # noqa: E402


def _face(track_id: int, bbox, vector) -> Face:
    face = Face(track_id=track_id, bbox=bbox, score=0.99, quality=0.7, detector="test",
                embedding=vector.tolist(), embedder="dlib_resnet_v1_128")
    face.landmarks = [math.nan] * 10
    return face


def test_bad_face_is_skipped_and_the_rest_decided(ros, launch):
    node = launch("identity_node")
    pub = ros.node.create_publisher(Perception, "perception", RELIABLE_QOS)
    out = ros.collect(IdentityArray, "identities", RELIABLE_QOS)
    ros.wait_for_subscribers(pub, 1, 60, [node])
    rng = np.random.default_rng(3)
    v = rng.normal(size=128).astype(np.float32)
    v /= np.linalg.norm(v)
    sent = [99]

    def send_next() -> bool:  # one frame per spin until 4 answers (the first may be lost
        sent[0] += 1  # while discovery completes on the node's side)
        msg = Perception(image_width=640, image_height=480)
        msg.header.stamp.sec = sent[0]
        msg.header.frame_id = "cam"
        msg.faces = [
            _face(5, [math.nan, 0.0, 10.0, 10.0], v),  # malformed box
            _face(6, [10.0, 20.0, 60.0, 80.0], v),
        ]
        pub.publish(msg)
        ros.executor.spin_once(timeout_sec=0.2)
        return len(out) >= 4

    ros.spin_until(send_next, 60, "4 identity arrays", [node])
    assert all([i.track_id for i in m.identities] == [6] for m in out)
    # Empty gallery: after the votes, a stranger; never KNOWN, never greeted.
    last = out[-1].identities[0]
    assert last.status == last.STATUS_UNKNOWN and last.person_id == -1
    assert out[-1].header.frame_id == "cam" and 100 <= out[-1].header.stamp.sec <= sent[0]
    assert "skipped a malformed face 0 (track 5)" in node.output()
    assert node.alive()
