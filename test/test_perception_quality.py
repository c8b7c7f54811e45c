"""Face quality: size, sharpness and frontality each move the score the right way."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from visio_memoria_ros.core.face_crop import CANONICAL_TEMPLATE
from visio_memoria_ros.perception import face_quality, quality_parts
from visio_memoria_ros.perception.quality import frontality_score, sharpness_score, size_score

FRONTAL = CANONICAL_TEMPLATE.copy()  # symmetric ArcFace-template landmarks in a 192 px crop
BOX = np.array([20, 20, 172, 172], np.float32)


@pytest.fixture(scope="module")
def face_image(bbt_dir: Path) -> np.ndarray:
    path = sorted((bbt_dir / "leonard").iterdir())[0]
    return cv2.resize(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), (192, 192))


def textured(size: int = 192) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_size_score_saturates_at_reference():
    assert size_score(np.array([0, 0, 56, 80]), 112) == pytest.approx(0.5)
    assert size_score(np.array([0, 0, 300, 300]), 112) == 1.0
    assert size_score(np.array([0, 0, 0, 10]), 112) == 0.0


def test_blur_lowers_sharpness():
    img = textured()
    blurred = cv2.GaussianBlur(img, (0, 0), 4)
    assert sharpness_score(img, BOX) > 0.9
    assert sharpness_score(blurred, BOX) < 0.5 * sharpness_score(img, BOX)
    assert sharpness_score(np.zeros((192, 192, 3), np.uint8), BOX) == 0.0


def test_frontality_symmetric_is_one_and_profile_is_low():
    assert frontality_score(FRONTAL) == pytest.approx(1.0, abs=0.05)
    turned = FRONTAL.copy()
    turned[2, 0] += 25  # nose moves towards the right eye: head turned
    assert frontality_score(turned) < 0.5
    profile = FRONTAL.copy()
    profile[2, 0] = FRONTAL[1, 0] + 5  # nose beyond the eye: profile
    assert frontality_score(profile) == 0.0
    assert frontality_score(None) == 1.0


def test_frontality_ignores_in_plane_rotation():
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rotated = (FRONTAL - 96) @ rot.T + 96
    assert frontality_score(rotated) == pytest.approx(frontality_score(FRONTAL), abs=1e-3)


def test_quality_is_in_unit_interval_and_combines_factors():
    img = textured()
    parts = quality_parts(img, BOX, FRONTAL)
    assert 0.0 <= parts.quality <= 1.0
    expected = parts.size**0.4 * parts.sharpness**0.3 * parts.frontality**0.3
    assert parts.quality == pytest.approx(expected)
    assert face_quality(img, BOX, FRONTAL) == pytest.approx(parts.quality)


@pytest.mark.bbt
def test_real_face_degrades_with_blur_and_downscale(face_image):
    landmarks = FRONTAL
    box = np.array([16, 16, 176, 176], np.float32)
    sharp = face_quality(face_image, box, landmarks)
    blurred = face_quality(cv2.GaussianBlur(face_image, (0, 0), 3), box, landmarks)
    small_img = cv2.resize(face_image, (48, 48), interpolation=cv2.INTER_AREA)
    small = face_quality(small_img, box / 4, landmarks / 4)
    assert sharp > blurred
    assert sharp > small
    assert 0.0 < small < 1.0
