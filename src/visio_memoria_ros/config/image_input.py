"""Camera-image input parameters shared by detector_node and overlay_node."""

from __future__ import annotations

from .spec import ParamSpec

PARAMS: list[ParamSpec] = [
    ParamSpec(
        "image_transport",
        "raw",
        "How camera images arrive, as image_transport names it: 'raw' = sensor_msgs/Image on "
        "image_raw; 'compressed' = sensor_msgs/CompressedImage (jpeg or png) on "
        "<image_raw>/compressed, where image_raw is first resolved with the namespace and "
        "remappings (image_raw:=/camera/image reads /camera/image/compressed).",
        choices=("raw", "compressed"),
        read_only=True,
    ),
    ParamSpec(
        "image_reliability",
        "best_effort",
        "QoS reliability of the image subscription: 'best_effort' (sensor data; receives from "
        "best-effort and reliable publishers alike) or 'reliable' (a reliable publisher resends "
        "lost fragments, fewer frames lost on a lossy link; receives nothing from a "
        "best-effort publisher).",
        choices=("best_effort", "reliable"),
        read_only=True,
    ),
]
