"""Plumbing every node shares: parameters from specs, QoS, a latest-frame worker, diagnostics.

Decision (written once): the nodes are plain ``rclpy`` nodes, not lifecycle nodes. Each loads
its models in ``__init__`` (before it subscribes) and exits non-zero with one clear log line
when a model or file is missing, so ``ros2 launch`` (``respawn``) and systemd see the failure.
Lifecycle nodes would need a lifecycle manager that none of our target setups runs, and a node
must never trigger its own transitions.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from ..config import ParamSpec, validate_value

#: Camera images and overlays: best effort, keep the last few (a late frame is a useless frame).
SENSOR_QOS = qos_profile_sensor_data
#: Perception, identities, activities: every message matters to the memory.
RELIABLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
)
#: State a late joiner needs (memory revisions): reliable and latched.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


class NodeStartupError(RuntimeError):
    """A node cannot start (missing model, bad parameter); the message says what to fix."""


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    extra = ""
    if spec.choices:
        extra = f" One of: {', '.join(spec.choices)}."
    desc = ParameterDescriptor(description=spec.description + extra, read_only=spec.read_only)
    if spec.type is float and (spec.min is not None or spec.max is not None):
        desc.floating_point_range = [
            FloatingPointRange(
                from_value=float(spec.min if spec.min is not None else -math.inf),
                to_value=float(spec.max if spec.max is not None else math.inf),
                step=0.0,
            )
        ]
    elif spec.type is int and (spec.min is not None or spec.max is not None):
        desc.integer_range = [
            IntegerRange(
                from_value=int(spec.min if spec.min is not None else -(2**63)),
                to_value=int(spec.max if spec.max is not None else 2**63 - 1),
                step=1,
            )
        ]
    if spec.type is list and not spec.default:
        desc.type = ParameterType.PARAMETER_STRING_ARRAY
    return desc


class VisioNode(Node):
    """A node whose parameters come from ``ParamSpec``s: declared, described and validated."""

    def __init__(
        self,
        name: str,
        specs: Sequence[ParamSpec],
        cross_check: Callable[[dict[str, Any]], str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        self._cross_check = cross_check
        self._specs = {s.name: s for s in specs}
        self.params: dict[str, Any] = {}
        for spec in specs:
            try:
                if spec.type is list and not spec.default:
                    value = self.declare_parameter(
                        spec.name, Parameter.Type.STRING_ARRAY, _descriptor(spec)
                    ).value
                    value = list(value or [])
                else:
                    value = self.declare_parameter(
                        spec.name, spec.default, _descriptor(spec)
                    ).value
            except InvalidParameterTypeException as exc:
                raise NodeStartupError(
                    f"parameter {spec.name} must be {spec.type.__name__}"
                    + (" (a whole number needs a decimal point: 4.0)" if spec.type is float
                       else "") + f": {exc}"
                ) from exc
            problem = validate_value(spec, value)
            if problem:
                raise NodeStartupError(f"parameter {problem}")
            self.params[spec.name] = value
        problem = cross_check(dict(self.params)) if cross_check else None
        if problem:
            raise NodeStartupError(f"parameters: {problem}")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._param_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.exit_code: int | None = None

    def request_exit(self, code: int) -> None:
        """Ask ``run_node`` to stop spinning and exit the process with ``code``."""
        if self.exit_code is None:
            self.exit_code = code

    def on_params_changed(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(changed)`` after parameters were changed at run time."""
        self._param_listeners.append(listener)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changed: dict[str, Any] = {}
        for p in params:
            spec = self._specs.get(p.name)
            if spec is None:
                continue  # use_sim_time and friends
            problem = validate_value(spec, p.value)
            if problem:
                self.get_logger().warning(f"refused parameter change: {problem}")
                return SetParametersResult(successful=False, reason=problem)
            changed[p.name] = p.value
        if changed and not self._param_listeners:
            # A node that applies nothing at run time must not answer "successful".
            problem = (f"{self.get_name()} applies no parameter at run time: "
                       f"{', '.join(changed)} would change nothing until a restart")
            self.get_logger().warning(f"refused parameter change: {problem}")
            return SetParametersResult(successful=False, reason=problem)
        if self._cross_check is not None and changed:
            problem = self._cross_check({**self.params, **changed})
            if problem:
                self.get_logger().warning(f"refused parameter change: {problem}")
                return SetParametersResult(successful=False, reason=problem)
        self.params.update(changed)
        if changed:
            self.get_logger().info(f"parameters changed: {changed}")
            for listener in self._param_listeners:
                listener(changed)
        return SetParametersResult(successful=True)

    def now_s(self) -> float:
        """Current ROS time in seconds (sim time aware)."""
        return self.get_clock().now().nanoseconds * 1e-9


class LatestSlot:
    """Holds only the newest item; a worker takes it. Counts the items it had to drop."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.dropped = 0
        self.received = 0

    def put(self, item: Any) -> None:
        """Store ``item``, replacing (and counting as dropped) any item not yet taken."""
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._cond.notify()

    def take(self, timeout: float = 0.5) -> Any:
        """Return the newest item, waiting up to ``timeout`` s; None on timeout or close."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake the worker so it can exit."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closed


class StageStats:
    """Rolling counters for one processing stage, published on /diagnostics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processed = 0
        self.errors = 0
        self._times: list[float] = []
        self._lags: list[float] = []

    def record(self, seconds: float, lag: float) -> None:
        """Record one processed item: its processing time and its lag behind its stamp."""
        with self._lock:
            self.processed += 1
            self._times = [*self._times[-99:], seconds]
            self._lags = [*self._lags[-99:], lag]

    def error(self) -> None:
        """Count one failed item."""
        with self._lock:
            self.errors += 1

    def summary(self) -> dict[str, float]:
        """Mean processing time and lag over the last 100 items, and the counters."""
        with self._lock:
            mean_t = sum(self._times) / len(self._times) if self._times else 0.0
            mean_l = sum(self._lags) / len(self._lags) if self._lags else 0.0
            return {
                "processed": float(self.processed),
                "errors": float(self.errors),
                "mean_processing_time_s": mean_t,
                "mean_lag_s": mean_l,
            }


#: Diagnostic levels as plain ints (DiagnosticStatus holds them as one byte).
OK, WARN, ERROR = 0, 1, 2

#: What a node reports about its own health: (level, message), e.g. (ERROR, "no gallery").
Health = tuple[int, str]


class StageDiagnostics:
    """Publishes one stage's counters on /diagnostics once a second.

    ``counters`` adds values (numbers or text); ``health`` adds the node's own verdict
    (e.g. ERROR while it has no gallery): the worst of it and the counters' verdict is sent.
    """

    def __init__(
        self,
        node: Node,
        name: str,
        stats: StageStats,
        counters: Callable[[], dict[str, float | str]] | None = None,
        health: Callable[[], Health | None] | None = None,
    ) -> None:
        self._node = node
        self._name = name
        self._stats = stats
        self._counters = counters
        self._health = health
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(1.0, self.publish)

    def status(self) -> DiagnosticStatus:
        """The current status: OK, WARN when dropping most input, ERROR when every item fails,
        or worse when ``health`` says so."""
        summary = self._stats.summary()
        extra = self._counters() if self._counters else {}
        level, message = OK, "ok"
        received, dropped = float(extra.get("received", 0.0)), float(extra.get("dropped", 0.0))
        if summary["errors"] and summary["processed"] == 0:
            level, message = ERROR, "every item failed"
        elif dropped and dropped > received / 2:
            level, message = WARN, "dropping more than half of the input: processing is too slow"
        own = self._health() if self._health else None
        if own is not None and own[0] > OK:
            if own[0] > level:
                level, message = own[0], own[1] if level == OK else f"{own[1]}; {message}"
            else:
                message = f"{message}; {own[1]}"
        status = DiagnosticStatus()
        status.name = f"{self._node.get_fully_qualified_name()}: {self._name}"
        status.hardware_id = "visio_memoria"
        status.level = bytes([level])
        status.message = message
        values = {**summary, **extra}
        status.values = [
            KeyValue(key=k, value=v if isinstance(v, str) else f"{v:.6g}")
            for k, v in values.items()
        ]
        return status

    def publish(self) -> None:
        """Publish the current status."""
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [self.status()]
        self._pub.publish(msg)


class FrameWorker:
    """Runs ``process(item)`` on a thread for the newest item only; the executor never blocks.

    The subscription callback calls ``submit``; processing errors are logged (throttled) and
    counted, never raised into the executor. Diagnostics go to /diagnostics once a second,
    with the node's own ``health`` verdict (see StageDiagnostics).
    """

    def __init__(
        self,
        node: Node,
        process: Callable[[Any], None],
        stamp_of: Callable[[Any], float] | None = None,
        name: str = "worker",
        *,
        health: Callable[[], Health | None] | None = None,
        counters: Callable[[], dict[str, float | str]] | None = None,
    ) -> None:
        self._node = node
        self._process = process
        self._stamp_of = stamp_of
        self.slot = LatestSlot()
        self.stats = StageStats()
        self._name = name
        self._thread = threading.Thread(
            target=self._run, name=f"{node.get_name()}-{name}", daemon=True
        )
        self.diagnostics = StageDiagnostics(
            node,
            name,
            self.stats,
            lambda: {"received": float(self.slot.received), "dropped": float(self.slot.dropped),
                     **(counters() if counters else {})},
            health,
        )
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Hand an item to the worker (the newest one wins)."""
        self.slot.put(item)

    def _run(self) -> None:
        log = self._node.get_logger()
        while not self.slot.closed:
            item = self.slot.take()
            if item is None:
                continue
            t0 = time.monotonic()
            try:
                self._process(item)
            except Exception as exc:  # a bad frame must never kill the node
                if not self._node.context.ok():
                    return  # shutting down: the publisher is gone, nothing to report
                self.stats.error()
                log.error(f"{self._name}: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)
                continue
            lag = 0.0
            if self._stamp_of is not None:
                try:
                    lag = max(0.0, _now(self._node) - self._stamp_of(item))
                except Exception:
                    lag = 0.0
            self.stats.record(time.monotonic() - t0, lag)

    def close(self) -> None:
        """Stop the worker thread."""
        self.slot.close()
        self._thread.join(timeout=5.0)


def _now(node: Node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


def stamp_to_s(stamp: Any) -> float:
    """builtin_interfaces/Time -> seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def s_to_stamp(seconds: float) -> Any:
    """Seconds -> builtin_interfaces/Time."""
    from builtin_interfaces.msg import Time

    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=round((seconds - sec) * 1e9) % 1_000_000_000)


class RosLogHandler(logging.Handler):
    """Forwards the library rooms' ``logging`` records to the ROS logger (same format, rosout)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record to the rclpy logger of the same name."""
        try:
            logger = rclpy.logging.get_logger(record.name)
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                logger.error(text)
            elif record.levelno >= logging.WARNING:
                logger.warning(text)
            elif record.levelno >= logging.INFO:
                logger.info(text)
            else:
                logger.debug(text)
        except Exception:  # logging must never raise
            self.handleError(record)


def _route_library_logging() -> None:
    root = logging.getLogger("visio_memoria_ros")
    if not any(isinstance(h, RosLogHandler) for h in root.handlers):
        root.addHandler(RosLogHandler())
    root.setLevel(logging.INFO)
    root.propagate = False


def run_node(factory: Callable[[], Node], args: list[str] | None = None, threads: int = 2) -> None:
    """Init rclpy, build the node, spin until shutdown; exit 1 with one clear line on failure.

    A node ends itself (e.g. the camera at the end of a file) with ``request_exit(code)``.
    """
    rclpy.init(args=args if args is not None else sys.argv)
    _route_library_logging()
    log = rclpy.logging.get_logger("visio_memoria")
    try:
        node = factory()
    except (NodeStartupError, FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
        log.fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        sys.exit(1)
    except (KeyboardInterrupt, ExternalShutdownException):
        # Shut down while still loading (a launch that ends early): a clean exit, no traceback.
        log.info("shut down while starting")
        rclpy.try_shutdown()
        return
    code = 0
    executor = MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    try:
        while rclpy.ok() and getattr(node, "exit_code", None) is None:
            executor.spin_once(timeout_sec=0.1)
        code = getattr(node, "exit_code", None) or 0
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
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
