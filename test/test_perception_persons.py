"""Person detectors (face-extrapolated, HOG, YOLO from a local file) and scene crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from visio_memoria_ros.core.types import FaceObservation
from visio_memoria_ros.perception import (
    FaceExtrapolatedPersonDetector,
    HogPersonDetector,
    PersonDetector,
    YoloPersonDetector,
    body_box_from_face,
    create_person_detector,
    scene_crop,
)


def load_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_body_box_geometry_from_face():
    box = body_box_from_face(np.array([100, 100, 140, 150], np.float32), 1000, 1000)
    # 3 face widths wide centred on x=120; top 0.3 face heights above; 7 face heights tall.
    np.testing.assert_allclose(box, [60, 85, 180, 435])


def test_body_box_is_clipped_to_the_image():
    box = body_box_from_face(np.array([5, 10, 45, 60], np.float32), 100, 200)
    np.testing.assert_allclose(box, [0, 0, 85, 200])


def test_face_extrapolated_detector_labels_method_and_keeps_score():
    faces = [FaceObservation(bbox=[100, 100, 140, 150], score=0.93, detector="mtcnn")]
    image = np.zeros((480, 640, 3), np.uint8)
    detector = FaceExtrapolatedPersonDetector()
    assert isinstance(detector, PersonDetector)
    persons = detector.detect(image, faces)
    assert len(persons) == 1
    assert persons[0].detector == "face_extrapolated"
    assert persons[0].score == pytest.approx(0.93)
    assert detector.detect(image, []) == []


def test_hog_finds_a_standing_person_on_bus_jpg(asset_image_path):
    image = load_rgb(asset_image_path.parent / "bus.jpg")
    persons = HogPersonDetector(max_side=640).detect(image)
    assert len(persons) >= 1
    h, w = image.shape[:2]
    for p in persons:
        assert p.detector == "hog" and 0.5 <= p.score <= 1.0
        assert 0 <= p.bbox[0] < p.bbox[2] <= w and 0 <= p.bbox[1] < p.bbox[3] <= h
        assert p.bbox[3] - p.bbox[1] > p.bbox[2] - p.bbox[0]  # upright


def test_hog_small_or_blank_images_give_nothing():
    hog = HogPersonDetector()
    assert hog.detect(np.zeros((100, 50, 3), np.uint8)) == []
    assert hog.detect(np.zeros((480, 640, 3), np.uint8)) == []


@pytest.fixture(scope="module")
def person_model_path(tmp_path_factory) -> Path:
    yolo = pytest.importorskip("ultralytics").YOLO
    path = tmp_path_factory.mktemp("yolo_person") / "yolov8n-untrained.pt"
    yolo("yolov8n.yaml").save(str(path))
    return path


def test_yolo_person_loads_local_file_and_keeps_class_0(person_model_path, asset_image_path):
    detector = create_person_detector(
        "yolo", model_path=str(person_model_path), score_threshold=0.0, max_side=320
    )
    assert isinstance(detector, YoloPersonDetector) and detector.imgsz == 320
    image = load_rgb(asset_image_path)
    persons = detector.detect(image)
    h, w = image.shape[:2]
    for p in persons:
        assert p.detector == "yolo"
        assert 0 <= p.bbox[0] <= p.bbox[2] <= w and 0 <= p.bbox[1] <= p.bbox[3] <= h


def test_yolo_person_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"models/README\.md"):
        YoloPersonDetector(model_path=tmp_path / "yolov8n.pt")


def test_person_backend_none_and_unknown():
    assert create_person_detector("none") is None
    with pytest.raises(ValueError, match="unknown person backend"):
        create_person_detector("detr")


def test_scene_crop_adds_context_and_caps_size():
    image = np.zeros((1000, 1000, 3), np.uint8)
    crop = scene_crop(image, np.array([400, 300, 500, 700]), context=0.25, max_side=10_000)
    assert crop.shape == (600, 150, 3)  # 100 x 400 body grown by 25 % of its size per side
    small = scene_crop(image, np.array([400, 300, 500, 700]), context=0.25, max_side=300)
    assert max(small.shape[:2]) == 300 and small.shape[1] == 75


def test_scene_crop_is_clipped_at_borders_and_never_empty():
    image = np.arange(100 * 80 * 3, dtype=np.uint32).reshape(100, 80, 3).astype(np.uint8)
    crop = scene_crop(image, np.array([0, 0, 40, 50]), context=0.5, max_side=0)
    assert crop.shape == (75, 60, 3)
    tiny = scene_crop(image, np.array([80, 100, 80, 100]), context=0.0, max_side=0)
    assert tiny.size > 0
