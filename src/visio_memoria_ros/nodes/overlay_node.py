"""overlay_node: the camera image with identities, activities and person boxes drawn on it.

Subscribes ``image_raw`` (sensor_msgs/Image, or CompressedImage on ``<image_raw>/compressed``
with ``image_transport: compressed``; reliability ``image_reliability``, sensor-data by
default), ``identities`` (IdentityArray), ``activities`` (ActivityArray) and, when
``use_perception``, ``perception`` (Perception, for person boxes), all results on reliable QoS.
Publishes ``overlay/image`` (sensor_msgs/Image, ``output_encoding``, the source image's header;
reliable by default so rviz2's Image display, which subscribes reliable, receives it:
``overlay_reliability``) and, when ``publish_markers``, ``overlay/markers``
(visualization_msgs/MarkerArray, reliable).

Pairing: results are kept in short buffers by header stamp. With ``pair_with: results`` (the
default) the recent images are buffered too, and an image is drawn when the identities of that
very image arrive, so boxes sit exactly on the faces whatever the pipeline's latency (the
overlay runs at the pipeline's rate; images the detector skipped are not drawn). With
``pair_with: images`` every image is drawn as soon as it arrives, with the results closest to its
stamp within ``max_age`` (full camera rate, boxes trail by the pipeline's latency). Callbacks
only store; drawing happens in a latest-image ``FrameWorker``.

Markers: without depth a face has no 3-D position, so the text markers lie on the image plane:
in the image's frame_id (optical axes: x right, y down, z forward), ``x = u * s``,
``y = v * s``, ``z = 0`` where (u, v) is the top-centre of the face box [px] and ``s`` is
``marker_pixel_size`` [m/px]; text height ``marker_scale(font_scale) * s``. Marker ids are the
face track ids. Each array starts with a DELETEALL, so markers of tracks that left disappear;
markers also expire after ``max(max_age, 0.5)`` seconds should the node stop.

Lazy, like image_transport's republishers: while nothing subscribes to ``overlay/image`` (nor
to ``overlay/markers``), ``image_raw`` is not subscribed at all, so a robot that nobody watches
pays neither the copy of every camera frame nor the drawing. Subscribers are counted every
``VIEWER_CHECK_S`` seconds: the first image is drawn at most that long after rviz (or
``ros2 topic echo``, or a rosbag recorder) subscribes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import ColorRGBA, Header
from visio_memoria.msg import ActivityArray, IdentityArray, Perception
from visualization_msgs.msg import Marker, MarkerArray

from ..config import overlay as overlay_params
from ..core.types import IdentityDecision, Status
from ..overlay import (
    MarkerSpec,
    OverlayOptions,
    activity_map,
    draw_overlay,
    identity_markers,
    marker_scale,
)
from .convert import persons_from_msg
from .images import ImageConverter, image_qos, rgb_to_msg, subscribe_image
from .params import VisioNode
from .qos import RELIABLE_QOS
from .stamps import stamp_to_s
from .startup import run_node
from .worker import FrameWorker

#: Results kept per kind (at 30 Hz about 3 s of history).
BUFFER_SIZE = 100
#: Images kept while their results are on the way (pair_with: results).
IMAGE_BUFFER_SIZE = 30
#: Stamps closer than this are the same image [s].
SAME_STAMP = 1e-4
#: Seconds between two counts of the overlay's subscribers (see the lazy camera subscription).
VIEWER_CHECK_S = 0.5
MARKER_NAMESPACE = "visio_memoria/identities"


class StampBuffer:
    """The last few items with their stamps; finds the item closest to a stamp. Thread-safe."""

    def __init__(self, size: int = BUFFER_SIZE) -> None:
        self._items: deque[tuple[float, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, stamp: float, item: Any) -> None:
        """Store ``item`` under ``stamp`` [s]; the oldest item goes when the buffer is full."""
        with self._lock:
            self._items.append((stamp, item))

    def closest(self, stamp: float, max_age: float) -> Any:
        """The item whose stamp is nearest to ``stamp`` and at most ``max_age`` s away, or None."""
        with self._lock:
            items = list(self._items)
        best, best_gap = None, max_age
        for t, item in items:
            gap = abs(t - stamp)
            if gap <= best_gap:  # ties: the newer item wins
                best, best_gap = item, gap
        return best

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        """Forget every item."""
        with self._lock:
            self._items.clear()


def identities_from_msg(msg: IdentityArray) -> tuple[list[IdentityDecision], list[str]]:
    """What the overlay needs of each identity (no crops, no embeddings), and what was skipped."""
    out: list[IdentityDecision] = []
    problems: list[str] = []
    for m in msg.identities:
        try:
            status = Status(int(m.status))
        except ValueError:
            problems.append(f"track {m.track_id}: unknown status {m.status}")
            continue
        out.append(
            IdentityDecision(
                track_id=int(m.track_id),
                bbox=np.asarray(m.bbox, dtype=np.float32),
                status=status,
                person_id=int(m.person_id),
                name=m.name,
                similarity=float(m.similarity),
                unknown_cluster_id=int(m.unknown_cluster_id),
                person_track_id=int(m.person_track_id),
            )
        )
    return out, problems


def markers_to_msg(
    specs: Sequence[MarkerSpec],
    header: Header,
    *,
    pixel_size: float,
    text_height_px: float,
    lifetime_s: float,
) -> MarkerArray:
    """Image-plane TEXT_VIEW_FACING markers (see the module docstring), after a DELETEALL."""
    out = MarkerArray()
    out.markers.append(Marker(header=header, ns=MARKER_NAMESPACE, action=Marker.DELETEALL))
    sec = int(lifetime_s)
    lifetime = Duration(sec=sec, nanosec=int((lifetime_s - sec) * 1e9))
    for i, spec in enumerate(specs):
        marker_id = spec.marker_id & 0x7FFFFFFF if spec.marker_id >= 0 else 0x7FFFFFFF - i
        marker = Marker(
            header=header,
            ns=MARKER_NAMESPACE,
            id=marker_id,
            type=Marker.TEXT_VIEW_FACING,
            action=Marker.ADD,
            text=spec.text,
            color=ColorRGBA(r=spec.color[0], g=spec.color[1], b=spec.color[2], a=spec.color[3]),
            lifetime=lifetime,
        )
        marker.pose.position.x = spec.x * pixel_size
        marker.pose.position.y = spec.y * pixel_size
        marker.pose.orientation.w = 1.0
        marker.scale.z = text_height_px * pixel_size
        out.markers.append(marker)
    return out


class OverlayNode(VisioNode):
    """Draws the newest image with the results closest to its stamp; optional rviz markers."""

    def __init__(self) -> None:
        super().__init__("overlay_node", overlay_params.PARAMS)
        self._image_sub: Any = None
        p = self.params
        self._options = OverlayOptions.from_params(p)
        self._converter = ImageConverter()
        self._identities = StampBuffer()
        self._activities = StampBuffer()
        self._persons = StampBuffer()
        self._images = StampBuffer(size=IMAGE_BUFFER_SIZE)
        self.on_params_changed(self._apply)

        self._image_pub = self.create_publisher(
            Image, "overlay/image", image_qos(p["overlay_reliability"])
        )
        self._marker_pub = (
            self.create_publisher(MarkerArray, "overlay/markers", RELIABLE_QOS)
            if p["publish_markers"]
            else None
        )
        self._worker = FrameWorker(
            self, self._draw, stamp_of=lambda m: stamp_to_s(m.header.stamp), name="overlay"
        )
        self._subs = [
            self.create_subscription(
                IdentityArray, "identities", self._on_identities, RELIABLE_QOS
            ),
            self.create_subscription(
                ActivityArray, "activities", self._on_activities, RELIABLE_QOS
            ),
        ]
        if p["use_perception"]:
            self._subs.append(
                self.create_subscription(
                    Perception, "perception", self._on_perception, RELIABLE_QOS
                )
            )
        inputs = ", ".join(s.topic_name for s in self._subs)
        outputs = self._image_pub.topic_name + (
            f", {self._marker_pub.topic_name}" if self._marker_pub is not None else ""
        )
        image_topic = self.resolve_topic_name("image_raw")
        self.get_logger().info(
            f"{image_topic} (while {outputs} has a subscriber), {inputs} -> {outputs} "
            f"({p['output_encoding']}, {p['overlay_reliability']})"
        )
        self._follow_viewers()
        self.create_timer(VIEWER_CHECK_S, self._follow_viewers)

    def viewers(self) -> int:
        """Subscribers of the overlay's outputs (image, and markers when published)."""
        n = self._image_pub.get_subscription_count()
        if self._marker_pub is not None:
            n += self._marker_pub.get_subscription_count()
        return n

    def _follow_viewers(self) -> None:
        """Subscribe the camera while someone subscribes to the overlay; unsubscribe after."""
        viewers = self.viewers()
        if viewers and self._image_sub is None:
            p = self.params
            self._image_sub = subscribe_image(
                self,
                "image_raw",
                self._on_image,
                transport=p["image_transport"],
                reliability=p["image_reliability"],
            )
            self.get_logger().info(
                f"{viewers} subscriber(s) to the overlay: drawing {self._image_sub.topic_name}"
            )
        elif not viewers and self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
            self._images.clear()
            self.get_logger().info("nobody subscribes to the overlay: camera images unsubscribed")

    def _apply(self, changed: dict[str, Any]) -> None:
        self._options = OverlayOptions.from_params(self.params)

    def _on_image(self, msg: Image | CompressedImage) -> None:
        if self.params["pair_with"] == "images":
            self._worker.submit(msg)
            return
        stamp = stamp_to_s(msg.header.stamp)
        if self._identities.closest(stamp, SAME_STAMP) is not None:
            self._worker.submit(msg)  # its results came first
        else:
            self._images.add(stamp, msg)

    def _on_identities(self, msg: IdentityArray) -> None:
        identities, problems = identities_from_msg(msg)
        for problem in problems:
            self.get_logger().warning(f"identity not drawn: {problem}", throttle_duration_sec=5.0)
        stamp = stamp_to_s(msg.header.stamp)
        self._identities.add(stamp, identities)
        if self.params["pair_with"] == "results":
            image = self._images.closest(stamp, SAME_STAMP)
            if image is not None:
                self._worker.submit(image)

    def _on_activities(self, msg: ActivityArray) -> None:
        self._activities.add(stamp_to_s(msg.header.stamp), activity_map(msg.activities))

    def _on_perception(self, msg: Perception) -> None:
        self._persons.add(stamp_to_s(msg.header.stamp), persons_from_msg(msg)[0])

    def _draw(self, msg: Image | CompressedImage) -> None:
        """Worker: convert, pair by stamp, draw, publish. ImageError is logged by the worker."""
        rgb = self._converter.to_rgb(msg)
        options = self._options
        stamp = stamp_to_s(msg.header.stamp)
        max_age = float(self.params["max_age"])
        identities = self._identities.closest(stamp, max_age) or []
        activities = self._activities.closest(stamp, max_age)
        persons = self._persons.closest(stamp, max_age) if options.show_persons else None
        out = draw_overlay(rgb, identities, activities, persons, options)
        self._image_pub.publish(
            rgb_to_msg(out, header=msg.header, encoding=self.params["output_encoding"])
        )
        if self._marker_pub is not None:
            self._marker_pub.publish(
                markers_to_msg(
                    identity_markers(identities, activities, options),
                    msg.header,
                    pixel_size=float(self.params["marker_pixel_size"]),
                    text_height_px=marker_scale(options.font_scale),
                    lifetime_s=max(max_age, 0.5),
                )
            )

    def close(self) -> None:
        """Stop the drawing worker."""
        self._worker.close()


def main(args: list[str] | None = None) -> None:
    """Entry point of the overlay_node executable."""
    run_node(OverlayNode, args)
