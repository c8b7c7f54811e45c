#!/usr/bin/env python3
"""Write config/visio_memoria.yaml from the parameter specs (descriptions become comments).

python scripts/gen_params_yaml.py            # rewrite the file
python scripts/gen_params_yaml.py --check    # exit 1 when the file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from visio_memoria_ros.config import NODE_PARAMS, ParamSpec, shared  # noqa: E402
from visio_memoria_ros.config.spec import RENAMED_PARAMS  # noqa: E402

HEADER = """\
# visio_memoria: every parameter of every node, with its default and what it does.
# Pass another copy with `ros2 launch visio_memoria bringup.launch.py params_file:=my.yaml`;
# the CLI reads the same file with `visio-memoria --config my.yaml ...`.
# Keys are `/**/<node>:`, so the file applies in any namespace (`namespace:=robot1`). To give
# one robot its own value, add a section for it after these, e.g. `/robot1/memory_node:`
# (a later section overrides an earlier one; the CLI takes `--namespace robot1` to read it).
# The first section, `/**/*:`, holds the parameters several nodes share (one value for all of
# them; a node that does not declare one ignores it): change them there. A node's own section
# overrides it for that node. (Not `/**:`: rcl merges `-p name:=value` and launch's parameter
# dicts into a `/**` section, and the node sections after it would then override them.)
# Parameters marked [read-only] take effect at start; the others can be changed at run time
# with `ros2 param set /<node> <name> <value>` and are validated (a bad value is refused).
# Generated from src/visio_memoria_ros/config/*.py by scripts/gen_params_yaml.py; keep the two
# in step (the tests check it).
"""


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str, list)):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"unsupported parameter type {type(value).__name__}")


def node_key(node: str) -> str:
    """The section key of ``node``: matches the node in every namespace (``/**/<node>``)."""
    return f"/**/{node}"


#: The section of the parameters every node that declares them reads (``config/shared.py``).
SHARED_KEY = "/**/*"


def _entry(spec: ParamSpec, nodes: list[str] | None = None, old: str = "") -> list[str]:
    desc = spec.description
    if old:
        desc += f" Formerly {old} (still read, with a warning)."
    bounds = []
    if nodes:
        bounds.append("read by " + ", ".join(nodes))
    if spec.min is not None or spec.max is not None:
        bounds.append(f"range [{spec.min}, {spec.max}]")
    if spec.choices:
        bounds.append("one of: " + ", ".join(spec.choices))
    if spec.read_only:
        bounds.append("read-only")
    if bounds:
        desc += " [" + "; ".join(bounds) + "]"
    lines = [f"    # {line}\n" for line in textwrap.wrap(desc, width=92)]
    return [*lines, f"    {spec.name}: {_literal(spec.default)}\n"]


def render() -> str:
    """The YAML text for the current specs: the shared section, then one section per node."""
    out = [HEADER, f"{SHARED_KEY}:\n  ros__parameters:\n"]
    shared_names = {s.name for s in shared.PARAMS}
    for spec in shared.PARAMS:
        readers = [node for node, specs in NODE_PARAMS.items() if spec in specs]
        out += _entry(spec, readers)
    out.append("\n")
    for node, specs in NODE_PARAMS.items():
        out.append(f"{node_key(node)}:\n  ros__parameters:\n")
        old_names = {new: old for old, new in RENAMED_PARAMS.get(node, {}).items()}
        for spec in specs:
            if spec.name not in shared_names:
                out += _entry(spec, old=old_names.get(spec.name, ""))
        out.append("\n")
    return "".join(out).rstrip() + "\n"


def main() -> int:
    """Write or check the file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--path", type=Path, default=ROOT / "config" / "visio_memoria.yaml")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run python scripts/gen_params_yaml.py")
            return 1
        return 0
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
