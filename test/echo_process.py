#!/usr/bin/env python3
"""A test peer process: echoes every visio_memoria message and answers every service.

Topic ``echo_in/<Type>`` is republished unchanged on ``echo_out/<Type>``. Service
``echo/<Type>`` answers ``fill(Response, 2)`` when the request equals ``fill(Request, 1)``, and
an empty response otherwise, so a dropped field in either direction fails the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rclpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from msg_fill import fill
from ros_harness import check_local_discovery

from visio_memoria_ros.nodes.startup import run_node


def echo_node() -> rclpy.node.Node:
    """The echo node (rclpy is initialised by ``run_node``)."""
    import visio_memoria.msg as msgs
    import visio_memoria.srv as srvs

    node = rclpy.create_node("visio_memoria_echo")
    for name in sorted(n for n in dir(msgs) if n[0].isupper()):
        cls = getattr(msgs, name)
        pub = node.create_publisher(cls, f"echo_out/{name}", 10)
        node.create_subscription(cls, f"echo_in/{name}", pub.publish, 10)
    for name in sorted(
        n
        for n in dir(srvs)
        if n[0].isupper() and not n.endswith(("_Request", "_Response", "_Event"))
    ):
        cls = getattr(srvs, name)

        def answer(req, resp, cls=cls):
            return fill(cls.Response(), 2) if req == fill(cls.Request(), 1) else cls.Response()

        node.create_service(cls, f"echo/{name}", answer)
    node.get_logger().info("echo ready")
    return node


if __name__ == "__main__":
    check_local_discovery()
    run_node(echo_node)
