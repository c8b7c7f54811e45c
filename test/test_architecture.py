"""The rooms' layering, checked by ``scripts/import_graph.py`` (its docstring has the rules).

Only ``nodes`` imports rclpy; nothing imports ``nodes``; the domain rooms import only ``core``
and ``config``. The checker itself is tested on a small tree that breaks each rule.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SCRIPT = REPO / "scripts" / "import_graph.py"
_spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
assert _spec is not None and _spec.loader is not None
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)

LOWER = ("core", "perception", "embedding", "identity", "memory")


def test_script_passes_on_this_tree() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("layering ok")
    assert "cli " in proc.stdout and "nodes " in proc.stdout  # the graph is printed


def test_only_nodes_import_ros() -> None:
    _, ros = import_graph.build_graph()
    assert "nodes" in ros  # the check sees rclpy where it is
    assert set(ros) == {"nodes"}, ros


def test_lower_rooms_never_import_nodes_or_cli() -> None:
    graph, _ = import_graph.build_graph()
    assert {"cli", "nodes", *LOWER} <= set(graph)
    for room in LOWER:
        assert not graph[room] & {"nodes", "cli"}, (room, graph[room])
    assert "nodes" not in graph["cli"] and "nodes" not in graph["ui"]


def _tree(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "visio_memoria_ros"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_checker_flags_each_broken_rule(tmp_path: Path) -> None:
    pkg = _tree(tmp_path, {
        "__init__.py": "",
        "core/__init__.py": "",
        "config/__init__.py": "from ..core import x\n",
        "nodes/__init__.py": "import rclpy\n",
        "cli/__init__.py": "def main():\n    from ..nodes import demo\n",
        "memory/__init__.py": "from visio_memoria.msg import Face\n",
        "identity/engine.py": "from ..memory import store\nfrom .. import nodes\n",
        "pipeline.py": "from .perception import faces\n",
        "perception/__init__.py": "from visio_memoria_ros.core import types\n",
    })
    graph, ros = import_graph.build_graph(pkg)
    assert graph["identity"] == {"memory", "nodes"}
    assert graph["cli"] == {"nodes"} and graph["pipeline"] == {"perception"}
    assert graph["perception"] == {"core"} and graph["config"] == {"core"}
    assert set(ros) == {"nodes", "memory"}
    found = import_graph.violations(graph, ros)
    assert any(v.startswith("memory imports ROS") for v in found), found
    assert any(v.startswith("cli imports nodes") for v in found), found
    assert any(v.startswith("identity imports nodes") for v in found), found
    assert any(v.startswith("identity imports memory") for v in found), found
    assert len(found) == 4, found
    assert import_graph.main(pkg) == 1
