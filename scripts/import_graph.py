#!/usr/bin/env python3
"""Which room of ``visio_memoria_ros`` imports which, and whether the layering holds.

    python scripts/import_graph.py            # the graph, then any violation; exit 1 if any

A room is a sub-package (``core``, ``perception``, ...) or a top-level module (``pipeline``,
``export``, ``cli``) of ``src/visio_memoria_ros``. Every import counts, including the ones
inside functions (they load lazily but are still dependencies). The rules (README,
"Architecture"):

- only ``nodes`` imports rclpy or the generated interfaces (``visio_memoria.msg``/``.srv``);
- no room imports ``nodes`` (the CLI and the labelling page are front doors of their own);
- ``core`` imports no other room; ``config`` only ``core``;
- the domain rooms (perception, embedding, identity, memory, activity, overlay) import only
  ``core`` and ``config``; ``pipeline``, ``export``, ``cli`` and ``ui`` combine them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "visio_memoria_ros"
ROOT = Path(__file__).resolve().parent.parent / "src" / PACKAGE
ROS = ("rclpy", "visio_memoria")  # the generated interfaces own the name visio_memoria
DOMAIN = ("perception", "embedding", "identity", "memory", "activity", "overlay")
ALLOWED: dict[str, set[str]] = {
    "core": set(), "config": {"core"}, **{room: {"core", "config"} for room in DOMAIN}}


def room_of(path: Path, root: Path) -> str:
    """The room a source file belongs to (``__init__`` for the package's own __init__.py)."""
    first = path.relative_to(root).parts[0]
    return first[:-3] if first.endswith(".py") else first


def imported_modules(path: Path, root: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = [PACKAGE, *path.relative_to(root).parent.parts]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            if not node.module:  # from . import x: x may be a room
                names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def build_graph(root: Path = ROOT) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({room: rooms it imports}, {room: files of it importing ROS})."""
    graph: dict[str, set[str]] = {}
    ros: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        room = room_of(path, root)
        graph.setdefault(room, set())
        for name in imported_modules(path, root):
            parts = name.split(".")
            if parts[0] == PACKAGE and len(parts) > 1 and parts[1] != room:
                graph[room].add(parts[1])
            elif parts[0] in ROS:
                ros.setdefault(room, set()).add(str(path.relative_to(root)))
    for targets in graph.values():
        targets.discard("__version__")  # from . import __version__ is the package itself
        targets.intersection_update(graph)
    return graph, ros


def violations(graph: dict[str, set[str]], ros: dict[str, set[str]]) -> list[str]:
    """One line per broken layering rule."""
    found = [f"{room} imports ROS ({', '.join(sorted(files))}); only nodes may"
             for room, files in sorted(ros.items()) if room != "nodes"]
    for room, targets in sorted(graph.items()):
        if room != "nodes" and "nodes" in targets:
            found.append(f"{room} imports nodes; nothing below the nodes may")
        extra = targets - ALLOWED[room] if room in ALLOWED else set()
        if extra:
            allowed = ", ".join(sorted(ALLOWED[room])) or "nothing"
            found.append(f"{room} imports {', '.join(sorted(extra))}; it may import only "
                         f"{allowed}")
    return found


def main(root: Path = ROOT) -> int:
    """Print the graph and the violations; 1 when the layering is broken."""
    graph, ros = build_graph(root)
    width = max(map(len, graph))
    for room, targets in sorted(graph.items()):
        ros_mark = "  [rclpy/msgs]" if room in ros else ""
        print(f"{room:<{width}} -> {', '.join(sorted(targets)) or '-'}{ros_mark}")
    problems = violations(graph, ros)
    print("\n".join(f"VIOLATION: {p}" for p in problems) or "layering ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT))
