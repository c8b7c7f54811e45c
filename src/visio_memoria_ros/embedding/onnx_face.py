"""A user-supplied ArcFace-style ONNX face model, run with OpenCV DNN (no extra runtime)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..core.face_crop import inner_crop
from .base import check_canonical_crops, empty_embeddings, finish_embeddings

LOG = logging.getLogger(__name__)


def _per_channel(value: float | Sequence[float], name: str) -> np.ndarray:
    """Return a (1, 3, 1, 1) float32 array from a scalar or 3 values."""
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be one number or 3 finite numbers, got {value!r}")
    return arr.reshape(1, 3, 1, 1)


class OnnxFaceEmbedder:
    """ArcFace-style ONNX model (NCHW, RGB by default) on the inner crop of the canonical crop."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        input_size: int = 112,
        mean: float | Sequence[float] = 127.5,
        std: float | Sequence[float] = 127.5,
        bgr: bool = False,
        model_id: str = "",
    ) -> None:
        """Load the network once and probe its output size (and whether it takes batches)."""
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ONNX face model not found at {path}; see models/README.md")
        if input_size < 16:
            raise ValueError(f"input_size must be >= 16, got {input_size}")
        self._mean = _per_channel(mean, "mean")
        self._std = _per_channel(std, "std")
        if np.any(self._std == 0):
            raise ValueError("std must not be 0")
        self._size = int(input_size)
        self._bgr = bool(bgr)
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise ValueError(f"OpenCV cannot read ONNX model {path}: {exc}") from exc
        probe = np.zeros((2, 3, self._size, self._size), dtype=np.float32)
        try:
            out = self._run(probe)
            self._batched = out.shape[0] == 2
        except cv2.error:
            self._batched = False
        if not self._batched:
            out = self._run(probe[:1])
        self._dim = int(np.prod(out.shape[1:]))
        stem = re.sub(r"[^A-Za-z0-9]+", "_", path.stem).strip("_").lower() or "model"
        self._id = model_id or f"onnx_{stem}_{self._dim}"
        LOG.info("ONNX face model %s: dim %d, batched=%s", path, self._dim, self._batched)

    @property
    def id(self) -> str:
        """Embedder id (``onnx_<file stem>_<dim>`` unless given)."""
        return self._id

    @property
    def dim(self) -> int:
        """Embedding length, probed from the model."""
        return self._dim

    def _run(self, blob: np.ndarray) -> np.ndarray:
        """One forward pass of an NCHW float32 blob."""
        self._net.setInput(blob)
        return np.asarray(self._net.forward())

    def preprocess(self, canonical_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return the NCHW float32 blob the model sees for these canonical crops."""
        crops = check_canonical_crops(canonical_crops)
        if not crops:
            return np.zeros((0, 3, self._size, self._size), dtype=np.float32)
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
