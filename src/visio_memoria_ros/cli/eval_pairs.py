"""``eval pairs``: verification accuracy of image pairs listed in a CSV.

``eval pairs`` -> ``{"schema": "visio-memoria.eval-pairs/1", "embedder", "thresholds",
"pairs": int, "evaluated": int, "skipped": [{"line", "reason"}], "genuine": int,
"impostor": int, "threshold": float, "accuracy": float|null, "true_accept_rate": float|null,
"false_accept_rate": float|null, "best_threshold": float|null, "best_accuracy": float|null,
"roc_auc": float|null, "calibration": calibration|null}``; a pair is predicted "same" when its
similarity >= the threshold (the configured accept threshold).
"""

from __future__ import annotations

import argparse
import csv
import math
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
from .common import CliError, add_command, num, print_json, warn
from .context import build_pipeline, engine_config


def _read_pairs(csv_path: str, images_dir: str) -> list[tuple[int, str, str, int]]:
    """(line, path a, path b, same) rows of a pairs CSV with columns a, b, same."""
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
            rows.append((line, str(root / a), str(root / b), int(same)))
    if not rows:
        raise CliError(f"{path}: no pairs")
    return rows


def cmd_eval_pairs(args: argparse.Namespace) -> int:
    """Verification accuracy of image pairs."""
    check_eval_flags(args)
    rows = _read_pairs(args.pairs_csv, args.images)
    pipe = build_pipeline(args, embed=True)
    th = engine_config(args, pipe.embedder_id).thresholds
    paths = list(dict.fromkeys(p for _, a, b, _ in rows for p in (a, b)))
    vectors, failed = embed_files(args, pipe, paths, desc="embedding")
    sims, labels, skipped = [], [], []
    for line, a, b, same in rows:
        bad = [f"{p}: {failed[p]}" for p in (a, b) if p in failed]
        if bad:
            skipped.append({"line": line, "reason": "; ".join(bad)})
            continue
        sims.append(float(np.dot(vectors[a], vectors[b])))
        labels.append(same)
    s, y = np.asarray(sims), np.asarray(labels, dtype=int)
    out: dict[str, Any] = {
        "schema": "visio-memoria.eval-pairs/1", "embedder": pipe.embedder_id,
        "thresholds": {"accept": th.accept, "reject": th.reject},
        "pairs": len(rows), "evaluated": len(sims), "skipped": skipped,
        "genuine": int(y.sum()), "impostor": int((1 - y).sum()) if y.size else 0,
        "threshold": th.accept, "accuracy": None, "true_accept_rate": None,
        "false_accept_rate": None, "best_threshold": None, "best_accuracy": None,
        "roc_auc": None, "calibration": None,
    }
    if s.size:
        from ..identity.metrics import pair_rates

        r = pair_rates(s, y, th.accept)
        out.update(accuracy=num(r.accuracy), true_accept_rate=num(r.true_accept_rate),
                   false_accept_rate=num(r.false_accept_rate),
                   best_accuracy=num(r.best_accuracy), roc_auc=num(r.roc_auc),
                   best_threshold=num(r.best_threshold) if math.isfinite(r.best_threshold)
                   else 1.0)
        if args.target_far is not None:
            try:
                cal = recommend_thresholds(s[y == 1].tolist(), s[y == 0].tolist(),
                                           args.target_far, args.reject_frr)
            except ValueError as exc:
                raise CliError(f"cannot calibrate: {exc}") from exc
            cal["margin_frr"] = None  # pairs have no runner-up person: no margin
            out["calibration"] = write_calibration(args, cal)
    if args.json:
        print_json(out)
    else:
        for sk in skipped:
            warn(f"pair on line {sk['line']} skipped: {sk['reason']}")
        print(f"embedder {out['embedder']}: {out['evaluated']} of {out['pairs']} pairs "
              f"({out['genuine']} same, {out['impostor']} different)")
        print(f"accuracy at threshold {th.accept:.4f}: {pct(out['accuracy'])} (TAR "
              f"{pct(out['true_accept_rate'])}, FAR {pct(out['false_accept_rate'])})")
        bt, auc = out["best_threshold"], out["roc_auc"]
        bt_text = "n/a" if bt is None else f"{bt:.4f}"
        auc_text = "n/a" if auc is None else f"{auc:.4f}"
        print(f"best accuracy: {pct(out['best_accuracy'])} at threshold {bt_text}; "
              f"ROC AUC {auc_text}")
        print_calibration(out["calibration"])
    if not sims:
        raise CliError("no pair could be evaluated (every pair has an image without a face)")
    return 0


def register(sub: Any) -> None:
    """Add ``eval pairs`` to the ``eval`` parser ``sub``."""
    p = add_command(sub, "pairs", cmd_eval_pairs,
                    "verification of image pairs from a CSV with columns a,b,same (same in {0,1})")
    p.add_argument("pairs_csv", metavar="PAIRS.csv")
    p.add_argument("--images", required=True, metavar="DIR",
                   help="folder the CSV's image paths are relative to")
    calibration_args(p)
