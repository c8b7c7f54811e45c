"""Parameter specifications of every node, importable without ROS.

Each node's parameters are declared once here (name, default, description, bounds); the ROS
nodes declare them from these specs with descriptors and validation, the CLI reads the same
defaults, and the tests check ``config/visio_memoria.yaml`` against them.
"""

from __future__ import annotations

from .spec import (
    ParamSpec,
    fully_qualified_name,
    key_matches,
    load_node_params,
    parameter_sections,
    validate_value,
)

__all__ = [
    "NODE_PARAMS",
    "ParamSpec",
    "fully_qualified_name",
    "key_matches",
    "load_node_params",
    "parameter_sections",
    "validate_value",
]


def _registry() -> dict[str, list[ParamSpec]]:
    from . import activity, camera, detector, embedding, identity, memory, overlay

    return {
        "camera_node": camera.PARAMS,
        "detector_node": detector.PARAMS,
        "embedding_node": embedding.PARAMS,
        "identity_node": identity.PARAMS,
        "memory_node": memory.PARAMS,
        "activity_node": activity.PARAMS,
        "overlay_node": overlay.PARAMS,
    }


NODE_PARAMS: dict[str, list[ParamSpec]] = _registry()
