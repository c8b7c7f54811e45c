#!/usr/bin/env python3
"""Calibrate the face-quality gate (``perception.quality.QualityGate``) on data, and report it.

    python bench/calibrate_quality_gate.py [--bbt ../shared/eval/bbt]
        [--video ../shared/eval/video/street.mp4] [--frame-step 4]
        [--out bench/results/quality_gate.json]

Every sample is a face crop as memory_node would receive it: the MTCNN detection (box,
5 landmarks, score), the canonical aligned crop, and dlib's HOG faceness on that crop.

* Positives (faces a person could recognise): the BBT gallery crops in which the detector
  finds a face (39 of the 40: it finds none in bernadette5.png, though it does in some of that
  crop's degraded copies, which stay negatives); the detections in street.mp4 (every
  ``--frame-step``-th frame, full 1920x1080, min face 20 px, score >= 0.6) that
  ``bench/data/street_gate_labels.json`` leaves unlabelled (hand labels: the others are
  not_face, head_top, profile or occluded).
* Negatives: street.mp4 detections labelled not_face or head_top; each street face detection
  again on a copy of the frame where the hair above the head covers the face (the back of
  the head, with the detection's box, landmarks and score: ``back_of_head``); boxes the
  detector's last stage (O-Net, ``detect_regions``) accepts although they hold no face: random
  boxes away from
  every face, hair above each face, the chest below it (``detector_false_positive``,
  ``hair_above_face``, ``below_face``); and degraded copies of the BBT crops as the detector
  finds them: Gaussian blur (sigma 3, 5), horizontal motion blur (15 px), dark (x0.25),
  over-exposed (x2.5), tiny (face about 25 px).
* Reported only (not used to choose thresholds): street profiles and occluded faces, BBT crops
  rotated in the image plane (alignment undoes the roll: they are faces the gate should keep).

Thresholds: measure by measure (in ``FIELDS`` order), the threshold that refuses the most of the
negatives the earlier measures let through while refusing at most 1 % of the positives on its
own, placed half-way between the last negative it refuses and the positives (no negative left
below the positives: the lowest positive; the detector score never below the node's own
threshold, 0.9); the table then shows how often each class is refused, per reason, with all
thresholds together. The BBT group
photos are not used here: the real-video test (test/test_unknowns_video.py) is built from them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from visio_memoria_ros.core.face_crop import align_face  # noqa: E402
from visio_memoria_ros.perception.faces import create_face_detector  # noqa: E402
from visio_memoria_ros.perception.quality import (  # noqa: E402
    FaceAssessment,
    FacenessChecker,
    QualityGate,
    assess_face,
)

POSITIVE, NEGATIVE, REPORT = "positive", "negative", "report only"
#: measure -> "min" (at least) or "max" (at most), as QualityGate's fields name them.
#: QualityGate field -> (measure, "min" = at least / "max" = at most).
FIELDS = {"min_score": ("score", "min"), "min_face_px": ("face_px", "min"),
          "max_yaw": ("yaw", "max"), "min_eye_ratio": ("eye_ratio", "min"),
          "min_sharpness": ("sharpness", "min"), "min_isotropy": ("isotropy", "min"),
          "min_brightness": ("brightness", "min"), "max_brightness": ("brightness", "max"),
          "min_contrast": ("contrast", "min"), "max_clipped": ("clipped", "max"),
          "min_faceness": ("faceness", "min")}
#: Each threshold alone may refuse at most this share of the positives.
MAX_POSITIVE_LOSS = 0.01
#: The detector's own threshold (face_score_threshold): the gate never asks for less.
SCORE_FLOOR = 0.9


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area) if area > 0 else 0.0


class Sampler:
    """Detector + alignment + assessment, collecting (group, class, assessment) rows."""

    def __init__(self) -> None:
        self.detector = create_face_detector("mtcnn", min_face_size=20, score_threshold=0.6)
        self.faceness = FacenessChecker()
        self.rows: list[tuple[str, str, FaceAssessment]] = []

    def add(self, group: str, cls: str, rgb: np.ndarray, face) -> None:
        """Assess one detection of ``rgb`` and keep it under ``group``/``cls``."""
        try:
            crop = align_face(rgb, face.landmarks)
        except ValueError:
            return
        a = assess_face(crop, face.bbox, face.landmarks, face.score,
                        faceness=self.faceness(crop))
        self.rows.append((group, cls, a))

    def largest(self, rgb: np.ndarray):
        """The largest face the detector finds in ``rgb``, or None."""
        faces = self.detector.detect(rgb)
        return max(faces, key=lambda f: f.bbox[2] - f.bbox[0]) if faces else None


def degraded(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Degraded copies of one crop image, by class name."""
    kernel = np.zeros((15, 15), np.float32)
    kernel[7, :] = 1.0 / 15
    h, w = rgb.shape[:2]
    tiny = cv2.resize(rgb, (max(8, int(w * 0.18)), max(8, int(h * 0.18))),
                      interpolation=cv2.INTER_AREA)
    canvas = np.full((max(64, tiny.shape[0] + 20), max(64, tiny.shape[1] + 20), 3), 128,
                     np.uint8)
    canvas[10:10 + tiny.shape[0], 10:10 + tiny.shape[1]] = tiny
    return {
        "blur_sigma3": cv2.GaussianBlur(rgb, (0, 0), 3),
        "blur_sigma5": cv2.GaussianBlur(rgb, (0, 0), 5),
        "motion_blur": cv2.filter2D(rgb, -1, kernel),
        "dark_x0.25": (rgb.astype(np.float32) * 0.25).astype(np.uint8),
        "overexposed_x2.5": np.clip(rgb.astype(np.float32) * 2.5, 0, 255).astype(np.uint8),
        "tiny_25px": canvas,
    }


def back_of_head(rgb: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """``rgb`` with the face in ``bbox`` covered by the hair above it, stretched and softened
    (the back of the head where the face was)."""
    out = rgb.copy()
    x1, y1, x2, y2 = (round(float(v)) for v in bbox)
    x1, y1 = max(0, x1), max(0, y1)
    top = max(0, y1 - (y2 - y1) // 2)
    if y2 - y1 < 4 or x2 - x1 < 4 or y1 - top < 4:
        return out
    hair = cv2.resize(rgb[top:y1 + 2, x1:x2], (x2 - x1, y2 - y1))
    out[y1:y2, x1:x2] = cv2.GaussianBlur(hair, (0, 0), 2)
    return out


def rotated(rgb: np.ndarray, angle: float) -> np.ndarray:
    """``rgb`` rotated in the image plane by ``angle`` degrees on a grey canvas."""
    h, w = rgb.shape[:2]
    side = int(1.5 * max(h, w))
    canvas = np.full((side, side, 3), 128, np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    canvas[y:y + h, x:x + w] = rgb
    m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    return cv2.warpAffine(canvas, m, (side, side), borderValue=(128, 128, 128))


def bbt_samples(s: Sampler, bbt: Path) -> None:
    """BBT crops as positives, their degraded copies as negatives, rotations reported."""
    for path in sorted(bbt.glob("*/*.png")):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        face = s.largest(rgb)
        if face is not None:
            s.add(POSITIVE, "bbt_crop", rgb, face)
        for cls, img in degraded(rgb).items():
            face = s.largest(img)
            if face is not None:
                s.add(NEGATIVE, cls, img, face)
        for angle in (25, 60):
            img = rotated(rgb, angle)
            face = s.largest(img)
            if face is not None:
                s.add(REPORT, f"rotated_{angle}deg", img, face)


def street_samples(s: Sampler, video: Path, labels_path: Path, step: int,
                   rng: np.random.Generator) -> None:
    """street.mp4 detections by their hand labels; O-Net false positives as negatives."""
    labels = json.loads(labels_path.read_text())["labels"]
    group_of = {"not_face": NEGATIVE, "head_top": NEGATIVE, "profile": REPORT,
                "occluded": REPORT}
    cap = cv2.VideoCapture(str(video))
    index = -1
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        index += 1
        if index % step:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        faces = s.detector.detect(rgb)
        mine = [lab for lab in labels if lab["frame"] == index]
        for face in faces:
            match = [lab for lab in mine if iou(face.bbox, np.array(lab["bbox"])) >= 0.5]
            cls = match[0]["class"] if match else "face"
            s.add(group_of.get(cls, POSITIVE), f"street_{cls}", rgb, face)
            if cls == "face":
                # The same detection (box, landmarks, score) on the back of that head: what
                # the detector reported in the field on hair seen from behind.
                s.add(NEGATIVE, "back_of_head", back_of_head(rgb, face.bbox), face)
        # Boxes O-Net (the region pass) takes for a face although none is there.
        proposals: list[tuple[str, np.ndarray]] = []
        for face in faces:
            x1, y1, x2, y2 = face.bbox
            fh = y2 - y1
            proposals.append(("hair_above_face", np.array([x1, y1 - 0.8 * fh, x2, y2 - 0.8 * fh])))
            proposals.append(("below_face", np.array([x1, y1 + 1.3 * fh, x2, y2 + 1.3 * fh])))
        for _ in range(25):
            side = float(rng.uniform(40, 200))
            x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
            proposals.append(("detector_false_positive", np.array([x, y, x + side, y + side])))
        for cls, raw in proposals:
            box = np.clip(raw, 0, [w, h, w, h]).astype(np.float32)
            if box[2] - box[0] < 20 or box[3] - box[1] < 20:
                continue
            for found in s.detector.detect_regions(rgb, [box]):
                if all(iou(found.bbox, f.bbox) < 0.2 for f in faces):
                    s.add(NEGATIVE, cls, rgb, found)


def quantiles(values: np.ndarray, q: float) -> float:
    """The q-quantile of the finite values (NaN when none)."""
    v = values[np.isfinite(values)]
    return float(np.quantile(v, q)) if v.size else math.nan


def threshold(pos: np.ndarray, neg: np.ndarray, kind: str) -> float:
    """The threshold that refuses the most negatives while refusing at most
    ``MAX_POSITIVE_LOSS`` of the positives, half-way between the last negative it refuses and
    the positive it must keep (no negative below the positives: the lowest positive)."""
    sign = 1.0 if kind == "min" else -1.0  # a "max" threshold is the same search on -values
    p = np.sort(sign * pos[np.isfinite(pos)])
    n = sign * neg[np.isfinite(neg)]
    limit = p[math.floor(MAX_POSITIVE_LOSS * len(p))]
    refused = n[n < limit]
    t = 0.5 * (float(refused.max()) + float(limit)) if refused.size else float(p[0])
    return sign * t


def choose(rows: list[tuple[str, str, FaceAssessment]]) -> QualityGate:
    """Thresholds from the positives and negatives (see the module docstring): measure by
    measure in ``FIELDS`` order, each on the negatives the ones before did not refuse."""
    values: dict[str, float] = {}
    negatives = [a for g, _, a in rows if g == NEGATIVE]
    pos_rows = [a for g, _, a in rows if g == POSITIVE]
    for name, (measure, kind) in FIELDS.items():
        pos = np.array([getattr(a, measure) for a in pos_rows], np.float64)
        neg = np.array([getattr(a, measure) for a in negatives], np.float64)
        t = round(threshold(pos, neg, kind), 3)
        if name == "min_score":
            t = max(t, SCORE_FLOOR)
        values[name] = t
        negatives = [a for a in negatives
                     if (getattr(a, measure) >= t if kind == "min" else getattr(a, measure) <= t)]
    return QualityGate(**values)


def report(rows: list[tuple[str, str, FaceAssessment]], gate: QualityGate) -> dict:
    """Per class: how many, how many refused, by which reasons; and the positives' spread."""
    classes: dict[tuple[str, str], list[FaceAssessment]] = {}
    for g, c, a in rows:
        classes.setdefault((g, c), []).append(a)
    out = {}
    for (g, c), items in sorted(classes.items()):
        reasons = Counter()
        refused = 0
        for a in items:
            why = gate.reasons(a)
            refused += bool(why)
            reasons.update(why)
        out[c] = {"group": g, "n": len(items), "refused": refused,
                  "median_quality": round(float(np.median([a.quality for a in items])), 3),
                  "reasons": dict(reasons.most_common())}
    return out


def main() -> int:
    """Collect the samples, choose the thresholds, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bbt", type=Path, default=ROOT.parent / "shared" / "eval" / "bbt")
    parser.add_argument("--video", type=Path,
                        default=ROOT.parent / "shared" / "eval" / "video" / "street.mp4")
    parser.add_argument("--labels", type=Path,
                        default=ROOT / "bench" / "data" / "street_gate_labels.json")
    parser.add_argument("--frame-step", type=int, default=4)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "quality_gate.json")
    args = parser.parse_args()
    if not args.bbt.is_dir() or not args.video.is_file():
        print(f"data not found: {args.bbt}, {args.video}", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    s = Sampler()
    bbt_samples(s, args.bbt)
    street_samples(s, args.video, args.labels, args.frame_step, np.random.default_rng(0))
    gate = choose(s.rows)
    table = report(s.rows, gate)
    pos = [a for g, _, a in s.rows if g == POSITIVE]
    kept = sum(not gate.reasons(a) for a in pos)
    neg = [a for g, _, a in s.rows if g == NEGATIVE]
    caught = sum(bool(gate.reasons(a)) for a in neg)
    print(f"gate: {gate}")
    print(f"positives kept {kept}/{len(pos)}; negatives refused {caught}/{len(neg)} "
          f"({time.monotonic() - t0:.0f} s)")
    print("| class | group | n | refused | median quality | reasons |")
    print("| --- | --- | --- | --- | --- | --- |")
    for cls, r in table.items():
        reasons = ", ".join(f"{k} {v}" for k, v in r["reasons"].items()) or "-"
        print(f"| {cls} | {r['group']} | {r['n']} | {r['refused']} | {r['median_quality']} | "
              f"{reasons} |")
    spread = {}
    for m in sorted({measure for measure, _ in FIELDS.values()}):
        for group in (POSITIVE, NEGATIVE):
            v = np.array([getattr(a, m) for g, _, a in s.rows if g == group], np.float64)
            spread[f"{m}/{group}"] = [round(quantiles(v, q), 3) for q in (0.02, 0.5, 0.98)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "gate": gate.__dict__, "positives_kept": [kept, len(pos)],
        "negatives_refused": [caught, len(neg)], "classes": table,
        "spread_p2_median_p98": spread,
        "samples": [{"group": g, "class": c, **{k: round(v, 4) for k, v in a.as_dict().items()}}
                    for g, c, a in s.rows],
    }, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
