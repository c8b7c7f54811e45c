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

Inputs of ``detect`` and ``identify``: image files, folders (their image files, sorted, not
recursive) and video files (``.mp4``, ``.avi``, ``.mov``, ``.mkv``, ...: every ``--every``-th
frame). Photos and the images of a folder are independent images; a video runs as a video:
faces tracked across its frames and identity voted per track, as identity_node does (a face
becomes KNOWN after ``min_votes`` embeddings, or one at the instant threshold).

Exit codes: 0 success; 1 runtime failure (unreadable input, a refusal of the memory store such
as an unknown id or an empty name, missing weights, any image of a batch that failed); 2 usage
error (bad arguments, a ``--config`` file that does not exist). Errors are one line on stderr
starting with ``visio-memoria: error:``; no traceback unless ``--debug``. Progress bars go to
stderr and only when stderr is a terminal (``--quiet`` turns them off).

Enrolment is all-or-nothing: every image is read, detected and aligned first; if any image is
unreadable or has no face, each failure is reported and nothing is written. If the store fails
while writing, a person created by this command is removed again (an existing person keeps the
faces added before the failure, and the error says how many).

Export (``db export OUT_DIR``) writes ``manifest.json``, ``persons.json``, ``visits.json``,
``unknowns.json`` and PNG crops under ``crops/``. Persons marked never-remember are left out
completely (no name, no visits, no faces; only their count is in the manifest), and embedding
vectors are never exported (biometric templates; re-create them from the crops). The folder
must be new or empty; it is created 0700 and every file 0600.

JSON output (``--json``; UTF-8 on stdout, stable; new keys may be added, none removed or
renamed without changing ``schema``). Units: pixels for boxes/landmarks (x right, y down, in
the input image), cosine similarity in [-1, 1], times in seconds since the Unix epoch (null =
never), rates and accuracies as fractions in [0, 1] (null when undefined). NaN never appears.

``face`` object (detect, identify)::

    {"bbox": [x1, y1, x2, y2], "landmarks": [[x, y] x 5] | null, "score": float [0-1],
     "quality": float [0-1]}
    landmarks order: left eye, right eye, nose tip, left mouth corner, right mouth corner.

``detect`` -> ``{"schema": "visio-memoria.detect/1", "images": [{"path": str,
"width": int|null, "height": int|null, "faces": [face...], "error": str|null,
"frame": int|null, "time": float|null}]}``; faces left to right; ``frame``/``time`` (index,
seconds) for the frames of a video, null for photos; a video's faces carry ``track_id``
(-1 until the tracker confirms the face).

``identify`` -> ``{"schema": "visio-memoria.identify/1", "embedder": str, "thresholds":
{"accept": float, "reject": float}, "gallery": {"persons": int, "vectors": int}, "images":
[{"path", "width", "height", "error", "faces": [face + {"status": "KNOWN"|"UNCERTAIN"|"UNKNOWN",
"person_id": int|null, "name": str|null, "similarity": float|null, "suppressed": bool}]}]}``.
``status`` is the identity engine's decision (identity_node's): on a photo from the face's
own embedding, in a video from its track's votes (a video frame's face without a new embedding
keeps its track's decision). ``person_id``/``name`` name the person for KNOWN and the best
candidate of this embedding for UNCERTAIN, null for UNKNOWN; ``similarity`` is the decision's
similarity (null: no gallery or no embedding yet); ``suppressed`` is true when the best match
asked never to be remembered (then no name).

``enroll`` -> ``{"schema": "visio-memoria.enroll/1", "person_id": int, "name": str,
"created": bool, "embedder": str, "faces": [{"path": str, "embedding_id": int,
"bbox": [...], "quality": float, "faces_in_image": int}]}``.

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

``eval pairs`` -> ``{"schema": "visio-memoria.eval-pairs/1", "embedder", "thresholds",
"pairs": int, "evaluated": int, "skipped": [{"line", "reason"}], "genuine": int,
"impostor": int, "threshold": float, "accuracy": float|null, "true_accept_rate": float|null,
"false_accept_rate": float|null, "best_threshold": float|null, "best_accuracy": float|null,
"roc_auc": float|null, "calibration": calibration|null}``; a pair is predicted "same" when its
similarity >= the threshold (the configured accept threshold).

``calibration`` (``--target-far``) -> ``{"target_far": float, "reject_frr": float,
"margin_frr": float|null, "impostor_scores": int, "genuine_scores": int, "far_resolution":
float, "accept_threshold": float, "reject_threshold": float, "margin": float, "achieved":
{"false_accept_rate", "false_reject_rate", "genuine_unknown_rate"}, "note": str|null,
"written_to": str|null, "identities": [str] (eval identify)}``, computed by
``identity.calibration`` (the rules are in its docstring). eval identify: genuine scores are
the calibration identities' own-person scores, impostor scores each probe's best wrong
person's (a false accept needs it to clear the margin too); eval pairs: the same-person and
different-person pairs, and no margin (pairs have no runner-up person).

``db list`` -> ``{"schema": "visio-memoria.db-list/1", "db": str, "persons": [{"person_id",
"name", "created", "never_remember", "num_embeddings", "num_visits", "first_seen",
"last_seen"}], "embedders": {id: dim}, "unknown_faces": int, "unknown_clusters": int}``.

``db migrate --json`` -> ``{"schema": "visio-memoria.db-migrate/1", "from": str, "to": str
(the URL, never a password), "ok": bool, "source"/"written"/"verified": {table: rows}}``
(tables persons, embedders, embeddings, unknowns, visits, negative_links, and crops).

``export --json`` -> ``{"schema": "visio-memoria.export/1", "exported": [{"kind", "onnx":
str, "sidecar": str|null, "engine": str|null, "check": {"max_abs_diff": float, "min_cosine":
float} (the ONNX output against torch's under onnxruntime on the CPU; {} for YOLO)}]}``.
Models come from the configured parameters: the dlib ResNet and DINOv3 from embedding_node's,
the YOLO face/person models from detector_node's ``face_model_path``/``person_model_path``.

``train-activity --json`` -> ``{"schema": "visio-memoria.train-activity/1", "out": str,
"report": TrainReport.to_dict()}`` (``activity.train.TrainReport``).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .config import NODE_PARAMS, load_node_params

PROG = "visio-memoria"
#: Environment variable naming the memory (a path or a URL) when --db is not given.
DB_ENV = "VISIO_MEMORIA_DB"
LOG = logging.getLogger("visio_memoria_ros.cli")
DEFAULT_REJECT_FRR = 0.01  # = identity.calibration.DEFAULT_REJECT_FRR (faiss-free import)
DEFAULT_MARGIN_FRR = 0.01  # = identity.calibration.DEFAULT_MARGIN_FRR


class CliError(Exception):
    """A failure to report as one line on stderr; ``code`` is the exit status."""

    code = 1


class UsageError(CliError):
    """The command line itself is wrong (exit status 2)."""

    code = 2


# ------------------------------------------------------------------------------ helpers
def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _error_line(message: str) -> None:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


def _num(value: Any, digits: int = 4) -> float | None:
    """A JSON-safe rounded float (None for None/NaN/inf)."""
    if value is None:
        return None
    v = float(value)
    return round(v, digits) if math.isfinite(v) else None


def _rate(n: int, d: int) -> float | None:
    return _num(n / d) if d else None


def _when(t: float) -> float | None:
    return _num(t, 3) if t else None


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False))


def _progress(args: argparse.Namespace, iterable: Iterable[Any] | None = None, *,
              total: int | None = None, desc: str = "", unit: str = "img") -> Any:
    """A tqdm bar on stderr (shown only on a terminal, never with --quiet)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                disable=True if args.quiet else None, dynamic_ncols=True)


def _params(args: argparse.Namespace, node: str) -> dict[str, Any]:
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


def _face_json(face: Any) -> dict[str, Any]:
    lm = None
    if face.landmarks is not None:
        lm = [[_num(x, 1), _num(y, 1)] for x, y in np.asarray(face.landmarks).tolist()]
    return {
        "bbox": [_num(v, 1) for v in np.asarray(face.bbox).tolist()],
        "landmarks": lm,
        "score": _num(face.score),
        "quality": _num(face.quality),
    }


def _left_to_right(faces: Sequence[Any]) -> list[Any]:
    return sorted(faces, key=lambda f: (float(f.bbox[0]), float(f.bbox[1])))


def _box_text(face: Any) -> str:
    x1, y1, x2, y2 = (round(float(v)) for v in face.bbox)
    return f"[{x1},{y1},{x2},{y2}]"


# ------------------------------------------------------------------------------ builders
def _pipeline(args: argparse.Namespace, *, embed: bool, kind: str | None = None,
              still: bool = True) -> Any:
    """The one pipeline (``pipeline.Pipeline``) for this invocation, from the node parameters:
    detector_node's Perceiver, embedding_node's face embedder (with ``embed``)."""
    from .pipeline import Pipeline

    detector = _params(args, "detector_node")
    embedding = _params(args, "embedding_node") if embed else None
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


def _engine_config(args: argparse.Namespace, embedder_id: str) -> Any:
    """EngineConfig from identity_node parameters, for the embedder actually built."""
    from .identity import EngineConfig

    params = _params(args, "identity_node")
    if params.get("embedder") != embedder_id:
        _warn(f"identity_node embedder is {params.get('embedder')!r} but the configured face "
              f"embedder makes {embedder_id!r}; using {embedder_id!r} (set identity_node "
              "embedder to match)")
        params["embedder"] = embedder_id
    try:
        return EngineConfig.from_params(params)
    except ValueError as exc:
        raise CliError(f"identity_node parameters: {exc}") from exc


def _memory_params(args: argparse.Namespace) -> dict[str, Any]:
    """memory_node's parameters with ``--db`` (or $VISIO_MEMORIA_DB): a path or a URL."""
    from .memory import is_url

    params = _params(args, "memory_node")
    db = args.db or os.environ.get(DB_ENV, "")
    if db and is_url(db):
        params["db_path"] = db  # postgresql://..., sqlite:///...; an unknown scheme is refused
    elif db:
        path = Path(db).expanduser().absolute()
        params["data_dir"], params["db_path"] = str(path.parent), path.name
    return params


def _open_store(args: argparse.Namespace, *, read_only: bool, must_exist: bool = True) -> Any:
    """Open the memory store (SQLite or PostgreSQL); refuses a missing SQLite file unless
    ``must_exist`` is False, and a URL it does not know always."""
    from .memory import location_of, open_store

    params = _memory_params(args)
    where = location_of(params)
    if where.path is not None and must_exist and not where.path.is_file():
        raise CliError(f"no memory store at {where.path} (enroll someone first, or pass "
                       "--db PATH)")
    params["read_only"] = read_only
    return open_store(params)


def _engine_from_store(args: argparse.Namespace, store: Any, embedder_id: str) -> tuple[Any, Any]:
    """An IdentityEngine loaded with the store's gallery for ``embedder_id``."""
    from .identity import GalleryEntry, IdentityEngine, NegativeEntry

    engine = IdentityEngine(_engine_config(args, embedder_id))
    gallery = store.gallery(embedder_id)
    entries = [GalleryEntry(e.embedding_id, e.person_id, e.name, e.vector, embedder_id)
               for e in gallery.entries]
    negatives = [NegativeEntry(n.person_id, n.vector, embedder_id) for n in gallery.negatives]
    report = engine.load_gallery(entries, negatives, gallery.opted_out)
    return engine, report


def _inputs(args: argparse.Namespace, desc: str, entries: list[dict[str, Any]]) -> Iterator[Any]:
    """Yield an ``InputItem`` for each readable image or video frame of ``args.images``.

    Every item gets an entry appended to ``entries`` (width/height filled when it loads); an
    unreadable one gets its ``error`` set and one line on stderr, and is not yielded.
    """
    from .pipeline import iter_inputs

    every = getattr(args, "every", 1)
    if every < 1:
        raise UsageError(f"--every must be >= 1, got {every}")
    for item in _progress(args, iter_inputs(args.images, every), desc=desc):
        entry: dict[str, Any] = {"path": item.path, "width": None, "height": None, "faces": [],
                                 "error": item.error, "frame": item.frame,
                                 "time": _num(item.time, 3) if item.time is not None else None}
        entries.append(entry)
        if item.error is not None:
            _error_line(item.error)
            continue
        entry.update(height=int(item.image.shape[0]), width=int(item.image.shape[1]))
        yield item, entry


def _follow(pipe: Any, item: Any, state: dict[str, Any]) -> None:
    """Put ``pipe`` in the mode of ``item``: a new video starts afresh, photos are stills."""
    video = item.video
    if video != state.get("video") or (video is not None and item.frame <= state["frame"]):
        pipe.start(still=video is None)
    state.update(video=video, frame=item.frame if video is not None else -1)


def _item_label(item: Any) -> str:
    return item.path if item.frame is None else f"{item.path} frame {item.frame}"


# ------------------------------------------------------------------------------ detect
def cmd_detect(args: argparse.Namespace) -> int:
    """Faces per image (or per video frame)."""

    pipe = _pipeline(args, embed=False)
    images: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    for item, entry in _inputs(args, "detecting", images):
        _follow(pipe, item, state)
        faces = _left_to_right(pipe.detect(item.image, item.time or 0.0))
        entry.update(faces=[{**_face_json(f), **({"track_id": int(f.track_id)}
                                                 if item.video else {})} for f in faces])
        if not args.json:
            print(f"{_item_label(item)}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
            for i, f in enumerate(faces):
                print(f"  face {i}: box {_box_text(f)} score {f.score:.3f} "
                      f"quality {f.quality:.2f}")
    if args.json:
        _print_json({"schema": "visio-memoria.detect/1", "images": images})
    return 1 if any(e["error"] for e in images) else 0


# ------------------------------------------------------------------------------ enroll
def cmd_enroll(args: argparse.Namespace) -> int:
    """Add the largest face of each image to a person (all-or-nothing)."""
    from .memory import OptedOutError, validate_name
    from .pipeline import ImageError, largest_face, load_image

    name = validate_name(args.name)
    pipe = _pipeline(args, embed=True)
    prepared, problems = [], []
    for path in _progress(args, args.images, desc="checking images"):
        try:
            image = load_image(path)
        except ImageError as exc:
            problems.append(str(exc))
            continue
        faces = pipe.detect(image)
        face = largest_face(faces)
        if face is None:
            problems.append(f"{path}: no face found")
        elif face.crop is None:
            problems.append(f"{path}: the face's landmarks cannot be aligned")
        else:
            if len(faces) > 1:
                _warn(f"{path}: {len(faces)} faces; enrolling the largest {_box_text(face)}")
            prepared.append((path, face, len(faces)))
    if problems:
        for p in problems:
            _error_line(p)
        raise CliError(f"nothing enrolled: {len(problems)} of {len(args.images)} images are "
                       "unusable (enrolment is all-or-nothing)")
    pipe.embed([f for _, f, _ in prepared])

    store = _open_store(args, read_only=False, must_exist=False)
    with store:
        person = store.find_person(name)
        created = person is None
        if person is not None and person.never_remember:
            raise OptedOutError(f"person {person.person_id} ({person.name}) asked never to be "
                                "remembered; nothing stored")
        _warn_lookalikes(args, store, prepared, person)
        if person is None:
            person = store.create_person(name)
        pid = person.person_id
        added: list[tuple[str, Any, int, int]] = []
        try:
            for path, face, n_faces in prepared:
                rec = store.add_embedding(
                    pid, face.embedding, face.embedder, quality=float(face.quality),
                    crop=face.crop, source=f"cli enroll {Path(path).name}"[:256])
                added.append((path, face, n_faces, rec.embedding_id))
        except Exception as exc:
            if created:
                try:
                    store.forget_person(pid)
                    undo = "the new person was removed again; nothing kept"
                except Exception as undo_exc:  # report both; the original error wins
                    undo = f"removing the new person {pid} failed too ({undo_exc})"
            else:
                undo = f"{len(added)} of {len(prepared)} faces were added to person {pid}"
            raise CliError(f"enrolment failed: {exc}; {undo}") from exc
    result = {
        "schema": "visio-memoria.enroll/1", "person_id": pid, "name": person.name,
        "created": created, "embedder": pipe.embedder_id,
        "faces": [{"path": p, "embedding_id": eid, "bbox": _face_json(f)["bbox"],
                   "quality": _num(f.quality), "faces_in_image": n} for p, f, n, eid in added],
    }
    if args.json:
        _print_json(result)
    else:
        state = "new person" if created else "existing person"
        print(f"enrolled {len(added)} face{'s' if len(added) != 1 else ''} for {person.name} "
              f"({state} {pid}, embedder {pipe.embedder_id})")
    return 0


def _warn_lookalikes(args: argparse.Namespace, store: Any, prepared: Sequence[Any],
                     person: Any) -> None:
    """Warn when a face to enroll is already KNOWN as somebody else (a mix-up, not refused)."""
    embedder_id = prepared[0][1].embedder
    if not store.gallery(embedder_id).entries:
        return
    engine, _ = _engine_from_store(args, store, embedder_id)
    names = engine.names()
    matches = engine.matcher.match(np.stack([f.embedding for _, f, _ in prepared]))
    for (path, _, _), m in zip(prepared, matches, strict=True):
        other = int(m.person_id)
        if m.status.name == "KNOWN" and (person is None or other != person.person_id):
            _warn(f"{path}: this face already looks like person {other} ({names.get(other)}, "
                  f"similarity {m.similarity:.3f}); enrolling it anyway")


# ------------------------------------------------------------------------------ identify
def cmd_identify(args: argparse.Namespace) -> int:
    """Every face of each image (or video frame) against the memory's gallery."""

    pipe = _pipeline(args, embed=True)
    store = _open_store(args, read_only=True)
    with store:
        engine, report = _engine_from_store(args, store, pipe.embedder_id)
    pipe.engine = engine
    if report.num_vectors == 0:
        _warn(f"the memory holds no faces made by {pipe.embedder_id}; every face is UNKNOWN "
              "(enroll someone, or run `db reembed` after changing the embedder)")
    names = engine.names()
    th = engine.thresholds
    images: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    for item, entry in _inputs(args, "identifying", images):
        _follow(pipe, item, state)
        stamp = item.time or 0.0
        faces = _left_to_right(pipe.process(item.image, stamp))
        decisions = pipe.identify(faces, stamp)
        embedded = [f for f in faces if f.embedding is not None]
        matches = engine.matcher.match(np.stack([f.embedding for f in embedded])) \
            if embedded else []
        by_face = {id(f): m for f, m in zip(embedded, matches, strict=True)}
        out_faces = []
        for f, d in zip(faces, decisions, strict=True):
            item_json = _face_json(f)
            m = by_face.get(id(f))
            status = d.status.name
            suppressed = bool(m.suppressed) if m is not None else False
            pid = int(d.person_id) if status == "KNOWN" else None
            if status == "UNCERTAIN" and m is not None and m.person_id >= 0 and not suppressed:
                pid = int(m.person_id)  # the candidate of this embedding
            sim = _num(d.similarity) if d.similarity == d.similarity else None
            item_json.update(status=status, person_id=pid,
                             name=names.get(pid) if pid is not None else None,
                             similarity=sim, suppressed=suppressed)
            if item.video:
                item_json["track_id"] = int(f.track_id)
            out_faces.append(item_json)
        entry.update(faces=out_faces)
        if not args.json:
            print(f"{_item_label(item)}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
            for f, fj in zip(faces, out_faces, strict=True):
                who = fj["name"] or ("(never remember)" if fj["suppressed"] else "unknown")
                sim_text = "-" if fj["similarity"] is None else f"{fj['similarity']:.3f}"
                print(f"  {_box_text(f)} {who} {fj['status']} similarity {sim_text}")
    if args.json:
        _print_json({
            "schema": "visio-memoria.identify/1", "embedder": pipe.embedder_id,
            "thresholds": {"accept": th.accept, "reject": th.reject},
            "gallery": {"persons": report.num_persons, "vectors": report.num_vectors},
            "images": images,
        })
    return 1 if any(e["error"] for e in images) else 0


# ------------------------------------------------------------------------------ evaluation
def recommend_thresholds(genuine: Sequence[float], impostor: Sequence[float], target_far: float,
                         reject_frr: float = DEFAULT_REJECT_FRR, **kw: Any) -> dict[str, Any]:
    """``identity.calibration.recommend_thresholds`` (kept here for callers of the CLI)."""
    from .identity.calibration import recommend_thresholds as recommend

    return recommend(genuine, impostor, target_far, reject_frr, **kw)


def write_thresholds_yaml(path: str | Path, accept: float, reject: float,
                          margin: float | None = None) -> None:
    """``identity.calibration.write_thresholds_yaml``, its refusals as CliError."""
    from .identity.calibration import CalibrationError
    from .identity.calibration import write_thresholds_yaml as write

    try:
        write(path, accept, reject, margin)
    except CalibrationError as exc:
        raise CliError(str(exc)) from exc


def _write_calibration(args: argparse.Namespace, cal: dict[str, Any]) -> dict[str, Any]:
    """Write the recommended thresholds when --write-yaml was given."""
    if args.write_yaml:
        margin = cal["margin"] if cal.get("margin_frr") is not None else None
        write_thresholds_yaml(args.write_yaml, cal["accept_threshold"], cal["reject_threshold"],
                              margin)
        cal["written_to"] = str(args.write_yaml)
    return cal


def _check_eval_flags(args: argparse.Namespace) -> None:
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


def _embed_files(args: argparse.Namespace, pipe: Any, paths: Sequence[str],
                 desc: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """{path: embedding of its largest face} and {path: why it has none}."""
    from .pipeline import ImageError, largest_face, load_image

    vectors: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for path in _progress(args, paths, desc=desc):
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


def _identity_sets(args: argparse.Namespace) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(gallery {identity: paths}, probes {identity: paths}) from the folder arguments."""
    from .activity import list_image_folder

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
    from .identity.calibration import leave_one_identity_out, recommend_from_outcomes

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
    return _write_calibration(args, cal)


def cmd_eval_identify(args: argparse.Namespace) -> int:
    """Open-set identification on folder-per-identity data, enrolled in memory only.

    With --target-far the identities are split: thresholds are calibrated on some, and every
    reported figure comes from the others (held out)."""
    from dataclasses import replace

    from .identity.calibration import CalibrationError, enroll, score_probes, split_identities
    from .identity.metrics import dir_at_far, image_visits, open_set_rates, replay_visits

    _check_eval_flags(args)
    gallery, probes = _identity_sets(args)
    strangers = set(_names(args.strangers))
    pipe = _pipeline(args, embed=True)
    config = _engine_config(args, pipe.embedder_id)
    paths = [p for d in (gallery, probes) for ps in d.values() for p in ps]
    vectors, failed = _embed_files(args, pipe, list(dict.fromkeys(paths)), desc="embedding")
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
                        "similarity": _num(o.best_score), "margin": _num(o.gap),
                        "genuine_similarity": _num(o.own_score) if o.own_score is not None
                        else None,
                        "impostor_similarity": _num(o.wrong_score), "outcome": outcome})
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
        "top1_accuracy": _rate(known["top1_correct"], known["probes"]),
        "known": known, "strangers": stranger_counts,
        "false_accepts": false_accepts, "false_rejects": false_rejects,
        "false_accept_rate": _rate(false_accepts, n_probes),
        "false_reject_rate": _rate(false_rejects, known["probes"]),
        "unknown_rejection_rate": _rate(stranger_counts["rejected"], stranger_counts["probes"]),
        "open_set": {"at_thresholds": open_set_rates(outcomes, th).to_dict(),
                     "dir_at_far": [dir_at_far(outcomes, far, th.margin)
                                    for far in (0.01, 0.001)]},
        "visits": {**visit_report.to_dict(), "length": config.vote_window},
        "results": results, "calibration": calibration,
    }
    if args.json:
        _print_json(out)
    else:
        _print_identify_report(out)
    return 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.1f}%"


def _print_identify_report(out: Mapping[str, Any]) -> None:
    _print_calibration(out.get("calibration"))
    th, k, s = out["thresholds"], out["known"], out["strangers"]
    held = " (held out from calibration)" if out["calibration"] else ""
    print(f"embedder {out['embedder']}, accept >= {th['accept']:.4f}, margin >= "
          f"{th['margin']:.3f}, reject < {th['reject']:.4f}")
    print(f"test identities{held}: {', '.join(out['test_identities'])}")
    print(f"gallery: {out['gallery']['enrolled']} faces of {len(out['gallery']['identities'])} "
          f"identities; probes: {k['probes']} known, {s['probes']} strangers")
    for f in out["failed"]:
        _warn(f"skipped {f['path']}: {f['reason']}")
    print(f"top-1 accuracy: {_pct(out['top1_accuracy'])} ({k['top1_correct']}/{k['probes']})")
    print(f"known probes: {k['accepted_correct']} correct, {k['misidentified']} misidentified, "
          f"{k['uncertain']} uncertain, {k['rejected']} rejected")
    print(f"strangers: {s['rejected']} rejected, {s['uncertain']} uncertain, "
          f"{s['false_accepts']} falsely accepted")
    print(f"false accepts: {out['false_accepts']} ({_pct(out['false_accept_rate'])}), false "
          f"rejects: {out['false_rejects']} ({_pct(out['false_reject_rate'])}), unknown "
          f"rejection rate: {_pct(out['unknown_rejection_rate'])}")
    for row in out["open_set"]["dir_at_far"]:
        if row["threshold"] is None:
            continue
        note = "" if row["resolvable"] else (f" (not measurable with {row['strangers']} "
                                             "strangers)")
        print(f"DIR at FAR {row['far']:g}: {_pct(row['dir'])} at threshold "
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


def _print_calibration(cal: Mapping[str, Any] | None) -> None:
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
        _warn(cal["note"])
    if cal["written_to"]:
        print(f"wrote accept_threshold, reject_threshold and accept_margin to "
              f"{cal['written_to']}")


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
    _check_eval_flags(args)
    rows = _read_pairs(args.pairs_csv, args.images)
    pipe = _pipeline(args, embed=True)
    th = _engine_config(args, pipe.embedder_id).thresholds
    paths = list(dict.fromkeys(p for _, a, b, _ in rows for p in (a, b)))
    vectors, failed = _embed_files(args, pipe, paths, desc="embedding")
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
        pred = s >= th.accept
        out["accuracy"] = _num(float(np.mean(pred == (y == 1))))
        out["true_accept_rate"] = _num(float(pred[y == 1].mean())) if (y == 1).any() else None
        out["false_accept_rate"] = _num(float(pred[y == 0].mean())) if (y == 0).any() else None
        candidates = np.unique(np.concatenate([s, [np.inf]]))
        accs = [float(np.mean((s >= t) == (y == 1))) for t in candidates]
        best = int(np.argmax(accs))
        out["best_accuracy"] = _num(accs[best])
        out["best_threshold"] = _num(candidates[best]) if np.isfinite(candidates[best]) else 1.0
        if 0 < y.sum() < y.size:
            from sklearn.metrics import roc_auc_score

            out["roc_auc"] = _num(float(roc_auc_score(y, s)))
        if args.target_far is not None:
            try:
                cal = recommend_thresholds(s[y == 1].tolist(), s[y == 0].tolist(),
                                           args.target_far, args.reject_frr)
            except ValueError as exc:
                raise CliError(f"cannot calibrate: {exc}") from exc
            cal["margin_frr"] = None  # pairs have no runner-up person: no margin
            out["calibration"] = _write_calibration(args, cal)
    if args.json:
        _print_json(out)
    else:
        for sk in skipped:
            _warn(f"pair on line {sk['line']} skipped: {sk['reason']}")
        print(f"embedder {out['embedder']}: {out['evaluated']} of {out['pairs']} pairs "
              f"({out['genuine']} same, {out['impostor']} different)")
        print(f"accuracy at threshold {th.accept:.4f}: {_pct(out['accuracy'])} (TAR "
              f"{_pct(out['true_accept_rate'])}, FAR {_pct(out['false_accept_rate'])})")
        bt, auc = out["best_threshold"], out["roc_auc"]
        bt_text = "n/a" if bt is None else f"{bt:.4f}"
        auc_text = "n/a" if auc is None else f"{auc:.4f}"
        print(f"best accuracy: {_pct(out['best_accuracy'])} at threshold {bt_text}; "
              f"ROC AUC {auc_text}")
        _print_calibration(out["calibration"])
    if not sims:
        raise CliError("no pair could be evaluated (every pair has an image without a face)")
    return 0


# ------------------------------------------------------------------------------ db
def cmd_db_list(args: argparse.Namespace) -> int:
    """Persons in the memory."""
    store = _open_store(args, read_only=True)
    with store:
        persons = store.list_persons()
        stats = store.stats()
        embedders = store.embedders()
    if args.json:
        _print_json({
            "schema": "visio-memoria.db-list/1", "db": store.where,
            "persons": [{"person_id": p.person_id, "name": p.name, "created": _when(p.created),
                         "never_remember": p.never_remember,
                         "num_embeddings": p.num_embeddings, "num_visits": p.num_visits,
                         "first_seen": _when(p.first_seen), "last_seen": _when(p.last_seen)}
                        for p in persons],
            "embedders": embedders, "unknown_faces": stats.num_unknowns,
            "unknown_clusters": stats.num_clusters,
        })
        return 0
    print(f"{store.where}: {len(persons)} person{'s' if len(persons) != 1 else ''}, "
          f"{stats.num_unknowns} unknown faces in {stats.num_clusters} clusters")
    if persons:
        print(f"{'id':>5}  {'name':<24} {'faces':>5} {'visits':>6}  last seen")
    for p in persons:
        last = (datetime.fromtimestamp(p.last_seen).strftime("%Y-%m-%d %H:%M")
                if p.last_seen else "never")
        flag = "  [never remember]" if p.never_remember else ""
        print(f"{p.person_id:>5}  {p.name:<24} {p.num_embeddings:>5} {p.num_visits:>6}  "
              f"{last}{flag}")
    return 0


def cmd_db_rename(args: argparse.Namespace) -> int:
    """Rename a person."""
    with _open_store(args, read_only=False) as store:
        old = store.get_person(args.id).name
        rec = store.rename_person(args.id, args.name)
    print(f"renamed person {rec.person_id} from {old} to {rec.name}")
    return 0


def cmd_db_merge(args: argparse.Namespace) -> int:
    """Merge person SRC into DST."""
    with _open_store(args, read_only=False) as store:
        src, dst = store.get_person(args.src), store.get_person(args.dst)
        moved = store.merge_persons(args.src, args.dst)
    print(f"merged person {src.person_id} ({src.name}) into person {dst.person_id} "
          f"({dst.name}): {moved} faces moved")
    return 0


def cmd_db_forget(args: argparse.Namespace) -> int:
    """Delete every trace of a person."""
    with _open_store(args, read_only=False) as store:
        person = store.get_person(args.id)
        if not args.yes:
            if not sys.stdin.isatty():
                raise CliError(f"refusing to forget person {person.person_id} ({person.name}) "
                               "without confirmation: add --yes")
            answer = input(f"Forget person {person.person_id} ({person.name}): "
                           f"{person.num_embeddings} faces, {person.num_visits} visits? "
                           "Type 'yes' to confirm: ")
            if answer.strip().lower() != "yes":
                raise CliError("not confirmed; nothing was deleted")
        store.forget_person(person.person_id)
    print(f"forgot person {person.person_id} ({person.name}): {person.num_embeddings} faces "
          f"and {person.num_visits} visits deleted")
    return 0


def cmd_db_forget_non_faces(args: argparse.Namespace) -> int:
    """Delete the 'not a face' examples (faces like them may be remembered again)."""
    with _open_store(args, read_only=False) as store:
        n = store.forget_non_faces(args.embedder or None)
    print(f"forgot {n} 'not a face' example{'' if n == 1 else 's'}")
    return 0


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_json(path: Path, obj: Any) -> None:
    _write_private(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise CliError(f"cannot encode {path} as PNG")
    _write_private(path, buf.tobytes())


def cmd_db_export(args: argparse.Namespace) -> int:
    """Persons, visits and unknown faces as JSON + PNG crops (never-remember persons left out)."""
    out = Path(args.out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CliError(f"{out} exists and is not an empty folder; choose a new one")
    with _open_store(args, read_only=True) as store:
        persons = store.list_persons()
        kept = [p for p in persons if not p.never_remember]
        excluded = {p.person_id for p in persons if p.never_remember}
        faces = {p.person_id: store.list_embeddings(p.person_id, with_crops=True) for p in kept}
        visits = [v for v in store.list_visits(limit=0) if v.person_id not in excluded]
        unknowns = store.list_unknowns(with_crops=True)
        clusters = store.list_clusters(min_size=1, max_samples=0)
        db_path = store.where
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out, 0o700)
    for sub in ("crops", "crops/persons", "crops/unknowns"):
        (out / sub).mkdir(mode=0o700)
    n_crops = 0
    person_rows = []
    for p in _progress(args, kept, desc="exporting persons", unit="person"):
        rows = []
        if faces[p.person_id]:
            (out / "crops" / "persons" / str(p.person_id)).mkdir(mode=0o700)
        for e in faces[p.person_id]:
            rel = None
            if e.crop is not None:
                rel = f"crops/persons/{p.person_id}/{e.embedding_id}.png"
                _write_png(out / rel, e.crop)
                n_crops += 1
            rows.append({"embedding_id": e.embedding_id, "embedder": e.embedder,
                         "quality": _num(e.quality), "created": _when(e.created),
                         "source": e.source, "crop": rel})
        person_rows.append({"person_id": p.person_id, "name": p.name,
                            "created": _when(p.created), "first_seen": _when(p.first_seen),
                            "last_seen": _when(p.last_seen), "num_visits": p.num_visits,
                            "faces": rows})
    unknown_rows = []
    for u in unknowns:
        rel = None
        if u.crop is not None:
            rel = f"crops/unknowns/{u.unknown_id}.png"
            _write_png(out / rel, u.crop)
            n_crops += 1
        unknown_rows.append({"unknown_id": u.unknown_id, "cluster_id": u.cluster_id,
                             "embedder": u.embedder, "quality": _num(u.quality),
                             "first_seen": _when(u.first_seen), "last_seen": _when(u.last_seen),
                             "crop": rel})
    _write_json(out / "persons.json", person_rows)
    _write_json(out / "visits.json", [
        {"visit_id": v.visit_id, "person_id": v.person_id, "name": v.name,
         "start": _when(v.start), "last_seen": _when(v.last_seen), "end": _when(v.end),
         "location": v.location, "robot_id": v.robot_id,
         "dominant_activity": v.dominant_activity, "activity_counts": v.activity_counts}
        for v in visits])
    _write_json(out / "unknowns.json", {
        "clusters": [{"cluster_id": c.cluster_id, "size": c.size,
                      "first_seen": _when(c.first_seen), "last_seen": _when(c.last_seen),
                      "embedder": c.embedder,
                      "unknown_ids": [u.unknown_id for u in unknowns
                                      if u.cluster_id == c.cluster_id]}
                     for c in clusters],
        "faces": unknown_rows})
    _write_json(out / "manifest.json", {
        "schema": "visio-memoria.export/1", "tool_version": __version__,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "db": db_path, "persons": len(kept), "excluded_never_remember": len(excluded),
        "faces": sum(len(v) for v in faces.values()), "visits": len(visits),
        "unknown_faces": len(unknowns), "unknown_clusters": len(clusters), "crops": n_crops,
        "vectors_included": False,
    })
    print(f"exported {len(kept)} persons, {len(visits)} visits, {len(unknowns)} unknown faces "
          f"and {n_crops} crops to {out}"
          + (f" ({len(excluded)} never-remember persons left out)" if excluded else ""))
    return 0


def cmd_db_reembed(args: argparse.Namespace) -> int:
    """Re-embed the stored crops with the configured (or given) face embedder."""
    from .embedding import build_face_embedder
    from .embedding.factory import tolerant_embed_fn

    params = _params(args, "embedding_node")
    kind = args.embedder or str(params["face_embedder"])
    with _open_store(args, read_only=False) as store:
        try:
            embedder = build_face_embedder(kind, **params)
        except ImportError as exc:
            raise CliError(f"the {kind} embedder is not installed ({exc})") from exc
        except FileNotFoundError as exc:
            raise CliError(f"{exc} (see models/README.md)") from exc
        todo = sum(1 for p in store.list_persons() for e in store.list_embeddings(p.person_id)
                   if e.embedder != embedder.id)
        todo += sum(1 for u in store.list_unknowns() if u.embedder != embedder.id)
        bar = _progress(args, total=todo, desc=f"re-embedding with {embedder.id}", unit="face")

        embed_fn = tolerant_embed_fn(embedder, on_batch=bar.update)

        try:
            report = store.reembed(embed_fn, embedder.id, batch_size=args.batch_size)
        finally:
            bar.close()
    total = report.num_embeddings + report.num_unknowns
    if total == 0 and not report.num_without_crop and not report.num_failed:
        print(f"nothing to re-embed: every stored face already carries {embedder.id}")
    else:
        print(f"re-embedded {report.num_embeddings} faces of persons and {report.num_unknowns} "
              f"unknown faces with {embedder.id}; {report.num_without_crop} without a stored "
              f"crop kept their old vectors; {report.num_failed} failed")
    ident = _params(args, "identity_node").get("embedder")
    if ident != embedder.id:
        _warn(f"identity_node embedder is {ident!r}: set it to {embedder.id!r} so the robot "
              "matches against the new vectors")
    return 1 if report.num_failed else 0


# ------------------------------------------------------------------------------ db migrate
# Copying a robot's SQLite memory into a fleet PostgreSQL memory; the work is
# memory.transfer.copy_memory, this is only its command line.
def cmd_db_migrate(args: argparse.Namespace) -> int:
    """Copy an SQLite memory into a PostgreSQL memory: ids kept, counts verified, re-runnable."""
    from .memory import PostgresStore, SQLiteStore, StoreOptions, StoreUnavailable, load_key
    from .memory import parse_location as parse
    from .memory.transfer import copy_memory

    params = _params(args, "memory_node")
    source, target = parse(args.source), parse(args.to)
    if source.path is None:
        raise CliError(f"--from must be an SQLite memory (a file path), got {source.shown}")
    if not source.path.is_file():
        raise CliError(f"no memory store at {source.path}")
    if target.engine != "postgresql":
        raise CliError(f"--to must be a postgresql:// URL, got {target.shown}")
    key = load_key(str(params.get("encryption_key_file", "") or ""),
                   str(params.get("encryption_key_env", "") or ""))
    password_file = args.password_file or str(params.get("db_password_file", "") or "")
    try:
        src = SQLiteStore(source.path, StoreOptions(read_only=True), key=key)
    except StoreUnavailable as exc:
        if exc.reason != "version":
            raise
        src = SQLiteStore(source.path, key=key)  # an older file: migrate its schema first
    with src, PostgresStore(target.url, key=key, password_file=password_file) as dst:
        total = sum(src.stats().__dict__[k] for k in ("num_persons", "num_embeddings",
                                                        "num_unknowns", "num_visits"))
        bar = _progress(args, total=total, desc="copying", unit="row")
        try:
            report = copy_memory(src, dst, progress=lambda _table, n: bar.update(n))
        finally:
            bar.close()
    if args.json:
        _print_json({"schema": "visio-memoria.db-migrate/1", "from": str(source.path),
                     "to": target.shown, "ok": report.ok, "source": report.source,
                     "written": report.written, "verified": report.verified})
    else:
        print(f"{'table':<16} {'source':>8} {'written':>8} {'in target':>10}")
        for table, n in report.source.items():
            print(f"{table:<16} {n:>8} {report.written.get(table, 0):>8} "
                  f"{report.verified.get(table, 0):>10}")
        print(f"copied {source.path} into {target.shown}: "
              + ("every row verified" if report.ok else "VERIFICATION FAILED"))
    return 0 if report.ok else 1


# ------------------------------------------------------------------------------ activity
def cmd_train_activity(args: argparse.Namespace) -> int:
    """Train the linear activity head on DINOv3 scene features of a folder-per-label set."""
    from .activity import list_image_folder, train_from_folder
    from .embedding import build_scene_embedder

    if args.folds < 2:
        raise UsageError(f"--folds must be >= 2, got {args.folds}")
    if not (math.isfinite(args.c) and args.c > 0):
        raise UsageError(f"--c must be > 0, got {args.c}")
    try:
        total = sum(len(v) for v in list_image_folder(args.dir).values())
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    params = _params(args, "embedding_node")
    try:
        scene = build_scene_embedder("dinov3", **params)
    except FileNotFoundError as exc:
        raise CliError(f"DINOv3 weights not found: {exc} (train-activity needs the DINOv3 "
                       "scene embedder; models/README.md explains how to get it)") from exc
    except ImportError as exc:
        raise CliError(f"DINOv3 needs torch and transformers ({exc}); "
                       "pip install -e '.[dinov3]'") from exc
    bar = _progress(args, total=total, desc=f"embedding with {scene.scene_id}")

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
        _print_json({"schema": "visio-memoria.train-activity/1", "out": str(saved),
                     "report": report.to_dict()})
    else:
        for f in report.skipped_files:
            _warn(f"unreadable image skipped: {f}")
        print(report.summary())
        print(f"cross-validated accuracy {report.cv_accuracy:.3f}; saved the head "
              f"({', '.join(head.labels)}; {head.embedder_id}) to {saved}")
        print(f"use it with activity_node head_path: {saved}")
    return 0


# ------------------------------------------------------------------------------ export
def cmd_export(args: argparse.Namespace) -> int:
    """Write a model as ONNX (and a TensorRT engine) for GPU robots."""
    from . import export

    out = Path(args.out)
    try:
        if args.what == "face-embedder":
            params = _params(args, "embedding_node")
            path = str(params.get("dlib_recognition_model_path") or "") or None
            result = export.export_face_embedder(out, recognition_model_path=path)
        elif args.what == "dinov3":
            from .embedding import build_dinov3

            params = _params(args, "embedding_node")
            params["precision"] = "fp32"
            result = export.export_dinov3(build_dinov3(**params), out)
        else:
            params = _params(args, "detector_node")
            key, task = (("face_model_path", "pose") if args.what == "yolo-face"
                         else ("person_model_path", "detect"))
            result = export.export_yolo(params[key], out, task=task, imgsz=args.imgsz,
                                        half=args.precision == "fp16", tensorrt=args.tensorrt,
                                        device=params.get("device", "cpu"))
        if args.tensorrt and result.engine is None:
            result.engine = export.build_tensorrt_engine(result.onnx,
                                                         fp16=args.precision == "fp16")
    except ImportError as exc:
        raise CliError(str(exc)) from exc
    except FileNotFoundError as exc:
        raise CliError(f"{exc} (see models/README.md)") from exc
    if args.json:
        _print_json({"schema": "visio-memoria.export/1", "exported": [result.to_dict()]})
    else:
        check = result.check
        compared = (f"; onnxruntime vs torch: max |diff| {check['max_abs_diff']:.2e}, min "
                    f"cosine {check['min_cosine']:.7f}" if check else "")
        print(f"wrote {result.onnx}{compared}")
        if result.engine:
            print(f"wrote {result.engine}")
    return 0


# ------------------------------------------------------------------------------ parser
def _common(*, defaults: bool) -> argparse.ArgumentParser:
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


def _calibration_args(p: argparse.ArgumentParser) -> Any:
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


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``visio-memoria``."""
    common = _common(defaults=False)
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[_common(defaults=True)],
        description="See people, remember them and greet them by name: the algorithms of the "
                    "visio_memoria ROS nodes on image files and the memory store.",
        epilog="exit codes: 0 ok, 1 runtime failure, 2 usage error")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(parent: Any, name: str, func: Callable[[argparse.Namespace], int], help_: str,
            json_flag: bool = True) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    every = ("with a video: process every N-th frame (default 1: every frame); the frames in "
             "between are skipped, not decoded")
    p = add(sub, "detect", cmd_detect, "faces per image: box, 5 landmarks, score, quality")
    p.add_argument("images", nargs="+", metavar="INPUT",
                   help="image files, folders of images, video files")
    p.add_argument("--every", type=int, default=1, metavar="N", help=every)

    p = add(sub, "enroll", cmd_enroll, "add the largest face of each image to person NAME "
            "(created if new); all-or-nothing")
    p.add_argument("name", metavar="NAME")
    p.add_argument("images", nargs="+", metavar="IMG")

    p = add(sub, "identify", cmd_identify, "name, similarity and KNOWN/UNCERTAIN/UNKNOWN of "
            "every face, against the memory")
    p.add_argument("images", nargs="+", metavar="INPUT",
                   help="image files, folders of images, video files")
    p.add_argument("--every", type=int, default=1, metavar="N", help=every)

    ev = sub.add_parser("eval", help="accuracy on your own folder data (nothing is stored)",
                        description="accuracy on your own folder data (nothing is stored)")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    p = add(ev_sub, "identify", cmd_eval_identify,
            "open-set identification: enroll GALLERY_DIR (folder per identity) in memory, "
            "probe with PROBE_DIR (or with the rest of GALLERY_DIR after --split N)")
    p.add_argument("gallery_dir", metavar="GALLERY_DIR")
    p.add_argument("probe_dir", metavar="PROBE_DIR", nargs="?")
    p.add_argument("--split", type=int, metavar="N",
                   help="without PROBE_DIR: enroll the first N images (sorted by name) of each "
                        "identity, probe with the rest")
    p.add_argument("--strangers", metavar="NAME[,NAME]",
                   help="identities never enrolled: all their images are stranger probes")
    g = _calibration_args(p)
    g.add_argument("--calibrate-on", metavar="NAME[,NAME]",
                   help="with --target-far: the identities the thresholds are calibrated on "
                        "(each in turn a stranger to the others); every reported figure comes "
                        "from the other identities. Default: half of the non-stranger "
                        "identities, spread over the sorted names")
    g.add_argument("--margin-frr", type=float, default=DEFAULT_MARGIN_FRR, metavar="RATE",
                   help="recommended accept_margin: at most this fraction of the calibration "
                        "identities' genuine probes fall below it (default "
                        f"{DEFAULT_MARGIN_FRR})")
    p = add(ev_sub, "pairs", cmd_eval_pairs,
            "verification of image pairs from a CSV with columns a,b,same (same in {0,1})")
    p.add_argument("pairs_csv", metavar="PAIRS.csv")
    p.add_argument("--images", required=True, metavar="DIR",
                   help="folder the CSV's image paths are relative to")
    _calibration_args(p)

    db = sub.add_parser("db", help="list and manage the persons in the memory",
                        description="list and manage the persons in the memory")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    add(db_sub, "list", cmd_db_list, "persons with face and visit counts")
    p = add(db_sub, "rename", cmd_db_rename, "rename person ID", json_flag=False)
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("name", metavar="NAME")
    p = add(db_sub, "merge", cmd_db_merge, "move everything of person SRC to DST and delete SRC",
            json_flag=False)
    p.add_argument("src", type=int, metavar="SRC")
    p.add_argument("dst", type=int, metavar="DST")
    p = add(db_sub, "forget", cmd_db_forget, "delete every trace of person ID (faces, crops, "
            "visits)", json_flag=False)
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = add(db_sub, "forget-non-faces", cmd_db_forget_non_faces, "delete the embeddings of "
            "crops rejected as 'not a face' (faces like them may be remembered again)",
            json_flag=False)
    p.add_argument("--embedder", default="", metavar="ID",
                   help="only the examples of this embedder id (default: all)")
    p = add(db_sub, "export", cmd_db_export, "write persons, visits and unknown faces as JSON "
            "plus PNG crops (never-remember persons and vectors are left out)", json_flag=False)
    p.add_argument("out_dir", metavar="OUT_DIR")
    p = add(db_sub, "reembed", cmd_db_reembed, "re-embed the stored crops with the configured "
            "face embedder (after changing it)", json_flag=False)
    p.add_argument("--embedder", choices=("dlib", "dinov3", "onnx"), metavar="KIND",
                   help="face embedder kind (dlib, dinov3, onnx); default: embedding_node "
                        "face_embedder")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="crops per transaction (default 32)")
    p = add(db_sub, "migrate", cmd_db_migrate, "copy an SQLite memory into a PostgreSQL "
            "memory (persons, faces, crops, visits, unknowns; ids kept, counts verified, safe "
            "to re-run)")
    p.add_argument("--from", dest="source", required=True, metavar="PATH",
                   help="the SQLite memory file")
    p.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://user@host:port/dbname (password: PGPASSWORD, ~/.pgpass "
                        "or --password-file)")
    p.add_argument("--password-file", default="", metavar="FILE",
                   help="file holding the PostgreSQL password (default: memory_node "
                        "db_password_file)")

    p = add(sub, "train-activity", cmd_train_activity,
            "train the activity head: DIR/<label>/*.jpg -> DINOv3 scene features -> "
            "cross-validated logistic regression -> .npz")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--out", default="models/activity_head.npz", metavar="PATH",
                   help="where to save the head (default models/activity_head.npz)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--c", type=float, default=1.0,
                   help="inverse L2 regularisation of the logistic regression (default 1.0)")

    p = add(sub, "export", cmd_export, "write a model as ONNX (and a TensorRT engine where "
            "tensorrt is installed) for a GPU: face-embedder (dlib's ResNet; run it with "
            "face_embedder onnx), dinov3, yolo-face, yolo-person")
    p.add_argument("what", choices=("face-embedder", "dinov3", "yolo-face", "yolo-person"))
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    p.add_argument("--tensorrt", action="store_true",
                   help="also build a TensorRT engine (needs the tensorrt package and a GPU)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                   help="engine precision (TensorRT, YOLO half); the ONNX file is fp32")
    p.add_argument("--imgsz", type=int, default=640, help="YOLO input size (default 640)")
    return parser


class _StderrHandler(logging.Handler):
    """Library log records as ``visio-memoria: <level>: <message>`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"{PROG}: {record.levelname.lower()}: {_one_line(record.getMessage())}",
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
        _error_line(f"--config {args.config}: no such file")
        return 2
    if args.pad_retry < 0 or args.pad_retry > 2:
        _error_line(f"--pad-retry must be in [0, 2], got {args.pad_retry}")
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
        _error_line(str(exc))
        return exc.code
    except KeyboardInterrupt:
        _error_line("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        from .memory import STORE_ERRORS

        if args.debug:
            traceback.print_exc()
        if isinstance(exc, (*STORE_ERRORS, ValueError, OSError)):
            _error_line(str(exc))
        else:
            _error_line(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the "
                        "traceback)")
        return 1
    finally:
        LOG.debug("%s finished in %.1f s", args.command, time.perf_counter() - started)
        root.removeHandler(handler)
        root.setLevel(old_level)


if __name__ == "__main__":
    sys.exit(main())
