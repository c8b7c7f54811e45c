#!/usr/bin/env python3
"""A test peer process: acknowledges every image it receives on ``image_raw``.

Subscribes ``image_raw`` (sensor_msgs/Image, sensor-data QoS, as detector_node does) and
publishes the header of each image whose size matches its width x height x channels on
``sink/received`` (reliable), so the test counts what crossed the process boundary intact.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ros_harness import check_local_discovery


def main() -> None:
    """Run until interrupted."""
    check_local_discovery()
    rclpy.init(args=sys.argv)
    node = rclpy.create_node("visio_memoria_image_sink")
    ack = node.create_publisher(Header, "sink/received", 100)

    def on_image(msg: Image) -> None:
        if len(msg.data) == msg.height * msg.step and msg.step >= msg.width:
            ack.publish(msg.header)

    node.create_subscription(Image, "image_raw", on_image, qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
