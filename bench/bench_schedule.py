"""The detection schedule against a full-frame pass on every frame, on street.mp4.

The Perceiver (shipped parameters, persons off, 1 torch thread) on the first ``--frames``
frames of street.mp4 downscaled to 640x360, taking every ``step``-th frame (1, 2, 4: 30, 15 and
7.5 processed frames/s from a 30 Hz camera), once with the shipped schedule
(``full_detect_interval`` 4, region passes in between) and once with ``full_detect_interval``
1. Reported: CPU ms per frame (mean), full / region passes, region passes that lost a face
(and became full passes), faces found in total.

    python bench/bench_schedule.py --out bench/results/bench_schedule.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main(argv: list[str] | None = None) -> int:
    """Run both schedules at each step and write the JSON report."""
    import torch

    from visio_memoria_ros.config import NODE_PARAMS, load_node_params
    from visio_memoria_ros.perception import Perceiver, PerceiverConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path,
                        default=REPO.parent / "shared" / "eval" / "video" / "street.mp4")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--steps", default="1,2,4")
    parser.add_argument("--out", type=Path,
                        default=REPO / "bench" / "results" / "bench_schedule.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cap = cv2.VideoCapture(str(args.video))
    frames = []
    while len(frames) < args.frames:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, (640, 360), interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))
    shipped = PerceiverConfig.from_params(load_node_params("detector_node",
                                                           NODE_PARAMS["detector_node"]))
    shipped = dataclasses.replace(shipped, person_backend="none", scene_crops=False)
    rows = []
    for step in (int(s) for s in args.steps.split(",")):
        for name, config in (("schedule", shipped),
                             ("full_every_frame",
                              dataclasses.replace(shipped, full_detect_interval=1))):
            perceiver = Perceiver(config)
            cpu, faces, passes = 0.0, 0, {"full": 0, "regions": 0}
            for i, rgb in enumerate(frames[::step]):
                t0 = time.process_time()
                faces += len(perceiver.process(rgb, stamp=i * step / 30.0).faces)
                cpu += time.process_time() - t0
                passes[perceiver.last_pass] = passes.get(perceiver.last_pass, 0) + 1
            n = len(frames[::step])
            row = {"step": step, "processed_fps_at_30hz": round(30.0 / step, 1), "config": name,
                   "frames": n, "cpu_ms_per_frame": round(1000 * cpu / n, 1),
                   "full_passes": passes["full"], "region_passes": passes["regions"],
                   "regions_lost_a_face": perceiver.schedule.lost_triggers,
                   "motion_triggers": perceiver.schedule.motion_triggers, "faces": faces}
            rows.append(row)
            print(json.dumps(row), flush=True)
    report = {"bench": "schedule", "load_avg": os.getloadavg(), "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
