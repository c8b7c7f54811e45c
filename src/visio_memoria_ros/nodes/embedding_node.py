"""embedding_node: ``detections`` -> ``perception`` with identity and scene embeddings.

The work is ``embedding.EmbedStage`` (what the CLI runs on video frames too): a face track is
embedded when it is new or its crop quality clearly improved (EmbedPolicy), never every frame
by default; all crops of a frame go through one batched forward pass, all scene crops through
another. Crops of faces not embedded in this frame are dropped from the output (when
``drop_crops_after_embedding``), so only new evidence travels on with its crop.

The policy knobs, the batch size and the per-frame limits apply at run time (``ros2 param
set``); the models and their settings are read-only. Every embedded face carries the face
embedder's id (Face.embedder): identity_node and memory_node learn the embedder from it.
"""

from __future__ import annotations

import time
from typing import Any

from visio_memoria.msg import Perception

from ..config import embedding as embedding_params
from ..embedding import build_embed_policy, build_embedding_stack
from ..embedding.stage import EmbedStage
from .convert import frame_from_msg, frame_to_msg
from .diagnostics import WARN, Health
from .images import ImageConverter
from .params import VisioNode
from .qos import RELIABLE_QOS
from .stamps import stamp_to_s
from .startup import NodeStartupError, node_torch_threads, run_node
from .worker import FrameWorker


class EmbeddingNode(VisioNode):
    """Embeds the faces the policy selects and every person's scene crop (when DINOv3 loads)."""

    def __init__(self) -> None:
        super().__init__("embedding_node", embedding_params.PARAMS)
        p = {**self.params, "torch_threads": node_torch_threads(self.params["torch_threads"])}
        if p["torch_threads"] > 0:
            import torch

            torch.set_num_threads(p["torch_threads"])
        try:
            self._stack = build_embedding_stack(p)
        except (FileNotFoundError, ValueError, ImportError) as exc:
            raise NodeStartupError(str(exc)) from exc
        self._stage = EmbedStage(
            face=self._stack.face, scene=self._stack.scene, policy=self._stack.policy,
            max_faces_per_frame=p["max_faces_per_frame"],
            max_persons_per_frame=p["max_persons_per_frame"],
            drop_crops=p["drop_crops_after_embedding"],
        )
        self._converter = ImageConverter()
        self._pub = self.create_publisher(Perception, "perception", RELIABLE_QOS)
        self._worker = FrameWorker(
            self, self._process, stamp_of=lambda m: stamp_to_s(m.header.stamp), name="embed",
            health=self._health, counters=self._counters,
        )
        self.on_params_changed(self._apply)
        self.create_subscription(Perception, "detections", self._worker.submit, RELIABLE_QOS)
        scene = self._stack.scene
        self.get_logger().info(
            f"face embedder {self._stack.face.id} ({self._stack.face.dim}-d); scene embedder "
            + (scene.scene_id if scene is not None else "off")
        )

    def _apply(self, changed: dict[str, Any]) -> None:
        """Policy knobs, per-frame limits and the batch size apply from the next frame on."""
        self._stack.policy.configure(build_embed_policy(**self.params).config)
        self._stage.max_faces_per_frame = int(self.params["max_faces_per_frame"])
        self._stage.max_persons_per_frame = int(self.params["max_persons_per_frame"])
        self._stage.drop_crops = bool(self.params["drop_crops_after_embedding"])
        if "max_batch" in changed:
            for embedder in (self._stack.face, self._stack.scene):
                if embedder is not None and hasattr(embedder, "max_batch"):
                    embedder.max_batch = int(self.params["max_batch"])

    def _counters(self) -> dict[str, float | str]:
        policy = self._stack.policy.config
        scene = self._stack.scene
        return {
            "face_embedder": self._stack.face.id,
            "faces_embedded": float(self._stage.faces_embedded),
            "max_embeddings_per_track": float(policy.max_embeddings_per_track),
            "first_embeddings": float(policy.first_embeddings),
            **({"scene_max_batch": float(scene.max_batch)}
               if scene is not None and hasattr(scene, "max_batch") else {}),
        }

    def _health(self) -> Health | None:
        """WARN while scene embedding is off although asked for (scene_embedder=auto)."""
        note = self._stack.scene_note
        return (WARN, f"scene embedding off: {note}") if note else None

    def _process(self, msg: Perception) -> None:
        t0 = time.monotonic()
        problems: list[str] = []
        frame = frame_from_msg(msg, self._converter, problems)
        for problem in problems:
            self.get_logger().warning(f"skipped a malformed {problem}", throttle_duration_sec=5.0)
        self._stage.process(frame)
        frame.processing_time = time.monotonic() - t0
        self._pub.publish(frame_to_msg(frame, header=msg.header))

    def close(self) -> None:
        """Stop the worker."""
        self._worker.close()


def main(args: list[str] | None = None) -> None:
    """Entry point of the embedding_node executable."""
    run_node(EmbeddingNode, args)
