"""overlay_node over DDS: boxes drawn where the identities say, pairing by stamp, bad images."""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.dds

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import (  # noqa: E402
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visio_memoria.msg import Activity, ActivityArray, Identity, IdentityArray  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from visio_memoria_ros.nodes.images import rgb_to_msg  # noqa: E402
from visio_memoria_ros.nodes.qos import RELIABLE_QOS, SENSOR_QOS  # noqa: E402
from visio_memoria_ros.nodes.stamps import s_to_stamp, stamp_to_s  # noqa: E402

try:  # Iron and later
    from rclpy.event_handler import (
        PublisherEventCallbacks,
        SubscriptionEventCallbacks,
    )
except ImportError:  # Humble
    from rclpy.qos_event import (
        PublisherEventCallbacks,
        SubscriptionEventCallbacks,
    )

T0 = 1_700_000_000.0
#: What rviz2's Image display subscribes with by default: reliable, keep last 5, volatile.
RVIZ_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
H, W = 120, 160
GREY = 128
FACE_BOX = (40.0, 30.0, 100.0, 90.0)  # x1, y1, x2, y2
KNOWN_GREEN = (0, 200, 0)  # OverlayOptions.known_color


def header(t: float) -> Header:
    return Header(stamp=s_to_stamp(t), frame_id="head_cam")


def grey_image(t: float) -> Image:
    """A uniform grey bgr8 image stamped ``t``."""
    return rgb_to_msg(np.full((H, W, 3), GREY, np.uint8), header=header(t), encoding="bgr8")


def pixels(msg: Image) -> np.ndarray:
    assert msg.encoding == "rgb8"
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)


class Overlay:
    """The test's side of a running overlay_node: publishers, collected outputs, waits."""

    def __init__(
        self,
        ros,
        proc,
        *,
        markers: bool = False,
        overlay_qos: QoSProfile = SENSOR_QOS,
        input_topic: str = "image_raw",
        input_type: type = Image,
        input_qos: QoSProfile = SENSOR_QOS,
    ) -> None:
        self.ros, self.proc = ros, proc
        self.images: list[Image] = []
        self.markers: list[MarkerArray] = []
        self.errors = 0
        node = ros.node
        subs = [node.create_subscription(Image, "overlay/image", self.images.append, overlay_qos)]
        if markers:
            subs.append(
                node.create_subscription(
                    MarkerArray, "overlay/markers", self.markers.append, RELIABLE_QOS
                )
            )
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.image_pub = node.create_publisher(input_type, input_topic, input_qos)
        self.identity_pub = node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
        self.activity_pub = node.create_publisher(ActivityArray, "activities", RELIABLE_QOS)
        for pub in (self.image_pub, self.identity_pub, self.activity_pub):
            ros.wait_for_subscribers(pub, 1, 30, [proc])
        for sub in subs:
            ros.wait_for_publishers(sub, 1, 30, [proc])

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith("overlay_node: overlay"):
                values = {kv.key: kv.value for kv in status.values}
                self.errors = int(float(values["errors"]))

    def output_for(self, t: float) -> Image | None:
        return next((m for m in self.images if stamp_to_s(m.header.stamp) == t), None)

    def draw(self, image: Image, until, what: str, timeout: float = 20) -> Image:
        """Publish ``image`` (best effort: again every few spins) until ``until(overlay)``."""
        t = stamp_to_s(image.header.stamp)
        last = -math.inf

        def done() -> bool:
            nonlocal last
            out = [m for m in self.images if stamp_to_s(m.header.stamp) == t]
            if out and until(out[-1]):
                return True
            if time.monotonic() - last > 0.3:
                self.image_pub.publish(image)
                last = time.monotonic()
            return False

        self.ros.spin_until(done, timeout, what, [self.proc])
        return [m for m in self.images if stamp_to_s(m.header.stamp) == t][-1]

    def reject(self, image: Image, what: str) -> None:
        """Publish a bad ``image`` until the node counts one more error; no overlay may result.

        Diagnostics come once a second, so the image is repeated only every 2 s (best effort
        may lose it): an error counted is then almost surely this image's.
        """
        before, last = self.errors, -math.inf

        def counted() -> bool:
            nonlocal last
            if time.monotonic() - last > 2.0:
                self.image_pub.publish(image)
                last = time.monotonic()
            return self.errors > before

        self.ros.spin_until(counted, 20, what, [self.proc])
        assert self.output_for(stamp_to_s(image.header.stamp)) is None


def identities(t: float) -> IdentityArray:
    ada = Identity(
        track_id=7,
        person_track_id=3,
        person_id=1,
        name="Ada",
        similarity=0.83,
        status=Identity.STATUS_KNOWN,
        unknown_cluster_id=-1,
        bbox=list(FACE_BOX),
    )
    return IdentityArray(header=header(t), identities=[ada])


def test_draws_identities_where_they_are_and_pairs_by_stamp(ros, launch):
    proc = launch("overlay_node", params={"publish_markers": True, "max_age": 0.5,
                                          "pair_with": "images"})
    ov = Overlay(ros, proc, markers=True)
    ov.identity_pub.publish(identities(T0))
    ov.activity_pub.publish(
        ActivityArray(
            header=header(T0),
            activities=[
                Activity(
                    person_track_id=3,
                    face_track_id=7,
                    activity="walking",
                    confidence=0.74,
                    method="dynamics",
                )
            ],
        )
    )
    x1, y1, x2, y2 = (int(v) for v in FACE_BOX)
    ym = (y1 + y2) // 2

    def boxed(msg: Image) -> bool:
        return tuple(pixels(msg)[ym, x1]) == KNOWN_GREEN

    out = ov.draw(grey_image(T0), boxed, "an overlay with the face box drawn")
    assert out.header == header(T0)
    assert (out.width, out.height) == (W, H)
    img = pixels(out)
    for y, x in ((ym, x1), (ym, x2), (y2, (x1 + x2) // 2)):  # left, right and bottom edges
        assert tuple(img[y, x]) == KNOWN_GREEN
    assert tuple(img[ym - 5, x1 + 15]) == (GREY,) * 3  # inside the box, away from labels
    assert np.all(img[y1 : y2 + 1, x2 + 20 :] == GREY)  # right of the box, between tags
    assert np.all(img[y2 + 25 :, :] == GREY)  # below the box and its activity tag: untouched
    assert not np.array_equal(img[max(0, y1 - 14) : y1 - 2, x1 : x1 + 30], GREY)  # name tag

    # The markers: one image-plane text marker for Ada, after a DELETEALL.
    ros.spin_until(lambda: any(len(m.markers) >= 2 for m in ov.markers), 10, "markers", [proc])
    array = next(m for m in ov.markers if len(m.markers) >= 2)
    assert array.markers[0].action == Marker.DELETEALL
    text = array.markers[1]
    assert text.type == Marker.TEXT_VIEW_FACING and text.id == 7
    assert text.header == header(T0)
    assert text.text.startswith("Ada 0.83") and "walking 0.74" in text.text
    assert text.pose.position.x == pytest.approx((x1 + x2) / 2 * 0.001)
    assert text.pose.position.y == pytest.approx(y1 * 0.001)

    # 0.3 s later the identity is still within max_age; 2 s later it is not drawn.
    near = ov.draw(grey_image(T0 + 0.3), lambda m: True, "an overlay 0.3 s later")
    assert tuple(pixels(near)[ym, x1]) == KNOWN_GREEN
    far = ov.draw(grey_image(T0 + 2.0), lambda m: True, "an overlay 2 s later")
    assert np.all(pixels(far) == GREY)


def test_camera_is_subscribed_only_while_someone_watches_the_overlay(ros, launch):
    """Lazy like image_transport: no overlay subscriber, no image_raw subscription (no copy of
    every camera frame, no drawing); one subscriber brings it and overlays; leaving drops it."""
    proc = launch("overlay_node", params={"pair_with": "images"})
    node = ros.node
    ros.spin_until(lambda: node.count_publishers("overlay/image") == 1, 30, "overlay_node up",
                   [proc])
    time.sleep(1.5)  # three subscriber counts without a viewer
    assert node.count_subscribers("image_raw") == 0
    assert "subscriber(s) to the overlay" not in proc.output()
    ov = Overlay(ros, proc)  # subscribes overlay/image, then waits for an image_raw subscriber
    assert node.count_subscribers("image_raw") == 1
    ov.draw(grey_image(T0), lambda m: True, "an overlay once watched")
    # The node's log is read from its output asynchronously: wait for the lines, never assume.
    ros.spin_until(lambda: "1 subscriber(s) to the overlay: drawing /image_raw"
                   in proc.output(), 10, "the node's log of its viewer", [proc])
    for sub in [s for s in node.subscriptions if s.topic_name == "/overlay/image"]:
        node.destroy_subscription(sub)
    ros.spin_until(lambda: node.count_subscribers("image_raw") == 0
                   and "camera images unsubscribed" in proc.output(), 30,
                   "image_raw unsubscribed (and logged) once nobody watches", [proc])


def test_bad_images_are_skipped_and_the_node_keeps_working(ros, launch):
    proc = launch("overlay_node", params={"pair_with": "images"})
    ov = Overlay(ros, proc)

    depth = Image(
        header=header(T0), height=H, width=W, encoding="32FC1", step=W * 4, data=bytes(H * W * 4)
    )
    ov.reject(depth, "the 32FC1 image counted as an error")
    truncated = grey_image(T0 + 0.1)
    truncated.data = truncated.data[: len(truncated.data) // 2]
    ov.reject(truncated, "the truncated image counted as an error")

    ok = ov.draw(grey_image(T0 + 0.2), lambda m: True, "an overlay of a good image")
    assert np.all(pixels(ok) == GREY)  # nothing to draw
    assert proc.alive()
    assert "unsupported encoding '32FC1'" in proc.output()


def test_results_pairing_draws_an_image_when_its_own_identities_arrive(ros, launch):
    """Default pairing: the image waits for the identities of that very image."""
    proc = launch("overlay_node")
    ov = Overlay(ros, proc)
    t = T0 + 5.0
    image = grey_image(t)
    for _ in range(5):  # best effort: a few times, so the node surely has it
        ov.image_pub.publish(image)
        ros.executor.spin_once(timeout_sec=0.1)
    assert ov.output_for(t) is None, "drawn before its identities arrived"
    ov.identity_pub.publish(identities(t))
    ros.spin_until(lambda: ov.output_for(t) is not None, 20, "the paired overlay", [proc])
    out = pixels(ov.output_for(t))
    x1, y1, _, y2 = (int(v) for v in FACE_BOX)
    assert tuple(out[(y1 + y2) // 2, x1]) == KNOWN_GREEN  # the left edge of the face box
    assert tuple(out[H - 2, W - 2]) == (GREY, GREY, GREY)  # far away: untouched
    # An image whose identities never come is never drawn.
    lonely = T0 + 9.0
    for _ in range(10):
        ov.image_pub.publish(grey_image(lonely))
        ros.executor.spin_once(timeout_sec=0.1)
    assert ov.output_for(lonely) is None


def test_rviz_default_subscription_receives_the_overlay(ros, launch):
    """overlay/image is reliable by default: rviz2's Image display (reliable) gets it, and a
    best-effort subscriber too."""
    proc = launch("overlay_node", params={"pair_with": "images"})
    ov = Overlay(ros, proc, overlay_qos=RVIZ_QOS)
    best_effort: list[Image] = []
    sub = ros.node.create_subscription(Image, "overlay/image", best_effort.append, SENSOR_QOS)
    ros.wait_for_publishers(sub, 1, 30, [proc])
    ov.identity_pub.publish(identities(T0))
    x1, y1, _, y2 = (int(v) for v in FACE_BOX)

    def boxed(msg: Image) -> bool:
        return tuple(pixels(msg)[(y1 + y2) // 2, x1]) == KNOWN_GREEN

    out = ov.draw(grey_image(T0), boxed, "an overlay on the rviz-like subscription")
    assert out.header == header(T0)
    ros.spin_until(lambda: any(m.header == header(T0) for m in best_effort), 20,
                   "the same overlay on a best-effort subscription", [proc])


def test_best_effort_overlay_is_refused_by_rviz_default_subscription(ros, launch):
    """overlay_reliability: best_effort is what rviz2 (reliable by default) cannot receive."""
    incompatible = []
    ros.node.create_subscription(
        Image, "overlay/image", lambda m: None, RVIZ_QOS,
        event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible.append),
    )
    proc = launch("overlay_node", params={"overlay_reliability": "best_effort"})
    ros.spin_until(lambda: bool(incompatible), 30, "rviz's incompatible-QoS event", [proc])
    assert incompatible[0].last_policy_kind.name.endswith("RELIABILITY")


def test_compressed_reliable_input_through_a_remapped_topic(ros, launch):
    """image_transport: compressed reads <image_raw resolved>/compressed; image_reliability:
    reliable takes a reliable publisher and refuses a best-effort one."""
    proc = launch(
        "overlay_node",
        params={"pair_with": "images", "image_transport": "compressed",
                "image_reliability": "reliable"},
        remap={"image_raw": "/cam/front"},
    )
    reliable_input = QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE
    )
    ov = Overlay(ros, proc, input_topic="/cam/front/compressed", input_type=CompressedImage,
                 input_qos=reliable_input)
    refused = []
    ros.node.create_publisher(
        CompressedImage, "/cam/front/compressed", SENSOR_QOS,
        event_callbacks=PublisherEventCallbacks(incompatible_qos=refused.append),
    )
    ros.spin_until(lambda: bool(refused), 30, "a best-effort publisher refused", [proc])

    def png(t: float) -> CompressedImage:
        _, data = cv2.imencode(".png", np.full((H, W, 3), GREY, np.uint8))
        return CompressedImage(header=header(t), format="bgr8; png compressed bgr8",
                               data=data.tobytes())

    corrupt = png(T0 + 0.1)
    corrupt.data = bytes(corrupt.data)[:40]
    ov.reject(corrupt, "the corrupt png counted as an error")
    ov.identity_pub.publish(identities(T0))
    x1, y1, _, y2 = (int(v) for v in FACE_BOX)
    out = ov.draw(png(T0), lambda m: tuple(pixels(m)[(y1 + y2) // 2, x1]) == KNOWN_GREEN,
                  "an overlay of a compressed image")
    assert tuple(pixels(out)[H - 2, W - 2]) == (GREY, GREY, GREY)
    assert proc.alive() and "corrupt png CompressedImage" in proc.output()
