"""Build embedders from node/CLI parameters (names as in ``config.embedding.PARAMS``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.models import resolve_model
from .base import FaceEmbedder
from .policy import EmbedPolicy, EmbedPolicyConfig

LOG = logging.getLogger(__name__)

#: ``dlib`` = dlib's ResNet run by the PyTorch port (batched, threads, CUDA), or by dlib's C++
#: when torch cannot run it (not installed, jitters asked, an unknown .dat); ``dlib_torch`` /
#: ``dlib_cpp`` force one engine. All three give the same vectors and id (dlib_resnet_v1_128).
FACE_EMBEDDERS = ("dlib", "dlib_torch", "dlib_cpp", "dinov3", "onnx")
SCENE_EMBEDDERS = ("auto", "dinov3", "none")
DINOV3_SOURCES = ("pretrained_dir", "hub")


def _opt_path(value: Any) -> str | None:
    """None for an empty path parameter, else the string."""
    text = str(value or "").strip()
    return text or None


def _dlib_path(params: Mapping[str, Any], name: str) -> str | None:
    """A dlib model path parameter, resolved in the model folders; None = the packaged copy."""
    path = _opt_path(params.get(name))
    return None if path is None else str(resolve_model(path, f"dlib model ({name})"))


def build_dinov3(
    *,
    dinov3_source: str = "pretrained_dir",
    dinov3_model_dir: str = "",
    dinov3_hub_repo_dir: str = "",
    dinov3_hub_weights: str = "",
    dinov3_hub_arch: str = "dinov3_vitb16",
    device: str = "cpu",
    face_resolution: int = 112,
    scene_resolution: int = 224,
    max_batch: int = 16,
    precision: str = "fp32",
    **_: Any,
) -> Any:
    """Load the DINOv3 embedder from a transformers directory or a local torch.hub repo."""
    from .dinov3 import DinoV3Embedder

    common = dict(
        device=device,
        face_resolution=int(face_resolution),
        scene_resolution=int(scene_resolution),
        max_batch=int(max_batch),
        precision=str(precision or "fp32"),
    )
    if dinov3_source == "pretrained_dir":
        if not _opt_path(dinov3_model_dir):
            raise FileNotFoundError("dinov3_model_dir is empty; see models/README.md")
        model_dir = resolve_model(dinov3_model_dir, "DINOv3 model folder (dinov3_model_dir)",
                                  kind="dir", marker="config.json")
        return DinoV3Embedder.from_pretrained_dir(model_dir, **common)
    if dinov3_source == "hub":
        if not (_opt_path(dinov3_hub_repo_dir) and _opt_path(dinov3_hub_weights)):
            raise FileNotFoundError(
                "dinov3_hub_repo_dir and dinov3_hub_weights must both be set; see models/README.md"
            )
        repo = resolve_model(dinov3_hub_repo_dir, "DINOv3 repository (dinov3_hub_repo_dir)",
                             kind="dir", marker="hubconf.py")
        weights = resolve_model(dinov3_hub_weights, "DINOv3 weights (dinov3_hub_weights)")
        return DinoV3Embedder.from_hub_repo(repo, weights, arch=dinov3_hub_arch, **common)
    raise ValueError(f"unknown dinov3_source {dinov3_source!r}; choose one of {DINOV3_SOURCES}")


def tolerant_embed_fn(embedder: FaceEmbedder, on_batch: Any = None) -> Any:
    """Return ``fn(crops) -> list[vector | None]`` for re-embedding stored crops.

    Crops not of the canonical size are resized; a crop the embedder refuses gives None (the
    store keeps that face's old vector) instead of failing the whole batch. ``on_batch(n)`` is
    called after each batch (progress bars).
    """
    import cv2

    from ..core.face_crop import CANONICAL_SIZE

    size = (CANONICAL_SIZE, CANONICAL_SIZE)

    def embed(crops: list[Any]) -> list[Any]:
        ready = [c if c.shape[:2] == size else cv2.resize(c, size) for c in crops]
        try:
            out: list[Any] = list(embedder.embed(ready))
        except ValueError:
            out = []
            for crop in ready:
                try:
                    out.append(embedder.embed([crop])[0])
                except ValueError as exc:
                    LOG.warning("a stored crop cannot be embedded: %s", exc)
                    out.append(None)
        if on_batch is not None:
            on_batch(len(crops))
        return out

    return embed


def build_dlib_cpp(**params: Any) -> FaceEmbedder:
    """dlib's ResNet run by dlib's own C++ (``face_recognition_model_v1``)."""
    from .dlib_face import DlibFaceEmbedder

    return DlibFaceEmbedder(
        recognition_model_path=_dlib_path(params, "dlib_recognition_model_path"),
        shape_predictor_path=_dlib_path(params, "dlib_shape_predictor_path"),
        num_jitters=int(params.get("dlib_num_jitters", 0)),
    )


def build_dlib_torch(**params: Any) -> FaceEmbedder:
    """dlib's ResNet in PyTorch on ``device`` at ``precision``, ``torch_threads`` threads,
    at most ``max_batch`` chips per forward pass; ``warmup`` (default on) runs it once now.

    Only the jitter-free descriptor is ported: ``dlib_num_jitters`` > 0 raises ValueError.
    """
    jitters = int(params.get("dlib_num_jitters", 0))
    if jitters != 0:
        raise ValueError(
            f"dlib_num_jitters={jitters}: the torch port computes the jitter-free descriptor "
            "only; use face_embedder dlib_cpp (or dlib) for jittered descriptors"
        )
    from .dlib_torch import DlibTorchFaceEmbedder

    return DlibTorchFaceEmbedder(
        recognition_model_path=_dlib_path(params, "dlib_recognition_model_path"),
        shape_predictor_path=_dlib_path(params, "dlib_shape_predictor_path"),
        device=str(params.get("device", "cpu") or "cpu"),
        precision=str(params.get("precision", "fp32") or "fp32"),
        num_threads=int(params.get("torch_threads", 0)),
        max_batch=int(params.get("max_batch", 16)),
        warmup=bool(params.get("warmup", True)),
    )


def build_dlib(**params: Any) -> FaceEmbedder:
    """dlib's ResNet: the torch port, or dlib's C++ (with a warning) where the port cannot run.

    Falls back on a missing torch, on ``dlib_num_jitters`` > 0 and on a .dat the port cannot
    read; a missing file or a bad device/precision is an error either way.
    """
    if int(params.get("dlib_num_jitters", 0)) > 0:
        LOG.info("dlib_num_jitters > 0: dlib's C++ computes the jittered descriptors")
        return build_dlib_cpp(**params)
    try:
        return build_dlib_torch(**params)
    except ImportError as exc:
        LOG.warning("dlib ResNet falls back to dlib's C++ (torch unavailable: %s)", exc)
    except ValueError as exc:
        from .dlib_torch import DlibModelError

        if not isinstance(exc, DlibModelError):
            raise
        LOG.warning("dlib ResNet falls back to dlib's C++ (the torch port cannot read it: %s)", exc)
    return build_dlib_cpp(**params)


def build_face_embedder(kind: str, *, dinov3: Any = None, **params: Any) -> FaceEmbedder:
    """Return the face embedder ``kind`` (see ``FACE_EMBEDDERS``) built from parameters.

    ``dinov3`` may pass an already loaded DinoV3Embedder so the model is not loaded twice.
    """
    if kind == "dlib":
        return build_dlib(**params)
    if kind == "dlib_torch":
        return build_dlib_torch(**params)
    if kind == "dlib_cpp":
        return build_dlib_cpp(**params)
    if kind == "dinov3":
        return dinov3 if dinov3 is not None else build_dinov3(**params)
    if kind == "onnx":
        from .onnx_face import OnnxFaceEmbedder

        path = _opt_path(params.get("onnx_model_path"))
        if path is None:
            raise ValueError("face_embedder is 'onnx' but onnx_model_path is empty")
        return OnnxFaceEmbedder(
            resolve_model(path, "ONNX face model (onnx_model_path)"),
            input_size=int(params.get("onnx_input_size", 112)),
            mean=float(params.get("onnx_mean", 127.5)),
            std=float(params.get("onnx_std", 127.5)),
            bgr=bool(params.get("onnx_bgr", False)),
            model_id=str(params.get("onnx_model_id", "") or ""),
            runtime=str(params.get("onnx_runtime", "auto") or "auto"),
            device=str(params.get("device", "cpu") or "cpu"),
            num_threads=int(params.get("torch_threads", 0)),
        )
    raise ValueError(f"unknown face embedder {kind!r}; choose one of {FACE_EMBEDDERS}")


#: What runs instead when scene_embedder=auto finds no DINOv3.
SCENE_FALLBACK = ("running without scene embeddings: the activity head is off and activity comes "
                  "from track dynamics only (scene_embedder: none says so on purpose, dinov3 "
                  "makes a missing model an error)")


def load_scene_embedder(kind: str = "auto", **params: Any) -> tuple[Any, str]:
    """Return (DINOv3 scene embedder or None, why there is none: "" when on or 'none').

    With 'auto' a missing DINOv3 (model not found in any place searched, or transformers not
    installed) is no error: a warning names what is missing and what runs instead.
    """
    if kind == "none":
        return None, ""
    if kind == "dinov3":
        return build_dinov3(**params), ""
    if kind == "auto":
        try:
            return build_dinov3(**params), ""
        except (FileNotFoundError, ImportError) as exc:
            note = f"scene_embedder=auto found no DINOv3: {exc}; {SCENE_FALLBACK}"
            LOG.warning("%s", note)
            return None, note
    raise ValueError(f"unknown scene embedder {kind!r}; choose one of {SCENE_EMBEDDERS}")


def build_scene_embedder(kind: str = "auto", **params: Any) -> Any:
    """Return the DINOv3 scene embedder, or None for 'none' (or 'auto' without DINOv3)."""
    return load_scene_embedder(kind, **params)[0]


def build_embed_policy(**params: Any) -> EmbedPolicy:
    """Return an EmbedPolicy from the node parameters."""
    return EmbedPolicy(
        EmbedPolicyConfig(
            min_interval_s=float(params.get("min_embed_interval_s", 0.5)),
            first_embeddings=int(params.get("first_embeddings", 2)),
            first_interval_s=float(params.get("first_embed_interval_s", 0.2)),
            max_embeddings_per_track=int(params.get("max_embeddings_per_track", 5)),
            quality_rel_margin=float(params.get("quality_rel_margin", 0.10)),
            quality_abs_margin=float(params.get("quality_abs_margin", 0.05)),
            refresh_interval_s=float(params.get("refresh_interval_s", 2.0)),
            refresh_after_budget_s=float(params.get("refresh_after_budget_s", 10.0)),
            forget_after_s=float(params.get("forget_track_after_s", 10.0)),
            handoff_s=float(params.get("untracked_handoff_s", 1.0)),
        )
    )


@dataclass
class EmbeddingStack:
    """Everything embedding_node needs, loaded once: face and scene embedders and the policy."""

    face: FaceEmbedder
    scene: Any
    policy: EmbedPolicy
    #: Why scene embedding is off although it was asked for (scene_embedder=auto); "" if not.
    scene_note: str = ""


def build_embedding_stack(params: Mapping[str, Any]) -> EmbeddingStack:
    """Build face/scene embedders and the policy from embedding_node parameters.

    DINOv3 is loaded at most once and shared between scene and face embeddings.
    """
    p = dict(params)
    scene, scene_note = load_scene_embedder(str(p.get("scene_embedder", "auto")), **p)
    face_kind = str(p.get("face_embedder", "dlib"))
    dino = scene
    if dino is None and face_kind == "dinov3":
        dino = build_dinov3(**p)
    face = build_face_embedder(face_kind, dinov3=dino, **p)
    return EmbeddingStack(face=face, scene=scene, policy=build_embed_policy(**p),
                          scene_note=scene_note)


__all__ = [
    "DINOV3_SOURCES",
    "FACE_EMBEDDERS",
    "SCENE_EMBEDDERS",
    "EmbeddingStack",
    "build_dinov3",
    "build_dlib",
    "build_dlib_cpp",
    "build_dlib_torch",
    "build_embed_policy",
    "build_embedding_stack",
    "build_face_embedder",
    "build_scene_embedder",
    "load_scene_embedder",
    "tolerant_embed_fn",
]
