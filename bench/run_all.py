"""Run every benchmark in order, write JSON + logs to bench/results/, plots, and a summary.

    python bench/run_all.py                  # FAISS up to 100k vectors (~20-25 min on 2 cores)
    python bench/run_all.py --full           # adds the 1M-vector FAISS gallery
    python bench/run_all.py --quick          # smoke run: few frames/trials (~6 min)
    python bench/run_all.py --only pipeline,greeting
    make bench BENCH_ARGS="--full"

Each script runs as its own process (``sys.executable``), its output shown and saved to
``bench/results/<name>.log``; the load average before and after each is recorded in
``bench/results/summary.json``. Plots go to ``bench/results/plots/``. A failing script is
reported and the others still run; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ORDER = ("perception", "embedding", "faiss", "clustering", "identity", "pipeline", "greeting",
         "schedule", "cli", "graph")


def commands(args: argparse.Namespace, out: Path) -> dict[str, list[str]]:
    """The command line of every benchmark (``--out`` into ``out``)."""
    sizes = "1000,10000,100000" + (",1000000" if args.full else "")
    quick = args.quick
    cmds = {
        "perception": ["bench_perception.py", "--frames", "10" if quick else "30"]
        + (["--only", "mtcnn_default,mtcnn_min40_side320_stride3,haar_side320", "--no-yolo"]
           if quick else []),
        "embedding": ["bench_embedding.py", "--threads", "1", "--repeats", "2" if quick else "5"]
        + (["--skip-dinov3"] if quick else []),
        "faiss": ["bench_faiss.py", "--sizes", "1000,10000" if quick else sizes]
        + (["--queries", "200", "--strangers", "200"] if quick else []),
        "clustering": ["bench_clustering.py"],
        "identity": ["bench_identity.py"]
        + (["--sizes", "10,100", "--sim-visits", "300", "--visits", "100"] if quick else []),
        "pipeline": ["bench_pipeline.py"]
        + (["--frames", "20", "--group-frames", "30", "--cnn-frames", "1",
            "--ours", "ours_fast"] if quick else []),
        "greeting": ["bench_greeting.py"]
        + (["--trials", "3", "--profiles", "fast"] if quick else []),
        "schedule": ["bench_schedule.py"] + (["--frames", "20"] if quick else []),
        "cli": ["bench_cli.py", "--repeats", "1" if quick else "3"],
        "graph": ["bench_graph.py"]
        + (["--seconds", "10", "--settle", "5", "--configs", "processes"] if quick else []),
    }
    return {k: [sys.executable, str(BENCH / v[0]), *v[1:], "--out", str(out / f"bench_{k}.json")]
            for k, v in cmds.items()}


def run(name: str, cmd: list[str], log: Path) -> dict[str, Any]:
    """Run one benchmark, echo and save its output; return status, duration and loads."""
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            if "Warning" not in line:  # library deprecation noise stays in the log only
                sys.stdout.write(line)
        code = proc.wait()
    return {"name": name, "command": " ".join(cmd[1:]), "exit_code": code,
            "seconds": time.monotonic() - t0, "load_before": load_before,
            "load_after": os.getloadavg(), "log": str(log)}


def load_json(path: Path) -> dict[str, Any] | None:
    """The JSON document at ``path``, or None."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------- plots
def plots(out: Path) -> list[str]:
    """Write the PNGs that the available results allow; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pdir = out / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    made = []

    pipe = load_json(out / "bench_pipeline.json")
    if pipe:
        rows = pipe["results"]
        scenes = list(dict.fromkeys(r["scene"] for r in rows))
        methods = list(dict.fromkeys(r["method"] for r in rows))
        # ours vs peer frames/s (log scale: cnn is ~100x slower)
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            vals = [next((r["fps"] for r in rows if r["method"] == m and r["scene"] == s), 0)
                    for s in scenes]
            bars = ax.bar([j + i * width for j in range(len(scenes))], vals, width, label=m)
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(scenes))], scenes)
        ax.set_yscale("log")
        ax.set_ylabel("frames/s (wall, log scale)")
        ax.set_title("Ours vs face_recognition on the same 640 px frames (1 thread)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(pdir / "pipeline_fps.png", dpi=120)
        plt.close(fig)
        made.append(str(pdir / "pipeline_fps.png"))

        # per-stage latency: mean ms per frame, stacked, per method and scene
        fig, ax = plt.subplots(figsize=(10, 5))
        labels, bottoms = [], []
        stage_names: list[str] = []
        for r in rows:
            for k in r["stage_ms_mean"]:
                if "." not in k and k not in stage_names:
                    stage_names.append(k)
        xs = []
        for r in rows:
            if r["method"] == "face_recognition_cnn":
                continue  # 100x the others: it would flatten the chart
            labels.append(f"{r['method']}\n{r['scene']}")
            xs.append(len(xs))
            bottoms.append(0.0)
        for s in stage_names:
            vals = [r["stage_ms_mean"].get(s, 0.0) for r in rows
                    if r["method"] != "face_recognition_cnn"]
            ax.bar(xs, vals, 0.6, bottom=bottoms, label=s)
            bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
        ax.set_xticks(xs, labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("mean wall ms per frame")
        ax.set_title("Per-stage latency (ours: perceive/embed/identity; peer: detect/encode/match)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(pdir / "pipeline_stages.png", dpi=120)
        plt.close(fig)
        made.append(str(pdir / "pipeline_stages.png"))

    perc = load_json(out / "bench_perception.json")
    if perc:
        rows = [r for r in perc["results"] if r["scene"] == perc["results"][-1]["scene"]]
        scene = rows[0]["scene"] if rows else ""
        rows = [r for r in perc["results"] if r["scene"] == ("bbt_4faces" if any(
            x["scene"] == "bbt_4faces" for x in perc["results"]) else scene)]
        if rows:
            fig, ax = plt.subplots(figsize=(10, 4.5))
            stages = list(rows[0]["stage_ms_median"])
            bottom = [0.0] * len(rows)
            for s in stages:
                vals = [r["stage_ms_median"][s] for r in rows]
                ax.bar(range(len(rows)), vals, 0.6, bottom=bottom, label=s)
                bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
            ax.set_xticks(range(len(rows)), [r["setting"] for r in rows], rotation=35,
                          ha="right", fontsize=7)
            ax.set_ylabel("median wall ms (detection frames)")
            ax.set_title(f"Perceiver stages per setting ({rows[0]['scene']})")
            ax.legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(pdir / "perception_stages.png", dpi=120)
            plt.close(fig)
            made.append(str(pdir / "perception_stages.png"))

    faiss = load_json(out / "bench_faiss.json")
    if faiss and faiss.get("results"):
        rows = sorted(faiss["results"], key=lambda r: r["size"])
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        sizes = [r["size"] for r in rows]
        for key, label in (("search_median_ms", "search median"), ("search_p95_ms", "search p95"),
                           ("match_median_ms", "matcher median")):
            ax.plot(sizes, [r[key] for r in rows], marker="o", label=label)
        for r in rows:
            ax.annotate(r["index"], (r["size"], r["search_median_ms"]), fontsize=7,
                        textcoords="offset points", xytext=(4, -10))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("gallery vectors")
        ax.set_ylabel("ms per query (batch 1)")
        ax.set_title("Gallery search latency vs size")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(pdir / "faiss_latency.png", dpi=120)
        plt.close(fig)
        made.append(str(pdir / "faiss_latency.png"))

    greet = load_json(out / "bench_greeting.json")
    if greet and greet.get("results"):
        rows = greet["results"]
        keys = ("first_detection_s", "first_track_s", "first_embedding_s", "first_known_s",
                "greeting_s")
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.8 / len(rows)
        for i, r in enumerate(rows):
            vals = [r["stages"][k]["median"] or 0.0 for k in keys]
            bars = ax.bar([j + i * width for j in range(len(keys))], vals, width,
                          label=r["profile"])
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.axhline(0.5, color="red", lw=0.8, ls="--", label="0.5 s target")
        ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(keys))],
                      ["detected", "tracked", "embedded", "KNOWN", "greeted"])
        ax.set_ylabel("median s after the first frame with the face")
        ax.set_title("Greeting latency through the node graph")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(pdir / "greeting_latency.png", dpi=120)
        plt.close(fig)
        made.append(str(pdir / "greeting_latency.png"))
    return made


# ------------------------------------------------------------------------------- summary
def headline(name: str, doc: dict[str, Any] | None) -> list[str]:
    """One or a few lines with the numbers that matter for one benchmark."""
    if doc is None:
        return ["(no result)"]
    lines = []
    if name == "perception":
        by_scene: dict[str, dict] = {}
        for r in doc["results"]:
            if r["scene"] not in by_scene or r["fps"] > by_scene[r["scene"]]["fps"]:
                by_scene[r["scene"]] = r
        for s, r in by_scene.items():
            lines.append(f"fastest on {s}: {r['setting']} {r['fps']:.1f} fps "
                         f"(cpu {r['fps_cpu']:.1f}), recall {r['recall']}")
    elif name == "embedding":
        for r in doc["latency"]:
            cpu = r["cpu_median_ms"] / r["batch"]
            lines.append(f"{r['model']} {r.get('engine', '')} {r['task']} batch {r['batch']}: "
                         f"{r['per_item_ms']:.1f} ms/item (cpu {cpu:.1f})")
        if doc.get("bbt"):
            lines.append(f"BBT leave-one-out {doc['bbt']['leave_one_out_correct']}/"
                         f"{doc['bbt']['faces']}")
    elif name == "faiss":
        for r in doc["results"]:
            lines.append(f"{r['size']:>8} {r['index']:>5}: search {r['search_median_ms']} ms "
                         f"(p95 {r['search_p95_ms']}), recall@1 {r['recall_at_1']}, "
                         f"build {r['build_s']} s")
    elif name == "clustering":
        for key in ("incremental", "after_recluster"):
            if key in doc:
                q = doc[key]
                lines.append(f"{key}: purity {q['purity']:.2f}, completeness "
                             f"{q['completeness']:.2f}, {q['num_clusters']} clusters")
    elif name == "identity":
        v = doc["report"]["visits"]
        lines.append(f"held out: {v['false_greetings']} false greetings in "
                     f"{v['stranger_visits']} stranger visits (95 % upper bound "
                     f"{v['upper95_per_1000']:.2f} per 1000), {v['greeted_correctly']}/"
                     f"{v['known_visits']} enrolled visits greeted")
        for r in doc["simulation"]:
            lines.append(f"simulated {r['gallery_persons']} people: "
                         f"{r['shipped']['per_1000']:.1f} false greetings per 1000 as shipped, "
                         f"{r['scaled_margin']['per_1000']:.1f} with the margin scaled, "
                         f"{r['no_margin']['per_1000']:.1f} without")
    elif name == "pipeline":
        for s in doc["speedups"]:
            lines.append(f"{s['method']} vs face_recognition_hog on {s['scene']}: "
                         f"x{s['wall']:.1f} wall, x{s['cpu']:.1f} cpu")
        for m, s in doc.get("identity_summary", {}).items():
            lines.append(f"{m}: {s['correct_last']}/{s['labelled']} group-photo faces named "
                         f"correctly (last frame), {len(s['differs_from_hog_last'])} differ "
                         "from the peer")
    elif name == "schedule":
        for r in doc["results"]:
            lines.append(f"{r['config']} at {r['processed_fps_at_30hz']} frames/s: "
                         f"{r['cpu_ms_per_frame']} ms/frame, {r['faces']} faces")
    elif name == "cli":
        for scene, methods in doc["scenes"].items():
            for m, r in methods.items():
                lines.append(f"{scene} {m}: {r['wall_s']:.1f} s wall ({r['cpu_s']:.1f} s cpu), "
                             f"{r['peak_rss_mb']:.0f} MB, {r['frames']} frames, "
                             f"{r['faces_found']} faces found, {r['faces_named']} named")
    elif name == "graph":
        for r in doc["results"]:
            lines.append(f"{r['config']}: {r['fps']} frames/s end to end, first output "
                         f"{r['first_output_s']:.1f} s after launch, {r['processes']} processes "
                         f"{r['rss_mb']} MB RSS ({r['pss_mb']} MB PSS)")
    elif name == "greeting":
        for r in doc["results"]:
            med, p90 = r["latency_median_s"], r["latency_p90_s"]
            lines.append(f"{r['profile']}: greeted {r['greeted']}/{len(r['trials'])}, median "
                         f"{med if med is None else round(med, 2)} s, p90 "
                         f"{p90 if p90 is None else round(p90, 2)} s, graph "
                         f"{r['graph_fps_with_faces'] or 0:.1f} fps at a {r['camera_rate']} Hz "
                         "camera")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, then plot and summarise."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--full", action="store_true", help="add the 1M-vector FAISS gallery")
    parser.add_argument("--quick", action="store_true", help="few frames/trials (smoke run)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {ORDER}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--plots-only", action="store_true",
                        help="re-plot and summarise the JSON already in --out")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    wanted = [n for n in ORDER if (not args.only or n in args.only.split(","))
              and n not in args.skip.split(",")]
    cmds = commands(args, out)
    runs = []
    if not args.plots_only:
        if "greeting" in wanted and os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
            print("greeting skipped: source scripts/env.sh first (local-only DDS)",
                  file=sys.stderr)
            wanted.remove("greeting")
        for name in wanted:
            runs.append(run(name, cmds[name], out / f"bench_{name}.log"))
    made = plots(out)

    print("\n" + "=" * 100)
    print(f"{'benchmark':11s} {'exit':>4s} {'time s':>7s} {'load before/after (1 min)':>26s}  "
          "headline")
    print("-" * 100)
    by_run = {r["name"]: r for r in runs}
    for name in (wanted if not args.plots_only else ORDER):
        r = by_run.get(name)
        lines = headline(name, load_json(out / f"bench_{name}.json"))
        status = (f"{r['exit_code']:>4d} {r['seconds']:7.0f} "
                  f"{r['load_before'][0]:12.2f}/{r['load_after'][0]:<13.2f}" if r
                  else f"{'-':>4s} {'-':>7s} {'':26s}")
        print(f"{name:11s} {status}  {lines[0] if lines else ''}")
        for line in lines[1:]:
            print(f"{'':11s} {'':4s} {'':7s} {'':26s}  {line}")
    print(f"plots: {', '.join(Path(m).name for m in made) or 'none'} in {out / 'plots'}")
    summary = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
               "full": args.full, "quick": args.quick, "runs": runs, "plots": made}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 1 if any(r["exit_code"] for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
