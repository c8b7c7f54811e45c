"""Fill any ROS message with non-default values in every field, recursively and reproducibly."""

from __future__ import annotations

import importlib
import re
from typing import Any

_INT = {
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "octet",
    "char",
    "byte",
}
_FLOAT = {"float", "double"}


def _message_class(type_name: str) -> Any:
    pkg, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def _scalar(base: str, seed: int) -> Any:
    if base in _INT:
        limit = 100 if base in ("int8", "uint8", "octet", "char", "byte") else 10_000
        return seed % limit + 1
    if base in _FLOAT:
        return float(seed % 97) + 0.25
    if base == "boolean":
        return True
    if base in ("string", "wstring") or base.startswith(("string<", "wstring<")):
        return f"v{seed}-é"
    return fill(_message_class(base)(), seed)


def _value(type_str: str, seed: int) -> Any:
    m = re.fullmatch(r"sequence<([^,>]+)(?:, ?\d+)?>", type_str)
    if m:
        return [_scalar(m.group(1), seed + i) for i in range(2)]
    m = re.fullmatch(r"(.+)\[(\d+)\]", type_str)
    if m:
        return [_scalar(m.group(1), seed + i) for i in range(int(m.group(2)))]
    return _scalar(type_str, seed)


def fill(msg: Any, seed: int = 1) -> Any:
    """Set every field of ``msg`` to a non-default value derived from ``seed``; return it."""
    for i, (name, type_str) in enumerate(msg.get_fields_and_field_types().items()):
        setattr(msg, name, _value(type_str, seed * 31 + i))
    return msg
