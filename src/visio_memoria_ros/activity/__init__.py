"""Activity: a linear head over scene features, a dynamics classifier, smoothing, the engine.

Imports only ``core`` and ``config`` of this package, never rclpy and never ``embedding``:
scene features arrive as arrays with the id of the embedder that made them, and training asks
the caller for an ``embed_fn``. scikit-learn is imported only when training.
"""

from __future__ import annotations

from .dynamics import (
    DYNAMICS_LABELS,
    DYNAMICS_METHOD,
    UNKNOWN_ACTIVITY,
    DynamicsClassifier,
    DynamicsConfig,
    DynamicsResult,
)
from .engine import ActivityEngine, ActivityResult, dynamics_config_from_params, track_key
from .head import HEAD_FORMAT, HEAD_VERSION, LinearActivityHead
from .smoothing import ActivitySmoother
from .train import IMAGE_EXTENSIONS, TrainReport, list_image_folder, train_from_folder, train_head

__all__ = [
    "DYNAMICS_LABELS",
    "DYNAMICS_METHOD",
    "HEAD_FORMAT",
    "HEAD_VERSION",
    "IMAGE_EXTENSIONS",
    "UNKNOWN_ACTIVITY",
    "ActivityEngine",
    "ActivityResult",
    "ActivitySmoother",
    "DynamicsClassifier",
    "DynamicsConfig",
    "DynamicsResult",
    "LinearActivityHead",
    "TrainReport",
    "dynamics_config_from_params",
    "list_image_folder",
    "track_key",
    "train_from_folder",
    "train_head",
]
