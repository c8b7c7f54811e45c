"""A linear (softmax) activity head over scene features, stored as one safe ``.npz`` file.

The head computes ``softmax(W @ normalise(x) + b)`` where ``normalise`` optionally scales ``x``
to unit length and then standardises it with the stored per-feature mean and scale. The file
holds plain arrays only (no pickle) and is validated on load:

    format        "visio_memoria.activity_head"          version      1
    weights       float32 (C, D)                          bias         float32 (C,)
    labels        str (C,), unique, non-empty             feature_dim  int D
    embedder_id   str, the model that made the features   l2_input     bool
    mean, scale   float32 (D,), scale > 0                 metadata     JSON object (training)

A head is tied to the embedder that produced its training features: ``predict`` refuses
features from any other embedder id or dimension, because a linear map fitted on one feature
space is meaningless on another.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

HEAD_FORMAT = "visio_memoria.activity_head"
HEAD_VERSION = 1
_REQUIRED = (
    "format",
    "version",
    "weights",
    "bias",
    "labels",
    "feature_dim",
    "embedder_id",
    "l2_input",
    "mean",
    "scale",
    "metadata",
)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of an (N, C) array, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class LinearActivityHead:
    """Softmax classifier over one embedder's scene features; see the module docstring."""

    weights: np.ndarray
    bias: np.ndarray
    labels: tuple[str, ...]
    embedder_id: str
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    l2_input: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.float32)
        self.bias = np.asarray(self.bias, dtype=np.float32).reshape(-1)
        self.labels = tuple(str(label) for label in self.labels)
        self.embedder_id = str(self.embedder_id)
        self.l2_input = bool(self.l2_input)
        if self.weights.ndim != 2:
            raise ValueError(f"weights must be (classes, dim), got shape {self.weights.shape}")
        n_classes, dim = self.weights.shape
        self.mean = (
            np.zeros(dim, np.float32)
            if self.mean is None
            else np.asarray(self.mean, dtype=np.float32).reshape(-1)
        )
        self.scale = (
            np.ones(dim, np.float32)
            if self.scale is None
            else np.asarray(self.scale, dtype=np.float32).reshape(-1)
        )
        problem = _check_arrays(
            self.weights, self.bias, self.labels, self.mean, self.scale, self.embedder_id
        )
        if problem:
            raise ValueError(f"invalid activity head: {problem}")
        if n_classes < 2:
            raise ValueError(f"invalid activity head: needs at least 2 classes, got {n_classes}")

    @property
    def feature_dim(self) -> int:
        """Length of the feature vectors this head accepts."""
        return int(self.weights.shape[1])

    @property
    def method(self) -> str:
        """The method string published with its predictions: ``head:<embedder id>``."""
        return f"head:{self.embedder_id}"

    def check_features(self, features: object, embedder_id: str) -> np.ndarray:
        """Return ``features`` as float32 (N, D), or raise ValueError saying why they don't fit."""
        if str(embedder_id) != self.embedder_id:
            raise ValueError(
                f"activity head was trained on features of {self.embedder_id!r}, refusing "
                f"features of {embedder_id!r}"
            )
        x = np.asarray(features, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise ValueError(f"features must be (D,) or (N, D), got shape {x.shape}")
        if x.shape[1] != self.feature_dim:
            raise ValueError(
                f"activity head expects {self.feature_dim}-d features of {self.embedder_id!r}, "
                f"got {x.shape[1]}-d"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError("features contain NaN or infinite values")
        return x

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Apply the stored feature normalisation to float32 (N, D) features."""
        if self.l2_input:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / np.maximum(norms, 1e-12)
        return (x - self.mean) / self.scale

    def predict_proba(self, features: object, embedder_id: str) -> np.ndarray:
        """Return (N, C) class probabilities (columns in ``labels`` order) for N feature rows."""
        x = self.check_features(features, embedder_id)
        logits = self.normalise(x) @ self.weights.T + self.bias
        return softmax(logits.astype(np.float64)).astype(np.float32)

    def predict(self, features: object, embedder_id: str) -> list[tuple[str, float]]:
        """Return ``(label, probability)`` of the most likely class for each feature row."""
        probs = self.predict_proba(features, embedder_id)
        best = probs.argmax(axis=1)
        return [(self.labels[i], float(probs[row, i])) for row, i in enumerate(best)]

    def save(self, path: str | Path) -> Path:
        """Write the head to ``path`` (an ``.npz`` file, replaced atomically); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "format": np.array(HEAD_FORMAT),
            "version": np.array(HEAD_VERSION, dtype=np.int64),
            "weights": self.weights,
            "bias": self.bias,
            "labels": np.array(self.labels, dtype=str),
            "feature_dim": np.array(self.feature_dim, dtype=np.int64),
            "embedder_id": np.array(self.embedder_id),
            "l2_input": np.array(self.l2_input),
            "mean": self.mean,
            "scale": self.scale,
            "metadata": np.array(json.dumps(self.metadata, sort_keys=True, default=str)),
        }
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        logger.info(
            "saved activity head %s (%d classes, %s)", path, len(self.labels), self.embedder_id
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> LinearActivityHead:
        """Read and validate a head written by ``save``; raises ValueError naming the problem."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"activity head file not found: {path}")
        arrays = _read_npz(path)
        missing = [key for key in _REQUIRED if key not in arrays]
        if missing:
            raise ValueError(f"{path}: activity head file lacks {missing}")
        if str(arrays["format"]) != HEAD_FORMAT:
            raise ValueError(f"{path}: format is {str(arrays['format'])!r}, not {HEAD_FORMAT!r}")
        version = int(arrays["version"])
        if version != HEAD_VERSION:
            raise ValueError(f"{path}: head version {version} is not supported ({HEAD_VERSION})")
        try:
            metadata = json.loads(str(arrays["metadata"]))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: metadata is not JSON ({exc})") from exc
        if not isinstance(metadata, dict):
            raise ValueError(f"{path}: metadata must be a JSON object")
        for key in ("weights", "bias", "mean", "scale"):
            if arrays[key].dtype.kind != "f":
                raise ValueError(f"{path}: {key} must be floating point, got {arrays[key].dtype}")
        if arrays["labels"].dtype.kind != "U":
            raise ValueError(f"{path}: labels must be strings, got {arrays['labels'].dtype}")
        weights = arrays["weights"]
        feature_dim = int(arrays["feature_dim"])
        if weights.ndim != 2 or weights.shape[1] != feature_dim:
            raise ValueError(
                f"{path}: weights shape {weights.shape} disagrees with feature_dim {feature_dim}"
            )
        try:
            head = cls(
                weights=weights,
                bias=arrays["bias"],
                labels=tuple(arrays["labels"].reshape(-1).tolist()),
                embedder_id=str(arrays["embedder_id"]),
                mean=arrays["mean"],
                scale=arrays["scale"],
                l2_input=bool(arrays["l2_input"]),
                metadata=metadata,
            )
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        logger.info(
            "loaded activity head %s: %s on %d-d %s features",
            path,
            ", ".join(head.labels),
            head.feature_dim,
            head.embedder_id,
        )
        return head


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Return the arrays of an ``.npz`` file without ever unpickling; ValueError otherwise."""
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:  # pickled content is refused, never executed
        raise ValueError(f"{path}: not a safe activity head file ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive, got a single array")
    try:
        with data:
            return {key: data[key] for key in data.files}
    except ValueError as exc:  # an object array inside the archive
        raise ValueError(f"{path}: not a safe activity head file ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc


def _check_arrays(  # noqa: PLR0917 - one private call site, arrays named at it
    weights: np.ndarray,
    bias: np.ndarray,
    labels: Sequence[str],
    mean: np.ndarray,
    scale: np.ndarray,
    embedder_id: str,
) -> str | None:
    """Return what is inconsistent about a head's arrays, or None."""
    n_classes, dim = weights.shape
    if dim < 1:
        return "feature dimension is 0"
    if bias.shape != (n_classes,):
        return f"bias shape {bias.shape} != ({n_classes},)"
    if len(labels) != n_classes:
        return f"{len(labels)} labels for {n_classes} weight rows"
    if any(not label.strip() for label in labels):
        return "a label is empty"
    if len(set(labels)) != len(labels):
        return f"labels are not unique: {list(labels)}"
    if mean.shape != (dim,) or scale.shape != (dim,):
        return f"mean/scale shapes {mean.shape}/{scale.shape} != ({dim},)"
    for name, arr in (("weights", weights), ("bias", bias), ("mean", mean), ("scale", scale)):
        if not np.all(np.isfinite(arr)):
            return f"{name} contains NaN or infinite values"
    if np.any(scale <= 0):
        return "scale must be positive"
    if not embedder_id.strip():
        return "embedder_id is empty"
    return None
