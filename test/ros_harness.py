"""Start node executables as separate processes, as ``ros2 launch`` would, and talk to them.

Every process gets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and this session's ROS_DOMAIN_ID;
waits are on discovery (matched publishers/subscriptions, service readiness), never fixed
sleeps; everything started is stopped at teardown, also when the test failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
INSTALL_LIB = REPO / "install" / "visio_memoria" / "lib" / "visio_memoria"
PARAMS_FILE = REPO / "config" / "visio_memoria.yaml"


def check_local_discovery() -> None:
    """Refuse to go on unless DDS discovery is pinned to this machine."""
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
        raise RuntimeError("ROS_AUTOMATIC_DISCOVERY_RANGE must be LOCALHOST before rclpy.init")
    if not os.environ.get("ROS_DOMAIN_ID", "").isdigit():
        raise RuntimeError("ROS_DOMAIN_ID must be set to this session's own domain")


def node_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a node process: ours plus local-only discovery."""
    check_local_discovery()
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class NodeProcess:
    """One node executable running as a child process, its output captured to a log file."""

    def __init__(
        self,
        executable: str | Sequence[str],
        log_dir: Path,
        params: dict[str, Any] | None = None,
        remap: dict[str, str] | None = None,
        params_file: Path | None = None,
        name: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        if isinstance(executable, str):
            path = INSTALL_LIB / executable
            if not path.is_file():
                raise FileNotFoundError(f"{path} is not installed; run `make build` first")
            cmd = [str(path)]
            self.name = name or executable
        else:
            cmd = list(executable)
            self.name = name or Path(cmd[-1]).stem
        cmd += ["--ros-args"]
        if params_file is not None:
            cmd += ["--params-file", str(params_file)]
        for key, value in (params or {}).items():
            cmd += ["-p", f"{key}:={_param_literal(value)}"]
        for src, dst in (remap or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        self.cmd = cmd
        self.log_path = log_dir / f"{self.name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=node_env(env),
            start_new_session=True,
        )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit; return its exit code."""
        return self.proc.wait(timeout=timeout)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process group."""
        if self.alive():
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL; return the exit code."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if not self.alive():
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        self._log.close()
        return self.proc.poll()

    def output(self) -> str:
        """Everything the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def _param_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)


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
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")

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
        self, client: Any, request: Any, timeout: float, processes: Sequence[NodeProcess] = ()
    ) -> Any:
        """Wait for the service, call it and return the response."""
        self.spin_until(client.service_is_ready, timeout, f"service {client.srv_name}", processes)
        future = client.call_async(request)
        self.spin_until(future.done, timeout, f"response of {client.srv_name}", processes)
        return future.result()

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
