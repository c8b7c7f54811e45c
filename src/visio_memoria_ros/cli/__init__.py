"""``visio-memoria``: the command-line front door onto the same rooms the ROS nodes use.

Commands (``visio-memoria <command> --help`` for each)::

    detect INPUT... [--every N] [--json]   faces per image: box, 5 landmarks, score, quality
    enroll NAME IMG... [--json]            add the largest face of each image to person NAME
    identify INPUT... [--every N] [--json] name / status of every face against the memory
    eval identify GALLERY_DIR [PROBE_DIR]  open-set identification accuracy on folder data
    eval pairs PAIRS.csv --images DIR      verification accuracy, best threshold, ROC AUC
    db list | rename | merge | forget | forget-non-faces | export | reembed | migrate
    train-activity DIR [--out PATH]        train the activity head on DINOv3 scene features
    export WHAT --out DIR [--tensorrt]     ONNX (TensorRT) of face-embedder, dinov3, yolo-*

Global options (before or after the command): ``--config YAML`` (the node parameter file,
``config/visio_memoria.yaml``; without it the built-in defaults apply), ``--namespace NS``
(read that file as the nodes launched in namespace NS read it, by the ROS rules for which
sections apply to a node; default ``/``), ``--db PATH|URL`` (the memory: a file,
``sqlite:///path`` or ``postgresql://user@host:port/dbname``; default: ``$VISIO_MEMORIA_DB``,
else memory_node's ``data_dir``/``db_path``, i.e. ``~/.local/share/visio_memoria/memory.db``),
``--pad-retry F``, ``--quiet``, ``-v``, ``--debug``.

Parameters come from the same specs as the nodes: detection from ``detector_node``, the face
embedder from ``embedding_node``, thresholds from ``identity_node`` and the store from
``memory_node``. The CLI never imports rclpy or ``visio_memoria_ros.nodes``. Every command
runs the one pipeline of the nodes (``visio_memoria_ros.pipeline.Pipeline``: the Perceiver,
the embed stage and the identity engine), on still photos (each image on its own, with the
``--pad-retry`` for tight face crops) or on a video as the robot sees a camera.

Exit codes: 0 success; 1 runtime failure (unreadable input, a refusal of the memory store such
as an unknown id or an empty name, missing weights, any image of a batch that failed); 2 usage
error (bad arguments, a ``--config`` file that does not exist). Errors are one line on stderr
starting with ``visio-memoria: error:``; no traceback unless ``--debug``. Progress bars go to
stderr and only when stderr is a terminal (``--quiet`` turns them off).

JSON output (``--json``; UTF-8 on stdout, stable; new keys may be added, none removed or
renamed without changing ``schema``). Units: pixels for boxes/landmarks (x right, y down, in
the input image), cosine similarity in [-1, 1], times in seconds since the Unix epoch (null =
never), rates and accuracies as fractions in [0, 1] (null when undefined). NaN never appears.
Each command's module documents its ``--json`` output key by key.

Where each command lives (``register`` adds its arguments, ``cmd_*`` runs it)::

    faces           detect, enroll, identify
    eval_identify   eval identify          eval_pairs   eval pairs
    calibrate       --target-far / --write-yaml of both evals (maths: identity.calibration)
    db              db list | rename | merge | forget | forget-non-faces | reembed | migrate
    db_export       db export
    train_activity  train-activity         export       export
    common          errors, global options, output helpers
    context         parameters, pipeline, engine and store of one invocation
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from . import db, eval_identify, eval_pairs, export, faces, train_activity
from .calibrate import recommend_thresholds, write_thresholds_yaml
from .common import DB_ENV, PROG, CliError, UsageError, error_line, global_options, one_line

__all__ = ["DB_ENV", "PROG", "CliError", "UsageError", "build_parser", "main",
           "recommend_thresholds", "write_thresholds_yaml"]

LOG = logging.getLogger("visio_memoria_ros.cli")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``visio-memoria``."""
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[global_options(defaults=True)],
        description="See people, remember them and greet them by name: the algorithms of the "
                    "visio_memoria ROS nodes on image files and the memory store.",
        epilog="exit codes: 0 ok, 1 runtime failure, 2 usage error")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    faces.register(sub)
    ev = sub.add_parser("eval", help="accuracy on your own folder data (nothing is stored)",
                        description="accuracy on your own folder data (nothing is stored)")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    eval_identify.register(ev_sub)
    eval_pairs.register(ev_sub)
    db_parser = sub.add_parser("db", help="list and manage the persons in the memory",
                               description="list and manage the persons in the memory")
    db.register(db_parser.add_subparsers(dest="db_command", required=True, metavar="ACTION"))
    train_activity.register(sub)
    export.register(sub)
    return parser


class _StderrHandler(logging.Handler):
    """Library log records as ``visio-memoria: <level>: <message>`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"{PROG}: {record.levelname.lower()}: {one_line(record.getMessage())}",
                  file=sys.stderr)
        except Exception:
            self.handleError(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 runtime failure, 2 usage error)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse printed the text
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.config is not None and not Path(args.config).is_file():
        error_line(f"--config {args.config}: no such file")
        return 2
    if args.pad_retry < 0 or args.pad_retry > 2:
        error_line(f"--pad-retry must be in [0, 2], got {args.pad_retry}")
        return 2
    root = logging.getLogger()
    handler = _StderrHandler()
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    started = time.perf_counter()
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        error_line(str(exc))
        return exc.code
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        from ..memory import STORE_ERRORS

        if args.debug:
            traceback.print_exc()
        if isinstance(exc, (*STORE_ERRORS, ValueError, OSError)):
            error_line(str(exc))
        else:
            error_line(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the "
                        "traceback)")
        return 1
    finally:
        LOG.debug("%s finished in %.1f s", args.command, time.perf_counter() - started)
        root.removeHandler(handler)
        root.setLevel(old_level)

