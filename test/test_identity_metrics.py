"""identity.metrics: open-set rates, exact bounds, and visits decided as identity_node decides."""

from __future__ import annotations

import numpy as np
import pytest
from test_identity_synth import DLIB_THRESHOLDS, centres, samples, with_similarity

from visio_memoria_ros.identity import EngineConfig, GalleryEntry
from visio_memoria_ros.identity.calibration import probe_outcome
from visio_memoria_ros.identity.matcher import FrameScores, Thresholds
from visio_memoria_ros.identity.metrics import (
    Visit,
    dir_at_far,
    image_visits,
    open_set_rates,
    pair_rates,
    rate_bounds,
    replay_visits,
    upper_bound,
)


def test_exact_bounds() -> None:
    assert upper_bound(0, 3000) == pytest.approx(1 - 0.05 ** (1 / 3000))  # ~3/n
    assert upper_bound(0, 3000) < 0.001 < upper_bound(0, 2000)
    assert upper_bound(0, 4) == pytest.approx(0.527, abs=1e-3)
    lo, hi = rate_bounds(5, 100)
    assert 0.016 < lo < 0.017 and 0.11 < hi < 0.12  # Clopper-Pearson
    assert rate_bounds(0, 10)[0] == 0.0 and rate_bounds(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        upper_bound(3, 2)


def test_open_set_rates_and_dir_at_far() -> None:
    th = Thresholds(accept=0.9, reject=0.8, margin=0.05)
    outcomes = [
        probe_outcome(FrameScores({1: 0.95, 2: 0.85}, 0.8), 1),  # named
        probe_outcome(FrameScores({1: 0.92, 2: 0.90}, 0.8), 1),  # too close to tell: not named
        probe_outcome(FrameScores({1: 0.85, 2: 0.97}, 0.8), 1),  # named as someone else
        probe_outcome(FrameScores({2: 0.93, 3: 0.80}, 0.7), None),  # a stranger named
        probe_outcome(FrameScores({2: 0.93, 3: 0.92}, 0.7), None),  # held back by the margin
    ] + [probe_outcome(FrameScores({2: 0.80}, 0.7), None)] * 98
    rates = open_set_rates(outcomes, th)
    assert (rates.known, rates.strangers) == (3, 100)
    assert rates.dir == pytest.approx(1 / 3) and rates.misidentified == pytest.approx(1 / 3)
    assert rates.far == pytest.approx(1 / 100) and rates.false_accepts == 2
    row = dir_at_far(outcomes, 0.01, margin=0.05)
    # 1 % of 100 strangers may pass: the named one does; the threshold sits above the next
    # stranger that clears the margin (the fillers, 0.80 with nobody else near)
    assert row["resolvable"] and row["threshold"] == 0.8001
    assert row["dir"] == pytest.approx(1 / 3) and row["achieved_far"] == 0.01
    assert not dir_at_far(outcomes, 0.001)["resolvable"]


def _entries(n: int, rng: np.random.Generator) -> tuple[list[GalleryEntry], np.ndarray]:
    c = centres(n, 128, rng)
    entries = [GalleryEntry(i * 5 + j, i, f"p{i}", v, "test_embedder")
               for i in range(n) for j, v in enumerate(samples(np.repeat(c[i][None], 5, 0), rng))]
    return entries, c


def test_replay_visits_greets_enrolled_people_and_counts_greeted_strangers() -> None:
    rng = np.random.default_rng(3)
    entries, c = _entries(10, rng)
    shipped = EngineConfig(embedder="test_embedder", accept_threshold=DLIB_THRESHOLDS.accept,
                           reject_threshold=DLIB_THRESHOLDS.reject,
                           accept_margin=DLIB_THRESHOLDS.margin)
    known = [Visit(list(samples(np.repeat(c[i % 10][None], 5, 0), rng)), i % 10, f"k{i}")
             for i in range(20)]
    strangers = [Visit(list(samples(np.repeat(s[None], 5, 0), rng)), None, f"s{i}")
                 for i, s in enumerate(centres(40, 128, rng))]
    report = replay_visits(shipped, entries, known + strangers)
    assert (report.known_visits, report.stranger_visits) == (20, 40)
    assert report.greeted_correctly >= 19 and report.greeted_wrongly == 0
    assert report.false_greetings == 0
    # a threshold that ignores how close dlib-like strangers sit greets most of them
    lax = EngineConfig(embedder="test_embedder", accept_threshold=0.85,
                       reject_threshold=0.8, accept_margin=0.0)
    bad = replay_visits(lax, entries, strangers)
    assert bad.false_greetings > 20 and bad.per_1000() > 500
    assert bad.greeted_labels and "->" in bad.greeted_labels[0]
    d = bad.to_dict()
    assert d["false_greetings"] == bad.false_greetings and d["upper_per_1000"] <= 1000


def test_a_visit_is_decided_by_its_votes_like_a_track() -> None:
    """Two embeddings at accept (min_votes 2) name a visit; one alone does not, below instant."""
    rng = np.random.default_rng(4)
    entries, _ = _entries(3, rng)
    config = EngineConfig(embedder="test_embedder", accept_threshold=0.9,
                          reject_threshold=0.85, accept_margin=0.0,
                          instant_accept_threshold=0.999, aggregate="max")
    v = entries[0].vector
    one = Visit([with_similarity(v, 0.95, rng)], 0)
    two = Visit([with_similarity(v, 0.95, rng), with_similarity(v, 0.95, rng)], 0)
    report = replay_visits(config, entries, [one, two])
    assert (report.known_visits, report.greeted_correctly) == (2, 1)


def test_image_visits() -> None:
    vecs = {"a": [np.full(2, i, np.float32) for i in range(3)], "b": [np.ones(2, np.float32)]}
    visits = image_visits(vecs, {"a": 1, "b": None}, 2)
    assert [v.label for v in visits] == ["a#0", "a#1", "a#2", "b#0"]
    assert [float(x[0]) for x in visits[2].vectors] == [2.0, 0.0]  # wraps around
    assert len(visits[3].vectors) == 1 and visits[3].truth is None
    rnd = image_visits(vecs, {"a": 1, "b": None}, 3, per_identity=5,
                       rng=np.random.default_rng(0))
    assert len(rnd) == 10 and all(len({float(x[0]) for x in v.vectors}) == len(v.vectors)
                                  for v in rnd if v.truth == 1)
    with pytest.raises(ValueError):
        image_visits(vecs, {"a": 1, "b": None}, 0)


def test_pair_rates_at_the_threshold_and_the_best_one() -> None:
    r = pair_rates([0.9, 0.8, 0.3, 0.85], [1, 1, 0, 0], threshold=0.82)
    assert (r.accuracy, r.true_accept_rate, r.false_accept_rate) == (0.5, 0.5, 0.5)
    # 0.8 and 0.9 both call 3 of 4 right: the lower one is reported
    assert (r.best_threshold, r.best_accuracy) == (0.8, 0.75)
    assert r.roc_auc == pytest.approx(0.75)  # 3 of the 4 genuine/impostor orderings right
    only_same = pair_rates([0.9, 0.7], [1, 1], threshold=0.8)
    assert only_same.false_accept_rate is None and only_same.roc_auc is None
    assert (only_same.best_threshold, only_same.best_accuracy) == (0.7, 1.0)
    only_different = pair_rates([0.5], [0], threshold=0.4)
    assert only_different.true_accept_rate is None and only_different.accuracy == 0.0
    assert only_different.best_threshold == np.inf and only_different.best_accuracy == 1.0
    with pytest.raises(ValueError):
        pair_rates([], [], 0.5)
