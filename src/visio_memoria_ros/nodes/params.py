"""``VisioNode``: a node whose parameters are declared, described and validated from specs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..config import ParamSpec, validate_value
from ..config.spec import RENAMED_PARAMS, renamed_warning
from .logging_bridge import follow_ros_log_level
from .startup import NodeStartupError

#: The ROS type a parameter of each Python type is declared with.
_PARAMETER_TYPES = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
    list: Parameter.Type.STRING_ARRAY,
}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ROS descriptor of ``spec``: description, choices, range, read-only."""
    extra = ""
    if spec.choices:
        extra = f" One of: {', '.join(spec.choices)}."
    desc = ParameterDescriptor(description=spec.description + extra, read_only=spec.read_only)
    if spec.type is float and (spec.min is not None or spec.max is not None):
        desc.floating_point_range = [
            FloatingPointRange(
                from_value=float(spec.min if spec.min is not None else -math.inf),
                to_value=float(spec.max if spec.max is not None else math.inf),
                step=0.0,
            )
        ]
    elif spec.type is int and (spec.min is not None or spec.max is not None):
        desc.integer_range = [
            IntegerRange(
                from_value=int(spec.min if spec.min is not None else -(2**63)),
                to_value=int(spec.max if spec.max is not None else 2**63 - 1),
                step=1,
            )
        ]
    if spec.type is list and not spec.default:
        desc.type = ParameterType.PARAMETER_STRING_ARRAY
    return desc


class VisioNode(Node):
    """A node whose parameters come from ``ParamSpec``s: declared, described and validated."""

    def __init__(
        self,
        name: str,
        specs: Sequence[ParamSpec],
        cross_check: Callable[[dict[str, Any]], str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        follow_ros_log_level(self.get_logger())  # before any model loads and logs
        self._cross_check = cross_check
        self._specs = {s.name: s for s in specs}
        self.params: dict[str, Any] = {}
        old_names = {new: old for old, new in RENAMED_PARAMS.get(name, {}).items()}
        for spec in specs:
            default = spec.default
            if spec.name in old_names:
                given = self._read_old_name(name, old_names[spec.name], spec)
                if given is not None:
                    default = given  # the new name, when given too, overrides it
            try:
                if spec.type is list and not default:
                    value = self.declare_parameter(
                        spec.name, Parameter.Type.STRING_ARRAY, descriptor(spec)
                    ).value
                    value = list(value or [])
                else:
                    value = self.declare_parameter(
                        spec.name, default, descriptor(spec)
                    ).value
            except InvalidParameterTypeException as exc:
                raise NodeStartupError(
                    f"parameter {spec.name} must be {spec.type.__name__}"
                    + (" (a whole number needs a decimal point: 4.0)" if spec.type is float
                       else "") + f": {exc}"
                ) from exc
            problem = validate_value(spec, value)
            if problem:
                raise NodeStartupError(f"parameter {problem}")
            self.params[spec.name] = value
        problem = cross_check(dict(self.params)) if cross_check else None
        if problem:
            raise NodeStartupError(f"parameters: {problem}")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._param_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.exit_code: int | None = None

    def _read_old_name(self, node: str, old: str, spec: ParamSpec) -> Any:
        """The value given under a renamed parameter's old name (with a warning), or None.

        The old name is declared only long enough to read it, so ``ros2 param list`` shows the
        new name alone.
        """
        try:
            value = self.declare_parameter(
                old, _PARAMETER_TYPES[spec.type],
                ParameterDescriptor(description=f"deprecated: use {spec.name}"),
            ).value
        except InvalidParameterTypeException as exc:
            raise NodeStartupError(f"parameter {old} (now {spec.name}) must be "
                                   f"{spec.type.__name__}: {exc}") from exc
        self.undeclare_parameter(old)
        if value is None:
            return None
        self.get_logger().warning(renamed_warning(node, old, spec.name))
        problem = validate_value(spec, value)
        if problem:
            raise NodeStartupError(f"parameter {problem} (given as {old})")
        return value

    def request_exit(self, code: int) -> None:
        """Ask ``run_node`` to stop spinning and exit the process with ``code``."""
        if self.exit_code is None:
            self.exit_code = code

    def on_params_changed(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(changed)`` after parameters were changed at run time."""
        self._param_listeners.append(listener)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changed: dict[str, Any] = {}
        for p in params:
            spec = self._specs.get(p.name)
            if spec is None:
                continue  # use_sim_time and friends
            problem = validate_value(spec, p.value)
            if problem:
                self.get_logger().warning(f"refused parameter change: {problem}")
                return SetParametersResult(successful=False, reason=problem)
            changed[p.name] = p.value
        if changed and not self._param_listeners:
            # A node that applies nothing at run time must not answer "successful".
            problem = (f"{self.get_name()} applies no parameter at run time: "
                       f"{', '.join(changed)} would change nothing until a restart")
            self.get_logger().warning(f"refused parameter change: {problem}")
            return SetParametersResult(successful=False, reason=problem)
        if self._cross_check is not None and changed:
            problem = self._cross_check({**self.params, **changed})
            if problem:
                self.get_logger().warning(f"refused parameter change: {problem}")
                return SetParametersResult(successful=False, reason=problem)
        self.params.update(changed)
        if changed:
            self.get_logger().info(f"parameters changed: {changed}")
            for listener in self._param_listeners:
                listener(changed)
        return SetParametersResult(successful=True)

    def now_s(self) -> float:
        """Current ROS time in seconds (sim time aware)."""
        return self.get_clock().now().nanoseconds * 1e-9
