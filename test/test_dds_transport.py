"""Camera-sized images cross process boundaries on sensor-data QoS without loss.

Fast DDS's default shared-memory segment (512 KB) is smaller than one 640x480 rgb8 image; such
samples then go as fragmented UDP and, best-effort, most are lost (3 of 100 arrived here at
10 Hz). ``config/fastdds.xml`` enlarges the segment, and every process gets it through
``FASTDDS_DEFAULT_PROFILES_FILE`` (launch file, ``scripts/env.sh``, ``node_env``, conftest).
"""

from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import REPO

from visio_memoria_ros.nodes.processes import (
    DDS_PROFILE_VARS,
    dds_profile_var,
    node_env,
    use_dds_profile,
)

PROFILE = REPO / "config" / "fastdds.xml"
NS = {"dds": "http://www.eprosima.com"}


def test_profile_enlarges_the_shared_memory_segment_and_keeps_udp():
    root = ET.parse(PROFILE).getroot()
    transports = {
        t.findtext("dds:transport_id", namespaces=NS): t
        for t in root.iterfind(".//dds:transport_descriptor", NS)
    }
    types = {t.findtext("dds:type", namespaces=NS) for t in transports.values()}
    assert types == {"SHM", "UDPv4"}
    shm = next(t for t in transports.values() if t.findtext("dds:type", namespaces=NS) == "SHM")
    assert int(shm.findtext("dds:segment_size", namespaces=NS)) >= 8 * 1280 * 720 * 3 // 2
    participant = root.find(".//dds:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [e.text for e in participant.iterfind(".//dds:userTransports/dds:transport_id", NS)]
    assert sorted(used) == sorted(transports)


def test_node_env_points_at_the_profile_unless_the_user_chose_one(monkeypatch):
    for var in DDS_PROFILE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("ROS_DISTRO", raising=False)
    env = node_env()
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("config/fastdds.xml")
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in env  # deprecated name: a warning on Kilted
    humble = use_dds_profile({"ROS_DISTRO": "humble"})
    assert humble["FASTRTPS_DEFAULT_PROFILES_FILE"] == env["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert dds_profile_var({"ROS_DISTRO": "jazzy"}) == "FASTDDS_DEFAULT_PROFILES_FILE"
    mine = {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/my_dds.xml"}
    assert use_dds_profile(dict(mine)) == mine  # the user's own profile is left alone


def test_launch_file_gives_every_node_the_profile():
    text = (REPO / "launch" / "bringup.launch.py").read_text(encoding="utf-8")
    assert '"dds_profile"' in text and '"config", "fastdds.xml"' in text
    assert "SetEnvironmentVariable(dds_profile_var" in text
    for var in DDS_PROFILE_VARS:
        assert f'"{var}"' in text


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720)])
def test_camera_images_reach_another_process(ros, launch, width, height):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    sink = launch([sys.executable, str(REPO / "test" / "image_sink.py")], name="image_sink")
    acks = ros.collect(Header, "sink/received", 100)
    pub = ros.node.create_publisher(Image, "image_raw", qos_profile_sensor_data)
    ros.wait_for_subscribers(pub, 1, 30, [sink])
    ros.spin_until(lambda: ros.node.count_publishers("sink/received") >= 1, 30, "sink", [sink])
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8).tobytes()

    def image(frame_id: str) -> Image:
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels)
        msg.header.frame_id = frame_id
        return msg

    # Warm up until one acknowledgement is back: both directions are matched, so what the
    # measurement loses is the images, not a reply sent before discovery completed.
    deadline = time.monotonic() + 30
    while not acks and time.monotonic() < deadline:
        pub.publish(image("-1"))
        for _ in range(10):
            ros.executor.spin_once(timeout_sec=0.05)
    assert acks, f"the image sink never acknowledged:\n{sink.output()[-2000:]}"
    acks.clear()
    sent, rate = 40, 10.0
    start = time.monotonic()
    for i in range(sent):
        pub.publish(image(str(i)))
        ros.spin_until(lambda i=i: time.monotonic() >= start + (i + 1) / rate, 5, "next frame")
    deadline = time.monotonic() + 5
    while len(acks) < sent and time.monotonic() < deadline:
        ros.executor.spin_once(timeout_sec=0.05)
    received = {int(h.frame_id) for h in acks} - {-1}
    assert len(received) >= sent - 2, f"only {len(received)} of {sent} images arrived"
