"""ONNX face models: a user-supplied ArcFace-style model, or the exported dlib ResNet.

Two runtimes: onnxruntime (the TensorRT and CUDA execution providers where they are installed
and the device is CUDA, the CPU provider otherwise) and OpenCV DNN (no extra package).
``runtime: auto`` takes onnxruntime when it imports, else OpenCV.

A model written by ``visio-memoria export face-embedder`` has a JSON sidecar
(``<model>.onnx.json``): ``{"embedder_id": ..., "input": "dlib_chip", "size": 150}`` says it
takes dlib's 150x150 uint8 RGB face chips (NHWC) and returns dlib's raw descriptors, so its
vectors are dlib's and keep the id ``dlib_resnet_v1_128`` (a gallery made by any dlib engine
stays valid). Without a sidecar the model is ArcFace-style: NCHW float input of the inner crop,
``(pixel - mean) / std``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..core.face_crop import inner_crop
from .base import check_canonical_crops, empty_embeddings, finish_embeddings

LOG = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnxruntime", "opencv")


def _per_channel(value: float | Sequence[float], name: str) -> np.ndarray:
    """Return a (1, 3, 1, 1) float32 array from a scalar or 3 values."""
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be one number or 3 finite numbers, got {value!r}")
    return arr.reshape(1, 3, 1, 1)


def sidecar_path(model_path: str | Path) -> Path:
    """The JSON description written beside an exported model (``<model>.onnx.json``)."""
    return Path(f"{model_path}.json")


def read_sidecar(model_path: str | Path) -> dict[str, Any]:
    """The exported model's description, or {} when it has none (a user's ArcFace model)."""
    path = sidecar_path(model_path)
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable model description ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("input") not in ("dlib_chip", "arcface"):
        raise ValueError(f"{path}: 'input' must be dlib_chip or arcface")
    return meta


def ort_providers(device: str, available: Sequence[str]) -> list[str]:
    """onnxruntime providers for ``device``: TensorRT, CUDA (when present), then the CPU."""
    wanted = ["CPUExecutionProvider"]
    if (device or "cpu").strip().lower().startswith(("cuda", "auto")):
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", *wanted]
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


class _OrtNet:
    """One onnxruntime session: ``run(blob)`` returns the first output."""

    def __init__(self, path: Path, device: str, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        self.providers = ort_providers(device, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(path), options, providers=self.providers)
        except Exception as exc:  # onnxruntime's own error types
            raise ValueError(f"onnxruntime cannot load ONNX model {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name

    def run(self, blob: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input: blob})[0])


class _CvNet:
    """OpenCV DNN: ``run(blob)`` returns the output."""

    def __init__(self, path: Path) -> None:
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise ValueError(f"OpenCV cannot read ONNX model {path}: {exc}") from exc
        self.providers = ["opencv"]

    def run(self, blob: np.ndarray) -> np.ndarray:
        self._net.setInput(blob)
        return np.asarray(self._net.forward())


def open_onnx(path: Path, runtime: str = "auto", device: str = "cpu", threads: int = 0) -> Any:
    """Load ``path`` with ``runtime`` (one of RUNTIMES); ``.run(blob)`` and ``.providers``."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown ONNX runtime {runtime!r}; choose one of {list(RUNTIMES)}")
    if runtime in ("auto", "onnxruntime"):
        try:
            return _OrtNet(path, device, threads)
        except ImportError as exc:
            if runtime == "onnxruntime":
                raise ImportError(f"onnx_runtime onnxruntime: the onnxruntime package is not "
                                  f"installed ({exc}); pip install onnxruntime") from exc
            LOG.info("onnxruntime not installed: running %s with OpenCV DNN", path)
    if (device or "cpu").strip().lower().startswith("cuda"):
        LOG.warning("OpenCV DNN runs %s on the CPU (device %s asks for CUDA: install "
                    "onnxruntime-gpu)", path, device)
    return _CvNet(path)


class OnnxFaceEmbedder:
    """An ONNX face model: ArcFace-style (NCHW, inner crop) or the exported dlib ResNet."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        input_size: int = 112,
        mean: float | Sequence[float] = 127.5,
        std: float | Sequence[float] = 127.5,
        bgr: bool = False,
        model_id: str = "",
        runtime: str = "auto",
        device: str = "cpu",
        num_threads: int = 0,
    ) -> None:
        """Load the network once and probe its output size (and whether it takes batches)."""
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ONNX face model not found at {path}; see models/README.md")
        meta = read_sidecar(path)
        self._chipper = None
        if meta.get("input") == "dlib_chip":
            from .dlib_face import DlibFaceChipper, default_model_paths

            self._chipper = DlibFaceChipper(default_model_paths()[1])
            input_size = int(meta.get("size", 150))
            model_id = model_id or str(meta.get("embedder_id", ""))
        if input_size < 16:
            raise ValueError(f"input_size must be >= 16, got {input_size}")
        self._mean = _per_channel(mean, "mean")
        self._std = _per_channel(std, "std")
        if np.any(self._std == 0):
            raise ValueError("std must not be 0")
        self._size = int(input_size)
        self._bgr = bool(bgr)
        self._net = open_onnx(path, runtime, device, num_threads)
        probe = self._blank(2)
        try:
            out = self._run(probe)
            self._batched = out.shape[0] == 2
        except Exception:  # the runtime's own error type: a model without a batch axis
            self._batched = False
        if not self._batched:
            out = self._run(probe[:1])
        self._dim = int(np.prod(out.shape[1:]))
        stem = re.sub(r"[^A-Za-z0-9]+", "_", path.stem).strip("_").lower() or "model"
        self._id = model_id or f"onnx_{stem}_{self._dim}"
        LOG.info("ONNX face model %s: dim %d, batched=%s, input %s, runtime %s", path,
                 self._dim, self._batched, meta.get("input", "arcface"),
                 ",".join(self._net.providers))

    @property
    def id(self) -> str:
        """Embedder id (the sidecar's, ``onnx_<file stem>_<dim>`` unless given)."""
        return self._id

    @property
    def dim(self) -> int:
        """Embedding length, probed from the model."""
        return self._dim

    @property
    def providers(self) -> list[str]:
        """What runs the model: onnxruntime's providers in order, or ['opencv']."""
        return list(self._net.providers)

    def _blank(self, n: int) -> np.ndarray:
        if self._chipper is not None:
            return np.zeros((n, self._size, self._size, 3), dtype=np.uint8)
        return np.zeros((n, 3, self._size, self._size), dtype=np.float32)

    def _run(self, blob: np.ndarray) -> np.ndarray:
        """One forward pass (NCHW float32, or NHWC uint8 dlib chips)."""
        return self._net.run(blob)

    def preprocess(self, canonical_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return the blob the model sees for these canonical crops."""
        crops = check_canonical_crops(canonical_crops)
        if not crops:
            return self._blank(0)
        if self._chipper is not None:
            return np.stack(self._chipper.chips(crops))
        faces = [inner_crop(c, self._size) for c in crops]
        if self._bgr:
            faces = [f[..., ::-1] for f in faces]
        blob = np.stack(faces).astype(np.float32).transpose(0, 3, 1, 2)
        return np.ascontiguousarray((blob - self._mean) / self._std)

    def embed(self, canonical_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return (N, dim) float32 L2-normalised embeddings."""
        blob = self.preprocess(canonical_crops)
        if len(blob) == 0:
            return empty_embeddings(self.dim)
        if self._batched:
            raw = self._run(blob).reshape(len(blob), -1)
        else:
            rows = [self._run(blob[i : i + 1]).reshape(1, -1) for i in range(len(blob))]
            raw = np.concatenate(rows)
        if raw.shape[1] != self._dim:
            raise ValueError(
                f"{self.id} returned {raw.shape[1]} values per face, expected {self._dim}"
            )
        return finish_embeddings(raw, self._dim, self.id)
