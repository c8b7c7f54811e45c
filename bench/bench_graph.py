"""The whole node graph as a user starts it: ``ros2 launch``, a 30 Hz camera, frames/s and memory.

``ros2 launch visio_memoria bringup.launch.py params_file:=... [single_process:=true]`` starts
all seven nodes (camera, detector, embedding, identity, memory, activity, overlay) with the
shipped parameters; only camera_node's ``source`` (a clip of ``street.mp4`` downscaled to
``--size``, looped, ``rate`` 30 Hz) and memory_node's ``data_dir`` (a temporary folder) are
set, in sections after the shipped ones. This process subscribes to ``image_raw``,
``detections``, ``perception`` and ``identities`` (the end of the chain) and records:

* ``first_output_s``: seconds from ``ros2 launch`` to the first ``identities`` message, and
  ``first_frame_to_output_s``: from the first camera image seen to it;
* ``fps``: ``identities`` messages per second over ``--seconds`` once the graph runs (after
  ``--settle`` seconds); ``faces_per_frame``: mean faces per identities message (street.mp4
  shows 4-6 faces of 12-40 px at 640 px wide); ``cpu_cores``: CPU seconds per second used by
  every process over the window (the machine's load average beside it: on a shared machine
  the graph gets what is left);
* ``rss_mb``: the peak over the window of the summed resident memory of every process of the
  launch (the ``ros2 launch`` process itself excluded), and ``pss_mb``, the same with shared
  pages split between the processes (what the machine really gives them; Linux only), with
  the per-process peaks.

Configurations (each a separate launch, one after the other, in one run):

* ``processes``: one process per node, the shipped parameters;
* ``one_process``: ``single_process:=true``, the shipped parameters;
* ``processes_full_every_frame``: ``processes`` with detector_node ``full_detect_interval: 1``
  (a full-frame MTCNN pass on every frame: the detection of the earlier releases), shown beside
  the defaults for comparison;
* ``processes_overlay_watched``: ``processes`` with this process subscribed to
  ``overlay/image`` as rviz would be (overlay_node subscribes the camera and draws only while
  its overlay is watched; ``overlay_fps`` is what it delivered);
* ``processes_torch_1_thread``: ``processes`` with detector_node and embedding_node at
  ``torch_threads: 1`` (the default 0 lets torch take every core in each process).

    python bench/bench_graph.py --out bench/results/bench_graph.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from visio_memoria_ros.nodes.processes import node_env  # noqa: E402

SHARED = REPO.parent / "shared" / "eval"
CONFIGS: dict[str, dict[str, Any]] = {
    "processes": {"single_process": False, "params": {}},
    "one_process": {"single_process": True, "params": {}},
    "processes_full_every_frame": {"single_process": False,
                                   "params": {"detector_node": {"full_detect_interval": 1}}},
    "processes_overlay_watched": {"single_process": False, "params": {}, "watch_overlay": True},
    "processes_torch_1_thread": {"single_process": False,
                                 "params": {"detector_node": {"torch_threads": 1},
                                            "embedding_node": {"torch_threads": 1}}},
    # torch's own default (one thread per core) instead of the automatic 1 per node process
    "processes_torch_2_threads": {"single_process": False,
                                  "params": {"detector_node": {"torch_threads": 2},
                                             "embedding_node": {"torch_threads": 2}}},
    "one_process_torch_1_thread": {"single_process": True,
                                   "params": {"detector_node": {"torch_threads": 1},
                                              "embedding_node": {"torch_threads": 1}}},
}


def make_clip(video: Path, size: tuple[int, int], out: Path) -> Path:
    """The video resized to ``size`` (MJPG AVI, every frame)."""
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA))
    cap.release()
    writer.release()
    return out


def params_file(work: Path, clip: Path, params: dict[str, dict[str, Any]]) -> Path:
    """The shipped YAML plus sections for the camera source, the memory folder and ``params``
    (``{node: {name: value}}``)."""
    shipped = (REPO / "config" / "visio_memoria.yaml").read_text(encoding="utf-8")
    extra = {
        "/**/camera_node": {"ros__parameters": {"source": str(clip), "rate": 30.0,
                                                "loop": True}},
        "/**/memory_node": {"ros__parameters": {"data_dir": str(work / "memory")}},
    }
    for node, values in params.items():
        extra[f"/**/{node}"] = {"ros__parameters": values}
    path = work / "params.yaml"
    path.write_text(shipped + "\n" + yaml.safe_dump(extra), encoding="utf-8")
    return path


def process_name(cmdline: list[str]) -> str:
    """The node executable a process runs (``detector_node``...), else its program's name."""
    for arg in cmdline[:2]:
        name = Path(arg).name
        if name.endswith("_node"):
            return name
    return Path(cmdline[0]).name


def tree_cpu(root: psutil.Process) -> dict[str, float]:
    """CPU seconds (user + system) used so far by every descendant of ``root``, by name."""
    out: dict[str, float] = {}
    for proc in root.children(recursive=True):
        try:
            times = proc.cpu_times()
            out[f"{process_name(proc.cmdline())}[{proc.pid}]"] = times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            continue
    return out


def tree_memory(root: psutil.Process) -> dict[str, dict[str, float]]:
    """RSS and PSS [MB] of every descendant of ``root`` (not root itself), by name and pid."""
    out: dict[str, dict[str, float]] = {}
    for proc in root.children(recursive=True):
        try:
            info = proc.memory_full_info()
            out[f"{process_name(proc.cmdline())}[{proc.pid}]"] = {
                "rss_mb": info.rss / 2**20, "pss_mb": getattr(info, "pss", info.rss) / 2**20}
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            continue
    return out


def run_config(name: str, config: dict[str, Any], clip: Path, args: argparse.Namespace,
               root: Path) -> dict[str, Any]:
    """One launch: wait for output, measure, stop; return the figures."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from visio_memoria.msg import IdentityArray, Perception

    from visio_memoria_ros.nodes.qos import RELIABLE_QOS, SENSOR_QOS

    work = root / name
    work.mkdir()
    env = node_env({"HOME": str(work / "home")})
    cmd = ["ros2", "launch", "visio_memoria", "bringup.launch.py",
           f"params_file:={params_file(work, clip, config['params'])}",
           f"single_process:={'true' if config['single_process'] else 'false'}"]
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_graph", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    events: dict[str, list[tuple[float, int]]] = {"image_raw": [], "detections": [],
                                                   "perception": [], "identities": []}

    def recorder(topic: str, count: Any) -> Any:
        return lambda msg: events[topic].append((time.monotonic(), count(msg)))

    # image_raw only until the first image: a subscriber of its own would cost the graph a copy
    # of every camera frame
    camera_sub = node.create_subscription(Image, "image_raw",
                                          recorder("image_raw", lambda m: 0), SENSOR_QOS)
    node.create_subscription(Perception, "detections",
                             recorder("detections", lambda m: len(m.faces)), RELIABLE_QOS)
    node.create_subscription(Perception, "perception",
                             recorder("perception", lambda m: len(m.faces)), RELIABLE_QOS)
    node.create_subscription(IdentityArray, "identities",
                             recorder("identities", lambda m: len(m.identities)), RELIABLE_QOS)
    overlays: list[float] = []
    if config.get("watch_overlay"):  # as rviz would: overlay_node draws only while watched
        node.create_subscription(Image, "overlay/image",
                                 lambda m: overlays.append(time.monotonic()), RELIABLE_QOS)
    log = (work / "launch.log").open("wb")
    t_start = time.monotonic()
    launch = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    result: dict[str, Any] = {"config": name, "single_process": config["single_process"],
                              "params": config["params"],
                              "overlay_watched": bool(config.get("watch_overlay"))}
    try:
        deadline = t_start + args.start_timeout
        while not events["identities"] and time.monotonic() < deadline:
            if launch.poll() is not None:
                raise RuntimeError(f"ros2 launch exited {launch.returncode}; see {log.name}")
            executor.spin_once(timeout_sec=0.05)
        if not events["identities"]:
            raise RuntimeError(f"no identities within {args.start_timeout} s")
        node.destroy_subscription(camera_sub)
        result["first_output_s"] = events["identities"][0][0] - t_start
        result["first_frame_to_output_s"] = (events["identities"][0][0]
                                             - events["image_raw"][0][0]
                                             if events["image_raw"] else None)
        settle_end = time.monotonic() + args.settle
        while time.monotonic() < settle_end:
            executor.spin_once(timeout_sec=0.05)
        w0 = time.monotonic()
        counts0 = {k: len(v) for k, v in events.items()}
        peak: dict[str, Any] = {"rss_mb": 0.0, "pss_mb": 0.0, "processes": {}}
        parent = psutil.Process(launch.pid)
        cpu0 = tree_cpu(parent)
        next_sample = w0
        while time.monotonic() < w0 + args.seconds:
            if time.monotonic() >= next_sample:
                mem = tree_memory(parent)
                rss = sum(m["rss_mb"] for m in mem.values())
                if rss > peak["rss_mb"]:
                    peak = {"rss_mb": rss, "pss_mb": sum(m["pss_mb"] for m in mem.values()),
                            "processes": {k: round(v["rss_mb"]) for k, v in mem.items()}}
                next_sample = time.monotonic() + 2.0
            executor.spin_once(timeout_sec=0.02)
        span = time.monotonic() - w0
        cpu1 = tree_cpu(parent)
        cpu = {k: round((v - cpu0.get(k, 0.0)) / span, 2) for k, v in cpu1.items()}
        window = {k: v[counts0[k]:] for k, v in events.items()}
        result.update(
            seconds=round(span, 1),
            detections_fps=round(len(window["detections"]) / span, 2),
            perception_fps=round(len(window["perception"]) / span, 2),
            fps=round(len(window["identities"]) / span, 2),
            overlay_fps=round(sum(1 for t in overlays if t >= w0) / span, 2),
            faces_per_frame=round(sum(c for _, c in window["identities"])
                                  / max(1, len(window["identities"])), 2),
            processes=len(peak["processes"]),
            rss_mb=round(peak["rss_mb"]), pss_mb=round(peak["pss_mb"]),
            rss_by_process=peak["processes"],
            cpu_cores_by_process=cpu, cpu_cores=round(sum(cpu.values()), 2),
            load_avg=os.getloadavg(),
        )
    finally:
        try:
            os.killpg(launch.pid, signal.SIGINT)
            launch.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(launch.pid, signal.SIGKILL)
        log.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        subprocess.run(["ros2", "daemon", "stop"], env=env, capture_output=True, check=False,
                       timeout=60)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the configurations and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=SHARED / "video" / "street.mp4")
    parser.add_argument("--size", default="640x360", help="camera frames WxH (default 640x360)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds after the first output before measuring")
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", type=Path,
                        default=REPO / "bench" / "results" / "bench_graph.json")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    report: dict[str, Any] = {"bench": "graph", "host": platform.node(), "cpus": os.cpu_count(),
                              "load_avg_start": os.getloadavg(), "size": args.size,
                              "results": []}
    with tempfile.TemporaryDirectory(prefix="bench_graph_") as tmp:
        root = Path(tmp)
        clip = make_clip(args.video, (width, height), root / "street.avi")
        for name in args.configs.split(","):
            r = run_config(name, CONFIGS[name], clip, args, root)
            report["results"].append(r)
            print(f"{name}: {r['fps']} frames/s end to end (detections {r['detections_fps']}), "
                  f"{r['faces_per_frame']} faces/frame, {r['cpu_cores']} cores used "
                  f"{r['cpu_cores_by_process']}, "
                  f"first output {r['first_output_s']:.1f} s after launch "
                  f"({r['first_frame_to_output_s'] or float('nan'):.1f} s after the first "
                  f"frame), {r['processes']} processes: RSS {r['rss_mb']} MB, "
                  f"PSS {r['pss_mb']} MB", flush=True)
    report["load_avg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
