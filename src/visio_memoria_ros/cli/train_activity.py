"""``train-activity``: the activity head trained on DINOv3 scene features of labelled folders.

``train-activity --json`` -> ``{"schema": "visio-memoria.train-activity/1", "out": str,
"report": TrainReport.to_dict()}`` (``activity.train.TrainReport``).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from .common import CliError, UsageError, add_command, print_json, progress, warn
from .context import node_params


def cmd_train_activity(args: argparse.Namespace) -> int:
    """Train the linear activity head on DINOv3 scene features of a folder-per-label set."""
    from ..activity import list_image_folder, train_from_folder
    from ..embedding import build_scene_embedder

    if args.folds < 2:
        raise UsageError(f"--folds must be >= 2, got {args.folds}")
    if not (math.isfinite(args.c) and args.c > 0):
        raise UsageError(f"--c must be > 0, got {args.c}")
    try:
        total = sum(len(v) for v in list_image_folder(args.dir).values())
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    params = node_params(args, "embedding_node")
    try:
        scene = build_scene_embedder("dinov3", **params)
    except FileNotFoundError as exc:
        raise CliError(f"DINOv3 weights not found: {exc} (train-activity needs the DINOv3 "
                       "scene embedder; models/README.md explains how to get it)") from exc
    except ImportError as exc:
        raise CliError(f"DINOv3 needs torch and transformers ({exc}); "
                       "pip install -e '.[dinov3]'") from exc
    bar = progress(args, total=total, desc=f"embedding with {scene.scene_id}")

    def embed_fn(images: list[np.ndarray]) -> np.ndarray:
        out = scene.embed_scenes(images)
        bar.update(len(images))
        return out

    try:
        head, report = train_from_folder(args.dir, embed_fn, scene.scene_id, folds=args.folds,
                                         c=args.c, batch_size=int(params.get("max_batch", 16)))
    finally:
        bar.close()
    saved = head.save(args.out)
    if args.json:
        print_json({"schema": "visio-memoria.train-activity/1", "out": str(saved),
                    "report": report.to_dict()})
    else:
        for f in report.skipped_files:
            warn(f"unreadable image skipped: {f}")
        print(report.summary())
        print(f"cross-validated accuracy {report.cv_accuracy:.3f}; saved the head "
              f"({', '.join(head.labels)}; {head.embedder_id}) to {saved}")
        print(f"use it with activity_node head_path: {saved}")
    return 0


def register(sub: Any) -> None:
    """Add ``train-activity`` to the command parser ``sub``."""
    p = add_command(sub, "train-activity", cmd_train_activity,
                    "train the activity head: DIR/<label>/*.jpg -> DINOv3 scene features -> "
                    "cross-validated logistic regression -> .npz")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--out", default="models/activity_head.npz", metavar="PATH",
                   help="where to save the head (default models/activity_head.npz)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--c", type=float, default=1.0,
                   help="inverse L2 regularisation of the logistic regression (default 1.0)")
