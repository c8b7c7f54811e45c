"""Unknown faces you can trust, on both memory backends: clusters that hold one person when
track ids swap or restart, labelling exactly the faces shown, "not a face" examples,
"maybe <name>?" candidates, splitting a cluster by hand, faces of tracks that became known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from visio_memoria_ros.memory import (
    PENDING,
    ClusterParams,
    ConflictError,
    MemoryStoreError,
    NotAFaceError,
    NotFoundError,
    OptedOutError,
    StoreOptions,
    cluster_quality,
)

DIM = 64
EMB = "emb"
OPTS = StoreOptions(cluster=ClusterParams(similarity=0.7, min_size=2), max_unknowns_per_track=5,
                    non_face_similarity=0.9)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def centre(ident: int) -> np.ndarray:
    return unit(np.random.default_rng(10_000 + ident).normal(size=DIM))


def face(ident: int, sample: int, noise: float = 0.35) -> np.ndarray:
    """A face of ``ident``: cosine ~0.94 to its centre, ~0 to other identities."""
    rng = np.random.default_rng(ident * 7919 + sample)
    return unit(centre(ident) + noise * rng.normal(size=DIM) / np.sqrt(DIM))


def crop(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)


@pytest.fixture
def store(make_store):
    return make_store(OPTS)


def clusters_by_person(store, truth: dict[int, int]) -> dict[int, set[int]]:
    """{cluster id: the persons its faces belong to} (PENDING left out)."""
    out: dict[int, set[int]] = {}
    for u in store.list_unknowns():
        if u.cluster_id != PENDING:
            out.setdefault(u.cluster_id, set()).add(truth[u.unknown_id])
    return out


# -- clusters that hold one person ----------------------------------------------------------
def test_two_strangers_whose_track_ids_swap_stay_apart(store) -> None:
    truth = {}
    for i in range(12):
        # Two people walk past each other: from frame 6 on the tracker swaps their ids.
        a_key, b_key = ("cam:s1:1", "cam:s1:2") if i < 6 else ("cam:s1:2", "cam:s1:1")
        truth[store.add_unknown(face(1, i), EMB, track_key=a_key, t=float(i)).unknown_id] = 1
        truth[store.add_unknown(face(2, i), EMB, track_key=b_key, t=float(i)).unknown_id] = 2
    mixed = {c: p for c, p in clusters_by_person(store, truth).items() if len(p) > 1}
    assert not mixed, mixed
    ids = list(truth)
    q = cluster_quality([truth[i] for i in ids],
                        [store.get_unknown(i).cluster_id for i in ids])
    assert q.purity == 1.0 and q.num_clusters == 2, q
    # Five faces per person per track at most, never another person's face replaced.
    per_key: dict[tuple[str, int], int] = {}
    for u in store.list_unknowns():
        per_key[(u.track_key, truth[u.unknown_id])] = per_key.get(
            (u.track_key, truth[u.unknown_id]), 0) + 1
    assert max(per_key.values()) <= OPTS.max_unknowns_per_track
    assert {p for _, p in per_key} == {1, 2}


def test_a_reused_track_key_does_not_carry_the_old_cluster(store) -> None:
    """A detector that restarts hands out track 0 again: the new stranger starts afresh."""
    truth = {}
    for i in range(4):
        truth[store.add_unknown(face(3, i), EMB, track_key="cam:0", t=float(i)).unknown_id] = 3
    for i in range(4):
        truth[store.add_unknown(face(4, i), EMB, track_key="cam:0",
                                t=10.0 + i).unknown_id] = 4
    assert all(len(p) == 1 for p in clusters_by_person(store, truth).values())


def test_faces_without_a_track_join_only_by_similarity(store) -> None:
    truth = {}
    for i in range(6):
        for ident in (5, 6, 7):
            truth[store.add_unknown(face(ident, i), EMB, track_key="").unknown_id] = ident
    by_cluster = clusters_by_person(store, truth)
    assert len(by_cluster) == 3 and all(len(p) == 1 for p in by_cluster.values())


# -- labelling exactly what was shown -------------------------------------------------------
def test_label_a_cluster_as_listed_leaves_later_faces_unknown(store) -> None:
    shown = [store.add_unknown(face(1, i), EMB, crop=crop(i)) for i in range(3)]
    listed = store.list_clusters()[0]
    assert listed.revision > 0 and sorted(listed.unknown_ids) == sorted(
        u.unknown_id for u in shown)
    late = store.add_unknown(face(1, 10), EMB, crop=crop(10))  # joins after the user looked
    assert late.cluster_id == listed.cluster_id
    assert store.list_clusters()[0].revision > listed.revision
    res = store.label(cluster_id=listed.cluster_id, cluster_revision=listed.revision,
                      name="Ann")
    assert res.num_embeddings == 3
    assert store.get_unknown(late.unknown_id).cluster_id == listed.cluster_id
    assert sorted(e.embedding_id for e in store.list_embeddings(res.person_id)) == sorted(
        u.unknown_id for u in shown)
    # Without a revision: whatever the cluster holds at the call.
    assert store.label(cluster_id=listed.cluster_id, name="Ann").num_embeddings == 1


def test_label_exactly_the_faces_shown(store) -> None:
    faces = [store.add_unknown(face(2, i), EMB) for i in range(4)]
    ids = [f.unknown_id for f in faces]
    res = store.label(unknown_ids=ids[:2], name="Bob")
    assert res.created and res.num_embeddings == 2
    assert {u.unknown_id for u in store.list_unknowns()} == set(ids[2:])
    # One of the shown faces is gone meanwhile: refused, nothing labelled.
    with pytest.raises(NotFoundError, match=f"unknown face {ids[0]} does not exist"):
        store.label(unknown_ids=[ids[0], ids[2]], person_id=res.person_id)
    assert {u.unknown_id for u in store.list_unknowns()} == set(ids[2:])
    for bad in ({"unknown_ids": [ids[2]], "cluster_id": 0}, {"cluster_revision": 3,
                                                            "unknown_id": ids[2]}):
        with pytest.raises(MemoryStoreError):
            store.label(name="Bob", **bad)


# -- not a face -----------------------------------------------------------------------------
def test_not_a_face_examples_keep_matching_crops_out_until_forgotten(store) -> None:
    hands = [store.add_unknown(face(9, i), EMB, crop=crop(i)) for i in range(3)]
    person = store.add_unknown(face(1, 0), EMB, crop=crop(50))
    cluster = store.get_unknown(hands[0].unknown_id).cluster_id
    n = store.discard_unknowns(cluster_id=cluster, reason="not a face", not_a_face=True)
    assert n == 3 and store.stats().num_non_faces == 3
    with pytest.raises(NotAFaceError, match="not a face"):
        store.add_unknown(face(9, 7), EMB, crop=crop(7))
    assert store.add_unknown(face(1, 1), EMB).unknown_id > person.unknown_id  # faces still in
    # Only embeddings are kept: no crop of the rejected faces is left anywhere.
    assert all(u.unknown_id != h.unknown_id for u in store.list_unknowns() for h in hands)
    assert store.forget_non_faces() == 3 and store.stats().num_non_faces == 0
    assert store.add_unknown(face(9, 7), EMB).unknown_id > 0
    # "Don't remember" deletes without keeping an example.
    one = store.add_unknown(face(8, 0), EMB)
    store.discard_unknowns(unknown_ids=[one.unknown_id], reason="don't remember")
    assert store.stats().num_non_faces == 0


# -- maybe <name>? ----------------------------------------------------------------------------
def test_candidates_wait_for_a_yes_or_no(store) -> None:
    ann = store.create_person("Ann").person_id
    store.add_embedding(ann, face(1, 0), EMB)
    strangers = [store.add_unknown(face(2, i), EMB) for i in range(3)]
    maybes = [store.add_unknown(face(1, 10 + i), EMB, crop=crop(i), candidate_id=ann,
                                candidate_similarity=0.9 - i / 100, quality=0.5)
              for i in range(3)]
    assert all(m.cluster_id == PENDING and m.candidate_id == ann for m in maybes)
    # They join no cluster of strangers, nor re-clustering.
    store.recluster()
    assert {u.cluster_id for u in store.list_unknowns()
            if u.unknown_id in {m.unknown_id for m in maybes}} == {PENDING}
    assert [c.size for c in store.list_clusters()] == [3]
    listed = store.list_candidates()
    assert [(c.unknown_id, c.person_id, c.name) for c in listed] == [
        (m.unknown_id, ann, "Ann") for m in maybes]
    assert math.isclose(listed[0].similarity, 0.9, abs_tol=1e-6) and listed[0].crop is not None
    assert store.stats().num_candidates == 3
    # Yes: the face goes to Ann.
    store.label(unknown_ids=[maybes[0].unknown_id], person_id=ann)
    assert store.get_person(ann).num_embeddings == 2
    # No: a negative link (the matcher keeps it away from Ann), an ordinary unknown face now.
    assert store.reject_candidates([maybes[1].unknown_id]) == 1
    after = store.get_unknown(maybes[1].unknown_id)
    assert after.candidate_id == -1 and math.isnan(after.candidate_similarity)
    assert [(n.person_id, n.face_id) for n in store.gallery(EMB).negatives] == [
        (ann, maybes[1].unknown_id)]
    with pytest.raises(ConflictError, match="not offered"):
        store.reject_candidates([strangers[0].unknown_id])
    with pytest.raises(ConflictError):
        store.split_cluster([maybes[2].unknown_id])


def test_candidates_follow_their_person(store) -> None:
    ann = store.create_person("Ann").person_id
    ann2 = store.create_person("Ann B").person_id
    m1 = store.add_unknown(face(1, 1), EMB, candidate_id=ann2, candidate_similarity=0.9)
    store.merge_persons(ann2, ann)
    assert store.get_unknown(m1.unknown_id).candidate_id == ann
    store.set_never_remember(ann, True)
    with pytest.raises(OptedOutError):
        store.add_unknown(face(1, 2), EMB, candidate_id=ann, candidate_similarity=0.9)
    store.set_never_remember(ann, False)
    store.forget_person(ann)  # faces offered as "maybe Ann" are likely hers: they go too
    with pytest.raises(NotFoundError):
        store.get_unknown(m1.unknown_id)
    # A candidate forgotten meanwhile: the face is a stranger's.
    lone = store.add_unknown(face(1, 3), EMB, candidate_id=ann, candidate_similarity=0.9)
    assert lone.candidate_id == -1


# -- split, known tracks, thumbnails ----------------------------------------------------------
def test_split_a_cluster_by_hand_survives_reclustering(store) -> None:
    mixed = [store.add_unknown(face(1, i), EMB).unknown_id for i in range(4)]
    cluster = store.get_unknown(mixed[0]).cluster_id
    assert {store.get_unknown(m).cluster_id for m in mixed} == {cluster} != {PENDING}
    moved = mixed[:2]
    new = store.split_cluster(moved)
    assert new != cluster
    assert {store.get_unknown(i).cluster_id for i in moved} == {new}
    store.recluster()  # they would join again by similarity; the user's split stands
    assert {store.get_unknown(i).cluster_id for i in moved} == {new}
    assert {store.get_unknown(m).cluster_id for m in mixed[2:]} == {cluster}


def test_faces_of_tracks_that_became_known_are_discarded(store) -> None:
    keep = store.add_unknown(face(1, 0), EMB, track_key="cam:s:1")
    gone = [store.add_unknown(face(2, i), EMB, track_key="cam:s:2") for i in range(2)]
    other_robot = store.add_unknown(face(2, 5), EMB, track_key="cam:s:2", robot_id="r2")
    assert store.discard_tracks(["cam:s:2"]) == 2
    left = {u.unknown_id for u in store.list_unknowns()}
    assert left == {keep.unknown_id, other_robot.unknown_id}
    assert all(g.unknown_id not in left for g in gone)
    assert store.discard_tracks([]) == 0


def test_person_thumbnail_is_the_best_quality_crop(store) -> None:
    pid = store.create_person("Cy").person_id
    assert store.person_thumbnail(pid) is None
    for q in (0.2, 0.9, 0.5):
        store.add_embedding(pid, face(3, int(q * 10)), EMB, quality=q, crop=crop(int(q * 10)))
    thumb = store.person_thumbnail(pid)
    assert thumb is not None and thumb.shape == (16, 16, 3)
    best = max(store.list_embeddings(pid, with_crops=True), key=lambda e: e.quality)
    np.testing.assert_array_equal(thumb, best.crop)


def test_cluster_samples_best_quality_first(store) -> None:
    for i, q in enumerate((0.3, 0.9, 0.1, 0.6)):
        store.add_unknown(face(4, i), EMB, crop=crop(i), quality=q)
    c = store.list_clusters(max_samples=3)[0]
    assert c.qualities == [0.9, 0.6, 0.3] and len(c.sample_crops) == 3
