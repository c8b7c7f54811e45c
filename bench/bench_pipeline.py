"""Pipeline benchmark: ours (tracking + embed policy + per-track vote) vs the face_recognition loop.

Both sides see the SAME replayed frames:

* ``bbt_1face`` / ``bbt_4faces``: BBT face crops (150x150, the first crop of each identity,
  held out of the gallery) pasted on a textured 640x480 canvas, drifting 2 px per frame
  (back and forth, faces never overlap);
* ``bbt_group``: the five BBT group photos resized to 640 px wide, each held for
  ``--group-frames`` frames drifting 1 px per frame (labels.json gives the names); each photo
  is a clip of its own (tracks are reset at the cut, as a camera change would);
* without the BBT set: ``zidane.jpg`` (ultralytics ASSETS) panned in a 640x480 frame.

Ours: ``Perceiver`` (MTCNN, tracking; settings in ``OURS``) -> ``EmbedPolicy`` (dlib ResNet
only for new / improved / refreshed tracks, as embedding_node does) -> ``IdentityEngine``
(per-track vote), gallery enrolled from BBT crops 2..5 of each identity.
The peer: what a user would write with ``face_recognition`` - every frame
``face_locations`` (HOG, upsample 1, and ``model="cnn"`` on a few frames) +
``face_encodings`` + ``face_distance``/``compare_faces`` (tolerance 0.6) against encodings of
the same gallery crops; same dlib models (face_recognition_models).

Each method runs in its own worker process (models loaded once; peak RSS is that process's
``ru_maxrss``); scenes alternate between the workers so both see the same machine load.
Frame stamps advance at ``--fps`` (camera rate), which drives the embed policy's timers.

    python bench/bench_pipeline.py --out bench/results/bench_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("YOLO_OFFLINE", "1")

W, H = 640, 480
PASTED = ("leonard", "penny", "sheldon", "raj")
GROUP_PHOTOS = ("bbt1.jpg", "bbt2.jpg", "bbt3.jpg", "bbt4.jpg", "bbt5.jpg")
UNKNOWN = "Unknown"

#: Our settings (PerceiverConfig fields; the rest are the defaults of config/visio_memoria.yaml).
OURS: dict[str, dict[str, Any]] = {
    # What the nodes run with the shipped parameter file (torch limited to 1 thread).
    "ours_defaults": {"torch_threads": 1},
    # Chosen for speed: faces >= 40 px, detection on a 320 px image, every 3rd frame,
    # and track ids from the first detection (no untracked faces embedded on every frame).
    "ours_fast": {
        "torch_threads": 1,
        "min_face_size": 40,
        "detect_max_side": 320,
        "detect_stride": 3,
        "track_min_frames": 1,
    },
}


@dataclass
class Scene:
    """Frames and, per frame, the labelled faces ``(name, (x, y) centre)`` they contain."""

    name: str
    frames: list[np.ndarray]
    labels: list[list[tuple[str, tuple[float, float]]]]
    segments: list[tuple[str, int, int]] = field(default_factory=list)  # (photo, start, end)


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8."""
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def background(rng: np.random.Generator) -> np.ndarray:
    """A textured, blurred 640x480 background."""
    noise = rng.integers(60, 200, (H // 8, W // 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC), (0, 0), 3)


def triangle(t: int, period: int) -> int:
    """0, 1, ..., period, period-1, ..., 0, ... (a back-and-forth drift in steps)."""
    k = t % (2 * period)
    return k if k <= period else 2 * period - k


def pasted_scene(name: str, crops: dict[str, np.ndarray], n: int, seed: int = 0) -> Scene:
    """Paste the crops on a canvas, each drifting 2 px per frame back and forth."""
    rng = np.random.default_rng(seed)
    bg = background(rng)
    slots = [(60, 50), (400, 40), (90, 290), (420, 280)] if len(crops) > 1 else [(245, 165)]
    direction = [(1, 0), (-1, 1), (1, -1), (-1, 0)]
    frames, labels = [], []
    for t in range(n):
        frame = bg.copy()
        faces = []
        d = 2 * triangle(t, 20)  # up to 40 px away from the slot
        for (who, crop), (x0, y0), (dx, dy) in zip(crops.items(), slots, direction, strict=False):
            x, y = x0 + dx * d, y0 + dy * d
            h, w = crop.shape[:2]
            frame[y : y + h, x : x + w] = crop
            faces.append((who, (x + w / 2, y + h / 2)))
        frames.append(frame)
        labels.append(faces)
    return Scene(name, frames, labels)


def group_scene(bbt: Path, per_photo: int) -> Scene:
    """Each BBT group photo resized to 640 px wide, held for ``per_photo`` frames, drifting."""
    meta = json.loads((bbt / "labels.json").read_text())["group_photos"]
    frames, labels, segments = [], [], []
    for photo in GROUP_PHOTOS:
        image = load_rgb(bbt / photo)
        scale = W / image.shape[1]
        image = cv2.resize(image, (W, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        start = len(frames)
        for t in range(per_photo):
            dx = dy = triangle(t, 6)  # 1 px per frame, at most 6 px
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            frames.append(cv2.warpAffine(image, m, (W, image.shape[0]),
                                         borderMode=cv2.BORDER_REPLICATE))
            labels.append([(x["name"], (x["center"][0] * scale + dx, x["center"][1] * scale + dy))
                           for x in meta[photo]])
        segments.append((photo, start, len(frames)))
    return Scene("bbt_group", frames, labels, segments)


def zidane_scene(n: int) -> Scene:
    """zidane.jpg scaled to 720 px wide and panned 2 px per frame in a 640x480 frame."""
    from ultralytics.utils import ASSETS

    photo = cv2.resize(load_rgb(Path(ASSETS) / "zidane.jpg"), (720, 405),
                       interpolation=cv2.INTER_AREA)
    canvas = np.zeros((H, 720, 3), np.uint8)
    canvas[(H - 405) // 2 : (H - 405) // 2 + 405] = photo
    frames = [np.ascontiguousarray(canvas[:, 2 * triangle(i, 40) : 2 * triangle(i, 40) + W])
              for i in range(n)]
    return Scene("zidane_2faces", frames, [[] for _ in range(n)])


def build_scenes(bbt: Path | None, n: int, per_photo: int) -> list[Scene]:
    """The BBT scenes when the set exists, else the zidane scene."""
    if bbt is None or not (bbt / "labels.json").is_file():
        print(f"BBT set not found at {bbt}: BBT scenes skipped, zidane.jpg instead",
              file=sys.stderr)
        return [zidane_scene(n)]
    crops = {p: load_rgb(gallery_files(bbt, p)[0]) for p in PASTED}
    return [
        pasted_scene("bbt_1face", {"leonard": crops["leonard"]}, n),
        pasted_scene("bbt_4faces", crops, n),
        group_scene(bbt, per_photo),
    ]


def gallery_files(bbt: Path, person: str) -> list[Path]:
    """The crop files of one identity, sorted (the first is held out for the pasted scenes)."""
    return sorted(p for p in (bbt / person).iterdir() if p.suffix.lower() in (".png", ".jpg"))


def gallery_images(bbt: Path | None) -> list[tuple[str, np.ndarray]]:
    """(name, RGB crop) of crops 2..5 of every BBT identity (empty without the set)."""
    if bbt is None or not (bbt / "labels.json").is_file():
        return []
    names = json.loads((bbt / "labels.json").read_text())["identities"]
    return [(n, load_rgb(p)) for n in names for p in gallery_files(bbt, n)[1:]]


# ------------------------------------------------------------------------------- methods
class Ours:
    """Perceiver -> EmbedPolicy + dlib -> IdentityEngine, exactly as the three nodes chain them."""

    def __init__(self, settings: dict[str, Any]) -> None:
        """Load the detector and the dlib embedder once."""
        from visio_memoria_ros.config import embedding as embedding_params
        from visio_memoria_ros.embedding import build_embed_policy, build_face_embedder
        from visio_memoria_ros.identity import EngineConfig, IdentityEngine
        from visio_memoria_ros.perception import Perceiver, PerceiverConfig

        self.config = PerceiverConfig(**settings)
        self.perceiver = Perceiver(self.config)
        self.embedder = build_face_embedder("dlib")
        self._policy_params = {s.name: s.default for s in embedding_params.PARAMS}
        self._build_policy = build_embed_policy
        self.max_faces = int(self._policy_params["max_faces_per_frame"])
        self.engine = IdentityEngine(EngineConfig())
        self.policy = build_embed_policy(**self._policy_params)
        self.missed_gallery = 0

    def enroll(self, gallery: list[tuple[str, np.ndarray]]) -> int:
        """Embed each gallery crop through the Perceiver's aligned crop; return vectors loaded."""
        from visio_memoria_ros.identity import GalleryEntry
        from visio_memoria_ros.perception import Perceiver

        enrol = Perceiver(self.config.__class__(torch_threads=self.config.torch_threads))
        person_ids = {n: i for i, n in enumerate(dict.fromkeys(n for n, _ in gallery))}
        entries = []
        for k, (name, image) in enumerate(gallery):
            enrol.reset()
            faces = [f for f in enrol.process(image).faces if f.crop is not None]
            if not faces:
                self.missed_gallery += 1
                continue
            face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
            vector = self.embedder.embed([face.crop])[0]
            entries.append(GalleryEntry(k, person_ids[name], name, vector, self.embedder.id))
        return self.engine.load_gallery(entries).num_vectors

    def reset(self) -> None:
        """Forget tracks, embed state and votes (a new scene)."""
        self.perceiver.reset()
        self.policy = self._build_policy(**self._policy_params)
        self.engine.reset_tracks()

    def step(self, rgb: np.ndarray, t: float) -> tuple[list[tuple[np.ndarray, str]], dict]:
        """One frame: returns [(box x1y1x2y2, name)] and stage seconds."""
        from visio_memoria_ros.core.types import Status

        t0 = time.perf_counter()
        frame = self.perceiver.process(rgb, stamp=t)
        t1 = time.perf_counter()
        chosen = [f for f in frame.faces
                  if f.crop is not None
                  and self.policy.decide(f.track_id, f.quality, t, f.bbox).embed]
        chosen.sort(key=lambda f: f.quality, reverse=True)
        chosen = chosen[: self.max_faces]
        if chosen:
            vectors = self.embedder.embed([f.crop for f in chosen])
            for face, vector in zip(chosen, vectors, strict=True):
                face.embedding, face.embedder = vector, self.embedder.id
                self.policy.mark_embedded(face.track_id, face.quality, t, face.bbox)
        self.policy.prune(t)
        t2 = time.perf_counter()
        out = self.engine.process(frame.faces, t)
        t3 = time.perf_counter()
        names = [(d.bbox, d.name if d.status is Status.KNOWN else Status(d.status).name.lower())
                 for d in out.decisions]
        stages = {"perceive": t1 - t0, "embed": t2 - t1, "identity": t3 - t2}
        for s, v in self.perceiver.stage_times.items():
            stages[f"perceive.{s}"] = v
        return names, {"stages": stages, "embedded": len(chosen),
                       "detected": self.perceiver.last_detected}


class Peer:
    """The face_recognition per-frame loop: locate, encode, compare, every frame."""

    def __init__(self, model: str, upsample: int = 1, tolerance: float = 0.6) -> None:
        """Import face_recognition (loads the dlib models once)."""
        import face_recognition

        self.fr = face_recognition
        self.model, self.upsample, self.tolerance = model, upsample, tolerance
        self.known: np.ndarray = np.zeros((0, 128))
        self.known_names: list[str] = []
        self.missed_gallery = 0

    def enroll(self, gallery: list[tuple[str, np.ndarray]]) -> int:
        """``face_encodings(crop)[0]`` per gallery crop (the whole crop when HOG finds nothing)."""
        vectors, names = [], []
        for name, image in gallery:
            enc = self.fr.face_encodings(image)
            if not enc:
                self.missed_gallery += 1
                h, w = image.shape[:2]
                enc = self.fr.face_encodings(image, [(0, w, h, 0)])
            vectors.append(enc[0])
            names.append(name)
        self.known, self.known_names = np.array(vectors), names
        return len(vectors)

    def reset(self) -> None:
        """Nothing to forget: every frame stands alone."""

    def step(self, rgb: np.ndarray, t: float) -> tuple[list[tuple[np.ndarray, str]], dict]:
        """One frame: returns [(box x1y1x2y2, name)] and stage seconds."""
        t0 = time.perf_counter()
        locations = self.fr.face_locations(rgb, self.upsample, model=self.model)
        t1 = time.perf_counter()
        encodings = self.fr.face_encodings(rgb, locations)
        t2 = time.perf_counter()
        out = []
        for (top, right, bottom, left), enc in zip(locations, encodings, strict=True):
            matches = self.fr.compare_faces(self.known, enc, tolerance=self.tolerance)
            distances = self.fr.face_distance(self.known, enc)
            best = int(np.argmin(distances))
            name = self.known_names[best] if matches[best] else UNKNOWN
            out.append((np.array([left, top, right, bottom], np.float32), name))
        t3 = time.perf_counter()
        return out, {"stages": {"detect": t1 - t0, "encode": t2 - t1, "match": t3 - t2},
                     "embedded": len(locations), "detected": True}


def name_at(faces: list[tuple[np.ndarray, str]], centre: tuple[float, float]) -> str | None:
    """The name of the face whose box contains ``centre`` (smallest box), None when no face."""
    x, y = centre
    inside = [(float((b[2] - b[0]) * (b[3] - b[1])), n) for b, n in faces
              if b[0] <= x <= b[2] and b[1] <= y <= b[3]]
    return min(inside)[1] if inside else None


def run_scene(method: Any, scene: Scene, fps: float, max_frames: int, warmup: int) -> dict:
    """Process the scene's frames in order; timing, stages and the name per labelled face."""
    for frame in scene.frames[:warmup]:
        method.step(frame, 0.0)
    method.reset()
    frames = scene.frames[:max_frames] if max_frames else scene.frames
    per_frame, stage_sum, per_label = [], Counter(), []
    embedded = detected = n_faces = 0
    cuts = {start for _, start, _ in scene.segments}
    tracemalloc.start()
    c0, t0 = time.process_time(), time.perf_counter()
    for i, frame in enumerate(frames):
        if i in cuts:
            method.reset()  # a new photo is a new clip: no track survives a hard cut
        f0 = time.perf_counter()
        faces, info = method.step(frame, i / fps)
        per_frame.append(time.perf_counter() - f0)
        stage_sum.update(info["stages"])
        embedded += info["embedded"]
        detected += info["detected"]
        n_faces += len(faces)
        per_label.append([name_at(faces, c) for _, c in scene.labels[i]])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(frames)
    ordered = sorted(per_frame)
    return {
        "scene": scene.name,
        "frames": n,
        "fps": n / wall,
        "fps_cpu": n / max(cpu, 1e-9),
        "ms_per_frame": 1000 * wall / n,
        "cpu_ms_per_frame": 1000 * cpu / n,
        "frame_ms_p50": 1000 * statistics.median(per_frame),
        "frame_ms_p90": 1000 * ordered[min(n - 1, round(0.9 * (n - 1)))],
        "frame_ms_max": 1000 * ordered[-1],
        "stage_ms_mean": {k: 1000 * v / n for k, v in stage_sum.items()},
        "embeddings_per_frame": embedded / n,
        "detection_frames": detected,
        "faces_per_frame": n_faces / n,
        "python_heap_peak_mb": py_peak / 2**20,
        "names": per_label,
    }


def worker(conn: Any, kind: str, settings: dict[str, Any], bbt: str | None,
           threads: int) -> None:
    """Worker process: build the method, enroll, then run the scenes it is sent."""
    logging.basicConfig(level=logging.WARNING)
    cv2.setNumThreads(threads)
    try:
        if kind == "ours":
            method: Any = Ours(settings)
        else:
            method = Peer(**settings)
        gallery = gallery_images(Path(bbt) if bbt else None)
        enrolled = method.enroll(gallery) if gallery else 0
        conn.send({"enrolled": enrolled, "missed_gallery": method.missed_gallery,
                   "rss_after_load_mb": _maxrss_mb()})
        while True:
            job = conn.recv()
            if job is None:
                break
            scene, fps, max_frames, warmup = job
            result = run_scene(method, scene, fps, max_frames, warmup)
            result["peak_rss_mb"] = _maxrss_mb()
            conn.send(result)
    except Exception as exc:  # report, do not hang the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        raise


def _maxrss_mb() -> float:
    """Peak resident memory of this process [MB] (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Worker:
    """One method in its own process, answering scene jobs over a pipe."""

    def __init__(self, name: str, kind: str, settings: dict[str, Any], bbt: Path | None,
                 threads: int) -> None:
        """Start the process and wait until its models are loaded and the gallery enrolled."""
        ctx = mp.get_context("spawn")
        self.name = name
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(child, kind, settings,
                                                     str(bbt) if bbt else None, threads),
                                daemon=True)
        self.proc.start()
        self.info = self._recv()

    def _recv(self) -> dict:
        msg = self.conn.recv()
        if "error" in msg:
            raise RuntimeError(f"{self.name}: {msg['error']}")
        return msg

    def run(self, scene: Scene, fps: float, max_frames: int, warmup: int) -> dict:
        """Run one scene and return its result."""
        self.conn.send((scene, fps, max_frames, warmup))
        return self._recv()

    def close(self) -> None:
        """Ask the worker to exit and wait for it."""
        if self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(timeout=30)


# ------------------------------------------------------------------------------- reports
def identity_table(scene: Scene, results: dict[str, dict]) -> list[dict]:
    """Per labelled face of the group photos: each method's name at the end and by majority."""
    rows = []
    for photo, start, end in scene.segments:
        for j, (who, _) in enumerate(scene.labels[start]):
            row: dict[str, Any] = {"photo": photo, "label": who}
            for method, r in results.items():
                names = r["names"]
                if end > len(names):
                    row[method] = None
                    continue
                seq = [names[i][j] for i in range(start, end)]
                seen = [n for n in seq if n is not None]
                majority = Counter(seen).most_common(1)[0][0] if seen else None
                first_known = next((i - start for i in range(start, end)
                                    if names[i][j] == who), None)
                row[method] = {"last": seq[-1], "majority": majority,
                               "first_correct_frame": first_known,
                               "found_frames": len(seen), "frames": len(seq)}
            rows.append(row)
    return rows


def pasted_identities(scene: Scene, r: dict) -> dict[str, dict]:
    """For a pasted scene: per identity, its name on the last frame and by majority."""
    out = {}
    for j, (who, _) in enumerate(scene.labels[0]):
        seq = [f[j] for f in r["names"]]
        seen = [n for n in seq if n is not None]
        out[who] = {"last": seq[-1], "majority": Counter(seen).most_common(1)[0][0] if seen
                    else None, "found_frames": len(seen), "frames": len(seq)}
    return out


def main(argv: list[str] | None = None) -> int:
    """Run ours vs the peer on the same frames, print tables, write JSON to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON results path")
    parser.add_argument("--bbt", type=Path,
                        default=Path(os.environ.get("VISIO_MEMORIA_BBT",
                                                    REPO.parent / "shared" / "eval" / "bbt")))
    parser.add_argument("--frames", type=int, default=60, help="frames of each pasted scene")
    parser.add_argument("--group-frames", type=int, default=30,
                        help="frames per group photo (at --fps: 3 s lets a track collect 2 votes)")
    parser.add_argument("--fps", type=float, default=10.0, help="camera rate of the stamps [Hz]")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for torch/OpenCV/BLAS in every worker (fair on 2 cores)")
    parser.add_argument("--ours", default="ours_defaults,ours_fast",
                        help=f"our settings to run, from {list(OURS)}")
    parser.add_argument("--cnn-frames", type=int, default=1,
                        help="frames per scene for face_recognition model='cnn' (0 = skip; "
                             "~10 s per frame on this CPU)")
    args = parser.parse_args(argv)

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    load_start = os.getloadavg()
    bbt = args.bbt if (args.bbt / "labels.json").is_file() else None
    scenes = build_scenes(bbt, args.frames, args.group_frames)

    methods: list[tuple[str, str, dict[str, Any], int]] = []
    for name in filter(None, args.ours.split(",")):
        methods.append((name, "ours", OURS[name], 0))
    methods.append(("face_recognition_hog", "peer", {"model": "hog"}, 0))
    if args.cnn_frames > 0:
        methods.append(("face_recognition_cnn", "peer", {"model": "cnn"}, args.cnn_frames))

    workers = {}
    try:
        for name, kind, settings, _ in methods:
            t0 = time.perf_counter()
            workers[name] = Worker(name, kind, settings, bbt, args.threads)
            info = workers[name].info
            print(f"{name}: ready in {time.perf_counter() - t0:.1f} s, gallery "
                  f"{info['enrolled']} vectors ({info['missed_gallery']} crops without a "
                  f"detection), RSS {info['rss_after_load_mb']:.0f} MB", flush=True)
        results: list[dict] = []
        head = (f"{'method':22s} {'scene':14s} {'frames':>6s} {'fps':>6s} {'cpuFps':>6s} "
                f"{'ms/fr':>7s} {'p90':>7s} {'max':>7s} {'emb/fr':>6s} {'peakMB':>6s}  stages "
                "(mean ms per frame)")
        print(head)
        print("-" * len(head))
        for scene in scenes:  # scene by scene, every method in turn: same load for all
            for name, _, _, max_frames in methods:
                r = workers[name].run(scene, args.fps, max_frames, args.warmup)
                r["method"] = name
                results.append(r)
                stages = " ".join(f"{k}={v:.1f}" for k, v in r["stage_ms_mean"].items()
                                  if "." not in k)
                print(f"{name:22s} {scene.name:14s} {r['frames']:6d} {r['fps']:6.2f} "
                      f"{r['fps_cpu']:6.2f} {r['ms_per_frame']:7.1f} {r['frame_ms_p90']:7.1f} "
                      f"{r['frame_ms_max']:7.1f} {r['embeddings_per_frame']:6.2f} "
                      f"{r['peak_rss_mb']:6.0f}  {stages}", flush=True)
    finally:
        for w in workers.values():
            w.close()

    # Speed-ups: ours vs the HOG peer on the same scene.
    by = {(r["method"], r["scene"]): r for r in results}
    speedups = []
    print("\nspeed-up vs face_recognition_hog (same frames; wall and CPU frames/s ratios)")
    for name, kind, _, _ in methods:
        if kind != "ours":
            continue
        for scene in scenes:
            a, b = by[(name, scene.name)], by[("face_recognition_hog", scene.name)]
            s = {"method": name, "scene": scene.name, "wall": a["fps"] / b["fps"],
                 "cpu": a["fps_cpu"] / b["fps_cpu"]}
            speedups.append(s)
            print(f"  {name:16s} {scene.name:14s} wall x{s['wall']:.1f}  cpu x{s['cpu']:.1f}")

    identity: dict[str, Any] = {}
    names_of = {m[0] for m in methods}
    for scene in scenes:
        per_method = {m: by[(m, scene.name)] for m in names_of}
        if scene.segments:
            rows = identity_table(scene, per_method)
            identity[scene.name] = rows
            cols = [m for m, *_ in methods]
            print(f"\nidentity per labelled face ({scene.name}; name on the last frame of the "
                  "photo / majority over its frames; '-' = no face found there)")
            print(f"{'photo':9s} {'label':11s} " + " ".join(f"{c:>27s}" for c in cols))
            for row in rows:
                cells = []
                for c in cols:
                    v = row.get(c)
                    cells.append("n/a" if v is None
                                 else f"{v['last'] or '-'}/{v['majority'] or '-'}")
                print(f"{row['photo']:9s} {row['label']:11s} " +
                      " ".join(f"{x:>27s}" for x in cells))
        elif scene.labels[0]:
            identity[scene.name] = {m: pasted_identities(scene, r) for m, r in per_method.items()}

    summary = identity_summary(identity, [m for m, *_ in methods])
    if summary:
        print("\nidentity summary (group photos, labelled faces):")
        for m, s in summary.items():
            print(f"  {m:22s} correct(last) {s['correct_last']}/{s['labelled']}  "
                  f"correct(majority) {s['correct_majority']}/{s['labelled']}  "
                  f"differs from hog peer (last): {s['differs_from_hog_last']}")
    for r in results:
        r.pop("names", None)
    doc = {
        "command": " ".join(["python bench/bench_pipeline.py", *(argv or sys.argv[1:])]),
        "image_size": [W, H],
        "fps_stamps": args.fps,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_start,
        "load_average_at_end": os.getloadavg(),
        "platform": platform.platform(),
        "ours_settings": {m: OURS[m] for m in names_of if m in OURS},
        "gallery": {m: workers[m].info for m in names_of},
        "columns": "fps = wall frames/s; cpuFps = frames per CPU-second of the worker; "
                   "ms/fr = wall ms per frame (mean); p90/max = per-frame wall ms; emb/fr = "
                   "face embeddings computed per frame; peakMB = worker ru_maxrss",
        "results": results,
        "speedups": speedups,
        "identity": identity,
        "identity_summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=_json_default))
    print(f"wrote {args.out}")
    return 0


def identity_summary(identity: dict[str, Any], methods: list[str]) -> dict[str, dict]:
    """Correct names per method on the group photos, and where each differs from the HOG peer."""
    rows = identity.get("bbt_group")
    if not rows:
        return {}
    out = {}
    for m in methods:
        usable = [r for r in rows if r.get(m)]
        if not usable:
            continue
        differs = [f"{r['photo']}:{r['label']} {r[m]['last']} vs "
                   f"{(r.get('face_recognition_hog') or {}).get('last')}"
                   for r in usable
                   if r[m]["last"] != (r.get("face_recognition_hog") or {}).get("last")]
        out[m] = {
            "labelled": len(usable),
            "correct_last": sum(r[m]["last"] == r["label"] for r in usable),
            "correct_majority": sum(r[m]["majority"] == r["label"] for r in usable),
            "differs_from_hog_last": differs,
        }
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    raise TypeError(type(o).__name__)


if __name__ == "__main__":
    raise SystemExit(main())
