"""The linear activity head: training with cross-validation, the .npz file, embedder checks."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from visio_memoria_ros.activity import (
    HEAD_FORMAT,
    LinearActivityHead,
    list_image_folder,
    train_from_folder,
    train_head,
)

EMBEDDER = "dinov3_vitb16_scene_1536_r224"


def _separable(counts: dict[str, int], dim: int = 32, seed: int = 0):
    """Gaussian clusters around orthogonal directions, unit-normalised like scene embeddings."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i, (label, n) in enumerate(counts.items()):
        centre = np.zeros(dim)
        centre[i] = 4.0
        rows.append(centre + rng.normal(0, 0.5, (n, dim)))
        labels += [label] * n
    x = np.concatenate(rows).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def test_train_head_separable_features_cross_validates_and_reports_counts():
    x, y = _separable({"sitting": 12, "standing": 15, "walking": 9})
    head, report = train_head(x, y, EMBEDDER, folds=5)
    assert report.class_counts == {"sitting": 12, "standing": 15, "walking": 9}
    assert report.n_samples == 36 and report.feature_dim == 32
    assert report.folds == 5 and len(report.fold_accuracies) == 5
    assert report.cv_accuracy >= 0.95
    assert set(report.cv_recall) == {"sitting", "standing", "walking"}
    assert report.train_accuracy == 1.0
    assert head.labels == ("sitting", "standing", "walking")
    assert head.embedder_id == EMBEDDER and head.feature_dim == 32
    assert head.method == f"head:{EMBEDDER}"
    predicted = [label for label, _ in head.predict(x, EMBEDDER)]
    assert predicted == y
    probs = head.predict_proba(x, EMBEDDER)
    assert probs.shape == (36, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert "36 samples" in report.summary()
    assert head.metadata["class_counts"] == report.class_counts
    assert head.metadata["cv_accuracy"] == pytest.approx(report.cv_accuracy)


def test_folds_adapt_to_the_smallest_class():
    x, y = _separable({"a": 10, "b": 3})
    _, report = train_head(x, y, EMBEDDER, folds=5)
    assert report.folds == 3
    x, y = _separable({"a": 10, "b": 2})
    _, report = train_head(x, y, EMBEDDER, folds=5)
    assert report.folds == 2


def test_binary_head_matches_sklearn_probabilities():
    from sklearn.linear_model import LogisticRegression

    x, y = _separable({"leaving": 8, "approaching": 8}, dim=6, seed=3)
    head, _ = train_head(x, y, EMBEDDER, standardize=False, l2_input=False, c=0.5)
    model = LogisticRegression(C=0.5, max_iter=2000).fit(x.astype(np.float64), y)
    expected = model.predict_proba(x.astype(np.float64))
    cols = [list(model.classes_).index(label) for label in head.labels]
    np.testing.assert_allclose(head.predict_proba(x, EMBEDDER), expected[:, cols], atol=1e-4)


def test_training_refuses_bad_input_with_reasons():
    x, y = _separable({"a": 4, "b": 4})
    with pytest.raises(ValueError, match="at least 2 activity classes"):
        train_head(x[:4], y[:4], EMBEDDER)
    with pytest.raises(ValueError, match="at least 2 examples"):
        train_head(x[:5], y[:5], EMBEDDER)
    with pytest.raises(ValueError, match="labels"):
        train_head(x, y[:-1], EMBEDDER)
    with pytest.raises(ValueError, match="embedder_id"):
        train_head(x, y, " ")
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_head(bad, y, EMBEDDER)
    with pytest.raises(ValueError, match="empty"):
        train_head(x, ["a"] * 4 + [""] * 4, EMBEDDER)


def test_save_load_round_trip_gives_identical_predictions(tmp_path: Path):
    x, y = _separable({"sitting": 6, "standing": 6, "walking": 6})
    head, _ = train_head(x, y, EMBEDDER)
    path = head.save(tmp_path / "models" / "activity_head.npz")
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no temp file left
    loaded = LinearActivityHead.load(path)
    assert loaded.labels == head.labels and loaded.embedder_id == EMBEDDER
    assert loaded.l2_input == head.l2_input
    assert loaded.metadata == json.loads(json.dumps(head.metadata))
    np.testing.assert_array_equal(
        loaded.predict_proba(x, EMBEDDER), head.predict_proba(x, EMBEDDER)
    )
    # The file is plain arrays: loadable without pickle.
    with np.load(path, allow_pickle=False) as data:
        assert str(data["format"]) == HEAD_FORMAT
        assert int(data["feature_dim"]) == 32


def test_predict_refuses_features_of_another_embedder_or_dimension():
    x, y = _separable({"a": 4, "b": 4})
    head, _ = train_head(x, y, EMBEDDER)
    with pytest.raises(ValueError, match="dlib_resnet"):
        head.predict(x, "dlib_resnet_128")
    with pytest.raises(ValueError, match="expects 32-d"):
        head.predict(np.ones((2, 31), np.float32), EMBEDDER)
    with pytest.raises(ValueError, match="NaN"):
        head.predict(np.full(32, np.nan, np.float32), EMBEDDER)
    assert len(head.predict(x[0], EMBEDDER)) == 1  # one 1-D vector is one row


def _write(path: Path, **overrides) -> Path:
    arrays = {
        "format": np.array(HEAD_FORMAT),
        "version": np.array(1),
        "weights": np.eye(2, 3, dtype=np.float32),
        "bias": np.zeros(2, np.float32),
        "labels": np.array(["sitting", "standing"]),
        "feature_dim": np.array(3),
        "embedder_id": np.array(EMBEDDER),
        "l2_input": np.array(True),
        "mean": np.zeros(3, np.float32),
        "scale": np.ones(3, np.float32),
        "metadata": np.array("{}"),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def test_load_validates_the_file(tmp_path: Path):
    assert LinearActivityHead.load(_write(tmp_path / "ok.npz")).labels == ("sitting", "standing")
    cases = {
        "missing": ({"bias": None}, "lacks"),
        "format": ({"format": np.array("something_else")}, "format"),
        "version": ({"version": np.array(99)}, "version 99"),
        "dim": ({"feature_dim": np.array(4)}, "feature_dim"),
        "bias": ({"bias": np.zeros(3, np.float32)}, "bias shape"),
        "dup": ({"labels": np.array(["a", "a"])}, "unique"),
        "nan": ({"weights": np.full((2, 3), np.nan, np.float32)}, "NaN"),
        "scale": ({"scale": np.zeros(3, np.float32)}, "scale"),
        "meta": ({"metadata": np.array("not json")}, "JSON"),
        "pickle": ({"metadata": np.array([{"x": 1}], dtype=object)}, "safe"),
        "labels": ({"labels": np.array([1, 2])}, "strings"),
        "embedder": ({"embedder_id": np.array("")}, "embedder_id"),
    }
    for name, (overrides, message) in cases.items():
        path = _write(tmp_path / f"{name}.npz", **overrides)
        with pytest.raises(ValueError, match=message):
            LinearActivityHead.load(path)
    (tmp_path / "junk.npz").write_bytes(b"definitely not a zip file")
    with pytest.raises(ValueError):
        LinearActivityHead.load(tmp_path / "junk.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ValueError, match="lacks"):
        LinearActivityHead.load(tmp_path / "empty.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        LinearActivityHead.load(tmp_path / "single.npy")
    with pytest.raises(FileNotFoundError):
        LinearActivityHead.load(tmp_path / "absent.npz")


COLOURS = {"red_room": (200, 40, 40), "green_room": (40, 190, 60), "blue_room": (30, 60, 210)}


def _colour_histogram(images: list[np.ndarray]) -> np.ndarray:
    """A stand-in embedder: 8-bin histograms per RGB channel (24-d)."""
    rows = []
    for image in images:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        hist = [np.histogram(image[..., c], bins=8, range=(0, 256))[0] for c in range(3)]
        rows.append(np.concatenate(hist).astype(np.float32))
    return np.stack(rows)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    root = tmp_path / "activities"
    for label, rgb in COLOURS.items():
        (root / label).mkdir(parents=True)
        for i in range(4):
            noise = rng.normal(0, 25, (24, 32, 3))
            image = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
            ext = ".png" if i % 2 else ".jpg"
            cv2.imwrite(str(root / label / f"{i}{ext}"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (root / "red_room" / "broken.jpg").write_bytes(b"not an image")
    (root / "red_room" / "notes.txt").write_text("ignored", encoding="utf-8")
    (root / ".cache").mkdir()
    (root / "empty_label").mkdir()
    return root


def test_train_from_folder_with_a_caller_supplied_embedder(image_folder: Path, tmp_path: Path):
    calls = []

    def embed_fn(images: list[np.ndarray]) -> np.ndarray:
        calls.append(len(images))
        return _colour_histogram(images)

    head, report = train_from_folder(image_folder, embed_fn, "colour_hist_24", batch_size=5)
    assert report.class_counts == {"blue_room": 4, "green_room": 4, "red_room": 4}
    assert max(calls) <= 5 and sum(calls) == 12
    assert report.skipped_files == [str(image_folder / "red_room" / "broken.jpg")]
    assert report.cv_accuracy == 1.0 and report.folds == 4
    assert report.source == str(image_folder)
    assert head.embedder_id == "colour_hist_24" and head.feature_dim == 24
    loaded = LinearActivityHead.load(head.save(tmp_path / "head.npz"))
    probe = np.full((20, 20, 3), COLOURS["green_room"], np.uint8)
    [(label, prob)] = loaded.predict(_colour_histogram([probe]), "colour_hist_24")
    assert label == "green_room" and prob > 0.5


def test_train_from_folder_refusals(image_folder: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="not found"):
        train_from_folder(tmp_path / "nope", _colour_histogram, "x")
    (tmp_path / "bare").mkdir()
    with pytest.raises(ValueError, match="no label sub-folders"):
        list_image_folder(tmp_path / "bare")
    with pytest.raises(ValueError, match="expected \\(N, D\\)"):
        train_from_folder(image_folder, lambda images: np.zeros((1, 4)), "x")
