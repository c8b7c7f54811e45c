"""Store operations and their refusals: one conformance suite, run on SQLite and PostgreSQL.

Every test taking ``store`` or ``make_store`` runs once per backend (``backend`` fixture,
test/memory_backends.py): an SQLite file, and a fresh database on a real PostgreSQL server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visio_memoria_ros.config import NODE_PARAMS
from visio_memoria_ros.memory import (
    LATEST_VERSION,
    PENDING,
    ClusterParams,
    ConflictError,
    CropCodec,
    MemoryStore,
    MemoryStoreError,
    NotFoundError,
    OptedOutError,
    SQLiteStore,
    StoreOptions,
)
from visio_memoria_ros.memory.pg_schema import PG_LATEST_VERSION

DIM = 16
EMB = "test-emb"


class Clock:
    """A settable clock [s]."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def centre(ident: int, dim: int = DIM) -> np.ndarray:
    return unit(np.random.default_rng(1000 + ident).normal(size=dim))


def face(ident: int, sample: int, dim: int = DIM, noise: float = 0.15) -> np.ndarray:
    rng = np.random.default_rng(ident * 7919 + sample)
    return unit(centre(ident, dim) + noise * rng.normal(size=dim) / np.sqrt(dim) * 2)


def crop(seed: int, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(make_store, clock: Clock):
    opts = StoreOptions(crop_format="png", cluster=ClusterParams(similarity=0.8, min_size=2))
    return make_store(opts, clock=clock)


def add_cluster(store: SQLiteStore, ident: int, n: int = 3, t0: float | None = None) -> int:
    """Add n unknown faces of one identity; return their cluster id."""
    recs = [store.add_unknown(face(ident, i), EMB, crop=crop(ident * 100 + i), quality=i,
                              t=t0) for i in range(n)]
    cids = {r.cluster_id for r in store.list_unknowns() if r.unknown_id in
            {x.unknown_id for x in recs}}
    assert len(cids) == 1 and PENDING not in cids, cids
    return cids.pop()


# -- persons ---------------------------------------------------------------------------------
def test_store_implements_interface(store: SQLiteStore, backend: str) -> None:
    assert isinstance(store, MemoryStore)
    assert store.writable
    assert store.stats().schema_version == {"sqlite": LATEST_VERSION,
                                            "postgresql": PG_LATEST_VERSION}[backend]


def test_create_list_rename(store: SQLiteStore) -> None:
    a = store.create_person("  Sheldon Cooper ")
    assert a.name == "Sheldon Cooper" and a.num_embeddings == 0 and a.first_seen == 0.0
    store.create_person("Zoë Ærø")
    assert [p.name for p in store.list_persons()] == ["Sheldon Cooper", "Zoë Ærø"]
    assert [p.name for p in store.list_persons("zoË")] == ["Zoë Ærø"]
    assert store.list_persons("nobody") == []
    with pytest.raises(ConflictError, match=f"person {a.person_id}"):
        store.create_person("sheldon COOPER")
    assert store.find_person("SHELDON cooper").person_id == a.person_id
    assert store.find_person("Leonard") is None
    renamed = store.rename_person(a.person_id, "Dr. Sheldon Cooper")
    assert renamed.name == "Dr. Sheldon Cooper"
    assert store.rename_person(a.person_id, "dr. sheldon cooper").name == "dr. sheldon cooper"
    with pytest.raises(ConflictError, match="merge"):
        store.rename_person(a.person_id, "zoë ærø")
    with pytest.raises(NotFoundError, match="person 999 "):
        store.rename_person(999, "Penny")
    with pytest.raises(NotFoundError, match="person 999 "):
        store.get_person(999)
    with pytest.raises(MemoryStoreError, match="empty"):
        store.rename_person(a.person_id, "   ")


def test_revision_and_events(store: SQLiteStore) -> None:
    r0 = store.revision
    p = store.create_person("Penny")
    store.rename_person(p.person_id, "Penny Hofstadter")
    assert store.revision == r0 + 2
    events = store.events_since(r0)
    assert [e.kind for e in events] == ["labelled", "renamed"]
    assert [e.revision for e in events] == [r0 + 1, r0 + 2]
    assert all(p.person_id in e.person_ids for e in events)
    assert all("Penny" not in e.message for e in events)  # ids only, never names
    assert store.events_since(store.revision) == []


# -- unknowns, labelling ---------------------------------------------------------------------
def test_label_cluster_creates_person_and_moves_faces(store: SQLiteStore, clock: Clock) -> None:
    cid = add_cluster(store, 1, n=3)
    unknown_ids = sorted(u.unknown_id for u in store.list_unknowns(cid))
    before = store.revision
    res = store.label_cluster(cid, name="Leonard")
    assert res.created and res.num_embeddings == 3 and res.name == "Leonard"
    assert store.revision == before + 1
    assert store.list_unknowns() == []
    embs = store.list_embeddings(res.person_id, with_crops=True)
    assert sorted(e.embedding_id for e in embs) == unknown_ids  # ids survive the move
    for e in embs:
        assert e.embedder == EMB and e.crop is not None and e.crop.shape == (24, 24, 3)
        assert e.source == f"unknown cluster {cid}"
    person = store.get_person(res.person_id)
    assert person.num_embeddings == 3 and person.first_seen == clock.t
    with pytest.raises(NotFoundError, match=f"unknown cluster {cid} "):
        store.label_cluster(cid, name="Leonard")


def test_label_extends_existing_person(store: SQLiteStore) -> None:
    leonard = store.create_person("Leonard")
    c1 = add_cluster(store, 1)
    res = store.label_cluster(c1, name="  leonard ")
    assert not res.created and res.person_id == leonard.person_id and res.name == "Leonard"
    u = store.add_unknown(face(1, 50), EMB)
    res2 = store.label(unknown_id=u.unknown_id, person_id=leonard.person_id)
    assert res2.person_id == leonard.person_id and res2.num_embeddings == 1
    assert store.get_person(leonard.person_id).num_embeddings == 4


def test_label_refusals(store: SQLiteStore) -> None:
    p = store.create_person("Howard")
    u = store.add_unknown(face(2, 0), EMB)
    for both_or_none in ({}, {"cluster_id": 0, "unknown_id": u.unknown_id}):
        with pytest.raises(MemoryStoreError, match="exactly one"):
            store.label(name="Raj", **both_or_none)
    with pytest.raises(NotFoundError, match="unknown face 12345 "):
        store.label_unknown(12345, name="Raj")
    with pytest.raises(NotFoundError, match="unknown cluster 77 "):
        store.label_cluster(77, name="Raj")
    with pytest.raises(MemoryStoreError, match="name or a person id"):
        store.label_unknown(u.unknown_id)
    with pytest.raises(ConflictError, match="another name"):
        store.label_unknown(u.unknown_id, name="Raj", person_id=p.person_id)
    with pytest.raises(NotFoundError, match="person 4242 "):
        store.label_unknown(u.unknown_id, person_id=4242)
    with pytest.raises(MemoryStoreError, match="at most 64"):
        store.label_unknown(u.unknown_id, name="x" * 65)
    with pytest.raises(MemoryStoreError, match=">= 0"):
        store.label_cluster(-3, name="Raj")
    store.set_never_remember(p.person_id, True)
    with pytest.raises(OptedOutError):
        store.label_unknown(u.unknown_id, person_id=p.person_id)
    # Nothing changed by the refusals.
    assert [x.unknown_id for x in store.list_unknowns()] == [u.unknown_id]
    assert [x.name for x in store.list_persons()] == ["Howard"]


def test_discard_unknowns(store: SQLiteStore) -> None:
    c1 = add_cluster(store, 1)
    c2 = add_cluster(store, 2)
    assert store.discard_unknowns(cluster_id=c1, reason="not a face") == 3
    ids = [u.unknown_id for u in store.list_unknowns(c2)]
    assert store.discard_unknowns(unknown_ids=ids[:2]) == 2
    assert [u.unknown_id for u in store.list_unknowns()] == ids[2:]
    with pytest.raises(MemoryStoreError, match="exactly one"):
        store.discard_unknowns()
    with pytest.raises(MemoryStoreError, match="exactly one"):
        store.discard_unknowns(cluster_id=c2, unknown_ids=ids)
    with pytest.raises(NotFoundError, match=f"unknown cluster {c1} "):
        store.discard_unknowns(cluster_id=c1)
    with pytest.raises(NotFoundError, match=str(ids[0])):
        store.discard_unknowns(unknown_ids=[ids[2], ids[0]])
    assert len(store.list_unknowns()) == 1  # the refused request deleted nothing


def test_list_clusters(store: SQLiteStore) -> None:
    big = add_cluster(store, 1, n=5)
    small = add_cluster(store, 2, n=2)
    lone = store.add_unknown(face(3, 0), EMB, crop=crop(3))
    assert lone.cluster_id == PENDING
    clusters = store.list_clusters(min_size=1, max_samples=3)
    assert [c.cluster_id for c in clusters] == [big, small]
    c = clusters[0]
    assert c.size == 5 and len(c.unknown_ids) == 3 and len(c.sample_crops) == 3
    assert c.embedder == EMB and c.first_seen <= c.last_seen
    qualities = {u.unknown_id: u.quality for u in store.list_unknowns(big)}
    assert [qualities[i] for i in c.unknown_ids] == [4.0, 3.0, 2.0]  # best samples first
    for img, uid in zip(c.sample_crops, c.unknown_ids, strict=True):
        assert img.dtype == np.uint8 and img.shape == (24, 24, 3)
        np.testing.assert_array_equal(img, store.get_unknown(uid, with_crop=True).crop)
    assert [c.cluster_id for c in store.list_clusters(min_size=3)] == [big]
    none = store.list_clusters(max_samples=0)
    assert all(c.unknown_ids == [] and c.sample_crops == [] for c in none)
    with_pending = store.list_clusters(include_pending=True)
    assert with_pending[-1].cluster_id == PENDING
    assert with_pending[-1].unknown_ids == [lone.unknown_id]


def test_track_key_joins_cluster_and_caps(store: SQLiteStore) -> None:
    c = add_cluster(store, 1)
    first = store.add_unknown(face(1, 9), EMB, track_key="cam:7:a", quality=0.1)
    assert first.cluster_id == c
    # A face far from the track's cluster does not join it (ids swapped, a new session).
    far = store.add_unknown(face(5, 0), EMB, track_key="cam:7:a", quality=0.2)
    assert far.cluster_id != c
    store.options = StoreOptions(crop_format="png", max_unknowns_per_track=2,
                                 cluster=store.options.cluster)
    second = store.add_unknown(face(1, 10), EMB, track_key="cam:7:a", quality=0.3)
    n = len(store.list_unknowns())
    # Person 1 of the track is at the cap (first, second): a better face replaces the worst
    # one under a new id, a worse one is not stored; person 5's face is never touched.
    far_before = store.get_unknown(far.unknown_id, with_crop=True)
    better = store.add_unknown(face(1, 11), EMB, track_key="cam:7:a", quality=0.9,
                               crop=crop(11))
    assert better.unknown_id not in {first.unknown_id, second.unknown_id, far.unknown_id}
    assert better.cluster_id == c and len(store.list_unknowns()) == n
    with pytest.raises(NotFoundError):
        store.get_unknown(first.unknown_id)
    worse = store.add_unknown(face(1, 12), EMB, track_key="cam:7:a", quality=0.0)
    assert worse.unknown_id == better.unknown_id and len(store.list_unknowns()) == n
    far_after = store.get_unknown(far.unknown_id, with_crop=True)
    np.testing.assert_array_equal(far_after.vector, far_before.vector)
    assert far_after.quality == far_before.quality
    # Person 5 on the same track has room of its own.
    other = store.add_unknown(face(5, 1), EMB, track_key="cam:7:a", quality=0.1)
    assert len(store.list_unknowns()) == n + 1 and other.unknown_id > better.unknown_id


# -- merge, split, not this person ----------------------------------------------------------
def test_merge(store: SQLiteStore, clock: Clock) -> None:
    a = store.label_cluster(add_cluster(store, 1), name="Raj").person_id
    b = store.label_cluster(add_cluster(store, 2), name="Rajesh").person_id
    store.open_or_extend_visit(a, clock.t)
    x = store.create_person("Stuart").person_id
    stuart_face = store.add_embedding(x, face(9, 0), EMB).embedding_id
    store.not_this_person(x, [stuart_face])  # Stuart's face is "not Stuart"
    store.label_unknown(stuart_face, person_id=a)
    store.not_this_person(a, [stuart_face])
    assert store.merge_persons(a, b) == 3
    with pytest.raises(NotFoundError, match=f"person {a} "):
        store.get_person(a)
    pb = store.get_person(b)
    assert pb.num_embeddings == 6 and pb.num_visits == 1
    negs = store.gallery(EMB).negatives
    assert {(n.person_id, n.face_id) for n in negs} == {(x, stuart_face), (b, stuart_face)}
    with pytest.raises(ConflictError, match="into itself"):
        store.merge_persons(b, b)
    with pytest.raises(NotFoundError, match="person 999 "):
        store.merge_persons(999, b)


def test_split(store: SQLiteStore) -> None:
    pid = store.label_cluster(add_cluster(store, 1, n=4), name="Amy").person_id
    ids = [e.embedding_id for e in store.list_embeddings(pid)]
    new = store.split_person(pid, ids[:2], " Bernadette ")
    assert new.name == "Bernadette" and new.num_embeddings == 2
    assert [e.embedding_id for e in store.list_embeddings(new.person_id)] == ids[:2]
    assert store.get_person(pid).num_embeddings == 2
    with pytest.raises(MemoryStoreError, match="no embedding ids"):
        store.split_person(pid, [], "X")
    with pytest.raises(ConflictError, match="already exists"):
        store.split_person(pid, ids[2:3], "amy")
    with pytest.raises(ConflictError, match="do not belong to person"):
        store.split_person(pid, ids[:1], "Other")
    with pytest.raises(NotFoundError, match="9999"):
        store.split_person(pid, [ids[2], 9999], "Other")
    assert store.find_person("Other") is None


def test_not_this_person(store: SQLiteStore) -> None:
    pid = store.label_cluster(add_cluster(store, 1, n=3), name="Bert").person_id
    ids = [e.embedding_id for e in store.list_embeddings(pid)]
    assert store.not_this_person(pid, [ids[0]]) == 1
    back = store.get_unknown(ids[0], with_crop=True)
    assert back.cluster_id == PENDING and back.crop is not None
    gal = store.gallery(EMB)
    assert [(n.person_id, n.face_id) for n in gal.negatives] == [(pid, ids[0])]
    np.testing.assert_allclose(gal.negatives[0].vector, back.vector)
    assert ids[0] not in [e.embedding_id for e in gal.entries]
    other = add_cluster(store, 3)
    assert store.not_this_person(pid, [], unknown_cluster_id=other) == 0
    gal = store.gallery(EMB)
    assert (pid, other) in gal.negative_clusters
    assert {n.face_id for n in gal.negatives if n.cluster_id == other} == {
        u.unknown_id for u in store.list_unknowns(other)}
    with pytest.raises(MemoryStoreError, match="embedding ids"):
        store.not_this_person(pid, [])
    with pytest.raises(NotFoundError, match="unknown cluster 555 "):
        store.not_this_person(pid, [], unknown_cluster_id=555)
    with pytest.raises(NotFoundError, match=str(ids[0])):
        store.not_this_person(pid, [ids[0]])  # not an embedding any more
    # Labelling the face back to the person overrides the negative link.
    store.label_unknown(ids[0], person_id=pid)
    assert store.gallery(EMB).negatives[0].cluster_id == other
    store.label_cluster(other, person_id=pid)
    assert store.gallery(EMB).negatives == []


def test_forget_also_deletes_the_unknown_faces_that_match_the_person(store: SQLiteStore) -> None:
    pid = store.label_cluster(add_cluster(store, 1, n=3), name="Raj").person_id
    later = store.add_unknown(face(1, 40), EMB, crop=crop(140))  # seen again, still unnamed
    other = add_cluster(store, 2, n=2)  # somebody else
    before = {u.unknown_id for u in store.list_unknowns(other)}
    store.forget_person(pid)
    left = {u.unknown_id for u in store.list_unknowns()}
    assert later.unknown_id not in left
    assert left == before and len(left) == 2


def test_never_remember(store: SQLiteStore, clock: Clock) -> None:
    pid = store.create_person("Wil").person_id
    rec = store.set_never_remember(pid, True)
    assert rec.never_remember
    assert store.gallery(EMB).opted_out == frozenset({pid})
    with pytest.raises(OptedOutError):
        store.add_embedding(pid, face(1, 0), EMB)
    with pytest.raises(OptedOutError):
        store.open_or_extend_visit(pid, clock.t)
    with pytest.raises(MemoryStoreError, match="true or false"):
        store.set_never_remember(pid, "yes")  # type: ignore[arg-type]
    assert not store.set_never_remember(pid, False).never_remember
    store.add_embedding(pid, face(1, 0), EMB)


# -- embeddings and the gallery -------------------------------------------------------------
def test_embedding_validation(store: SQLiteStore) -> None:
    pid = store.create_person("Kripke").person_id
    store.add_embedding(pid, face(1, 0), EMB)
    bad = {
        "NaN": np.full(DIM, np.nan),
        "infinite": np.r_[np.inf, np.ones(DIM - 1)],
        "all zeros": np.zeros(DIM),
        "makes 16-d vectors; this one has 17": np.ones(DIM + 1),
        "one vector": np.ones((2, DIM)),
        "empty": np.zeros(0),
        "numeric": ["a", "b"],
    }
    for reason, vector in bad.items():
        with pytest.raises(MemoryStoreError, match=reason):
            store.add_embedding(pid, vector, EMB)
        with pytest.raises(MemoryStoreError, match=reason):
            store.add_unknown(vector, EMB)
    with pytest.raises(MemoryStoreError, match="embedder id"):
        store.add_embedding(pid, face(1, 1), " ")
    with pytest.raises(MemoryStoreError, match="quality"):
        store.add_embedding(pid, face(1, 1), EMB, quality=float("nan"))
    with pytest.raises(MemoryStoreError, match="uint8"):
        store.add_embedding(pid, face(1, 1), EMB, crop=np.zeros((8, 8, 3), np.float32))
    with pytest.raises(MemoryStoreError, match="time"):
        store.add_unknown(face(1, 1), EMB, t=float("inf"))
    assert store.get_person(pid).num_embeddings == 1
    # Another embedder may have another length.
    store.add_embedding(pid, np.ones(8), "other")
    assert store.embedders() == {EMB: DIM, "other": 8}


def test_gallery(store: SQLiteStore) -> None:
    a = store.create_person("A").person_id
    b = store.create_person("B").person_id
    ea = store.add_embedding(a, face(1, 0) * 3, EMB)  # stored normalised
    store.add_embedding(b, face(2, 0), EMB)
    store.add_embedding(b, np.ones(4), "small")
    gal = store.gallery(EMB)
    assert gal.revision == store.revision and gal.dim == DIM and gal.embedder == EMB
    assert gal.vectors.shape == (2, DIM) and gal.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(gal.vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(gal.vectors[0], face(1, 0), rtol=1e-5)
    assert gal.person_ids.tolist() == [a, b]
    assert gal.entries[0].embedding_id == ea.embedding_id and gal.entries[0].name == "A"
    assert gal.names == {a: "A", b: "B"}
    assert store.gallery("small").vectors.shape == (1, 4)
    empty = store.gallery("never-used")
    assert empty.entries == [] and empty.vectors.shape == (0, 0)


def test_crop_codecs_round_trip() -> None:
    img = crop(5, size=40)
    png = CropCodec("png")
    np.testing.assert_array_equal(png.decode(png.encode(img)), img)
    smooth = np.dstack([np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (40, 1))] * 3)
    for fmt in ("jpeg", "webp"):
        codec = CropCodec(fmt, 95)
        out = codec.decode(codec.encode(smooth))
        assert out.shape == smooth.shape
        assert np.abs(out.astype(int) - smooth.astype(int)).mean() < 3
    grey = CropCodec("png").decode(CropCodec("png").encode(img[:, :, 0]))
    assert grey.shape == (40, 40, 3)
    with pytest.raises(ValueError, match="format"):
        CropCodec("gif")
    with pytest.raises(ValueError, match="quality"):
        CropCodec("jpeg", 0)
    with pytest.raises(MemoryStoreError, match="decoded"):
        CropCodec.decode(b"not an image")
    with pytest.raises(MemoryStoreError, match="a side"):
        png.encode(np.zeros((0, 4, 3), np.uint8))


def test_store_crops_off(make_store) -> None:
    s = make_store(StoreOptions(store_crops=False))
    u = s.add_unknown(face(1, 0), EMB, crop=crop(1))
    assert u.crop is None and s.get_unknown(u.unknown_id, with_crop=True).crop is None


# -- visits ---------------------------------------------------------------------------------
def test_visits(store: SQLiteStore, clock: Clock) -> None:
    pid = store.create_person("Leslie").person_id
    t0 = clock.t
    v = store.open_or_extend_visit(pid, t0, location="kitchen_cam", activity="standing")
    assert v.open and v.start == t0 and v.location == "kitchen_cam" and v.robot_id == "robot"
    for dt, act in ((5, "waving"), (10, "waving"), (15, "standing"), (20, "")):
        v2 = store.open_or_extend_visit(pid, t0 + dt, activity=act)
        assert v2.visit_id == v.visit_id
    assert v2.last_seen == t0 + 20 and v2.dominant_activity == "waving"  # tie: first to 2
    v3 = store.open_or_extend_visit(pid, t0 + 25, activity="waving")
    assert v3.dominant_activity == "waving"
    assert v3.activity_counts == {"standing": 2, "waving": 3}
    # An absence longer than visit_absence (60 s) starts a new visit, closing the old one.
    v4 = store.open_or_extend_visit(pid, t0 + 100, robot_id="r2")
    v5 = store.open_or_extend_visit(pid, t0 + 100)
    assert v5.visit_id != v.visit_id and v4.visit_id != v5.visit_id
    visits = store.list_visits(pid)
    assert [x.visit_id for x in visits][-1] == v.visit_id
    old = next(x for x in visits if x.visit_id == v.visit_id)
    assert old.end == t0 + 25 and not old.open and old.name == "Leslie"
    closed = store.close_visit(v5.visit_id, t0 + 110)
    assert closed.end == t0 + 110
    with pytest.raises(ConflictError, match="already closed"):
        store.close_visit(v5.visit_id)
    with pytest.raises(NotFoundError, match="visit 999 "):
        store.close_visit(999)
    stale = store.close_stale_visits(now=t0 + 1000)
    assert [x.visit_id for x in stale] == [v4.visit_id] and stale[0].end == t0 + 100
    assert len(store.list_visits(limit=0)) == 3 and len(store.list_visits(limit=1)) == 1
    assert store.get_person(pid).num_visits == 3
    assert store.get_person(pid).first_seen == t0
    with pytest.raises(NotFoundError, match="person 77 "):
        store.list_visits(77)
    with pytest.raises(NotFoundError, match="person 77 "):
        store.open_or_extend_visit(77, t0)
    with pytest.raises(MemoryStoreError, match="time"):
        store.open_or_extend_visit(pid, float("nan"))
    with pytest.raises(MemoryStoreError, match="control"):
        store.open_or_extend_visit(pid, t0, location="a\nb")


# -- re-embedding, retention ----------------------------------------------------------------
def test_reembed(store: SQLiteStore) -> None:
    pid = store.label_cluster(add_cluster(store, 1, n=3), name="Beverly").person_id
    store.add_embedding(pid, face(1, 20), EMB)  # no crop: cannot be re-embedded
    add_cluster(store, 2, n=2)
    calls = []

    def embed(crops: list[np.ndarray]) -> list[np.ndarray | None]:
        calls.append(len(crops))
        return [np.r_[c.mean(axis=(0, 1)), 1.0].astype(np.float32) for c in crops]

    before = store.revision
    report = store.reembed(embed, "mean-rgb", batch_size=2)
    assert report.num_embeddings == 3 and report.num_unknowns == 2
    assert report.num_without_crop == 1 and report.num_failed == 0
    assert calls == [2, 1, 2] and store.revision == before + 3
    gal = store.gallery("mean-rgb")
    assert gal.dim == 4 and len(gal.entries) == 3
    assert len(store.gallery(EMB).entries) == 1
    assert {u.embedder for u in store.list_unknowns()} == {"mean-rgb"}
    assert store.reembed(embed, "mean-rgb").num_embeddings == 0  # resumable / idempotent

    def flaky(crops: list[np.ndarray]) -> list[np.ndarray | None]:
        return [None, np.full(4, np.nan)][: len(crops)] + [np.ones(4)] * (len(crops) - 2)

    rep = store.reembed(flaky, "flaky", batch_size=10, include_unknowns=False)
    assert rep.num_failed == 2 and rep.num_embeddings == 1

    with pytest.raises(MemoryStoreError, match="returned"):
        store.reembed(lambda crops: [], "broken")


def test_purge(store: SQLiteStore, clock: Clock) -> None:
    day = 86400.0
    pid = store.create_person("Stephen").person_id
    old_u = store.add_unknown(face(1, 0), EMB, t=clock.t - 40 * day)
    new_u = store.add_unknown(face(2, 0), EMB, t=clock.t - 1 * day)
    store.open_or_extend_visit(pid, clock.t - 400 * day)
    store.close_stale_visits(now=clock.t - 399 * day)
    store.open_or_extend_visit(pid, clock.t - 2 * day)
    report = store.purge()
    assert report.num_unknowns == 1 and report.num_visits == 1
    assert [u.unknown_id for u in store.list_unknowns()] == [new_u.unknown_id]
    assert old_u.unknown_id != new_u.unknown_id
    assert len(store.list_visits(pid)) == 1
    assert store.purge(unknown_days=0, visit_days=0).num_unknowns == 0  # 0 = keep forever
    with pytest.raises(MemoryStoreError, match="retention"):
        store.purge(unknown_days=-1)


def test_from_params(tmp_path: Path) -> None:
    params = {s.name: s.default for s in NODE_PARAMS["memory_node"]}
    params["data_dir"] = str(tmp_path / "data")
    params["encryption_key_env"] = "VISIO_MEMORIA_TEST_KEY_UNSET"
    with SQLiteStore.from_params(params) as s:
        assert s.path == tmp_path / "data" / "memory.db"
        assert s.options.synchronous == "FULL" and not s.encrypted
        sync = s._conn.execute("PRAGMA synchronous").fetchone()[0]
        assert sync == 2  # FULL
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert s._conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    params["db_path"] = "other.sqlite"
    with SQLiteStore.from_params(params) as s:
        assert s.path == tmp_path / "data" / "other.sqlite"


def test_stats_and_integrity(store: SQLiteStore) -> None:
    add_cluster(store, 1)
    store.create_person("P")
    st = store.stats()
    assert (st.num_persons, st.num_unknowns, st.num_clusters) == (1, 3, 1)
    assert st.writable and not st.encrypted
    assert store.integrity_check() == "ok"


def test_memory_room_imports_only_core_and_config() -> None:
    import ast

    import visio_memoria_ros.memory as room

    root = Path(room.__file__).parent
    for path in root.rglob("*.py"):
        depth = len(path.relative_to(root).parts)  # 1 in memory/, 2 in memory/repositories/
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level > depth:
                assert (node.module or "").split(".")[0] in {"core", "config"}, path
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith("rclpy"), path
                assert not name.startswith("visio_memoria_ros.") or name.split(".")[1] in {
                    "core", "config", "memory"}, path


def test_changes_by_another_process_refresh_the_unknown_index(
    store: SQLiteStore, make_store
) -> None:
    """The labelling page writes through its own connection; the node's cache must follow."""
    c1 = add_cluster(store, 1)
    other = make_store(store.options)
    assert other.discard_unknowns(cluster_id=c1, reason="don't remember") == 3
    late = store.add_unknown(face(1, 50), EMB, t=None)
    assert late.cluster_id != c1, "a new face joined a cluster another process had deleted"
    assert {u.unknown_id for u in store.list_unknowns()} == {late.unknown_id}
