"""dlib ResNet face embedder: landmark helper, contract, and leave-one-out on BBT."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from visio_memoria_ros.core.face_crop import ARCFACE_TEMPLATE_112, CANONICAL_SIZE, align_face
from visio_memoria_ros.embedding import build_face_embedder
from visio_memoria_ros.embedding.dlib_face import (
    DLIB_NOSE_BASE_112,
    DlibFaceEmbedder,
    DlibLandmarker,
    landmarks_from_dlib5,
)

pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def embedder() -> DlibFaceEmbedder:
    """The offline default embedder, models from face_recognition_models."""
    return DlibFaceEmbedder()


def _transform(points: np.ndarray, angle_deg: float, scale: float, shift: tuple) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points @ rot.T + np.array(shift)


def test_landmarks_from_dlib5_recovers_template() -> None:
    # dlib order: right-of-image eye corners (outer, inner), left-of-image eye (outer, inner),
    # nose base; built in the ArcFace frame, then moved by a known similarity.
    le, re = ARCFACE_TEMPLATE_112[0], ARCFACE_TEMPLATE_112[1]
    dx = np.array([7.0, 0.0], np.float32)
    dlib_pts = np.array([re + dx, re - dx, le - dx, le + dx, DLIB_NOSE_BASE_112], np.float64)
    for angle, scale, shift in [(0, 1, (0, 0)), (12, 2.5, (300, 40)), (-20, 0.7, (-5, 9))]:
        got = landmarks_from_dlib5(_transform(dlib_pts, angle, scale, shift))
        want = _transform(ARCFACE_TEMPLATE_112.astype(np.float64), angle, scale, shift)
        assert got.shape == (5, 2) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-3 * max(scale, 1))


def test_landmarks_from_dlib5_rejects_nan() -> None:
    with pytest.raises(ValueError):
        landmarks_from_dlib5(np.full((5, 2), np.nan))


def test_contract_on_synthetic_crops(embedder: DlibFaceEmbedder) -> None:
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (CANONICAL_SIZE,) * 2 + (3,), dtype=np.uint8) for _ in range(3)]
    out = embedder.embed(crops)
    assert embedder.id == "dlib_resnet_v1_128" and embedder.dim == 128
    assert out.shape == (3, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    single = np.concatenate([embedder.embed([c]) for c in crops])
    np.testing.assert_allclose(out, single, atol=1e-5)
    assert embedder.embed([]).shape == (0, 128)
    chips = embedder.face_chips(crops[:1])
    assert chips[0].shape == (150, 150, 3)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((CANONICAL_SIZE, CANONICAL_SIZE, 3), np.float64),
        np.zeros((150, 150, 3), np.uint8),
        np.zeros((CANONICAL_SIZE, CANONICAL_SIZE, 4), np.uint8),
        None,
    ],
)
def test_bad_crops_raise(embedder: DlibFaceEmbedder, bad: object) -> None:
    with pytest.raises(ValueError):
        embedder.embed([bad])  # type: ignore[list-item]


def test_missing_model_file_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.dat"
    with pytest.raises(FileNotFoundError, match=r"nope\.dat"):
        DlibFaceEmbedder(recognition_model_path=missing)
    with pytest.raises(ValueError, match="num_jitters"):
        DlibFaceEmbedder(num_jitters=-1)


def test_factory_builds_dlib() -> None:
    emb = build_face_embedder("dlib", dlib_recognition_model_path="", dlib_num_jitters=0)
    assert emb.id == "dlib_resnet_v1_128"
    with pytest.raises(ValueError, match="unknown face embedder"):
        build_face_embedder("facenet")
    with pytest.raises(ValueError, match="onnx_model_path"):
        build_face_embedder("onnx", onnx_model_path="")


def _bbt_gallery(bbt_dir: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Canonical crops of the 40 gallery faces (landmarks from dlib's detector + 5 points)."""
    landmarker = DlibLandmarker()
    crops, names = [], []
    for path in sorted(bbt_dir.glob("*/*.png")):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        found = landmarker(image)
        assert found, f"dlib found no face in {path}"
        crops.append(align_face(image, found[0]))
        names.append(path.parent.name)
    return crops, np.array(names)


@pytest.mark.bbt
@pytest.mark.slow
def test_bbt_leave_one_out_is_perfect(bbt_dir: Path, embedder: DlibFaceEmbedder) -> None:
    crops, names = _bbt_gallery(bbt_dir)
    assert len(crops) == 40
    vectors = embedder.embed(crops)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    correct = int((names[nearest] == names).sum())
    assert correct == 40, f"leave-one-out {correct}/40"
    iu = np.triu_indices(len(names), 1)
    same = (names[:, None] == names[None, :])[iu]
    pair_sims = sims[iu]
    # loose sanity on separation; the exact numbers are in bench/bench_embedding.py --bbt
    assert pair_sims[same].mean() > pair_sims[~same].mean() + 0.05
