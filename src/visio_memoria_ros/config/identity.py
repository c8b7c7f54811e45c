"""identity_node parameters, and the per-embedder thresholds they default to.

Thresholds are cosine similarities between L2-normalised embeddings. They depend on the
embedder, so ``accept_threshold``, ``reject_threshold`` and ``accept_margin`` default to the
sentinel ``EMBEDDER_DEFAULT`` (-1.0), meaning "take the value for the active embedder from
``EMBEDDER_DEFAULTS``". A face (a track, over its vote window) is KNOWN when its best person
reaches accept AND beats the runner-up person by the margin; UNKNOWN below reject; UNCERTAIN
in between.

==================  ====  ======  ======  ======  ==========================================
embedder id         dim   accept  reject  margin  source of the numbers
==================  ====  ======  ======  ======  ==========================================
dlib_resnet_v1_128  128   0.9405  0.9214  0.033   calibrated, never tested on: see below
onnx_arcface        512   0.450   0.300   0.0     usual ArcFace/InsightFace verification
                                                  range; calibrate
dinov3_vitb16       768   0.800   0.650   0.0     placeholder: frozen DINOv3 is weak for
                                                  faces; calibrate before relying on it
(any other id)      -     0.600   0.450   0.0     generic fallback; calibrate
==================  ====  ======  ======  ======  ==========================================

Where the dlib numbers come from (``python bench/bench_identity.py`` recomputes them and says
whether they still match). Calibration data, used for nothing that is reported as accuracy:
the BBT identities amy, bernadette, howard and stuart (their 20 gallery crops and 5 group-photo
faces) and all 540 faces of the 8 strangers of street.mp4 (a 1080p street clip, tracked and
embedded by the same Perceiver and dlib ResNet). Genuine probes: each crop against the other
crops (its own left out) and the group-photo faces, 25; impostor probes: the street faces
against the four, and each of the four against the other three, 565. Rule
(``identity.calibration``, target false-accept rate 0.001 per image, margin and reject losing
at most 1 % of genuine probes): margin = the smallest genuine best-vs-runner-up gap (25
probes cannot resolve 1 %), accept = just above the highest impostor that clears that margin
(565 impostors cannot resolve 0.001 either), reject = just below the lowest genuine score.
The aggregate (``centroid``) was chosen on the same data: max / mean of top 3 / centroid gave
92 / 96 / 96 % of the genuine probes KNOWN at their own calibrated thresholds, and with one
wrong image filed under a person 372 / 19 / 6 of 440 frames of that stranger were KNOWN as
that person. Video strangers are closer to everybody than still photos (street faces average
0.90 to their nearest BBT person), which is why accept rose from the 0.915 once fitted on the
BBT group photos. Held-out figures: README "Identity: held-out results". For your own camera and
people, calibrate with ``visio-memoria eval identify --target-far``.

A track needs ``min_votes`` embeddings before it is KNOWN, unless one is so close to a person
that waiting adds nothing: at or above the *instant* threshold (accept + the embedder's instant
margin: dlib 0.9405 + 0.015 = 0.9555) a single embedding is enough (the margin still applies),
which lets a clearly seen person be greeted on the first one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .embedding import FACE_EMBEDDER
from .shared import UNTRACKED_HANDOFF, VISIT_ABSENCE
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
    margin: float = 0.0


EMBEDDER_DEFAULTS: Mapping[str, EmbedderDefaults] = {
    "dlib_resnet_v1_128": EmbedderDefaults(
        accept=0.9405, reject=0.9214, dim=128, instant_margin=0.015, margin=0.033
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


def resolve_margin(embedder: str, margin: float) -> float:
    """The best-vs-runner-up margin: ``margin``, or the embedder's default for the sentinel."""
    return embedder_defaults(embedder).margin if margin == EMBEDDER_DEFAULT else float(margin)


def resolve_instant(embedder: str, instant: float, accept: float) -> float:
    """The single-embedding accept threshold: ``instant``, or accept + the embedder's margin."""
    if instant != EMBEDDER_DEFAULT:
        return float(instant)
    return min(1.0, accept + embedder_defaults(embedder).instant_margin)


PARAMS: list[ParamSpec] = [
    ParamSpec(
        "embedder",
        "dlib_resnet_v1_128",
        "Embedder id whose gallery is loaded at start, before the first face arrives: the id "
        "the faces carry (Face.embedder; dlib_resnet_v1_128 for embedding_node's face_embedder "
        "dlib, dlib_torch and dlib_cpp), not a face_embedder kind (refused). From then on the "
        "faces decide: faces of another embedder are an ERROR in the log and on /diagnostics "
        "while the node loads the gallery of the embedder it receives. Set it to that id to "
        "have the right gallery from the first frame.",
        allow_empty=False,
        read_only=True,
    ),
    ParamSpec(
        "accept_threshold",
        EMBEDDER_DEFAULT,
        "Cosine similarity at or above which a track is KNOWN. -1.0 = the active embedder's "
        "default (config/identity.py EMBEDDER_DEFAULTS: dlib_resnet_v1_128 0.9405, onnx_arcface "
        "0.45, dinov3_vitb16 0.80, other 0.60). The dlib values (accept, reject, margin) were "
        "calibrated for a false-accept rate of 0.001 per image on BBT amy, bernadette, howard, "
        "stuart and the street.mp4 strangers, data no reported figure uses; calibrate on your "
        "own people with visio-memoria eval identify --target-far.",
        min=-1.0,
        max=1.0,
    ),
    ParamSpec(
        "reject_threshold",
        EMBEDDER_DEFAULT,
        "Cosine similarity below which a track is UNKNOWN (a stranger); between reject and "
        "accept it is UNCERTAIN. -1.0 = the active embedder's default (dlib_resnet_v1_128 0.9214, "
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
    ParamSpec(
        "accept_margin",
        EMBEDDER_DEFAULT,
        "A track (or face) is KNOWN only when its best person's similarity beats the runner-up "
        "person's (the best other person, whoever it is) by at least this much; 0 = no margin "
        "rule. -1.0 = the active embedder's default (dlib_resnet_v1_128 0.033, others 0).",
        min=-1.0,
        max=1.0,
    ),
    UNTRACKED_HANDOFF,
    ParamSpec(
        "search_k",
        32,
        "Nearest gallery vectors (aggregate centroid: nearest persons) retrieved per face before "
        "aggregating them per person.",
        min=1,
        max=1024,
    ),
    ParamSpec(
        "aggregate",
        "centroid",
        "How a person's vectors become one score: the similarity to the normalised mean of all "
        "the person's vectors (centroid; chosen by measurement, see config/identity.py: one "
        "wrong image filed under a person barely moves it), the max similarity, or the mean of "
        "the person's top aggregate_top_n similarities.",
        choices=("max", "mean_top_n", "centroid"),
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
    VISIT_ABSENCE,
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
    if embedder in (FACE_EMBEDDER.choices or ()):
        return (f"embedder {embedder!r} is a face_embedder kind (embedding_node), not an "
                "embedder id: give the id its faces carry (Face.embedder, the face_embedder "
                "value on embedding_node's /diagnostics), e.g. dlib_resnet_v1_128 for dlib")
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
    margin = resolve_margin(embedder, float(values.get("accept_margin", EMBEDDER_DEFAULT)))
    if margin < 0:
        return f"accept_margin {margin} is negative (-1.0 is the embedder default)"
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
