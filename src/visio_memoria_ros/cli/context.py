"""From the command line to the rooms: the node parameters (``--config`` read as the nodes read
it), and the pipeline, identity engine, memory store and inputs of one invocation."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import NODE_PARAMS, load_node_params
from .common import DB_ENV, CliError, UsageError, error_line, num, progress, warn


def node_params(args: argparse.Namespace, node: str) -> dict[str, Any]:
    """Parameters of ``node``: spec defaults overridden by the --config YAML."""
    cache = args.__dict__.setdefault("_param_cache", {})
    if node not in cache:
        try:
            cache[node] = load_node_params(node, NODE_PARAMS[node], args.config,
                                           namespace=args.namespace)
        except (ValueError, yaml_error()) as exc:
            raise CliError(f"bad --config file: {exc}") from exc
    return dict(cache[node])


def yaml_error() -> type[Exception]:
    """The PyYAML parse error class."""
    import yaml

    return yaml.YAMLError


def build_pipeline(args: argparse.Namespace, *, embed: bool, kind: str | None = None,
                   still: bool = True) -> Any:
    """The one pipeline (``pipeline.Pipeline``) for this invocation, from the node parameters:
    detector_node's Perceiver, embedding_node's face embedder (with ``embed``)."""
    from ..pipeline import Pipeline

    detector = node_params(args, "detector_node")
    embedding = node_params(args, "embedding_node") if embed else None
    try:
        return Pipeline.from_params(detector, embedding, face_embedder=kind, still=still,
                                    pad_retry=args.pad_retry)
    except ImportError as exc:
        raise CliError(f"a model backend is not installed ({exc}); install the package "
                       "extras, e.g. pip install -e '.[mtcnn,dlib]'") from exc
    except FileNotFoundError as exc:
        raise CliError(f"{exc} (see models/README.md)") from exc
    except ValueError as exc:
        raise CliError(f"bad parameters: {exc}") from exc


def engine_config(args: argparse.Namespace, embedder_id: str) -> Any:
    """EngineConfig from identity_node parameters, for the embedder actually built."""
    from ..identity import EngineConfig

    params = node_params(args, "identity_node")
    if params.get("embedder") != embedder_id:
        warn(f"identity_node embedder is {params.get('embedder')!r} but the configured face "
             f"embedder makes {embedder_id!r}; using {embedder_id!r} (set identity_node "
             "embedder to match)")
        params["embedder"] = embedder_id
    try:
        return EngineConfig.from_params(params)
    except ValueError as exc:
        raise CliError(f"identity_node parameters: {exc}") from exc


def memory_params(args: argparse.Namespace) -> dict[str, Any]:
    """memory_node's parameters with ``--db`` (or $VISIO_MEMORIA_DB): a path or a URL."""
    from ..memory import is_url

    params = node_params(args, "memory_node")
    db = args.db or os.environ.get(DB_ENV, "")
    if db and is_url(db):
        params["db_path"] = db  # postgresql://..., sqlite:///...; an unknown scheme is refused
    elif db:
        path = Path(db).expanduser().absolute()
        params["data_dir"], params["db_path"] = str(path.parent), path.name
    return params


def open_memory(args: argparse.Namespace, *, read_only: bool, must_exist: bool = True) -> Any:
    """Open the memory store (SQLite or PostgreSQL); refuses a missing SQLite file unless
    ``must_exist`` is False, and a URL it does not know always."""
    from ..memory import location_of, open_store

    params = memory_params(args)
    where = location_of(params)
    if where.path is not None and must_exist and not where.path.is_file():
        raise CliError(f"no memory store at {where.path} (enroll someone first, or pass "
                       "--db PATH)")
    params["read_only"] = read_only
    return open_store(params)


def engine_from_store(args: argparse.Namespace, store: Any, embedder_id: str) -> tuple[Any, Any]:
    """An IdentityEngine loaded with the store's gallery for ``embedder_id``."""
    from ..identity import GalleryEntry, IdentityEngine, NegativeEntry

    engine = IdentityEngine(engine_config(args, embedder_id))
    gallery = store.gallery(embedder_id)
    entries = [GalleryEntry(e.embedding_id, e.person_id, e.name, e.vector, embedder_id)
               for e in gallery.entries]
    negatives = [NegativeEntry(n.person_id, n.vector, embedder_id) for n in gallery.negatives]
    report = engine.load_gallery(entries, negatives, gallery.opted_out)
    return engine, report


def read_inputs(args: argparse.Namespace, desc: str,
                entries: list[dict[str, Any]]) -> Iterator[Any]:
    """Yield an ``InputItem`` for each readable image or video frame of ``args.images``.

    Every item gets an entry appended to ``entries`` (width/height filled when it loads); an
    unreadable one gets its ``error`` set and one line on stderr, and is not yielded.
    """
    from ..pipeline import iter_inputs

    every = getattr(args, "every", 1)
    if every < 1:
        raise UsageError(f"--every must be >= 1, got {every}")
    for item in progress(args, iter_inputs(args.images, every), desc=desc):
        entry: dict[str, Any] = {"path": item.path, "width": None, "height": None, "faces": [],
                                 "error": item.error, "frame": item.frame,
                                 "time": num(item.time, 3) if item.time is not None else None}
        entries.append(entry)
        if item.error is not None:
            error_line(item.error)
            continue
        entry.update(height=int(item.image.shape[0]), width=int(item.image.shape[1]))
        yield item, entry


def follow(pipe: Any, item: Any, state: dict[str, Any]) -> None:
    """Put ``pipe`` in the mode of ``item``: a new video starts afresh, photos are stills."""
    video = item.video
    if video != state.get("video") or (video is not None and item.frame <= state["frame"]):
        pipe.start(still=video is None)
    state.update(video=video, frame=item.frame if video is not None else -1)


def item_label(item: Any) -> str:
    return item.path if item.frame is None else f"{item.path} frame {item.frame}"
