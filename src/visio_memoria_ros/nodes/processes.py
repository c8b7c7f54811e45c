"""Start node executables as separate processes, as ``ros2 launch`` would (demo and tests).

Where ``ros2 launch`` is not installed (PyPI ROS wheels), this starts the same executables
from ``install/visio_memoria/lib/visio_memoria`` with the same ``--ros-args``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any


def install_lib() -> Path:
    """Where the node executables are installed (from AMENT_PREFIX_PATH, else ./install)."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "lib" / "visio_memoria"
        if prefix and (candidate / "detector_node").is_file():
            return candidate
    return Path.cwd() / "install" / "visio_memoria" / "lib" / "visio_memoria"


def check_local_discovery() -> None:
    """Refuse to go on unless DDS discovery is pinned to this machine."""
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
        raise RuntimeError("ROS_AUTOMATIC_DISCOVERY_RANGE must be LOCALHOST before rclpy.init")
    if not os.environ.get("ROS_DOMAIN_ID", "").isdigit():
        raise RuntimeError("ROS_DOMAIN_ID must be set to this session's own domain")


DDS_PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def dds_profile_var(env: Mapping[str, str]) -> str:
    """The variable this ROS distribution's Fast DDS reads its XML profile from.

    Fast DDS 3 (Jazzy, Kilted) reads ``FASTDDS_DEFAULT_PROFILES_FILE`` and warns that the old
    name is deprecated; Fast DDS 2 (Humble) reads only ``FASTRTPS_DEFAULT_PROFILES_FILE``.
    """
    return DDS_PROFILE_VARS[1] if env.get("ROS_DISTRO") == "humble" else DDS_PROFILE_VARS[0]


def dds_profile() -> Path | None:
    """The shipped Fast DDS profile (``config/fastdds.xml``): installed share, else the source."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / "visio_memoria" / "config" / "fastdds.xml"
        if prefix and candidate.is_file():
            return candidate
    source = Path(__file__).resolve().parents[3] / "config" / "fastdds.xml"
    return source if source.is_file() else None


def use_dds_profile(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Point ``env`` at the shipped Fast DDS profile unless it names a profile already.

    The profile enlarges the shared-memory segment so camera images (larger than Fast DDS's
    512 KB default) are not lost between processes; see ``config/fastdds.xml``.
    """
    if any(env.get(var) for var in DDS_PROFILE_VARS):
        return env  # the user's own profile
    found = dds_profile()
    if found is not None:
        env[dds_profile_var(env)] = str(found)
    return env


def node_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a node process: ours, local-only discovery, the DDS profile."""
    check_local_discovery()
    env = dict(use_dds_profile(dict(os.environ)))
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
        *,
        params: dict[str, Any] | None = None,
        remap: dict[str, str] | None = None,
        params_file: Path | None = None,
        name: str | None = None,
        env: dict[str, str] | None = None,
        log_level: str | None = None,
    ) -> None:
        if isinstance(executable, str):
            path = install_lib() / executable
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
        if log_level is not None:
            cmd += ["--log-level", log_level]  # "debug", or "<logger>:=debug"
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
