"""EmbedStage, the frame step embedding_node and the CLI share: which faces are embedded, in how
many calls, and which crops travel on."""

from __future__ import annotations

import numpy as np

from visio_memoria_ros.core.types import FaceObservation, Frame, PersonObservation
from visio_memoria_ros.embedding import EmbedPolicy, EmbedPolicyConfig
from visio_memoria_ros.embedding.stage import EmbedStage


class CountingEmbedder:
    """Unit vectors, one call counted per ``embed``."""

    id = "fake_8"
    dim = 8
    scene_id = "fake_scene_8"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, crops):
        self.calls.append(len(crops))
        return np.tile(np.eye(1, 8, dtype=np.float32), (len(crops), 1))

    def embed_scenes(self, crops):
        return self.embed(crops)


def _frame(n_faces: int, stamp: float = 0.0, qualities=None) -> Frame:
    crop = np.zeros((192, 192, 3), np.uint8)
    faces = [FaceObservation(bbox=[10 * i, 0, 10 * i + 8, 8], score=0.99, detector="t",
                             track_id=i, quality=(qualities or [0.5] * n_faces)[i], crop=crop)
             for i in range(n_faces)]
    persons = [PersonObservation(bbox=[0, 0, 50, 100], score=0.9, detector="t",
                                 scene_crop=np.zeros((64, 32, 3), np.uint8)) for _ in range(3)]
    return Frame(stamp=stamp, frame_id="cam", width=640, height=480, faces=faces,
                 persons=persons)


def test_still_photos_embed_every_face_in_one_call():
    face = CountingEmbedder()
    stage = EmbedStage(face=face)
    frame = stage.process(_frame(5))
    assert face.calls == [5] and all(f.embedding is not None for f in frame.faces)
    assert {f.embedder for f in frame.faces} == {"fake_8"} and stage.faces_embedded == 5


def test_the_policy_picks_best_quality_first_within_the_frame_limit():
    face = CountingEmbedder()
    stage = EmbedStage(face=face, policy=EmbedPolicy(EmbedPolicyConfig(min_interval_s=1.0)),
                       max_faces_per_frame=2, drop_crops=True)
    frame = stage.process(_frame(4, qualities=[0.1, 0.9, 0.5, 0.7]))
    embedded = [f.track_id for f in frame.faces if f.embedding is not None]
    assert face.calls == [2] and sorted(embedded) == [1, 3]
    assert all((f.crop is None) == (f.embedding is None) for f in frame.faces)
    # 0.1 s later nothing new is due for the two embedded tracks; the others get their turn
    frame = stage.process(_frame(4, stamp=0.1, qualities=[0.1, 0.9, 0.5, 0.7]))
    assert sorted(f.track_id for f in frame.faces if f.embedding is not None) == [0, 2]


def test_persons_go_in_one_scene_call_and_their_crops_are_dropped():
    face, scene = CountingEmbedder(), CountingEmbedder()
    stage = EmbedStage(face=face, scene=scene, max_persons_per_frame=2, drop_crops=True)
    frame = stage.process(_frame(0))
    assert face.calls == [] and scene.calls == [2]
    assert [p.scene_embedding is not None for p in frame.persons] == [True, True, False]
    assert all(p.scene_crop is None for p in frame.persons)


def test_reset_forgets_the_tracks():
    face = CountingEmbedder()
    stage = EmbedStage(face=face, policy=EmbedPolicy(EmbedPolicyConfig(min_interval_s=10.0,
                                                                       first_embeddings=1)))
    stage.process(_frame(1))
    stage.process(_frame(1, stamp=0.5))
    assert face.calls == [1]
    stage.reset()
    stage.process(_frame(1, stamp=0.6))
    assert face.calls == [1, 1]
