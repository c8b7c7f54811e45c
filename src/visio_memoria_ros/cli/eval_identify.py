"""``eval identify``: open-set identification accuracy on folder-per-identity data.

``eval identify`` -> ``{"schema": "visio-memoria.eval-identify/2", "embedder", "thresholds":
{"accept", "reject", "margin", "instant"}, "calibration_identities": [str], "test_identities":
[str], "gallery": {"identities": [str], "images": int, "enrolled": int}, "probes": {"known":
int, "strangers": int}, "failed": [{"path", "reason"}], "top1_accuracy": float|null,
"known": {"probes", "top1_correct", "accepted_correct", "misidentified", "uncertain",
"rejected"}, "strangers": {"probes", "rejected", "uncertain", "false_accepts"},
"false_accepts": int, "false_rejects": int, "false_accept_rate": float|null,
"false_reject_rate": float|null, "unknown_rejection_rate": float|null, "open_set":
{"at_thresholds": {"known", "strangers", "dir", "misidentified", "far", "false_accepts"},
"dir_at_far": [{"far", "threshold", "dir", "achieved_far", "strangers", "resolvable"}]},
"visits": {"length", "stranger_visits", "false_greetings", "false_greetings_per_1000",
"upper_per_1000", "confidence", "known_visits", "greeted_correctly", "greeted_wrongly",
"greeting_rate"}, "results": [{"path", "truth", "enrolled": bool, "predicted": str|null,
"status", "similarity", "margin", "genuine_similarity": float|null, "impostor_similarity":
float|null, "outcome"}], "calibration": calibration|null}``.

Held out: with ``--target-far`` the identities are split (``--calibrate-on``, default half of
the non-stranger identities): thresholds are calibrated on the calibration identities only,
each in turn a stranger to the others, and every figure of the report (``test_identities``)
comes from the other identities at those thresholds. Without ``--target-far`` every identity
is tested at the configured thresholds (which must not have been calibrated on the same
images for the figures to mean anything).

``predicted`` is the best-matching identity unless the face is UNKNOWN (``status`` says whether
it was accepted); ``similarity`` the best person's score, ``margin`` its lead over the runner-up
person; ``genuine_similarity`` the similarity to the probe's own identity,
``impostor_similarity`` to the best other one. A known probe is *top-1 correct* when its best
identity is its own (no threshold); *accepted_correct* when it is also KNOWN;
*misidentified* when KNOWN as someone else (a false accept); *uncertain*/*rejected*
(UNCERTAIN/UNKNOWN) are false rejects. A stranger probe is a false accept when KNOWN.
``false_accept_rate`` = false accepts / all probes, ``false_reject_rate`` = false rejects /
known probes, ``unknown_rejection_rate`` = strangers found UNKNOWN / strangers. ``outcome`` is
one of correct, misidentified, uncertain, rejected (known) or false_accept, uncertain, rejected
(stranger). ``open_set``: DIR = known probes KNOWN as themselves / known probes, FAR = stranger
probes KNOWN / strangers, at the thresholds and at the thresholds where 1 % and 0.1 % of these
strangers pass (``resolvable`` false when there are fewer than 1/rate strangers). ``visits``:
each identity's probe images make visits of ``length`` (vote_window) images (one starting at
each image, wrapping), each decided as one track by the identity engine (votes, margin,
greeting policy); a stranger visit greeted is a false greeting, ``upper_per_1000`` its exact
one-sided upper bound at ``confidence``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .calibrate import (
    DEFAULT_MARGIN_FRR,
    calibration_args,
    check_eval_flags,
    embed_files,
    pct,
    print_calibration,
    write_calibration,
)
from .common import CliError, UsageError, add_command, num, print_json, rate, warn
from .context import build_pipeline, engine_config


def _identity_sets(args: argparse.Namespace) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(gallery {identity: paths}, probes {identity: paths}) from the folder arguments."""
    from ..activity import list_image_folder

    def folders(root: str) -> dict[str, list[str]]:
        try:
            return {k: [str(p) for p in v] for k, v in list_image_folder(root).items()}
        except ValueError as exc:
            raise CliError(str(exc)) from exc

    strangers = _names(args.strangers)
    if args.probe_dir and args.split is not None:
        raise UsageError("--split splits GALLERY_DIR when no PROBE_DIR is given; not both")
    if not args.probe_dir and args.split is None:
        raise UsageError("give PROBE_DIR, or --split N to enroll the first N images of "
                         "each identity in GALLERY_DIR and probe with the rest")
    if args.split is not None and args.split < 1:
        raise UsageError(f"--split must be >= 1, got {args.split}")
    gallery_all = folders(args.gallery_dir)
    if args.probe_dir:
        probes = folders(args.probe_dir)
        gallery = dict(gallery_all)
    else:
        gallery = {k: v[: args.split] for k, v in gallery_all.items()}
        probes = {k: v[args.split:] for k, v in gallery_all.items() if v[args.split:]}
    known_names = set(gallery_all) | set(probes)
    unknown = [s for s in strangers if s not in known_names]
    if unknown:
        raise UsageError(f"--strangers: no identity folder named {', '.join(unknown)} "
                         f"(have: {', '.join(sorted(known_names))})")
    for s in strangers:
        moved = gallery.pop(s, [])
        if not args.probe_dir:
            probes[s] = sorted(set(probes.get(s, [])) | set(moved))
    if not gallery:
        raise CliError("the gallery is empty: every identity is a stranger")
    return gallery, probes


def _names(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _calibrate_identities(args: argparse.Namespace, config: Any, gallery: dict[str, list[str]],
                          probes: dict[str, list[str]], *, vectors: Mapping[str, np.ndarray],
                          cal_ids: Sequence[str]) -> dict[str, Any]:
    """Thresholds for --target-far from the calibration identities only (leave one out)."""
    from ..identity.calibration import leave_one_identity_out, recommend_from_outcomes

    def vecs(paths: Sequence[str]) -> list[np.ndarray]:
        return [vectors[p] for p in paths if p in vectors]

    outcomes = leave_one_identity_out(
        config, {n: vecs(gallery.get(n, [])) for n in cal_ids},
        {n: vecs(probes.get(n, [])) for n in cal_ids}, cal_ids)
    try:
        cal = recommend_from_outcomes(outcomes, args.target_far, args.reject_frr,
                                      args.margin_frr)
    except ValueError as exc:
        raise CliError(f"cannot calibrate on {', '.join(cal_ids)}: {exc}") from exc
    cal["identities"] = list(cal_ids)
    return write_calibration(args, cal)


def cmd_eval_identify(args: argparse.Namespace) -> int:
    """Open-set identification on folder-per-identity data, enrolled in memory only.

    With --target-far the identities are split: thresholds are calibrated on some, and every
    reported figure comes from the others (held out)."""
    from dataclasses import replace

    from ..identity.calibration import CalibrationError, enroll, score_probes, split_identities
    from ..identity.metrics import dir_at_far, image_visits, open_set_rates, replay_visits

    check_eval_flags(args)
    gallery, probes = _identity_sets(args)
    strangers = set(_names(args.strangers))
    pipe = build_pipeline(args, embed=True)
    config = engine_config(args, pipe.embedder_id)
    paths = [p for d in (gallery, probes) for ps in d.values() for p in ps]
    vectors, failed = embed_files(args, pipe, list(dict.fromkeys(paths)), desc="embedding")
    calibration, test_ids = None, sorted(set(gallery) | set(probes))
    if args.target_far is not None:
        pool = [n for n in test_ids if n not in strangers and n in gallery]
        try:
            cal_ids, _ = split_identities(pool, _names(args.calibrate_on) or None)
        except CalibrationError as exc:
            raise UsageError(f"--calibrate-on: {exc}") from exc
        test_ids = [n for n in test_ids if n not in cal_ids]
        if not any(n in gallery for n in test_ids if n not in strangers):
            raise UsageError("no enrolled identity is left to test on after calibration; "
                             "give more identities or fewer to --calibrate-on")
        calibration = _calibrate_identities(args, config, gallery, probes, vectors=vectors,
                                            cal_ids=cal_ids)
        try:
            config = replace(config, accept_threshold=calibration["accept_threshold"],
                             reject_threshold=calibration["reject_threshold"],
                             accept_margin=calibration["margin"])
        except ValueError as exc:
            raise CliError(f"calibrated thresholds are not usable: {exc}") from exc

    person_of = {name: i + 1 for i, name in enumerate(sorted(set(gallery) | set(probes)))}
    test_gallery = {n: [vectors[p] for p in gallery[n] if p in vectors]
                    for n in test_ids if n in gallery}
    engine, entries = enroll(config, {n: v for n, v in test_gallery.items() if v}, person_of)
    if not entries:
        raise CliError("no gallery image gave a face; nothing to evaluate")
    names = engine.names()
    enrolled = set(names.values())
    probe_list = [(n, p) for n in sorted(probes) if n in test_ids for p in probes[n]
                  if p in vectors]
    outcomes = score_probes(engine, [(n, vectors[p]) for n, p in probe_list], person_of)
    th = engine.thresholds
    known = dict.fromkeys(("probes", "top1_correct", "accepted_correct", "misidentified",
                           "uncertain", "rejected"), 0)
    stranger_counts = dict.fromkeys(("probes", "rejected", "uncertain", "false_accepts"), 0)
    genuine_n, results = 0, []
    for (truth, path), o in zip(probe_list, outcomes, strict=True):
        best = names.get(o.best)
        status = th.classify(o.best_score, o.runner_up).name if best else "UNKNOWN"
        predicted = best if status != "UNKNOWN" else None
        if truth in enrolled:
            genuine_n += 1
            known["probes"] += 1
            known["top1_correct"] += int(best == truth)
            if status == "KNOWN":
                outcome = "correct" if best == truth else "misidentified"
            else:
                outcome = "uncertain" if status == "UNCERTAIN" else "rejected"
            known[{"correct": "accepted_correct"}.get(outcome, outcome)] += 1
        else:
            stranger_counts["probes"] += 1
            outcome = {"KNOWN": "false_accept", "UNCERTAIN": "uncertain"}.get(status, "rejected")
            stranger_counts[{"false_accept": "false_accepts"}.get(outcome, outcome)] += 1
        results.append({"path": path, "truth": truth, "enrolled": truth in enrolled,
                        "predicted": predicted, "status": status,
                        "similarity": num(o.best_score), "margin": num(o.gap),
                        "genuine_similarity": num(o.own_score) if o.own_score is not None
                        else None,
                        "impostor_similarity": num(o.wrong_score), "outcome": outcome})
    false_accepts = known["misidentified"] + stranger_counts["false_accepts"]
    false_rejects = known["uncertain"] + known["rejected"]
    n_probes = known["probes"] + stranger_counts["probes"]
    by_identity: dict[str, list[np.ndarray]] = {}
    for truth, path in probe_list:
        by_identity.setdefault(truth, []).append(vectors[path])
    visits = image_visits(by_identity, {n: person_of[n] if n in enrolled else None
                                        for n in by_identity}, config.vote_window)
    visit_report = replay_visits(config, entries, visits)
    out = {
        "schema": "visio-memoria.eval-identify/2", "embedder": pipe.embedder_id,
        "thresholds": {"accept": th.accept, "reject": th.reject, "margin": th.margin,
                       "instant": th.instant},
        "calibration_identities": calibration["identities"] if calibration else [],
        "test_identities": sorted(test_ids),
        "gallery": {"identities": sorted(test_gallery), "images": sum(
            len(gallery[n]) for n in test_gallery), "enrolled": len(entries)},
        "probes": {"known": known["probes"], "strangers": stranger_counts["probes"]},
        "failed": [{"path": p, "reason": r} for p, r in failed.items()],
        "top1_accuracy": rate(known["top1_correct"], known["probes"]),
        "known": known, "strangers": stranger_counts,
        "false_accepts": false_accepts, "false_rejects": false_rejects,
        "false_accept_rate": rate(false_accepts, n_probes),
        "false_reject_rate": rate(false_rejects, known["probes"]),
        "unknown_rejection_rate": rate(stranger_counts["rejected"], stranger_counts["probes"]),
        "open_set": {"at_thresholds": open_set_rates(outcomes, th).to_dict(),
                     "dir_at_far": [dir_at_far(outcomes, far, th.margin)
                                    for far in (0.01, 0.001)]},
        "visits": {**visit_report.to_dict(), "length": config.vote_window},
        "results": results, "calibration": calibration,
    }
    if args.json:
        print_json(out)
    else:
        _print_identify_report(out)
    return 0


def _print_identify_report(out: Mapping[str, Any]) -> None:
    print_calibration(out.get("calibration"))
    th, k, s = out["thresholds"], out["known"], out["strangers"]
    held = " (held out from calibration)" if out["calibration"] else ""
    print(f"embedder {out['embedder']}, accept >= {th['accept']:.4f}, margin >= "
          f"{th['margin']:.3f}, reject < {th['reject']:.4f}")
    print(f"test identities{held}: {', '.join(out['test_identities'])}")
    print(f"gallery: {out['gallery']['enrolled']} faces of {len(out['gallery']['identities'])} "
          f"identities; probes: {k['probes']} known, {s['probes']} strangers")
    for f in out["failed"]:
        warn(f"skipped {f['path']}: {f['reason']}")
    print(f"top-1 accuracy: {pct(out['top1_accuracy'])} ({k['top1_correct']}/{k['probes']})")
    print(f"known probes: {k['accepted_correct']} correct, {k['misidentified']} misidentified, "
          f"{k['uncertain']} uncertain, {k['rejected']} rejected")
    print(f"strangers: {s['rejected']} rejected, {s['uncertain']} uncertain, "
          f"{s['false_accepts']} falsely accepted")
    print(f"false accepts: {out['false_accepts']} ({pct(out['false_accept_rate'])}), false "
          f"rejects: {out['false_rejects']} ({pct(out['false_reject_rate'])}), unknown "
          f"rejection rate: {pct(out['unknown_rejection_rate'])}")
    for row in out["open_set"]["dir_at_far"]:
        if row["threshold"] is None:
            continue
        note = "" if row["resolvable"] else (f" (not measurable with {row['strangers']} "
                                             "strangers)")
        print(f"DIR at FAR {row['far']:g}: {pct(row['dir'])} at threshold "
              f"{row['threshold']:.4f}{note}")
    v = out["visits"]
    if v["stranger_visits"]:
        print(f"stranger visits ({v['length']} images each, decided as identity_node does): "
              f"{v['false_greetings']} of {v['stranger_visits']} greeted = "
              f"{v['false_greetings_per_1000']:.1f} per 1000 (95% upper bound "
              f"{v['upper_per_1000']:.0f} per 1000)")
    if v["known_visits"]:
        print(f"enrolled visits: {v['greeted_correctly']} of {v['known_visits']} greeted by "
              f"name, {v['greeted_wrongly']} with another name")


def register(sub: Any) -> None:
    """Add ``eval identify`` to the ``eval`` parser ``sub``."""
    p = add_command(sub, "identify", cmd_eval_identify,
                    "open-set identification: enroll GALLERY_DIR (folder per identity) in memory, "
                    "probe with PROBE_DIR (or with the rest of GALLERY_DIR after --split N)")
    p.add_argument("gallery_dir", metavar="GALLERY_DIR")
    p.add_argument("probe_dir", metavar="PROBE_DIR", nargs="?")
    p.add_argument("--split", type=int, metavar="N",
                   help="without PROBE_DIR: enroll the first N images (sorted by name) of each "
                        "identity, probe with the rest")
    p.add_argument("--strangers", metavar="NAME[,NAME]",
                   help="identities never enrolled: all their images are stranger probes")
    g = calibration_args(p)
    g.add_argument("--calibrate-on", metavar="NAME[,NAME]",
                   help="with --target-far: the identities the thresholds are calibrated on "
                        "(each in turn a stranger to the others); every reported figure comes "
                        "from the other identities. Default: half of the non-stranger "
                        "identities, spread over the sorted names")
    g.add_argument("--margin-frr", type=float, default=DEFAULT_MARGIN_FRR, metavar="RATE",
                   help="recommended accept_margin: at most this fraction of the calibration "
                        "identities' genuine probes fall below it (default "
                        f"{DEFAULT_MARGIN_FRR})")
