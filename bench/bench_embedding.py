"""Benchmark the embedding room on this machine's CPU, and report dlib accuracy on BBT.

The dlib ResNet runs through both engines on the same canonical crops: dlib's C++
(``compute_face_descriptor`` on the list of chips: dlib's own batch call; face_recognition has
no batch encoder) and the PyTorch port (one forward per batch) at each ``--dlib-precisions``.
Batches 1, 4 and 16 (``--batches``); the engines alternate within each batch size so they
see the same load. DINOv3 ViT-B/16 is built from its real architecture (DINOv3ViTConfig,
random weights: the same compute as the released model). Latency is measured through the
embedders' public API, so it includes preprocessing (dlib's face chip ~1 ms per face). Usage:

    python bench/bench_embedding.py --out bench_embedding.json [--bbt ../shared/eval/bbt]
    python bench/bench_embedding.py --skip-dinov3 --threads 2 --repeats 10   # dlib engines only
    python bench/bench_embedding.py --skip-dinov3 --device cuda --dlib-precisions fp32,fp16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from visio_memoria_ros.core.face_crop import CANONICAL_SIZE, align_face  # noqa: E402

#: DINOv3 ViT-B/16 (facebook/dinov3-vitb16-pretrain-lvd1689m) architecture.
VITB16 = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    patch_size=16,
    num_register_tokens=4,
    image_size=224,
    layerscale_value=1.0,
    rope_theta=100.0,
    key_bias=False,
    use_gated_mlp=False,
)


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median / min / p90 wall time and median process CPU time of ``fn`` in milliseconds.

    CPU time is what the call costs this process; on a machine shared with other jobs it stays
    close to the unloaded cost while wall time does not.
    """
    for _ in range(max(warmup, 1)):
        fn()
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    times.sort()
    return {
        "cpu_median_ms": statistics.median(cpu),
        "median_ms": statistics.median(times),
        "min_ms": times[0],
        "p90_ms": times[min(len(times) - 1, round(0.9 * (len(times) - 1)))],
    }


def random_crops(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Random RGB uint8 crops (latency does not depend on content)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def bench_dinov3(repeats: int, face_res: int, scene_res: int) -> list[dict]:
    """DINOv3 ViT-B/16 latency: faces at face_res, scenes at scene_res, batch 1 and 4."""
    import torch
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    from visio_memoria_ros.embedding.dinov3 import DinoV3Embedder

    torch.manual_seed(0)
    model = DINOv3ViTModel(DINOv3ViTConfig(**VITB16))
    emb = DinoV3Embedder.from_model(
        model, device="cpu", face_resolution=face_res, scene_resolution=scene_res
    )
    rows = []
    for batch in (1, 4):
        faces = random_crops(batch, CANONICAL_SIZE, seed=batch)
        stats = timeit(lambda f=faces: emb.embed(f), repeats)
        rows.append(
            dict(
                model="dinov3_vitb16",
                task="face",
                resolution=face_res,
                batch=batch,
                per_item_ms=stats["median_ms"] / batch,
                **stats,
            )
        )
        scenes = random_crops(batch, 256, seed=10 + batch)
        stats = timeit(lambda s=scenes: emb.scene_features(s), repeats)
        rows.append(
            dict(
                model="dinov3_vitb16",
                task="scene",
                resolution=scene_res,
                batch=batch,
                per_item_ms=stats["median_ms"] / batch,
                **stats,
            )
        )
    return rows


def bbt_gallery(bbt: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Canonical crops of the BBT gallery faces, landmarks from dlib (detector + 5 points)."""
    import cv2

    from visio_memoria_ros.embedding.dlib_face import DlibLandmarker

    landmarker = DlibLandmarker()
    crops, names = [], []
    for path in sorted(bbt.glob("*/*.png")):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        found = landmarker(image)
        if not found:
            logging.warning("no face found in %s", path)
            continue
        crops.append(align_face(image, found[0]))
        names.append(path.parent.name)
    return crops, np.array(names)


def bench_dlib(
    repeats: int,
    crops: list[np.ndarray],
    batches: tuple[int, ...] = (1, 4),
    precisions: tuple[str, ...] = ("fp32",),
    device: str = "cpu",
) -> list[dict]:
    """dlib ResNet latency per face: dlib's C++ and the torch port at each precision."""
    from visio_memoria_ros.embedding.dlib_face import DlibFaceEmbedder
    from visio_memoria_ros.embedding.dlib_torch import DlibTorchFaceEmbedder

    engines: list[tuple[str, object]] = [("dlib_cpp", DlibFaceEmbedder())]
    for precision in precisions:
        emb = DlibTorchFaceEmbedder(device=device, precision=precision)
        engines.append((f"torch_{emb.device.type}_{precision}", emb))
    rows = []
    for batch in batches:
        sample = (crops * batch)[:batch]
        for engine, emb in engines:
            stats = timeit(lambda s=sample, e=emb: e.embed(s), repeats)
            rows.append(
                dict(
                    model=emb.id,
                    engine=engine,
                    task="face",
                    resolution=150,
                    batch=batch,
                    per_item_ms=stats["median_ms"] / batch,
                    **stats,
                )
            )
    return rows


def pct(values: np.ndarray) -> dict[str, float]:
    """min / percentiles / max of a 1-D array, rounded."""
    qs = {"min": 0, "p1": 1, "p5": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95, "p99": 99}
    out = {k: round(float(np.percentile(values, q)), 4) for k, q in qs.items()}
    out["max"] = round(float(values.max()), 4)
    out["mean"] = round(float(values.mean()), 4)
    out["n"] = len(values)
    return out


def bbt_accuracy(crops: list[np.ndarray], names: np.ndarray) -> dict:
    """dlib leave-one-out nearest neighbour and same/different similarity distributions."""
    from visio_memoria_ros.embedding.dlib_face import DlibFaceEmbedder
    from visio_memoria_ros.embedding.dlib_torch import DlibTorchFaceEmbedder

    emb = DlibFaceEmbedder()
    vecs = emb.embed(crops)
    # the torch port against dlib's own descriptors on the same chips (the oracle)
    ours = DlibTorchFaceEmbedder().raw_descriptors(crops)
    theirs = emb.raw_descriptors(crops)
    oracle_cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1)
    oracle_cos /= np.linalg.norm(theirs, axis=1)
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    correct = int((names[nearest] == names).sum())
    iu = np.triu_indices(len(names), 1)
    same = (names[:, None] == names[None, :])[iu]
    cos = sims[iu]
    # dlib's own convention: Euclidean distance between raw descriptors, 0.6 = same person
    raw = emb.raw_descriptors(crops)
    dist = np.linalg.norm(raw[:, None] - raw[None], axis=2)[iu]
    thresholds = np.unique(cos)
    errors = [((cos >= t) != same).sum() for t in thresholds]
    best = float(thresholds[int(np.argmin(errors))])
    return {
        "embedder": emb.id,
        "faces": len(names),
        "leave_one_out_correct": correct,
        "cosine_same": pct(cos[same]),
        "cosine_different": pct(cos[~same]),
        "pair_error_min_threshold": round(best, 4),
        "pair_errors_at_that_threshold": int(min(errors)),
        "raw_euclidean_same": pct(dist[same]),
        "raw_euclidean_different": pct(dist[~same]),
        "raw_descriptor_norm": pct(np.linalg.norm(raw, axis=1)),
        "torch_port_min_cosine_to_dlib": float(oracle_cos.min()),
        "torch_port_max_abs_diff_to_dlib": float(np.abs(ours - theirs).max()),
    }


def main() -> None:
    """Run the benchmarks, print a table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_embedding.json"))
    parser.add_argument("--bbt", type=Path, default=REPO.parent / "shared" / "eval" / "bbt")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--face-resolution", type=int, default=112)
    parser.add_argument("--scene-resolution", type=int, default=224)
    parser.add_argument("--skip-dinov3", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument(
        "--batches", default="1,4,16", help="faces per call for the dlib ResNet (comma list)"
    )
    parser.add_argument(
        "--dlib-precisions", default="fp32", help="torch port precisions: fp32,bf16 (fp16: CUDA)"
    )
    parser.add_argument("--device", default="cpu", help="torch device of the dlib port")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    have_bbt = (args.bbt / "labels.json").is_file()
    if have_bbt:
        crops, names = bbt_gallery(args.bbt)
    else:
        crops, names = random_crops(4, CANONICAL_SIZE), np.array([])
    batches = tuple(int(b) for b in args.batches.split(","))
    precisions = tuple(p.strip() for p in args.dlib_precisions.split(",") if p.strip())
    rows = bench_dlib(args.repeats * 2, crops, batches, precisions, args.device)
    if not args.skip_dinov3:
        rows += bench_dinov3(args.repeats, args.face_resolution, args.scene_resolution)
    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "latency": rows,
        "bbt": bbt_accuracy(crops, names) if have_bbt else None,
    }
    print(
        f"{'model':20} {'engine':18} {'task':6} {'res':>4} {'batch':>5} {'call med ms':>12} "
        f"{'call min ms':>12} {'item med ms':>12} {'item min ms':>12} {'item cpu ms':>12}"
    )
    for r in rows:
        b = r["batch"]
        print(
            f"{r['model']:20} {r.get('engine', 'torch'):18} {r['task']:6} {r['resolution']:>4} "
            f"{b:>5} {r['median_ms']:>12.1f} "
            f"{r['min_ms']:>12.1f} {r['per_item_ms']:>12.1f} {r['min_ms'] / b:>12.1f} "
            f"{r['cpu_median_ms'] / b:>12.1f}"
        )
    print(
        f"load average before/after: {result['machine']['loadavg_before']} / "
        f"{result['machine']['loadavg_after']} on {os.cpu_count()} CPUs"
    )
    if result["bbt"]:
        b = result["bbt"]
        print(f"BBT dlib leave-one-out: {b['leave_one_out_correct']}/{b['faces']}")
        print(
            f"torch port vs dlib's C++ on these {b['faces']} crops: min cosine "
            f"{b['torch_port_min_cosine_to_dlib']:.9f}, max abs difference "
            f"{b['torch_port_max_abs_diff_to_dlib']:.3g}"
        )
        print(f"cosine same-person: {b['cosine_same']}")
        print(f"cosine different:   {b['cosine_different']}")
        print(
            f"fewest pair errors at cosine >= {b['pair_error_min_threshold']}: "
            f"{b['pair_errors_at_that_threshold']}"
        )
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
