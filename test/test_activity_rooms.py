"""Room rules: activity/ and overlay/ import only core/ and config/ of ours, never rclpy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "visio_memoria_ros"
ALLOWED = {"core", "config"}


@pytest.mark.parametrize("room", ["activity", "overlay"])
def test_room_imports_only_core_and_config(room: str):
    for path in sorted((PKG / room).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:  # inside the room
                    continue
                if node.level == 2:  # a sibling room
                    sibling = (node.module or "").split(".")[0]
                    assert sibling in ALLOWED, f"{path.name} imports ..{node.module}"
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in {"rclpy", "visio_memoria", "torch", "transformers"}, (
                    f"{path.name} imports {name}"
                )
                if top == "visio_memoria_ros":
                    assert name.split(".")[1] in ALLOWED, f"{path.name} imports {name}"


def test_importing_the_rooms_loads_no_heavy_or_ros_modules():
    code = (
        "import sys, visio_memoria_ros.activity, visio_memoria_ros.overlay\n"
        "bad = [m for m in ('rclpy', 'torch', 'sklearn', 'visio_memoria_ros.embedding') "
        "if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(PKG.parent), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "", f"loaded at import: {result.stdout}"
