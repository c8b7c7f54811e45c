"""Overlay: identities, activities and person boxes drawn on images; marker data for rviz.

Imports only ``core`` and ``config`` of this package, never rclpy.
"""

from __future__ import annotations

from .draw import OverlayOptions, draw_overlay, tag_size, text_color
from .markers import MarkerSpec, identity_markers, marker_scale
from .text import activity_map, activity_text, ascii_text, identity_label, lookup_activity

__all__ = [
    "MarkerSpec",
    "OverlayOptions",
    "activity_map",
    "activity_text",
    "ascii_text",
    "draw_overlay",
    "identity_label",
    "identity_markers",
    "lookup_activity",
    "marker_scale",
    "tag_size",
    "text_color",
]
