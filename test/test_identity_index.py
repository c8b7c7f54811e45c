"""GalleryIndex: exact and approximate (IVF, HNSW) cosine search, ids, removal, validation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_identity_synth import centres, gallery, samples

from visio_memoria_ros.identity.index import GalleryIndex, IndexKind


def _top1_person_recall(index: GalleryIndex, c: np.ndarray, seed: int = 7) -> float:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(c), 200)
    res = index.search(samples(c[truth], rng), 5)
    return float(np.mean(res.person_ids[:, 0] == truth))


@pytest.mark.parametrize("dim", [128, 768])
def test_exact_search_returns_ids_persons_and_cosines(dim: int) -> None:
    c, ids, pids, vecs = gallery(20, 4, dim)
    index = GalleryIndex(dim)
    index.add(ids, pids, vecs * 3.0)  # unnormalised input is normalised
    assert len(index) == 80 and index.kind is IndexKind.EXACT
    res = index.search(vecs[:5], 3)
    assert res.ids.dtype == np.int64 and res.similarities.dtype == np.float32
    np.testing.assert_array_equal(res.ids[:, 0], ids[:5])
    np.testing.assert_array_equal(res.person_ids[:, 0], pids[:5])
    np.testing.assert_allclose(res.similarities[:, 0], 1.0, atol=1e-5)
    assert index.person_of(int(ids[7])) == int(pids[7])
    assert _top1_person_recall(index, c) == 1.0


def test_invalid_vectors_are_refused_and_nothing_is_added() -> None:
    index = GalleryIndex(8)
    good = np.eye(8, dtype=np.float32)[:3]
    with pytest.raises(ValueError, match="dimension"):
        index.add([1, 2, 3], [0, 0, 0], np.ones((3, 9), np.float32))
    for bad_value in (np.nan, np.inf):
        bad = good.copy()
        bad[1, 2] = bad_value
        with pytest.raises(ValueError, match="NaN or infinite"):
            index.add([1, 2, 3], [0, 0, 0], bad)
    zero = good.copy()
    zero[2] = 0
    with pytest.raises(ValueError, match="zero"):
        index.add([1, 2, 3], [0, 0, 0], zero)
    with pytest.raises(ValueError, match="expected 3 ids"):
        index.add([1, 2], [0, 0, 0], good)
    with pytest.raises(ValueError, match="duplicate"):
        index.add([1, 1, 2], [0, 0, 0], good)
    assert len(index) == 0
    index.add([1, 2, 3], [0, 0, 1], good)
    with pytest.raises(ValueError, match="already"):
        index.add([3], [1], good[:1])
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.ones((1, 4), np.float32), 1)
    with pytest.raises(ValueError, match="zero"):
        index.search(np.zeros((1, 8), np.float32), 1)
    with pytest.raises(ValueError):
        GalleryIndex(0)


def test_small_gallery_pads_missing_neighbours() -> None:
    index = GalleryIndex(4)
    empty = index.search(np.ones((2, 4), np.float32), 3)
    assert (empty.ids == -1).all() and np.isneginf(empty.similarities).all()
    index.add([5, 6], [50, 60], np.eye(4, dtype=np.float32)[:2])
    res = index.search(np.eye(4, dtype=np.float32)[:1], 4)
    assert res.ids[0].tolist() == [5, 6, -1, -1]
    assert res.person_ids[0].tolist() == [50, 60, -1, -1]
    assert np.isneginf(res.similarities[0, 2:]).all()


def test_removal_really_removes_exact() -> None:
    _, ids, pids, vecs = gallery(10, 3, 64)
    index = GalleryIndex(64)
    index.add(ids, pids, vecs)
    assert index.remove([ids[0], ids[1], 999_999]) == 2
    assert ids[0] not in index and len(index) == 28
    res = index.search(vecs[:2], 28)
    assert not np.isin(res.ids, ids[:2]).any()
    assert index.remove_person(int(pids[5])) == 3
    assert int(pids[5]) not in index.person_ids()
    res = index.search(vecs, 25)
    assert not np.isin(res.person_ids, [pids[5]]).any()
    # a removed id can be added again with a new vector
    index.add([ids[0]], [77], vecs[10:11])
    assert index.search(vecs[10:11], 2).person_ids[0].tolist().count(77) == 1


def test_ivf_path_at_small_forced_switch_size() -> None:
    c, ids, pids, vecs = gallery(100, 6, 128, seed=3)
    index = GalleryIndex(128, exact_max_size=200, approx_kind="ivf", ivf_nprobe=8)
    index.add(ids[:150], pids[:150], vecs[:150])
    assert index.kind is IndexKind.EXACT
    index.add(ids[150:], pids[150:], vecs[150:])  # crossing the switch size rebuilds
    assert index.kind is IndexKind.IVF and len(index) == 600
    info = index.describe()
    assert info["kind"] == "ivf" and info["nprobe"] == 8 and 1 <= info["nlist"] <= 600 // 39
    assert _top1_person_recall(index, c) >= 0.97
    res = index.search(vecs[:3], 1)
    np.testing.assert_array_equal(res.ids[:, 0], ids[:3])
    # removal is native in IVF
    assert index.remove(ids[:3]) == 3
    res = index.search(vecs[:3], 10)
    assert not np.isin(res.ids, ids[:3]).any()
    # explicit rebuild keeps the content
    index.rebuild()
    assert index.kind is IndexKind.IVF and len(index) == 597
    np.testing.assert_allclose(index.vectors([ids[10]])[0], vecs[10], atol=1e-6)
    # shrinking to half the switch size goes back to exact search
    index.remove(ids[3:500])
    assert index.kind is IndexKind.EXACT and len(index) == 100
    assert set(index.ids().tolist()) == set(ids[500:].tolist())


def test_hnsw_path_with_tombstones() -> None:
    c, ids, pids, vecs = gallery(60, 5, 96, seed=4)
    index = GalleryIndex(
        96, exact_max_size=100, approx_kind="hnsw", hnsw_m=16, max_tombstone_fraction=0.5
    )
    index.add(ids, pids, vecs)
    assert index.kind is IndexKind.HNSW
    assert _top1_person_recall(index, c) >= 0.97
    assert index.remove(ids[:5]) == 5  # tombstoned, filtered at search time
    assert len(index) == 295
    res = index.search(vecs[:5], 10)
    assert not np.isin(res.ids, ids[:5]).any()
    assert (res.ids >= 0).all()
    # re-adding a tombstoned id compacts first, then stores the new vector under it
    fresh = centres(1, 96, np.random.default_rng(9))
    index.add([ids[0]], [999], fresh)
    res = index.search(fresh, 1)
    assert res.ids[0, 0] == ids[0] and res.similarities[0, 0] > 0.999
    assert index.person_of(int(ids[0])) == 999
    index.rebuild()
    assert len(index) == 296 and index.kind is IndexKind.HNSW
    index.set_search_params(hnsw_ef=128)
    assert _top1_person_recall(index, c) >= 0.97


def test_memory_estimate_grows_with_size() -> None:
    _, ids, pids, vecs = gallery(10, 2, 32)
    index = GalleryIndex(32)
    small = index.memory_bytes()
    index.add(ids, pids, vecs)
    assert index.memory_bytes() > small + 20 * 32 * 4


def test_one_writer_many_readers() -> None:
    rng = np.random.default_rng(5)
    dim = 64
    c = centres(50, dim, rng)
    index = GalleryIndex(dim, exact_max_size=300, approx_kind="ivf")
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        local = np.random.default_rng(6)
        try:
            while not stop.is_set():
                res = index.search(samples(c[local.integers(0, 50, 4)], local), 5)
                assert res.ids.shape == (4, 5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for th in threads:
        th.start()
    try:
        next_id = 0
        for _ in range(40):
            who = rng.integers(0, 50, 20)
            index.add(np.arange(next_id, next_id + 20), who, samples(c[who], rng))
            next_id += 20
            index.remove(rng.integers(0, next_id, 5))
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors
    assert index.kind is IndexKind.IVF
