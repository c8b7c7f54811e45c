"""Train a ``LinearActivityHead`` with scikit-learn logistic regression, cross-validated.

``train_head`` takes features already computed; ``train_from_folder`` reads a folder-per-label
image set and asks the caller's ``embed_fn`` for the features, so this room never imports an
embedder (the CLI passes the DINOv3 scene embedder, tests pass a colour histogram).

Cross-validation is stratified k-fold with ``k = min(folds, smallest class count)`` (at least
2, so every class needs 2 examples). Each fold fits the same code path as the final head
(normalisation fitted on the training part only) and scores the head's own ``predict``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .head import LinearActivityHead

logger = logging.getLogger(__name__)

#: Image file extensions ``train_from_folder`` reads (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

EmbedFn = Callable[[list[np.ndarray]], np.ndarray]


@dataclass
class TrainReport:
    """What training saw and how well the head generalised (cross-validated)."""

    embedder_id: str
    feature_dim: int
    n_samples: int
    class_counts: dict[str, int]
    folds: int
    cv_accuracy: float
    cv_accuracy_std: float
    fold_accuracies: list[float]
    cv_recall: dict[str, float]
    train_accuracy: float
    c: float
    source: str = ""
    skipped_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-serialisable data."""
        return asdict(self)

    def summary(self) -> str:
        """One human-readable paragraph: counts, k, CV accuracy and per-class recall."""
        counts = ", ".join(f"{k}={v}" for k, v in self.class_counts.items())
        recall = ", ".join(f"{k}={v:.2f}" for k, v in self.cv_recall.items())
        text = (
            f"{self.n_samples} samples of {self.feature_dim}-d {self.embedder_id} features "
            f"({counts}); {self.folds}-fold stratified CV accuracy "
            f"{self.cv_accuracy:.3f} ± {self.cv_accuracy_std:.3f}; recall {recall}; "
            f"training accuracy {self.train_accuracy:.3f}"
        )
        if self.skipped_files:
            text += f"; {len(self.skipped_files)} unreadable files skipped"
        return text


def _check_training_data(
    features: object, labels: Sequence[str], embedder_id: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate features/labels; return X (N, D), y as class indices and the sorted class list."""
    if not str(embedder_id).strip():
        raise ValueError("embedder_id must name the model that made the features")
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    names = [str(label).strip() for label in labels]
    if len(names) != x.shape[0]:
        raise ValueError(f"{x.shape[0]} feature rows but {len(names)} labels")
    if any(not name for name in names):
        raise ValueError("a label is empty")
    counts = Counter(names)
    if len(counts) < 2:
        raise ValueError(f"need at least 2 activity classes to train, got {sorted(counts)}")
    too_few = sorted(name for name, n in counts.items() if n < 2)
    if too_few:
        raise ValueError(
            f"every class needs at least 2 examples for cross-validation; too few: {too_few}"
        )
    classes = sorted(counts)
    index = {name: i for i, name in enumerate(classes)}
    y = np.array([index[name] for name in names], dtype=np.int64)
    return x, y, classes


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    classes: Sequence[str],
    embedder_id: str,
    *,
    c: float,
    l2_input: bool,
    standardize: bool,
    max_iter: int,
) -> LinearActivityHead:
    """Fit normalisation + logistic regression on (x, y) and return it as a head."""
    from sklearn.linear_model import LogisticRegression

    xn = x.astype(np.float64)
    if l2_input:
        xn = xn / np.maximum(np.linalg.norm(xn, axis=1, keepdims=True), 1e-12)
    dim = x.shape[1]
    mean, scale = np.zeros(dim), np.ones(dim)
    if standardize:
        mean = xn.mean(axis=0)
        std = xn.std(axis=0)
        # Constant features would divide by ~0; their standardised value is 0 anyway.
        scale = np.where(std > 1e-8, std, 1.0)
    xn = (xn - mean) / scale
    present = np.unique(y)
    model = LogisticRegression(C=c, max_iter=max_iter)
    model.fit(xn, y)
    coef, intercept = model.coef_, model.intercept_
    weights = np.zeros((len(classes), dim))
    bias = np.full(len(classes), -1e4)  # a class absent from this fit is never predicted
    if coef.shape[0] == 1:  # binary: sigmoid(w.x + b) == softmax over [-(w.x+b)/2, (w.x+b)/2]
        weights[present[0]], bias[present[0]] = -coef[0] / 2, -intercept[0] / 2
        weights[present[1]], bias[present[1]] = coef[0] / 2, intercept[0] / 2
    else:
        for row, cls in enumerate(model.classes_):
            weights[cls], bias[cls] = coef[row], intercept[row]
    return LinearActivityHead(
        weights=weights,
        bias=bias,
        labels=tuple(classes),
        embedder_id=embedder_id,
        mean=mean,
        scale=scale,
        l2_input=l2_input,
    )


def train_head(
    features: object,
    labels: Sequence[str],
    embedder_id: str,
    *,
    c: float = 1.0,
    folds: int = 5,
    l2_input: bool = True,
    standardize: bool = True,
    max_iter: int = 2000,
    seed: int = 0,
) -> tuple[LinearActivityHead, TrainReport]:
    """Fit a head on (N, D) features with string labels; return it and a cross-validated report."""
    from sklearn.model_selection import StratifiedKFold

    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"c (inverse regularisation) must be > 0, got {c}")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    x, y, classes = _check_training_data(features, labels, embedder_id)
    counts = np.bincount(y, minlength=len(classes))
    k = max(2, min(int(folds), int(counts.min())))
    fit_kwargs = {"c": c, "l2_input": l2_input, "standardize": standardize, "max_iter": max_iter}

    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    fold_acc: list[float] = []
    predicted = np.empty_like(y)
    for train_idx, test_idx in splitter.split(x, y):
        fold_head = _fit(x[train_idx], y[train_idx], classes, embedder_id, **fit_kwargs)
        probs = fold_head.predict_proba(x[test_idx], embedder_id)
        predicted[test_idx] = probs.argmax(axis=1)
        fold_acc.append(float(np.mean(predicted[test_idx] == y[test_idx])))
    recall = {name: float(np.mean(predicted[y == i] == i)) for i, name in enumerate(classes)}

    head = _fit(x, y, classes, embedder_id, **fit_kwargs)
    train_acc = float(np.mean(head.predict_proba(x, embedder_id).argmax(axis=1) == y))
    report = TrainReport(
        embedder_id=embedder_id,
        feature_dim=int(x.shape[1]),
        n_samples=int(x.shape[0]),
        class_counts={name: int(n) for name, n in zip(classes, counts, strict=True)},
        folds=k,
        cv_accuracy=float(np.mean(fold_acc)),
        cv_accuracy_std=float(np.std(fold_acc)),
        fold_accuracies=fold_acc,
        cv_recall=recall,
        train_accuracy=train_acc,
        c=float(c),
    )
    head.metadata = {
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "trainer": "sklearn.linear_model.LogisticRegression",
        "l2_input": l2_input,
        "standardize": standardize,
        **{
            key: value
            for key, value in report.to_dict().items()
            if key not in ("skipped_files", "fold_accuracies")
        },
    }
    logger.info("trained activity head: %s", report.summary())
    return head, report


def list_image_folder(
    folder: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> dict[str, list[Path]]:
    """Return ``{label: sorted image paths}`` for a folder with one sub-folder per label."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"training folder not found: {root}")
    exts = {e.lower() for e in extensions}
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p
            for p in sub.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts
        )
        if files:
            out[sub.name] = files
        else:
            logger.warning("training folder %s has no images; ignored", sub)
    if not out:
        raise ValueError(f"{root} has no label sub-folders with images ({', '.join(sorted(exts))})")
    return out


def _read_rgb(path: Path) -> np.ndarray | None:
    """Read an image file as RGB uint8, or None when OpenCV cannot decode it."""
    data = np.fromfile(str(path), dtype=np.uint8)  # works for non-ASCII paths too
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def embed_images(
    paths: Sequence[Path], embed_fn: EmbedFn, *, batch_size: int = 16
) -> tuple[np.ndarray, list[int], list[str]]:
    """Embed image files in batches; return (M, D) features, their path indices, skipped paths."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rows: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[str] = []
    dim: int | None = None
    batch: list[np.ndarray] = []
    batch_idx: list[int] = []

    def flush() -> None:
        nonlocal dim
        if not batch:
            return
        out = np.asarray(embed_fn(list(batch)), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(batch):
            raise ValueError(
                f"embed_fn returned shape {out.shape} for {len(batch)} images; expected (N, D)"
            )
        if dim is None:
            dim = out.shape[1]
        elif out.shape[1] != dim:
            raise ValueError(f"embed_fn changed dimension from {dim} to {out.shape[1]}")
        rows.append(out)
        kept.extend(batch_idx)
        batch.clear()
        batch_idx.clear()

    for i, path in enumerate(paths):
        image = _read_rgb(Path(path))
        if image is None:
            logger.warning("cannot read image %s; skipped", path)
            skipped.append(str(path))
            continue
        batch.append(image)
        batch_idx.append(i)
        if len(batch) >= batch_size:
            flush()
    flush()
    features = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    return features, kept, skipped


def train_from_folder(
    folder: str | Path,
    embed_fn: EmbedFn,
    embedder_id: str,
    *,
    batch_size: int = 16,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    **train_kwargs: Any,
) -> tuple[LinearActivityHead, TrainReport]:
    """Train a head from ``folder/<label>/*.jpg`` using ``embed_fn(list of RGB) -> (N, D)``."""
    by_label = list_image_folder(folder, extensions)
    paths = [p for files in by_label.values() for p in files]
    labels = [label for label, files in by_label.items() for _ in files]
    features, kept, skipped = embed_images(paths, embed_fn, batch_size=batch_size)
    if not kept:
        raise ValueError(f"no readable images in {folder}")
    head, report = train_head(features, [labels[i] for i in kept], embedder_id, **train_kwargs)
    report.source = str(folder)
    report.skipped_files = skipped
    head.metadata["source"] = str(folder)
    head.metadata["skipped_files"] = len(skipped)
    return head, report
