"""Benchmark the identity gallery index on synthetic face-like galleries.

Each identity is a random unit centre in ``--dim`` dimensions; each gallery vector and each
query is the centre plus isotropic noise (variance drawn in [0.2, 0.6] per sample),
renormalised. Two samples of one identity then have cosine ~0.6-0.85 and strangers ~0, as with
real face embeddings. Queries are fresh samples of enrolled identities (must find the right
person) plus strangers (must stay below the accept threshold).

Reported per gallery size: build time, memory (RSS growth of the process once the index is built
and the generated vectors are freed, and the index's own estimate), batch-1
search latency (median, p95) through ``GalleryIndex.search`` and through the whole matcher
(search + per-person aggregation), person-level recall@1, the genuine accept rate and the
stranger false-accept rate at ``--accept``.

    python bench/bench_faiss.py --sizes 1000,100000 --out bench_faiss.json
    python bench/bench_faiss.py --sizes 1000000 --out bench_faiss_1m.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from visio_memoria_ros.core.types import Status
from visio_memoria_ros.identity.index import GalleryIndex
from visio_memoria_ros.identity.matcher import Matcher, Thresholds

CHUNK = 50_000


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def noisy(centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One face-like sample per centre row."""
    n, dim = centres.shape
    s2 = rng.uniform(0.2, 0.6, size=(n, 1)).astype(np.float32)
    noise = rng.standard_normal((n, dim), dtype=np.float32) * (np.sqrt(s2) / np.sqrt(dim))
    return unit(centres + noise)


def rss() -> int:
    """Resident memory of this process in bytes."""
    return psutil.Process().memory_info().rss


def run_size(n: int, args: argparse.Namespace) -> dict[str, object]:
    """Build a gallery of ``n`` vectors, query it and return the measurements."""
    rng = np.random.default_rng(args.seed + n)
    n_people = max(1, n // args.per_person)
    centres = unit(rng.standard_normal((n_people, args.dim), dtype=np.float32))
    owners = np.repeat(np.arange(n_people, dtype=np.int64), args.per_person)[:n]
    if len(owners) < n:
        owners = np.concatenate([owners, rng.integers(0, n_people, n - len(owners))])
    gc.collect()
    rss_before = rss()
    t0 = time.perf_counter()
    vectors = np.empty((n, args.dim), np.float32)
    for i in range(0, n, CHUNK):
        vectors[i : i + CHUNK] = noisy(centres[owners[i : i + CHUNK]], rng)
    gen_s = time.perf_counter() - t0

    index = GalleryIndex(
        args.dim,
        exact_max_size=args.exact_max_size,
        approx_kind=args.approx,
        ivf_nlist=args.nlist,
        ivf_nprobe=args.nprobe,
        hnsw_ef_search=args.ef_search,
        search_threads=args.threads,
    )
    t0 = time.perf_counter()
    index.add(np.arange(n, dtype=np.int64), owners, vectors)
    build_s = time.perf_counter() - t0
    del vectors
    gc.collect()
    rss_after = rss()

    truth = rng.integers(0, n_people, args.queries)
    genuine = noisy(centres[truth], rng)
    strangers = noisy(unit(rng.standard_normal((args.strangers, args.dim), np.float32)), rng)
    thresholds = Thresholds(accept=args.accept, reject=min(args.accept, args.reject))
    matcher = Matcher(index, thresholds, k=args.k)

    for q in genuine[:20]:  # warm caches and lazy allocations
        index.search(q[None], args.k)
    search_ms, match_ms, top1 = [], [], []
    for q in np.concatenate([genuine, strangers]):
        t0 = time.perf_counter()
        res = index.search(q[None], args.k)
        search_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        matcher.match(q[None])
        match_ms.append((time.perf_counter() - t0) * 1e3)
        top1.append((int(res.person_ids[0, 0]), float(res.similarities[0, 0])))
    g = top1[: args.queries]
    s = top1[args.queries :]
    recall = float(np.mean([p == int(t) for (p, _), t in zip(g, truth, strict=True)]))
    decisions = matcher.match(genuine)
    accepted = float(
        np.mean(
            [
                d.status is Status.KNOWN and d.person_id == int(t)
                for d, t in zip(decisions, truth, strict=True)
            ]
        )
    )
    far = float(np.mean([sim >= args.accept for _, sim in s]))
    genuine_sims = np.array([sim for _, sim in g])
    stranger_sims = np.array([sim for _, sim in s])
    result = {
        "size": n,
        "persons": n_people,
        "index": index.kind.value,
        "index_params": index.describe(),
        "dim": args.dim,
        "generate_s": round(gen_s, 2),
        "build_s": round(build_s, 2),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "rss_growth_mb": round((rss_after - rss_before) / 2**20, 1),
        "index_estimate_mb": round(index.memory_bytes() / 2**20, 1),
        "search_median_ms": round(float(np.median(search_ms)), 3),
        "search_p95_ms": round(float(np.percentile(search_ms, 95)), 3),
        "match_median_ms": round(float(np.median(match_ms)), 3),
        "match_p95_ms": round(float(np.percentile(match_ms, 95)), 3),
        "recall_at_1": round(recall, 4),
        "genuine_accept_rate": round(accepted, 4),
        "stranger_false_accept_rate": round(far, 4),
        "genuine_top1_sim_p5": round(float(np.percentile(genuine_sims, 5)), 3),
        "stranger_top1_sim_max": round(float(stranger_sims.max()), 3),
        "queries": args.queries,
        "strangers": args.strangers,
    }
    del index, matcher
    gc.collect()
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for each requested size, print a table and write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated sizes")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--per-person", type=int, default=5, help="gallery vectors per identity")
    ap.add_argument("--queries", type=int, default=1000, help="genuine queries (batch 1)")
    ap.add_argument("--strangers", type=int, default=1000, help="stranger queries (batch 1)")
    ap.add_argument("--k", type=int, default=32, help="neighbours per search (as search_k)")
    ap.add_argument("--accept", type=float, default=0.45, help="accept threshold (cosine)")
    ap.add_argument("--reject", type=float, default=0.30, help="reject threshold (cosine)")
    ap.add_argument("--exact-max-size", type=int, default=10_000)
    ap.add_argument("--approx", choices=("ivf", "hnsw"), default="ivf")
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists, 0 = auto")
    ap.add_argument("--nprobe", type=int, default=0, help="IVF lists probed, 0 = auto")
    ap.add_argument("--ef-search", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="FAISS threads per search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench_faiss.json"))
    args = ap.parse_args(argv)

    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    results = []
    header = (
        f"{'size':>9} {'index':>6} {'build s':>8} {'mem MB':>8} {'search ms':>15} "
        f"{'match ms':>15} {'recall@1':>8} {'accept':>7} {'FAR':>6}"
    )
    print(f"faiss {faiss.__version__}, {os.cpu_count()} CPUs, {platform.processor() or ''}")
    print(header)
    for n in sizes:
        r = run_size(n, args)
        results.append(r)
        print(
            f"{r['size']:>9} {r['index']:>6} {r['build_s']:>8} {r['rss_growth_mb']:>8} "
            f"{r['search_median_ms']:>7}/{r['search_p95_ms']:<7} "
            f"{r['match_median_ms']:>7}/{r['match_p95_ms']:<7} "
            f"{r['recall_at_1']:>8} {r['genuine_accept_rate']:>7} "
            f"{r['stranger_false_accept_rate']:>6}",
            flush=True,
        )
    doc = {
        "command": " ".join(["python bench/bench_faiss.py", *(argv or sys.argv[1:])]),
        "faiss": faiss.__version__,
        "cpus": os.cpu_count(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "latency_note": "search/match ms are per query at batch 1 (median/p95)",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
