#!/usr/bin/env python3
"""Calibrate memory_node's ``cluster_similarity`` on the calibration identities, and report it.

    python bench/calibrate_clustering.py [--orders 40] [--seed 0] [--grid 0.92,0.94]
        [--bbt ../shared/eval/bbt] [--video ../shared/eval/video/street.mp4]
        [--out bench/results/clustering_calibration.json]

Only calibration data (the split of ``bench_identity.py``; ``bench_clustering.py`` and
``bench_unknowns.py`` report on the other four BBT people):

* BBT amy, bernadette, howard, stuart: gallery crops and group-photo faces, each an untracked
  face (its own track);
* street.mp4 as the default Perceiver tracks it: the faces that pass memory_node's shipped
  face-quality gate (only those are ever remembered), one track per tracked person, people
  as ``bench/data/street_identities.json`` says (three people have two tracks each).

Embeddings come from ``identity_faces.py``'s cache (the same rooms as the robot: MTCNN,
alignment, the dlib ResNet in torch). Each order feeds all of these faces, shuffled, to a fresh
``SQLiteStore`` through ``add_unknown`` exactly as memory_node stores unknowns (track keys, the
per-track cap, incremental clustering at the shipped ``cluster_min_size``), for each candidate
similarity. Scored: purity of the clustered faces (the share of each cluster that is its
majority person), completeness, the share of faces left pending.

Rule: the lowest similarity on the grid whose purity is at least ``--target`` (0.98) in 95 % of
the orders; lower similarities make fewer, larger clusters (more complete, but a wrong join
is a stranger enrolled under another's name). The shipped value must equal the recommendation;
the script says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_identity import CALIBRATION  # noqa: E402
from identity_faces import load_or_extract  # noqa: E402

from visio_memoria_ros.config import NODE_PARAMS  # noqa: E402
from visio_memoria_ros.memory import PENDING, SQLiteStore, cluster_quality  # noqa: E402

GRID = tuple(round(0.88 + 0.005 * i, 3) for i in range(17))  # 0.88 .. 0.96
IDENTITIES = Path(__file__).resolve().parent / "data" / "street_identities.json"


def calibration_faces(data: dict[str, Any], identities: dict[str, Any]
                      ) -> list[tuple[str, str, float, np.ndarray]]:
    """(person, track key, quality, vector) of every calibration face memory could store."""
    alias = {}
    frames: dict[int, set[int]] = defaultdict(set)
    for f in data["video"]:
        frames[f.track_id].add(f.frame)
    for group in identities.get("same_person", []):
        for a in group:
            for b in group:
                if a < b and frames[int(a)] & frames[int(b)]:
                    raise SystemExit(f"street tracks {a} and {b} share a frame: they are not "
                                     f"one person ({IDENTITIES} is out of date)")
            alias[int(a)] = int(min(group))
    out = []
    for i, s in enumerate(data["stills"]):
        if s.identity in CALIBRATION:
            out.append((s.identity, f"still:{i}", 0.5, s.vector))
    for f in data["video"]:
        if f.vector is not None and f.track_id >= 0 and f.remembered:
            person = f"street{alias.get(f.track_id, f.track_id)}"
            out.append((person, f"street:{f.track_id}", f.quality, f.vector))
    return out


def score_order(faces: list[tuple[str, str, float, np.ndarray]], order: np.ndarray,
                similarity: float, params: dict[str, Any], tmp: str) -> dict[str, float]:
    """Feed ``faces`` in ``order`` to a fresh store at ``similarity``; score its clusters."""
    params = {**params, "cluster_similarity": similarity, "data_dir": tmp,
              "db_path": "calibration.db", "synchronous": "NORMAL"}
    db = Path(tmp) / "calibration.db"
    truth: dict[int, str] = {}
    with SQLiteStore.from_params(params) as store:
        embedder = "dlib_calibration"
        for n, k in enumerate(order):
            person, key, quality, vector = faces[int(k)]
            rec = store.add_unknown(vector, embedder, quality=quality, t=1000.0 + n,
                                    track_key=key)
            truth[rec.unknown_id] = person
        stored = store.list_unknowns()
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    labels = [truth[u.unknown_id] for u in stored]
    clusters = [u.cluster_id for u in stored]
    clustered = [(lab, c) for lab, c in zip(labels, clusters, strict=True) if c != PENDING]
    members: dict[int, Counter] = defaultdict(Counter)
    for lab, c in clustered:
        members[c][lab] += 1
    purity = (sum(m.most_common(1)[0][1] for m in members.values()) / len(clustered)
              if clustered else 1.0)
    q = cluster_quality(labels, clusters)
    return {"purity": purity, "completeness": q.completeness, "pending": q.noise_fraction,
            "clusters": len(members), "mixed": sum(len(m) > 1 for m in members.values()),
            "stored": len(stored)}


def recommend(rows: list[dict[str, Any]], target: float) -> float | None:
    """The lowest similarity whose 5th-percentile purity reaches ``target`` (None: none does)."""
    ok = [r["similarity"] for r in rows if r["purity_p05"] >= target]
    return min(ok) if ok else None


def main() -> int:
    """Run the calibration and print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = ROOT.parent / "shared" / "eval"
    parser.add_argument("--bbt", type=Path, default=shared / "bbt")
    parser.add_argument("--video", type=Path, default=shared / "video" / "street.mp4")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "results"
                        / "identity_faces.npz")
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--grid", help="comma-separated similarities to try (default "
                        f"{GRID[0]}..{GRID[-1]} in steps of 0.005)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for path in (args.bbt / "labels.json", args.video):
        if not path.exists():
            print(f"not found: {path}", file=sys.stderr)
            return 1
    data = load_or_extract(args.bbt, args.video, args.cache)
    faces = calibration_faces(data, json.loads(IDENTITIES.read_text()))
    people = Counter(p for p, _, _, _ in faces)
    print(f"{len(faces)} calibration faces of {len(people)} people: "
          + ", ".join(f"{p} {n}" for p, n in sorted(people.items())))
    params = {s.name: s.default for s in NODE_PARAMS["memory_node"]}
    rng = np.random.default_rng(args.seed)
    orders = [rng.permutation(len(faces)) for _ in range(args.orders)]
    rows = []
    print("similarity  purity p05 / mean / min  completeness  pending  clusters  mixed")
    grid = tuple(float(x) for x in args.grid.split(",")) if args.grid else GRID
    with tempfile.TemporaryDirectory() as tmp:
        for sim in grid:
            runs = [score_order(faces, o, sim, params, tmp) for o in orders]
            pur = np.array([r["purity"] for r in runs])
            row = {"similarity": sim, "purity_p05": float(np.quantile(pur, 0.05)),
                   "purity_mean": float(pur.mean()), "purity_min": float(pur.min()),
                   **{k: float(np.mean([r[k] for r in runs]))
                      for k in ("completeness", "pending", "clusters", "mixed", "stored")}}
            rows.append(row)
            print(f"{sim:10.3f}  {row['purity_p05']:.3f} / {row['purity_mean']:.3f} / "
                  f"{row['purity_min']:.3f}      {row['completeness']:.3f}     "
                  f"{row['pending']:.2f}   {row['clusters']:6.1f}  {row['mixed']:5.2f}",
                  flush=True)
    best = recommend(rows, args.target)
    shipped = float(params["cluster_similarity"])
    print(f"recommended cluster_similarity: {best} (purity >= {args.target} in 95 % of "
          f"{args.orders} orders); shipped: {shipped}"
          + ("" if best == shipped else "  <-- differs"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"faces": len(faces), "people": dict(people),
                                        "orders": args.orders, "target": args.target,
                                        "rows": rows, "recommended": best,
                                        "shipped": shipped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
