"""camera_node: publishes ``image_raw`` (sensor_msgs/Image, bgr8) from a device, video or images.

The source is supervised (``core.sources.SupervisedSource``): a source that cannot be opened,
or a device or stream that stops delivering frames, is reopened with exponential back-off
(``reconnect_*`` parameters) while /diagnostics says WARN; after the last retry the node reports
ERROR and exits 1. A file source that ends (``loop`` false, or ``max_frames`` reached) either
keeps the node alive and idle or ends it with exit code 0 (``on_source_end``).
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ..config import camera as camera_params
from ..core.sources import RetryPolicy, SourceState, SupervisedSource
from .images import rgb_to_msg
from .params import VisioNode
from .qos import SENSOR_QOS
from .startup import run_node

_LEVELS = {
    SourceState.RUNNING: DiagnosticStatus.OK,
    SourceState.ENDED: DiagnosticStatus.OK,
    SourceState.RETRYING: DiagnosticStatus.WARN,
    SourceState.FAILED: DiagnosticStatus.ERROR,
}


class CameraNode(VisioNode):
    """Reads frames at ``rate`` and publishes them stamped with ``frame_id`` on sensor-data QoS."""

    def __init__(self) -> None:
        super().__init__("camera_node", camera_params.PARAMS, cross_check=camera_params.check)
        p = self.params
        self._finished = False
        self._pub = self.create_publisher(Image, "image_raw", SENSOR_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._source = SupervisedSource(
            p["source"],
            loop=p["loop"],
            width=p["width"],
            height=p["height"],
            policy=RetryPolicy(
                attempts=p["reconnect_attempts"],
                initial_delay=p["reconnect_delay"],
                max_delay=p["reconnect_max_delay"],
            ),
        )
        self._timer = self.create_timer(1.0 / p["rate"], self._tick)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.on_params_changed(self._apply)
        opened = (
            f"{self._source.kind} {p['source']!r}"
            if self._source.state is SourceState.RUNNING
            else f"{p['source']!r} (not open yet)"
        )
        self.get_logger().info(
            f"{opened} at {p['rate']} Hz as frame_id {p['frame_id']!r} on "
            f"{self._pub.topic_name}; at its end: {'loop' if p['loop'] else p['on_source_end']}"
        )
        self._publish_diagnostics()
        self._check_finished()

    def _apply(self, changed: dict) -> None:
        if "rate" in changed and self._source.state in (SourceState.RUNNING, SourceState.RETRYING):
            self._timer.cancel()
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / self.params["rate"], self._tick)

    def _tick(self) -> None:
        state = self._source.state
        frame = self._source.poll()
        if frame is not None:
            header = Header(
                stamp=self.get_clock().now().to_msg(), frame_id=self.params["frame_id"]
            )
            self._pub.publish(rgb_to_msg(frame[:, :, ::-1], header=header, encoding="bgr8"))
        self._step(state)

    def _step(self, state_before: SourceState) -> None:
        """Apply max_frames, report a state change at once, stop when ended or failed."""
        limit = self.params["max_frames"]
        if limit and self._source.frames >= limit and self._source.state is SourceState.RUNNING:
            self.get_logger().info(f"published max_frames={limit}")
            self._source.end()
        if self._source.state is not state_before:
            self._publish_diagnostics()
        self._check_finished()

    def _check_finished(self) -> None:
        """Stop polling once the source ended or failed; exit when that is the policy."""
        state = self._source.state
        if state not in (SourceState.ENDED, SourceState.FAILED) or self._finished:
            return
        self._finished = True
        self._timer.cancel()
        if state is SourceState.FAILED:
            self._flush_diagnostics()
            self.request_exit(1)
        elif self.params["on_source_end"] == "shutdown":
            self.get_logger().info(f"{self._source.message}; exiting (on_source_end: shutdown)")
            self._flush_diagnostics()
            self.request_exit(0)
        else:
            self.get_logger().info(f"{self._source.message}; idle (on_source_end: keep)")

    def _flush_diagnostics(self) -> None:
        """Publish the final status and give subscribers a moment to receive it."""
        self._publish_diagnostics()
        self._diag_pub.wait_for_all_acked(Duration(seconds=1.0))

    def _publish_diagnostics(self) -> None:
        if not self.context.ok():
            return  # shutting down: the publisher is gone
        src = self._source
        status = DiagnosticStatus(
            level=_LEVELS[src.state],
            name=f"{self.get_fully_qualified_name()}: camera",
            message=src.message,
            hardware_id=src.source,
        )
        values = {
            "source": src.source,
            "kind": src.kind,
            "state": src.state.value,
            "frames": str(src.frames),
            "failures": str(src.failures),
            "reconnects": str(src.reconnects),
            "retry_in_s": f"{src.retry_in:.2f}",
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    def close(self) -> None:
        """Release the source."""
        self._source.close()


def main(args: list[str] | None = None) -> None:
    """Entry point of the camera_node executable."""
    run_node(CameraNode, args)
