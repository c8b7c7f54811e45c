"""GPU-ready paths, checked on the CPU: ONNX export of the dlib ResNet, DINOv3 and YOLO (the
ONNX output equals torch's under onnxruntime), the onnxruntime face-embedder backend, the
TensorRT refusal without tensorrt, and the precision parameter of every torch model."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from visio_memoria_ros.core.precision import effective_precision
from visio_memoria_ros.embedding import build_face_embedder
from visio_memoria_ros.embedding.onnx_face import OnnxFaceEmbedder, ort_providers
from visio_memoria_ros.export import (
    build_tensorrt_engine,
    export_dinov3,
    export_face_embedder,
    export_yolo,
)

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def dlib_onnx(tmp_path_factory) -> Path:
    result = export_face_embedder(tmp_path_factory.mktemp("onnx"))
    assert result.check["min_cosine"] > 0.99999 and result.check["max_abs_diff"] < 1e-3
    return result.onnx


@pytest.fixture(scope="module")
def crops(bbt_dir) -> list[np.ndarray]:
    from visio_memoria_ros.perception import Perceiver, PerceiverConfig

    perceiver = Perceiver(PerceiverConfig(person_backend="none", warmup=False))
    out = []
    for name in ("leonard", "penny", "raj"):
        img = cv2.cvtColor(cv2.imread(str(bbt_dir / "bbt1.jpg")), cv2.COLOR_BGR2RGB) \
            if not out else cv2.cvtColor(cv2.imread(str(bbt_dir / name / f"{name}1.png")),
                                         cv2.COLOR_BGR2RGB)
        padded = cv2.copyMakeBorder(img, 60, 60, 60, 60, cv2.BORDER_CONSTANT)
        perceiver.reset()
        out += [f.crop for f in perceiver.process(padded).faces if f.crop is not None]
    assert len(out) >= 4
    return out


@pytest.mark.parametrize("runtime", ["onnxruntime", "auto"])
def test_exported_dlib_model_gives_dlibs_vectors_and_id(dlib_onnx, crops, runtime):
    torch_embedder = build_face_embedder("dlib_torch")
    onnx_embedder = build_face_embedder("onnx", onnx_model_path=str(dlib_onnx),
                                        onnx_runtime=runtime)
    assert onnx_embedder.id == torch_embedder.id == "dlib_resnet_v1_128"
    assert onnx_embedder.providers == ["CPUExecutionProvider"]
    a, b = torch_embedder.embed(crops), onnx_embedder.embed(crops)
    assert a.shape == b.shape == (len(crops), 128)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.9999
    assert onnx_embedder.embed([]).shape == (0, 128)


def test_sidecar_must_name_a_known_input(dlib_onnx, tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(dlib_onnx.read_bytes())
    Path(f"{bad}.json").write_text(json.dumps({"input": "something_else"}))
    with pytest.raises(ValueError, match="dlib_chip or arcface"):
        OnnxFaceEmbedder(bad)


def test_providers_follow_the_device():
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ort_providers("cuda", gpu) == gpu
    assert ort_providers("cuda:1", gpu[1:]) == gpu[1:]
    assert ort_providers("cpu", gpu) == ["CPUExecutionProvider"]
    assert ort_providers("cuda", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def _tiny_dinov3(tmp_path: Path, precision: str = "fp32"):
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    from visio_memoria_ros.embedding.dinov3 import DinoV3Embedder

    torch.manual_seed(0)
    model = DINOv3ViTModel(DINOv3ViTConfig(
        hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        patch_size=16, num_register_tokens=4, image_size=64)).eval()
    model.save_pretrained(tmp_path)
    return DinoV3Embedder.from_pretrained_dir(tmp_path, face_resolution=32, scene_resolution=64,
                                              precision=precision)


def test_dinov3_exports_to_onnx_with_torchs_outputs(tmp_path):
    embedder = _tiny_dinov3(tmp_path / "model")
    result = export_dinov3(embedder, tmp_path / "out")
    assert result.onnx.is_file() and result.onnx.name == "dinov3_vit48_48_r32.onnx"
    assert result.check["min_cosine"] > 0.9999, result.check
    meta = json.loads(result.sidecar.read_text())
    assert meta["size"] == 32 and meta["face_embedder_id"] == embedder.id


def test_dinov3_precision(tmp_path, crops):
    fp32 = _tiny_dinov3(tmp_path / "a")
    bf16 = _tiny_dinov3(tmp_path / "b", precision="bf16")
    assert bf16.precision == "bf16" and next(bf16._model.parameters()).dtype == torch.bfloat16
    a, b = fp32.embed(crops[:2]), bf16.embed(crops[:2])
    assert b.dtype == np.float32 and float(np.min(np.sum(a * b, axis=1))) > 0.99
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        _tiny_dinov3(tmp_path / "c", precision="fp16")


def test_dlib_precision_comes_from_the_parameter(crops):
    bf16 = build_face_embedder("dlib_torch", precision="bf16")
    assert bf16.dtype == torch.bfloat16
    ref = build_face_embedder("dlib_torch").embed(crops[:2])
    assert float(np.min(np.sum(ref * bf16.embed(crops[:2]), axis=1))) > 0.9999
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        build_face_embedder("dlib_torch", precision="fp16")


def test_precision_rule():
    assert effective_precision("fp16", "cuda") == "fp16"
    assert effective_precision("fp16", "cpu", auto=True) == "fp32"
    assert effective_precision("BF16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="unknown precision"):
        effective_precision("int8", "cpu")


@pytest.fixture(scope="module")
def yolo_pt(tmp_path_factory) -> Path:
    yolo = pytest.importorskip("ultralytics").YOLO
    path = tmp_path_factory.mktemp("yolo") / "yolov8n-untrained.pt"
    yolo("yolov8n.yaml").save(str(path))
    return path


def test_yolo_exports_to_onnx_and_the_detector_loads_it(yolo_pt, tmp_path, asset_image_path):
    from visio_memoria_ros.perception.persons import YoloPersonDetector

    result = export_yolo(yolo_pt, tmp_path / "out", task="detect", imgsz=320)
    assert result.onnx.is_file() and result.onnx.suffix == ".onnx"
    detector = YoloPersonDetector(model_path=result.onnx, imgsz=320, score_threshold=0.0)
    image = cv2.cvtColor(cv2.imread(str(asset_image_path)), cv2.COLOR_BGR2RGB)
    for p in detector.detect(image):
        assert 0 <= p.bbox[0] <= p.bbox[2] <= image.shape[1]


def test_yolo_precision_is_fp32_or_fp16_on_cuda(yolo_pt):
    from visio_memoria_ros.perception.persons import YoloPersonDetector

    with pytest.raises(ValueError, match="bf16 is not available for YOLO"):
        YoloPersonDetector(model_path=yolo_pt, precision="bf16")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        YoloPersonDetector(model_path=yolo_pt, precision="fp16")
    assert YoloPersonDetector(model_path=yolo_pt, precision="fp16", device="auto").half is (
        torch.cuda.is_available())


def test_tensorrt_engine_without_tensorrt_says_so(dlib_onnx, tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="tensorrt package"):
            build_tensorrt_engine(dlib_onnx, tmp_path / "x.engine")
    else:
        engine = build_tensorrt_engine(dlib_onnx, tmp_path / "x.engine", fp16=True)
        assert engine.stat().st_size > 0


def test_cli_export_face_embedder(tmp_path):
    from visio_memoria_ros.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["export", "face-embedder", "--out", str(tmp_path), "--json"])
    assert code == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["schema"] == "visio-memoria.export/1"
    (item,) = doc["exported"]
    assert Path(item["onnx"]).is_file() and item["check"]["min_cosine"] > 0.99999
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["export", "face-embedder", "--out", str(tmp_path), "--tensorrt"])
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert code == 1 and "tensorrt package" in err.getvalue()
