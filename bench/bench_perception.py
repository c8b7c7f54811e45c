"""Perception benchmark: per-stage latency and detection+tracking frames/s at 640x480.

Scenes are built from real faces: BBT face crops (150x150) pasted onto a 640x480 canvas,
one face and four faces, moving a few px per frame; without the BBT set, zidane.jpg (2 people,
shipped with ultralytics) resized to 640x480 and panned. Every setting runs the full
``Perceiver.process`` (preprocess, faces, tracking, quality, alignment, persons, scene crops).

    python bench/bench_perception.py --out /tmp/bench_perception.json

The machine may be shared: the load average at start is recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("YOLO_OFFLINE", "1")

from visio_memoria_ros.perception import STAGES, Perceiver, PerceiverConfig  # noqa: E402

W, H = 640, 480


@dataclass
class Scene:
    """A sequence of frames and, per frame, the centres of the faces it contains."""

    name: str
    frames: list[np.ndarray]
    centres: list[list[tuple[float, float]]]


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8."""
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def background(rng: np.random.Generator) -> np.ndarray:
    """A textured, blurred 640x480 background (not a flat colour: detectors see texture)."""
    noise = rng.integers(60, 200, (H // 8, W // 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC), (0, 0), 3)


def pasted_scene(name: str, crops: list[np.ndarray], n: int, seed: int = 0) -> Scene:
    """Paste ``crops`` on a canvas, each drifting by a few px per frame."""
    rng = np.random.default_rng(seed)
    bg = background(rng)
    slots = [(40, 60), (330, 40), (80, 300), (420, 290)] if len(crops) > 1 else [(240, 150)]
    velocity = [(3, 1), (-2, 2), (2, -1), (-3, -2)]
    frames, centres = [], []
    for t in range(n):
        frame = bg.copy()
        cs = []
        for crop, (x0, y0), (vx, vy) in zip(crops, slots, velocity, strict=False):
            x, y = x0 + vx * t, y0 + vy * t
            h, w = crop.shape[:2]
            frame[y : y + h, x : x + w] = crop
            cs.append((x + w / 2, y + h / 2))
        frames.append(frame)
        centres.append(cs)
    return Scene(name, frames, centres)


def zidane_scene(path: Path, n: int) -> Scene:
    """zidane.jpg (2 faces) scaled to 720 px wide and panned 4 px per frame in a 640x480 frame."""
    photo = cv2.resize(load_rgb(path), (720, 405), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((H, 720, 3), np.uint8)
    canvas[(H - 405) // 2 : (H - 405) // 2 + 405] = photo
    frames = [np.ascontiguousarray(canvas[:, 2 * i : 2 * i + W]) for i in range(n)]
    return Scene("zidane_2faces", frames, [[] for _ in range(n)])


def build_scenes(bbt: Path | None, n: int) -> list[Scene]:
    """The 1-face and 4-face BBT scenes when the set exists, and the zidane scene."""
    from ultralytics.utils import ASSETS

    scenes = []
    if bbt is not None and (bbt / "labels.json").is_file():
        people = ["leonard", "penny", "sheldon", "raj"]
        crops = [load_rgb(sorted((bbt / p).iterdir())[0]) for p in people]
        scenes.append(pasted_scene("bbt_1face", crops[:1], n))
        scenes.append(pasted_scene("bbt_4faces", crops, n))
    else:
        print(f"BBT set not found at {bbt}: BBT scenes skipped", file=sys.stderr)
    scenes.append(zidane_scene(Path(ASSETS) / "zidane.jpg", n))
    return scenes


def recall(frame_faces: list, centres: list[tuple[float, float]]) -> float | None:
    """Fraction of pasted face centres inside some detected box (None when unknown)."""
    if not centres:
        return None
    hit = sum(
        any(f.bbox[0] <= x <= f.bbox[2] and f.bbox[1] <= y <= f.bbox[3] for f in frame_faces)
        for x, y in centres
    )
    return hit / len(centres)


def run(perceiver: Perceiver, scene: Scene, warmup: int) -> dict:
    """Process the scene; return fps, median per-stage ms on detection frames, recall, ids."""
    for frame in scene.frames[:warmup]:
        perceiver.process(frame)
    perceiver.reset()
    stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}
    recalls, ids = [], set()
    n_faces = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i, frame in enumerate(scene.frames):
        out = perceiver.process(frame, stamp=i / 30.0)
        if perceiver.last_detected:
            for s in STAGES:
                stage_ms[s].append(perceiver.stage_times[s] * 1000.0)
            r = recall(out.faces, scene.centres[i])
            if r is not None:
                recalls.append(r)
            n_faces.append(len(out.faces))
        ids.update(f.track_id for f in out.faces if f.track_id >= 0)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "fps": len(scene.frames) / elapsed,
        "ms_per_frame": 1000.0 * elapsed / len(scene.frames),
        # CPU seconds this process used: with 1 thread, what one uncontended core would take.
        "cpu_ms_per_frame": 1000.0 * cpu / len(scene.frames),
        "fps_cpu": len(scene.frames) / max(cpu, 1e-9),
        "stage_ms_median": {s: statistics.median(v) if v else 0.0 for s, v in stage_ms.items()},
        "recall": statistics.mean(recalls) if recalls else None,
        "faces_per_detection": statistics.mean(n_faces) if n_faces else 0.0,
        "distinct_face_ids": len(ids),
    }


def settings(face_model: Path | None) -> dict[str, PerceiverConfig]:
    """The configurations compared (all use face-extrapolated persons unless named)."""
    base = PerceiverConfig()
    out = {
        "mtcnn_default": base,
        "mtcnn_min40": replace(base, min_face_size=40),
        "mtcnn_min40_side320": replace(base, min_face_size=40, detect_max_side=320),
        "mtcnn_min40_side320_stride2": replace(
            base, min_face_size=40, detect_max_side=320, detect_stride=2
        ),
        "mtcnn_min40_side320_stride3": replace(
            base, min_face_size=40, detect_max_side=320, detect_stride=3
        ),
        "mtcnn_min40_side320_hog": replace(
            base,
            min_face_size=40,
            detect_max_side=320,
            person_backend="hog",
            person_max_side=320,
        ),
        "mtcnn_min60_side320_stride3": replace(
            base, min_face_size=60, detect_max_side=320, detect_stride=3
        ),
        "haar_side320": replace(base, face_backend="haar", min_face_size=40, detect_max_side=320),
        "haar_side320_stride2": replace(
            base, face_backend="haar", min_face_size=40, detect_max_side=320, detect_stride=2
        ),
    }
    if face_model is not None:
        out["yolo_untrained_320 (speed only)"] = replace(
            base,
            face_backend="yolo",
            face_model_path=str(face_model),
            detect_max_side=320,
            face_score_threshold=0.5,
        )
    return out


def build_yolo_face(tmp: Path) -> Path | None:
    """An untrained YOLOv8n-face (5 keypoints) built from the pose yaml, for timing only."""
    try:
        import ultralytics
        import yaml
        from ultralytics import YOLO
    except ImportError:
        return None
    cfg = yaml.safe_load(
        (Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8-pose.yaml").read_text()
    )
    cfg["kpt_shape"], cfg["nc"] = [5, 3], 1
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "yolov8n-face.yaml").write_text(yaml.safe_dump(cfg))
    path = tmp / "yolov8n-face-untrained.pt"
    YOLO(str(tmp / "yolov8n-face.yaml")).save(str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write JSON to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON results path")
    parser.add_argument("--frames", type=int, default=30, help="frames per scene and setting")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared/loaded 2-core CPU, 2 threads spin)",
    )
    parser.add_argument("--cv-threads", type=int, default=1, help="OpenCV threads")
    parser.add_argument(
        "--bbt",
        type=Path,
        default=Path(os.environ.get("VISIO_MEMORIA_BBT", REPO.parent / "shared" / "eval" / "bbt")),
    )
    parser.add_argument("--no-yolo", action="store_true", help="skip the YOLO speed row")
    parser.add_argument("--only", default="", help="comma-separated setting names to run")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.cv_threads)
    scenes = build_scenes(args.bbt, args.frames)
    face_model = None if args.no_yolo else build_yolo_face(Path("/tmp/vm_bench_yolo"))
    configs = settings(face_model)
    if args.only:
        wanted = set(args.only.split(","))
        configs = {k: v for k, v in configs.items() if k in wanted}

    results = []
    head = (
        f"{'setting':34s} {'scene':14s} {'fps':>6s} {'cpuFps':>6s} {'ms/fr':>7s} "
        f"{'det':>6s} {'ftrk':>5s} "
        f"{'qual':>5s} {'align':>5s} {'pers':>5s} {'ptrk':>5s} {'scene':>5s} {'recall':>6s}"
    )
    print(head)
    print("-" * len(head))
    for name, config in configs.items():
        perceiver = Perceiver(config)
        for scene in scenes:
            r = run(perceiver, scene, args.warmup)
            r.update(setting=name, scene=scene.name, config=asdict(config))
            results.append(r)
            m = r["stage_ms_median"]
            rec = "-" if r["recall"] is None else f"{r['recall']:.2f}"
            print(
                f"{name:34s} {scene.name:14s} {r['fps']:6.1f} {r['fps_cpu']:6.1f} "
                f"{r['ms_per_frame']:7.1f} "
                f"{m['faces']:6.1f} {m['face_tracking']:5.1f} {m['quality']:5.1f} "
                f"{m['align']:5.1f} {m['persons']:5.1f} {m['person_tracking']:5.1f} "
                f"{m['scene']:5.1f} {rec:>6s}",
                flush=True,
            )
    doc = {
        "image_size": [W, H],
        "frames": args.frames,
        "torch_threads": args.threads,
        "opencv_threads": args.cv_threads,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "columns": "fps = wall-clock frames/s; cpuFps = frames per CPU-second of this process "
        "(with 1 thread: the rate on one uncontended core); ms/fr = wall ms per "
        "frame; stage columns = median wall ms over detection frames",
        "stage_columns_ms": "median over detection frames: det=face detector, ftrk=face "
        "tracker, qual=quality, align=aligned crops, pers=person detector, "
        "ptrk=person tracker+association, scene=scene crops",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
