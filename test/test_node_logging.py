"""The library rooms' log lines follow the node's ROS log level.

camera_node's frame source (``core.sources``, a library room that only uses ``logging``) logs
``opened images '<folder>'`` at DEBUG when it opens. Started with ``--ros-args --log-level
debug`` (what launch's ``log_level:=debug`` passes), or with the node's own logger at debug,
the line is in the node's output; at the default level it is not.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.dds

#: camera_node's own start-up line (INFO), written after the source was opened.
STARTED = "as frame_id"


def _started_output(proc, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = proc.output()
        if STARTED in out:
            return out
        assert proc.alive(), f"camera_node exited:\n{out[-3000:]}"
        time.sleep(0.1)
    raise AssertionError(f"camera_node did not start in {timeout:.0f} s:\n{proc.output()[-3000:]}")


@pytest.fixture
def folder(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((32, 32, 3), 60 * (i + 1), np.uint8))
    return frames


@pytest.mark.parametrize(
    ("log_level", "shown"),
    [(None, False), ("info", False), ("debug", True), ("camera_node:=debug", True)],
)
def test_library_debug_lines_follow_the_node_log_level(launch, folder, log_level, shown):
    cam = launch("camera_node", params={"source": str(folder), "rate": 5.0},
                 log_level=log_level)
    out = _started_output(cam)
    line = f"[visio_memoria_ros.core.sources]: opened images {str(folder)!r}"
    assert (line in out) is shown, out[-3000:]
    if shown:
        debug_line = next(x for x in out.splitlines() if line in x)
        assert debug_line.startswith("[DEBUG]"), debug_line
    # The node's own INFO line is there at every level: the output was read, not lost.
    assert "[INFO]" in out and "[camera_node]" in out
