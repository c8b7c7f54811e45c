"""What ``eval identify`` and ``eval pairs`` share: the calibration options and their checks,
embedding folder images, writing and printing the recommended thresholds (the maths is
``identity.calibration``).

``calibration`` (``--target-far``) -> ``{"target_far": float, "reject_frr": float,
"margin_frr": float|null, "impostor_scores": int, "genuine_scores": int, "far_resolution":
float, "accept_threshold": float, "reject_threshold": float, "margin": float, "achieved":
{"false_accept_rate", "false_reject_rate", "genuine_unknown_rate"}, "note": str|null,
"written_to": str|null, "identities": [str] (the calibration identities)}``, computed by
``identity.calibration`` (the rules are in its docstring). eval identify: genuine scores are
the calibration identities' own-person scores, impostor scores each probe's best wrong
person's (a false accept needs it to clear the margin too); eval pairs: the same-person and
different-person pairs whose two images both belong to calibration identities, and no margin
(pairs have no runner-up person). Neither reports a figure on the calibration identities.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .common import CliError, UsageError, progress, warn

DEFAULT_REJECT_FRR = 0.01  # = identity.calibration.DEFAULT_REJECT_FRR (faiss-free import)
DEFAULT_MARGIN_FRR = 0.01  # = identity.calibration.DEFAULT_MARGIN_FRR


def recommend_thresholds(genuine: Sequence[float], impostor: Sequence[float], target_far: float,
                         reject_frr: float = DEFAULT_REJECT_FRR, **kw: Any) -> dict[str, Any]:
    """``identity.calibration.recommend_thresholds`` (kept here for callers of the CLI)."""
    from ..identity.calibration import recommend_thresholds as recommend

    return recommend(genuine, impostor, target_far, reject_frr, **kw)


def write_thresholds_yaml(path: str | Path, accept: float, reject: float,
                          margin: float | None = None) -> None:
    """``identity.calibration.write_thresholds_yaml``, its refusals as CliError."""
    from ..identity.calibration import CalibrationError
    from ..identity.calibration import write_thresholds_yaml as write

    try:
        write(path, accept, reject, margin)
    except CalibrationError as exc:
        raise CliError(str(exc)) from exc


def write_calibration(args: argparse.Namespace, cal: dict[str, Any]) -> dict[str, Any]:
    """Write the recommended thresholds when --write-yaml was given."""
    if args.write_yaml:
        margin = cal["margin"] if cal.get("margin_frr") is not None else None
        write_thresholds_yaml(args.write_yaml, cal["accept_threshold"], cal["reject_threshold"],
                              margin)
        cal["written_to"] = str(args.write_yaml)
    return cal


def check_eval_flags(args: argparse.Namespace) -> None:
    if args.write_yaml and args.target_far is None:
        raise UsageError("--write-yaml needs --target-far (the rate to calibrate for)")
    if args.target_far is not None and not 0.0 < args.target_far < 1.0:
        raise UsageError(f"--target-far must be in (0, 1), got {args.target_far}")
    if not 0.0 <= args.reject_frr < 1.0:
        raise UsageError(f"--reject-frr must be in [0, 1), got {args.reject_frr}")
    if not 0.0 <= getattr(args, "margin_frr", 0.0) < 1.0:
        raise UsageError(f"--margin-frr must be in [0, 1), got {args.margin_frr}")
    if getattr(args, "calibrate_on", None) and args.target_far is None:
        raise UsageError("--calibrate-on needs --target-far (the rate to calibrate for)")


def embed_files(args: argparse.Namespace, pipe: Any, paths: Sequence[str],
                desc: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """{path: embedding of its largest face} and {path: why it has none}."""
    from ..pipeline import ImageError, largest_face, load_image

    vectors: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for path in progress(args, paths, desc=desc):
        try:
            face = largest_face(pipe.detect(load_image(path)))
        except ImageError as exc:
            failed[path] = str(exc)
            continue
        if face is None or face.crop is None:
            failed[path] = "no face found" if face is None else "face cannot be aligned"
            continue
        pipe.embed([face])
        vectors[path] = np.asarray(face.embedding, dtype=np.float32)
    return vectors, failed


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.1f}%"
def print_calibration(cal: Mapping[str, Any] | None) -> None:
    if not cal:
        return
    a = cal["achieved"]
    who = f" on {', '.join(cal['identities'])}" if cal.get("identities") else ""
    print(f"calibration{who} for a false-accept rate of {cal['target_far']:g} "
          f"({cal['impostor_scores']} impostor, {cal['genuine_scores']} genuine scores): "
          f"accept_threshold {cal['accept_threshold']:.4f}, accept_margin {cal['margin']:.3f}, "
          f"reject_threshold {cal['reject_threshold']:.4f} (on the calibration data: FAR "
          f"{a['false_accept_rate']:.4g}, FRR {a['false_reject_rate']:.4g}, genuine called "
          f"UNKNOWN {a['genuine_unknown_rate']:.4g})")
    if cal["note"]:
        warn(cal["note"])
    if cal["written_to"]:
        print(f"wrote accept_threshold, reject_threshold and accept_margin to "
              f"{cal['written_to']}")


def calibration_args(p: argparse.ArgumentParser) -> Any:
    g = p.add_argument_group("calibration")
    g.add_argument("--target-far", type=float, metavar="RATE",
                   help="recommend an accept threshold for this false-accept rate (e.g. 0.001)")
    g.add_argument("--reject-frr", type=float, default=DEFAULT_REJECT_FRR, metavar="RATE",
                   help="recommended reject threshold: at most this fraction of genuine scores "
                        "fall below it (UNKNOWN), and it is at most the accept rule at 10x the "
                        f"target FAR (default {DEFAULT_REJECT_FRR})")
    g.add_argument("--write-yaml", metavar="PATH",
                   help="write the recommended thresholds into the identity_node section of "
                        "this parameter YAML (only those lines change)")
    return g
