"""Write the models as ONNX (and TensorRT engines where ``tensorrt`` is installed) for GPUs.

* ``export_face_embedder``: dlib's ResNet, from the torch port (``embedding.dlib_torch``), as
  ONNX taking dlib's 150x150 uint8 RGB face chips (NHWC, any batch) and returning dlib's raw
  128-d descriptors; a JSON sidecar (``<file>.json``) tells ``OnnxFaceEmbedder`` to feed it
  dlib's chips and to keep the id ``dlib_resnet_v1_128``.
* ``export_dinov3``: DINOv3 as ONNX taking ImageNet-normalised NCHW float pixels (any batch, the
  configured face or scene resolution) and returning the class token and the patch-token mean.
* ``export_yolo``: a YOLO face or person model through ultralytics' own exporter (``onnx``, or
  ``engine`` for TensorRT), which the detectors load as they load a ``.pt``.

Every ONNX written here is checked against torch with onnxruntime on the CPU (``check``):
the largest absolute difference and the lowest cosine similarity over a random batch.
``build_tensorrt_engine`` turns an ONNX file into a serialized TensorRT engine (fp16 optional);
without the ``tensorrt`` package it raises ImportError saying so.

The exporter is torch's TorchScript-based ``torch.onnx.export`` (``dynamo=False``): it needs
neither onnxscript nor network access.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger(__name__)

#: ONNX opset written (supported by onnxruntime >= 1.14 and TensorRT >= 8.6).
OPSET = 17


@dataclass
class ExportResult:
    """What an export wrote and how its ONNX output compared with torch."""

    kind: str
    onnx: Path
    sidecar: Path | None = None
    engine: Path | None = None
    check: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"kind": self.kind, "onnx": str(self.onnx),
                "sidecar": str(self.sidecar) if self.sidecar else None,
                "engine": str(self.engine) if self.engine else None, "check": self.check}


def compare_outputs(expected: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Largest absolute difference and lowest row cosine between two (N, D) outputs."""
    a = np.asarray(expected, np.float64).reshape(len(expected), -1)
    b = np.asarray(got, np.float64).reshape(len(got), -1)
    if a.shape != b.shape:
        raise ValueError(f"output shapes differ: torch {a.shape}, onnx {b.shape}")
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                      1e-12)
    return {"max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cos.min())}


def run_onnxruntime_cpu(path: Path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run an ONNX file once with onnxruntime's CPU provider."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [np.asarray(x) for x in session.run(None, inputs)]


def _export(module: Any, example: Any, path: Path, inputs: list[str], outputs: list[str]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch"} for name in inputs + outputs}
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(module, (example,), str(path), input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)


def export_face_embedder(out_dir: str | Path, *, recognition_model_path: str | None = None,
                         check: bool = True, batch: int = 3) -> ExportResult:
    """dlib's ResNet (torch port, fp32) as ``dlib_resnet_v1_128.onnx`` + sidecar in ``out_dir``."""
    import torch

    from .embedding.dlib_face import default_model_paths
    from .embedding.dlib_torch import EMBEDDER_ID, load_dlib_resnet

    model, _ = load_dlib_resnet(recognition_model_path or default_model_paths()[0])
    model = model.float().eval()
    size = model.spec.input_size
    path = Path(out_dir) / f"{EMBEDDER_ID}.onnx"
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    _export(model, example, path, ["chips"], ["descriptors"])
    sidecar = Path(f"{path}.json")
    sidecar.write_text(json.dumps({"embedder_id": EMBEDDER_ID, "input": "dlib_chip",
                                   "size": size, "output": "raw descriptors (L2 it)"},
                                  indent=2) + "\n", encoding="utf-8")
    result = ExportResult("face-embedder", path, sidecar)
    if check:
        chips = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), np.uint8)
        with torch.inference_mode():
            expected = model(torch.from_numpy(chips)).numpy()
        (got,) = run_onnxruntime_cpu(path, {"chips": chips})
        result.check = compare_outputs(expected, got)
    LOG.info("wrote %s (%s)", path, result.check)
    return result


class _DinoTokens:
    """Wraps a DinoV3Embedder's backbone as ``pixels -> (class token, patch mean)``."""

    def __new__(cls, embedder: Any) -> Any:
        import torch

        class Tokens(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone = embedder._model

            def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                cls_tok, patches = embedder._tokens(pixels)
                return cls_tok, patches.mean(dim=1)

        return Tokens().float().eval()


def export_dinov3(embedder: Any, out_dir: str | Path, *, resolution: int | None = None,
                  check: bool = True, batch: int = 2) -> ExportResult:
    """DINOv3 (a ``DinoV3Embedder``) as ONNX at ``resolution`` (default: its face resolution)."""
    import torch

    res = int(resolution or embedder.face_resolution)
    module = _DinoTokens(embedder)
    path = Path(out_dir) / f"dinov3_{embedder.arch}_{embedder.hidden_size}_r{res}.onnx"
    example = torch.zeros((2, 3, res, res), dtype=torch.float32, device=embedder.device)
    _export(module, example, path, ["pixels"], ["cls", "patch_mean"])
    sidecar = Path(f"{path}.json")
    sidecar.write_text(json.dumps({"input": "imagenet_nchw", "size": res, "arch": embedder.arch,
                                   "hidden_size": embedder.hidden_size,
                                   "face_embedder_id": embedder.id}, indent=2) + "\n",
                       encoding="utf-8")
    result = ExportResult("dinov3", path, sidecar)
    if check:
        pixels = np.random.default_rng(0).standard_normal((batch, 3, res, res)).astype(np.float32)
        with torch.inference_mode():
            cls_tok, mean = module(torch.from_numpy(pixels).to(embedder.device))
        got_cls, got_mean = run_onnxruntime_cpu(path, {"pixels": pixels})
        a, b = compare_outputs(cls_tok.float().cpu().numpy(), got_cls), compare_outputs(
            mean.float().cpu().numpy(), got_mean)
        result.check = {"max_abs_diff": max(a["max_abs_diff"], b["max_abs_diff"]),
                        "min_cosine": min(a["min_cosine"], b["min_cosine"])}
    LOG.info("wrote %s (%s)", path, result.check)
    return result


def export_yolo(model_path: str | Path, out_dir: str | Path, *, task: str, imgsz: int = 640,
                half: bool = False, tensorrt: bool = False, device: str = "cpu") -> ExportResult:
    """A YOLO ``.pt`` through ultralytics' exporter: ONNX, or a TensorRT ``.engine``."""
    from .perception.faces import import_yolo, require_file

    source = require_file(model_path, f"YOLO {task} model")
    yolo = import_yolo("exporting a YOLO model")
    model = yolo(str(source), task=task)
    fmt = "engine" if tensorrt else "onnx"
    if tensorrt:
        _require_tensorrt()
    written = Path(model.export(format=fmt, imgsz=int(imgsz), half=bool(half), dynamic=False,
                                simplify=False, device=device, opset=OPSET))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / written.name
    if written.resolve() != target.resolve():
        shutil.move(str(written), target)
    result = ExportResult(f"yolo-{task}", target if fmt == "onnx" else target.with_suffix(".onnx"))
    if fmt == "engine":
        result.engine = target
    LOG.info("wrote %s", target)
    return result


def _require_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise ImportError(f"a TensorRT engine needs the tensorrt package, not installed here "
                          f"({exc}); the ONNX file runs on onnxruntime's CUDA provider, or build "
                          "the engine on the robot with trtexec --onnx=FILE") from exc
    return tensorrt


def build_tensorrt_engine(onnx_path: str | Path, engine_path: str | Path | None = None, *,
                          fp16: bool = False, max_batch: int = 16,
                          workspace_mb: int = 1024) -> Path:
    """Serialize a TensorRT engine for ``onnx_path`` (dynamic batch 1..max_batch)."""
    trt = _require_tensorrt()
    onnx_path = Path(onnx_path)
    engine_path = Path(engine_path or onnx_path.with_suffix(".engine"))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = list(tensor.shape)
        lo, hi = [1, *shape[1:]], [max_batch, *shape[1:]]
        profile.set_shape(tensor.name, lo, [max(1, max_batch // 2), *shape[1:]], hi)
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError(f"TensorRT could not build an engine for {onnx_path}")
    engine_path.write_bytes(bytes(blob))
    return engine_path


__all__ = [
    "OPSET",
    "ExportResult",
    "build_tensorrt_engine",
    "compare_outputs",
    "export_dinov3",
    "export_face_embedder",
    "export_yolo",
    "run_onnxruntime_cpu",
]
