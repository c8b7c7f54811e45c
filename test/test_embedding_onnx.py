"""OnnxFaceEmbedder on tiny ONNX models the test exports from torch."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from visio_memoria_ros.core.face_crop import CANONICAL_SIZE, inner_crop
from visio_memoria_ros.embedding import build_face_embedder
from visio_memoria_ros.embedding.onnx_face import OnnxFaceEmbedder

pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")

DIM = 16


class TinyFaceNet(torch.nn.Module):
    """Conv -> pool -> linear: an ArcFace-shaped (N, 3, 112, 112) -> (N, 16) toy."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.fc = torch.nn.Linear(8 * 4 * 4, DIM)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.fc(y.flatten(1)) * self.scale


def _export(net: torch.nn.Module, path: Path, dynamic: bool = True) -> Path:
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 112, 112),),
            str(path),
            input_names=["input"],
            output_names=["embedding"],
            dynamic_axes={"input": {0: "n"}, "embedding": {0: "n"}} if dynamic else None,
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyFaceNet, Path]:
    torch.manual_seed(0)
    net = TinyFaceNet()
    return net, _export(net, tmp_path_factory.mktemp("onnx") / "tiny-arc.face.onnx")


def _crops(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (CANONICAL_SIZE,) * 2 + (3,), dtype=np.uint8) for _ in range(n)]


def _reference(net: torch.nn.Module, crops: list[np.ndarray], bgr: bool = False) -> np.ndarray:
    faces = np.stack([inner_crop(c, 112) for c in crops]).astype(np.float32)
    if bgr:
        faces = faces[..., ::-1]
    x = torch.from_numpy(np.ascontiguousarray((faces - 127.5) / 127.5).transpose(0, 3, 1, 2))
    with torch.no_grad():
        y = net(x.contiguous()).numpy()
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_matches_torch_and_is_normalised(tiny: tuple[TinyFaceNet, Path]) -> None:
    net, path = tiny
    emb = OnnxFaceEmbedder(path)
    assert emb.dim == DIM
    assert emb.id == f"onnx_tiny_arc_face_{DIM}"
    crops = _crops(4)
    out = emb.embed(crops)
    assert out.shape == (4, DIM) and out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(net, crops), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    single = np.concatenate([emb.embed([c]) for c in crops])
    np.testing.assert_allclose(out, single, atol=1e-5)
    assert emb.embed([]).shape == (0, DIM)


def test_bgr_and_custom_id(tiny: tuple[TinyFaceNet, Path]) -> None:
    net, path = tiny
    emb = OnnxFaceEmbedder(path, bgr=True, model_id="arcface_r100_512")
    assert emb.id == "arcface_r100_512"
    crops = _crops(2, seed=1)
    np.testing.assert_allclose(emb.embed(crops), _reference(net, crops, bgr=True), atol=1e-4)


def test_per_channel_mean_std(tiny: tuple[TinyFaceNet, Path]) -> None:
    _, path = tiny
    crops = _crops(1, seed=2)
    a = OnnxFaceEmbedder(path, mean=127.5, std=127.5).embed(crops)
    b = OnnxFaceEmbedder(path, mean=(127.5,) * 3, std=[127.5] * 3).embed(crops)
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="mean"):
        OnnxFaceEmbedder(path, mean=(1.0, 2.0))
    with pytest.raises(ValueError, match="std"):
        OnnxFaceEmbedder(path, std=0.0)


def test_fixed_batch_model(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = TinyFaceNet()
    path = _export(net, tmp_path / "fixed.onnx", dynamic=False)
    emb = OnnxFaceEmbedder(path)
    crops = _crops(3, seed=3)
    np.testing.assert_allclose(emb.embed(crops), _reference(net, crops), atol=1e-4)


def test_zero_output_model_raises(tmp_path: Path) -> None:
    path = _export(TinyFaceNet(scale=0.0), tmp_path / "zero.onnx")
    with pytest.raises(ValueError, match="zero"):
        OnnxFaceEmbedder(path).embed(_crops(1))


def test_nan_output_model_raises(tmp_path: Path) -> None:
    path = _export(TinyFaceNet(scale=float("nan")), tmp_path / "nan.onnx")
    with pytest.raises(ValueError, match="NaN"):
        OnnxFaceEmbedder(path).embed(_crops(1))


def test_bad_inputs(tiny: tuple[TinyFaceNet, Path], tmp_path: Path) -> None:
    _, path = tiny
    emb = OnnxFaceEmbedder(path)
    with pytest.raises(ValueError):
        emb.embed([np.zeros((112, 112, 3), np.uint8)])
    with pytest.raises(ValueError):
        emb.embed(_crops(1)[0])
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        OnnxFaceEmbedder(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="OpenCV cannot read"):
        OnnxFaceEmbedder(tmp_path / "junk.onnx", runtime="opencv")
    if importlib.util.find_spec("onnxruntime") is not None:
        with pytest.raises(ValueError, match="onnxruntime cannot load"):
            OnnxFaceEmbedder(tmp_path / "junk.onnx", runtime="onnxruntime")
    with pytest.raises(ValueError, match="unknown ONNX runtime"):
        OnnxFaceEmbedder(path, runtime="tvm")


@pytest.mark.parametrize("runtime", ["opencv", "onnxruntime"])
def test_both_runtimes_give_the_same_vectors(tiny: tuple[TinyFaceNet, Path], runtime) -> None:
    if runtime == "onnxruntime":
        pytest.importorskip("onnxruntime")
    _, path = tiny
    crops = _crops(3)
    reference = OnnxFaceEmbedder(path, runtime="opencv").embed(crops)
    emb = OnnxFaceEmbedder(path, runtime=runtime)
    assert emb.providers == (["opencv"] if runtime == "opencv" else ["CPUExecutionProvider"])
    np.testing.assert_allclose(emb.embed(crops), reference, atol=1e-5)


def test_factory_builds_onnx(tiny: tuple[TinyFaceNet, Path]) -> None:
    _, path = tiny
    emb = build_face_embedder("onnx", onnx_model_path=str(path), onnx_input_size=112)
    assert emb.dim == DIM
