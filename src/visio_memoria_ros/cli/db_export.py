"""``db export``: the memory as JSON files and PNG crops for people to read.

Export (``db export OUT_DIR``) writes ``manifest.json``, ``persons.json``, ``visits.json``,
``unknowns.json`` and PNG crops under ``crops/``. Persons marked never-remember are left out
completely (no name, no visits, no faces; only their count is in the manifest), and embedding
vectors are never exported (biometric templates; re-create them from the crops). The folder
must be new or empty; it is created 0700 and every file 0600.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .common import CliError, add_command, num, progress, when
from .context import open_memory


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
    with open_memory(args, read_only=True) as store:
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
    for p in progress(args, kept, desc="exporting persons", unit="person"):
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
                         "quality": num(e.quality), "created": when(e.created),
                         "source": e.source, "crop": rel})
        person_rows.append({"person_id": p.person_id, "name": p.name,
                            "created": when(p.created), "first_seen": when(p.first_seen),
                            "last_seen": when(p.last_seen), "num_visits": p.num_visits,
                            "faces": rows})
    unknown_rows = []
    for u in unknowns:
        rel = None
        if u.crop is not None:
            rel = f"crops/unknowns/{u.unknown_id}.png"
            _write_png(out / rel, u.crop)
            n_crops += 1
        unknown_rows.append({"unknown_id": u.unknown_id, "cluster_id": u.cluster_id,
                             "embedder": u.embedder, "quality": num(u.quality),
                             "first_seen": when(u.first_seen), "last_seen": when(u.last_seen),
                             "crop": rel})
    _write_json(out / "persons.json", person_rows)
    _write_json(out / "visits.json", [
        {"visit_id": v.visit_id, "person_id": v.person_id, "name": v.name,
         "start": when(v.start), "last_seen": when(v.last_seen), "end": when(v.end),
         "location": v.location, "robot_id": v.robot_id,
         "dominant_activity": v.dominant_activity, "activity_counts": v.activity_counts}
        for v in visits])
    _write_json(out / "unknowns.json", {
        "clusters": [{"cluster_id": c.cluster_id, "size": c.size,
                      "first_seen": when(c.first_seen), "last_seen": when(c.last_seen),
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


def register(sub: Any) -> None:
    """Add ``db export`` to the ``db`` parser ``sub``."""
    p = add_command(sub, "export", cmd_db_export, "write persons, visits and unknown faces as "
                    "JSON plus PNG crops (never-remember persons and vectors are left out)",
                    json_flag=False)
    p.add_argument("out_dir", metavar="OUT_DIR")
