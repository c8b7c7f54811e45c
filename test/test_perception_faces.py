"""Face detectors: MTCNN on real photos, YOLOv8-face loading and output parsing, Haar."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from visio_memoria_ros.core.types import FaceObservation
from visio_memoria_ros.perception import (
    FaceDetector,
    HaarFaceDetector,
    MtcnnFaceDetector,
    YoloFaceDetector,
    canonical_landmarks,
    create_face_detector,
    landmarks_from_box,
    parse_yolo_faces,
)


def load_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def count_label_hits(faces: list[FaceObservation], labels: list[dict]) -> int:
    """Labels whose centre lies inside some detected box."""
    hits = 0
    for label in labels:
        x, y = label["center"]
        hits += any(f.bbox[0] <= x <= f.bbox[2] and f.bbox[1] <= y <= f.bbox[3] for f in faces)
    return hits


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area)


def check_faces(faces: list[FaceObservation], shape: tuple[int, ...], name: str) -> None:
    h, w = shape[:2]
    for f in faces:
        assert f.detector == name
        assert f.bbox.dtype == np.float32 and f.bbox.shape == (4,)
        assert 0 <= f.bbox[0] < f.bbox[2] <= w and 0 <= f.bbox[1] < f.bbox[3] <= h
        assert 0.0 <= f.score <= 1.0
        assert f.landmarks is not None and f.landmarks.shape == (5, 2)
        assert f.landmarks[0, 0] <= f.landmarks[1, 0] and f.landmarks[3, 0] <= f.landmarks[4, 0]


@pytest.fixture(scope="module")
def mtcnn() -> MtcnnFaceDetector:
    return MtcnnFaceDetector(device="cpu", min_face_size=20)


@pytest.mark.bbt
@pytest.mark.slow
def test_mtcnn_finds_all_23_labelled_bbt_faces(mtcnn, bbt_dir):
    labels = json.loads((bbt_dir / "labels.json").read_text())["group_photos"]
    found = total = 0
    for name, faces_labelled in labels.items():
        image = load_rgb(bbt_dir / name)
        faces = mtcnn.detect(image)
        check_faces(faces, image.shape, "mtcnn")
        found += count_label_hits(faces, faces_labelled)
        total += len(faces_labelled)
    assert total == 23
    assert found == 23


def test_mtcnn_on_zidane_finds_two_faces_with_ordered_landmarks(mtcnn, asset_image_path):
    image = load_rgb(asset_image_path)
    faces = mtcnn.detect(image)
    check_faces(faces, image.shape, "mtcnn")
    assert len(faces) == 2
    for f in faces:  # landmarks lie inside (or at the edge of) their box; eyes above mouth
        assert np.all(f.landmarks >= f.bbox[:2] - 4) and np.all(f.landmarks <= f.bbox[2:] + 4)
        assert f.landmarks[:2, 1].mean() < f.landmarks[3:, 1].mean()


def test_mtcnn_downscale_maps_boxes_back_to_full_resolution(mtcnn, asset_image_path):
    image = load_rgb(asset_image_path)
    fast = MtcnnFaceDetector(min_face_size=40, max_side=640)
    full = sorted(mtcnn.detect(image), key=lambda f: f.bbox[0])
    small = sorted(fast.detect(image), key=lambda f: f.bbox[0])
    assert len(small) == len(full) == 2
    for a, b in zip(full, small, strict=True):
        assert iou(a.bbox, b.bbox) > 0.75
        np.testing.assert_allclose(b.landmarks, a.landmarks, atol=0.1 * (a.bbox[2] - a.bbox[0]))


def test_mtcnn_min_face_size_filters_small_faces(asset_image_path):
    image = load_rgb(asset_image_path)
    big_only = MtcnnFaceDetector(min_face_size=400).detect(image)
    assert big_only == []


def _facenet_reference(images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """facenet-pytorch's own MTCNN (its package, its torchvision NMS) on each image."""
    import torch
    from facenet_pytorch import MTCNN
    from facenet_pytorch.models.utils.detect_face import detect_face

    ref = MTCNN(keep_all=True, min_face_size=20, post_process=False).eval()
    out = []
    with torch.inference_mode():
        for image in images:
            boxes, points = detect_face(image, 20, ref.pnet, ref.rnet, ref.onet,
                                        ref.thresholds, ref.factor, "cpu")
            out.append((np.asarray(boxes[0], np.float64).reshape(-1, 5),
                        np.asarray(points[0], np.float64).reshape(-1, 5, 2)))
    return out


@pytest.mark.bbt
@pytest.mark.slow
def test_mtcnn_cascade_gives_facenets_own_results(mtcnn, asset_image_path, bbt_dir):
    """The port (NHWC nets, numpy NMS, no torchvision) must not change a box, score or
    landmark of facenet's own MTCNN: group photos, a photo of two people, a street frame."""
    import torch

    from visio_memoria_ros.perception.mtcnn import detect_faces

    assert all(
        p.is_contiguous(memory_format=torch.channels_last)
        for net in mtcnn._nets
        for p in net.parameters()
        if p.dim() == 4
    )
    images = [load_rgb(p) for p in sorted(bbt_dir.glob("bbt*.jpg"))]
    images.append(load_rgb(asset_image_path))
    street = bbt_dir.parent / "video" / "street.mp4"  # small faces, when the clip is there
    if street.is_file():
        cap = cv2.VideoCapture(str(street))
        for _ in range(60):
            ok, frame = cap.read()
        cap.release()
        assert ok
        images.append(cv2.cvtColor(cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))
    found = 0
    for image, (boxes, points) in zip(images, _facenet_reference(images), strict=True):
        with torch.inference_mode():
            our_boxes, our_points = detect_faces(image, 20, mtcnn._nets, mtcnn.thresholds,
                                                 mtcnn.factor)
        assert len(our_boxes) == len(boxes)
        np.testing.assert_allclose(our_boxes, boxes, atol=1e-3)
        np.testing.assert_allclose(our_points, points, atol=1e-3)
        found += len(boxes)
    assert found >= 25  # 23 labelled BBT faces, 2 in the photo, the street frame's


def test_mtcnn_loads_without_importing_torchvision(asset_image_path):
    """facenet-pytorch's package imports torchvision and torch._dynamo (seconds of start-up);
    the detector reads that package's weight files without importing it."""
    import subprocess
    import sys

    code = (
        "import sys, cv2\n"
        "from visio_memoria_ros.perception import MtcnnFaceDetector\n"
        "image = cv2.imread(sys.argv[1])[:, :, ::-1].copy()\n"
        "assert len(MtcnnFaceDetector().detect(image)) == 2\n"
        "loaded = [m for m in ('facenet_pytorch', 'torchvision', 'torch._dynamo')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(asset_image_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_mtcnn_weights_are_read_from_the_installed_facenet_package():
    from visio_memoria_ros.perception.mtcnn import weights_dir

    folder = weights_dir()
    assert folder.parent.name == "facenet_pytorch"
    assert {p.name for p in folder.glob("?net.pt")} == {"pnet.pt", "rnet.pt", "onet.pt"}


def test_mtcnn_blank_and_tiny_images_give_no_faces(mtcnn):
    assert mtcnn.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert mtcnn.detect(np.zeros((8, 8, 3), np.uint8)) == []


def test_backends_satisfy_the_protocol(mtcnn):
    assert isinstance(mtcnn, FaceDetector)
    assert isinstance(HaarFaceDetector(), FaceDetector)


def test_canonical_landmarks_orders_pairs_by_x():
    pts = np.array([[60, 40], [30, 40], [45, 55], [55, 70], [35, 70]], np.float32)
    out = canonical_landmarks(pts)
    np.testing.assert_array_equal(out[0], [30, 40])
    np.testing.assert_array_equal(out[3], [35, 70])
    np.testing.assert_array_equal(out[2], [45, 55])


# --- YOLOv8-face ----------------------------------------------------------------------------


def build_face_model(path: Path, kpts: int = 5) -> Path:
    """Save an untrained YOLOv8n pose model with ``kpts`` keypoints (1 class) as a .pt file."""
    import ultralytics
    import yaml
    from ultralytics import YOLO

    cfg = yaml.safe_load(
        (Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8-pose.yaml").read_text()
    )
    cfg["kpt_shape"], cfg["nc"] = [kpts, 3], 1
    yaml_path = path / f"yolov8n-face{kpts}.yaml"
    yaml_path.write_text(yaml.safe_dump(cfg))
    model = YOLO(str(yaml_path))
    out = path / f"face{kpts}.pt"
    model.save(str(out))
    return out


@pytest.fixture(scope="module")
def face_model_path(tmp_path_factory) -> Path:
    pytest.importorskip("ultralytics")
    return build_face_model(tmp_path_factory.mktemp("yolo_face"))


def test_yolo_missing_file_names_path_and_readme(tmp_path):
    missing = tmp_path / "nope" / "yolov8n-face.pt"
    with pytest.raises(FileNotFoundError, match=r"yolov8n-face\.pt.*models/README\.md"):
        YoloFaceDetector(model_path=missing)
    with pytest.raises(FileNotFoundError):
        create_face_detector("yolo", model_path="")


def test_yolo_face_model_loads_from_local_path_and_detects(face_model_path, asset_image_path):
    detector = create_face_detector("yolo", model_path=str(face_model_path), score_threshold=0.0)
    assert isinstance(detector, YoloFaceDetector) and isinstance(detector, FaceDetector)
    image = load_rgb(asset_image_path)
    faces = detector.detect(image)
    # Untrained weights at threshold 0 still emit boxes through the real post-processing.
    check_faces(faces, image.shape, "yolo")
    assert len(faces) > 0


def test_parse_yolo_faces_on_real_results_shapes(face_model_path, asset_image_path):
    from ultralytics import YOLO

    image = load_rgb(asset_image_path)
    result = YOLO(str(face_model_path)).predict(image[:, :, ::-1], conf=0.0, verbose=False)[0]
    assert result.keypoints.data.shape[1:] == (5, 3)
    faces = parse_yolo_faces(result, min_face_size=0)
    assert len(faces) == len(result.boxes) - sum(
        min(b[2] - b[0], b[3] - b[1]) < 1 for b in result.boxes.xyxy.numpy()
    )
    kept = parse_yolo_faces(result, min_face_size=60)
    assert all(min(f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]) >= 60 for f in kept)
    empty = YOLO(str(face_model_path)).predict(image[:, :, ::-1], conf=1.0, verbose=False)[0]
    assert len(empty.boxes) == 0
    assert parse_yolo_faces(empty) == []


def test_yolo_refuses_a_pose_model_with_other_keypoints(tmp_path):
    pytest.importorskip("ultralytics")
    path = build_face_model(tmp_path, kpts=17)
    with pytest.raises(ValueError, match="17 keypoints"):
        YoloFaceDetector(model_path=path)


# --- Haar -----------------------------------------------------------------------------------


def test_haar_landmarks_are_estimated_inside_the_box():
    pts = landmarks_from_box(np.array([100, 50, 200, 150], np.float32))
    assert pts.shape == (5, 2)
    assert np.all(pts >= [100, 50]) and np.all(pts <= [200, 150])
    assert pts[0, 0] < pts[2, 0] < pts[1, 0]


@pytest.mark.bbt
@pytest.mark.slow
def test_haar_finds_most_bbt_faces(bbt_dir):
    labels = json.loads((bbt_dir / "labels.json").read_text())["group_photos"]
    haar = HaarFaceDetector(min_face_size=20)
    found = 0
    for name, faces_labelled in labels.items():
        image = load_rgb(bbt_dir / name)
        faces = haar.detect(image)
        check_faces(faces, image.shape, "haar")
        found += count_label_hits(faces, faces_labelled)
    assert found >= 20  # 23 measured; frontal-only cascade, so leave a little room


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown face backend"):
        create_face_detector("retinaface")
