"""detector_node -> embedding_node over DDS on a real photo; bad images never kill the detector."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.dds, pytest.mark.slow]

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from visio_memoria.msg import Perception  # noqa: E402

from visio_memoria_ros.nodes.images import rgb_to_msg  # noqa: E402
from visio_memoria_ros.nodes.qos import RELIABLE_QOS, SENSOR_QOS  # noqa: E402

FAST_DETECTOR = {"min_face_size": 40, "detect_max_side": 640, "torch_threads": 1}


def _image_msg(rgb: np.ndarray, t: float, encoding: str = "bgr8") -> Image:
    msg = rgb_to_msg(rgb, encoding=encoding)
    msg.header.stamp.sec = int(t)
    msg.header.stamp.nanosec = round((t % 1) * 1e9)
    msg.header.frame_id = "cam"
    return msg


def test_faces_are_detected_tracked_and_embedded(ros, launch, asset_image_path):
    rgb = cv2.cvtColor(cv2.imread(str(asset_image_path)), cv2.COLOR_BGR2RGB)
    det = launch("detector_node", params=FAST_DETECTOR)
    emb = launch("embedding_node", params={"scene_embedder": "none", "torch_threads": 1})
    pub = ros.node.create_publisher(Image, "image_raw", SENSOR_QOS)
    detections = ros.collect(Perception, "detections", RELIABLE_QOS)
    embedded = ros.collect(Perception, "perception", RELIABLE_QOS)
    ros.wait_for_subscribers(pub, 1, 120, [det, emb])
    sub = next(s for s in ros.node.subscriptions if s.topic_name == "/perception")
    ros.wait_for_publishers(sub, 1, 120, [det, emb])

    t = [1000.0]

    def send():  # best-effort images at 10 Hz camera time: resend until the chain answers
        t[0] += 0.1
        pub.publish(_image_msg(rgb, t[0]))
        return len(embedded) >= 6

    ros.spin_until(send, 120, "6 embedded frames", [det, emb])
    first = detections[0]
    assert first.header.frame_id == "cam"
    assert (first.image_width, first.image_height) == (rgb.shape[1], rgb.shape[0])
    assert len(first.faces) >= 1
    face = first.faces[0]
    x1, y1, x2, y2 = face.bbox
    assert 0 <= x1 < x2 <= rgb.shape[1] and 0 <= y1 < y2 <= rgb.shape[0]
    assert face.aligned_crop.height == 192 and face.detector == "mtcnn"
    assert all(np.isfinite(face.landmarks))

    vectors = [f for m in embedded for f in m.faces if len(f.embedding)]
    assert vectors, "no face was embedded"
    v = np.asarray(vectors[0].embedding)
    assert v.shape == (128,) and abs(np.linalg.norm(v) - 1) < 1e-4
    assert vectors[0].embedder.startswith("dlib")
    assert vectors[0].aligned_crop.height == 192  # new evidence keeps its crop
    # The policy does not re-embed a tracked face every frame, and drops crops it skipped.
    tracked = [f for m in embedded for f in m.faces if f.track_id >= 0]
    skipped = [f for f in tracked if len(f.embedding) == 0]
    assert skipped, "every tracked face was re-embedded in every frame"
    assert all(f.aligned_crop.height == 0 for f in skipped)
    assert embedded[-1].header.stamp != embedded[0].header.stamp


def _errors(diagnostics, node_name: str) -> int:
    """The newest error count /diagnostics reports for ``node_name``'s worker."""
    for msg in reversed(diagnostics):
        for status in msg.status:
            if node_name in status.name:
                values = {kv.key: kv.value for kv in status.values}
                return int(float(values["errors"]))
    return -1


def test_bad_images_are_refused_and_the_node_keeps_working(ros, launch, asset_image_path):
    rgb = cv2.cvtColor(cv2.imread(str(asset_image_path)), cv2.COLOR_BGR2RGB)
    det = launch("detector_node", params=FAST_DETECTOR)
    pub = ros.node.create_publisher(Image, "image_raw", SENSOR_QOS)
    detections = ros.collect(Perception, "detections", RELIABLE_QOS)
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 50)
    ros.wait_for_subscribers(pub, 1, 120, [det])
    ros.spin_until(lambda: _errors(diagnostics, "detector_node") == 0, 60, "diagnostics", [det])

    bad = []
    m = _image_msg(rgb, 1)
    m.encoding = "32FC1"
    bad.append(m)
    m = _image_msg(rgb, 2)
    m.data = bytes(m.data)[: len(m.data) // 3]  # truncated
    bad.append(m)
    bad.append(Image(encoding="rgb8"))  # zero-size
    m = _image_msg(rgb, 3)
    m.step = 5  # step smaller than a row
    bad.append(m)
    for n, msg in enumerate(bad, start=1):

        def refused(msg=msg, n=n):
            pub.publish(msg)
            return _errors(diagnostics, "detector_node") >= n

        ros.spin_until(refused, 60, f"bad image {n} counted as an error", [det])
    assert not detections, "a bad image was published"
    assert "unsupported encoding" in det.output()  # the first one is logged with its reason

    t = [100.0]

    def send_good():
        t[0] += 0.1
        pub.publish(_image_msg(rgb, t[0], encoding="rgb8"))
        return bool(detections)

    ros.spin_until(send_good, 120, "a detection after bad images", [det])
    assert det.alive()


def test_compressed_images_are_detected_and_corrupt_ones_refused(ros, launch, asset_image_path):
    """image_transport: compressed: detector_node reads image_raw/compressed (jpeg, as
    image_transport's compressed publisher writes it); a corrupt payload is an error, not a
    crash."""
    bgr = cv2.imread(str(asset_image_path))
    _, jpeg = cv2.imencode(".jpg", bgr)
    det = launch("detector_node", params={**FAST_DETECTOR, "image_transport": "compressed"})
    pub = ros.node.create_publisher(CompressedImage, "image_raw/compressed", SENSOR_QOS)
    detections = ros.collect(Perception, "detections", RELIABLE_QOS)
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 50)
    ros.wait_for_subscribers(pub, 1, 120, [det])
    ros.spin_until(lambda: _errors(diagnostics, "detector_node") == 0, 60, "diagnostics", [det])

    def compressed(t: float, data: bytes) -> CompressedImage:
        msg = CompressedImage(format="bgr8; jpeg compressed bgr8", data=data)
        msg.header.stamp.sec, msg.header.frame_id = int(t), "cam"
        return msg

    corrupt = compressed(1, jpeg.tobytes()[:200])

    def refused():
        pub.publish(corrupt)
        return _errors(diagnostics, "detector_node") >= 1

    ros.spin_until(refused, 60, "the corrupt jpeg counted as an error", [det])
    assert not detections
    t = [100]

    def send_good():
        t[0] += 1
        pub.publish(compressed(t[0], jpeg.tobytes()))
        return any(m.faces for m in detections)

    ros.spin_until(send_good, 120, "faces detected in a compressed image", [det])
    first = next(m for m in detections if m.faces)
    assert (first.image_width, first.image_height) == (bgr.shape[1], bgr.shape[0])
    assert first.header.frame_id == "cam"
    assert det.alive() and "corrupt jpeg CompressedImage" in det.output()
