"""``visio-memoria identify`` against ``face_recognition``'s own command-line tool, same frames.

Both tools run as a user runs them, one process per call, on the same inputs:

* ``street``: ``--frames`` frames of ``street.mp4`` (every ``--stride``-th frame from the
  first, downscaled to ``--width`` px wide), written as JPEG files into one folder (the
  peer's tool takes a folder); known people: the 8 BBT crop-1 images (nobody in the clip is
  known: every found face should come out unknown);
* ``bbt_group``: the 5 BBT group photos, known people: the same 8 crops (23 labelled faces).

Commands timed (each repeated ``--repeats`` times, interleaved, so every method sees the same
machine load; 1 CPU for the peer as ``--cpus 1``; ours with torch's default threads):

* ``face_recognition --cpus 1 KNOWN_DIR UNKNOWN_DIR`` (HOG detector, upsample 1, tolerance 0.6:
  its defaults); it encodes the known people inside the timed run;
* ``ours_folder``: ``visio-memoria identify UNKNOWN_DIR`` (the shipped parameters; each image
  independent: a full-frame detection per image); the known people are enrolled once before
  (``visio-memoria enroll``, not timed: 8 faces);
* ``ours_video`` (street only): ``visio-memoria identify CLIP --every STRIDE`` on a clip of the
  same frames' span: the same frames, processed as a video (detection schedule, tracking, votes).

Reported per method: wall seconds (median, min, max over the repeats), CPU seconds (user + sys,
of that process and its children, from ``wait4``), peak RSS (``ru_maxrss``), frames processed,
faces found, faces named (any name) and, on bbt_group, faces named correctly (labels.json).

    python bench/bench_cli.py --out bench/results/bench_cli.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "eval"
PEOPLE = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")


def timed(cmd: list[str], stdout: Path) -> dict[str, float]:
    """Run ``cmd`` with stdout to a file; wall time, CPU time and peak RSS of the process tree."""
    with stdout.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}: {err[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024.0}


def make_inputs(work: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Write the scenes' folders (and the street clip); return {scene: paths}."""
    known = work / "known"
    known.mkdir()
    for p in PEOPLE:
        shutil.copy(SHARED / "bbt" / p / f"{p}1.png", known / f"{p}.png")
    street = work / "street"
    street.mkdir()
    cap = cv2.VideoCapture(str(args.video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    clip = work / "street.avi"
    writer = None
    index = written = 0
    while written < args.frames:
        ok, bgr = cap.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        bgr = cv2.resize(bgr, (args.width, round(h * args.width / w)),
                         interpolation=cv2.INTER_AREA)
        if writer is None:
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                                     (bgr.shape[1], bgr.shape[0]))
        writer.write(bgr)
        if index % args.stride == 0:
            cv2.imwrite(str(street / f"frame{index:04d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            written += 1
        index += 1
    cap.release()
    if writer is not None:
        writer.release()
    group = work / "bbt_group"
    group.mkdir()
    for i in range(1, 6):
        shutil.copy(SHARED / "bbt" / f"bbt{i}.jpg", group / f"bbt{i}.jpg")
    return {"street": {"folder": street, "clip": clip, "frames": written},
            "bbt_group": {"folder": group, "clip": None, "frames": 5}}


def enroll(db: Path, known: Path) -> None:
    """Enrol the known people once (not timed)."""
    for img in sorted(known.iterdir()):
        subprocess.run(["visio-memoria", "--quiet", "--db", str(db), "enroll", img.stem,
                        str(img)], check=True, capture_output=True)


def count_peer(out: Path) -> dict[str, int]:
    """Faces found / named in the peer tool's ``path,name[,distance]`` lines."""
    frames, found, named, correct = set(), 0, 0, 0
    labels = _labels()
    for line in out.read_text().splitlines():
        parts = line.split(",")
        if len(parts) < 2:
            continue
        frames.add(parts[0])
        if parts[1] == "no_persons_found":
            continue
        found += 1
        if parts[1] != "unknown_person":
            named += 1
            correct += int(parts[1] in labels.get(Path(parts[0]).name, set()))
    return {"frames": len(frames), "faces_found": found, "faces_named": named,
            "named_correctly": correct}


def count_ours(out: Path) -> dict[str, int]:
    """Faces found / named in ``visio-memoria identify --json``."""
    doc = json.loads(out.read_text())
    labels = _labels()
    found = named = correct = 0
    for image in doc["images"]:
        for face in image["faces"]:
            found += 1
            if face["status"] == "KNOWN":
                named += 1
                correct += int(face["name"] in labels.get(Path(image["path"]).name, set()))
    return {"frames": len(doc["images"]), "faces_found": found, "faces_named": named,
            "named_correctly": correct}


def _labels() -> dict[str, set[str]]:
    path = SHARED / "bbt" / "labels.json"
    doc = json.loads(path.read_text())["group_photos"]
    return {k: {x["name"] for x in v} for k, v in doc.items()}


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    """Median / min / max of the timed values over the repeats."""
    out = {}
    for key in ("wall_s", "cpu_s", "peak_rss_mb"):
        values = [r[key] for r in runs]
        out[key] = round(statistics.median(values), 3)
        out[f"{key}_min"], out[f"{key}_max"] = round(min(values), 3), round(max(values), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=SHARED / "video" / "street.mp4")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "bench_cli.json")
    args = parser.parse_args(argv)
    if shutil.which("face_recognition") is None:
        print("face_recognition's command-line tool is not installed", file=sys.stderr)
        return 1
    report: dict[str, Any] = {
        "bench": "cli", "host": platform.node(), "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg(), "args": {k: str(v) for k, v in vars(args).items()},
        "scenes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        work = Path(tmp)
        scenes = make_inputs(work, args)
        db = work / "memory.db"
        enroll(db, work / "known")
        for name, scene in scenes.items():
            methods: dict[str, list[str]] = {
                "face_recognition": ["face_recognition", "--cpus", "1", str(work / "known"),
                                     str(scene["folder"])],
                "ours_folder": ["visio-memoria", "--quiet", "--db", str(db), "identify", "--json",
                                str(scene["folder"])],
            }
            if scene["clip"] is not None:
                methods["ours_video"] = ["visio-memoria", "--quiet", "--db", str(db), "identify",
                                         "--json", "--every", str(args.stride),
                                         str(scene["clip"])]
            runs: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
            counts: dict[str, dict[str, int]] = {}
            for _ in range(args.repeats):
                for method, cmd in methods.items():
                    out = work / f"{name}_{method}.out"
                    runs[method].append(timed(cmd, out))
                    counts[method] = (count_peer if method == "face_recognition"
                                      else count_ours)(out)
            report["scenes"][name] = {
                m: {**summarise(runs[m]), **counts[m], "repeats": runs[m]} for m in methods}
            print(f"\n{name} ({scene['frames']} frames)")
            print(f"{'method':<18}{'wall s':>8}{'cpu s':>8}{'RSS MB':>8}{'frames':>8}"
                  f"{'found':>7}{'named':>7}{'right':>7}")
            for m in methods:
                r = report["scenes"][name][m]
                print(f"{m:<18}{r['wall_s']:>8.2f}{r['cpu_s']:>8.2f}{r['peak_rss_mb']:>8.0f}"
                      f"{r['frames']:>8}{r['faces_found']:>7}{r['faces_named']:>7}"
                      f"{r['named_correctly']:>7}")
    report["load_avg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
