"""The real ``ros2 launch`` with a camera source that ends: never replayed by respawn.

``on_source_end:=shutdown`` (the README's line, run as printed): the launch ends by itself,
exit code 0, camera_node started once. ``on_source_end:=keep`` (the default): the graph keeps
running, camera_node stays alive, started once, reporting the end on /diagnostics.

Needs ``ros2 launch`` (a ROS install, or ``../shared/ros-cli`` installed by bootstrap.sh);
skips with the reason otherwise.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.dds, pytest.mark.slow]

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from visio_memoria_ros.nodes.processes import node_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHIPPED_YAML = REPO / "config" / "visio_memoria.yaml"
SHUTDOWN_LINE = (
    "ros2 launch visio_memoria bringup.launch.py params_file:=my.yaml on_source_end:=shutdown"
)
#: Start-up of the whole graph (torch models) on a busy 2-core machine, and its shutdown.
GRAPH_TIMEOUT = 300.0
#: A shell may start the tests with SIGINT ignored; launch must see SIGINT to stop its nodes.
_SIGINT_DEFAULT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                   "os.execvp(sys.argv[1], sys.argv[1:])")


@pytest.fixture(scope="module")
def ros2_launch() -> None:
    """Skip with the reason when the real ``ros2 launch`` cannot run this package."""
    if shutil.which("ros2") is None:
        pytest.skip("`ros2` is not on PATH: install ROS 2, or put ../shared/ros-cli next to the "
                    "repository and run scripts/bootstrap.sh (then `source scripts/env.sh`)")
    result = subprocess.run(["ros2", "launch", "visio_memoria", "bringup.launch.py",
                             "--show-args"], capture_output=True, text=True, env=node_env(),
                            timeout=120, check=False)
    if result.returncode != 0 or "on_source_end" not in result.stdout:
        pytest.skip(f"`ros2 launch visio_memoria bringup.launch.py` is not available: "
                    f"{(result.stderr or result.stdout).strip()[-300:]}")


@pytest.fixture
def my_yaml(tmp_path) -> Path:
    """my.yaml: the shipped parameters with a 3-image folder (no loop) and a private memory."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((48, 64, 3), 60 * (i + 1), np.uint8))
    doc = yaml.safe_load(SHIPPED_YAML.read_text(encoding="utf-8"))
    camera = next(v for k, v in doc.items() if k.endswith("camera_node"))["ros__parameters"]
    camera.update(source=str(frames), loop=False, rate=5.0)
    memory = next(v for k, v in doc.items() if k.endswith("memory_node"))["ros__parameters"]
    memory["data_dir"] = str(tmp_path / "memory")
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


class Launch:
    """``ros2 launch`` in its own process group (as a terminal runs it), output to a log."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.log_path = cwd / "launch.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-c", _SIGINT_DEFAULT, *argv], cwd=cwd,
                                     stdout=self._log, stderr=subprocess.STDOUT, env=node_env(),
                                     start_new_session=True)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def camera_starts(self) -> int:
        return len(re.findall(r"\[camera_node-\d+\]: process started", self.output()))

    def stop(self) -> int:
        """Ctrl-C (SIGINT to the process group), SIGKILL after GRAPH_TIMEOUT; the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=GRAPH_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def test_shutdown_ends_the_launch_when_the_folder_ends(ros2_launch, my_yaml):
    assert SHUTDOWN_LINE in README.read_text(encoding="utf-8"), "README.md changed the line"
    launch = Launch(shlex.split(SHUTDOWN_LINE), my_yaml.parent)
    try:
        code = launch.proc.wait(timeout=GRAPH_TIMEOUT)
    finally:
        stopped = launch.stop()
    out = launch.output()
    assert code == stopped == 0, out[-4000:]
    assert "source ended after 3 frames; exiting (on_source_end: shutdown)" in out
    assert re.search(r"\[camera_node-\d+\]: process has finished cleanly", out)
    assert launch.camera_starts() == 1, "camera_node was respawned:\n" + out[-4000:]


def test_keep_runs_on_with_the_camera_idle(ros2_launch, my_yaml, ros):
    ended: list[str] = []

    def on_diagnostics(msg: DiagnosticArray) -> None:
        ended.extend(s.message for s in msg.status
                     if s.name == "/camera_node: camera" and s.message.startswith("source ended"))

    ros.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
    launch = Launch(["ros2", "launch", "visio_memoria", "bringup.launch.py",
                     f"params_file:={my_yaml}"], my_yaml.parent)
    try:
        ros.spin_until(lambda: len(ended) >= 5 or launch.proc.poll() is not None,
                       GRAPH_TIMEOUT, "five 'source ended' reports on /diagnostics")
        assert launch.proc.poll() is None, "the launch ended:\n" + launch.output()[-4000:]
        assert set(ended) == {"source ended after 3 frames"}
        out = launch.output()
        assert "idle (on_source_end: keep)" in out
        assert launch.camera_starts() == 1, "camera_node was respawned:\n" + out[-4000:]
        assert not re.search(r"\[camera_node-\d+\]: process has (died|finished)", out)
    finally:
        code = launch.stop()
    assert code == 0, launch.output()[-4000:]
