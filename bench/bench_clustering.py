#!/usr/bin/env python3
"""Unknown-face clustering on the BBT gallery crops with nobody enrolled: purity, completeness.

    python bench/bench_clustering.py [--bbt ../shared/eval/bbt] [--people leonard,penny,raj,sheldon]
        [--out results/clustering.json]

``--people``: the BBT identities used; by default the report identities of
``bench_identity.py`` (the others calibrated ``cluster_similarity``: ``calibrate_clustering.py``).

Every crop goes through the real pipeline (MTCNN detection, canonical alignment, dlib
embedding), then through the memory store as unknown faces, one track per crop, exactly as
memory_node stores them (incremental assignment), then one periodic re-clustering. Purity,
completeness, homogeneity and ARI are computed against the folder names; faces left pending
(clusters smaller than the minimum size) count as noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_identity import REPORT  # noqa: E402

from visio_memoria_ros.config import NODE_PARAMS  # noqa: E402
from visio_memoria_ros.embedding import build_face_embedder  # noqa: E402
from visio_memoria_ros.memory import SQLiteStore, cluster_quality  # noqa: E402
from visio_memoria_ros.perception import Perceiver, PerceiverConfig  # noqa: E402


def embed_crops(bbt: Path, people: list[str]
                ) -> tuple[list[str], np.ndarray, list[np.ndarray], list[str]]:
    """Return (identities, vectors, crops, files without a detected face)."""
    perceiver = Perceiver(PerceiverConfig())
    embedder = build_face_embedder("dlib")
    names, vectors, crops, missed = [], [], [], []
    for folder in sorted(p for p in bbt.iterdir() if p.is_dir() and p.name in people):
        for path in sorted(folder.iterdir()):
            image = cv2.imread(str(path))
            if image is None:
                continue
            perceiver.reset()
            frame = perceiver.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            if not frame.faces:
                missed.append(str(path.relative_to(bbt)))
                continue
            face = max(frame.faces, key=lambda f: f.bbox[2] - f.bbox[0])
            vectors.append(embedder.embed([face.crop])[0])
            crops.append(face.crop)
            names.append(folder.name)
    return names, np.stack(vectors), crops, missed


def main() -> int:
    """Run the evaluation and print the scores."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bbt", type=Path, default=ROOT.parent / "shared" / "eval" / "bbt")
    parser.add_argument("--people", default=",".join(REPORT),
                        help="BBT identities to use (default: the report identities)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not (args.bbt / "labels.json").is_file():
        print(f"BBT set not found at {args.bbt}", file=sys.stderr)
        return 1
    names, vectors, crops, missed = embed_crops(args.bbt, args.people.split(","))
    params = {s.name: s.default for s in NODE_PARAMS["memory_node"]}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        params.update(data_dir=tmp, synchronous="NORMAL")
        store = SQLiteStore.from_params(params)
        ids = []
        for i, (v, crop) in enumerate(zip(vectors, crops, strict=True)):
            ids.append(store.add_unknown(v, "dlib_resnet_v1_128", crop=crop, quality=0.5,
                                         t=1000.0 + i, track_key=f"crop{i}").unknown_id)
        by_id = {u.unknown_id: u.cluster_id for u in store.list_unknowns()}
        results["incremental"] = cluster_quality(names, [by_id[i] for i in ids])
        store.recluster()
        by_id = {u.unknown_id: u.cluster_id for u in store.list_unknowns()}
        results["after_recluster"] = cluster_quality(names, [by_id[i] for i in ids])
        store.close()
    report = {
        "faces": len(names),
        "identities": len(set(names)),
        "no_face_detected": missed,
        "cluster_similarity": params["cluster_similarity"],
        "cluster_min_size": params["cluster_min_size"],
        **{k: vars(v) if hasattr(v, "__dict__") else v._asdict() for k, v in results.items()},
    }
    print(json.dumps(report, indent=2, default=float))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
