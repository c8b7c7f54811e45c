"""What every command shares: the errors that become exit codes, the global options, how a
command is registered, and the output helpers (one-line errors and warnings, JSON numbers,
progress bars, faces as JSON and text)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

PROG = "visio-memoria"
#: Environment variable naming the memory (a path or a URL) when --db is not given.
DB_ENV = "VISIO_MEMORIA_DB"


class CliError(Exception):
    """A failure to report as one line on stderr; ``code`` is the exit status."""

    code = 1


class UsageError(CliError):
    """The command line itself is wrong (exit status 2)."""

    code = 2


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def error_line(message: str) -> None:
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)


def one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


def num(value: Any, digits: int = 4) -> float | None:
    """A JSON-safe rounded float (None for None/NaN/inf)."""
    if value is None:
        return None
    v = float(value)
    return round(v, digits) if math.isfinite(v) else None


def rate(n: int, d: int) -> float | None:
    return num(n / d) if d else None


def when(t: float) -> float | None:
    return num(t, 3) if t else None


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False))


def progress(args: argparse.Namespace, iterable: Iterable[Any] | None = None, *,
             total: int | None = None, desc: str = "", unit: str = "img") -> Any:
    """A tqdm bar on stderr (shown only on a terminal, never with --quiet)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                disable=True if args.quiet else None, dynamic_ncols=True)


def face_json(face: Any) -> dict[str, Any]:
    lm = None
    if face.landmarks is not None:
        lm = [[num(x, 1), num(y, 1)] for x, y in np.asarray(face.landmarks).tolist()]
    return {
        "bbox": [num(v, 1) for v in np.asarray(face.bbox).tolist()],
        "landmarks": lm,
        "score": num(face.score),
        "quality": num(face.quality),
    }


def left_to_right(faces: Sequence[Any]) -> list[Any]:
    return sorted(faces, key=lambda f: (float(f.bbox[0]), float(f.bbox[1])))


def box_text(face: Any) -> str:
    x1, y1, x2, y2 = (round(float(v)) for v in face.bbox)
    return f"[{x1},{y1},{x2},{y2}]"


def global_options(*, defaults: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the command (sub-parsers never override a value)."""
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options")
    g.add_argument("--config", metavar="YAML", default=d(None),
                   help="node parameter file (config/visio_memoria.yaml); default: built-in "
                        "defaults")
    g.add_argument("--namespace", metavar="NS", default=d("/"),
                   help="read --config as the nodes launched in this ROS namespace do "
                        "(namespace:=NS): sections such as /NS/memory_node apply (default /)")
    g.add_argument("--db", metavar="PATH|URL", default=d(None),
                   help="the memory: a file path, sqlite:///path or "
                        "postgresql://user@host:port/dbname (password from PGPASSWORD or "
                        f"~/.pgpass); default: ${DB_ENV}, else memory_node data_dir/db_path "
                        "(~/.local/share/visio_memoria/memory.db)")
    g.add_argument("--pad-retry", metavar="F", type=float, default=d(0.3),
                   help="when no face is found, retry once with a black border of F x the "
                        "longer side (tight face crops); 0 = off (default 0.3)")
    g.add_argument("-q", "--quiet", action="store_true", default=d(False),
                   help="no progress bars")
    g.add_argument("-v", "--verbose", action="count", default=d(0),
                   help="log more (-v info, -vv debug) to stderr")
    g.add_argument("--debug", action="store_true", default=d(False),
                   help="show a traceback on unexpected errors")
    return p


def add_command(parent: Any, name: str, func: Callable[[argparse.Namespace], int], help_: str,
                json_flag: bool = True) -> argparse.ArgumentParser:
    """Sub-command ``name`` of ``parent`` running ``func``, with the global options (and --json)."""
    p = parent.add_parser(name, parents=[global_options(defaults=False)], help=help_,
                          description=help_)
    p.set_defaults(func=func)
    if json_flag:
        p.add_argument("--json", action="store_true", help="machine-readable output")
    return p
