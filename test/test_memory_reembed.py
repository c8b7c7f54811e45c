"""memory_node re-embeds a gallery made by another embedder: nobody is forgotten.

The embedder is embedding_node's: memory_node asks embedding_node's parameter service for its
face_embedder and model parameters (it has no embedder setting of its own).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from visio_memoria_ros.config import NODE_PARAMS
from visio_memoria_ros.memory import SQLiteStore
from visio_memoria_ros.perception import Perceiver

pytestmark = [pytest.mark.dds, pytest.mark.slow]


def test_gallery_of_another_embedder_is_reembedded_with_embedding_nodes_embedder(
        launch, tmp_path, asset_image_path):
    faces = Perceiver().process(
        cv2.cvtColor(cv2.imread(str(asset_image_path)), cv2.COLOR_BGR2RGB)).faces
    assert len(faces) >= 2
    params = {s.name: s.default for s in NODE_PARAMS["memory_node"]}
    params["data_dir"] = str(tmp_path / "mem")
    rng = np.random.default_rng(0)
    with SQLiteStore.from_params(params) as store:
        people = []
        for i, face in enumerate(faces[:2]):
            person = store.create_person(f"Person {i}")
            old = rng.normal(size=64).astype(np.float32)
            store.add_embedding(person.person_id, old / np.linalg.norm(old), "old_model_64",
                                crop=face.crop, quality=0.8)
            people.append(person.person_id)
        store.add_unknown(old / np.linalg.norm(old), "old_model_64", crop=faces[0].crop,
                          quality=0.5)
        assert not store.gallery("dlib_resnet_v1_128").entries

    node = launch("memory_node", params={"data_dir": params["data_dir"]})
    embedding = launch("embedding_node", params={"scene_embedder": "none"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "re-embedded" not in node.output():
        assert node.alive(), node.output()
        assert embedding.alive(), embedding.output()
        time.sleep(0.2)  # polling the node's log file
    assert "re-embedded 2 faces and 1 unknown faces with dlib_resnet_v1_128" in node.output()
    node.stop()

    with SQLiteStore.from_params({**params, "read_only": True}) as store:
        gallery = store.gallery("dlib_resnet_v1_128")
        assert sorted({e.person_id for e in gallery.entries}) == sorted(people)
        assert all(e.vector.shape == (128,) for e in gallery.entries)
        assert all(u.embedder == "dlib_resnet_v1_128" for u in store.list_unknowns())
