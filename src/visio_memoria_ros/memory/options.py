"""``StoreOptions``: how a store behaves (mirrors the memory_node parameters), for any backend."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config.shared import VISIT_ABSENCE
from . import clustering
from .codec import CropCodec

#: Durability choices: FULL survives a power cut at every commit, NORMAL may lose the last ones.
SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")


def default_robot_id(namespace: str = "") -> str:
    """The robot id when none is configured: the ROS namespace (``/robot1`` -> ``robot1``,
    ``/site/robot1`` -> ``site/robot1``), else the host name."""
    ns = namespace.strip().strip("/")
    return ns or socket.gethostname() or "robot"


@dataclass(frozen=True)
class StoreOptions:
    """Behaviour of a store (mirrors the memory_node parameters)."""

    crop_format: str = "jpeg"
    crop_quality: int = 90
    store_crops: bool = True
    synchronous: str = "FULL"
    robot_id: str = "robot"
    visit_absence: float = VISIT_ABSENCE.default
    cluster: clustering.ClusterParams = field(default_factory=clustering.ClusterParams)
    max_unknowns_per_track: int = 5
    #: A new unknown face this similar (cosine) to a "not a face" example is not remembered.
    non_face_similarity: float = 0.95
    unknown_retention_days: float = 30.0
    visit_retention_days: float = 365.0
    max_events: int = 10000
    busy_timeout: float = 5.0
    read_only: bool = False

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {self.synchronous}")
        CropCodec(self.crop_format, self.crop_quality)
        if self.visit_absence <= 0:
            raise ValueError(f"visit_absence must be > 0, got {self.visit_absence}")
        if self.max_unknowns_per_track < 1:
            raise ValueError("max_unknowns_per_track must be >= 1")
        if not 0.0 < self.non_face_similarity <= 1.0:
            raise ValueError("non_face_similarity must be within (0, 1], got "
                             f"{self.non_face_similarity}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> StoreOptions:
        """The options memory_node parameters describe (see config/memory.py).

        An empty ``robot_id`` means the default: ``default_robot_id(params["namespace"])``.
        """
        cluster = clustering.ClusterParams(
            similarity=float(params.get("cluster_similarity", 0.75)),
            min_size=int(params.get("cluster_min_size", 3)),
            method=str(params.get("cluster_method", "agglomerative")),
            max_items=int(params.get("recluster_max_unknowns", 4000)),
        )
        robot = str(params.get("robot_id", "robot") or "").strip()
        return cls(
            crop_format=str(params.get("crop_format", "jpeg")),
            crop_quality=int(params.get("crop_quality", 90)),
            store_crops=bool(params.get("store_crops", True)),
            synchronous=str(params.get("synchronous", "FULL")),
            robot_id=robot or default_robot_id(str(params.get("namespace", "") or "")),
            visit_absence=float(params.get("visit_absence", VISIT_ABSENCE.default)),
            cluster=cluster,
            max_unknowns_per_track=int(params.get("max_unknowns_per_track", 5)),
            non_face_similarity=float(params.get("non_face_similarity", 0.95)),
            unknown_retention_days=float(params.get("unknown_retention_days", 30.0)),
            visit_retention_days=float(params.get("visit_retention_days", 365.0)),
            read_only=bool(params.get("read_only", False)),
        )
