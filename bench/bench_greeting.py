"""Greeting latency through the real node graph: first frame of a face -> ``/greeting``.

detector_node, embedding_node, identity_node and memory_node run as separate processes
(``NodeProcess``, as ``ros2 launch`` would start them) on local-only DDS. The memory is seeded
before memory_node starts: one person per BBT identity, enrolled from crops 2..5 through the
same Perceiver + dlib path the nodes use. This process then plays a camera: it publishes
640x480 frames on ``image_raw`` at ``--rate`` Hz - an empty textured background for ``--gap``
seconds (longer than the tracks' life and identity_node's ``visit_absence``), then the held-out
crop 1 of the next identity pasted on it, drifting 2 px per frame, until ``/greeting`` names
that person. Latency = wall time from publishing the first frame with the face to receiving
the greeting. Per trial it also records when the first detection, the first tracked face, the
first embedding and the first KNOWN identity of that face arrived, so the dominating stage is
visible; per-node processing times come from the Perception messages' ``processing_time`` and
from /diagnostics. Graph frames/s = /identities messages per second while faces are shown.

Profiles (node parameters on top of config/visio_memoria.yaml; every profile sets
identity_node ``visit_absence`` 2 s and ``greeting_cooldown`` 0 so a person can be greeted
again after a gap):

* ``defaults``: the shipped parameters (MTCNN on full frames; 2 votes, the first 2 embeddings
  of a track 0.2 s apart);
* ``fast``: detector min_face_size 40, detect_max_side 320, track_min_frames 1;
* ``fast_stride3``: ``fast`` + detect_stride 3 (the ``ours_fast`` settings of
  bench_pipeline.py, where the speed ratio against face_recognition is measured).

    python bench/bench_greeting.py --out bench/results/bench_greeting.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import background, gallery_files, load_rgb, triangle  # noqa: E402

W, H = 640, 480
EMBEDDER = "dlib_resnet_v1_128"
GREETING = re.compile(r"Welcome back, (.+)!")

_FAST_DETECTOR = {"min_face_size": 40, "detect_max_side": 320, "track_min_frames": 1}
_REPEATABLE = {"visit_absence": 2.0, "greeting_cooldown": 0.0}
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "defaults": {"detector_node": {}, "embedding_node": {}, "identity_node": {}},
    "fast": {"detector_node": _FAST_DETECTOR, "embedding_node": {}, "identity_node": {}},
    "fast_stride3": {"detector_node": {**_FAST_DETECTOR, "detect_stride": 3},
                     "embedding_node": {}, "identity_node": {}},
}


def seed_store(data_dir: Path, bbt: Path) -> dict[str, int]:
    """Enroll every BBT identity (crops 2..5) into a fresh memory; return name -> vectors."""
    from visio_memoria_ros.embedding import build_face_embedder
    from visio_memoria_ros.memory import SQLiteStore
    from visio_memoria_ros.perception import Perceiver, PerceiverConfig

    names = json.loads((bbt / "labels.json").read_text())["identities"]
    perceiver = Perceiver(PerceiverConfig(torch_threads=1))
    embedder = build_face_embedder("dlib")
    store = SQLiteStore.from_params({"data_dir": str(data_dir), "synchronous": "NORMAL"})
    counts = {}
    try:
        for name in names:
            person = store.create_person(name.capitalize())
            counts[name] = 0
            for path in gallery_files(bbt, name)[1:]:
                perceiver.reset()
                faces = [f for f in perceiver.process(load_rgb(path)).faces if f.crop is not None]
                if not faces:
                    continue
                face = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * f.bbox[3]))
                vector = embedder.embed([face.crop])[0]
                store.add_embedding(person.person_id, vector, embedder.id, quality=face.quality,
                                    crop=face.crop, source="bench")
                counts[name] += 1
    finally:
        store.close()
    return counts


@dataclass
class Trial:
    """One appearance of one person and what the graph did about it (wall times, monotonic)."""

    person: str
    t0: float
    stamp0: float
    detected: float | None = None
    tracked: float | None = None
    embedded: float | None = None
    known: float | None = None
    greeted: float | None = None
    greeting: str = ""
    frames_sent: int = 0
    wrong_greetings: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """Latencies [s] from the first frame with the face."""
        def rel(t: float | None) -> float | None:
            return None if t is None else t - self.t0
        return {"person": self.person, "frames_sent": self.frames_sent,
                "first_detection_s": rel(self.detected), "first_track_s": rel(self.tracked),
                "first_embedding_s": rel(self.embedded), "first_known_s": rel(self.known),
                "greeting_s": rel(self.greeted), "greeting": self.greeting,
                "wrong_greetings": self.wrong_greetings}


class Camera:
    """This process's rclpy node: publishes frames, records what comes back, with wall times."""

    def __init__(self) -> None:
        """Create the node, the image publisher and the subscriptions."""
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from visio_memoria.msg import IdentityArray, Perception

        from visio_memoria_ros.nodes.qos import RELIABLE_QOS, SENSOR_QOS

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("visio_memoria_bench_greeting", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.pub = self.node.create_publisher(Image, "image_raw", SENSOR_QOS)
        n = self.node
        n.create_subscription(String, "greeting", self._on_greeting, RELIABLE_QOS)
        n.create_subscription(IdentityArray, "identities", self._on_identities, RELIABLE_QOS)
        n.create_subscription(Perception, "detections", self._on_detections, RELIABLE_QOS)
        n.create_subscription(Perception, "perception", self._on_perception, RELIABLE_QOS)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.trial: Trial | None = None
        self.identities_times: list[float] = []
        self.detector_ms: list[float] = []
        self.embed_ms_with_embedding: list[float] = []
        self.embed_ms_without: list[float] = []
        self.diagnostics: dict[str, dict[str, float]] = {}
        self.gallery_vectors = 0.0

    # -- callbacks --------------------------------------------------------------------------
    def _stamp_ok(self, header: Any) -> bool:
        t = self.trial
        return t is not None and header.stamp.sec + header.stamp.nanosec * 1e-9 >= t.stamp0 - 1e-6

    def _on_detections(self, msg: Any) -> None:
        self.detector_ms.append(1000.0 * msg.processing_time)
        t = self.trial
        if t is None or not msg.faces or not self._stamp_ok(msg.header):
            return
        now = time.monotonic()
        t.detected = t.detected or now
        if t.tracked is None and any(f.track_id >= 0 for f in msg.faces):
            t.tracked = now

    def _on_perception(self, msg: Any) -> None:
        embedded = any(len(f.embedding) for f in msg.faces)
        (self.embed_ms_with_embedding if embedded else self.embed_ms_without).append(
            1000.0 * msg.processing_time)
        t = self.trial
        if t is not None and t.embedded is None and embedded and self._stamp_ok(msg.header):
            t.embedded = time.monotonic()

    def _on_identities(self, msg: Any) -> None:
        now = time.monotonic()
        self.identities_times.append(now)
        t = self.trial
        if t is None or t.known is not None or not self._stamp_ok(msg.header):
            return
        if any(i.status == i.STATUS_KNOWN for i in msg.identities):
            t.known = now

    def _on_greeting(self, msg: Any) -> None:
        now = time.monotonic()
        t = self.trial
        if t is None:
            return
        m = GREETING.fullmatch(msg.data)
        if m and m.group(1).lower() == t.person and t.greeted is None:
            t.greeted, t.greeting = now, msg.data
        else:
            t.wrong_greetings.append(msg.data)

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            values = {}
            for kv in status.values:
                try:
                    values[kv.key] = float(kv.value)
                except ValueError:
                    continue
            self.diagnostics[status.name] = values
            if "gallery_vectors" in values:
                self.gallery_vectors = values["gallery_vectors"]

    # -- driving ----------------------------------------------------------------------------
    def publish(self, rgb: np.ndarray) -> float:
        """Publish one frame stamped with the ROS clock; return the stamp [s]."""
        from visio_memoria_ros.nodes.images import rgb_to_msg

        now = self.node.get_clock().now()
        msg = rgb_to_msg(rgb, encoding="rgb8")
        msg.header.stamp = now.to_msg()
        msg.header.frame_id = "bench_camera"
        self.pub.publish(msg)
        return now.nanoseconds * 1e-9

    def play(self, frames: Any, rate: float, until: Any, timeout: float, procs: list) -> int:
        """Publish ``frames(k)`` at ``rate`` until ``until()`` or ``timeout``; frames sent."""
        period = 1.0 / rate
        start = time.monotonic()
        k = 0
        next_t = start
        while time.monotonic() - start < timeout and not until():
            now = time.monotonic()
            if now >= next_t:
                self.publish(frames(k))
                k += 1
                next_t += period
                if next_t < now:  # we fell behind (the CPU is busy): do not burst
                    next_t = now + period
            self.executor.spin_once(timeout_sec=max(0.0, min(0.01, next_t - time.monotonic())))
            for p in procs:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited ({p.proc.returncode}); "
                                       f"see {p.log_path}")
        return k

    def spin_for(self, seconds: float) -> None:
        """Spin without publishing."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        """Shut the node down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def scene(bg: np.ndarray, crop: np.ndarray | None, k: int, left: bool) -> np.ndarray:
    """The background, with ``crop`` pasted (left or right half) drifting 2 px per frame."""
    frame = bg.copy()
    if crop is not None:
        h, w = crop.shape[:2]
        x = (120 if left else 370) + 2 * triangle(k, 10)
        y = 150 + triangle(k, 5)
        frame[y : y + h, x : x + w] = crop
    return frame


class Clip:
    """Consecutive frames of one appearance: ``next()`` ignores the player's own counter."""

    def __init__(self, bg: np.ndarray, crop: np.ndarray, left: bool) -> None:
        """Frames of ``crop`` on ``bg`` in the left or right half."""
        self.bg, self.crop, self.left = bg, crop, left
        self.sent = 0

    def next(self, _k: int = 0) -> np.ndarray:
        """The next frame of the clip."""
        frame = scene(self.bg, self.crop, self.sent, self.left)
        self.sent += 1
        return frame


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of values, None when empty."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def run_profile(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start the graph with one profile's parameters, run the trials, stop it."""
    from visio_memoria_ros.nodes.processes import NodeProcess

    profile = PROFILES[name]
    data_dir = work / name / "memory"
    logs = work / name / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    enrolled = seed_store(data_dir, args.bbt)
    params = {
        "memory_node": {"data_dir": str(data_dir), "recluster_period": 0.0,
                        "synchronous": "NORMAL"},
        "identity_node": {**_REPEATABLE, **profile["identity_node"]},
        "embedding_node": {"scene_embedder": "none", "torch_threads": 1,
                           **profile["embedding_node"]},
        "detector_node": {"torch_threads": 1, **profile["detector_node"]},
    }
    persons = [p for p in json.loads((args.bbt / "labels.json").read_text())["identities"]
               if enrolled.get(p)]
    crops = {p: load_rgb(gallery_files(args.bbt, p)[0]) for p in persons}
    bg = background(np.random.default_rng(1))
    camera = Camera()
    procs: list[Any] = []
    trials: list[Trial] = []
    t_start = time.monotonic()
    try:
        for node in ("memory_node", "identity_node", "embedding_node", "detector_node"):
            procs.append(NodeProcess(node, logs, params=params[node]))
        # Ready = identity_node holds the gallery and the graph turns frames into identities.
        camera.play(lambda k: scene(bg, None, k, True), args.rate,
                    lambda: camera.gallery_vectors > 0 and len(camera.identities_times) > 5,
                    180.0, procs)
        if camera.gallery_vectors <= 0:
            raise RuntimeError("the graph did not become ready within 180 s")
        startup = time.monotonic() - t_start
        print(f"[{name}] graph ready in {startup:.1f} s (gallery {camera.gallery_vectors:.0f} "
              "vectors)", flush=True)
        schedule = [persons[0]] + [persons[i % len(persons)] for i in range(args.trials)]
        face_time = 0.0
        identities_in_faces = 0
        for i, person in enumerate(schedule):
            warmup = i == 0
            camera.trial = None
            camera.play(lambda k: scene(bg, None, k, True), args.rate, lambda: False,
                        args.gap, procs)
            left = i % 2 == 0
            trial = Trial(person, 0.0, 0.0)
            clip = Clip(bg, crops[person], left)
            # The first frame's stamp must be known before any answer arrives: publish it here.
            trial.t0 = time.monotonic()
            trial.stamp0 = camera.publish(clip.next())
            camera.trial = trial
            n0 = len(camera.identities_times)
            f0 = time.monotonic()
            camera.play(clip.next, args.rate, lambda t=trial: t.greeted is not None,
                        args.timeout, procs)
            # keep showing the face a little: graph fps and no second greeting
            camera.play(clip.next, args.rate, lambda: False, args.linger, procs)
            trial.frames_sent = clip.sent
            if not warmup:
                face_time += time.monotonic() - f0
                identities_in_faces += len(camera.identities_times) - n0
                trials.append(trial)
            r = trial.row()
            lat = r["greeting_s"]
            print(f"[{name}] {'warm-up' if warmup else f'trial {len(trials)}'} {person:10s} "
                  f"greeting {'TIMEOUT' if lat is None else f'{lat:.2f} s'}  "
                  + " ".join(f"{k.split('_')[1]}={v:.2f}" for k, v in r.items()
                             if k.startswith("first_") and v is not None)
                  + (f"  other greetings: {r['wrong_greetings']}" if r["wrong_greetings"]
                     else ""), flush=True)
        camera.trial = None
        diagnostics = dict(camera.diagnostics)
    finally:
        for p in reversed(procs):
            p.stop()
        camera.close()
    rows = [t.row() for t in trials]
    stages = {}
    for key in ("first_detection_s", "first_track_s", "first_embedding_s", "first_known_s",
                "greeting_s"):
        values = [r[key] for r in rows if r[key] is not None]
        stages[key] = {"median": pct(values, 0.5), "p90": pct(values, 0.9), "n": len(values)}
    greeted = [r["greeting_s"] for r in rows if r["greeting_s"] is not None]
    return {
        "profile": name,
        "params": params,
        "enrolled_vectors": enrolled,
        "trials": rows,
        "greeted": len(greeted),
        "timeouts": len(rows) - len(greeted),
        "wrong_greetings": sum(len(r["wrong_greetings"]) for r in rows),
        "latency_median_s": pct(greeted, 0.5),
        "latency_p90_s": pct(greeted, 0.9),
        "latency_min_s": min(greeted) if greeted else None,
        "stages": stages,
        "graph_fps_with_faces": identities_in_faces / face_time if face_time else None,
        "camera_rate": args.rate,
        "detector_processing_ms_median": pct(camera.detector_ms, 0.5),
        "embedding_processing_ms_median_when_embedding": pct(camera.embed_ms_with_embedding, 0.5),
        "embedding_processing_ms_median_otherwise": pct(camera.embed_ms_without, 0.5),
        "diagnostics_last": diagnostics,
        "startup_s": startup,
        "logs": str(logs),
    }


def main(argv: list[str] | None = None) -> int:
    """Run each profile, print tables, write JSON to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON results path")
    parser.add_argument("--bbt", type=Path,
                        default=Path(os.environ.get("VISIO_MEMORIA_BBT",
                                                    REPO.parent / "shared" / "eval" / "bbt")))
    parser.add_argument("--profiles", default="defaults,fast,fast_stride3",
                        help=f"comma-separated, from {list(PROFILES)}")
    parser.add_argument("--trials", type=int, default=8, help="measured appearances per profile")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate [Hz]")
    parser.add_argument("--gap", type=float, default=5.0,
                        help="empty frames between appearances [s] (> visit_absence 2 s)")
    parser.add_argument("--timeout", type=float, default=15.0, help="per appearance [s]")
    parser.add_argument("--linger", type=float, default=1.0,
                        help="keep the face in view after the greeting [s]")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="memory and node logs (default: a temporary directory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from visio_memoria_ros.nodes.processes import check_local_discovery

    check_local_discovery()
    if not (args.bbt / "labels.json").is_file():
        print(f"BBT set not found at {args.bbt}: nothing to greet, skipped", file=sys.stderr)
        return 0
    load_start = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="vm_bench_greeting_") as tmp:
        work = args.work_dir or Path(tmp)
        for name in filter(None, args.profiles.split(",")):
            results.append(run_profile(name, args, work))

    head = (f"{'profile':12s} {'n':>3s} {'ok':>3s} {'median s':>8s} {'p90 s':>6s} "
            f"{'detect':>6s} {'track':>6s} {'embed':>6s} {'known':>6s} {'graph fps':>9s} "
            f"{'det ms':>6s} {'emb ms':>6s}")
    print("\nmedian seconds from the first frame with the face to each event")
    print(head)
    print("-" * len(head))
    for r in results:
        s = r["stages"]

        def f(x: float | None, fmt: str = "6.2f") -> str:
            return "-".rjust(int(fmt.split(".", maxsplit=1)[0])) if x is None else format(x, fmt)

        print(f"{r['profile']:12s} {len(r['trials']):3d} {r['greeted']:3d} "
              f"{f(r['latency_median_s'], '8.2f')} {f(r['latency_p90_s'])} "
              f"{f(s['first_detection_s']['median'])} {f(s['first_track_s']['median'])} "
              f"{f(s['first_embedding_s']['median'])} {f(s['first_known_s']['median'])} "
              f"{f(r['graph_fps_with_faces'], '9.1f')} "
              f"{f(r['detector_processing_ms_median'], '6.1f')} "
              f"{f(r['embedding_processing_ms_median_when_embedding'], '6.1f')}")
    doc = {
        "command": " ".join(["python bench/bench_greeting.py", *(argv or sys.argv[1:])]),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_start,
        "load_average_at_end": os.getloadavg(),
        "platform": platform.platform(),
        "columns": "seconds from publishing the first frame with the face: detect = first "
                   "/detections with a face, track = first confirmed track id, embed = first "
                   "/perception with an embedding, known = first KNOWN on /identities, "
                   "median/p90 = /greeting; graph fps = /identities per second while a face is "
                   "shown; det ms / emb ms = median processing_time of detector_node and of "
                   "embedding_node frames that embedded a face",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
