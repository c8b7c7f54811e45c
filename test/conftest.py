"""Shared fixtures. DDS discovery is pinned to this machine before anything can start ROS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from memory_backends import (  # noqa: F401 - fixtures: both memory backends, a real PostgreSQL
    backend,
    make_store,
    memory_location,
    pg_database,
    pg_server,
    pg_url,
)

from visio_memoria_ros.nodes.processes import use_dds_profile

REPO = Path(__file__).resolve().parents[1]
BBT_DIR = Path(os.environ.get("VISIO_MEMORIA_BBT", REPO.parent / "shared" / "eval" / "bbt"))

# Never let a test process (or a node it starts) multicast discovery onto the network.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
# Camera-sized images between processes need the shipped Fast DDS profile (config/fastdds.xml).
use_dds_profile(os.environ)
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def bbt_dir() -> Path:
    """The BBT evaluation set (8 identities x 5 crops, 5 group photos); skips when absent."""
    if not (BBT_DIR / "labels.json").is_file():
        pytest.skip(f"BBT evaluation set not found at {BBT_DIR} (set VISIO_MEMORIA_BBT)")
    return BBT_DIR


@pytest.fixture(scope="session")
def asset_image_path() -> Path:
    """A real photo with people that ships inside an installed package (ultralytics)."""
    try:
        from ultralytics.utils import ASSETS
    except ImportError:
        pytest.skip("ultralytics is not installed")
    path = Path(ASSETS) / "zidane.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is missing from the ultralytics install")
    return path


@pytest.fixture
def ros():
    """The test's own rclpy node (own context), shut down after the test."""
    pytest.importorskip("rclpy")
    from ros_harness import RosTestNode

    node = RosTestNode()
    yield node
    node.close()


@pytest.fixture
def launch(tmp_path):
    """Start node processes: ``launch("detector_node", params={...})``; all stopped at teardown.

    On a failing test the logs of every process are printed (pytest shows captured output).
    """
    from ros_harness import NodeProcess

    started: list[NodeProcess] = []

    def _start(executable, **kwargs) -> NodeProcess:
        proc = NodeProcess(executable, tmp_path, **kwargs)
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        proc.stop()
    for proc in started:
        print(f"--- {proc.name} (exit {proc.proc.returncode}) log:\n{proc.output()[-3000:]}")
