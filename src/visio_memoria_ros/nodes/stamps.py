"""builtin_interfaces/Time <-> seconds."""

from __future__ import annotations

import math
from typing import Any


def stamp_to_s(stamp: Any) -> float:
    """builtin_interfaces/Time -> seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def s_to_stamp(seconds: float) -> Any:
    """Seconds -> builtin_interfaces/Time."""
    from builtin_interfaces.msg import Time

    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=round((seconds - sec) * 1e9) % 1_000_000_000)
