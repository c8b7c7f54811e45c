"""``ParamSpec``: one parameter's name, default, description and bounds, and YAML loading."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


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


def load_node_params(
    node: str, specs: Sequence[ParamSpec], yaml_path: str | Path | None = None
) -> dict[str, Any]:
    """Return ``{name: value}`` for ``node``: spec defaults overridden by the YAML file's values.

    Raises ValueError naming the parameter when the YAML holds an unknown or invalid value.
    """
    values = {s.name: s.default for s in specs}
    if yaml_path is None:
        return values
    with open(yaml_path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    section = {}
    for key, body in doc.items():
        if key.strip("/").split("/")[-1] == node or key in ("/**", "**"):
            section.update((body or {}).get("ros__parameters", {}) or {})
    by_name = {s.name: s for s in specs}
    for name, value in section.items():
        if name not in by_name:
            if key_is_shared(name):
                continue
            raise ValueError(f"{yaml_path}: {node} has no parameter {name!r}")
        problem = validate_value(by_name[name], value)
        if problem:
            raise ValueError(f"{yaml_path}: {problem}")
        values[name] = float(value) if by_name[name].type is float else value
    return values


def key_is_shared(name: str) -> bool:
    """True for parameters every ROS node has (``use_sim_time``), which specs need not list."""
    return name in {"use_sim_time"}
