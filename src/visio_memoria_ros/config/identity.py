"""identity_node parameters, and the per-embedder similarity thresholds they default to.

Thresholds are cosine similarities between L2-normalised embeddings. They depend on the
embedder, so ``accept_threshold`` / ``reject_threshold`` default to the sentinel
``EMBEDDER_DEFAULT`` (-1.0), meaning "take the value for the active embedder from
``EMBEDDER_DEFAULTS``":

==================  ====  ======  ======  ==================================================
embedder id         dim   accept  reject  source of the numbers
==================  ====  ======  ======  ==================================================
dlib_resnet_v1_128  128   0.915   0.895   measured here on the BBT set (8 people): the 23
                                          group-photo faces (MTCNN + alignment) against the
                                          gallery crops: best genuine >= 0.919, best impostor
                                          <= 0.899; leave-one-out on the crops: impostor
                                          <= 0.916 (dlib vectors share a large common
                                          direction, so strangers sit ~0.84). Calibrate on
                                          your own faces: visio-memoria eval --target-far
onnx_arcface        512   0.450   0.300   usual ArcFace/InsightFace verification range
dinov3_vitb16       768   0.800   0.650   placeholder: frozen DINOv3 is weak for faces
                                          (DESIGN.md decision 4); calibrate before relying
(any other id)      -     0.600   0.450   generic fallback; calibrate
==================  ====  ======  ======  ==================================================

Between reject and accept lies the uncertain band (status UNCERTAIN).

A track needs ``min_votes`` embeddings before it is KNOWN, unless one is so close to a person
that waiting adds nothing: at or above the *instant* threshold (accept + the embedder's instant
margin: dlib 0.915 + 0.015 = 0.93, where no stranger of the BBT hold-out reached 0.925) a
single embedding is enough, which lets a clearly seen person be greeted on the first one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .embedding import UNTRACKED_HANDOFF
from .spec import ParamSpec

EMBEDDER_DEFAULT = -1.0
"""Threshold sentinel: use the active embedder's value from ``EMBEDDER_DEFAULTS``."""


@dataclass(frozen=True)
class EmbedderDefaults:
    """Default open-set thresholds (cosine) and vector dimension of one embedder."""

    accept: float
    reject: float
    dim: int | None = None
    instant_margin: float = 0.05


EMBEDDER_DEFAULTS: Mapping[str, EmbedderDefaults] = {
    "dlib_resnet_v1_128": EmbedderDefaults(
        accept=0.915, reject=0.895, dim=128, instant_margin=0.015
    ),
    "onnx_arcface": EmbedderDefaults(accept=0.45, reject=0.30, dim=512, instant_margin=0.10),
    "dinov3_vitb16": EmbedderDefaults(accept=0.80, reject=0.65, dim=768, instant_margin=0.05),
}
FALLBACK_DEFAULTS = EmbedderDefaults(accept=0.60, reject=0.45, instant_margin=0.10)


def embedder_defaults(embedder: str) -> EmbedderDefaults:
    """Return the defaults for ``embedder``: exact id, else longest known prefix, else fallback."""
    if embedder in EMBEDDER_DEFAULTS:
        return EMBEDDER_DEFAULTS[embedder]
    prefixes = [k for k in EMBEDDER_DEFAULTS if embedder.startswith(k.split("_")[0])]
    if prefixes:
        return EMBEDDER_DEFAULTS[max(prefixes, key=len)]
    return FALLBACK_DEFAULTS


def resolve_thresholds(embedder: str, accept: float, reject: float) -> tuple[float, float]:
    """Return (accept, reject) with ``EMBEDDER_DEFAULT`` sentinels replaced by embedder values."""
    defaults = embedder_defaults(embedder)
    acc = defaults.accept if accept == EMBEDDER_DEFAULT else float(accept)
    rej = defaults.reject if reject == EMBEDDER_DEFAULT else float(reject)
    return acc, rej


def resolve_instant(embedder: str, instant: float, accept: float) -> float:
    """The single-embedding accept threshold: ``instant``, or accept + the embedder's margin."""
    if instant != EMBEDDER_DEFAULT:
        return float(instant)
    return min(1.0, accept + embedder_defaults(embedder).instant_margin)


PARAMS: list[ParamSpec] = [
    ParamSpec(
        "embedder",
        "dlib_resnet_v1_128",
        "Embedder id whose gallery is loaded at start, before the first face arrives (the id of "
        "embedding_node's default face_embedder). From then on the faces decide: each embedded "
        "Face carries its embedder id, and faces of another embedder are an ERROR in the log "
        "and on /diagnostics while the node loads the gallery of the embedder it receives. Set "
        "it to that id to have the right gallery from the first frame.",
        allow_empty=False,
        read_only=True,
    ),
    ParamSpec(
        "accept_threshold",
        EMBEDDER_DEFAULT,
        "Cosine similarity at or above which a track is KNOWN. -1.0 = the active embedder's "
        "default (config/identity.py EMBEDDER_DEFAULTS: dlib_resnet_v1_128 0.915, onnx_arcface "
        "0.45, dinov3_vitb16 0.80, other 0.60).",
        min=-1.0,
        max=1.0,
    ),
    ParamSpec(
        "reject_threshold",
        EMBEDDER_DEFAULT,
        "Cosine similarity below which a track is UNKNOWN (a stranger); between reject and "
        "accept it is UNCERTAIN. -1.0 = the active embedder's default (dlib_resnet_v1_128 0.895, "
        "onnx_arcface 0.30, dinov3_vitb16 0.65, other 0.45). Must not exceed accept.",
        min=-1.0,
        max=1.0,
    ),
    ParamSpec(
        "instant_accept_threshold",
        EMBEDDER_DEFAULT,
        "Cosine similarity at or above which ONE embedding makes a track (or an untracked "
        "face) KNOWN without waiting for min_votes. -1.0 = accept + the embedder's margin "
        "(dlib_resnet_v1_128 +0.015, onnx_arcface +0.10, dinov3_vitb16 +0.05, other +0.10); "
        "1.0 = always wait for min_votes. Must not be below accept.",
        min=-1.0,
        max=1.0,
    ),
    UNTRACKED_HANDOFF,
    ParamSpec(
        "search_k",
        32,
        "Nearest gallery vectors retrieved per face before aggregating them per person.",
        min=1,
        max=1024,
    ),
    ParamSpec(
        "aggregate",
        "max",
        "How a person's retrieved vectors become one score: max similarity, or the mean of "
        "the person's top aggregate_top_n similarities.",
        choices=("max", "mean_top_n"),
    ),
    ParamSpec(
        "aggregate_top_n",
        3,
        "n for aggregate=mean_top_n (fewer when fewer of the person's vectors are retrieved).",
        min=1,
        max=64,
    ),
    ParamSpec(
        "vote_window",
        5,
        "Embeddings per track kept for voting (the last N); the decision uses the mean "
        "similarity per person over this window.",
        min=1,
        max=100,
    ),
    ParamSpec(
        "min_votes",
        2,
        "Embeddings of a track needed before it can be KNOWN or UNKNOWN (UNCERTAIN before); "
        "a person also needs this many window entries at/above accept. Must not exceed "
        "vote_window. Set 1 if the embedder embeds each track only once.",
        min=1,
        max=100,
    ),
    ParamSpec(
        "switch_margin",
        0.05,
        "A track already KNOWN as A switches to B only when B's windowed mean beats A's by "
        "this margin (hysteresis against flicker).",
        min=0.0,
        max=1.0,
    ),
    ParamSpec(
        "track_timeout",
        5.0,
        "Seconds a face track may go unseen before its votes are forgotten [s]. Longer than "
        "the slowest expected gap between processed frames (a busy CPU may process a large "
        "image only every 1-3 s).",
        min=0.05,
        max=3600.0,
    ),
    ParamSpec(
        "greeting_template",
        "Welcome back, {name}!",
        "Greeting published once per visit of a KNOWN person; '{name}' is replaced by the "
        "person's name. Empty = no greetings.",
    ),
    ParamSpec(
        "visit_absence",
        60.0,
        "A visit ends when the person has not been seen for longer than this [s]; the next "
        "sighting starts a new visit (and a new greeting).",
        min=0.1,
        max=86400.0,
    ),
    ParamSpec(
        "greeting_cooldown",
        300.0,
        "Minimum time between two greetings of the same person, even across visits [s].",
        min=0.0,
        max=604800.0,
    ),
    ParamSpec(
        "unknown_announcement",
        "",
        "Text published once per face track that becomes UNKNOWN (e.g. 'Hello! I don't "
        "think we have met.'). Empty = unknown faces are not announced.",
    ),
    ParamSpec(
        "index_exact_max_size",
        10000,
        "Gallery vectors up to which search is exact (IndexFlatIP); above it an approximate "
        "index (index_approx_kind) is built. Exact batch-1 search of 768-d vectors costs "
        "~0.25 ms per 1k vectors on one core (memory bound), so exact 100k would be ~25 ms.",
        min=0,
        max=1e9,
    ),
    ParamSpec(
        "index_approx_kind",
        "ivf",
        "Approximate index above index_exact_max_size: 'ivf' (IVF-Flat; fast k-means build, "
        "native removal; the default) or 'hnsw' (no training, slow to build at 768-d).",
        choices=("ivf", "hnsw"),
    ),
    ParamSpec(
        "ivf_nlist",
        0,
        "IVF inverted lists (applies at the next rebuild); 0 = automatic, 4*sqrt(gallery size).",
        min=0,
        max=1 << 20,
    ),
    ParamSpec(
        "ivf_nprobe",
        0,
        "IVF lists visited per search: higher = better recall, slower. 0 = automatic, "
        "max(16, nlist/80): recall@1 >= 0.99 at 1M vectors in ~4 ms on 2 cores.",
        min=0,
        max=65536,
    ),
    ParamSpec("hnsw_m", 32, "HNSW graph degree (applies at the next rebuild).", min=4, max=256),
    ParamSpec(
        "hnsw_ef_construction",
        64,
        "HNSW build beam width (applies at the next rebuild): higher = better graph, slower.",
        min=8,
        max=2048,
    ),
    ParamSpec(
        "hnsw_ef_search",
        64,
        "HNSW search beam width: higher = better recall, slower.",
        min=8,
        max=8192,
    ),
]


def check_params(values: Mapping[str, Any]) -> str | None:
    """Return why a set of identity_node values is inconsistent as a whole, or None when fine."""
    embedder = str(values.get("embedder", "dlib_resnet_v1_128"))
    accept, reject = resolve_thresholds(
        embedder,
        float(values.get("accept_threshold", EMBEDDER_DEFAULT)),
        float(values.get("reject_threshold", EMBEDDER_DEFAULT)),
    )
    if reject > accept:
        return f"reject_threshold {reject} exceeds accept_threshold {accept} for {embedder}"
    instant = resolve_instant(
        embedder, float(values.get("instant_accept_threshold", EMBEDDER_DEFAULT)), accept
    )
    if instant < accept:
        return f"instant_accept_threshold {instant} is below accept_threshold {accept}"
    window = int(values.get("vote_window", 5))
    min_votes = int(values.get("min_votes", 2))
    if min_votes > window:
        return f"min_votes={min_votes} exceeds vote_window={window}"
    template = str(values.get("greeting_template", ""))
    try:
        template.format(name="Alex")
    except (KeyError, IndexError, ValueError) as exc:
        return f"greeting_template {template!r} is not valid (only {{name}} is allowed): {exc}"
    return None
