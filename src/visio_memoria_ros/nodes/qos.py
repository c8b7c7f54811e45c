"""The QoS profiles of the graph's topics, chosen per kind of data."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

#: Camera images and overlays: best effort, keep the last few (a late frame is a useless frame).
SENSOR_QOS = qos_profile_sensor_data
#: Perception, identities, activities: every message matters to the memory.
RELIABLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
)
#: State a late joiner needs (memory revisions): reliable and latched.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
