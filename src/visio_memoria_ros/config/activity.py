"""activity_node parameters."""

from .spec import MODEL_LOOKUP, ParamSpec

PARAMS = [
    ParamSpec(
        "head_path",
        "",
        "Linear activity head file (.npz saved by LinearActivityHead.save after train_head or "
        "train_from_folder); empty = no head, activity from track dynamics only. The head runs "
        "only on scene embeddings of the embedder it was trained on; other persons fall back "
        "to dynamics. " + MODEL_LOOKUP,
        read_only=True,
    ),
    ParamSpec(
        "smoothing_time_constant",
        0.5,
        "Time constant [s] of the per-track exponential moving average of class probabilities; "
        "0 = no smoothing.",
        min=0.0,
        max=30.0,
    ),
    ParamSpec(
        "stale_after",
        3.0,
        "A track not seen for this long [s] is forgotten (history and smoothing restart).",
        min=0.1,
        max=600.0,
    ),
    ParamSpec(
        "dynamics_window",
        1.0,
        "Dynamics: box history [s] the motion and posture cues are computed over.",
        min=0.1,
        max=10.0,
    ),
    ParamSpec(
        "dynamics_min_span",
        0.3,
        "Dynamics: the history must span this long [s] before motion is estimated; shorter "
        "histories give posture only. Must not exceed dynamics_window.",
        min=0.0,
        max=10.0,
    ),
    ParamSpec(
        "walk_speed",
        0.25,
        "Dynamics: horizontal speed of the box centre [box heights/s] from which a person is "
        "'walking'.",
        min=0.01,
        max=10.0,
    ),
    ParamSpec(
        "approach_rate",
        0.15,
        "Dynamics: growth (shrink) rate of the box height, d ln(h)/dt [1/s], from which a person "
        "is 'approaching' ('leaving'); walking at v m/s from d m gives v/d.",
        min=0.01,
        max=5.0,
    ),
    ParamSpec(
        "sitting_max_aspect",
        1.6,
        "Dynamics: a still person whose box height/width is below this is 'sitting', else "
        "'standing'.",
        min=0.5,
        max=5.0,
    ),
]
