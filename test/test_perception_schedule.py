"""The detection schedule: full-frame passes every N-th frame (or on motion), the known faces
found again near their boxes in between, and a 20 px face kept on every frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visio_memoria_ros.core.types import FaceObservation
from visio_memoria_ros.perception import MtcnnFaceDetector, Perceiver, PerceiverConfig
from visio_memoria_ros.perception.schedule import (
    DetectionSchedule,
    crop_region,
    map_from_region,
    motion_score,
    region_boxes,
    thumbnail,
)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return float(ix * iy / (area - ix * iy))


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def mtcnn() -> MtcnnFaceDetector:
    return MtcnnFaceDetector()


def _small_face_scene(bbt_dir, mtcnn, face_px: int, n: int, dx: int = 2) -> list[np.ndarray]:
    """``n`` 640x480 frames with one real face (BBT crop) scaled to ``face_px`` wide, drifting."""
    crop = _rgb(sorted((bbt_dir / "leonard").iterdir())[0])
    faces = mtcnn.detect(crop)
    assert faces, "the BBT crop itself must have a face"
    width = float(faces[0].bbox[2] - faces[0].bbox[0])
    scale = face_px / width
    small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (480, 640, 3), np.uint8), (0, 0), 3)
    frames = []
    for i in range(n):
        frame = background.copy()
        x, y = 150 + dx * i if dx > 2 else 300 + 2 * i, 200 + i
        frame[y : y + small.shape[0], x : x + small.shape[1]] = small
        frames.append(frame)
    return frames


def test_a_20px_face_is_found_on_every_frame_full_and_region_passes(bbt_dir, mtcnn):
    frames = _small_face_scene(bbt_dir, mtcnn, 20, 10)
    perceiver = Perceiver(PerceiverConfig(full_detect_interval=4, motion_threshold=0.0,
                                          person_backend="none"), face_detector=mtcnn)
    passes, sizes = [], []
    for i, frame in enumerate(frames):
        faces = perceiver.process(frame, stamp=i / 15).faces
        passes.append(perceiver.last_pass)
        assert len(faces) == 1, f"frame {i} ({perceiver.last_pass}): {len(faces)} faces"
        box = faces[0].bbox
        assert abs(float(box[0]) - (300 + 2 * i)) < 12, (i, box)
        sizes.append(float(box[2] - box[0]))
        assert faces[0].crop is not None
    assert passes == ["full", "regions", "regions", "regions"] * 2 + ["full", "regions"]
    assert min(sizes) >= 14 and max(sizes) <= 30, sizes
    assert perceiver.schedule.full_passes == 3 and perceiver.schedule.region_passes == 7


def test_a_face_lost_by_the_region_pass_is_looked_for_on_the_whole_frame(bbt_dir, mtcnn):
    frames = _small_face_scene(bbt_dir, mtcnn, 40, 2)
    jumped = np.roll(frames[0], (0, -250), axis=(0, 1))  # the face is 250 px further left
    empty = np.full_like(frames[0], 128)
    perceiver = Perceiver(PerceiverConfig(full_detect_interval=10, motion_threshold=0.0,
                                          person_backend="none"), face_detector=mtcnn)
    assert len(perceiver.process(frames[0]).faces) == 1
    faces = perceiver.process(jumped).faces
    assert perceiver.last_pass == "full" and perceiver.schedule.lost_triggers == 1
    assert len(faces) == 1 and abs(float(faces[0].bbox[0]) - 50) < 12
    assert len(perceiver.process(jumped).faces) == 1
    assert perceiver.last_pass == "regions"
    assert len(perceiver.process(empty).faces) == 0
    assert perceiver.schedule.lost_triggers == 2


def test_a_fast_face_is_followed_by_its_tracks_motion(bbt_dir, mtcnn):
    frames = _small_face_scene(bbt_dir, mtcnn, 40, 9, dx=23)  # 0.6 face widths per frame
    perceiver = Perceiver(PerceiverConfig(full_detect_interval=20, motion_threshold=0.0,
                                          person_backend="none"), face_detector=mtcnn)
    for i, frame in enumerate(frames):
        faces = perceiver.process(frame, stamp=i / 15).faces
        assert len(faces) == 1 and abs(float(faces[0].bbox[0]) - (150 + 23 * i)) < 12, i
    # region passes look where the track is going: without the motion (boxes where they were)
    # every one of the 8 region passes loses this face and falls back to a full pass
    assert perceiver.schedule.region_passes == 8
    assert perceiver.schedule.lost_triggers <= 4


def test_full_pass_every_frame_with_interval_1(bbt_dir, mtcnn):
    frames = _small_face_scene(bbt_dir, mtcnn, 40, 3)
    perceiver = Perceiver(PerceiverConfig(full_detect_interval=1, person_backend="none"),
                          face_detector=mtcnn)
    for frame in frames:
        perceiver.process(frame)
        assert perceiver.last_pass == "full"


def test_motion_outside_known_faces_starts_a_full_pass():
    schedule = DetectionSchedule(full_detect_interval=10, motion_threshold=0.2)
    still = np.full((480, 640, 3), 100, np.uint8)
    assert schedule.full_pass_due(still, [])
    schedule.did_full_pass(still)
    assert not schedule.full_pass_due(still, [])
    schedule.did_region_pass()
    moved = still.copy()
    moved[:, :320] = 220  # half the picture changed
    assert schedule.full_pass_due(moved, [])
    assert schedule.motion_triggers == 1
    # the same change inside a known face's region does not count
    region = np.array([0, 0, 330, 480], np.float32)
    assert motion_score(thumbnail(still), thumbnail(moved), [region], 640, 480) == 0.0
    assert not schedule.full_pass_due(moved, [region])


def test_schedule_interval_and_size_change():
    schedule = DetectionSchedule(full_detect_interval=3)
    image = np.zeros((480, 640, 3), np.uint8)
    plan = []
    for _ in range(7):
        full = schedule.full_pass_due(image, [])
        plan.append(full)
        schedule.did_full_pass(image) if full else schedule.did_region_pass()
    assert plan == [True, False, False, True, False, False, True]
    assert schedule.full_pass_due(np.zeros((240, 320, 3), np.uint8), [])
    with pytest.raises(ValueError):
        DetectionSchedule(full_detect_interval=0)


def test_region_crop_round_trip_maps_boxes_back():
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 150:170] = 255
    [region] = region_boxes([np.array([150, 40, 170, 60], np.float32)], 2.0)
    crop, scale = crop_region(image, region, 80)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    face = FaceObservation(bbox=[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], score=1.0,
                           detector="t", landmarks=np.full((5, 2), 40, np.float32))
    back = map_from_region(face, region, scale, 200, 100)
    np.testing.assert_allclose(back.bbox, [150, 40, 170, 60], atol=1.0)
    np.testing.assert_allclose(back.landmarks[0], [160, 50], atol=1.0)


def test_backends_without_box_refinement_search_crops(asset_image_path):
    image = np.ascontiguousarray(_rgb(asset_image_path)[120:])  # below a weak false positive
    perceiver = Perceiver(PerceiverConfig(face_backend="haar", full_detect_interval=2,
                                          person_backend="none", min_face_size=40))
    first = perceiver.process(image).faces
    second = perceiver.process(image).faces
    assert perceiver.last_pass == "regions"
    assert first and len(second) >= len(first)
    for a in first:  # every face is found again in its region, at about the same place
        assert max(_iou(a.bbox, b.bbox) for b in second) > 0.75, a.bbox
