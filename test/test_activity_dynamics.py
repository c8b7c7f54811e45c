"""Dynamics rules: posture from box aspect, walking from speed, approach/leave from scale."""

from __future__ import annotations

import numpy as np
import pytest

from visio_memoria_ros.activity import (
    DYNAMICS_LABELS,
    UNKNOWN_ACTIVITY,
    DynamicsClassifier,
    DynamicsConfig,
)

T0 = 1_700_000_000.0  # image stamps, not the wall clock


def _track(
    n: int = 11,
    dt: float = 0.1,
    *,
    cx: float = 320.0,
    vx: float = 0.0,
    height: float = 300.0,
    growth: float = 0.0,
    aspect: float = 3.0,
    bottom: float = 450.0,
    jitter: float = 0.0,
    seed: int = 0,
) -> list[tuple[float, np.ndarray]]:
    """A box track: centre moving at vx px/s, height scaled by exp(growth * t)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = i * dt
        h = height * np.exp(growth * t)
        w = h / aspect
        x = cx + vx * t
        box = np.array([x - w / 2, bottom - h, x + w / 2, bottom], dtype=np.float64)
        box += rng.normal(0, jitter, 4)
        out.append((T0 + t, box))
    return out


@pytest.fixture
def clf() -> DynamicsClassifier:
    return DynamicsClassifier()


def test_still_tall_box_is_standing_and_wide_box_is_sitting(clf: DynamicsClassifier):
    standing = clf.classify(_track(aspect=3.0))
    assert standing.activity == "standing"
    assert standing.confidence > 0.8
    sitting = clf.classify(_track(aspect=1.2))
    assert sitting.activity == "sitting"
    assert sitting.confidence > 0.5
    # Close to the threshold: still decided, but less sure.
    borderline = clf.classify(_track(aspect=1.7))
    assert borderline.activity == "standing"
    assert borderline.confidence < standing.confidence


def test_a_single_sample_is_unknown_not_a_guessed_posture(clf: DynamicsClassifier):
    result = clf.classify(_track(n=1, aspect=1.1))
    assert result.activity == UNKNOWN_ACTIVITY and result.span == 0.0
    assert result.confidence == 0.0 and result.certainty == 0.0
    np.testing.assert_allclose(result.probabilities, 1 / len(DYNAMICS_LABELS))  # no evidence
    # a few frames that span less than min_span (0.3 s) cannot tell still from moving either
    assert clf.classify(_track(n=3, dt=0.1, aspect=1.1)).activity == UNKNOWN_ACTIVITY
    assert clf.classify(_track(n=4, dt=0.1, aspect=1.1)).activity == "sitting"


def test_horizontal_motion_is_walking(clf: DynamicsClassifier):
    result = clf.classify(_track(vx=240.0, height=300.0, jitter=2.0))  # 0.8 heights/s
    assert result.activity == "walking"
    assert result.speed == pytest.approx(0.8, rel=0.1)
    assert result.confidence > 0.8
    slow = clf.classify(_track(vx=30.0, height=300.0))  # 0.1 heights/s: swaying, not walking
    assert slow.activity == "standing"
    assert slow.confidence < clf.classify(_track()).confidence


def test_growing_box_is_approaching_and_shrinking_is_leaving(clf: DynamicsClassifier):
    approaching = clf.classify(_track(growth=0.4, jitter=1.0))
    assert approaching.activity == "approaching"
    assert approaching.scale_rate == pytest.approx(0.4, rel=0.15)
    leaving = clf.classify(_track(growth=-0.4, jitter=1.0))
    assert leaving.activity == "leaving"
    assert leaving.scale_rate < 0


def test_the_stronger_motion_cue_wins(clf: DynamicsClassifier):
    # Diagonal walk: scale 0.5/s is 3.3x its threshold, lateral 0.3 heights/s is 1.2x.
    result = clf.classify(_track(vx=90.0, growth=0.5))
    assert result.activity == "approaching"
    result = clf.classify(_track(vx=600.0, growth=0.2))
    assert result.activity == "walking"


def test_detector_jitter_alone_does_not_look_like_motion(clf: DynamicsClassifier):
    for seed in range(5):
        result = clf.classify(_track(n=30, dt=1 / 30, jitter=3.0, seed=seed))
        assert result.activity == "standing", result


def test_motion_needs_the_minimum_span(clf: DynamicsClassifier):
    short = _track(n=3, dt=0.1, vx=600.0)  # spans 0.2 s < min_span 0.3 s
    assert clf.classify(short).activity == UNKNOWN_ACTIVITY
    longer = _track(n=5, dt=0.1, vx=600.0)  # spans 0.4 s: walking, with partial support
    result = clf.classify(longer)
    assert result.activity == "walking"
    assert result.confidence < clf.classify(_track(vx=600.0)).confidence


def test_only_the_window_counts(clf: DynamicsClassifier):
    moving = _track(n=11, vx=600.0)
    still = [(t + 2.0, moving[-1][1]) for t, _ in _track(n=11)]
    assert clf.classify(moving + still).activity == "standing"


def test_truncated_boxes_lower_posture_confidence(clf: DynamicsClassifier):
    track = _track(aspect=1.2, bottom=479.0)
    full = clf.classify(track)
    cut = clf.classify(track, image_height=480)
    assert cut.activity == full.activity == "sitting"
    assert cut.confidence < full.confidence
    assert clf.classify(track, image_height=1080).confidence == full.confidence


def test_an_extrapolated_body_box_gives_no_posture_but_motion(clf: DynamicsClassifier):
    """A body box extrapolated from the face has its aspect by construction: a still person is
    "unknown" (not "standing"), whatever the aspect; motion of the box is still evidence."""
    for aspect in (1.2, 2.3, 3.0):
        still = clf.classify(_track(aspect=aspect), posture_from_box=False)
        assert still.activity == UNKNOWN_ACTIVITY and still.confidence == 0.0
        assert clf.classify(_track(aspect=aspect)).activity != UNKNOWN_ACTIVITY  # measured
    walking = clf.classify(_track(vx=240.0, aspect=2.3), posture_from_box=False)
    assert walking.activity == "walking" and walking.confidence > 0.8
    approaching = clf.classify(_track(growth=0.4, aspect=2.3), posture_from_box=False)
    assert approaching.activity == "approaching"


def test_thresholds_are_parameters():
    track = _track(vx=60.0, height=300.0)  # 0.2 heights/s
    assert DynamicsClassifier().classify(track).activity == "standing"
    assert DynamicsClassifier(DynamicsConfig(walk_speed=0.1)).classify(track).activity == "walking"
    wide = _track(aspect=2.0)
    assert DynamicsClassifier(DynamicsConfig(sitting_max_aspect=2.2)).classify(wide).activity == (
        "sitting"
    )


def test_config_and_input_validation():
    with pytest.raises(ValueError, match="walk_speed"):
        DynamicsConfig(walk_speed=0.0)
    with pytest.raises(ValueError, match="min_span"):
        DynamicsConfig(window=0.5, min_span=1.0)
    with pytest.raises(ValueError, match="max_certainty"):
        DynamicsConfig(max_certainty=1.5)
    with pytest.raises(ValueError, match="at least one"):
        DynamicsClassifier().classify([])
    with pytest.raises(ValueError, match="inverted"):
        DynamicsClassifier().classify([(0.0, (10, 10, 5, 5))])


def test_confidence_is_a_probability_and_never_below_chance(clf: DynamicsClassifier):
    tracks = [
        _track(),
        _track(aspect=1.6),
        _track(n=4, vx=600.0),
        _track(growth=-1.0),
        _track(n=1),
    ]
    for track in tracks:
        result = clf.classify(track, image_height=451)
        if result.activity == UNKNOWN_ACTIVITY:  # the single sample: no evidence
            assert track is tracks[-1] and result.confidence == 0.0
            continue
        assert 1 / len(DYNAMICS_LABELS) <= result.confidence <= 1.0
        assert result.probabilities[DYNAMICS_LABELS.index(result.activity)] == result.confidence
        assert result.probabilities.argmax() == DYNAMICS_LABELS.index(result.activity)
