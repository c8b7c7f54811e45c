"""camera_node: publishes ``image_raw`` (sensor_msgs/Image, bgr8) from a device, video or images."""

from __future__ import annotations

from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ..config import camera as camera_params
from ..core.sources import FrameSource, SourceError
from .common import SENSOR_QOS, NodeStartupError, VisioNode, run_node
from .images import rgb_to_msg


class CameraNode(VisioNode):
    """Reads frames at ``rate`` and publishes them stamped with ``frame_id`` on sensor-data QoS."""

    def __init__(self) -> None:
        super().__init__("camera_node", camera_params.PARAMS)
        p = self.params
        try:
            self._source = FrameSource(
                p["source"], loop=p["loop"], width=p["width"], height=p["height"]
            )
        except SourceError as exc:
            raise NodeStartupError(str(exc)) from exc
        self._pub = self.create_publisher(Image, "image_raw", SENSOR_QOS)
        self._count = 0
        self._timer = self.create_timer(1.0 / p["rate"], self._tick)
        self.on_params_changed(self._apply)
        self.get_logger().info(
            f"publishing {self._source.kind} {p['source']!r} at {p['rate']} Hz "
            f"as frame_id {p['frame_id']!r} on {self._pub.topic_name}"
        )

    def _apply(self, changed: dict) -> None:
        if "rate" in changed:
            self._timer.cancel()
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / self.params["rate"], self._tick)

    def _tick(self) -> None:
        try:
            frame = self._source.read()
        except SourceError as exc:
            self.get_logger().error(str(exc))
            self._timer.cancel()
            self.request_exit(1)
            return
        if frame is None:
            self.get_logger().info(f"end of {self.params['source']!r} after {self._count} frames")
            self._timer.cancel()
            self.request_exit(0)
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.params["frame_id"])
        self._pub.publish(rgb_to_msg(frame[:, :, ::-1], header=header, encoding="bgr8"))
        self._count += 1
        limit = self.params["max_frames"]
        if limit and self._count >= limit:
            self.get_logger().info(f"published max_frames={limit}; stopping")
            self._timer.cancel()
            self.request_exit(0)

    def close(self) -> None:
        """Release the source."""
        self._source.close()


def main(args: list[str] | None = None) -> None:
    """Entry point of the camera_node executable."""
    run_node(CameraNode, args)
