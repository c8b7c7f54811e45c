"""Unknown-face clustering: incremental assignment, periodic re-clustering with stable ids,
and an evaluation of cluster quality against ground-truth labels.

Vectors are L2-normalised float32 rows; similarity is cosine (dot product). A cluster id is a
non-negative int that survives re-clustering when the cluster keeps (most of) its members;
``PENDING`` (-1) marks a face that belongs to no cluster (yet).

A face and a cluster are as similar as the face's mean cosine similarity to the cluster's
members (average linkage): the dot product with the mean of the members' unit vectors
(``means_of``). It is the measure the periodic re-clustering merges by (average linkage), so
faces are grouped by one rule as they arrive and when re-clustered. The cosine to the
normalised centroid is never lower and overrates a face against a spread-out cluster (a
cluster of mean pairwise similarity 0.95 has a mean vector of norm ~0.975: a face at 0.92 to
its members is at ~0.94 to its centroid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .records import PENDING

METHODS = ("agglomerative", "dbscan")


@dataclass(frozen=True)
class ClusterParams:
    """How unknown faces are grouped."""

    similarity: float = 0.75
    min_size: int = 3
    method: str = "agglomerative"
    max_items: int = 4000

    def __post_init__(self) -> None:
        if not 0.0 < self.similarity < 1.0:
            raise ValueError(f"cluster similarity must be within (0, 1), got {self.similarity}")
        if self.min_size < 1:
            raise ValueError(f"cluster min_size must be >= 1, got {self.min_size}")
        if self.method not in METHODS:
            raise ValueError(f"cluster method {self.method!r} is not one of {list(METHODS)}")
        if self.max_items < 2:
            raise ValueError(f"cluster max_items must be >= 2, got {self.max_items}")


def _normalize_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def centroid(vectors: np.ndarray) -> np.ndarray:
    """Return the L2-normalised mean of unit rows."""
    return _normalize_rows(_normalize_rows(vectors).mean(axis=0))[0]


def means_of(vectors: np.ndarray, ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Return ``{cluster_id: mean of its unit rows}`` (not normalised) for every non-pending id:
    ``means[c] @ v`` is ``v``'s average similarity to cluster ``c``'s members."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    v = _normalize_rows(vectors) if len(ids_arr) else np.zeros((0, 1), np.float32)
    return {int(cid): v[ids_arr == cid].mean(axis=0) for cid in np.unique(ids_arr)
            if cid != PENDING}


def nearest_cluster(
    vector: np.ndarray, means: Mapping[int, np.ndarray], similarity: float
) -> tuple[int, float]:
    """Return (cluster id, average similarity) of the cluster ``vector`` is most similar to
    (``means`` from ``means_of``), PENDING if below ``similarity``."""
    if not means:
        return PENDING, float("nan")
    keys = list(means)
    sims = np.stack([means[k] for k in keys]) @ np.asarray(vector, dtype=np.float32)
    best = int(np.argmax(sims))
    if sims[best] >= similarity:
        return keys[best], float(sims[best])
    return PENDING, float(sims[best])


def pending_group(
    vector: np.ndarray,
    pending_ids: Sequence[int],
    pending_vectors: np.ndarray,
    similarity: float,
    min_size: int,
) -> list[int]:
    """Return the pending faces that form a new cluster with ``vector`` (empty: too few)."""
    if len(pending_ids) == 0 or min_size < 1:
        return []
    sims = _normalize_rows(pending_vectors) @ np.asarray(vector, dtype=np.float32)
    members = [int(i) for i, s in zip(pending_ids, sims, strict=True) if s >= similarity]
    return members if len(members) + 1 >= min_size else []


def cluster_vectors(vectors: np.ndarray, params: ClusterParams) -> np.ndarray:
    """Return labels 0..k-1 for groups of at least ``min_size`` and PENDING for the rest."""
    v = _normalize_rows(vectors) if len(vectors) else np.zeros((0, 1), np.float32)
    n = v.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    distance = 1.0 - params.similarity
    if n == 1:
        raw = np.zeros(1, dtype=np.int64)
    elif params.method == "dbscan":
        from sklearn.cluster import DBSCAN

        raw = DBSCAN(eps=distance, min_samples=params.min_size, metric="cosine").fit_predict(v)
    else:
        from sklearn.cluster import AgglomerativeClustering

        raw = AgglomerativeClustering(
            n_clusters=None, metric="cosine", linkage="average", distance_threshold=distance
        ).fit_predict(v)
    raw = np.asarray(raw, dtype=np.int64)
    labels = np.full(n, PENDING, dtype=np.int64)
    nxt = 0
    for lab in sorted({int(x) for x in raw if x >= 0}, key=lambda x: int(np.argmax(raw == x))):
        members = raw == lab
        if int(members.sum()) >= params.min_size:
            labels[members] = nxt
            nxt += 1
    return labels


def stable_ids(
    new_labels: np.ndarray, old_ids: np.ndarray, next_id: int
) -> tuple[np.ndarray, int]:
    """Map new labels onto old cluster ids by maximal member overlap (Hungarian).

    Returns (ids per item, next unused id). A new cluster keeps the old id it shares most
    members with; only clusters with no old counterpart get fresh ids (from ``next_id``).
    """
    from scipy.optimize import linear_sum_assignment

    new_labels = np.asarray(new_labels, dtype=np.int64)
    old_ids = np.asarray(old_ids, dtype=np.int64)
    out = np.full(new_labels.shape, PENDING, dtype=np.int64)
    new_set = sorted({int(x) for x in new_labels if x != PENDING},
                     key=lambda x: int(np.argmax(new_labels == x)))
    old_set = sorted({int(x) for x in old_ids if x != PENDING})
    mapping: dict[int, int] = {}
    if new_set and old_set:
        overlap = np.zeros((len(new_set), len(old_set)), dtype=np.int64)
        new_index = {lab: i for i, lab in enumerate(new_set)}
        old_index = {lab: j for j, lab in enumerate(old_set)}
        for nl, ol in zip(new_labels, old_ids, strict=True):
            if PENDING not in (nl, ol):
                overlap[new_index[int(nl)], old_index[int(ol)]] += 1
        rows, cols = linear_sum_assignment(-overlap)
        for r, c in zip(rows, cols, strict=True):
            if overlap[r, c] > 0:
                mapping[new_set[r]] = old_set[c]
    for lab in new_set:
        if lab not in mapping:
            mapping[lab] = next_id
            next_id += 1
    for lab, cid in mapping.items():
        out[new_labels == lab] = cid
    return out, next_id


def recluster(
    vectors: np.ndarray, old_ids: Sequence[int], params: ClusterParams, next_id: int
) -> tuple[np.ndarray, int]:
    """Re-cluster all ``vectors`` and return (stable cluster ids, next unused id)."""
    labels = cluster_vectors(vectors, params)
    return stable_ids(labels, np.asarray(old_ids, dtype=np.int64), next_id)


@dataclass(frozen=True)
class ClusterQuality:
    """Agreement of predicted clusters with true identities (1.0 = perfect)."""

    purity: float
    completeness: float
    homogeneity: float
    v_measure: float
    adjusted_rand: float
    num_clusters: int
    noise_fraction: float


def cluster_quality(
    labels_true: Sequence[object], labels_pred: Sequence[int], *, noise_as_singletons: bool = True
) -> ClusterQuality:
    """Score predicted cluster ids against true labels; PENDING items count as singletons."""
    from sklearn import metrics

    true = np.asarray([str(x) for x in labels_true])
    pred = np.asarray(labels_pred, dtype=np.int64).copy()
    if true.shape[0] != pred.shape[0]:
        raise ValueError(f"{true.shape[0]} true labels but {pred.shape[0]} predicted")
    n = pred.shape[0]
    if n == 0:
        raise ValueError("no labels to score")
    noise = pred == PENDING
    num_clusters = len({int(x) for x in pred[~noise]})
    if noise_as_singletons and noise.any():
        start = int(pred.max(initial=0)) + 1
        pred[noise] = np.arange(start, start + int(noise.sum()))
    contingency = metrics.cluster.contingency_matrix(true, pred)
    purity = float(contingency.max(axis=0).sum() / n)
    h, c, v = metrics.homogeneity_completeness_v_measure(true, pred)
    return ClusterQuality(
        purity=purity,
        completeness=float(c),
        homogeneity=float(h),
        v_measure=float(v),
        adjusted_rand=float(metrics.adjusted_rand_score(true, pred)),
        num_clusters=num_clusters,
        noise_fraction=float(noise.mean()),
    )
