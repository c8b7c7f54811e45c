"""visio-memoria train-activity on a tiny random DINOv3 saved to disk and a generated image set."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from visio_memoria_ros.activity import LinearActivityHead
from visio_memoria_ros.cli import main

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def dinov3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random DINOv3 ViT saved like the released model (config.json + weights)."""
    torch.manual_seed(0)
    config = transformers.DINOv3ViTConfig(
        hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        patch_size=16, num_register_tokens=4, image_size=64,
    )
    path = tmp_path_factory.mktemp("dinov3_tiny")
    transformers.DINOv3ViTModel(config).eval().save_pretrained(path)
    return path


def _config(tmp_path: Path, model_dir: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(
        "embedding_node:\n  ros__parameters:\n"
        f"    dinov3_model_dir: \"{model_dir}\"\n    scene_resolution: 64\n    max_batch: 4\n"
    )
    return path


def _image_set(root: Path) -> Path:
    """Two labels, 6 images each: reddish scenes and bluish scenes with noise."""
    rng = np.random.default_rng(0)
    for label, colour in (("sitting", (40, 40, 200)), ("waving", (200, 60, 30))):
        (root / label).mkdir(parents=True)
        for i in range(6):
            img = np.clip(rng.normal(colour, 30, (80, 60, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / label / f"{i}.png"), img)
    (root / "sitting" / "broken.jpg").write_text("not an image")
    return root


def test_train_activity_saves_a_usable_head(dinov3_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = _image_set(tmp_path / "data")
    out = tmp_path / "models" / "head.npz"
    code = main(["--config", str(_config(tmp_path, dinov3_dir)), "train-activity", str(data),
                 "--out", str(out), "--folds", "3", "--json"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["schema"] == "visio-memoria.train-activity/1" and doc["out"] == str(out)
    report = doc["report"]
    assert report["n_samples"] == 12 and report["folds"] == 3
    assert report["class_counts"] == {"sitting": 6, "waving": 6}
    assert 0.0 <= report["cv_accuracy"] <= 1.0
    assert report["skipped_files"] == [str(data / "sitting" / "broken.jpg")]
    head = LinearActivityHead.load(out)
    assert head.labels == ("sitting", "waving")
    assert head.embedder_id == "dinov3_vit48_scene_96_r64" == report["embedder_id"]
    assert head.feature_dim == 96


def test_train_activity_refusals(dinov3_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = _image_set(tmp_path / "data")
    missing = _config(tmp_path, tmp_path / "no-weights-here")
    code = main(["--config", str(missing), "train-activity", str(data),
                 "--out", str(tmp_path / "h.npz")])
    _, err = capsys.readouterr()
    assert code == 1 and "DINOv3 weights not found" in err and "models/README.md" in err
    assert err.count("\n") == 1 and not (tmp_path / "h.npz").exists()

    code = main(["--config", str(_config(tmp_path, dinov3_dir)), "train-activity",
                 str(tmp_path / "empty")])
    _, err = capsys.readouterr()
    assert code == 1 and "training folder not found" in err
    code = main(["train-activity", str(data), "--folds", "1"])
    _, err = capsys.readouterr()
    assert code == 2 and "--folds" in err
