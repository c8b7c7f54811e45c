"""camera_node over DDS: stamped frames from an image list; clear failures for bad sources."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.dds

from sensor_msgs.msg import Image  # noqa: E402

from visio_memoria_ros.nodes.common import SENSOR_QOS  # noqa: E402


@pytest.fixture
def frames(tmp_path):
    paths = []
    for i in range(3):
        img = np.full((48, 64, 3), 40 * (i + 1), np.uint8)
        path = tmp_path / f"f{i}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


def test_publishes_stamped_frames_with_frame_id(ros, launch, frames):
    received = ros.collect(Image, "image_raw", SENSOR_QOS)
    cam = launch(
        "camera_node",
        params={
            "source": str(frames[0].parent),
            "rate": 20.0,
            "loop": True,
            "frame_id": "head_cam",
        },
    )
    ros.spin_until(lambda: len(received) >= 4, 30, "4 frames", [cam])
    msg = received[0]
    assert msg.header.frame_id == "head_cam"
    assert msg.encoding == "bgr8" and (msg.width, msg.height) == (64, 48)
    assert msg.header.stamp.sec > 0
    values = {int(np.frombuffer(m.data, np.uint8)[0]) for m in received}
    assert values <= {40, 80, 120} and len(values) >= 2  # the images, in a loop
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in received]
    assert stamps == sorted(stamps)


def test_ends_cleanly_at_the_end_of_a_list(launch, frames):
    cam = launch(
        "camera_node", params={"source": ",".join(map(str, frames)), "rate": 30.0, "loop": False}
    )
    assert cam.wait(timeout=30) == 0
    assert "end of" in cam.output()


@pytest.mark.parametrize("source", ["/nonexistent/video.mp4", "/dev/video99"])
def test_missing_source_is_one_clear_error_and_nonzero_exit(launch, source):
    cam = launch("camera_node", params={"source": source})
    assert cam.wait(timeout=30) != 0
    out = cam.output()
    assert "cannot start" in out and source in out
    assert "Traceback" not in out
