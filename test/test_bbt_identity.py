"""On the BBT set: every labelled group-photo face is found and named by the default pipeline.

Gallery: the 8 identities' crops through the same perception and dlib embedder as the nodes;
probes: the 23 labelled faces of the 5 group photos. Each must be matched to the right person
with status KNOWN at the default thresholds, and no face may be given someone else's name.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from visio_memoria_ros.core.types import Status
from visio_memoria_ros.embedding import build_face_embedder
from visio_memoria_ros.identity import EngineConfig, GalleryEntry, IdentityEngine
from visio_memoria_ros.perception import Perceiver

pytestmark = [pytest.mark.bbt, pytest.mark.slow]


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def pipeline(bbt_dir):
    perceiver = Perceiver()
    embedder = build_face_embedder("dlib")
    entries, eid = [], 0
    identities = json.loads((bbt_dir / "labels.json").read_text())["identities"]
    for pid, name in enumerate(identities):
        for path in sorted((bbt_dir / name).iterdir()):
            perceiver.reset()
            faces = perceiver.process(_rgb(path)).faces
            if not faces:
                continue  # two of the 40 tight crops give MTCNN too little context
            face = max(faces, key=lambda f: f.bbox[2] - f.bbox[0])
            entries.append(GalleryEntry(eid, pid, name, embedder.embed([face.crop])[0],
                                        embedder.id))
            eid += 1
    assert len(entries) >= 38
    assert {e.person_id for e in entries} == set(range(len(identities)))
    return perceiver, embedder, entries


def test_all_23_group_photo_faces_are_detected_and_named(bbt_dir, pipeline):
    perceiver, embedder, entries = pipeline
    engine = IdentityEngine(EngineConfig(embedder=embedder.id, min_votes=1))
    engine.load_gallery(entries)
    labels = json.loads((bbt_dir / "labels.json").read_text())["group_photos"]
    named, total, wrong = 0, 0, []
    for photo, faces_expected in labels.items():
        perceiver.reset()
        frame = perceiver.process(_rgb(bbt_dir / photo))
        for face in frame.faces:
            face.track_id = -1  # decide each face from its own embedding
        vectors = embedder.embed([f.crop for f in frame.faces])
        for face, v in zip(frame.faces, vectors, strict=True):
            face.embedding, face.embedder = v, embedder.id
        decisions = engine.process(frame.faces, 1000.0 + total).decisions
        for label in faces_expected:
            total += 1
            cx, cy = label["center"]
            hits = [d for d in decisions
                    if d.bbox[0] <= cx <= d.bbox[2] and d.bbox[1] <= cy <= d.bbox[3]]
            assert hits, f"{photo}: {label['name']} at {label['center']} not detected"
            d = hits[0]
            if d.status is Status.KNOWN and d.name == label["name"]:
                named += 1
            else:
                wrong.append((photo, label["name"], d.status.name, d.name,
                              round(d.similarity, 3)))
        for d in decisions:  # nobody is given a name that is not theirs
            if d.status is Status.KNOWN:
                truth = [x["name"] for x in faces_expected
                         if d.bbox[0] <= x["center"][0] <= d.bbox[2]
                         and d.bbox[1] <= x["center"][1] <= d.bbox[3]]
                assert truth == [d.name], f"{photo}: a face was called {d.name}, truth {truth}"
    assert total == 23
    assert named == 23, wrong
