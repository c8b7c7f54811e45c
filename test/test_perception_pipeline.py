"""The Perceiver end to end, and its configuration against the detector_node parameters."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from visio_memoria_ros.config import load_node_params, validate_value
from visio_memoria_ros.config.detector import PARAMS, PERCEIVER_PARAMS
from visio_memoria_ros.core.face_crop import CANONICAL_SIZE
from visio_memoria_ros.core.types import NO_TRACK, Frame
from visio_memoria_ros.perception import (
    FACE_BACKENDS,
    PERSON_BACKENDS,
    RUNTIME_FIELDS,
    STAGES,
    MtcnnFaceDetector,
    Perceiver,
    PerceiverConfig,
)


def load_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def mtcnn() -> MtcnnFaceDetector:
    return MtcnnFaceDetector()


def test_params_and_config_fields_match_one_to_one():
    fields = {f.name: f.default for f in dataclasses.fields(PerceiverConfig)}
    specs = {s.name: s for s in PERCEIVER_PARAMS}
    assert set(specs) == set(fields)
    for name, spec in specs.items():
        assert spec.default == fields[name], name
        assert type(spec.default) is type(fields[name]), name
        assert validate_value(spec, spec.default) is None, name
        assert len(spec.description) > 20, name
        assert spec.read_only == (name not in RUNTIME_FIELDS), name
    assert tuple(specs["face_backend"].choices) == FACE_BACKENDS
    assert tuple(specs["person_backend"].choices) == PERSON_BACKENDS


def test_perceiver_from_yaml_params(tmp_path):
    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text(
        "detector_node:\n  ros__parameters:\n    face_backend: haar\n    detect_stride: 2\n"
        "    person_backend: none\n"
    )
    params = load_node_params("detector_node", PARAMS, yaml_path)
    perceiver = Perceiver.from_params({**params, "some_topic": "/x"})
    assert perceiver.face_detector.name == "haar"
    assert perceiver.person_detector is None
    assert perceiver.config.detect_stride == 2


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="face_backend"):
        PerceiverConfig(face_backend="dlib")
    with pytest.raises(ValueError, match="detect_stride"):
        PerceiverConfig(detect_stride=0)


def test_reconfigure_only_runtime_fields(mtcnn):
    perceiver = Perceiver(face_detector=mtcnn)
    perceiver.reconfigure(scene_context=0.5, face_crops=False)
    assert perceiver.config.scene_context == 0.5
    with pytest.raises(ValueError, match="face_backend"):
        perceiver.reconfigure(face_backend="haar")


def test_zidane_frame_is_complete(mtcnn, asset_image_path):
    image = load_rgb(asset_image_path)
    perceiver = Perceiver(PerceiverConfig(scene_crop_max_side=256), face_detector=mtcnn)
    perceiver.process(image, stamp=1.0, frame_id="cam")
    frame = perceiver.process(image, stamp=1.1, frame_id="cam")
    assert isinstance(frame, Frame)
    assert (frame.width, frame.height, frame.frame_id, frame.stamp) == (1280, 720, "cam", 1.1)
    assert frame.processing_time > 0
    assert set(perceiver.stage_times) == set(STAGES)
    assert len(frame.faces) == 2 and len(frame.persons) == 2
    for f in frame.faces:
        assert f.track_id >= 0 and 0.0 <= f.quality <= 1.0
        assert f.crop is not None and f.crop.shape == (CANONICAL_SIZE, CANONICAL_SIZE, 3)
        assert f.crop.dtype == np.uint8
    assert max(f.quality for f in frame.faces) > 0.5  # the frontal face
    face_ids = {f.track_id for f in frame.faces}
    for p in frame.persons:
        assert p.detector == "face_extrapolated" and p.track_id >= 0
        assert p.face_track_id in face_ids
        assert p.scene_crop is not None and max(p.scene_crop.shape[:2]) <= 256
    assert len({p.face_track_id for p in frame.persons}) == 2


def test_crops_can_be_switched_off(mtcnn, asset_image_path):
    config = PerceiverConfig(face_crops=False, scene_crops=False)
    image = cv2.resize(load_rgb(asset_image_path), (640, 360), interpolation=cv2.INTER_AREA)
    frame = Perceiver(config, face_detector=mtcnn).process(image)
    assert all(f.crop is None for f in frame.faces)
    assert all(p.scene_crop is None for p in frame.persons)


def test_hog_person_backend_in_pipeline(mtcnn, asset_image_path):
    image = load_rgb(asset_image_path.parent / "bus.jpg")
    perceiver = Perceiver(PerceiverConfig(person_backend="hog"), face_detector=mtcnn)
    frame = perceiver.process(image)
    assert frame.persons and all(p.detector == "hog" for p in frame.persons)
    assert all(p.track_id == NO_TRACK for p in frame.persons)  # unconfirmed on frame 1


def test_first_frame_faces_are_unconfirmed_then_confirmed(mtcnn, asset_image_path):
    image = cv2.resize(load_rgb(asset_image_path), (640, 360), interpolation=cv2.INTER_AREA)
    perceiver = Perceiver(face_detector=mtcnn)
    assert [f.track_id for f in perceiver.process(image).faces] == [NO_TRACK, NO_TRACK]
    assert NO_TRACK not in [f.track_id for f in perceiver.process(image).faces]
    perceiver.reset()
    assert [f.track_id for f in perceiver.process(image).faces] == [NO_TRACK, NO_TRACK]


@pytest.mark.bbt
@pytest.mark.slow
def test_bbt_group_photos_all_faces_with_aligned_crops(mtcnn, bbt_dir):
    labels = json.loads((bbt_dir / "labels.json").read_text())["group_photos"]
    perceiver = Perceiver(face_detector=mtcnn)
    found = 0
    for name, labelled in labels.items():
        perceiver.reset()
        frame = perceiver.process(load_rgb(bbt_dir / name))
        for label in labelled:
            x, y = label["center"]
            hits = [
                f for f in frame.faces
                if f.bbox[0] <= x <= f.bbox[2] and f.bbox[1] <= y <= f.bbox[3]
            ]
            found += bool(hits)
            assert all(h.crop is not None and h.crop.shape == (192, 192, 3) for h in hits)
    assert found == 23


def test_haar_pipeline_runs_without_torch_models(asset_image_path):
    perceiver = Perceiver(PerceiverConfig(face_backend="haar", detect_max_side=640))
    frame = perceiver.process(load_rgb(asset_image_path))
    assert all(f.detector == "haar" and f.crop is not None for f in frame.faces)
