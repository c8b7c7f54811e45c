"""``single_process:=true``: the README's launch line as printed, all nodes in one process.

Seen from outside, the graph is the same as with one process per node: the same node names,
topics and services, parameters read and set with ``ros2 param``; only one node process runs.
``on_source_end:=shutdown`` still ends the launch with exit code 0.

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
import time
from pathlib import Path

import cv2
import pytest
import yaml

pytestmark = [pytest.mark.dds, pytest.mark.slow]

from visio_memoria.msg import IdentityArray  # noqa: E402

from visio_memoria_ros.config import NODE_PARAMS  # noqa: E402
from visio_memoria_ros.nodes.processes import node_env  # noqa: E402
from visio_memoria_ros.nodes.qos import RELIABLE_QOS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHIPPED_YAML = REPO / "config" / "visio_memoria.yaml"
LINE = "ros2 launch visio_memoria bringup.launch.py params_file:=my.yaml single_process:=true"
GRAPH_TIMEOUT = 300.0
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
    if result.returncode != 0 or "single_process" not in result.stdout:
        pytest.skip(f"`ros2 launch visio_memoria bringup.launch.py` is not available: "
                    f"{(result.stderr or result.stdout).strip()[-300:]}")


def _my_yaml(folder: Path, image: Path, loop: bool) -> Path:
    frames = folder / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.jpg"), cv2.imread(str(image)))
    doc = yaml.safe_load(SHIPPED_YAML.read_text(encoding="utf-8"))
    camera = next(v for k, v in doc.items() if k.endswith("camera_node"))["ros__parameters"]
    camera.update(source=str(frames), loop=loop, rate=5.0)
    memory = next(v for k, v in doc.items() if k.endswith("memory_node"))["ros__parameters"]
    memory["data_dir"] = str(folder / "memory")
    path = folder / "my.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


class Launch:
    """The README's line in its own process group (as a terminal runs it), output to a log."""

    def __init__(self, extra: list[str], cwd: Path) -> None:
        assert LINE in README.read_text(encoding="utf-8"), f"README.md no longer shows: {LINE}"
        self.log_path = cwd / "launch.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-c", _SIGINT_DEFAULT,
                                      *shlex.split(LINE), *extra], cwd=cwd, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=node_env(),
                                     start_new_session=True)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=GRAPH_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def _ros2(*args: str) -> subprocess.CompletedProcess:
    """A ``ros2`` command; again while it answers "Node not found" (the daemon may not know the
    nodes yet; a user would type the line again)."""
    deadline = time.monotonic() + 60
    while True:
        done = subprocess.run(["ros2", *args], capture_output=True, text=True, env=node_env(),
                              timeout=120, check=False)
        if "Node not found" not in done.stdout + done.stderr or time.monotonic() > deadline:
            return done


def test_one_process_looks_like_the_graph_from_outside(ros2_launch, ros, asset_image_path,
                                                       tmp_path):
    my_yaml = _my_yaml(tmp_path, asset_image_path, loop=True)
    identities = ros.collect(IdentityArray, "identities", RELIABLE_QOS)
    launch = Launch([], my_yaml.parent)
    try:
        ros.spin_until(lambda: any(m.identities for m in identities)
                       or launch.proc.poll() is not None, GRAPH_TIMEOUT,
                       "identities with faces")
        assert launch.proc.poll() is None, launch.output()[-4000:]
        names = {(n, ns) for n, ns in ros.node.get_node_names_and_namespaces()}
        assert {(n, "/") for n in NODE_PARAMS} <= names, names
        for topic in ("/image_raw", "/detections", "/perception", "/identities", "/greeting",
                      "/activities", "/overlay/image", "/memory/events"):
            assert ros.node.count_publishers(topic) == 1, topic
        services = {s for s, _ in ros.node.get_service_names_and_types()}
        assert "/visio_memoria/label_unknown" in services
        got = _ros2("param", "get", "/detector_node", "full_detect_interval")
        assert got.returncode == 0 and "4" in got.stdout, got.stdout + got.stderr
        changed = _ros2("param", "set", "/embedding_node", "max_embeddings_per_track", "3")
        assert "Set parameter successful" in changed.stdout, changed.stdout + changed.stderr
        refused = _ros2("param", "set", "/memory_node", "data_dir", "/tmp")
        assert "Setting parameter failed" in refused.stdout + refused.stderr, refused
        out = launch.output()
        assert len(re.findall(r"\[visio_memoria_node-\d+\]: process started", out)) == 1, out
        assert not re.search(r"\[(camera|detector|embedding)_node-\d+\]: process started", out)
    finally:
        code = launch.stop()
        _ros2("daemon", "stop")
    assert code == 0, launch.output()[-4000:]


def test_source_end_shutdown_ends_the_one_process_launch(ros2_launch, asset_image_path,
                                                         tmp_path):
    my_yaml = _my_yaml(tmp_path, asset_image_path, loop=False)
    launch = Launch(["on_source_end:=shutdown"], my_yaml.parent)
    try:
        code = launch.proc.wait(timeout=GRAPH_TIMEOUT)
    finally:
        stopped = launch.stop()
    out = launch.output()
    assert code == stopped == 0, out[-4000:]
    assert "source ended after 3 frames; exiting (on_source_end: shutdown)" in out
    assert len(re.findall(r"\[visio_memoria_node-\d+\]: process started", out)) == 1, out
