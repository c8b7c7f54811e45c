"""``eval pairs``: verification accuracy of image pairs listed in a CSV.

``eval pairs`` -> ``{"schema": "visio-memoria.eval-pairs/2", "embedder", "thresholds":
{"accept", "reject"}, "calibration_identities": [str], "test_identities": [str], "pairs": int,
"evaluated": int, "calibration_pairs": int, "mixed_pairs": int, "reported": int, "skipped":
[{"line", "reason"}], "genuine": int, "impostor": int, "threshold": float, "accuracy":
float|null, "true_accept_rate": float|null, "false_accept_rate": float|null,
"in_sample_best_threshold": float|null, "in_sample_best_accuracy": float|null, "roc_auc":
float|null, "calibration": calibration|null}``.

``pairs`` counts the CSV's pairs, ``evaluated`` those whose two images gave a face (the others
are ``skipped``), ``reported`` those every figure comes from, and ``genuine``/``impostor`` the
same-person and different-person pairs among them. A pair is predicted "same" when its
similarity >= ``threshold`` (= ``thresholds.accept``: the configured accept threshold, or the
calibrated one with ``--target-far``). ``in_sample_best_threshold`` and
``in_sample_best_accuracy`` are chosen on the reported pairs themselves (the best accuracy any
threshold reaches on them, 1.0 when calling no pair "same" does best: an optimistic figure, not
a result); ``roc_auc`` needs no threshold.

Held out: with ``--target-far`` the pairs are split by identity, an image's identity being its
folder under ``--images`` (``ada/1.jpg`` is ada). The identities of the CSV are split in two
(``--calibrate-on``, default half of them, as ``eval identify`` does); the thresholds are
calibrated on the pairs whose two images both belong to calibration identities
(``calibration_identities``, ``calibration_pairs``) and every figure comes from the pairs whose
two images both belong to the others (``test_identities``, ``reported``); a pair with one image
in each half is used by neither (``mixed_pairs``). It is refused when an image is not in a
per-person folder, a same-person pair spans two folders or a different-person pair lies in one,
or a half has no same-person or no different-person pair. Without ``--target-far`` every
evaluated pair is reported at the configured thresholds (held out only when those were not
calibrated on these images), ``calibration_identities`` is empty, ``test_identities`` lists the
folders of the images (empty when they are not all in folders) and ``calibration_pairs`` and
``mixed_pairs`` are 0.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .calibrate import (
    calibration_args,
    check_eval_flags,
    embed_files,
    pct,
    print_calibration,
    recommend_thresholds,
    write_calibration,
)
from .common import CliError, UsageError, add_command, num, print_json, warn
from .context import build_pipeline, engine_config


@dataclass(frozen=True)
class Pair:
    """One row of a pairs CSV: its line, the two image paths, whether they show one person, and
    each image's identity (its folder under --images; None when it is not in one)."""

    line: int
    a: str
    b: str
    same: int
    who_a: str | None
    who_b: str | None


def _identity(name: str, root: Path) -> str | None:
    """The folder directly under ``root`` that the CSV's image path ``name`` lies in, if any."""
    rel = Path(name)
    if rel.is_absolute():
        try:
            rel = rel.relative_to(root.absolute())
        except ValueError:
            return None
    parts = rel.parts
    if len(parts) < 2 or parts[0] in ("..", "."):
        return None
    return parts[0]


def _read_pairs(csv_path: str, images_dir: str) -> list[Pair]:
    """The pairs of a CSV with columns a, b, same (image paths relative to ``images_dir``)."""
    path = Path(csv_path)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    root = Path(images_dir)
    if not root.is_dir():
        raise CliError(f"--images {root}: no such folder")
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = {(h or "").strip().lower(): h for h in (reader.fieldnames or [])}
        missing = [c for c in ("a", "b", "same") if c not in header]
        if missing:
            raise CliError(f"{path}: the header must have columns a,b,same (missing "
                           f"{','.join(missing)})")
        for row in reader:
            line = reader.line_num
            a, b = (str(row.get(header[c]) or "").strip() for c in ("a", "b"))
            same = str(row.get(header["same"]) or "").strip()
            if not a and not b and not same:
                continue
            if same not in ("0", "1"):
                raise CliError(f"{path}:{line}: 'same' must be 0 or 1, got {same!r}")
            if not a or not b:
                raise CliError(f"{path}:{line}: both image columns a and b are needed")
            rows.append(Pair(line, str(root / a), str(root / b), int(same),
                             _identity(a, root), _identity(b, root)))
    if not rows:
        raise CliError(f"{path}: no pairs")
    return rows


def _identities(rows: Sequence[Pair]) -> list[str]:
    """The identities (folders) of the pairs' images, sorted."""
    return sorted({w for p in rows for w in (p.who_a, p.who_b) if w is not None})


def _names(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _split(args: argparse.Namespace, rows: Sequence[Pair]) -> tuple[list[str], list[str]]:
    """(calibration identities, test identities) of the pairs, refused when the images are not
    in per-person folders or a half would lack same-person or different-person pairs."""
    from ..identity.calibration import CalibrationError, split_identities

    for p in rows:
        if p.who_a is None or p.who_b is None:
            loose = p.a if p.who_a is None else p.b
            raise CliError(f"cannot calibrate: line {p.line}: {loose} is not in a per-person "
                           "folder under --images, so the pairs cannot be split by identity "
                           "(put each person's images in a folder, or drop --target-far)")
        if p.same != (p.who_a == p.who_b):
            kind = "same-person pair spans the folders" if p.same else \
                "different-person pair lies in one folder"
            raise CliError(f"cannot calibrate: line {p.line}: a {kind} {p.who_a}, {p.who_b}: "
                           "the folders under --images are not one per person")
    try:
        cal_ids, test_ids = split_identities(_identities(rows), _names(args.calibrate_on) or None)
    except CalibrationError as exc:
        if args.calibrate_on:
            raise UsageError(f"--calibrate-on: {exc}") from exc
        raise CliError(f"cannot calibrate: {exc}") from exc
    _check_halves(rows, cal_ids, test_ids, "")
    return cal_ids, test_ids


def _half(p: Pair, cal: set[str], test: set[str]) -> str:
    """"cal" or "test" when both images' identities are in that half, else "mixed"."""
    for name, ids in (("cal", cal), ("test", test)):
        if p.who_a in ids and p.who_b in ids:
            return name
    return "mixed"


def _check_halves(rows: Sequence[Pair], cal_ids: Sequence[str], test_ids: Sequence[str],
                  which: str) -> None:
    """Refuse a split in which a half has no same-person or no different-person pair."""
    cal, test = set(cal_ids), set(test_ids)
    for half, ids in (("cal", cal_ids), ("test", test_ids)):
        kinds = {p.same for p in rows if _half(p, cal, test) == half}
        lacking = [k for s, k in ((1, "same-person"), (0, "different-person")) if s not in kinds]
        if lacking:
            role = "calibration" if half == "cal" else "report"
            raise CliError(f"cannot calibrate: the {role} identities ({', '.join(ids)}) have no "
                           f"{' and no '.join(lacking)} pair with both images theirs{which}; "
                           "add such pairs or choose others with --calibrate-on")


def cmd_eval_pairs(args: argparse.Namespace) -> int:
    """Verification accuracy of image pairs.

    With --target-far the pairs are split by identity: thresholds are calibrated on some
    people's pairs, and every reported figure comes from the other people's pairs."""
    check_eval_flags(args)
    rows = _read_pairs(args.pairs_csv, args.images)
    cal_ids: list[str] = []
    if args.target_far is not None:
        cal_ids, test_ids = _split(args, rows)
    elif all(p.who_a is not None and p.who_b is not None for p in rows):
        test_ids = _identities(rows)
    else:
        test_ids = []
    pipe = build_pipeline(args, embed=True)
    th = engine_config(args, pipe.embedder_id).thresholds
    paths = list(dict.fromkeys(p for r in rows for p in (r.a, r.b)))
    vectors, failed = embed_files(args, pipe, paths, desc="embedding")
    evaluated, skipped = [], []
    for r in rows:
        bad = [f"{p}: {failed[p]}" for p in (r.a, r.b) if p in failed]
        if bad:
            skipped.append({"line": r.line, "reason": "; ".join(bad)})
        else:
            evaluated.append(r)
    sim = {r.line: float(np.dot(vectors[r.a], vectors[r.b])) for r in evaluated}
    halves = {r.line: "test" for r in evaluated}
    accept, reject, calibration = th.accept, th.reject, None
    if cal_ids and evaluated:
        _check_halves(evaluated, cal_ids, test_ids, " among the pairs that gave faces")
        cal_set, test_set = set(cal_ids), set(test_ids)
        halves = {r.line: _half(r, cal_set, test_set) for r in evaluated}
        cal_rows = [r for r in evaluated if halves[r.line] == "cal"]
        try:
            cal = recommend_thresholds([sim[r.line] for r in cal_rows if r.same],
                                       [sim[r.line] for r in cal_rows if not r.same],
                                       args.target_far, args.reject_frr)
        except ValueError as exc:
            raise CliError(f"cannot calibrate: {exc}") from exc
        cal["margin_frr"] = None  # pairs have no runner-up person: no margin
        cal["identities"] = list(cal_ids)
        calibration = write_calibration(args, cal)
        accept, reject = cal["accept_threshold"], cal["reject_threshold"]
    report = [r for r in evaluated if halves[r.line] == "test"]
    s = np.asarray([sim[r.line] for r in report])
    y = np.asarray([r.same for r in report], dtype=int)
    counts = {h: sum(v == h for v in halves.values()) for h in ("cal", "mixed")}
    out: dict[str, Any] = {
        "schema": "visio-memoria.eval-pairs/2", "embedder": pipe.embedder_id,
        "thresholds": {"accept": accept, "reject": reject},
        "calibration_identities": cal_ids, "test_identities": test_ids,
        "pairs": len(rows), "evaluated": len(evaluated),
        "calibration_pairs": counts["cal"], "mixed_pairs": counts["mixed"],
        "reported": len(report), "skipped": skipped,
        "genuine": int(y.sum()), "impostor": int((1 - y).sum()) if y.size else 0,
        "threshold": accept, "accuracy": None, "true_accept_rate": None,
        "false_accept_rate": None, "in_sample_best_threshold": None,
        "in_sample_best_accuracy": None, "roc_auc": None, "calibration": calibration,
    }
    if s.size:
        from ..identity.metrics import pair_rates

        r = pair_rates(s, y, accept)
        out.update(accuracy=num(r.accuracy), true_accept_rate=num(r.true_accept_rate),
                   false_accept_rate=num(r.false_accept_rate),
                   in_sample_best_accuracy=num(r.best_accuracy), roc_auc=num(r.roc_auc),
                   in_sample_best_threshold=num(r.best_threshold)
                   if math.isfinite(r.best_threshold) else 1.0)
    if args.json:
        print_json(out)
    else:
        for sk in skipped:
            warn(f"pair on line {sk['line']} skipped: {sk['reason']}")
        _print_pairs_report(out)
    if not evaluated:
        raise CliError("no pair could be evaluated (every pair has an image without a face)")
    return 0


def _print_pairs_report(out: dict[str, Any]) -> None:
    cal = out["calibration"]
    print_calibration(cal)
    if cal:
        print(f"pairs split by identity: {out['calibration_pairs']} calibration pairs "
              f"({', '.join(out['calibration_identities'])}), {out['reported']} report pairs "
              f"({', '.join(out['test_identities'])}), {out['mixed_pairs']} with an image in "
              "each half, used by neither")
    held = ", held out from calibration" if cal else ""
    print(f"embedder {out['embedder']}: {out['reported']} of {out['pairs']} pairs reported{held} "
          f"({out['genuine']} same, {out['impostor']} different)")
    which = "calibrated" if cal else "configured"
    print(f"accuracy at the {which} threshold {out['threshold']:.4f}: {pct(out['accuracy'])} "
          f"(TAR {pct(out['true_accept_rate'])}, FAR {pct(out['false_accept_rate'])})")
    bt, auc = out["in_sample_best_threshold"], out["roc_auc"]
    bt_text = "n/a" if bt is None else f"{bt:.4f}"
    auc_text = "n/a" if auc is None else f"{auc:.4f}"
    print(f"in-sample best accuracy (threshold chosen on these same pairs, optimistic): "
          f"{pct(out['in_sample_best_accuracy'])} at threshold {bt_text}; ROC AUC {auc_text}")


def register(sub: Any) -> None:
    """Add ``eval pairs`` to the ``eval`` parser ``sub``."""
    p = add_command(sub, "pairs", cmd_eval_pairs,
                    "verification of image pairs from a CSV with columns a,b,same (same in {0,1})")
    p.add_argument("pairs_csv", metavar="PAIRS.csv")
    p.add_argument("--images", required=True, metavar="DIR",
                   help="folder the CSV's image paths are relative to (one folder per person, "
                        "e.g. ada/1.jpg, for --target-far)")
    g = calibration_args(p)
    g.add_argument("--calibrate-on", metavar="NAME[,NAME]",
                   help="with --target-far: the identities (folders under --images) whose pairs "
                        "the thresholds are calibrated on; every reported figure comes from the "
                        "other identities' pairs, and pairs mixing the two are used by neither. "
                        "Default: half of the identities, spread over the sorted names")
