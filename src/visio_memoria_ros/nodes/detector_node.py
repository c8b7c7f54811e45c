"""detector_node: ``image_raw`` -> ``detections`` (faces + persons, tracked, aligned crops).

The image callback only hands the newest image to a worker thread (dropped frames are counted
on /diagnostics); the worker runs the ``Perceiver`` and publishes a ``Perception`` message with
the source image's header. Images arrive raw (sensor_msgs/Image) or, with ``image_transport:
compressed``, as sensor_msgs/CompressedImage on ``<image_raw>/compressed``; the subscription's
reliability is ``image_reliability``.
"""

from __future__ import annotations

import threading
from typing import Any

from visio_memoria.msg import Perception

from ..config import detector as detector_params
from ..perception import Perceiver
from ..perception.pipeline import RUNTIME_FIELDS
from .convert import frame_to_msg
from .images import ImageConverter, subscribe_image
from .params import VisioNode
from .qos import RELIABLE_QOS
from .stamps import stamp_to_s
from .startup import NodeStartupError, node_torch_threads, run_node
from .worker import FrameWorker


class DetectorNode(VisioNode):
    """Runs face/person detection, tracking, quality and alignment on the newest image."""

    def __init__(self) -> None:
        super().__init__("detector_node", detector_params.PARAMS)
        try:
            self._perceiver = Perceiver.from_params(
                {**self.params, "torch_threads": node_torch_threads(self.params["torch_threads"])})
        except (FileNotFoundError, ValueError, ImportError) as exc:
            raise NodeStartupError(str(exc)) from exc
        self._lock = threading.Lock()  # the Perceiver (tracker state) is not thread-safe
        self._converter = ImageConverter()
        self._pub = self.create_publisher(Perception, "detections", RELIABLE_QOS)
        self._worker = FrameWorker(
            self, self._process, stamp_of=lambda m: stamp_to_s(m.header.stamp), name="detect"
        )
        self._sub = subscribe_image(
            self,
            "image_raw",
            self._worker.submit,
            transport=self.params["image_transport"],
            reliability=self.params["image_reliability"],
        )
        self.on_params_changed(self._reconfigure)
        p = self.params
        self.get_logger().info(
            f"faces: {p['face_backend']}, persons: {p['person_backend']}, detection every "
            f"{p['detect_stride']} frame(s); {self._sub.topic_name} ({p['image_transport']}, "
            f"{p['image_reliability']}) -> {self._pub.topic_name}"
        )

    def _reconfigure(self, changed: dict[str, Any]) -> None:
        runtime = {k: v for k, v in changed.items() if k in RUNTIME_FIELDS}
        if runtime:
            with self._lock:
                self._perceiver.reconfigure(**runtime)

    def _process(self, msg: Any) -> None:
        rgb = self._converter.to_rgb(msg)
        with self._lock:
            frame = self._perceiver.process(
                rgb, stamp=stamp_to_s(msg.header.stamp), frame_id=msg.header.frame_id
            )
        self._pub.publish(frame_to_msg(frame, header=msg.header))

    def close(self) -> None:
        """Stop the worker."""
        self._worker.close()


def main(args: list[str] | None = None) -> None:
    """Entry point of the detector_node executable."""
    run_node(DetectorNode, args)
