"""EmbedPolicy: new tracks, clear quality improvement, interval, budget, refresh, forgetting."""

from __future__ import annotations

import math

import pytest

from visio_memoria_ros.core.types import NO_TRACK
from visio_memoria_ros.embedding import EmbedPolicy, EmbedPolicyConfig, build_embed_policy


def _policy(**kw: float) -> EmbedPolicy:
    base = dict(
        min_interval_s=1.0,
        first_embeddings=1,  # the quick first votes have their own tests
        max_embeddings_per_track=3,
        quality_rel_margin=0.10,
        quality_abs_margin=0.02,
        refresh_interval_s=0.0,
        refresh_after_budget_s=0.0,
        forget_after_s=5.0,
    )
    base.update(kw)
    return EmbedPolicy(EmbedPolicyConfig(**base))  # type: ignore[arg-type]


def _step(policy: EmbedPolicy, tid: int, q: float, t: float) -> str:
    """Decide; mark as embedded when told to; return the reason."""
    d = policy.decide(tid, q, t)
    if d.embed:
        policy.mark_embedded(tid, q, t)
    return d.reason


def test_new_track_embeds_once() -> None:
    p = _policy()
    assert _step(p, 1, 0.5, 0.0) == "new"
    assert _step(p, 1, 0.5, 0.1) == "interval"
    assert _step(p, 1, 0.5, 2.0) == "no_improvement"
    assert p.embedding_count(1) == 1


def test_first_embeddings_come_quickly_whatever_the_quality() -> None:
    p = _policy(first_embeddings=3, first_interval_s=0.2, max_embeddings_per_track=5)
    assert _step(p, 1, 0.5, 0.0) == "new"
    assert _step(p, 1, 0.9, 0.1) == "interval"  # even a much better crop waits 0.2 s
    assert _step(p, 1, 0.3, 0.2) == "first"  # a worse crop still gives the 2nd vote
    assert _step(p, 1, 0.3, 0.4) == "first"
    assert p.embedding_count(1) == 3
    assert _step(p, 1, 0.3, 0.6) == "interval"  # then min_interval_s (1 s) and quality rule
    assert _step(p, 1, 0.3, 1.5) == "no_improvement"
    assert _step(p, 1, 0.6, 1.6) == "improved"


def test_first_embeddings_respect_the_budget() -> None:
    p = _policy(first_embeddings=5, first_interval_s=0.0, max_embeddings_per_track=2)
    assert [_step(p, 1, 0.5, t) for t in (0.0, 0.1, 0.2)] == ["new", "first", "budget"]


def test_default_first_embeddings_match_two_votes() -> None:
    cfg = build_embed_policy().config
    assert (cfg.first_embeddings, cfg.first_interval_s) == (2, 0.2)
    with pytest.raises(ValueError, match="first_embeddings"):
        EmbedPolicyConfig(first_embeddings=0)
    with pytest.raises(ValueError, match="first_interval_s"):
        EmbedPolicyConfig(first_interval_s=math.nan)


def test_untracked_embedding_counts_as_the_new_tracks_first() -> None:
    p = _policy(first_embeddings=2, first_interval_s=0.2, max_embeddings_per_track=5)
    box = [100, 100, 160, 170]
    assert p.decide(NO_TRACK, 0.5, 0.0, box).reason == "untracked"
    p.mark_embedded(NO_TRACK, 0.5, 0.0, box)
    # The tracker confirms the face a detection later: no second "new" embedding of it.
    assert _step(p, 7, 0.5, 0.1) == "new"  # no box given: nothing to hand over
    assert p.decide(8, 0.5, 0.1, [102, 101, 162, 171]).reason == "interval"
    assert p.embedding_count(8) == 1
    assert p.decide(8, 0.5, 0.2, [102, 101, 162, 171]).reason == "first"
    assert p.decide(9, 0.5, 0.2, [102, 101, 162, 171]).reason == "new"  # claimed once only


def test_untracked_handoff_off_or_too_old() -> None:
    box = [0, 0, 50, 50]
    for kw, t in (({"handoff_s": 0.0}, 0.1), ({"handoff_s": 1.0}, 1.5)):
        p = _policy(**kw)
        p.mark_embedded(NO_TRACK, 0.5, 0.0, box)
        assert p.decide(1, 0.5, t, box).reason == "new"


def test_new_until_marked() -> None:
    p = _policy()
    assert p.decide(1, 0.5, 0.0).reason == "new"
    assert p.decide(1, 0.5, 0.1).reason == "new"  # the embedding failed or was skipped


def test_relative_margin_when_best_is_large() -> None:
    p = _policy()
    _step(p, 1, 0.5, 0.0)
    assert p.required_quality(1) == pytest.approx(0.55)
    assert _step(p, 1, 0.549, 2.0) == "no_improvement"
    assert _step(p, 1, 0.55, 2.1) == "improved"
    assert p.required_quality(1) == pytest.approx(0.605)


def test_absolute_margin_when_best_is_small() -> None:
    p = _policy()
    _step(p, 1, 0.1, 0.0)
    assert p.required_quality(1) == pytest.approx(0.12)
    assert _step(p, 1, 0.115, 2.0) == "no_improvement"
    assert _step(p, 1, 0.121, 2.0) == "improved"


def test_interval_blocks_even_big_improvements() -> None:
    p = _policy()
    _step(p, 1, 0.1, 0.0)
    assert _step(p, 1, 0.9, 0.5) == "interval"
    assert _step(p, 1, 0.9, 1.0) == "improved"


def test_budget() -> None:
    p = _policy(max_embeddings_per_track=2, refresh_after_budget_s=10.0)
    _step(p, 1, 0.1, 0.0)
    assert _step(p, 1, 0.5, 2.0) == "improved"
    assert _step(p, 1, 0.99, 4.0) == "budget"
    assert p.embedding_count(1) == 2
    assert _step(p, 1, 0.5, 11.9) == "budget"
    assert _step(p, 1, 0.5, 12.0) == "refresh"  # slow refresh past the budget
    assert p.embedding_count(1) == 3


def test_no_refresh_after_budget_when_disabled() -> None:
    p = _policy(max_embeddings_per_track=1, refresh_after_budget_s=0.0)
    _step(p, 1, 0.1, 0.0)
    assert _step(p, 1, 0.9, 100.0) == "budget"


def test_refresh_gives_votes_without_improvement() -> None:
    p = _policy(refresh_interval_s=3.0, max_embeddings_per_track=10)
    _step(p, 1, 0.5, 0.0)
    assert _step(p, 1, 0.5, 2.0) == "no_improvement"
    assert _step(p, 1, 0.4, 3.0) == "refresh"
    assert _step(p, 1, 0.5, 4.0) == "no_improvement"
    assert p.required_quality(1) == pytest.approx(0.55)  # best kept, not lowered by 0.4


def test_tracks_are_independent() -> None:
    p = _policy()
    _step(p, 1, 0.5, 0.0)
    assert _step(p, 2, 0.1, 0.1) == "new"
    assert len(p) == 2


def test_prune_forgets_unseen_tracks_only() -> None:
    p = _policy(forget_after_s=5.0)
    _step(p, 1, 0.5, 0.0)
    _step(p, 2, 0.5, 0.0)
    p.decide(2, 0.5, 4.0)  # track 2 still seen
    assert p.prune(6.0) == [1]
    assert len(p) == 1
    assert _step(p, 1, 0.5, 6.0) == "new"
    assert sorted(p.prune(100.0)) == [1, 2]
    assert len(p) == 0


def test_forget_single_track() -> None:
    p = _policy()
    _step(p, 1, 0.5, 0.0)
    p.forget(1)
    p.forget(42)
    assert _step(p, 1, 0.5, 0.1) == "new"


def test_untracked_faces_always_embed_and_leave_no_state() -> None:
    p = _policy()
    assert _step(p, NO_TRACK, 0.5, 0.0) == "untracked"
    assert _step(p, NO_TRACK, 0.5, 0.0) == "untracked"
    assert len(p) == 0


def test_time_going_backwards_restarts_track() -> None:
    p = _policy()
    _step(p, 1, 0.9, 100.0)
    assert _step(p, 1, 0.1, 3.0) == "new"


def test_nan_quality_is_never_an_improvement() -> None:
    p = _policy()
    assert _step(p, 1, math.nan, 0.0) == "new"
    assert _step(p, 1, math.nan, 2.0) == "no_improvement"
    assert _step(p, 1, 0.0, 4.0) == "improved"


@pytest.mark.parametrize(
    "bad",
    [
        {"min_interval_s": -1.0},
        {"quality_rel_margin": math.nan},
        {"forget_after_s": math.inf},
        {"max_embeddings_per_track": 0},
    ],
)
def test_config_validation(bad: dict) -> None:
    with pytest.raises(ValueError):
        EmbedPolicyConfig(**bad)


def test_build_from_node_params() -> None:
    p = build_embed_policy(
        min_embed_interval_s=2.0,
        first_embeddings=3,
        first_embed_interval_s=0.3,
        max_embeddings_per_track=7,
        quality_rel_margin=0.2,
        quality_abs_margin=0.01,
        refresh_interval_s=0.0,
        refresh_after_budget_s=30.0,
        forget_track_after_s=3.0,
        untracked_handoff_s=0.5,
        unrelated_param="ignored",
    )
    assert p.config == EmbedPolicyConfig(
        min_interval_s=2.0,
        first_embeddings=3,
        first_interval_s=0.3,
        max_embeddings_per_track=7,
        quality_rel_margin=0.2,
        quality_abs_margin=0.01,
        refresh_interval_s=0.0,
        refresh_after_budget_s=30.0,
        forget_after_s=3.0,
        handoff_s=0.5,
    )
