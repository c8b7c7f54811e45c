"""``detect``, ``enroll`` and ``identify``: the pipeline on images, videos and the memory.

Inputs of ``detect`` and ``identify``: image files, folders (their image files, sorted, not
recursive) and video files (``.mp4``, ``.avi``, ``.mov``, ``.mkv``, ...: every ``--every``-th
frame). Photos and the images of a folder are independent images; a video runs as a video:
faces tracked across its frames and identity voted per track, as identity_node does (a face
becomes KNOWN after ``min_votes`` embeddings, or one at the instant threshold).

Enrolment is all-or-nothing: every image is read, detected and aligned first; if any image is
unreadable or has no face, each failure is reported and nothing is written. If the store fails
while writing, a person created by this command is removed again (an existing person keeps the
faces added before the failure, and the error says how many).

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
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .common import (
    CliError,
    add_command,
    box_text,
    error_line,
    face_json,
    left_to_right,
    num,
    print_json,
    progress,
    warn,
)
from .context import build_pipeline, engine_from_store, follow, item_label, open_memory, read_inputs


def cmd_detect(args: argparse.Namespace) -> int:
    """Faces per image (or per video frame)."""

    pipe = build_pipeline(args, embed=False)
    images: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    for item, entry in read_inputs(args, "detecting", images):
        follow(pipe, item, state)
        faces = left_to_right(pipe.detect(item.image, item.time or 0.0))
        entry.update(faces=[{**face_json(f), **({"track_id": int(f.track_id)}
                                                if item.video else {})} for f in faces])
        if not args.json:
            print(f"{item_label(item)}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
            for i, f in enumerate(faces):
                print(f"  face {i}: box {box_text(f)} score {f.score:.3f} "
                      f"quality {f.quality:.2f}")
    if args.json:
        print_json({"schema": "visio-memoria.detect/1", "images": images})
    return 1 if any(e["error"] for e in images) else 0


def cmd_enroll(args: argparse.Namespace) -> int:
    """Add the largest face of each image to a person (all-or-nothing)."""
    from ..memory import OptedOutError, validate_name
    from ..pipeline import ImageError, largest_face, load_image

    name = validate_name(args.name)
    pipe = build_pipeline(args, embed=True)
    prepared, problems = [], []
    for path in progress(args, args.images, desc="checking images"):
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
                warn(f"{path}: {len(faces)} faces; enrolling the largest {box_text(face)}")
            prepared.append((path, face, len(faces)))
    if problems:
        for p in problems:
            error_line(p)
        raise CliError(f"nothing enrolled: {len(problems)} of {len(args.images)} images are "
                       "unusable (enrolment is all-or-nothing)")
    pipe.embed([f for _, f, _ in prepared])

    store = open_memory(args, read_only=False, must_exist=False)
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
        "faces": [{"path": p, "embedding_id": eid, "bbox": face_json(f)["bbox"],
                   "quality": num(f.quality), "faces_in_image": n} for p, f, n, eid in added],
    }
    if args.json:
        print_json(result)
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
    engine, _ = engine_from_store(args, store, embedder_id)
    names = engine.names()
    matches = engine.matcher.match(np.stack([f.embedding for _, f, _ in prepared]))
    for (path, _, _), m in zip(prepared, matches, strict=True):
        other = int(m.person_id)
        if m.status.name == "KNOWN" and (person is None or other != person.person_id):
            warn(f"{path}: this face already looks like person {other} ({names.get(other)}, "
                 f"similarity {m.similarity:.3f}); enrolling it anyway")


def cmd_identify(args: argparse.Namespace) -> int:
    """Every face of each image (or video frame) against the memory's gallery."""

    store = open_memory(args, read_only=True)  # first: a missing memory fails at once
    with store:
        pipe = build_pipeline(args, embed=True)
        engine, report = engine_from_store(args, store, pipe.embedder_id)
    pipe.engine = engine
    if report.num_vectors == 0:
        warn(f"the memory holds no faces made by {pipe.embedder_id}; every face is UNKNOWN "
             "(enroll someone, or run `db reembed` after changing the embedder)")
    names = engine.names()
    th = engine.thresholds
    images: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    for item, entry in read_inputs(args, "identifying", images):
        follow(pipe, item, state)
        stamp = item.time or 0.0
        faces = left_to_right(pipe.process(item.image, stamp))
        decisions = pipe.identify(faces, stamp)
        embedded = [f for f in faces if f.embedding is not None]
        matches = engine.matcher.match(np.stack([f.embedding for f in embedded])) \
            if embedded else []
        by_face = {id(f): m for f, m in zip(embedded, matches, strict=True)}
        out_faces = []
        for f, d in zip(faces, decisions, strict=True):
            item_json = face_json(f)
            m = by_face.get(id(f))
            status = d.status.name
            suppressed = bool(m.suppressed) if m is not None else False
            pid = int(d.person_id) if status == "KNOWN" else None
            if status == "UNCERTAIN" and m is not None and m.person_id >= 0 and not suppressed:
                pid = int(m.person_id)  # the candidate of this embedding
            sim = num(d.similarity) if d.similarity == d.similarity else None
            item_json.update(status=status, person_id=pid,
                             name=names.get(pid) if pid is not None else None,
                             similarity=sim, suppressed=suppressed)
            if item.video:
                item_json["track_id"] = int(f.track_id)
            out_faces.append(item_json)
        entry.update(faces=out_faces)
        if not args.json:
            print(f"{item_label(item)}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
            for f, fj in zip(faces, out_faces, strict=True):
                who = fj["name"] or ("(never remember)" if fj["suppressed"] else "unknown")
                sim_text = "-" if fj["similarity"] is None else f"{fj['similarity']:.3f}"
                print(f"  {box_text(f)} {who} {fj['status']} similarity {sim_text}")
    if args.json:
        print_json({
            "schema": "visio-memoria.identify/1", "embedder": pipe.embedder_id,
            "thresholds": {"accept": th.accept, "reject": th.reject},
            "gallery": {"persons": report.num_persons, "vectors": report.num_vectors},
            "images": images,
        })
    return 1 if any(e["error"] for e in images) else 0


def register(sub: Any) -> None:
    """Add ``detect``, ``enroll`` and ``identify`` to the command parser ``sub``."""
    every = ("with a video: process every N-th frame (default 1: every frame); the frames in "
             "between are skipped, not decoded")
    p = add_command(sub, "detect", cmd_detect, "faces per image: box, 5 landmarks, score, quality")
    p.add_argument("images", nargs="+", metavar="INPUT",
                   help="image files, folders of images, video files")
    p.add_argument("--every", type=int, default=1, metavar="N", help=every)

    p = add_command(sub, "enroll", cmd_enroll, "add the largest face of each image to person NAME "
                    "(created if new); all-or-nothing")
    p.add_argument("name", metavar="NAME")
    p.add_argument("images", nargs="+", metavar="IMG")

    p = add_command(sub, "identify", cmd_identify, "name, similarity and "
                    "KNOWN/UNCERTAIN/UNKNOWN of every face, against the memory")
    p.add_argument("images", nargs="+", metavar="INPUT",
                   help="image files, folders of images, video files")
    p.add_argument("--every", type=int, default=1, metavar="N", help=every)
