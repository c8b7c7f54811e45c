"""embedding_node parameter specs agree with the embedding room's defaults and factories."""

from __future__ import annotations

import inspect

from visio_memoria_ros.config.embedding import PARAMS
from visio_memoria_ros.config.spec import validate_value
from visio_memoria_ros.embedding import EmbedPolicyConfig, build_embed_policy
from visio_memoria_ros.embedding.factory import (
    DINOV3_SOURCES,
    FACE_EMBEDDERS,
    SCENE_EMBEDDERS,
    build_dinov3,
)

BY_NAME = {s.name: s for s in PARAMS}


def test_names_unique_defaults_valid_and_described() -> None:
    assert len(BY_NAME) == len(PARAMS)
    for spec in PARAMS:
        assert validate_value(spec, spec.default) is None, spec.name
        assert len(spec.description) > 20, spec.name


def test_choices_match_factory() -> None:
    assert tuple(BY_NAME["face_embedder"].choices) == FACE_EMBEDDERS
    assert tuple(BY_NAME["scene_embedder"].choices) == SCENE_EMBEDDERS
    assert tuple(BY_NAME["dinov3_source"].choices) == DINOV3_SOURCES


def test_model_choices_need_restart() -> None:
    for name in (
        "face_embedder",
        "scene_embedder",
        "device",
        "dinov3_model_dir",
        "face_resolution",
        "scene_resolution",
        "onnx_model_path",
    ):
        assert BY_NAME[name].read_only, name


def test_policy_defaults_match() -> None:
    defaults = {s.name: s.default for s in PARAMS}
    assert build_embed_policy(**defaults).config == EmbedPolicyConfig()


def test_dinov3_keywords_are_params() -> None:
    keywords = [
        n
        for n, p in inspect.signature(build_dinov3).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    missing = [k for k in keywords if k not in BY_NAME]
    assert not missing


def test_resolutions_are_patch_aligned() -> None:
    assert BY_NAME["face_resolution"].default % 16 == 0
    assert BY_NAME["scene_resolution"].default % 16 == 0


def test_embedders_satisfy_the_protocol() -> None:
    from visio_memoria_ros.embedding import DlibFaceEmbedder, FaceEmbedder

    emb = DlibFaceEmbedder()
    assert isinstance(emb, FaceEmbedder)
    assert emb.embed([]).shape == (0, emb.dim)


def test_lazy_exports_and_unknown_attribute() -> None:
    import pytest

    import visio_memoria_ros.embedding as room

    assert room.OnnxFaceEmbedder.__name__ == "OnnxFaceEmbedder"
    assert callable(room.landmarks_from_dlib5)
    with pytest.raises(AttributeError):
        _ = room.NoSuchThing
