"""ActivitySmoother and ActivityEngine: head-or-dynamics per person, smoothed per track."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from visio_memoria_ros.activity import (
    DYNAMICS_LABELS,
    UNKNOWN_ACTIVITY,
    ActivityEngine,
    ActivityResult,
    ActivitySmoother,
    LinearActivityHead,
)
from visio_memoria_ros.config import NODE_PARAMS, validate_value
from visio_memoria_ros.core.types import PersonObservation

EMB = "dinov3_vitb16_scene_1536_r224"
DIM = 8


# ---------------------------------------------------------------- smoother


def test_smoother_follows_an_ema_with_time_constant():
    sm = ActivitySmoother(time_constant=1.0, stale_after=5.0)
    labels = ("a", "b")
    assert sm.update(1, 0.0, labels, [1.0, 0.0]) == ("a", 1.0)
    label, conf = sm.update(1, 1.0, labels, [0.0, 1.0])
    alpha = 1 - math.exp(-1.0)
    assert label == "a" if alpha < 0.5 else label == "b"
    assert conf == pytest.approx(max(alpha, 1 - alpha))
    _, probs = sm.probabilities(1)
    np.testing.assert_allclose(probs, [1 - alpha, alpha])


def test_smoother_does_not_depend_on_the_frame_rate():
    results = []
    for fps in (5, 30):
        sm = ActivitySmoother(time_constant=0.5)
        sm.update("k", 0.0, ("a", "b"), [1.0, 0.0])
        for i in range(1, fps + 1):
            out = sm.update("k", i / fps, ("a", "b"), [0.2, 0.8])
        results.append(out)
    assert results[0][0] == results[1][0] == "b"
    assert results[0][1] == pytest.approx(results[1][1], abs=1e-9)


def test_smoother_zero_time_constant_passes_through_and_switch_resets():
    sm = ActivitySmoother(time_constant=0.0)
    sm.update(1, 0.0, ("a", "b"), [0.9, 0.1])
    assert sm.update(1, 0.1, ("a", "b"), [0.3, 0.7]) == ("b", pytest.approx(0.7))
    slow = ActivitySmoother(time_constant=10.0)
    slow.update(1, 0.0, ("a", "b"), [0.9, 0.1])
    # Another label set (head loaded, embedder switched): the state restarts.
    assert slow.update(1, 0.1, ("x", "y", "z"), [0.1, 0.2, 0.7]) == ("z", pytest.approx(0.7))
    # Time running backwards (a replayed bag) restarts too.
    assert slow.update(1, 0.0, ("x", "y", "z"), [0.8, 0.1, 0.1]) == ("x", pytest.approx(0.8))


def test_smoother_forgets_stale_tracks_and_validates():
    sm = ActivitySmoother(time_constant=1.0, stale_after=2.0)
    sm.update(1, 0.0, ("a",), [1.0])
    sm.update(2, 1.5, ("a",), [1.0])
    assert sm.forget_stale(2.5) == [1]
    assert 1 not in sm and 2 in sm and len(sm) == 1
    sm.forget(2)
    assert len(sm) == 0
    with pytest.raises(ValueError):
        sm.update(3, 0.0, ("a", "b"), [1.0])
    with pytest.raises(ValueError):
        sm.update(3, 0.0, ("a", "b"), [-1.0, 2.0])
    with pytest.raises(ValueError):
        ActivitySmoother(time_constant=-1.0)
    with pytest.raises(ValueError):
        ActivitySmoother(stale_after=0.0)


# ---------------------------------------------------------------- engine


def _person(box, track_id=-1, face_track_id=-1, emb=None, embedder="", detector="yolo"):
    return PersonObservation(
        bbox=np.asarray(box, np.float32),
        score=0.9,
        detector=detector,
        track_id=track_id,
        face_track_id=face_track_id,
        scene_embedding=None if emb is None else np.asarray(emb, np.float32),
        scene_embedder=embedder,
    )


def _head() -> LinearActivityHead:
    """A hand-made head: 'reading' on feature 0, 'waving' on feature 1."""
    weights = np.zeros((2, DIM), np.float32)
    weights[0, 0] = weights[1, 1] = 10.0
    return LinearActivityHead(weights, np.zeros(2), ("reading", "waving"), EMB, l2_input=False)


def _unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    return v


def test_engine_without_a_head_uses_dynamics_and_never_returns_empty():
    engine = ActivityEngine()
    results = []
    for i in range(20):
        t = 100.0 + i * 0.1
        x = 100 + 60 * i  # 600 px/s for a 300 px tall person: walking
        persons = [
            _person([x, 100, x + 100, 400], track_id=1, face_track_id=11),
            _person([400, 100, 500, 400], track_id=2),
            _person([0, 0, 150, 120]),  # untracked: one box, no history
        ]
        results = engine.process(t, persons)
        if i == 0:  # one frame is no evidence yet, for anybody
            assert [r.activity for r in results] == [UNKNOWN_ACTIVITY] * 3
            assert [r.confidence for r in results] == [0.0] * 3
    assert [type(r) for r in results] == [ActivityResult] * 3
    walking, standing, untracked = results
    assert walking == (1, 11, "walking", walking.confidence, "dynamics")
    assert walking.confidence > 0.7
    assert standing.activity == "standing" and standing.person_track_id == 2
    assert standing.face_track_id == -1
    assert untracked.activity == UNKNOWN_ACTIVITY and untracked.method == "dynamics"
    assert all(r.activity in DYNAMICS_LABELS and 0 < r.confidence <= 1 for r in results[:2])
    assert engine.n_tracks == 2  # the untracked person keeps no history
    assert engine.stats["dynamics"] == 60 and engine.stats["head"] == 0


def test_engine_uses_the_head_when_the_embedder_matches():
    engine = ActivityEngine(_head(), smoothing_time_constant=0.0)
    persons = [
        _person([0, 0, 100, 300], track_id=1, emb=_unit(1), embedder=EMB),
        _person([200, 0, 300, 300], track_id=2, emb=_unit(0), embedder=EMB),
    ]
    r1, r2 = engine.process(5.0, persons)
    assert (r1.activity, r1.method) == ("waving", f"head:{EMB}")
    assert (r2.activity, r2.method) == ("reading", f"head:{EMB}")
    assert r1.confidence > 0.99


def test_engine_falls_back_to_dynamics_for_other_embedders(caplog: pytest.LogCaptureFixture):
    engine = ActivityEngine(_head())
    persons = [
        _person([0, 0, 100, 300], track_id=1, emb=_unit(1), embedder="dinov3_vits16_scene"),
        _person([200, 0, 300, 300], track_id=2, emb=np.ones(DIM + 1), embedder=EMB),
        _person([400, 0, 500, 300], track_id=3),  # not embedded (yet)
        _person([600, 0, 700, 300], track_id=4, emb=_unit(0), embedder=EMB),
    ]
    with caplog.at_level(logging.WARNING):
        results = engine.process(1.0, persons)
        engine.process(1.1, persons)
    assert [r.method for r in results] == ["dynamics", "dynamics", "dynamics", f"head:{EMB}"]
    assert results[0].activity == UNKNOWN_ACTIVITY  # one frame: no dynamics evidence yet
    assert engine.stats["head_refused"] == 4
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once per reason, not once per frame
    assert any("dinov3_vits16_scene" in w for w in warnings)


def test_engine_smooths_per_track_and_restarts_when_the_method_changes():
    engine = ActivityEngine(_head(), smoothing_time_constant=1.0)
    person = _person([0, 0, 100, 300], track_id=7, emb=_unit(0), embedder=EMB)
    assert engine.process(0.0, [person])[0].activity == "reading"
    # One contrary frame 0.1 s later does not flip the smoothed label.
    person.scene_embedding = _unit(1)
    r = engine.process(0.1, [person])[0]
    assert r.activity == "reading" and r.confidence < 0.95
    # Without an embedding the track switches to dynamics and smoothing restarts: its box
    # history spans 0.2 s, too short to tell still from moving.
    person.scene_embedding = None
    r = engine.process(0.2, [person])[0]
    assert r.method == "dynamics" and r.activity == UNKNOWN_ACTIVITY
    later = [engine.process(0.3 + 0.1 * i, [person])[0] for i in range(20)]
    assert {r.method for r in later} == {"dynamics"} and later[-1].activity == "standing"


def test_engine_forgets_stale_tracks_and_resets_when_time_goes_back():
    engine = ActivityEngine(stale_after=1.0)
    engine.process(10.0, [_person([0, 0, 100, 300], track_id=1)])
    engine.process(10.5, [_person([0, 0, 100, 300], track_id=2)])
    assert engine.n_tracks == 2
    engine.process(11.2, [_person([0, 0, 100, 300], track_id=2)])
    assert engine.n_tracks == 1 and ("person", 1) not in engine.smoother
    engine.process(3.0, [_person([0, 0, 100, 300], track_id=3)])
    assert engine.n_tracks == 1 and ("person", 2) not in engine.smoother


def test_engine_keys_untracked_persons_by_their_face_track():
    engine = ActivityEngine()
    for i in range(11):
        x = 50 * i
        [r] = engine.process(i * 0.1, [_person([x, 0, x + 100, 300], face_track_id=42)])
    assert r == (-1, 42, "walking", r.confidence, "dynamics")


def test_still_person_with_a_face_extrapolated_box_is_unknown():
    """person_backend face_extrapolated (the default): a still person is "unknown" however long
    they are seen, not "standing"; when they walk, that is reported, and it fades back to
    "unknown" once they stop."""
    engine = ActivityEngine()
    box = [200, 100, 290, 310]  # the extrapolated aspect, ~2.3: "standing" if it were measured
    for i in range(30):
        r = engine.process(i * 0.1, [_person(box, track_id=1, detector="face_extrapolated")])[0]
        assert (r.activity, r.confidence) == (UNKNOWN_ACTIVITY, 0.0), i
    measured = ActivityEngine()
    for i in range(30):
        m = measured.process(i * 0.1, [_person(box, track_id=1)])[0]
    assert m.activity == "standing"  # the same box from a real body detector
    walked = []
    for i in range(30, 45):  # walks 600 px/s
        x = 200 + 60 * (i - 30)
        walked.append(engine.process(i * 0.1, [_person([x, 100, x + 90, 310], track_id=1,
                                                       detector="face_extrapolated")])[0])
    assert walked[-1].activity == "walking"
    after = [engine.process(4.5 + i * 0.1, [_person([1100, 100, 1190, 310], track_id=1,
                                                    detector="face_extrapolated")])[0].activity
             for i in range(40)]
    assert after[0] == "walking" and after[-1] == UNKNOWN_ACTIVITY
    assert "standing" not in after and engine.stats["unknown"] > 30


def test_engine_from_node_parameters(tmp_path: Path):
    specs = NODE_PARAMS["activity_node"]
    params = {s.name: s.default for s in specs}
    for spec in specs:
        assert spec.description.strip()
        assert validate_value(spec, spec.default) is None, spec.name
    engine = ActivityEngine.from_params(params)
    assert engine.head is None
    assert engine.dynamics.config.walk_speed == params["walk_speed"]
    assert engine.smoother.time_constant == params["smoothing_time_constant"]

    path = _head().save(tmp_path / "head.npz")
    engine = ActivityEngine.from_params({**params, "head_path": str(path)})
    assert engine.head is not None and engine.head.labels == ("reading", "waving")
    with pytest.raises(FileNotFoundError):
        ActivityEngine.from_params({**params, "head_path": str(tmp_path / "missing.npz")})
    with pytest.raises(ValueError, match="min_span"):
        ActivityEngine.from_params({**params, "dynamics_window": 0.2, "dynamics_min_span": 0.5})
    head_spec = next(s for s in specs if s.name == "head_path")
    assert head_spec.read_only


def test_run_time_parameter_changes_keep_tracks_and_refuse_bad_combinations():
    engine = ActivityEngine()
    track = [_person([0, 0, 100, 300], track_id=1)]
    engine.process(0.0, track)
    engine.update_params({"walk_speed": 0.5, "smoothing_time_constant": 2.0})
    assert engine.dynamics.config.walk_speed == 0.5
    assert engine.dynamics.config.window == 1.0  # unchanged names keep their value
    assert engine.smoother.time_constant == 2.0 and engine.n_tracks == 1
    with pytest.raises(ValueError, match="min_span"):
        engine.update_params({"dynamics_min_span": 2.0, "smoothing_time_constant": 0.0})
    assert engine.smoother.time_constant == 2.0  # nothing applied from the refused update
    with pytest.raises(ValueError, match="stale_after"):
        engine.update_params({"stale_after": 0.0})
