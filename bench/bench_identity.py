#!/usr/bin/env python3
"""Identity as the robot uses it: calibration kept apart from every reported figure.

    python bench/bench_identity.py [--out bench/results/bench_identity.json] [--visits 1000]
        [--sizes 10,100,1000,10000] [--sim-visits 3000] [--fit]
        [--bbt ../shared/eval/bbt] [--video ../shared/eval/video/street.mp4]

Data split (by identity; nothing crosses it):

* **calibration** (thresholds, margin, aggregate choice, the simulation's fit; never reported
  as accuracy): BBT amy, bernadette, howard, stuart (20 crops, 5 group-photo faces) and every
  face of street.mp4 (8 strangers walking towards the camera, 1080p, tracked by the Perceiver).
* **report**: BBT leonard, penny, raj, sheldon (20 crops, 18 group-photo faces). Leave one
  identity out: three are enrolled (their crops), the fourth is the stranger; four rotations.

Every face goes through the robot's rooms (MTCNN, alignment, the dlib ResNet; the video through
the Perceiver's tracker); ``identity_faces.py`` caches the embeddings in bench/results/.

Reported, at the shipped settings (``EngineConfig()`` = config/visio_memoria.yaml):

1. single images: DIR (enrolled group-photo faces named as themselves, KNOWN) and FAR
   (stranger images KNOWN) at the shipped thresholds; DIR at FAR 1 % and 0.1 % (operating points
   read off the report strangers; flagged when there are too few strangers to measure them);
2. visits: a visit is one track of 5 embeddings (the embed policy's budget) of one person, in
   random order, decided by ``IdentityEngine`` (TrackVoter + greeting policy). False greetings
   per 1000 stranger visits with the exact 95 % upper bound, and how many distinct stranger
   identities and images those visits come from (the honest sample size);
3. the gallery-size simulation: N enrolled persons x 5 images of ``identity.simulation``'s
   ``DLIB_MODEL`` (fitted to the calibration identities' similarities), stranger visits of
   ``DLIB_VIDEO_STRANGERS`` (as close to everybody as the street.mp4 faces), enrolled visits,
   all through the same engine: false greetings per 1000 stranger visits and the greeting rate
   of enrolled people against N, at the shipped settings and without the margin.

Also printed, labelled as calibration data (in-sample, not accuracy): the aggregate comparison
(max / mean of top 3 / centroid) that chose ``aggregate``, the thresholds the calibration
recommends (they must equal the shipped ones), and street.mp4 replayed through the embed policy
and the engine with the 8 BBT identities enrolled.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from identity_faces import load_or_extract  # noqa: E402

from visio_memoria_ros.config import NODE_PARAMS  # noqa: E402
from visio_memoria_ros.core.types import FaceObservation, Status  # noqa: E402
from visio_memoria_ros.identity import EngineConfig, GalleryEntry, IdentityEngine  # noqa: E402
from visio_memoria_ros.identity.calibration import (  # noqa: E402
    ProbeOutcome,
    enroll,
    recommend_from_outcomes,
    score_probes,
)
from visio_memoria_ros.identity.metrics import (  # noqa: E402
    Visit,
    dir_at_far,
    open_set_rates,
    rate_bounds,
    replay_visits,
    upper_bound,
)
from visio_memoria_ros.identity.simulation import (  # noqa: E402
    DLIB_MODEL,
    DLIB_VIDEO_STRANGERS,
    fit,
    pair_stats,
)

LOG = logging.getLogger("bench_identity")
CALIBRATION = ("amy", "bernadette", "howard", "stuart")
REPORT = ("leonard", "penny", "raj", "sheldon")
AGGREGATES = ("max", "mean_top_n", "centroid")
TARGET_FAR = 0.001
VISIT_LENGTH = 5
#: The settings shipped before this calibration (accept fitted on the BBT group photos).
EARLIER = EngineConfig(accept_threshold=0.915, reject_threshold=0.895, accept_margin=0.0,
                       instant_accept_threshold=0.93, aggregate="max")


# ------------------------------------------------------------------------------ calibration
def calibration_outcomes(data: dict[str, Any], config: EngineConfig) -> list[ProbeOutcome]:
    """Labelled probes of the calibration data, scored with ``config``'s aggregate.

    Genuine: each calibration crop against the other crops of the four (its own left out), and
    the group-photo faces against all their crops. Impostors: street.mp4 faces against the four,
    and each calibration identity's images against the other three (leave one identity out).
    """
    stills = [s for s in data["stills"] if s.identity in CALIBRATION]
    person_of = {n: i + 1 for i, n in enumerate(CALIBRATION)}
    crops = {n: [s for s in stills if s.identity == n and s.source == "crop"]
             for n in CALIBRATION}
    out: list[ProbeOutcome] = []
    engine, _ = enroll(config, {n: [s.vector for s in c] for n, c in crops.items()}, person_of)
    group = [(s.identity, s.vector) for s in stills if s.source == "group"]
    street = [("street", f.vector) for f in data["video"] if f.vector is not None]
    out += score_probes(engine, group + street, person_of)
    for probe in [s for c in crops.values() for s in c]:  # leave one image out
        gallery = {n: [s.vector for s in c if s is not probe] for n, c in crops.items()}
        engine, _ = enroll(config, gallery, person_of)
        out += score_probes(engine, [(probe.identity, probe.vector)], person_of)
    for held in CALIBRATION:  # leave one identity out
        gallery = {n: [s.vector for s in crops[n]] for n in CALIBRATION if n != held}
        engine, _ = enroll(config, gallery, person_of)
        out += score_probes(engine, [(held, s.vector) for s in stills if s.identity == held],
                            person_of)
    return out


def compare_aggregates(data: dict[str, Any], base: EngineConfig) -> list[dict[str, Any]]:
    """For each aggregate: thresholds calibrated on the calibration data and what they give."""
    rows = []
    for aggregate in AGGREGATES:
        config = replace(base, aggregate=aggregate, aggregate_top_n=3)
        outcomes = calibration_outcomes(data, config)
        cal = recommend_from_outcomes(outcomes, TARGET_FAR)
        th = replace(config, accept_threshold=cal["accept_threshold"],
                     reject_threshold=cal["reject_threshold"],
                     accept_margin=cal["margin"]).thresholds
        rates = open_set_rates(outcomes, th)
        far1 = dir_at_far(outcomes, 0.01, th.margin)
        known = [o for o in outcomes if o.truth is not None]
        strangers = [o for o in outcomes if o.truth is None]
        contaminated = contamination(data, replace(config, accept_threshold=cal[
            "accept_threshold"], reject_threshold=cal["reject_threshold"],
            accept_margin=cal["margin"]))
        rows.append({
            "aggregate": aggregate, "contamination": contaminated,
            "accept": cal["accept_threshold"], "margin": cal["margin"],
            "reject": cal["reject_threshold"], "dir_at_calibrated": rates.dir,
            "dir_at_far_0.01": far1["dir"], "threshold_at_far_0.01": far1["threshold"],
            "top1": sum(o.top1_correct for o in known) / len(known),
            "genuine": len(known), "strangers": len(strangers),
            "auc": _auc([o.own_score for o in known if o.own_score is not None],
                        [o.best_score for o in strangers]),
            "calibration": cal,
        })
    return rows


def contamination(data: dict[str, Any], config: EngineConfig, probes: int = 10
                  ) -> dict[str, Any]:
    """One wrong image filed under a person: how often that stranger is then KNOWN as them.

    For each calibration person P and each street.mp4 track S: P's gallery = P's crops + one
    frame of S (the track's middle one); probes = ``probes`` other frames of S spread over the
    track. Counts the probes accepted as P (single images, ``config``'s thresholds).
    """
    stills = [s for s in data["stills"] if s.identity in CALIBRATION and s.source == "crop"]
    person_of = {n: i + 1 for i, n in enumerate(CALIBRATION)}
    tracks: dict[int, list[np.ndarray]] = {}
    for f in data["video"]:
        if f.vector is not None and f.track_id >= 0:
            tracks.setdefault(f.track_id, []).append(f.vector)
    accepted = total = 0
    for person in CALIBRATION:
        for frames in tracks.values():
            middle = len(frames) // 2
            gallery = {n: [s.vector for s in stills if s.identity == n] for n in CALIBRATION}
            gallery[person] = [*gallery[person], frames[middle]]
            engine, _ = enroll(config, gallery, person_of)
            picks = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, probes + 1)
                     if int(i) != middle][:probes]
            for result in engine.matcher.match(np.stack(picks)):
                total += 1
                accepted += int(result.status is Status.KNOWN
                                and result.person_id == person_of[person])
    return {"accepted": accepted, "probes": total, "rate": accepted / total}


def _auc(genuine: list[float], impostor: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    return float(roc_auc_score(y, np.r_[genuine, impostor]))


# ------------------------------------------------------------------------------ report
def report(data: dict[str, Any], config: EngineConfig, visits_per_rotation: int,
           seed: int) -> dict[str, Any]:
    """Leave one report identity out, at ``config``: single images and visits."""
    rng = np.random.default_rng(seed)
    stills = [s for s in data["stills"] if s.identity in REPORT]
    person_of = {n: i + 1 for i, n in enumerate(REPORT)}
    outcomes: list[ProbeOutcome] = []
    stranger_visits: list[Visit] = []
    known_visits: list[Visit] = []
    greetings = {"stranger": 0, "known_right": 0, "known_wrong": 0}
    per_rotation = []
    labels: list[str] = []
    for held in REPORT:
        enrolled = [n for n in REPORT if n != held]
        gallery = {n: [s.vector for s in stills if s.identity == n and s.source == "crop"]
                   for n in enrolled}
        engine, entries = enroll(config, gallery, person_of)
        probes = [(s.identity, s.vector) for s in stills
                  if (s.identity in enrolled and s.source == "group") or s.identity == held]
        outcomes += score_probes(engine, probes, person_of)
        held_images = [s.vector for s in stills if s.identity == held]
        s_visits = [Visit([held_images[j] for j in rng.permutation(len(held_images))
                           [:VISIT_LENGTH]], None, f"{held}#{i}")
                    for i in range(visits_per_rotation)]
        k_visits = []
        for n in enrolled:
            faces = [s.vector for s in stills if s.identity == n and s.source == "group"]
            k_visits += [Visit([faces[j] for j in rng.permutation(len(faces))[:VISIT_LENGTH]],
                               person_of[n], f"{n}#{i}")
                         for i in range(max(1, visits_per_rotation // 10))]
        rep = replay_visits(config, entries, s_visits + k_visits)
        greetings["stranger"] += rep.false_greetings
        greetings["known_right"] += rep.greeted_correctly
        greetings["known_wrong"] += rep.greeted_wrongly
        labels += rep.greeted_labels
        stranger_visits += s_visits
        known_visits += k_visits
        per_rotation.append({"stranger": held, "stranger_images": len(held_images),
                             "stranger_visits": rep.stranger_visits,
                             "false_greetings": rep.false_greetings,
                             "known_visits": rep.known_visits,
                             "greeted_correctly": rep.greeted_correctly})
    th = config.thresholds
    n_s = len(stranger_visits)
    k = greetings["stranger"]
    n_images = len([s for s in stills])
    return {
        "single_images": {
            "at_shipped": open_set_rates(outcomes, th).to_dict(),
            "dir_at_far": [dir_at_far(outcomes, f, th.margin) for f in (0.01, 0.001)],
        },
        "visits": {
            "length": VISIT_LENGTH, "stranger_visits": n_s, "false_greetings": k,
            "per_1000": 1000.0 * k / n_s, "upper95_per_1000": 1000.0 * upper_bound(k, n_s),
            "distinct_stranger_identities": len(REPORT),
            "distinct_stranger_images": n_images,
            "upper95_per_identity": upper_bound(0, len(REPORT)) if k == 0 else None,
            "known_visits": len(known_visits), "greeted_correctly": greetings["known_right"],
            "greeted_wrongly": greetings["known_wrong"],
            "greeting_rate": greetings["known_right"] / len(known_visits),
            "greeting_rate_95": rate_bounds(greetings["known_right"], len(known_visits)),
            "per_rotation": per_rotation, "greeted": labels[:20],
        },
    }


# ------------------------------------------------------------------------------ video
def replay_video(data: dict[str, Any], config: EngineConfig) -> dict[str, Any]:
    """street.mp4 through the embed policy and the engine, the 8 BBT identities enrolled."""
    from visio_memoria_ros.embedding import build_embed_policy

    stills = data["stills"]
    names = sorted({s.identity for s in stills})
    entries = [GalleryEntry(i + 1, names.index(s.identity) + 1, s.identity, s.vector,
                            config.embedder)
               for i, s in enumerate(x for x in stills if x.source == "crop")]
    engine = IdentityEngine(config)
    engine.load_gallery(entries)
    params = {s.name: s.default for s in NODE_PARAMS["embedding_node"]}
    policy = build_embed_policy(**params)
    frames: dict[int, list[Any]] = {}
    for f in data["video"]:
        frames.setdefault(f.frame, []).append(f)
    known_tracks: dict[int, set[str]] = {}
    greetings: list[str] = []
    embedded = 0
    for index in sorted(frames):
        faces = []
        t = frames[index][0].t
        for f in frames[index]:
            vec = None
            if f.vector is not None and policy.decide(f.track_id, f.quality, t, f.bbox).embed:
                policy.mark_embedded(f.track_id, f.quality, t, f.bbox)
                vec, embedded = f.vector, embedded + 1
            faces.append(FaceObservation(bbox=f.bbox, score=1.0, detector="mtcnn",
                                         track_id=f.track_id, quality=f.quality, embedding=vec,
                                         embedder=config.embedder if vec is not None else ""))
        policy.prune(t)
        out = engine.process(faces, t)
        for d in out.decisions:
            if d.status is Status.KNOWN:
                known_tracks.setdefault(d.track_id, set()).add(d.name)
        greetings += [g.text for g in out.greetings]
    tracks = sorted({f.track_id for f in data["video"] if f.track_id >= 0})
    return {"tracks": len(tracks), "embeddings": embedded,
            "tracks_named": {str(k): sorted(v) for k, v in known_tracks.items()},
            "greetings": greetings}


# ------------------------------------------------------------------------------ simulation
def simulate(config: EngineConfig, sizes: list[int], visits: int, seed: int,
             gap_ratio: float) -> list[dict[str, Any]]:
    """False greetings and greeting rate against gallery size, on synthetic dlib-like vectors.

    Gallery: N persons x 5 ``DLIB_MODEL`` images. Stranger visits: ``DLIB_VIDEO_STRANGERS``
    (as close to everybody as street.mp4's faces). Each size runs at ``config``; with the
    margin scaled by ``gap_ratio`` (model strangers' lead over their runner-up / street.mp4's:
    real strangers clear the shipped margin about as often as model strangers clear this one);
    and with the margin off (the accept threshold alone).
    """
    rows = []
    for n in sizes:
        rng = np.random.default_rng(seed + n)
        t0 = time.perf_counter()
        ids, owners, vecs = DLIB_MODEL.gallery(n, 5, rng)
        entries = [GalleryEntry(i, int(p), f"p{p}", v, config.embedder)
                   for i, (p, v) in enumerate(zip(owners, vecs, strict=True))]
        strangers = DLIB_VIDEO_STRANGERS.identities(visits, rng)
        s_visits = [Visit(list(DLIB_VIDEO_STRANGERS.samples(
            np.repeat(u[None], VISIT_LENGTH, 0), rng)), None, f"s{i}")
            for i, u in enumerate(strangers)]
        enrolled = rng.integers(0, n, max(1, visits // 4))
        k_visits = [Visit(list(DLIB_MODEL.samples(np.repeat(ids[p][None], VISIT_LENGTH, 0), rng)),
                          int(p), f"p{p}") for p in enrolled]
        scaled = round(config.thresholds.margin * gap_ratio, 4)
        variants = (("shipped", config), ("scaled_margin", replace(config, accept_margin=scaled)),
                    ("no_margin", replace(config, accept_margin=0.0)))
        row: dict[str, Any] = {"gallery_persons": n, "scaled_margin_value": scaled}
        for name, cfg in variants:
            rep = replay_visits(cfg, entries, s_visits + k_visits)
            k = rep.false_greetings
            row[name] = {
                "stranger_visits": rep.stranger_visits, "false_greetings": k,
                "per_1000": 1000.0 * k / rep.stranger_visits,
                "per_1000_95": [1000.0 * b for b in rate_bounds(k, rep.stranger_visits)],
                "known_visits": rep.known_visits,
                "greeting_rate": rep.greeted_correctly / rep.known_visits,
                "wrong_name": rep.greeted_wrongly,
            }
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        LOG.info("simulation N=%d: %s", n, row)
    return rows


def model_check(data: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Measured calibration similarities beside the model's.

    Pair cosines of the calibration identities' images (what ``DLIB_MODEL`` is fitted to), and
    street.mp4's faces against the four calibration identities' centroids (best score, lead over
    the runner-up) beside ``DLIB_VIDEO_STRANGERS`` against four model identities of 5 images.
    """
    stills = [s for s in data["stills"] if s.identity in CALIBRATION]
    v = np.stack([s.vector for s in stills]).astype(np.float64)
    who = np.array([s.identity for s in stills])
    sims = v @ v.T
    same = (who[:, None] == who[None]) & ~np.eye(len(who), dtype=bool)
    diff = who[:, None] != who[None]
    measured = (sims[same].mean(), sims[same].std(), sims[diff].mean(), sims[diff].std())
    crops = [s for s in stills if s.source == "crop"]
    cents = np.stack([np.mean([s.vector for s in crops if s.identity == n], axis=0)
                      for n in CALIBRATION])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    street = np.stack([f.vector for f in data["video"] if f.vector is not None])
    top = np.sort(street @ cents.T, axis=1)[:, ::-1]
    rng = np.random.default_rng(seed)
    model_top = []
    for _ in range(300):
        _, owners, vecs = DLIB_MODEL.gallery(4, 5, rng)
        c = np.stack([vecs[owners == i].mean(axis=0) for i in range(4)])
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        probes = DLIB_VIDEO_STRANGERS.samples(DLIB_VIDEO_STRANGERS.identities(5, rng), rng)
        model_top.append(np.sort(probes @ c.T, axis=1)[:, ::-1])
    mt = np.concatenate(model_top)
    return {"measured": [round(float(x), 4) for x in measured],
            "model": [round(x, 4) for x in pair_stats(DLIB_MODEL)],
            "street_best_mean": round(float(top[:, 0].mean()), 4),
            "street_gap_mean": round(float((top[:, 0] - top[:, 1]).mean()), 4),
            "model_best_mean": round(float(mt[:, 0].mean()), 4),
            "model_gap_mean": round(float((mt[:, 0] - mt[:, 1]).mean()), 4)}


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    """Run everything, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = ROOT.parent / "shared" / "eval"
    parser.add_argument("--bbt", type=Path, default=shared / "bbt")
    parser.add_argument("--video", type=Path, default=shared / "video" / "street.mp4")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "results" /
                        "identity_faces.npz")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--visits", type=int, default=1000,
                        help="stranger visits per report rotation (4 rotations)")
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--sim-visits", type=int, default=3000,
                        help="stranger visits per gallery size (and a quarter as many "
                             "enrolled visits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit", action="store_true",
                        help="also refit the simulation model to the calibration data")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path in (args.bbt / "labels.json", args.video):
        if not path.is_file():
            print(f"{path} not found", file=sys.stderr)
            return 1
    import torch

    torch.set_num_threads(1)
    data = load_or_extract(args.bbt, args.video, args.cache)
    shipped = EngineConfig()
    out: dict[str, Any] = {"embedder": data["embedder"], "calibration_identities": CALIBRATION,
                           "report_identities": REPORT, "target_far": TARGET_FAR,
                           "shipped": {"accept": shipped.thresholds.accept,
                                       "reject": shipped.thresholds.reject,
                                       "margin": shipped.thresholds.margin,
                                       "instant": shipped.thresholds.instant,
                                       "aggregate": shipped.aggregate,
                                       "min_votes": shipped.min_votes}}

    print("\n## Calibration data (in-sample: it sets the shipped values, it is not accuracy)")
    rows = compare_aggregates(data, shipped)
    out["aggregates"] = rows
    print("| aggregate | accept | margin | reject | DIR at these | DIR at FAR 1 % | AUC | "
          "one wrong image filed: stranger KNOWN |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["contamination"]
        print(f"| {r['aggregate']} | {r['accept']:.4f} | {r['margin']:.3f} | {r['reject']:.4f} | "
              f"{r['dir_at_calibrated']:.3f} | {r['dir_at_far_0.01']:.3f} | {r['auc']:.4f} | "
              f"{c['accepted']}/{c['probes']} |")
    print(f"({rows[0]['genuine']} genuine probes, {rows[0]['strangers']} stranger probes: "
          f"{sum(f.vector is not None for f in data['video'])} street.mp4 faces + the leave-one-"
          "identity-out images)")
    chosen = next(r for r in rows if r["aggregate"] == shipped.aggregate)
    match = (chosen["accept"], chosen["reject"], chosen["margin"]) == (
        shipped.thresholds.accept, shipped.thresholds.reject, shipped.thresholds.margin)
    out["shipped_reproduced"] = match
    print(f"shipped ({shipped.aggregate}): accept {shipped.thresholds.accept}, reject "
          f"{shipped.thresholds.reject}, margin {shipped.thresholds.margin} -> "
          f"{'reproduced by this calibration' if match else 'NOT what this calibration gives'}")
    video = replay_video(data, shipped)
    earlier = replay_video(data, EARLIER)
    out["video_calibration"] = {"shipped": video, "earlier": earlier}
    print(f"street.mp4 (calibration data), 8 BBT identities enrolled: {video['tracks']} stranger "
          f"tracks, {video['embeddings']} embeddings chosen by the embed policy, tracks named: "
          f"{video['tracks_named'] or 'none'}; at the earlier settings (accept 0.915, max, no "
          f"margin): {earlier['tracks_named'] or 'none'}")

    print("\n## Report identities (held out), shipped settings")
    rep = report(data, shipped, args.visits, args.seed)
    out["report"] = rep
    s = rep["single_images"]["at_shipped"]
    print(f"single images: DIR {s['dir']:.3f} ({s['known']} enrolled group-photo faces), FAR "
          f"{s['far']:.3f} ({s['strangers']} stranger images), misidentified "
          f"{s['misidentified']:.3f}")
    for row in rep["single_images"]["dir_at_far"]:
        flag = "" if row["resolvable"] else f" (not measurable: {row['strangers']} strangers)"
        print(f"DIR at FAR {row['far']:g}: {row['dir']} at {row['threshold']}{flag}")
    v = rep["visits"]
    print(f"stranger visits: {v['false_greetings']} false greetings in {v['stranger_visits']} "
          f"= {v['per_1000']:.2f} per 1000 (95 % upper bound {v['upper95_per_1000']:.2f}); "
          f"they come from {v['distinct_stranger_identities']} identities and "
          f"{v['distinct_stranger_images']} images"
          + (f" (by identity, 0 of 4: 95 % upper bound {v['upper95_per_identity']:.2f})"
             if v["upper95_per_identity"] is not None else ""))
    print(f"enrolled visits: {v['greeted_correctly']} of {v['known_visits']} greeted by name "
          f"({v['greeting_rate']:.3f}), {v['greeted_wrongly']} with another name")

    print("\n## Simulation: gallery size (DLIB_MODEL, shipped settings)")
    out["model"] = model_check(data)
    m = out["model"]
    print(f"pair cosines genuine mean/std, impostor mean/std: measured {m['measured']}, model "
          f"{m['model']}; street.mp4 faces vs 4 identities: best {m['street_best_mean']}, lead "
          f"over the runner-up {m['street_gap_mean']}; model video strangers: best "
          f"{m['model_best_mean']}, lead {m['model_gap_mean']}")
    gap_ratio = m["model_gap_mean"] / m["street_gap_mean"]
    if args.fit:
        model, err = fit(*out["model"]["measured"])
        out["model"]["refit"] = {"model": repr(model), "error": err}
        print(f"refit: {model!r} (error {err:.3g})")
    sizes = [int(x) for x in args.sizes.split(",") if x]
    sim = simulate(shipped, sizes, args.sim_visits, args.seed, gap_ratio)
    out["simulation"] = sim
    print(f"false greetings per 1000 stranger visits (95 % CI) / enrolled visits greeted; "
          f"scaled margin = {sim[0]['scaled_margin_value'] if sim else '-'}")
    print("| persons enrolled | shipped (margin 0.033) | margin scaled to real strangers' leads "
          "| no margin |")
    print("|---|---|---|---|")

    def cell(c: dict[str, Any]) -> str:
        lo, hi = c["per_1000_95"]
        return (f"{c['false_greetings']}/{c['stranger_visits']} = {c['per_1000']:.1f} "
                f"({lo:.1f}-{hi:.1f}) / {c['greeting_rate']:.3f}")

    for r in sim:
        print(f"| {r['gallery_persons']} | {cell(r['shipped'])} | {cell(r['scaled_margin'])} | "
              f"{cell(r['no_margin'])} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1, default=_json_default))
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(type(o).__name__)


if __name__ == "__main__":
    sys.exit(main())
