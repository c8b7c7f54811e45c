"""DINOv3 embedder on a tiny random DINOv3ViTConfig model saved to and loaded from disk."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from visio_memoria_ros.core.face_crop import CANONICAL_SIZE
from visio_memoria_ros.embedding import build_embedding_stack, build_scene_embedder
from visio_memoria_ros.embedding.dinov3 import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DinoV3Embedder,
    combine_scene,
    resolve_device,
)

HIDDEN = 48
REGISTERS = 4


def tiny_config() -> DINOv3ViTConfig:
    """A 2-layer DINOv3 ViT with 4 register tokens: same code path as ViT-B/16, tiny."""
    return DINOv3ViTConfig(
        hidden_size=HIDDEN,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        patch_size=16,
        num_register_tokens=REGISTERS,
        image_size=64,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random DINOv3 model directory."""
    torch.manual_seed(0)
    model = DINOv3ViTModel(tiny_config()).eval()
    with torch.no_grad():  # random registers must differ from patches for the exclusion test
        model.embeddings.register_tokens.normal_(0.0, 3.0)
    path = tmp_path_factory.mktemp("dinov3_tiny")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> DinoV3Embedder:
    """The embedder loaded the way the node loads real weights."""
    return DinoV3Embedder.from_pretrained_dir(
        model_dir, device="cpu", face_resolution=32, scene_resolution=64, max_batch=8
    )


def _crops(n: int, size: int = CANONICAL_SIZE, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _pixels(images: list[np.ndarray]) -> torch.Tensor:
    """ImageNet normalisation by hand (images already at the model resolution)."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def test_ids_and_dims(embedder: DinoV3Embedder) -> None:
    assert embedder.dim == HIDDEN
    assert embedder.scene_dim == 2 * HIDDEN
    assert embedder.id == f"dinov3_vit{HIDDEN}_{HIDDEN}_r32"
    assert embedder.scene_id == f"dinov3_vit{HIDDEN}_scene_{2 * HIDDEN}_r64"
    assert embedder.device.type == "cpu"


def test_face_embeddings_shape_and_norm(embedder: DinoV3Embedder) -> None:
    out = embedder.embed(_crops(3))
    assert out.shape == (3, HIDDEN)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_batch_equals_individual(embedder: DinoV3Embedder) -> None:
    crops = _crops(5, seed=2)
    batch = embedder.embed(crops)
    single = np.concatenate([embedder.embed([c]) for c in crops])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    scenes = _crops(3, size=80, seed=3)
    sb = embedder.scene_features(scenes)
    ss = [embedder.scene_features([s]) for s in scenes]
    np.testing.assert_allclose(sb.embedding, np.concatenate([s.embedding for s in ss]), atol=1e-5)


def test_chunking_by_max_batch(model_dir: Path) -> None:
    small = DinoV3Embedder.from_pretrained_dir(
        model_dir, face_resolution=32, scene_resolution=64, max_batch=2
    )
    big = DinoV3Embedder.from_pretrained_dir(
        model_dir, face_resolution=32, scene_resolution=64, max_batch=16
    )
    crops = _crops(5, seed=4)
    np.testing.assert_allclose(small.embed(crops), big.embed(crops), atol=1e-5)


def test_scene_features_exclude_register_tokens(embedder: DinoV3Embedder, model_dir: Path) -> None:
    scenes = _crops(2, size=64, seed=5)  # already at scene resolution: no resize ambiguity
    feats = embedder.scene_features(scenes)
    reference = DINOv3ViTModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        hidden = reference(pixel_values=_pixels(scenes)).last_hidden_state.numpy()
    n_patches = (64 // 16) ** 2
    assert hidden.shape[1] == 1 + REGISTERS + n_patches
    np.testing.assert_allclose(feats.cls, hidden[:, 0], atol=1e-4)
    np.testing.assert_allclose(feats.patch_mean, hidden[:, 1 + REGISTERS :].mean(1), atol=1e-4)
    with_registers = hidden[:, 1:].mean(1)
    assert not np.allclose(feats.patch_mean, with_registers, atol=1e-3)
    # the documented combination: [L2(cls), L2(mean patch)] / sqrt(2), unit length
    cls_n = hidden[:, 0] / np.linalg.norm(hidden[:, 0], axis=1, keepdims=True)
    pm = hidden[:, 1 + REGISTERS :].mean(1)
    pm_n = pm / np.linalg.norm(pm, axis=1, keepdims=True)
    expected = np.concatenate([cls_n, pm_n], axis=1) / math.sqrt(2)
    np.testing.assert_allclose(feats.embedding, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(feats.embedding, axis=1), 1.0, atol=1e-5)
    assert feats.embedding.shape == (2, 2 * HIDDEN)
    np.testing.assert_allclose(embedder.embed_scenes(scenes), feats.embedding, atol=1e-6)


def test_face_embedding_is_l2_class_token(embedder: DinoV3Embedder, model_dir: Path) -> None:
    import cv2

    crops = _crops(2, seed=6)
    small = [cv2.resize(c, (32, 32), interpolation=cv2.INTER_AREA) for c in crops]
    reference = DINOv3ViTModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        cls_tok = reference(pixel_values=_pixels(small)).pooler_output.numpy()
    expected = cls_tok / np.linalg.norm(cls_tok, axis=1, keepdims=True)
    np.testing.assert_allclose(embedder.embed(crops), expected, atol=1e-4)


def test_scene_crops_of_any_size(embedder: DinoV3Embedder) -> None:
    rng = np.random.default_rng(7)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(120, 50), (30, 20)]]
    feats = embedder.scene_features(crops)
    assert feats.cls.shape == feats.patch_mean.shape == (2, HIDDEN)


def test_empty_inputs(embedder: DinoV3Embedder) -> None:
    assert embedder.embed([]).shape == (0, HIDDEN)
    feats = embedder.scene_features([])
    assert feats.cls.shape == (0, HIDDEN)
    assert feats.embedding.shape == (0, 2 * HIDDEN)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((CANONICAL_SIZE, CANONICAL_SIZE, 3), np.float32),
        np.zeros((100, 100, 3), np.uint8),
        np.zeros((CANONICAL_SIZE, CANONICAL_SIZE), np.uint8),
        "not an image",
    ],
)
def test_bad_face_crops_raise(embedder: DinoV3Embedder, bad: object) -> None:
    with pytest.raises(ValueError):
        embedder.embed([bad])  # type: ignore[list-item]


def test_unwrapped_single_crop_raises(embedder: DinoV3Embedder) -> None:
    with pytest.raises(ValueError, match="sequence"):
        embedder.embed(_crops(1)[0])
    with pytest.raises(ValueError, match="sequence"):
        embedder.scene_features(_crops(1)[0])


def test_nan_output_raises(model_dir: Path) -> None:
    model = DINOv3ViTModel.from_pretrained(model_dir)
    with torch.no_grad():
        model.norm.weight.fill_(float("nan"))
    broken = DinoV3Embedder.from_model(model, face_resolution=32, scene_resolution=64)
    with pytest.raises(ValueError, match="NaN"):
        broken.embed(_crops(1))
    with pytest.raises(ValueError, match="NaN"):
        broken.scene_features(_crops(1, size=64))


def test_zero_vector_cannot_be_normalised() -> None:
    with pytest.raises(ValueError, match="zero"):
        combine_scene(np.zeros((1, 4), np.float32), np.ones((1, 4), np.float32))


def test_resolution_must_be_patch_aligned(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="multiple of the patch size"):
        DinoV3Embedder.from_pretrained_dir(model_dir, face_resolution=100)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        DinoV3Embedder.from_pretrained_dir(model_dir, scene_resolution=8)


def test_missing_dir_names_path_and_readme(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    with pytest.raises(FileNotFoundError) as err:
        DinoV3Embedder.from_pretrained_dir(missing)
    assert str(missing) in str(err.value)
    assert "models/README.md" in str(err.value)


def test_preprocessor_config_mean_std_used(model_dir: Path, tmp_path: Path) -> None:
    import json
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    (copy / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]})
    )
    a = DinoV3Embedder.from_pretrained_dir(model_dir, face_resolution=32)
    b = DinoV3Embedder.from_pretrained_dir(copy, face_resolution=32)
    crops = _crops(1, seed=8)
    assert not np.allclose(a.embed(crops), b.embed(crops), atol=1e-4)


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu7")


# ---- torch.hub loader ------------------------------------------------------------------------

HUBCONF = textwrap.dedent(
    '''
    """A stand-in for facebookresearch/dinov3's hubconf: same entry point and outputs."""
    import torch
    from torch import nn

    dependencies = ["torch"]


    class TinyDino(nn.Module):
        def __init__(self, embed_dim=32, patch_size=16, n_storage_tokens=4):
            super().__init__()
            self.embed_dim = embed_dim
            self.patch_size = patch_size
            self.n_storage_tokens = n_storage_tokens
            self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, patch_size)
            self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim))
            self.storage_tokens = nn.Parameter(torch.randn(1, n_storage_tokens, embed_dim) * 5)
            self.block = nn.TransformerEncoderLayer(embed_dim, 4, 64, batch_first=True)
            self.norm = nn.LayerNorm(embed_dim)

        def forward_features(self, x, masks=None):
            p = self.patch_embed(x).flatten(2).transpose(1, 2)
            b = x.shape[0]
            t = torch.cat(
                [self.cls_token.expand(b, -1, -1), self.storage_tokens.expand(b, -1, -1), p], 1
            )
            t = self.norm(self.block(t))
            k = 1 + self.n_storage_tokens
            return {
                "x_norm_clstoken": t[:, 0],
                "x_storage_tokens": t[:, 1:k],
                "x_norm_patchtokens": t[:, k:],
                "x_prenorm": t,
                "masks": masks,
            }


    def dinov3_vitb16(pretrained=True, weights=None, **kwargs):
        model = TinyDino()
        if pretrained:
            model.load_state_dict(torch.load(weights, map_location="cpu"))
        return model
    '''
)


@pytest.fixture(scope="module")
def hub_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A local hub repo with a dinov3-like entry point, and a weights file for it."""
    import importlib.util

    root = tmp_path_factory.mktemp("dinov3_repo")
    (root / "hubconf.py").write_text(HUBCONF)
    spec = importlib.util.spec_from_file_location("tiny_hubconf", root / "hubconf.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    torch.manual_seed(1)
    weights = root / "weights.pth"
    torch.save(module.TinyDino().state_dict(), weights)
    return root, weights


def test_hub_repo_loads_and_excludes_storage_tokens(hub_repo: tuple[Path, Path]) -> None:
    repo, weights = hub_repo
    emb = DinoV3Embedder.from_hub_repo(repo, weights, arch="dinov3_vitb16", face_resolution=32)
    assert emb.id == "dinov3_vitb16_32_r32"
    assert emb.embed(_crops(2)).shape == (2, 32)
    scenes = _crops(2, size=224, seed=9)
    feats = emb.scene_features(scenes)
    model = torch.hub.load(str(repo), "dinov3_vitb16", source="local", weights=str(weights))
    model.eval()
    with torch.no_grad():
        out = model.forward_features(_pixels(scenes))
    np.testing.assert_allclose(feats.cls, out["x_norm_clstoken"].numpy(), atol=1e-4)
    np.testing.assert_allclose(
        feats.patch_mean, out["x_norm_patchtokens"].mean(1).numpy(), atol=1e-4
    )
    assert not np.allclose(feats.patch_mean, out["x_prenorm"][:, 1:].mean(1).numpy(), atol=1e-3)


def test_hub_repo_missing(tmp_path: Path, hub_repo: tuple[Path, Path]) -> None:
    with pytest.raises(FileNotFoundError, match=r"hubconf\.py.*models/README\.md"):
        DinoV3Embedder.from_hub_repo(tmp_path / "nothing", tmp_path / "w.pth")
    repo, _ = hub_repo
    with pytest.raises(FileNotFoundError, match=r"w\.pth"):
        DinoV3Embedder.from_hub_repo(repo, tmp_path / "w.pth")


# ---- factory with a real (tiny) model directory -----------------------------------------------


def test_factory_shares_one_dinov3(model_dir: Path) -> None:
    params = {
        "face_embedder": "dinov3",
        "scene_embedder": "dinov3",
        "dinov3_model_dir": str(model_dir),
        "face_resolution": 32,
        "scene_resolution": 64,
    }
    stack = build_embedding_stack(params)
    assert stack.face is stack.scene
    assert stack.face.embed(_crops(1)).shape == (1, HIDDEN)


def test_factory_dlib_faces_with_dinov3_scenes(model_dir: Path) -> None:
    params = {
        "face_embedder": "dlib",
        "scene_embedder": "dinov3",
        "dinov3_model_dir": str(model_dir),
        "scene_resolution": 64,
    }
    stack = build_embedding_stack(params)
    assert stack.face.id == "dlib_resnet_v1_128"
    assert stack.scene is not None and stack.scene is not stack.face


def test_scene_auto_without_weights_disables(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING"):
        assert build_scene_embedder("auto", dinov3_model_dir=str(tmp_path / "x")) is None
    assert "scene_embedder=auto found no DINOv3" in caplog.text
    assert str(tmp_path / "x") in caplog.text
    with pytest.raises(FileNotFoundError):
        build_scene_embedder("dinov3", dinov3_model_dir=str(tmp_path / "x"))
    assert build_scene_embedder("none") is None
    with pytest.raises(ValueError, match="unknown scene embedder"):
        build_scene_embedder("clip")
