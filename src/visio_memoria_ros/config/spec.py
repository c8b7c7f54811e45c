"""``ParamSpec``: one parameter's name, default, description and bounds, and YAML loading."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: How a relative model path parameter is found (``core.models.resolve_model``).
MODEL_LOOKUP = (
    "A relative path is looked up in $VISIO_MEMORIA_MODELS, ~/.local/share/visio_memoria/models "
    "($XDG_DATA_HOME), then the installed share/visio_memoria/models; never in the current "
    "directory."
)


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter. ``choices`` or ``min``/``max`` bound it; ``read_only`` after start."""

    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: Sequence[str] | None = None
    read_only: bool = False
    allow_empty: bool = True

    @property
    def type(self) -> type:
        """The Python type of the parameter, taken from its default."""
        return type(self.default)


def validate_value(spec: ParamSpec, value: Any) -> str | None:
    """Return why ``value`` is not acceptable for ``spec``, or None when it is."""
    expected = spec.type
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is list:
        if not isinstance(value, (list, tuple)):
            return f"{spec.name} must be a list, got {type(value).__name__}"
        return None
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        return f"{spec.name} must be {expected.__name__}, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{spec.name} must be finite, got {value}"
    if spec.min is not None and value < spec.min:
        return f"{spec.name}={value} is below its minimum {spec.min}"
    if spec.max is not None and value > spec.max:
        return f"{spec.name}={value} is above its maximum {spec.max}"
    if spec.choices is not None and value not in spec.choices:
        return f"{spec.name}={value!r} is not one of {list(spec.choices)}"
    if isinstance(value, str) and not spec.allow_empty and not value.strip():
        return f"{spec.name} must not be empty"
    return None


#: Marks the parameters of a node in a ROS 2 parameter file.
ROS_PARAMETERS = "ros__parameters"

#: Parameters renamed, per node: old name -> new name. The old name is still read (by the node
#: and by ``load_node_params``), with a warning, when the new one is not given; it is not
#: written to the parameter file and will go in a later release.
RENAMED_PARAMS: dict[str, dict[str, str]] = {
    "embedding_node": {"torch_num_threads": "torch_threads"},
}


def renamed_warning(node: str, old: str, new: str) -> str:
    """The one line said when a renamed parameter is used under its old name."""
    return f"{node}: parameter {old} is deprecated, use {new} (read as {new} for now)"


_NAME_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", flags=re.ASCII)


def fully_qualified_name(node: str, namespace: str = "/") -> str:
    """Return ``/<namespace>/<node>`` (``/<node>`` for the root namespace ``/`` or ``""``).

    Raises ValueError for a namespace ROS would refuse (segments are letters, digits and
    underscores, not starting with a digit).
    """
    segments = [s for s in namespace.strip().strip("/").split("/") if s] if namespace else []
    for segment in segments:
        if not _NAME_SEGMENT.fullmatch(segment):
            raise ValueError(f"invalid ROS namespace {namespace!r}: {segment!r} must be letters, "
                             "digits and '_', not starting with a digit")
    return "".join(f"/{s}" for s in segments) + f"/{node}"


def key_matches(key: str, node_fqn: str) -> bool:
    """True when a parameter-file node key applies to the node named ``node_fqn``.

    The rules of rclpy and rclcpp (``parameter_map_from``): a key without a leading ``/`` gets
    one; ``/*`` stands for one namespace segment or name and ``/**`` for any number of them, so
    ``/**`` matches every node, ``/**/camera_node`` a camera_node in any namespace,
    ``/*/camera_node`` one in a one-level namespace, and ``camera_node`` only ``/camera_node``.
    """
    name = key if key.startswith("/") else "/" + key
    pattern = name.replace("/*", r"(/\w+)")
    try:
        return re.fullmatch(pattern, node_fqn, flags=re.ASCII) is not None
    except re.error as exc:
        raise ValueError(f"parameter file key {key!r} is not a valid node name: {exc}") from exc


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameter maps become dotted names (``a: {b: 1}`` is ``a.b``), as in ROS."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        full = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, full + "."))
        else:
            out[full] = value
    return out


def parameter_sections(doc: Any, source: str = "parameter file") -> dict[str, dict[str, Any]]:
    """Return ``{node key: {parameter: value}}`` of a parsed ROS 2 parameter file, in file order.

    Namespaces may be nested maps (``robot1: {camera_node: {ros__parameters: ...}}`` is the key
    ``robot1/camera_node``). A key seen twice keeps its first place and merges the parameters,
    as the ROS parser does. Raises ValueError for a file that is not a parameter file.
    """
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ValueError(f"{source}: expected node names at the top level, got "
                         f"{type(doc).__name__}")
    sections: dict[str, dict[str, Any]] = {}

    def walk(mapping: Mapping[Any, Any], prefix: str) -> None:
        for raw_key, body in mapping.items():
            key = str(raw_key)
            if key == ROS_PARAMETERS:
                if not prefix:
                    raise ValueError(f"{source}: {ROS_PARAMETERS} outside any node name")
                if not isinstance(body, Mapping):
                    raise ValueError(f"{source}: {prefix}: {ROS_PARAMETERS} must be a map")
                sections.setdefault(prefix, {}).update(_flatten(body))
                continue
            if not isinstance(body, Mapping):
                raise ValueError(f"{source}: {prefix + '/' if prefix else ''}{key} must hold "
                                 f"{ROS_PARAMETERS} (or nested node names), got "
                                 f"{type(body).__name__}")
            walk(body, f"{prefix}/{key}" if prefix else key)

    walk(doc, "")
    return sections


def _names_this_node(key: str, node: str) -> bool:
    """True when a key ends in the node's name (not ``*``/``**``): its values are all for it."""
    return key.rstrip("/").rsplit("/", 1)[-1] == node


def load_node_params(
    node: str,
    specs: Sequence[ParamSpec],
    yaml_path: str | Path | None = None,
    *,
    namespace: str = "/",
) -> dict[str, Any]:
    """Return ``{name: value}`` for ``node``: spec defaults overridden by the YAML file's values.

    The file is read as the node itself reads it when started in ``namespace`` with
    ``--params-file`` (see ``key_matches``). Raises ValueError naming the parameter when a
    section meant for this node holds an unknown parameter, or any matching section an invalid
    value; parameters of other nodes in wildcard sections (``/**``) are left alone, as ROS does.
    """
    values = {s.name: s.default for s in specs}
    if yaml_path is None:
        return values
    with open(yaml_path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    fqn = fully_qualified_name(node, namespace)
    by_name = {s.name: s for s in specs}
    renamed = RENAMED_PARAMS.get(node, {})
    given: set[str] = set()
    old_values: dict[str, Any] = {}
    for key, params in parameter_sections(doc, str(yaml_path)).items():
        if not key_matches(key, fqn):
            continue
        for name, value in params.items():
            if name in renamed and renamed[name] in by_name:
                logging.getLogger(__name__).warning(renamed_warning(node, name, renamed[name]))
                old_values[renamed[name]] = (value, key)
                continue
            given.add(name)
            spec = by_name.get(name)
            if spec is None:
                if _names_this_node(key, node) and not key_is_shared(name):
                    raise ValueError(f"{yaml_path}: {node} has no parameter {name!r} "
                                     f"(section {key})")
                continue
            if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
                # rclpy refuses an integer for a double parameter: the node would not start.
                raise ValueError(f"{yaml_path}: {name} must be float, got int {value} (ROS "
                                 f"reads it as an integer: write {float(value)}) (section {key})")
            problem = validate_value(spec, value)
            if problem:
                raise ValueError(f"{yaml_path}: {problem} (section {key})")
            values[name] = float(value) if spec.type is float else value
    for name, (value, key) in old_values.items():
        if name in given:
            continue  # the new name wins wherever it is given
        spec = by_name[name]
        problem = validate_value(spec, value)
        if problem:
            raise ValueError(f"{yaml_path}: {problem} (given under its old name, section {key})")
        values[name] = float(value) if spec.type is float else value
    return values


def key_is_shared(name: str) -> bool:
    """True for parameters every ROS node has (``use_sim_time``), which specs need not list."""
    return name in {"use_sim_time"}
