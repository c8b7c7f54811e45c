"""Real faces for the identity benchmark: BBT crops and group photos, and street.mp4 tracks.

Every face goes through the same rooms as the robot: ``Pipeline`` (MTCNN, canonical
alignment) for the still images, ``Perceiver`` with its tracker for the video, and the default
dlib face embedder. Results are cached in an ``.npz`` keyed by the inputs' sizes and times and
the embedder id, so the protocol and the simulation can be rerun in seconds.

Video faces are embedded on every frame that has an aligned crop; ``replay`` in
``bench_identity.py`` then lets the embed policy choose which of those embeddings the graph
would have made, exactly as embedding_node does.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

LOG = logging.getLogger("bench_identity")


@dataclass
class StillFace:
    """One still-image face: its identity, where it comes from, and its embedding."""

    identity: str
    source: str  # "crop" (a gallery crop) or "group" (a labelled face of a group photo)
    path: str
    vector: np.ndarray


@dataclass
class VideoFace:
    """One face of one video frame, as the Perceiver saw it, with its embedding (or None)."""

    frame: int
    t: float
    track_id: int
    bbox: np.ndarray
    quality: float
    vector: np.ndarray | None
    remembered: bool = False  # passes memory_node's face-quality gate (shipped defaults)


#: Bumped whenever what the cache holds changes (2: the quality gate per video face).
CACHE_VERSION = 2


def _inputs_key(paths: list[Path], embedder_id: str) -> str:
    parts = [f"v{CACHE_VERSION}", embedder_id] + [
        f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in sorted(paths)]
    return "|".join(parts)


def bbt_faces(bbt: Path) -> tuple[list[StillFace], list[str]]:
    """Embed the BBT gallery crops (largest face) and the labelled group-photo faces."""
    from visio_memoria_ros.config import NODE_PARAMS
    from visio_memoria_ros.pipeline import Pipeline, largest_face, load_image

    detector = {s.name: s.default for s in NODE_PARAMS["detector_node"]}
    embedding = {s.name: s.default for s in NODE_PARAMS["embedding_node"]}
    pipe = Pipeline.from_params(detector, embedding)
    labels = json.loads((bbt / "labels.json").read_text())
    out: list[StillFace] = []
    missed: list[str] = []
    for name in labels["identities"]:
        for path in sorted((bbt / name).iterdir()):
            face = largest_face(pipe.detect(load_image(path)))
            if face is None or face.crop is None:
                missed.append(str(path.relative_to(bbt)))
                continue
            pipe.embed([face])
            out.append(StillFace(name, "crop", str(path.relative_to(bbt)), face.embedding))
    for photo, expected in labels["group_photos"].items():
        faces = pipe.process(load_image(bbt / photo))
        for label in expected:
            cx, cy = label["center"]
            hits = [f for f in faces if f.embedding is not None
                    and f.bbox[0] <= cx <= f.bbox[2] and f.bbox[1] <= cy <= f.bbox[3]]
            if not hits:
                missed.append(f"{photo}:{label['name']}")
                continue
            face = min(hits, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
            out.append(StillFace(label["name"], "group", f"{photo}:{label['name']}",
                                 face.embedding))
    return out, missed


def video_faces(video: Path, *, max_side: int = 1920,
                crops_out: Path | None = None) -> tuple[list[VideoFace], float]:
    """Run a video through the default Perceiver (tracking) and embed every aligned face."""
    from visio_memoria_ros.config import NODE_PARAMS
    from visio_memoria_ros.embedding import build_face_embedder
    from visio_memoria_ros.perception import (
        FacenessChecker,
        Perceiver,
        PerceiverConfig,
        QualityGate,
        assess_face,
    )

    detector = {s.name: s.default for s in NODE_PARAMS["detector_node"]}
    perceiver = Perceiver(PerceiverConfig.from_params(detector))
    embedder = build_face_embedder("dlib")
    gate = QualityGate.from_params({s.name: s.default for s in NODE_PARAMS["memory_node"]})
    faceness = FacenessChecker()
    cap = cv2.VideoCapture(str(video))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 25.0)
    out: list[VideoFace] = []
    index = 0
    t0 = time.perf_counter()
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        if max(h, w) > max_side:
            s = max_side / max(h, w)
            bgr = cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        t = index / fps
        frame = perceiver.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), stamp=t)
        with_crop = [f for f in frame.faces if f.crop is not None]
        vectors = embedder.embed([f.crop for f in with_crop]) if with_crop else []
        by_face = {id(f): v for f, v in zip(with_crop, vectors, strict=True)}
        for f in frame.faces:
            remembered = f.crop is not None and not gate.reasons(assess_face(
                f.crop, f.bbox, f.landmarks, f.score, faceness=faceness(f.crop)))
            out.append(VideoFace(index, t, int(f.track_id), f.bbox.copy(), float(f.quality),
                                 by_face.get(id(f)), remembered))
            if crops_out is not None and f.crop is not None and f.track_id >= 0:
                folder = crops_out / f"track{f.track_id:03d}"
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"f{index:03d}.jpg"),
                            cv2.cvtColor(f.crop, cv2.COLOR_RGB2BGR))
        index += 1
    cap.release()
    LOG.info("%s: %d frames, %d faces in %.0f s", video.name, index, len(out),
             time.perf_counter() - t0)
    return out, fps


def load_or_extract(bbt: Path | None, video: Path | None, cache: Path,
                    *, crops_out: Path | None = None) -> dict[str, Any]:
    """The still and video faces, from ``cache`` when its inputs are unchanged."""
    from visio_memoria_ros.embedding import build_face_embedder

    embedder_id = build_face_embedder("dlib").id
    inputs: list[Path] = []
    if bbt is not None:
        inputs += [p for p in bbt.rglob("*") if p.is_file()]
    if video is not None:
        inputs.append(video)
    key = _inputs_key(inputs, embedder_id)
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        if str(data["key"]) == key:
            return _unpack(data)
    stills: list[StillFace] = []
    missed: list[str] = []
    vfaces: list[VideoFace] = []
    fps = 25.0
    if bbt is not None:
        stills, missed = bbt_faces(bbt)
    if video is not None:
        vfaces, fps = video_faces(video, crops_out=crops_out)
    dim = len(stills[0].vector) if stills else 128
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        cache, key=np.array(key), embedder=np.array(embedder_id),
        s_identity=np.array([s.identity for s in stills]),
        s_source=np.array([s.source for s in stills]),
        s_path=np.array([s.path for s in stills]),
        s_vector=np.stack([s.vector for s in stills]) if stills else np.zeros((0, dim)),
        missed=np.array(missed),
        v_frame=np.array([f.frame for f in vfaces], np.int64),
        v_t=np.array([f.t for f in vfaces]),
        v_track=np.array([f.track_id for f in vfaces], np.int64),
        v_bbox=np.stack([f.bbox for f in vfaces]) if vfaces else np.zeros((0, 4)),
        v_quality=np.array([f.quality for f in vfaces]),
        v_has=np.array([f.vector is not None for f in vfaces]),
        v_remembered=np.array([f.remembered for f in vfaces], bool),
        v_vector=np.stack([f.vector if f.vector is not None else np.zeros(dim, np.float32)
                           for f in vfaces]) if vfaces else np.zeros((0, dim)),
        fps=np.array(fps),
    )
    return _unpack(np.load(cache, allow_pickle=False))


def _unpack(data: Any) -> dict[str, Any]:
    stills = [StillFace(str(i), str(s), str(p), np.asarray(v, np.float32))
              for i, s, p, v in zip(data["s_identity"], data["s_source"], data["s_path"],
                                    data["s_vector"], strict=True)]
    vfaces = [VideoFace(int(fr), float(t), int(tr), np.asarray(b, np.float32), float(q),
                        np.asarray(v, np.float32) if h else None, bool(r))
              for fr, t, tr, b, q, h, v, r in zip(
                  data["v_frame"], data["v_t"], data["v_track"], data["v_bbox"],
                  data["v_quality"], data["v_has"], data["v_vector"], data["v_remembered"],
                  strict=True)]
    return {"embedder": str(data["embedder"]), "stills": stills,
            "missed": [str(m) for m in data["missed"]], "video": vfaces,
            "fps": float(data["fps"])}
