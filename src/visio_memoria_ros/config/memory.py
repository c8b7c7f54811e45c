"""memory_node parameters."""

from __future__ import annotations

from .shared import VISIT_ABSENCE
from .spec import ParamSpec

#: The face-quality gate (perception.quality.QualityGate, one parameter per field). Defaults
#: from `python bench/calibrate_quality_gate.py`: each threshold refuses as many negatives
#: (non-face detections, backs of heads, blurred, dark, over-exposed and tiny copies) as it can
#: while refusing at most 1 % of the recognisable faces (39 BBT gallery crops: the detector
#: finds no face in the 40th, bernadette5.png; and the 128 street.mp4 detections that the hand
#: labels in bench/data/street_gate_labels.json do not mark as non-faces, tops of heads,
#: profiles or occluded) on its own; all together they keep 160 of those 167 faces and refuse
#: 270 of 327 negatives (the table per class is in bench/README.md).
GATE_PARAMS: list[ParamSpec] = [
    ParamSpec("gate_min_score", 0.9, "Quality gate: lowest detector score remembered.",
              min=0.0, max=1.0),
    ParamSpec("gate_min_face_px", 29.364,
              "Quality gate: smallest face box side remembered [px of the camera image].",
              min=0.0, max=4096.0),
    ParamSpec("gate_max_yaw", 1.245,
              "Quality gate: largest head turn remembered: the nose tip's offset from the eye "
              "midpoint in half eye distances (0 frontal, about 1 when it reaches an eye).",
              min=0.0, max=10.0),
    ParamSpec("gate_min_eye_ratio", 0.293,
              "Quality gate: smallest eye distance / face box width remembered (both eyes "
              "visible).", min=0.0, max=1.0),
    ParamSpec("gate_min_sharpness", 10.84,
              "Quality gate: lowest variance of the Laplacian of the aligned crop's inner face "
              "(grey, 112 x 112) remembered; below is blurred or upsampled from a tiny face.",
              min=0.0, max=100000.0),
    ParamSpec("gate_min_isotropy", 0.265,
              "Quality gate: lowest ratio of the inner face's second-derivative variance across "
              "its weaker image axis to the stronger one remembered; below is smeared in one "
              "direction (motion blur).", min=0.0, max=1.0),
    ParamSpec("gate_min_brightness", 70.261,
              "Quality gate: darkest mean grey level of the inner face remembered.",
              min=0.0, max=255.0),
    ParamSpec("gate_max_brightness", 191.388,
              "Quality gate: brightest mean grey level of the inner face remembered.",
              min=0.0, max=255.0),
    ParamSpec("gate_min_contrast", 34.94,
              "Quality gate: lowest standard deviation of the inner face's grey levels "
              "remembered.", min=0.0, max=255.0),
    ParamSpec("gate_max_clipped", 0.147,
              "Quality gate: largest fraction of the inner face at grey <= 5 or >= 250 "
              "remembered (under- or over-exposed).", min=0.0, max=1.0),
    ParamSpec("gate_min_faceness", -1.421,
              "Quality gate: lowest score of dlib's HOG frontal-face detector on the aligned "
              "crop remembered (a second opinion: hair from behind, hands and other non-faces "
              "score low; -2 = nothing found).", min=-2.0, max=5.0),
]

PARAMS: list[ParamSpec] = [
    ParamSpec(
        "data_dir",
        "~/.local/share/visio_memoria",
        "Directory of the memory (created 0700; '~' expands). Holds the SQLite file and "
        "its -wal/-shm side files, all 0600 (unused for a postgresql:// memory).",
        allow_empty=False,
        read_only=True,
    ),
    ParamSpec(
        "db_path",
        "",
        "Where the memory is. A file path (empty = <data_dir>/memory.db; a relative path is "
        "taken inside data_dir) or sqlite:///path for the SQLite memory of this robot; "
        "postgresql://user@host:port/dbname[?sslmode=verify-full] for a memory shared by "
        "several robots (PostgreSQL + pgvector; libpq parameters in the query are passed "
        "through). Never put a password here: it comes from PGPASSWORD, ~/.pgpass or "
        "db_password_file. Any other URL scheme is refused.",
        read_only=True,
    ),
    ParamSpec(
        "db_password_file",
        "",
        "File (mode 0600) whose first line is the PostgreSQL password; empty = libpq's own "
        "PGPASSWORD or ~/.pgpass. Unused for an SQLite memory.",
        read_only=True,
    ),
    ParamSpec(
        "robot_id",
        "",
        "Name of this robot, written into its visits and unknown faces; each robot's open "
        "visits are its own. Empty = the node's namespace without the leading slash "
        "(/robot1 -> robot1), or the host name when the node runs at the root namespace. "
        "Give every robot sharing one memory its own id.",
    ),
    ParamSpec(
        "sighting_buffer",
        1000,
        "Sightings (visit updates, unknown faces) kept in memory while the memory server "
        "cannot be reached, written in order once it is back; past this many the oldest are "
        "dropped (counted on /diagnostics). 0 = drop at once.",
        min=0,
        max=1000000,
        read_only=True,
    ),
    ParamSpec(
        "synchronous",
        "FULL",
        "Durability. FULL: every committed change (a label, a 'forget me') survives a power "
        "cut, at one fsync per commit. NORMAL: faster on slow storage, never corrupt, but the "
        "last commits may be lost on power loss (PostgreSQL: synchronous_commit off).",
        choices=("FULL", "NORMAL"),
        read_only=True,
    ),
    ParamSpec(
        "store_crops",
        True,
        "Keep the aligned face crop with every stored face (needed to re-embed when the "
        "embedder changes and to show faces for labelling). Applies from the next face on: "
        "false stores no crop from then on.",
    ),
    ParamSpec(
        "crop_format", "jpeg", "Compression of stored face crops.", choices=("jpeg", "png", "webp")
    ),
    ParamSpec(
        "crop_quality", 90, "JPEG/WebP quality of stored crops (PNG ignores it).", min=1, max=100
    ),
    VISIT_ABSENCE,
    ParamSpec(
        "cluster_similarity",
        0.935,
        "Mean cosine similarity to a cluster's members at or above which an unknown face "
        "joins it (average linkage, as it arrives), and 1 - distance threshold of the "
        "periodic re-clustering. Depends on the embedder: 0.935 for the default dlib embedder, "
        "calibrated by bench/calibrate_clustering.py on BBT amy, bernadette, howard, stuart "
        "and street.mp4 (purity >= 0.98 in 95 % of orders); "
        "ArcFace ~0.45.",
        min=0.01,
        max=0.99,
    ),
    ParamSpec(
        "cluster_min_size",
        3,
        "Unknown faces needed to form a cluster; smaller groups stay pending (-1).",
        min=1,
        max=1000,
    ),
    ParamSpec(
        "cluster_method",
        "agglomerative",
        "Re-clustering algorithm: agglomerative (cosine, average linkage, distance "
        "threshold) or dbscan.",
        choices=("agglomerative", "dbscan"),
    ),
    ParamSpec(
        "recluster_period",
        300.0,
        "Re-cluster all unknown faces every this many seconds (cluster ids stay stable); "
        "0 = never.",
        min=0.0,
        max=86400.0,
    ),
    ParamSpec(
        "recluster_max_unknowns",
        4000,
        "Re-cluster at most this many most recent unknown faces per embedder (memory "
        "and time grow with the square of it).",
        min=2,
        max=50000,
    ),
    ParamSpec(
        "max_unknowns_per_track",
        5,
        "Unknown faces kept per face track; past that a better-quality face replaces the "
        "worst one.",
        min=1,
        max=100,
    ),
    ParamSpec(
        "remember_gate",
        True,
        "Remember an unknown face only when its crop passes the face-quality gate (the gate_* "
        "parameters: detector score, size, pose, sharpness, exposure and dlib's HOG faceness "
        "on the aligned crop); the stored quality is then the one measured on that crop. "
        "Identification still runs on every face; only memory is gated. Refused faces are "
        "counted per reason on /diagnostics (not_remembered_<reason>) and never stored. The "
        "gate_* defaults were calibrated by `python bench/calibrate_quality_gate.py` on 167 "
        "faces (39 BBT gallery crops, 128 street.mp4 faces; hand labels in "
        "bench/data/street_gate_labels.json) and 327 non-faces, backs of heads and degraded "
        "crops; the table is in bench/README.md.",
    ),
    *GATE_PARAMS,
    ParamSpec(
        "remember_maybe",
        True,
        "A face that is not KNOWN but whose own embedding reaches identity_node's reject "
        "threshold for an enrolled person is kept as 'maybe <name>?' (the labelling page asks "
        "yes or no) instead of joining the clusters of strangers; false: such faces are not "
        "stored.",
    ),
    ParamSpec(
        "non_face_similarity",
        0.95,
        "A new unknown face at least this similar (cosine) to a face a user rejected as 'not a "
        "face' is not remembered (the rejected embeddings are kept, never their crops). Depends "
        "on the embedder: with dlib, different people's faces stay below 0.92 (BBT crops: "
        "highest 0.913) while the same object in the next frames reaches 0.93-0.97 "
        "(street.mp4).",
        min=0.5,
        max=1.0,
    ),
    ParamSpec(
        "unknown_retention_days",
        30.0,
        "Delete unknown faces not seen for this many days; 0 = keep until labelled or discarded. "
        "A change purges at once.",
        min=0.0,
        max=36500.0,
    ),
    ParamSpec(
        "visit_retention_days",
        365.0,
        "Delete finished visits older than this many days; 0 = keep forever. A change purges at "
        "once.",
        min=0.0,
        max=36500.0,
    ),
    ParamSpec(
        "purge_period",
        3600.0,
        "Run the retention purge (and close stale visits) every this many seconds.",
        min=10.0,
        max=604800.0,
    ),
    ParamSpec(
        "encryption_key_file",
        "",
        "File holding a url-safe base64 32-byte key (mode 0600) to encrypt face crops "
        "and embeddings at rest with AES-256-GCM (needs the 'cryptography' package); "
        "empty = use encryption_key_env.",
        read_only=True,
    ),
    ParamSpec(
        "encryption_key_env",
        "VISIO_MEMORIA_KEY",
        "Name of an environment variable holding the key when encryption_key_file is "
        "empty; unset or empty variable = crops and embeddings stored unencrypted.",
        read_only=True,
    ),
    ParamSpec(
        "reembed_on_start",
        True,
        "After start, once embedding_node's parameters are known (asked from its parameter "
        "service), re-embed the stored crops whose vectors another embedder made, with the "
        "face embedder those parameters describe, and log how many (nobody is forgotten when "
        "the embedder changes). The memory has no embedder setting of its own.",
        read_only=True,
    ),
    ParamSpec(
        "embedding_node",
        "embedding_node",
        "Name of the embedding node (relative to this node's namespace) whose face_embedder "
        "and model parameters re-embedding uses.",
        allow_empty=False,
        read_only=True,
    ),
]
