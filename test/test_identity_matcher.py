"""Matcher: open-set decisions, the uncertain band, aggregation, negatives, opted-out persons."""

from __future__ import annotations

import numpy as np
import pytest
from test_identity_synth import DLIB_THRESHOLDS, centres, gallery, samples, with_similarity

from visio_memoria_ros.core.types import Status
from visio_memoria_ros.identity.index import GalleryIndex
from visio_memoria_ros.identity.matcher import FrameScores, Matcher, Thresholds

#: Round numbers for tests that aim vectors at exact similarities around the thresholds.
SYNTH = Thresholds(accept=0.5, reject=0.35)


def _matcher(
    dim: int, n_people: int = 30, per: int = 5, **kw: object
) -> tuple[Matcher, np.ndarray]:
    c, ids, pids, vecs = gallery(n_people, per, dim, seed=dim)
    index = GalleryIndex(dim)
    index.add(ids, pids, vecs)
    return Matcher(index, DLIB_THRESHOLDS, **kw), c  # type: ignore[arg-type]


@pytest.mark.parametrize("dim", [128, 768])
def test_enrolled_are_known_and_strangers_unknown(dim: int) -> None:
    """Dlib-like vectors (strangers ~0.85 from everybody) at the shipped dlib thresholds."""
    matcher, c = _matcher(dim, aggregate="centroid")
    rng = np.random.default_rng(11)
    truth = rng.integers(0, len(c), 100)
    results = matcher.match(samples(c[truth], rng))
    known = [r.person_id for r in results if r.status is Status.KNOWN]
    assert len(known) >= 95
    assert all(r.person_id == t for r, t in zip(results, truth, strict=True)
               if r.status is Status.KNOWN)  # nobody is given another's name
    strangers = samples(centres(100, dim, rng), rng)
    results = matcher.match(strangers)
    assert not [r for r in results if r.status is Status.KNOWN]
    assert sum(r.status is Status.UNKNOWN for r in results) >= 90
    assert min(r.similarity for r in results) > 0.8  # they are close, not orthogonal
    # the same strangers against a threshold that ignores how close they sit: many named
    lax = Matcher(matcher.index, Thresholds(accept=0.85, reject=0.8), aggregate="centroid")
    assert sum(r.status is Status.KNOWN for r in lax.match(strangers)) > 50


def test_uncertain_band_between_reject_and_accept() -> None:
    rng = np.random.default_rng(2)
    index = GalleryIndex(128)
    person_vec = centres(1, 128, rng)
    index.add([1], [7], person_vec)
    matcher = Matcher(index, SYNTH)
    cases = [
        (0.9, Status.KNOWN),
        (0.501, Status.KNOWN),
        (0.499, Status.UNCERTAIN),
        (0.351, Status.UNCERTAIN),
        (0.349, Status.UNKNOWN),
        (-0.3, Status.UNKNOWN),
    ]
    for sim, status in cases:
        (res,) = matcher.match(with_similarity(person_vec[0], sim, rng))
        assert res.status is status, (sim, res)
        assert res.person_id == 7
        assert res.similarity == pytest.approx(sim, abs=1e-5)


def test_aggregation_max_vs_mean_of_top_n() -> None:
    rng = np.random.default_rng(3)
    target = centres(1, 64, rng)[0]
    index = GalleryIndex(64)
    # person 1: one very close vector and two far ones; person 2: three moderately close
    vecs = [with_similarity(target, s, rng) for s in (0.9, 0.2, 0.2, 0.7, 0.7, 0.7)]
    index.add(range(6), [1, 1, 1, 2, 2, 2], np.stack(vecs))
    q = target[None]
    best_max = Matcher(index, SYNTH, aggregate="max").score(q)[0]
    assert best_max.best()[0] == 1
    best_mean = Matcher(index, SYNTH, aggregate="mean_top_n", top_n=3).score(q)[0]
    assert best_mean.best()[0] == 2
    assert best_mean.get(1) == pytest.approx((0.9 + 0.2 + 0.2) / 3, abs=0.05)
    with pytest.raises(ValueError):
        Matcher(index, SYNTH, aggregate="median")


def test_floor_bounds_persons_not_retrieved() -> None:
    matcher, c = _matcher(128, n_people=30, per=2, k=4)
    rng = np.random.default_rng(4)
    (scores,) = matcher.score(samples(c[:1], rng))
    assert 2 <= len(scores.scores) <= 4
    sims_all = samples(c, rng) @ samples(c[:1], rng)[0]
    assert scores.floor <= max(scores.scores.values())
    for pid in range(30):
        if pid not in scores.scores:
            assert scores.get(pid) == scores.floor
    assert np.isfinite(sims_all).all()


def test_negative_examples_exclude_the_person() -> None:
    rng = np.random.default_rng(5)
    dim = 128
    alex, lookalike = centres(2, dim, rng)
    index = GalleryIndex(dim)
    alex_samples = samples(np.stack([alex] * 3), rng)
    # one lookalike face was wrongly filed under Alex (id 3)
    wrong = samples(lookalike[None], rng)
    index.add([0, 1, 2, 3], [1, 1, 1, 1], np.concatenate([alex_samples, wrong]))
    q_lookalike = samples(lookalike[None], rng)
    q_alex = samples(alex[None], rng)

    plain = Matcher(index, DLIB_THRESHOLDS)  # max: the wrongly filed vector decides
    assert plain.match(q_lookalike)[0].status is Status.KNOWN  # the mistake matches

    # "this is not Alex", said of a lookalike face closer to the query than the mistake is
    negative = with_similarity(q_lookalike[0], 0.995, rng)
    assert float(q_lookalike[0] @ wrong[0]) < 0.995
    negatives = {1: np.stack([negative, *samples(np.stack([lookalike] * 2), rng)])}
    fixed = Matcher(index, DLIB_THRESHOLDS, negatives=negatives)
    res = fixed.match(q_lookalike)[0]
    assert res.status is not Status.KNOWN and 1 in res.scores.excluded
    res = fixed.match(q_alex)[0]
    assert res.status is Status.KNOWN and res.person_id == 1
    assert set(fixed.negatives()) == {1}


def test_opted_out_person_is_never_known_but_suppressed() -> None:
    matcher, c = _matcher(128, opted_out={3})
    rng = np.random.default_rng(6)
    res = matcher.match(samples(c[[3, 4]], rng))
    assert res[0].status is Status.UNCERTAIN and res[0].suppressed and res[0].person_id == -1
    assert res[1].status is Status.KNOWN and res[1].person_id == 4 and not res[1].suppressed


def test_empty_gallery_and_thresholds_validation() -> None:
    matcher = Matcher(None, SYNTH)
    assert matcher.score(np.ones((2, 8), np.float32)) == [FrameScores(), FrameScores()]
    assert matcher.match(np.ones((1, 8), np.float32))[0].status is Status.UNKNOWN
    empty_index = Matcher(GalleryIndex(8), SYNTH)
    assert empty_index.match(np.ones((1, 8), np.float32))[0].status is Status.UNKNOWN
    with pytest.raises(ValueError, match="exceeds"):
        Thresholds(accept=0.3, reject=0.5)
    with pytest.raises(ValueError):
        Thresholds(accept=1.5, reject=0.5)
    assert SYNTH.classify(float("nan")) is Status.UNKNOWN


def test_a_query_whose_neighbours_are_all_one_person_is_searched_deeper() -> None:
    """The margin needs the runner-up: k neighbours of one person trigger a deeper search."""
    matcher, c = _matcher(128, n_people=30, per=5, k=4)
    rng = np.random.default_rng(4)
    q = samples(c[:1], rng)
    (scores,) = matcher.score(q)
    assert len(scores.scores) == 30  # the whole (small) gallery, not 4 vectors of person 0
    index = matcher.index
    assert index is not None
    ids = index.ids()
    sims = index.vectors(ids) @ q[0]
    owners = np.array([index.person_of(int(i)) for i in ids])
    true_runner_up = max(float(sims[owners == p].max()) for p in range(1, 30))
    assert scores.runner_up(0) == pytest.approx(true_runner_up, abs=1e-5)


def test_margin_rule_of_a_single_embedding() -> None:
    rng = np.random.default_rng(12)
    index = GalleryIndex(128)
    q = centres(1, 128, rng)
    # person 1 sits 0.80 from the query, person 2 0.78
    index.add([1, 2], [1, 2], np.stack([with_similarity(q[0], s, rng) for s in (0.8, 0.78)]))
    th = Thresholds(accept=0.3, reject=0.2, margin=0.05)
    (loose,) = Matcher(index, Thresholds(0.3, 0.2)).match(q)
    (strict,) = Matcher(index, th).match(q)
    assert loose.status is Status.KNOWN
    assert strict.status is Status.UNCERTAIN and strict.person_id == loose.person_id
    with pytest.raises(ValueError, match="margin"):
        Thresholds(accept=0.5, reject=0.3, margin=-0.1)


def test_centroid_aggregate_scores_the_mean_direction() -> None:
    rng = np.random.default_rng(13)
    target = centres(1, 64, rng)[0]
    index = GalleryIndex(64)
    vecs = [with_similarity(target, s, rng) for s in (0.9, 0.2, 0.2, 0.7, 0.7, 0.7)]
    index.add(range(6), [1, 1, 1, 2, 2, 2], np.stack(vecs))
    matcher = Matcher(index, SYNTH, aggregate="centroid")
    (scores,) = matcher.score(target[None])
    for person, rows in ((1, [0, 1, 2]), (2, [3, 4, 5])):
        mean = np.mean([vecs[r] for r in rows], axis=0)
        assert scores.get(person) == pytest.approx(float(mean @ target / np.linalg.norm(mean)),
                                                   abs=1e-5)
    assert scores.best()[0] == 2  # three consistent vectors beat one close and two far


def test_a_gallery_of_one_person_has_no_runner_up() -> None:
    """The whole gallery was searched: nobody else exists, so the margin cannot hold a face back
    (the last neighbour is the person's own vector, not a runner-up)."""
    rng = np.random.default_rng(14)
    index = GalleryIndex(128)
    alice = centres(1, 128, rng)
    index.add([1, 2], [7, 7], np.concatenate([alice, samples(alice, rng)]))
    (res,) = Matcher(index, DLIB_THRESHOLDS, aggregate="max").match(alice)
    assert res.status is Status.KNOWN and res.person_id == 7
    assert res.scores.floor == -1.0 and res.scores.runner_up(7) == -1.0
    # a larger gallery, not searched to the end, keeps its floor
    matcher, c = _matcher(128, n_people=30, per=2, k=4)
    (scores,) = matcher.score(samples(c[:1], rng))
    assert scores.floor > 0.5
