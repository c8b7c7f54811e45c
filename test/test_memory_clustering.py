"""Unknown-face clustering on synthetic identities: purity, stable ids, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from visio_memoria_ros.memory import PENDING, ClusterParams, StoreOptions, rules
from visio_memoria_ros.memory.clustering import (
    centroid,
    cluster_quality,
    cluster_vectors,
    means_of,
    nearest_cluster,
    pending_group,
    recluster,
    stable_ids,
)

DIM = 64


def identities(n_ids: int, per_id: int, noise: float = 0.35, seed: int = 0,
               first_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around n_ids random centres (cosine to own centre ~0.94)."""
    rng = np.random.default_rng(seed)
    vectors, labels = [], []
    for k in range(first_id, first_id + n_ids):
        c = np.random.default_rng(10_000 + k).normal(size=DIM)
        c /= np.linalg.norm(c)
        for _ in range(per_id):
            v = c + noise * rng.normal(size=DIM) / np.sqrt(DIM)
            vectors.append(v / np.linalg.norm(v))
            labels.append(k)
    return np.asarray(vectors, dtype=np.float32), np.asarray(labels)


PARAMS = ClusterParams(similarity=0.7, min_size=3)


@pytest.mark.parametrize("method", ["agglomerative", "dbscan"])
def test_batch_clustering_is_pure_and_complete(method: str) -> None:
    x, y = identities(6, 10)
    labels = cluster_vectors(x, ClusterParams(similarity=0.7, min_size=3, method=method))
    q = cluster_quality(y, labels)
    assert q.purity == 1.0 and q.completeness > 0.95 and q.num_clusters == 6
    assert q.noise_fraction == 0.0


def test_small_groups_stay_pending() -> None:
    x, _ = identities(2, 5)
    pair, _ = identities(1, 2, first_id=7)
    labels = cluster_vectors(np.vstack([x, pair]), PARAMS)
    assert (labels[-2:] == PENDING).all() and set(labels[:-2]) == {0, 1}
    assert cluster_vectors(np.zeros((0, DIM), np.float32), PARAMS).shape == (0,)
    assert cluster_vectors(x[:1], PARAMS).tolist() == [PENDING]
    assert cluster_vectors(x[:1], ClusterParams(min_size=1)).tolist() == [0]


def test_ids_are_stable_across_reclustering() -> None:
    x, y = identities(4, 8)
    ids, nxt = recluster(x, [PENDING] * len(x), PARAMS, next_id=10)
    assert sorted(set(ids.tolist())) == [10, 11, 12, 13] and nxt == 14
    again, nxt2 = recluster(x, ids, PARAMS, nxt)
    assert again.tolist() == ids.tolist() and nxt2 == nxt  # nothing new, nothing renamed
    # Shuffled order, more faces of the old people and a new person: old ids survive.
    more, y_more = identities(4, 3, seed=5)
    new, y_new = identities(1, 6, seed=6, first_id=20)
    xs = np.vstack([x, more, new])
    old = np.r_[ids, [PENDING] * (len(more) + len(new))]
    perm = np.random.default_rng(3).permutation(len(xs))
    out, nxt3 = recluster(xs[perm], old[perm], PARAMS, nxt)
    out = out[np.argsort(perm)]
    assert out[: len(x)].tolist() == ids.tolist()
    for k in range(4):
        assert set(out[len(x):len(x) + len(more)][y_more == k]) == set(ids[y == k])
    assert set(out[-len(new):]) == {nxt} and nxt3 == nxt + 1
    q = cluster_quality(np.r_[y, y_more, y_new], out)
    assert q.purity == 1.0 and q.completeness == 1.0


def test_stable_ids_split_and_merge() -> None:
    old = np.array([5, 5, 5, 5, 6, 6, PENDING])
    split = np.array([0, 0, 0, 1, 2, 2, 2])  # 5 splits 3/1; 6 gains the pending face
    ids, nxt = stable_ids(split, old, next_id=7)
    assert ids.tolist() == [5, 5, 5, 7, 6, 6, 6] and nxt == 8
    merged = np.array([0, 0, 0, 0, 0, 0, PENDING])
    ids, nxt = stable_ids(merged, old, next_id=7)
    assert ids.tolist() == [5, 5, 5, 5, 5, 5, PENDING] and nxt == 7


def test_incremental_helpers() -> None:
    x, y = identities(3, 5)
    cents = means_of(x, y.tolist())
    probe, _ = identities(1, 1, seed=9, first_id=1)
    assert nearest_cluster(probe[0], cents, 0.7)[0] == 1
    stranger, _ = identities(1, 1, first_id=50)
    cid, sim = nearest_cluster(stranger[0], cents, 0.7)
    assert cid == PENDING and sim < 0.7
    assert nearest_cluster(probe[0], {}, 0.7)[0] == PENDING
    assert pending_group(probe[0], [4, 5, 6], x[[5, 6, 0]], 0.7, 3) == [4, 5]
    assert pending_group(probe[0], [4], x[[5]], 0.7, 3) == []


def test_cluster_quality() -> None:
    q = cluster_quality(["a", "a", "b", "b"], [0, 0, 1, 1])
    assert (q.purity, q.completeness, q.homogeneity, q.adjusted_rand) == (1.0, 1.0, 1.0, 1.0)
    mixed = cluster_quality(["a", "a", "b", "b"], [0, 0, 0, 0])
    assert mixed.purity == 0.5 and mixed.completeness == 1.0 and mixed.homogeneity == 0.0
    noisy = cluster_quality(["a", "a", "b", "b"], [0, 0, PENDING, PENDING])
    assert noisy.purity == 1.0 and noisy.completeness < 1.0 and noisy.noise_fraction == 0.5
    assert noisy.num_clusters == 1
    with pytest.raises(ValueError, match="3 true labels"):
        cluster_quality(["a", "b", "c"], [0, 1])
    with pytest.raises(ValueError):
        ClusterParams(similarity=1.5)
    with pytest.raises(ValueError):
        ClusterParams(method="kmeans")


def test_store_incremental_then_recluster(make_store) -> None:
    x, y = identities(5, 8, seed=1)
    order = np.random.default_rng(2).permutation(len(x))
    opts = StoreOptions(cluster=PARAMS)
    with make_store(opts) as store:
        ids = {}
        for i in order:
            ids[i] = store.add_unknown(x[i], "emb", t=float(i)).unknown_id
        by_id = {u.unknown_id: u.cluster_id for u in store.list_unknowns()}
        pred = [by_id[ids[i]] for i in range(len(x))]
        q = cluster_quality(y, pred)
        assert q.purity == 1.0 and q.completeness > 0.9, q
        before = {c.cluster_id: c.size for c in store.list_clusters()}
        rev = store.revision
        moved = store.recluster()
        after = {u.unknown_id: u.cluster_id for u in store.list_unknowns()}
        q2 = cluster_quality(y, [after[ids[i]] for i in range(len(x))])
        assert q2.purity == 1.0 and q2.completeness == 1.0 and q2.noise_fraction == 0.0
        # Every incremental cluster kept its id through the re-clustering.
        assert set(before) <= set(after.values())
        assert (store.revision == rev) == (moved == 0)
        assert store.recluster() == 0  # a second pass changes nothing
        # A new person's faces form a new cluster with a fresh id.
        newx, _ = identities(1, 3, seed=3, first_id=40)
        returned = [store.add_unknown(v, "emb") for v in newx]
        assert [r.cluster_id for r in returned][:2] == [PENDING, PENDING]  # too few yet
        new_ids = {store.get_unknown(r.unknown_id).cluster_id for r in returned}
        assert len(new_ids) == 1 and new_ids.isdisjoint(set(after.values()))
        assert PENDING not in new_ids


def spread_cluster(cos: float, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors, each at cosine ``cos`` to the axis e0 and symmetric around it (their
    centroid is e0), and e0 itself."""
    sin = float(np.sqrt(1.0 - cos * cos))
    members = np.zeros((n, DIM), np.float32)
    for i in range(n):
        members[i, 0] = cos
        members[i, 1 + i // 2] = sin if i % 2 == 0 else -sin
    axis = np.zeros(DIM, np.float32)
    axis[0] = 1.0
    return members, axis


def test_a_face_joins_by_its_average_similarity_to_the_members_not_the_centroid() -> None:
    # A spread-out cluster: each member at 0.90 to the probe, the centroid exactly the probe.
    members, probe = spread_cluster(0.90)
    assert float(centroid(members) @ probe) == pytest.approx(1.0, abs=1e-6)
    means = means_of(members, [3] * len(members))
    assert float(means[3] @ probe) == pytest.approx(0.90, abs=1e-5)
    params = ClusterParams(similarity=0.92, min_size=3)
    index = rules.UnknownIndex(ids=[1, 2, 3, 4], vectors=members, clusters=[3, 3, 3, 3])
    # Neither as the nearest cluster nor as its own track's cluster: the re-clustering's
    # average linkage would not keep it there either.
    assert rules.assign_cluster(index, probe, params) == (PENDING, [])
    assert rules.assign_cluster(index, probe, params, track_clusters=[3, 3]) == (PENDING, [])
    assert nearest_cluster(probe, means, 0.92)[0] == PENDING
    # A tighter cluster (members at 0.95 to the probe) takes it.
    tight, probe = spread_cluster(0.95)
    index = rules.UnknownIndex(ids=[1, 2, 3, 4], vectors=tight, clusters=[3, 3, 3, 3])
    assert rules.assign_cluster(index, probe, params) == (3, [])
    assert rules.assign_cluster(index, probe, params, track_clusters=[3]) == (3, [])
