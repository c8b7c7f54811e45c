#!/usr/bin/env python3
"""Measure the three geometric constants of face alignment on the calibration identities.

    python bench/measure_alignment.py [--bbt ../shared/eval/bbt]
        [--video ../shared/eval/video/street.mp4] [--json out.json]

The constants (each in the module that uses it):

- ``embedding.dlib_face.DLIB_BOX_IN_CANONICAL``: where dlib's HOG frontal-face detector puts
  its box on a canonical crop. dlib's 5-point shape predictor starts from it (it was trained on
  such boxes), so it decides the 150x150 chip every dlib embedder sees.
- ``embedding.dlib_face.DLIB_NOSE_BASE_112``: dlib's 5-point "nose" (the base of the nose) in
  the 112x112 ArcFace frame, with the eyes aligned onto the template (``DlibLandmarker``).
- ``perception.faces.HAAR_LANDMARKS_REL``: the 5 landmarks as fractions of an OpenCV Haar face
  box (``face_backend: haar``, which has no landmarks of its own).

They are measured only on the BBT calibration identities (``CALIBRATION``: the ones the shipped
identity thresholds are calibrated on), never on the four identities whose figures the README
reports: the gallery crops of those four for the dlib constants, and for the Haar one also
their faces in the group photos. Each constant is the mean over those faces; the spread is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

#: The BBT identities the shipped thresholds and these constants are calibrated on.
CALIBRATION = ("amy", "bernadette", "howard", "stuart")


def _pipeline():
    from visio_memoria_ros.config import NODE_PARAMS
    from visio_memoria_ros.pipeline import Pipeline

    detector = {s.name: s.default for s in NODE_PARAMS["detector_node"]}
    embedding = {s.name: s.default for s in NODE_PARAMS["embedding_node"]}
    return Pipeline.from_params(detector, embedding)


def _summary(values: np.ndarray) -> dict:
    return {"mean": np.round(values.mean(0), 3).tolist(),
            "std": np.round(values.std(0), 3).tolist(), "n": len(values)}


def dlib_constants(bbt: Path) -> dict:
    """HOG box on the canonical crop, and dlib's nose base in the ArcFace 112 frame."""
    import dlib

    from visio_memoria_ros.core.face_crop import ARCFACE_TEMPLATE_112
    from visio_memoria_ros.embedding.dlib_face import _similarity_lstsq, default_model_paths
    from visio_memoria_ros.pipeline import largest_face, load_image

    pipe = _pipeline()
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(default_model_paths()[1])
    boxes, noses = [], []
    for name in CALIBRATION:
        for path in sorted((bbt / name).iterdir()):
            image = load_image(path)
            face = largest_face(pipe.detect(image))
            if face is not None and face.crop is not None:
                found = hog(np.ascontiguousarray(face.crop), 1)
                if len(found):
                    r = max(found, key=lambda r: r.area())
                    boxes.append([r.left(), r.top(), r.right(), r.bottom()])
            rects = sorted(hog(image, 1), key=lambda r: -r.area())
            if rects:
                shape = predictor(image, rects[0])
                pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
                eye_a, eye_b = pts[0:2].mean(0), pts[2:4].mean(0)
                eyes = np.stack(sorted([eye_a, eye_b], key=lambda e: e[0]))
                # eyes onto the template's eyes (a similarity from two points is exact)
                to_112 = _similarity_lstsq(eyes, ARCFACE_TEMPLATE_112[:2].astype(np.float64))
                noses.append(to_112[:, :2] @ pts[4] + to_112[:, 2])
    return {"DLIB_BOX_IN_CANONICAL": _summary(np.array(boxes, dtype=np.float64)),
            "DLIB_NOSE_BASE_112": _summary(np.array(noses, dtype=np.float64))}


def _haar_rel(pipe, cascade, image: np.ndarray, centre: tuple[float, float] | None) -> list:
    """MTCNN's landmarks relative to the Haar box of one face (the one at ``centre``, or the
    largest), or nothing when either detector misses it."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    boxes = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
    faces = [f for f in pipe.detect(image) if f.landmarks is not None]
    if centre is None:
        if not len(boxes) or not faces:
            return []
        box = max(boxes, key=lambda b: b[2] * b[3])
        centre = (box[0] + box[2] / 2, box[1] + box[3] / 2)
    cx, cy = centre
    haar = [b for b in boxes if b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]]
    mtcnn = [f for f in faces if f.bbox[0] <= cx <= f.bbox[2] and f.bbox[1] <= cy <= f.bbox[3]]
    if not haar or not mtcnn:
        return []
    x, y, w, h = min(haar, key=lambda b: b[2] * b[3])
    points = min(mtcnn, key=lambda f: f.bbox[2] - f.bbox[0]).landmarks
    return [(points - np.array([x, y])) / np.array([w, h])]


def haar_constant(bbt: Path, video: Path, every: int = 5) -> dict:
    """Mean MTCNN landmarks inside the Haar boxes of calibration faces in scenes: the
    calibration identities' faces in the group photos and the street.mp4 strangers' faces
    (every ``every``-th frame; each Haar box with one MTCNN face inside it)."""
    from visio_memoria_ros.pipeline import load_image

    pipe = _pipeline()
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    labels = json.loads((bbt / "labels.json").read_text())
    rel: list = []
    for photo, expected in labels["group_photos"].items():
        image = load_image(bbt / photo)
        for label in expected:
            if label["name"] in CALIBRATION:
                rel += _haar_rel(pipe, cascade, image, tuple(label["center"]))
    n_group = len(rel)
    cap = cv2.VideoCapture(str(video))
    index = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        index += 1
        if index % every:
            continue
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        boxes = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
        for x, y, w, h in boxes:
            rel += _haar_rel(pipe, cascade, image, (x + w / 2, y + h / 2))
    cap.release()
    out = _summary(np.array(rel, dtype=np.float64))
    out["n_group_photos"], out["n_street"] = n_group, len(rel) - n_group
    return {"HAAR_LANDMARKS_REL": out}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bbt", type=Path, default=ROOT.parent / "shared" / "eval" / "bbt")
    parser.add_argument("--video", type=Path,
                        default=ROOT.parent / "shared" / "eval" / "video" / "street.mp4")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = {"data": f"{args.bbt} identities {', '.join(CALIBRATION)}",
              **dlib_constants(args.bbt), **haar_constant(args.bbt, args.video)}
    for name, value in result.items():
        print(f"{name}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
