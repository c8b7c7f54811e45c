"""Starting and stopping a node process: ``run_node`` and the error that refuses a start.

Decision (written once): the nodes are plain ``rclpy`` nodes, not lifecycle nodes. Each loads
its models in ``__init__`` (before it subscribes) and exits non-zero with one clear log line
when a model or file is missing, so ``ros2 launch`` (``respawn``) and systemd see the failure.
Lifecycle nodes would need a lifecycle manager that none of our target setups runs, and a node
must never trigger its own transitions.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node

from .logging_bridge import route_library_logging


def node_torch_threads(value: int) -> int:
    """torch's CPU threads for a node's ``torch_threads`` parameter: the value when set (> 0),
    else (0, automatic) 1.

    A node's own heavy work is serial (detector_node's detect step sets the graph's frame rate)
    and other nodes share the CPU, so intra-op threads spin against them instead of helping.
    The graph on street.mp4 with a 30 Hz camera, 2 cores (``bench/bench_graph.py``): one
    process per node 11.6-12.0 frames/s with 1 thread against 10.0-10.8 with torch's default of
    2; ``single_process:=true`` 7.95 against 6.55. The CLI, one process with the CPU to itself,
    keeps torch's default.
    """
    return int(value) if value > 0 else 1


class NodeStartupError(RuntimeError):
    """A node cannot start (missing model, bad parameter); the message says what to fix."""


def run_node(factory: Callable[[], Node], args: list[str] | None = None, threads: int = 1) -> None:
    """Init rclpy, build the node, spin until shutdown; exit 1 with one clear line on failure.

    ``threads`` 1 (every node but memory_node): a single-threaded executor. The nodes' callbacks
    only hand work to their worker threads, and rclpy's MultiThreadedExecutor costs far more:
    with it the whole graph ran at 5.4 frames/s on this 2-core CPU, with a single-threaded one
    at 13.4 (``bench/bench_graph.py``; detector_node's executor competed with its worker for
    the GIL). A node whose callbacks wait (memory_node's service replies) asks for more.

    A node ends itself (e.g. the camera at the end of a file) with ``request_exit(code)``.
    """
    rclpy.init(args=args if args is not None else sys.argv)
    route_library_logging()
    log = rclpy.logging.get_logger("visio_memoria")
    try:
        node = factory()
    except (NodeStartupError, FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
        if not rclpy.ok():
            # SIGINT during a blocking call in C (a camera's first open): rclpy shut the
            # context down, and the next rcl call failed for that reason, not a real fault.
            log.info(f"shut down while starting ({type(exc).__name__} after the shutdown)")
            return
        log.fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        sys.exit(1)
    except (KeyboardInterrupt, ExternalShutdownException):
        # Shut down while still loading (a launch that ends early): a clean exit, no traceback.
        log.info("shut down while starting")
        rclpy.try_shutdown()
        return
    code = 0
    executor = (SingleThreadedExecutor() if threads <= 1
                else MultiThreadedExecutor(num_threads=threads))
    executor.add_node(node)
    try:
        while rclpy.ok() and getattr(node, "exit_code", None) is None:
            executor.spin_once(timeout_sec=0.1)
        code = getattr(node, "exit_code", None) or 0
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # SIGINT between rclpy.ok() and spin_once: the executor's wait fails on the context
        # that the signal has just shut down (rclpy's RCLError). A shutdown, not a fault.
        if rclpy.ok():
            raise
    finally:
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C in a terminal reaches every node of the process group and ros2 launch
            # forwards its own SIGINT: the second one must not break the clean-up.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        close = getattr(node, "close", None)
        if callable(close):
            close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if code:
        sys.exit(code)
