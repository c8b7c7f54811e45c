"""identity.calibration: margin and thresholds from labelled probes, the identity split, YAML."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_identity_synth import DLIB_THRESHOLDS, centres, samples

from visio_memoria_ros.identity import EngineConfig
from visio_memoria_ros.identity.calibration import (
    CalibrationError,
    far_threshold,
    leave_one_identity_out,
    margin_for,
    probe_outcome,
    recommend_from_outcomes,
    recommend_thresholds,
    split_identities,
    write_thresholds_yaml,
)
from visio_memoria_ros.identity.matcher import FrameScores

CONFIG = Path(__file__).resolve().parents[1] / "config" / "visio_memoria.yaml"


def test_probe_outcome_of_genuine_misidentified_and_stranger_probes() -> None:
    genuine = probe_outcome(FrameScores({1: 0.95, 2: 0.90}, 0.8), truth=1)
    assert genuine.top1_correct and genuine.gap == pytest.approx(0.05)
    assert genuine.own_score == 0.95 and genuine.wrong_score == 0.90
    assert genuine.wrong_gap == pytest.approx(-0.05)  # the wrong person is not on top
    wrong = probe_outcome(FrameScores({1: 0.90, 2: 0.95, 3: 0.85}, 0.8), truth=1)
    assert not wrong.top1_correct and wrong.wrong_score == 0.95
    assert wrong.wrong_gap == pytest.approx(0.05)  # it beats everybody, own person included
    stranger = probe_outcome(FrameScores({4: 0.93}, 0.88), truth=None)
    assert stranger.own_score is None and stranger.wrong_score == 0.93
    assert stranger.wrong_gap == pytest.approx(0.05)  # against the floor: nobody else retrieved
    empty = probe_outcome(FrameScores(), truth=None)
    assert empty.best == -1 and not np.isfinite(empty.best_score)


def test_margin_is_the_genuine_gap_quantile() -> None:
    gaps = np.linspace(0.01, 0.10, 100)
    assert margin_for(gaps, 0.0) == 0.01
    assert margin_for(gaps, 0.05) == pytest.approx(0.014, abs=1e-9)  # 5 fall below
    assert np.mean(gaps < margin_for(gaps, 0.05)) <= 0.05
    assert margin_for([], 0.01) == 0.0 and margin_for([-0.2], 0.01) == 0.0


def test_an_impostor_that_does_not_clear_the_margin_does_not_hold_accept_up() -> None:
    rng = np.random.default_rng(0)
    genuine = rng.normal(0.96, 0.01, 400)
    genuine_gaps = rng.uniform(0.05, 0.12, 400)
    impostor = rng.normal(0.85, 0.02, 4000)
    impostor_gaps = rng.uniform(0.0, 0.03, 4000)  # strangers sit between two people
    impostor[:6] = 0.99  # six strangers very close to someone, but also to a runner-up
    plain = recommend_thresholds(genuine, impostor, 0.001)
    cal = recommend_thresholds(genuine, impostor, 0.001, genuine_gaps=genuine_gaps,
                               impostor_gaps=impostor_gaps)
    assert plain["margin"] == 0.0 and plain["accept_threshold"] > 0.99
    assert cal["margin"] == margin_for(genuine_gaps, 0.01) >= 0.05
    assert cal["accept_threshold"] < 0.95  # the six cannot be accepted: they lack the lead
    # never below what holds the impostors to 10 x the target without any margin
    assert cal["accept_threshold"] >= far_threshold(impostor, 0.01)
    assert cal["reject_threshold"] <= cal["accept_threshold"]
    assert cal["achieved"]["false_accept_rate"] <= 0.001


def test_calibration_from_labelled_probes_on_dlib_like_faces() -> None:
    rng = np.random.default_rng(1)
    c = centres(12, 128, rng)
    names = [f"p{i}" for i in range(12)]
    gallery = {n: list(samples(np.repeat(c[i][None], 4, 0), rng)) for i, n in enumerate(names)}
    probes = {n: list(samples(np.repeat(c[i][None], 3, 0), rng)) for i, n in enumerate(names)}
    config = EngineConfig(embedder="test_embedder")
    outcomes = leave_one_identity_out(config, gallery, probes, names)
    strangers = [o for o in outcomes if o.truth is None]
    assert len(strangers) == 12 * 7 and len(outcomes) == 12 * 7 + 12 * 11 * 3
    cal = recommend_from_outcomes(outcomes, 0.01)
    assert cal["impostor_scores"] == len(outcomes)
    assert 0.0 < cal["margin"] < 0.1
    # dlib-like strangers sit near 0.85: the threshold lands near the shipped one, not at 0.5
    assert abs(cal["accept_threshold"] - DLIB_THRESHOLDS.accept) < 0.03


def test_split_identities_keeps_calibration_and_test_apart() -> None:
    names = ["e", "a", "d", "b", "c", "f"]
    cal, test = split_identities(names)
    assert cal == ["a", "c", "e"] and test == ["b", "d", "f"]
    assert split_identities(names, ["f", "b"]) == (["b", "f"], ["a", "c", "d", "e"])
    with pytest.raises(CalibrationError, match="no identity named"):
        split_identities(names, ["zed"])
    with pytest.raises(CalibrationError, match="must leave test"):
        split_identities(names, names)
    with pytest.raises(CalibrationError, match="at least 2"):
        split_identities(["a"])


def test_write_yaml_sets_the_margin_too(tmp_path: Path) -> None:
    copy = tmp_path / "params.yaml"
    shutil.copy(CONFIG, copy)
    write_thresholds_yaml(copy, 0.9412, 0.9201, 0.041)
    changed = [(a, b) for a, b in zip(CONFIG.read_text().splitlines(),
                                      copy.read_text().splitlines(), strict=True) if a != b]
    assert [b.strip() for _, b in changed] == [
        "accept_threshold: 0.9412", "reject_threshold: 0.9201", "accept_margin: 0.0410"]
    params = yaml.safe_load(copy.read_text())["/**/identity_node"]["ros__parameters"]
    assert EngineConfig.from_params(params).thresholds.margin == pytest.approx(0.041)
    with pytest.raises(CalibrationError, match="accept_margin"):
        write_thresholds_yaml(copy, 0.94, 0.92, -0.5)
