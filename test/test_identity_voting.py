"""TrackVoter: decisions per track, evidence thresholds, hysteresis, Hungarian uniqueness."""

from __future__ import annotations

import pytest

from visio_memoria_ros.core.types import Status
from visio_memoria_ros.identity.matcher import FrameScores, Thresholds
from visio_memoria_ros.identity.voting import TrackVoter, assign_unique

TH = Thresholds(accept=0.5, reject=0.35)


def fs(floor: float = 0.0, **scores: float) -> FrameScores:
    """FrameScores from keyword args p<id>=similarity."""
    return FrameScores({int(k[1:]): v for k, v in scores.items()}, floor)


def test_needs_min_votes_before_known_or_unknown() -> None:
    voter = TrackVoter(TH, window=5, min_votes=2)
    d = voter.decide_frame({1: fs(p7=0.8), 2: fs(p9=0.1)}, t=0.0)
    assert d[1].status is Status.UNCERTAIN and d[1].person_id == -1
    assert d[2].status is Status.UNCERTAIN
    d = voter.decide_frame({1: fs(p7=0.8), 2: fs(p9=0.1)}, t=0.1)
    assert d[1].status is Status.KNOWN and d[1].person_id == 7
    assert d[1].similarity == pytest.approx(0.8) and d[1].num_embeddings == 2
    assert d[2].status is Status.UNKNOWN  # a stranger stays unknown
    # frames without a new embedding keep the decision
    d = voter.decide_frame({1: None, 2: None}, t=0.2)
    assert d[1].status is Status.KNOWN and d[2].status is Status.UNKNOWN


def test_uncertain_band_and_single_lucky_frame() -> None:
    voter = TrackVoter(TH, window=5, min_votes=2)
    for i in range(4):
        d = voter.decide_frame({1: fs(p7=0.42)}, t=i)
    assert d[1].status is Status.UNCERTAIN and d[1].similarity == pytest.approx(0.42)
    # one strong frame after weak ones: mean 0.47 and only 1 vote -> still uncertain
    d = voter.decide_frame({1: fs(p7=0.6)}, t=5)
    assert d[1].status is Status.UNCERTAIN
    d = voter.decide_frame({1: fs(p7=0.7)}, t=6)
    assert d[1].status is Status.KNOWN


def test_a_face_clearly_of_someone_else_is_not_named_by_the_window_before_it() -> None:
    """A swapped track's new face (0.8 for person 2, at the floor for person 1) is never named
    person 1, though person 1 still leads the window; person 2 needs evidence of its own."""
    voter = TrackVoter(TH, window=5, min_votes=2, switch_margin=0.05)
    for i in range(5):
        voter.decide_frame({1: fs(0.05, p1=0.8)}, t=i)
    assert voter.locked_person(1) == 1
    flips = []
    for i in range(5):
        d = voter.decide_frame({1: fs(0.05, p2=0.8)}, t=10 + i)
        flips.append((d[1].status, d[1].person_id))
    assert flips[0] == (Status.UNCERTAIN, -1) and flips[1] == (Status.UNCERTAIN, -1)
    assert all(person != 1 for _, person in flips)
    assert flips[-1] == (Status.KNOWN, 2)
    assert voter.locked_person(1) == 2


def test_locked_track_stays_through_uncertain_band_then_drops_for_a_stranger() -> None:
    voter = TrackVoter(TH, window=4, min_votes=2)
    for i in range(4):
        voter.decide_frame({1: fs(0.0, p1=0.8)}, t=i)
    # weaker faces of the same person (uncertain band 0.35-0.5): still person 1
    for i in range(3):
        d = voter.decide_frame({1: fs(0.0, p1=0.42)}, t=5 + i)
        assert (d[1].status, d[1].person_id) == (Status.KNOWN, 1)
    # the tracker swapped the face for a stranger: dropped at once, not after the window
    d = voter.decide_frame({1: fs(0.0, p5=0.05)}, t=10)
    assert d[1].status is not Status.KNOWN and d[1].person_id == -1
    assert voter.locked_person(1) is None
    statuses = [voter.decide_frame({1: fs(0.0, p5=0.05)}, t=11 + i)[1].status for i in range(4)]
    assert statuses[-1] is Status.UNKNOWN


def test_a_window_at_accept_does_not_name_a_newest_face_below_reject() -> None:
    """Before any lock, too: the window's mean passes, the newest face contradicts it."""
    voter = TrackVoter(TH, window=5, min_votes=2)
    for i in range(2):  # person 1 goes to track 2, the closer one: track 1 holds no lock
        d = voter.decide_frame({1: fs(0.0, p1=0.95), 2: fs(0.0, p1=0.99)}, t=i)
    assert d[1].status is Status.UNCERTAIN and voter.locked_person(1) is None
    d = voter.decide_frame({1: fs(0.0, p1=0.2)}, t=2)  # track 1: mean 0.7, 2 votes; face 0.2
    assert d[1].status is not Status.KNOWN and d[1].person_id == -1


def test_hungarian_gives_each_person_to_one_track() -> None:
    voter = TrackVoter(TH, window=3, min_votes=1)
    d = voter.decide_frame({1: fs(p1=0.9, p2=0.6), 2: fs(p1=0.8), 3: fs(p1=0.7)}, t=0)
    known = {tid: x.person_id for tid, x in d.items() if x.status is Status.KNOWN}
    # person 1 goes to the track most similar to it; nobody else is named person 1, and track 1
    # keeps its own best person (it is not pushed onto person 2 so that track 2 gets person 1)
    assert known == {1: 1}
    assert d[2].status is Status.UNCERTAIN and d[2].person_id == -1
    assert d[3].status is Status.UNCERTAIN and d[3].person_id == -1


def test_a_track_whose_best_person_went_elsewhere_is_not_given_its_runner_up() -> None:
    voter = TrackVoter(TH, window=3, min_votes=1)
    # track 1 resembles person 1 (0.9) and, less, person 2 (0.6, above accept); track 2 is
    # even closer to person 1. Track 2 is person 1; track 1 is UNCERTAIN, never person 2.
    d = voter.decide_frame({1: fs(p1=0.9, p2=0.6), 2: fs(p1=0.95)}, t=0)
    assert (d[2].status, d[2].person_id) == (Status.KNOWN, 1)
    assert (d[1].status, d[1].person_id) == (Status.UNCERTAIN, -1)
    assert d[1].similarity == pytest.approx(0.9)  # its own best evidence, reported as such
    assert voter.locked_person(1) is None


def test_margin_between_best_and_runner_up_person() -> None:
    th = Thresholds(accept=0.5, reject=0.35, margin=0.05)
    voter = TrackVoter(th, window=3, min_votes=1)
    d = voter.decide_frame({1: fs(p1=0.8, p2=0.77), 2: fs(p3=0.8, p4=0.74)}, t=0)
    assert d[1].status is Status.UNCERTAIN  # 0.03 apart: too close to tell
    assert (d[2].status, d[2].person_id) == (Status.KNOWN, 3)  # 0.06 apart
    # the margin is over the window means: a clearer second embedding settles track 1
    d = voter.decide_frame({1: fs(p1=0.85, p2=0.7)}, t=1)
    assert (d[1].status, d[1].person_id) == (Status.KNOWN, 1)
    # a person absent from the scores counts at the floor, an upper bound of its similarity
    d = TrackVoter(th, window=3, min_votes=1).decide_frame({5: fs(0.78, p1=0.8)}, t=0)
    assert d[5].status is Status.UNCERTAIN
    d = TrackVoter(th, window=3, min_votes=1).decide_frame({5: fs(0.7, p1=0.8)}, t=0)
    assert d[5].status is Status.KNOWN
    # a locked track switches only to a person that passes the margin against the old one too
    voter = TrackVoter(th, window=2, min_votes=1, switch_margin=0.05)
    voter.decide_frame({1: fs(p1=0.8)}, t=0)
    voter.decide_frame({1: fs(p1=0.5, p2=0.95)}, t=1)  # p2 mean 0.475 + 0.95 -> 0.71 vs 0.65
    assert voter.locked_person(1) == 1


def test_locked_track_keeps_its_person_against_a_newcomer() -> None:
    voter = TrackVoter(TH, window=3, min_votes=1, switch_margin=0.05)
    for i in range(3):
        voter.decide_frame({1: fs(p1=0.8)}, t=i)
    d = voter.decide_frame({1: fs(p1=0.8), 2: fs(p1=0.82)}, t=3)
    assert (d[1].status, d[1].person_id) == (Status.KNOWN, 1)
    assert d[2].status is Status.UNCERTAIN


def test_assign_unique() -> None:
    assert assign_unique({}) == {}
    assert assign_unique({1: {}, 2: {5: 0.7}}) == {2: 5}
    assert assign_unique({1: {5: 0.9, 6: 0.8}, 2: {5: 0.95}}) == {1: 6, 2: 5}
    out = assign_unique({1: {5: 0.9}, 2: {5: 0.8}, 3: {5: 0.7}})
    assert out == {1: 5}


def test_stale_tracks_are_forgotten() -> None:
    voter = TrackVoter(TH, window=3, min_votes=1, track_timeout=2.0)
    voter.decide_frame({1: fs(p1=0.9), 2: fs(p2=0.9)}, t=0)
    voter.decide_frame({2: None}, t=1.5)
    assert voter.expire(2.0) == []  # exactly the timeout: kept
    assert voter.expire(2.01) == [1]
    assert voter.track_ids() == [2]
    # a returning track id starts from scratch
    d = voter.decide_frame({1: fs(p3=0.9)}, t=3)
    assert d[1].person_id == 3 and d[1].num_embeddings == 1


def test_forget_persons_unlocks_tracks() -> None:
    voter = TrackVoter(TH, window=3, min_votes=1)
    voter.decide_frame({1: fs(p1=0.9, p2=0.55)}, t=0)
    assert voter.locked_person(1) == 1
    voter.forget_persons([1])
    assert voter.locked_person(1) is None
    d = voter.decide_frame({1: None}, t=1)
    assert (d[1].status, d[1].person_id) == (Status.KNOWN, 2)


def test_opted_out_track_is_suppressed_for_good() -> None:
    voter = TrackVoter(TH, window=3, min_votes=1)
    opted = frozenset({4})
    d = voter.decide_frame({1: fs(p4=0.9, p2=0.6)}, t=0, opted_out=opted)
    assert d[1].suppressed and d[1].status is Status.UNCERTAIN and d[1].person_id == -1
    d = voter.decide_frame({1: fs(p2=0.9)}, t=1, opted_out=opted)
    assert d[1].suppressed  # sticky for the track's lifetime
    d = voter.decide_frame({2: fs(p4=0.2)}, t=1, opted_out=opted)
    assert not d[2].suppressed and d[2].status is Status.UNKNOWN


def test_ephemeral_faces_compete_but_keep_no_state() -> None:
    voter = TrackVoter(TH, window=3, min_votes=2)
    voter.decide_frame({1: fs(p1=0.9)}, t=0)
    voter.decide_frame({1: fs(p1=0.9)}, t=1)
    assert voter.locked_person(1) == 1
    d = voter.decide_frame({1: fs(p1=0.9)}, t=2, ephemeral={-5: fs(p1=0.92), -6: fs(p2=0.2)})
    assert (d[1].status, d[1].person_id) == (Status.KNOWN, 1)
    assert d[-5].status is Status.UNCERTAIN  # person 1 is taken by the locked track
    assert d[-6].status is Status.UNKNOWN
    assert voter.track_ids() == [1]
    with pytest.raises(ValueError, match="collides"):
        voter.decide_frame({1: None}, t=3, ephemeral={1: None})


def test_configure_keeps_evidence_and_validates() -> None:
    voter = TrackVoter(TH, window=5, min_votes=3)
    for i in range(2):
        d = voter.decide_frame({1: fs(p1=0.9)}, t=i)
    assert d[1].status is Status.UNCERTAIN
    voter.configure(TH, window=2, min_votes=2, switch_margin=0.1, track_timeout=5)
    assert voter.decide_frame({1: None}, t=3)[1].status is Status.KNOWN
    with pytest.raises(ValueError):
        TrackVoter(TH, window=2, min_votes=3)
