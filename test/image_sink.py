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
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ros_harness import check_local_discovery

from visio_memoria_ros.nodes.startup import run_node


def sink_node() -> rclpy.node.Node:
    """The sink node (rclpy is initialised by ``run_node``)."""
    node = rclpy.create_node("visio_memoria_image_sink")
    ack = node.create_publisher(Header, "sink/received", 100)

    def on_image(msg: Image) -> None:
        if len(msg.data) == msg.height * msg.step and msg.step >= msg.width:
            ack.publish(msg.header)

    node.create_subscription(Image, "image_raw", on_image, qos_profile_sensor_data)
    return node


if __name__ == "__main__":
    check_local_discovery()
    run_node(sink_node)
