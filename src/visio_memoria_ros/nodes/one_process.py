"""visio_memoria_node: the chosen nodes of the graph in one process.

    visio_memoria_node [--nodes camera_node,detector_node,...] --ros-args [--params-file F]
        [-r __ns:=/robot1] [-r image_raw:=/camera/image] [--log-level info]

Every node is the same class, with the same name, topics, services and parameters as when it
runs as its own process (``ros2 node list``, ``ros2 param set /detector_node ...`` and the
``/**/<node>:`` sections of the parameter file work unchanged); global remappings and the
namespace apply to all of them, as they would to each process. What changes: torch, the
models' libraries and rclpy are loaded once instead of once per node (the graph's resident
memory), and messages between these nodes stay inside the process (still serialised through
DDS's intra-host transport, so the same QoS applies). Each node keeps its own worker thread;
the executors only run callbacks: one single-threaded executor for every node but memory_node,
whose service callbacks may wait and which spins in a multi-threaded executor of its own
(rclpy's multi-threaded executor for all of them spent the GIL the workers need: 3.65 against
6.6 frames/s in ``bench/bench_graph.py --configs one_process``).

The process ends when one node asks to (camera_node at the end of its source with
``on_source_end: shutdown``: exit 0) or fails to start (exit 1, naming the node), so launch's
``respawn`` restarts the whole process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import (
    Executor,
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node

from .logging_bridge import route_library_logging
from .startup import NodeStartupError

#: Node name -> (module in visio_memoria_ros.nodes, class), in start order: the consumers of a
#: topic subscribe before its producer starts publishing.
NODES: dict[str, tuple[str, str]] = {
    "memory_node": ("memory_node", "MemoryNode"),
    "identity_node": ("identity_node", "IdentityNode"),
    "activity_node": ("activity_node", "ActivityNode"),
    "embedding_node": ("embedding_node", "EmbeddingNode"),
    "detector_node": ("detector_node", "DetectorNode"),
    "overlay_node": ("overlay_node", "OverlayNode"),
    "camera_node": ("camera_node", "CameraNode"),
}


def parse_nodes(text: str) -> list[str]:
    """The node names of a comma-separated list, in start order; ValueError for unknown ones."""
    wanted = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in NODES]
    if unknown or not wanted:
        raise ValueError(f"unknown node(s) {unknown or text!r}; choose from {', '.join(NODES)}")
    return [n for n in NODES if n in wanted]


def node_factory(name: str) -> Callable[[], Node]:
    """The class of node ``name`` (imported on demand)."""
    module, cls = NODES[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def _spin(executor: Executor) -> None:
    """Spin ``executor`` until it or the context is shut down (a background thread's loop)."""
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        executor.spin()


def run_nodes(names: Sequence[str], threads: int = 0) -> int:
    """Build the nodes in order and spin them together until one asks to exit; return the code.

    rclpy must be initialised. A node that cannot start ends the process with 1 (the others
    are closed first).
    """
    log = rclpy.logging.get_logger("visio_memoria")
    nodes: list[Node] = []
    code = 0
    executor = SingleThreadedExecutor()
    waiting: MultiThreadedExecutor | None = None  # for a node whose callbacks wait
    spinner: threading.Thread | None = None
    try:
        for name in names:
            try:
                node = node_factory(name)()
            except (NodeStartupError, FileNotFoundError, ValueError, ImportError,
                    RuntimeError) as exc:
                if not rclpy.ok():  # a SIGINT shut the context down while it started
                    log.info(f"shut down while starting {name}")
                    return 0
                log.fatal(f"{name} cannot start: {exc}")
                return 1
            nodes.append(node)
            wants = int(getattr(node, "EXECUTOR_THREADS", 1))
            if wants > 1:
                # memory_node: a multi-threaded executor of its own (as in its own process),
                # so its waiting callbacks never hold up the other nodes
                if waiting is None:
                    waiting = MultiThreadedExecutor(num_threads=threads or wants)
                waiting.add_node(node)
            else:
                executor.add_node(node)
        if waiting is not None:
            spinner = threading.Thread(target=_spin, args=(waiting,), name="waiting_nodes",
                                       daemon=True)
            spinner.start()
        log.info(f"running {', '.join(names)} in one process")
        while rclpy.ok():
            codes = [c for c in (getattr(n, "exit_code", None) for n in nodes) if c is not None]
            if codes:
                code = max(codes)
                break
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        log.info("shut down")
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # launch forwards a second SIGINT
        for node in reversed(nodes):
            close = getattr(node, "close", None)
            if callable(close):
                close()
        executor.shutdown()
        if waiting is not None:
            waiting.shutdown()
        if spinner is not None:
            spinner.join(timeout=5.0)
        for node in reversed(nodes):
            node.destroy_node()
    return code


def main(args: list[str] | None = None) -> None:
    """Entry point of the visio_memoria_node executable."""
    argv = list(sys.argv if args is None else args)
    rclpy.init(args=argv)
    route_library_logging()
    parser = argparse.ArgumentParser(prog="visio_memoria_node", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default=",".join(NODES),
                        help=f"comma-separated nodes to run (default: all: {', '.join(NODES)})")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of memory_node's executor (default 3); the other nodes share "
                             "one single-threaded executor")
    options = parser.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    try:
        names = parse_nodes(options.nodes)
    except ValueError as exc:
        rclpy.logging.get_logger("visio_memoria").fatal(str(exc))
        rclpy.try_shutdown()
        sys.exit(2)
    try:
        code = run_nodes(names, options.threads)
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    rclpy.try_shutdown()
    if code:
        sys.exit(code)
