"""VisitTracker and GreetingPolicy: once per visit, absence and cooldown boundaries, unknowns."""

from __future__ import annotations

import pytest

from visio_memoria_ros.identity.greeting import (
    GreetingPolicy,
    Visit,
    VisitEventKind,
    VisitTracker,
)


def test_visit_starts_continues_and_ends_after_absence() -> None:
    visits = VisitTracker(absence=60.0)
    e = visits.observe(1, 100.0)
    assert e.kind is VisitEventKind.STARTED and e.ended is None
    assert visits.observe(1, 130.0).kind is VisitEventKind.CONTINUED
    # a gap of exactly `absence` continues the visit
    e = visits.observe(1, 190.0)
    assert e.kind is VisitEventKind.CONTINUED and e.visit == Visit(1, 100.0, 190.0)
    # a longer gap ends it at the last sighting and starts a new one
    e = visits.observe(1, 250.5)
    assert e.kind is VisitEventKind.STARTED
    assert e.ended == Visit(1, 100.0, 190.0)
    assert e.visit == Visit(1, 250.5, 250.5)


def test_expire_reports_ended_visits_once() -> None:
    visits = VisitTracker(absence=10.0)
    visits.observe(1, 0.0)
    visits.observe(2, 5.0)
    visits.observe(1, 4.0)
    assert visits.expire(14.0) == []  # person 1 unseen for exactly 10 s
    assert visits.expire(14.5) == [Visit(1, 0.0, 4.0)]
    assert visits.expire(14.5) == []
    assert [v.person_id for v in visits.active()] == [2]
    assert visits.observe(1, 15.0).kind is VisitEventKind.STARTED
    assert sorted(v.person_id for v in visits.close_all()) == [1, 2] and len(visits) == 0


def test_out_of_order_and_clock_jumps() -> None:
    visits = VisitTracker(absence=10.0)
    visits.observe(1, 100.0)
    e = visits.observe(1, 95.0)  # late message: continues, time does not go backwards
    assert e.kind is VisitEventKind.CONTINUED and e.visit.last_seen == 100.0
    e = visits.observe(1, 3.0)  # simulation restarted
    assert e.kind is VisitEventKind.STARTED and e.ended == Visit(1, 100.0, 100.0)
    with pytest.raises(ValueError):
        visits.observe(1, float("nan"))
    with pytest.raises(ValueError):
        VisitTracker(absence=0)


def test_greets_once_per_visit() -> None:
    policy = GreetingPolicy(cooldown=0.0, absence=60.0)
    g = policy.on_known(7, "Alex", 10.0, track_id=3)
    assert g is not None and g.text == "Welcome back, Alex!"
    assert (g.person_id, g.track_id, g.name, g.t, g.is_unknown) == (7, 3, "Alex", 10.0, False)
    for t in (11.0, 40.0, 100.0):  # same visit (gaps <= 60 s), even from another track
        assert policy.on_known(7, "Alex", t, track_id=4) is None
    assert policy.on_known(8, "Sam", 100.0) is not None  # another person, own visit
    assert policy.on_known(7, "Alex", 160.0) is None  # gap of exactly 60 s: same visit
    g = policy.on_known(7, "Alex", 220.01)  # gap > 60 s: a new visit
    assert g is not None


def test_cooldown_blocks_new_visit_greetings() -> None:
    policy = GreetingPolicy(cooldown=300.0, absence=60.0)
    assert policy.on_known(1, "Alex", 0.0) is not None
    # left and came back after 100 s: new visit but inside the cooldown
    assert policy.on_known(1, "Alex", 100.0) is None
    assert policy.visits.current(1) == Visit(1, 100.0, 100.0)
    # the visit that began in the cooldown is not greeted later in that visit
    for t in (150.0, 200.0, 250.0, 310.0):
        assert policy.on_known(1, "Alex", t) is None
    # the next visit, after the cooldown, is greeted
    assert policy.on_known(1, "Alex", 400.0) is not None
    policy2 = GreetingPolicy(cooldown=300.0, absence=60.0)
    policy2.on_known(1, "Alex", 0.0)
    assert policy2.on_known(1, "Alex", 200.0) is None  # new visit, in cooldown
    assert policy2.on_known(1, "Alex", 250.0) is None  # continuing visit
    assert policy2.on_known(1, "Alex", 300.0) is None  # continuing, cooldown just over
    assert policy2.on_known(1, "Alex", 361.0) is not None  # new visit, cooldown over


def test_cooldown_boundary_is_inclusive() -> None:
    policy = GreetingPolicy(cooldown=100.0, absence=10.0)
    assert policy.on_known(1, "A", 0.0) is not None
    assert policy.on_known(1, "A", 99.9) is None
    assert policy.on_known(1, "A", 200.0) is not None
    policy = GreetingPolicy(cooldown=100.0, absence=10.0)
    policy.on_known(1, "A", 0.0)
    assert policy.on_known(1, "A", 100.0) is not None  # exactly the cooldown later


def test_unknown_announced_once_per_track_and_off_when_empty() -> None:
    silent = GreetingPolicy()
    assert silent.on_unknown(5, 0.0) is None
    policy = GreetingPolicy(unknown_text="Hello, I don't think we've met.")
    g = policy.on_unknown(5, 1.0)
    assert g is not None and g.is_unknown and g.track_id == 5
    assert policy.on_unknown(5, 2.0) is None
    assert policy.on_unknown(6, 2.0) is not None
    assert policy.on_unknown(-1, 2.0) is None  # untracked faces are never announced
    policy.forget_track(5)
    assert policy.on_unknown(5, 3.0) is not None


def test_template_validation_and_greetings_off() -> None:
    with pytest.raises(ValueError, match="name"):
        GreetingPolicy(template="Hi {who}!")
    with pytest.raises(ValueError):
        GreetingPolicy(template="Hi {0}!")
    with pytest.raises(ValueError):
        GreetingPolicy(cooldown=-1)
    german = GreetingPolicy(template="Hallo {name}, schön dich zu sehen")
    assert german.on_known(1, "Jo", 0).text == "Hallo Jo, schön dich zu sehen"
    off = GreetingPolicy(template="")
    assert off.on_known(1, "Jo", 0.0) is None
    assert off.visits.current(1) is not None  # visits are still tracked


def test_forget_person_and_configure() -> None:
    policy = GreetingPolicy(cooldown=1000.0, absence=10.0)
    policy.on_known(1, "A", 0.0)
    policy.forget_person(1)
    assert policy.visits.current(1) is None
    assert policy.on_known(1, "A", 1.0) is not None  # history gone
    policy.configure(template="Hi {name}", cooldown=0.0, absence=5.0, unknown_text="?")
    assert policy.on_known(1, "A", 7.0).text == "Hi A"  # gap 6 s > new absence 5 s
    assert policy.on_unknown(9, 7.0).text == "?"
