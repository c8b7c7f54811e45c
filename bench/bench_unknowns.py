#!/usr/bin/env python3
"""Unknown clusters under tracker faults: purity on BBT faces with track swaps, detector
restarts and untracked faces, through the memory store exactly as memory_node feeds it.

    python bench/bench_unknowns.py [--bbt ../shared/eval/bbt] [--rounds 60] [--seed 0]
        [--people leonard,penny,raj,sheldon] [--out bench/results/unknowns.json]

Faces: the BBT gallery crops of ``--people`` (default: the report identities of
``bench_identity.py``; the others calibrated ``cluster_similarity``, see
``calibrate_clustering.py``) and three variants of each (mirrored, darker, rotated 8 deg),
through the real pipeline (MTCNN, canonical alignment, dlib ResNet): about 80 faces of 4
people. Nobody is enrolled.

Stream: ``--rounds`` scenes of two strangers walking past each other. Each scene has two tracks
(ids from a tracker session); halfway the tracker swaps them (track A continues on person 2,
B on person 1, as ByteTrack does when people cross); every 4th scene the detector restarts
(a new session whose ids start at 0 again: the next strangers inherit the old ids); a face in
8 is untracked (-1). Keys come from ``memory.remember.TrackBook`` as in memory_node; every
face goes through ``add_unknown`` with memory_node's default clustering settings. Two runs:
with the tracker session in the key (as memory_node does), and without it (an old detector
that announces no session: only the clustering similarity keeps restarted ids apart).

Reported: purity (share of faces in the majority person of their cluster), completeness,
clusters, faces left pending, the number of clusters holding two people, as the faces arrive
and after one re-clustering. Thresholds are memory_node's defaults; none is tuned here.
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
from visio_memoria_ros.memory import PENDING, SQLiteStore, cluster_quality  # noqa: E402
from visio_memoria_ros.memory.remember import TrackBook  # noqa: E402
from visio_memoria_ros.perception import Perceiver, PerceiverConfig  # noqa: E402

EMBEDDER = "dlib_resnet_v1_128"


def variants(rgb: np.ndarray) -> list[np.ndarray]:
    """The crop and three variants a camera could give of the same person."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 8, 1.0)
    return [rgb, rgb[:, ::-1].copy(), (rgb.astype(np.float32) * 0.7).astype(np.uint8),
            cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE)]


def embed_faces(bbt: Path, people: list[str]) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """{person: [(vector, crop)]} for every detected face of every variant of ``people``."""
    perceiver = Perceiver(PerceiverConfig(warmup=False))
    embedder = build_face_embedder("dlib")
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for folder in sorted(p for p in bbt.iterdir() if p.is_dir() and p.name in people):
        for path in sorted(folder.iterdir()):
            image = cv2.imread(str(path))
            if image is None:
                continue
            for img in variants(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)):
                perceiver.reset()
                faces = perceiver.process(img).faces
                if faces:
                    f = max(faces, key=lambda f: f.bbox[2] - f.bbox[0])
                    out.setdefault(folder.name, []).append((embedder.embed([f.crop])[0],
                                                            f.crop))
    return out


def stream(people: dict[str, list], rounds: int, rng: np.random.Generator
           ) -> list[tuple[str, str, int, str]]:
    """(person, session, track id, face index) per face, in arrival order (module docstring)."""
    names = sorted(people)
    out = []
    session, next_id = "s0", 0
    for r in range(rounds):
        if r % 4 == 3:
            session, next_id = f"s{r}", 0  # the detector restarts: ids from 0 again
        p1, p2 = rng.choice(names, size=2, replace=False)
        ta, tb = next_id, next_id + 1
        next_id += 2
        n = int(rng.integers(6, 11))
        for k in range(n):
            swapped = k >= n // 2
            for who, tracked in ((p1, tb if swapped else ta), (p2, ta if swapped else tb)):
                track = -1 if rng.random() < 1 / 8 else tracked
                out.append((str(who), session, track, int(rng.integers(len(people[who])))))
    return out


def run(people: dict[str, list], faces: list[tuple[str, str, int, int]], *, sessions: bool,
        tmp: str) -> dict:
    """Feed the stream to a fresh store; score the clusters."""
    params = {s.name: s.default for s in NODE_PARAMS["memory_node"]}
    params.update(data_dir=tmp, db_path=f"unknowns-{sessions}.db", synchronous="NORMAL")
    book = TrackBook(fallback_session="m0")
    truth: dict[int, str] = {}
    with SQLiteStore.from_params(params) as store:
        for i, (who, session, track, k) in enumerate(faces):
            vector, crop = people[who][k]
            x = 100.0 * (track % 5)
            key = book.key("cam", session if sessions else "", track, [x, 50, x + 60, 120],
                           float(i))
            rec = store.add_unknown(vector, EMBEDDER, crop=crop, quality=0.5, t=1000.0 + i,
                                    track_key=key)
            truth[rec.unknown_id] = who
        report = {}
        for when in ("incremental", "after_recluster"):
            if when == "after_recluster":
                store.recluster()
            stored = store.list_unknowns()
            ids = [u.unknown_id for u in stored]
            labels = [truth[i] for i in ids]
            clusters = [u.cluster_id for u in stored]
            q = cluster_quality(labels, clusters)
            mixed = {}
            for u in stored:
                if u.cluster_id != PENDING:
                    mixed.setdefault(u.cluster_id, set()).add(truth[u.unknown_id])
            clustered = [(lab, c) for lab, c in zip(labels, clusters, strict=True)
                         if c != PENDING]
            q_clustered = cluster_quality([lab for lab, _ in clustered],
                                          [c for _, c in clustered]) if clustered else None
            report[when] = {
                "faces_stored": len(stored),
                "purity": round(q.purity, 4),
                "purity_of_clustered_faces": round(q_clustered.purity, 4) if q_clustered else None,
                "completeness": round(q.completeness, 4),
                "clusters": q.num_clusters,
                "pending": round(q.noise_fraction, 4),
                "clusters_with_two_people": sum(len(p) > 1 for p in mixed.values()),
            }
    return report


def main() -> int:
    """Embed the faces, run the stream with and without sessions, print the scores."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bbt", type=Path, default=ROOT.parent / "shared" / "eval" / "bbt")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--people", default=",".join(REPORT),
                        help="BBT identities to use (default: the report identities)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not args.bbt.is_dir():
        print(f"BBT set not found at {args.bbt}", file=sys.stderr)
        return 1
    people = embed_faces(args.bbt, args.people.split(","))
    faces = stream(people, args.rounds, np.random.default_rng(args.seed))
    swaps = args.rounds
    restarts = sum(1 for r in range(args.rounds) if r % 4 == 3)
    untracked = sum(1 for f in faces if f[2] == -1)
    with tempfile.TemporaryDirectory() as tmp:
        report = {
            "faces": len(faces), "people": len(people),
            "distinct_faces": sum(len(v) for v in people.values()),
            "track_swaps": swaps, "detector_restarts": restarts, "untracked_faces": untracked,
            "with_sessions": run(people, faces, sessions=True, tmp=tmp),
            "without_sessions": run(people, faces, sessions=False, tmp=tmp),
        }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
