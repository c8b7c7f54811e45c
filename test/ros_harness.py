"""The test side of the DDS harness: the test's own node, spun until discovery or data arrive.

Node processes are started with ``visio_memoria_ros.nodes.processes.NodeProcess`` (the same
launcher the demo uses): every process gets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and this
session's ROS_DOMAIN_ID; waits are on discovery (matched publishers/subscriptions, service
readiness), never fixed sleeps; everything started is stopped at teardown.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from visio_memoria_ros.nodes.processes import NodeProcess, check_local_discovery

__all__ = ["NodeProcess", "RosTestNode", "check_local_discovery"]


def stacks(processes: Sequence[NodeProcess]) -> str:
    """The Python stacks of every thread of the live ``processes`` (py-spy), for a timeout's
    message: a node that stopped answering shows where it waits. Empty without py-spy."""
    spy = shutil.which("py-spy")
    if spy is None:
        return ""
    out = []
    for p in processes:
        if not p.alive():
            continue
        try:
            dump = subprocess.run([spy, "dump", "--pid", str(p.proc.pid)], check=False,
                                  capture_output=True, text=True, timeout=30)
            out.append(f"--- {p.name} stacks (py-spy):\n{dump.stdout or dump.stderr}")
            out.append(f"--- {p.name} maps the shared-memory ports {shm_ports(p.proc.pid)}")
        except (OSError, subprocess.SubprocessError) as exc:
            out.append(f"--- {p.name} stacks: py-spy failed: {exc}")
    if out:
        out.append(f"--- this (the test's) process maps the shared-memory ports {shm_ports()}")
    return "\n" + "\n".join(out) if out else ""


def shm_ports(pid: int | str = "self") -> list[str]:
    """The Fast DDS shared-memory port segments process ``pid`` maps, "(deleted)" for one that
    another process has since removed and created again: what is written there reaches
    nobody."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return []
    return sorted({line.split("/dev/shm/", 1)[1] for line in maps.splitlines()
                   if "/dev/shm/fastdds_port" in line})


class RosTestNode:
    """The test's own rclpy node in its own context, spun on demand."""

    def __init__(self, name: str = "visio_memoria_test") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        check_local_discovery()
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        what: str,
        processes: Sequence[NodeProcess] = (),
    ) -> None:
        """Spin until ``predicate()``; fail with ``what`` and the node logs after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for p in processes:
                if not p.alive():
                    raise AssertionError(
                        f"{p.name} died (exit {p.proc.returncode}) while "
                        f"waiting for {what}:\n{p.output()[-4000:]}"
                    )
            self.executor.spin_once(timeout_sec=0.05)
        logs = "\n".join(f"--- {p.name}:\n{p.output()[-3000:]}" for p in processes)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}"
                             f"{stacks(processes)}")

    def collect(self, msg_type: Any, topic: str, qos: Any = 10) -> list[Any]:
        """Subscribe and return the list that received messages are appended to."""
        received: list[Any] = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def wait_for_subscribers(
        self, publisher: Any, count: int, timeout: float, processes: Sequence[NodeProcess] = ()
    ) -> None:
        """Wait until ``publisher`` is matched by ``count`` subscriptions."""
        self.spin_until(
            lambda: publisher.get_subscription_count() >= count,
            timeout,
            f"{count} subscriber(s) on {publisher.topic_name}",
            processes,
        )

    def wait_for_publishers(
        self, subscription: Any, count: int, timeout: float, processes: Sequence[NodeProcess] = ()
    ) -> None:
        """Wait until ``subscription`` is matched by ``count`` publishers."""
        self.spin_until(
            lambda: subscription.get_publisher_count() >= count,
            timeout,
            f"{count} publisher(s) on {subscription.topic_name}",
            processes,
        )

    def call(
        self,
        client: Any,
        request: Any,
        timeout: float,
        processes: Sequence[NodeProcess] = (),
        resend_after: float | None = -1.0,
    ) -> Any:
        """Wait for the service, call it and return the response.

        ``resend_after``: send the request again when no answer came after that many seconds;
        None never re-sends. The default (-1) re-sends after 5 s for services named ``list_*``
        or ``get_*``. Why: DDS can lose a service reply without any error on the client's side.
        Right after a server (re)starts, the client sees the service ready (its request writer
        matched the server's request reader) before the server's reply writer has matched the
        client's reply reader; rmw_fastrtps waits ``max_blocking_time`` (100 ms) for that match
        and then drops the reply ("failed to send response (timeout): client will not receive
        response" in the server's log). A real client must therefore re-send, and may do so
        only when the request can be repeated: reads, and writes that set a state (setting a
        parameter to the same value twice). The nodes do the same with ``ReliableCall``;
        memory_node's own services also send a reply again while the client is still being
        discovered (``nodes/service_reply.py``), rclpy's parameter services do not.
        Writes that change something each time (label, merge, forget) are never re-sent here:
        a real client cannot re-send them either without doing them twice.
        """
        if resend_after == -1.0:
            name = client.srv_name.rsplit("/", 1)[-1]
            resend_after = 5.0 if name.startswith(("list_", "get_")) else None
        self.spin_until(client.service_is_ready, timeout, f"service {client.srv_name}", processes)
        futures = [client.call_async(request)]
        sent = time.monotonic()

        def answered() -> bool:
            nonlocal sent
            if any(f.done() for f in futures):
                return True
            if resend_after is not None and time.monotonic() - sent > resend_after:
                futures.append(client.call_async(request))
                sent = time.monotonic()
            return False

        try:
            self.spin_until(answered, timeout, f"response of {client.srv_name}", processes)
        except AssertionError as exc:
            servers = (self.node.count_services(client.srv_name)
                       if hasattr(self.node, "count_services") else "?")
            raise AssertionError(
                f"{exc}\n--- client side: {len(futures)} request(s) sent, service ready: "
                f"{client.service_is_ready()}, servers in the graph: {servers}") from None
        return next(f for f in futures if f.done()).result()

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
