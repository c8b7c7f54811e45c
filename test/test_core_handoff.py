"""UntrackedHandoff: an untracked sighting is claimed once, by a box at the same place, in time."""

from __future__ import annotations

import pytest

from visio_memoria_ros.core.handoff import UntrackedHandoff, box_iou


def test_box_iou() -> None:
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0  # empty boxes


def test_claim_best_overlap_once_within_age() -> None:
    h: UntrackedHandoff[str] = UntrackedHandoff(max_age=1.0, min_iou=0.5)
    h.remember([0, 0, 10, 10], 0.0, "a")
    h.remember([100, 0, 110, 10], 0.1, "b")
    assert h.claim([50, 0, 60, 10], 0.2) is None  # nowhere near
    assert h.claim([100, 0, 110, 10], 0.25) == (0.1, "b")  # not the first remembered
    h.remember([100, 0, 110, 10], 0.1, "b")
    assert h.claim([1, 0, 11, 10], 0.3) == (0.0, "a")
    assert h.claim([1, 0, 11, 10], 0.3) is None  # claimed once only
    assert h.claim([100, 0, 110, 10], 1.2) is None  # b is 1.1 s old
    assert len(h) == 0


def test_max_age_zero_turns_the_handoff_off() -> None:
    h: UntrackedHandoff[str] = UntrackedHandoff(max_age=0.0)
    h.remember([0, 0, 10, 10], 1.0, "a")
    assert len(h) == 0
    assert h.claim([0, 0, 10, 10], 1.0) is None


def test_future_and_malformed_sightings_are_ignored() -> None:
    h: UntrackedHandoff[int] = UntrackedHandoff(max_age=1.0)
    h.remember([0, 0, 10, 10], 5.0, 1)
    assert h.claim([0, 0, 10, 10], 4.0) is None  # seen after the claim time
    h.remember([0, 0, float("nan"), 10], 5.0, 2)
    h.remember([0, 0, 10], 5.0, 3)
    assert len(h) == 1
    with pytest.raises(ValueError):
        UntrackedHandoff(min_iou=0.0)
