"""Face quality and the quality gate: each measure moves the right way, no single landmark
zeroes a clear face, and the gate names every reason it refuses a crop."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from visio_memoria_ros.core.face_crop import CANONICAL_TEMPLATE, align_face
from visio_memoria_ros.perception import (
    FaceAssessment,
    FacenessChecker,
    Perceiver,
    PerceiverConfig,
    QualityGate,
    assess_face,
    face_quality,
)
from visio_memoria_ros.perception.quality import (
    QUALITY_WEIGHTS,
    combine,
    exposure_of,
    isotropy_of,
    pose_of,
    sharpness_score,
    size_score,
)

FRONTAL = CANONICAL_TEMPLATE.copy()  # symmetric ArcFace-template landmarks in a 192 px crop
BOX = np.array([20, 20, 172, 172], np.float32)


def textured(size: int = 192) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def perceiver() -> Perceiver:
    return Perceiver(PerceiverConfig(warmup=False))


def largest(perceiver: Perceiver, image: np.ndarray):
    perceiver.reset()
    faces = perceiver.process(image).faces
    assert faces, "no face found"
    return max(faces, key=lambda f: f.bbox[2] - f.bbox[0])


# -- measures ---------------------------------------------------------------------------------
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


def test_yaw_from_eyes_and_nose_only():
    yaw, ratio = pose_of(FRONTAL, BOX)
    assert yaw == pytest.approx(0.0, abs=0.05) and 0.2 < ratio < 0.4
    turned = FRONTAL.copy()
    turned[2, 0] += 10  # nose moves towards the right eye: head turned
    assert 0.3 < pose_of(turned, BOX)[0] < 0.7
    profile = FRONTAL.copy()
    profile[2, 0] = FRONTAL[1, 0] + 5  # nose beyond the eye: profile
    assert pose_of(profile, BOX)[0] > 1.0
    # The mouth corners (a hand, a microphone) do not change the pose.
    covered = FRONTAL.copy()
    covered[3:] += np.array([30.0, 10.0])
    assert pose_of(covered, BOX) == pytest.approx(pose_of(FRONTAL, BOX))
    assert pose_of(None, BOX) == (0.0, 0.4)


def test_yaw_ignores_in_plane_rotation():
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = FRONTAL.copy()
    turned[2, 0] += 10
    rotated = (turned - 96) @ rot.T + 96
    assert pose_of(rotated, BOX)[0] == pytest.approx(pose_of(turned, BOX)[0], abs=1e-3)


def test_motion_blur_lowers_isotropy_more_than_defocus():
    img = textured()
    kernel = np.zeros((15, 15), np.float32)
    kernel[7, :] = 1 / 15
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    smeared = cv2.filter2D(grey, -1, kernel)
    assert isotropy_of(grey) > 0.8
    assert isotropy_of(smeared) < 0.1
    assert isotropy_of(cv2.GaussianBlur(grey, (0, 0), 2)) > 0.8
    assert isotropy_of(np.zeros((32, 32), np.uint8)) == 0.0


def test_exposure():
    grey = cv2.cvtColor(textured(), cv2.COLOR_RGB2GRAY)
    mean, std, clipped = exposure_of(grey)
    dark = exposure_of((grey * 0.1).astype(np.uint8))
    bright = exposure_of(np.clip(grey.astype(int) * 4, 0, 255).astype(np.uint8))
    assert dark[0] < 0.2 * mean and dark[1] < 0.2 * std
    assert bright[2] > 0.5 > clipped


def test_combine_weighs_what_was_measured():
    assert math.isclose(sum(QUALITY_WEIGHTS.values()), 1.0)
    full = dict.fromkeys(QUALITY_WEIGHTS, 0.5)
    assert combine(full) == pytest.approx(0.5)
    # faceness not measured: it drops out instead of counting as 0.
    assert combine({**full, "faceness": math.nan}) == pytest.approx(0.5)
    assert combine({**full, "faceness": 0.0}) < 0.2
    assert combine({k: math.nan for k in full}) == 0.0


# -- on real faces ------------------------------------------------------------------------------
@pytest.mark.bbt
def test_a_clear_face_turned_three_quarters_keeps_a_fair_quality(bbt_dir: Path, perceiver):
    """stuart5 is a sharp, large 3/4 view: MTCNN puts the nose tip just past one eye. The old
    frontality factor was 0 there, and the whole quality 0.00 (so memory ranked such faces
    below the back of a head)."""
    face = largest(perceiver, rgb(bbt_dir / "stuart" / "stuart5.png"))
    assert face.quality > 0.4, face.quality
    assessed = assess_face(face.crop, face.bbox, face.landmarks, face.score)
    assert assessed.quality == pytest.approx(face.quality)
    assert 0.8 < assessed.yaw < 1.25


@pytest.mark.bbt
def test_quality_describes_the_crop(bbt_dir: Path, perceiver):
    image = rgb(bbt_dir / "leonard" / "leonard2.png")
    sharp = largest(perceiver, image)
    blurred = largest(perceiver, cv2.GaussianBlur(image, (0, 0), 4))
    small_img = cv2.resize(image, (40, 40), interpolation=cv2.INTER_AREA)
    small = largest(perceiver, cv2.copyMakeBorder(small_img, 20, 20, 20, 20,
                                                  cv2.BORDER_CONSTANT, value=(128, 128, 128)))
    assert sharp.quality > 0.7
    assert sharp.quality > blurred.quality + 0.2
    assert sharp.quality > small.quality + 0.2
    # Computed on the aligned crop: the same number memory measures on the crop it stores.
    again = face_quality(image, sharp.bbox, sharp.landmarks, crop=sharp.crop, score=sharp.score)
    assert again == pytest.approx(sharp.quality)


@pytest.mark.bbt
def test_faceness_tells_a_face_from_hair(bbt_dir: Path, perceiver):
    faceness = FacenessChecker()
    image = rgb(bbt_dir / "raj" / "raj1.png")
    face = largest(perceiver, image)
    # The hair and forehead above the eyes, as a detector box with landmarks placed as on a
    # face (what O-Net does on the back of a head).
    top = image[: int(face.landmarks[:2, 1].min()) - 6]
    h = 150
    hair_img = cv2.resize(top, (h, h), interpolation=cv2.INTER_CUBIC)
    hair_box = np.array([0, 0, h, h], np.float32)
    scale = h / 192.0
    hair_crop = align_face(hair_img, CANONICAL_TEMPLATE * scale)
    assert faceness(face.crop) > 0.0
    assert faceness(hair_crop) < faceness(face.crop) - 1.0
    hair = assess_face(hair_crop, hair_box, CANONICAL_TEMPLATE * scale, 0.99,
                       faceness=faceness(hair_crop))
    assert QualityGate().reasons(hair), hair  # refused (HOG alone is borderline here)


# -- the gate -----------------------------------------------------------------------------------
GOOD = FaceAssessment(score=0.999, face_px=120.0, yaw=0.1, eye_ratio=0.45, sharpness=300.0,
                      isotropy=0.6, brightness=120.0, contrast=50.0, clipped=0.0,
                      faceness=1.0, quality=0.9)


@pytest.mark.parametrize(("change", "reason"), [
    ({"score": 0.5}, "low_score"),
    ({"face_px": 10.0}, "too_small"),
    ({"yaw": 1.6}, "turned_away"),
    ({"yaw": math.inf}, "turned_away"),
    ({"eye_ratio": 0.1}, "eyes_hidden"),
    ({"sharpness": 1.0}, "blurred"),
    ({"isotropy": 0.05}, "motion_blurred"),
    ({"brightness": 10.0}, "too_dark"),
    ({"brightness": 250.0}, "too_bright"),
    ({"contrast": 2.0}, "flat"),
    ({"clipped": 0.9}, "clipped"),
    ({"faceness": -1.9}, "not_a_face"),
])
def test_gate_names_each_reason(change: dict, reason: str) -> None:
    gate = QualityGate()
    assert gate.reasons(GOOD) == []
    assert gate.reasons(dataclasses.replace(GOOD, **change)) == [reason]
    assert reason in QualityGate.REASONS


def test_gate_from_params_and_refusals() -> None:
    gate = QualityGate.from_params({"gate_min_score": 0.5, "gate_max_yaw": 2.0, "other": 1})
    assert gate.min_score == 0.5 and gate.max_yaw == 2.0
    assert gate.min_sharpness == QualityGate().min_sharpness
    with pytest.raises(ValueError, match="gate_min_brightness"):
        QualityGate(min_brightness=200.0, max_brightness=100.0)
    # Faceness not measured: not a reason to refuse.
    assert "not_a_face" not in QualityGate().reasons(dataclasses.replace(GOOD,
                                                                           faceness=math.nan))


def test_memory_node_gate_parameters_default_to_the_calibrated_gate() -> None:
    from visio_memoria_ros.config.memory import GATE_PARAMS

    assert QualityGate.from_params({p.name: p.default for p in GATE_PARAMS}) == QualityGate()
    assert {p.name[len("gate_"):] for p in GATE_PARAMS} == {
        f.name for f in dataclasses.fields(QualityGate)}
