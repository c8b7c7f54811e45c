"""``EmbedStage``: one frame's faces and persons in, embeddings filled in. What embedding_node
runs on every ``detections`` message and what the CLI runs on every image or video frame.

Faces: with a policy (video, the robot) a face track is embedded when the ``EmbedPolicy`` says
so (new, clearly better crop, refresh), best quality first, at most ``max_faces_per_frame``;
without one (independent still photos) every face with an aligned crop is embedded. Either way
all chosen crops of the frame go through the face embedder in one call (one forward pass per
``max_batch``). Persons: every scene crop (largest first, at most ``max_persons_per_frame``)
through the scene embedder in one call. ``drop_crops`` leaves out the crops that were not
embedded (and the scene crops once embedded), so only new evidence travels on with its crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.types import FaceObservation, Frame
from .base import FaceEmbedder
from .policy import EmbedPolicy


@dataclass
class EmbedStage:
    """Face (and scene) embedding of one Frame at a time; see the module docstring."""

    face: FaceEmbedder
    scene: Any = None
    policy: EmbedPolicy | None = None
    max_faces_per_frame: int = 16
    max_persons_per_frame: int = 8
    drop_crops: bool = False
    #: Faces embedded since the stage was built.
    faces_embedded: int = 0

    @property
    def embedder_id(self) -> str:
        """Id of the face embedder (stored with every vector)."""
        return self.face.id

    def choose(self, faces: Sequence[FaceObservation], stamp: float) -> list[FaceObservation]:
        """The faces to embed now: those with a crop the policy selects, best quality first."""
        with_crop = [f for f in faces if f.crop is not None]
        if self.policy is not None:
            with_crop = [f for f in with_crop
                         if self.policy.decide(f.track_id, f.quality, stamp, f.bbox).embed]
            with_crop.sort(key=lambda f: f.quality, reverse=True)
            return with_crop[: self.max_faces_per_frame]
        return with_crop

    def embed_faces(self, faces: Sequence[FaceObservation], stamp: float = 0.0) -> int:
        """Embed the chosen faces in one call; returns how many were embedded."""
        chosen = self.choose(faces, stamp)
        if chosen:
            vectors = self.face.embed([f.crop for f in chosen])
            for f, vector in zip(chosen, vectors, strict=True):
                f.embedding = vector
                f.embedder = self.face.id
                if self.policy is not None:
                    self.policy.mark_embedded(f.track_id, f.quality, stamp, f.bbox)
            self.faces_embedded += len(chosen)
        if self.policy is not None:
            self.policy.prune(stamp)
        return len(chosen)

    def process(self, frame: Frame) -> Frame:
        """Embed the frame's faces and persons in place (see the module docstring)."""
        self.embed_faces(frame.faces, frame.stamp)
        if self.drop_crops:
            for f in frame.faces:
                if f.embedding is None:
                    f.crop = None
        if self.scene is not None and self.max_persons_per_frame > 0:
            persons = [p for p in frame.persons if p.scene_crop is not None]
            persons = persons[: self.max_persons_per_frame]
            if persons:
                vectors = self.scene.embed_scenes([p.scene_crop for p in persons])
                for p, vector in zip(persons, vectors, strict=True):
                    p.scene_embedding = vector
                    p.scene_embedder = self.scene.scene_id
        if self.drop_crops:
            for p in frame.persons:
                p.scene_crop = None
        return frame

    def reset(self) -> None:
        """Forget every track's embedding history (a new video, a camera change)."""
        if self.policy is not None:
            self.policy = EmbedPolicy(self.policy.config)


__all__ = ["EmbedStage"]
