"""Embedding room: face identity embedders (dlib's ResNet in torch or dlib's C++, DINOv3,
ONNX), DINOv3 scene features and the per-track embed policy. Imports only ``core`` and
``config``; never rclpy.

Heavy modules (torch, dlib, OpenCV DNN) load on first use of the class that needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .base import FaceEmbedder
from .factory import (
    EmbeddingStack,
    build_embed_policy,
    build_embedding_stack,
    build_face_embedder,
    build_scene_embedder,
)
from .policy import EmbedDecision, EmbedPolicy, EmbedPolicyConfig

_LAZY = {
    "DinoV3Embedder": ".dinov3",
    "SceneFeatures": ".dinov3",
    "combine_scene": ".dinov3",
    "DlibFaceChipper": ".dlib_face",
    "DlibFaceEmbedder": ".dlib_face",
    "DlibTorchFaceEmbedder": ".dlib_torch",
    "DlibLandmarker": ".dlib_face",
    "landmarks_from_dlib5": ".dlib_face",
    "OnnxFaceEmbedder": ".onnx_face",
}


def __getattr__(name: str) -> Any:
    """Import heavy embedder classes on first access."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DinoV3Embedder",
    "DlibFaceChipper",
    "DlibFaceEmbedder",
    "DlibLandmarker",
    "DlibTorchFaceEmbedder",
    "EmbedDecision",
    "EmbedPolicy",
    "EmbedPolicyConfig",
    "EmbeddingStack",
    "FaceEmbedder",
    "OnnxFaceEmbedder",
    "SceneFeatures",
    "build_embed_policy",
    "build_embedding_stack",
    "build_face_embedder",
    "build_scene_embedder",
    "combine_scene",
    "landmarks_from_dlib5",
]
