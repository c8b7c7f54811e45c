"""IdentityEngine: frames in, track decisions + greetings out; gallery loading and reloading."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import numpy as np
import pytest
from test_identity_synth import DLIB_THRESHOLDS, centres, gallery, samples, with_similarity

from visio_memoria_ros.config import identity as identity_config
from visio_memoria_ros.config.spec import validate_value
from visio_memoria_ros.core.types import FaceObservation, Status
from visio_memoria_ros.identity import (
    EngineConfig,
    GalleryEntry,
    IdentityEngine,
    NegativeEntry,
)

EMB = "test_embedder"
NAMES = ["Alex", "Sam", "Kim", "Jo", "Lee", "Max", "Ana", "Bo"]


def _config(**kw: object) -> EngineConfig:
    base = dict(
        embedder=EMB,
        # the shipped dlib values: the synthetic vectors are dlib-like
        accept_threshold=DLIB_THRESHOLDS.accept,
        reject_threshold=DLIB_THRESHOLDS.reject,
        accept_margin=DLIB_THRESHOLDS.margin,
        instant_accept_threshold=1.0,  # voting tests; the instant path has its own test
        vote_window=5,
        min_votes=2,
        greeting_cooldown=0.0,
        visit_absence=30.0,
        track_timeout=2.0,
        unknown_announcement="Hello, stranger.",
    )
    base.update(kw)
    return EngineConfig(**base)  # type: ignore[arg-type]


def _entries(dim: int, per: int = 4, seed: int = 0) -> tuple[list[GalleryEntry], np.ndarray]:
    c, ids, pids, vecs = gallery(len(NAMES), per, dim, seed=seed)
    entries = [
        GalleryEntry(int(i), int(p), NAMES[int(p)], v, EMB)
        for i, p, v in zip(ids, pids, vecs, strict=True)
    ]
    return entries, c


def _face(track: int, vec: np.ndarray | None, embedder: str = EMB) -> FaceObservation:
    return FaceObservation(
        bbox=[10 * track, 0, 10 * track + 8, 8],
        score=0.9,
        detector="test",
        track_id=track,
        embedding=vec,
        embedder=embedder,
        quality=0.8,
        crop=np.zeros((4, 4, 3), np.uint8),
    )


@pytest.mark.parametrize("dim", [128, 768])
def test_known_people_greeted_once_and_strangers_stay_unknown(dim: int) -> None:
    entries, c = _entries(dim, seed=dim)
    engine = IdentityEngine(_config())
    report = engine.load_gallery(entries)
    assert (report.num_vectors, report.num_persons, report.index_kind) == (32, 8, "exact")
    rng = np.random.default_rng(1)
    stranger = centres(1, dim, rng)[0]
    greetings, statuses = [], []
    for step in range(8):
        t = 100.0 + 0.1 * step
        faces = [
            _face(1, samples(c[[0]], rng)[0]),  # Alex
            _face(2, samples(c[[3]], rng)[0] if step % 2 == 0 else None),  # Jo, sparse
            _face(3, samples(stranger[None], rng)[0]),
        ]
        out = engine.process(faces, t)
        assert [d.track_id for d in out.decisions] == [1, 2, 3]
        statuses.append([d.status for d in out.decisions])
        greetings += [g.text for g in out.greetings]
        d_alex = out.decisions[0]
        assert d_alex.new_evidence and d_alex.embedding is not None and d_alex.embedder == EMB
        assert not out.decisions[1].new_evidence or step % 2 == 0
    assert statuses[0] == [Status.UNCERTAIN] * 3  # one embedding is not enough
    assert statuses[-1] == [Status.KNOWN, Status.KNOWN, Status.UNKNOWN]
    final = engine.process([_face(1, None), _face(2, None)], 101.0).decisions
    assert [(d.person_id, d.name) for d in final] == [(0, "Alex"), (3, "Jo")]
    assert sorted(greetings) == ["Hello, stranger.", "Welcome back, Alex!", "Welcome back, Jo!"]


def test_new_visit_after_absence_greets_again_and_visits_end() -> None:
    entries, c = _entries(128)
    engine = IdentityEngine(_config(visit_absence=30.0, unknown_announcement=""))
    engine.load_gallery(entries)
    rng = np.random.default_rng(2)

    def see(t: float, track: int) -> list[str]:
        out = engine.process([_face(track, samples(c[[1]], rng)[0])], t)
        return [g.text for g in out.greetings]

    said = see(0.0, 1) + see(0.5, 1) + see(1.0, 1)
    assert said == ["Welcome back, Sam!"]
    out = engine.process([], 40.0)  # 39 s later nobody is there: the visit ended
    assert out.expired_tracks == [1]
    said = see(50.0, 7) + see(50.5, 7)
    assert said == ["Welcome back, Sam!"]


def test_two_faces_never_get_the_same_identity_in_one_frame() -> None:
    entries, c = _entries(128)
    engine = IdentityEngine(_config(min_votes=1, vote_window=3))
    engine.load_gallery(entries)
    rng = np.random.default_rng(3)
    for step in range(4):
        out = engine.process(
            [_face(1, samples(c[[2]], rng)[0]), _face(2, samples(c[[2]], rng)[0])], float(step)
        )
        known = [d.person_id for d in out.decisions if d.status is Status.KNOWN]
        assert len(known) == len(set(known)) == 1
    untracked = engine.process(
        [_face(-1, samples(c[[5]], rng)[0]), _face(-1, samples(c[[5]], rng)[0])], 5.0
    )
    assert sum(d.status is Status.KNOWN for d in untracked.decisions) == 1
    assert untracked.greetings == [] or all(not g.is_unknown for g in untracked.greetings)


def test_other_embedders_are_refused_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    entries, c = _entries(128)
    foreign = [
        GalleryEntry(9000 + i, 99, "Ghost", v, "dinov3_vitb16")
        for i, v in enumerate(samples(c[[0, 1]], np.random.default_rng(0)))
    ]
    bad_dim = [GalleryEntry(9100, 98, "Odd", np.ones(64, np.float32), EMB)]
    nan = [GalleryEntry(9200, 97, "Nan", np.full(128, np.nan, np.float32), EMB)]
    engine = IdentityEngine(_config())
    with caplog.at_level(logging.WARNING):
        report = engine.load_gallery(entries + foreign + bad_dim + nan)
    assert report.num_vectors == 32 and 99 not in engine.names()
    assert sum(report.skipped.values()) == 4
    assert any("dinov3_vitb16" in reason for reason in report.skipped)
    assert "dinov3_vitb16" in caplog.text
    rng = np.random.default_rng(4)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for step in range(3):
            out = engine.process(
                [_face(1, samples(c[[0]], rng)[0], embedder="dinov3_vitb16")], float(step)
            )
    assert out.decisions[0].status is Status.UNCERTAIN and not out.decisions[0].new_evidence
    assert caplog.text.count("ignoring face embeddings from embedder") == 1  # logged once


def test_reload_swaps_the_gallery_atomically() -> None:
    entries, c = _entries(128)
    engine = IdentityEngine(_config(min_votes=1))
    engine.load_gallery(entries)
    rng = np.random.default_rng(5)
    out = engine.process([_face(1, samples(c[[4]], rng)[0])], 0.0)
    assert out.decisions[0].name == "Lee"
    # "forget Lee": reload without person 4 -> the track is no longer Lee
    engine.reload([e for e in entries if e.person_id != 4])
    assert 4 not in engine.names()
    out = engine.process([_face(1, samples(c[[4]], rng)[0])], 0.1)
    assert out.decisions[0].status is not Status.KNOWN
    # rename takes effect at once
    engine.reload(
        [
            GalleryEntry(
                e.embedding_id,
                e.person_id,
                "Alexandra" if e.person_id == 0 else e.name,
                e.vector,
                e.embedder,
            )
            for e in entries
        ]
    )
    out = engine.process([_face(2, samples(c[[0]], rng)[0])], 0.2)
    assert out.decisions[0].name == "Alexandra"

    errors: list[BaseException] = []

    def reloader() -> None:
        try:
            for i in range(20):
                engine.reload(entries if i % 2 else entries[:16])
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=reloader)
    th.start()
    for step in range(60):
        out = engine.process([_face(3, samples(c[[1]], rng)[0])], 1.0 + step * 0.01)
        assert len(out.decisions) == 1
    th.join()
    assert not errors


def test_reload_adds_and_removes_persons() -> None:
    entries, c = _entries(128)
    engine = IdentityEngine(_config(min_votes=1))
    assert engine.gallery_size == 0
    out = engine.process([_face(1, samples(c[[0]], np.random.default_rng(0))[0])], 0.0)
    assert out.decisions[0].status is Status.UNKNOWN  # empty gallery: everyone is a stranger
    assert engine.reload(entries[:8]).num_vectors == 8  # persons 0 and 1 enrolled
    assert engine.names() == {0: "Alex", 1: "Sam"} and engine.gallery_size == 8
    out = engine.process([_face(2, samples(c[[1]], np.random.default_rng(1))[0])], 0.1)
    assert out.decisions[0].name == "Sam"
    assert engine.reload(entries[:4]).num_vectors == 4  # Sam forgotten
    assert engine.names() == {0: "Alex"} and engine.gallery_size == 4
    out = engine.process([_face(2, samples(c[[1]], np.random.default_rng(2))[0])], 0.2)
    assert out.decisions[0].status is not Status.KNOWN  # the track's votes for Sam are gone


def test_opted_out_person_is_not_known_greeted_or_stored() -> None:
    entries, c = _entries(128)
    engine = IdentityEngine(_config(min_votes=1))
    engine.load_gallery(entries, opted_out=[2])
    rng = np.random.default_rng(6)
    for step in range(3):
        out = engine.process([_face(1, samples(c[[2]], rng)[0])], float(step))
        d = out.decisions[0]
        assert d.status is Status.UNCERTAIN and d.person_id == -1 and d.name == ""
        assert d.embedding is None and d.crop is None and not d.new_evidence
        assert out.greetings == []
    engine.reload(entries, opted_out=[])  # Kim may be remembered again
    out = engine.process([_face(5, samples(c[[2]], rng)[0])], 5.0)
    assert out.decisions[0].name == "Kim"


def test_negative_links_keep_a_lookalike_from_matching() -> None:
    entries, c = _entries(128)
    rng = np.random.default_rng(7)
    lookalike = with_similarity(c[0], 0.985, rng)  # a near twin of Alex (person 0)
    engine = IdentityEngine(_config(min_votes=2))
    engine.load_gallery(entries)
    seen = [engine.process([_face(1, samples(lookalike[None], rng)[0])], 0.1 * i) for i in range(3)]
    assert seen[-1].decisions[0].name == "Alex"  # the mistake the user corrects
    negatives = [NegativeEntry(0, v, EMB) for v in samples(np.stack([lookalike] * 3), rng)]
    assert engine.reload(entries, negatives=negatives).num_negatives == 3
    for i in range(5):
        out = engine.process([_face(2, samples(lookalike[None], rng)[0])], 1.0 + 0.1 * i)
        assert out.decisions[0].status is not Status.KNOWN
    for i in range(3):
        out = engine.process([_face(3, samples(c[[0]], rng)[0])], 2.0 + 0.1 * i)
    assert out.decisions[0].name == "Alex"  # the real Alex still matches


def test_approximate_index_through_the_engine() -> None:
    entries, c = _entries(768, per=40)  # 320 vectors
    engine = IdentityEngine(_config(index_exact_max_size=100, min_votes=1))
    report = engine.load_gallery(entries)
    assert report.index_kind == "ivf"
    rng = np.random.default_rng(8)
    truth = rng.integers(0, len(NAMES), 30)
    names = [
        engine.process([_face(i + 1, samples(c[[p]], rng)[0])], float(i)).decisions[0].name
        for i, p in enumerate(truth)
    ]
    named = [(n, NAMES[p]) for n, p in zip(names, truth, strict=True) if n]
    assert len(named) >= 27 and all(n == t for n, t in named)  # one image each: a few wait
    hnsw = IdentityEngine(_config(index_exact_max_size=100, index_approx_kind="hnsw"))
    assert hnsw.load_gallery(entries).index_kind == "hnsw"


def test_reconfigure_applies_without_losing_tracks() -> None:
    entries, c = _entries(128)
    engine = IdentityEngine(_config(min_votes=2, greeting_template="Hi {name}"))
    engine.load_gallery(entries)
    rng = np.random.default_rng(9)
    out = engine.process([_face(1, samples(c[[0]], rng)[0])], 0.0)
    assert out.decisions[0].status is Status.UNCERTAIN
    needs_reload = engine.reconfigure(_config(min_votes=1, greeting_template="Hey {name}!"))
    assert not needs_reload
    out = engine.process([_face(1, None)], 0.1)
    assert out.decisions[0].status is Status.KNOWN and out.greetings[0].text == "Hey Alex!"
    assert engine.reconfigure(_config(index_exact_max_size=5))
    assert engine.reconfigure(_config(embedder="other"))
    assert engine.gallery_size == 0


def test_one_embedding_decides_only_at_the_instant_threshold() -> None:
    """Default instant = accept + the embedder's instant margin (dlib: 0.9405 + 0.015): one
    clear match is KNOWN and greeted at once; a weaker one waits for min_votes; untracked faces
    likewise."""
    from visio_memoria_ros.core.types import NO_TRACK

    dlib = "dlib_resnet_v1_128"
    engine = IdentityEngine(_config(embedder=dlib, accept_threshold=-1.0, reject_threshold=-1.0,
                                    accept_margin=-1.0, instant_accept_threshold=-1.0,
                                    aggregate="max"))
    assert engine.thresholds.instant == pytest.approx(0.9555)
    entries = [replace(e, embedder=dlib) for e in _entries(128)[0]]
    engine.load_gallery(entries)
    rng = np.random.default_rng(5)
    # aggregate=max scores the best gallery vector of a person: aim at a stored vector exactly.
    vec = {p: next(e.vector for e in entries if e.person_id == p) for p in range(4)}
    clear, weak = with_similarity(vec[0], 0.97, rng), with_similarity(vec[1], 0.945, rng)

    def face(track: int, v: np.ndarray | None) -> FaceObservation:
        return replace(_face(track, v), embedder=dlib)

    out = engine.process([face(1, clear), face(2, weak)], 10.0)
    assert [d.status for d in out.decisions] == [Status.KNOWN, Status.UNCERTAIN]
    assert [g.text for g in out.greetings] == ["Welcome back, Alex!"]
    out = engine.process([face(1, None), face(2, with_similarity(vec[1], 0.945, rng))], 10.2)
    assert out.decisions[1].status is Status.KNOWN  # 2nd vote at accept
    assert [g.text for g in out.greetings] == ["Welcome back, Sam!"]
    # Untracked faces have one embedding only: KNOWN at instant, else UNCERTAIN or UNKNOWN.
    stranger = centres(1, 128, rng)[0]
    faces = [
        FaceObservation(
            bbox=[0, 0, 8, 8], score=0.9, detector="test", track_id=NO_TRACK,
            embedding=v, embedder=dlib, quality=0.8,
        )
        for v in (
            with_similarity(vec[2], 0.97, rng),
            with_similarity(vec[3], 0.945, rng),
            with_similarity(stranger, 1.0, rng),
        )
    ]
    statuses = [d.status for d in engine.process(faces, 11.0).decisions]
    assert statuses == [Status.KNOWN, Status.UNCERTAIN, Status.UNKNOWN]
    assert EngineConfig().thresholds.instant == pytest.approx(0.9555)  # dlib: 0.9405 + 0.015
    assert EngineConfig(accept_threshold=0.95).thresholds.instant == pytest.approx(0.965)
    with pytest.raises(ValueError, match="instant_accept_threshold"):
        EngineConfig(accept_threshold=0.95, instant_accept_threshold=0.9)


def test_untracked_vote_carries_into_the_track_it_becomes() -> None:
    """A weak first match (accept..instant) seen untracked, then tracked at the same place:
    two votes, KNOWN; without the hand-over (or for a forgotten person) only one."""
    from visio_memoria_ros.core.types import NO_TRACK

    entries, _ = _entries(128)
    vec = {p: next(e.vector for e in entries if e.person_id == p) for p in range(8)}
    rng = np.random.default_rng(9)

    def untracked(v: np.ndarray) -> FaceObservation:
        return FaceObservation(
            bbox=[10, 0, 18, 8], score=0.9, detector="test", track_id=NO_TRACK,
            embedding=v, embedder=EMB, quality=0.8,
        )

    outcomes = []
    for handoff in (1.0, 0.0):
        engine = IdentityEngine(_config(untracked_handoff_s=handoff, aggregate="max"))
        engine.load_gallery(entries)
        first = engine.process([untracked(with_similarity(vec[1], 0.945, rng))], 20.0)
        assert first.decisions[0].status is Status.UNCERTAIN  # one weak embedding
        out = engine.process([_face(1, with_similarity(vec[1], 0.945, rng))], 20.1)
        outcomes.append((out.decisions[0].status, [g.text for g in out.greetings]))
    assert outcomes[0] == (Status.KNOWN, ["Welcome back, Sam!"])
    assert outcomes[1] == (Status.UNCERTAIN, [])
    # A person forgotten between the two sightings does not come back through the hand-over.
    engine = IdentityEngine(_config(aggregate="max"))
    engine.load_gallery(entries)
    engine.process([untracked(with_similarity(vec[1], 0.945, rng))], 30.0)
    engine.reload([e for e in entries if e.person_id != 1])
    out = engine.process([_face(1, with_similarity(vec[1], 0.945, rng))], 30.1)
    assert out.decisions[0].status is not Status.KNOWN
    assert not [g for g in out.greetings if g.person_id == 1 or "Sam" in g.text]


def test_config_defaults_sentinels_and_validation() -> None:
    for spec in identity_config.PARAMS:
        assert validate_value(spec, spec.default) is None, spec.name
        assert spec.description
    names = [s.name for s in identity_config.PARAMS]
    assert len(names) == len(set(names))
    assert set(names) == set(EngineConfig.__dataclass_fields__)
    dlib = EngineConfig()
    assert (dlib.thresholds.accept, dlib.thresholds.reject) == (0.9405, 0.9214)
    assert dlib.thresholds.margin == 0.033 and dlib.aggregate == "centroid"
    assert EngineConfig(accept_margin=0.0).thresholds.margin == 0.0
    assert EngineConfig(embedder="onnx_arcface").thresholds.margin == 0.0
    with pytest.raises(ValueError, match="accept_margin"):
        EngineConfig(accept_margin=-0.5)
    assert EngineConfig(embedder="dinov3_vits16").thresholds.accept == 0.8  # prefix match
    assert EngineConfig(embedder="mystery").thresholds.accept == 0.6
    assert EngineConfig(accept_threshold=0.95).thresholds.accept == 0.95
    cfg = EngineConfig.from_params({"embedder": "onnx_arcface", "min_votes": 1, "unrelated": 3})
    assert cfg.thresholds.reject == 0.3 and cfg.min_votes == 1
    with pytest.raises(ValueError, match="exceeds"):
        EngineConfig(accept_threshold=0.5, reject_threshold=0.6)
    with pytest.raises(ValueError, match="min_votes"):
        EngineConfig(vote_window=2, min_votes=3)
    with pytest.raises(ValueError, match="greeting_template"):
        EngineConfig(greeting_template="Hi {nom}")
    with pytest.raises(ValueError, match="aggregate"):
        EngineConfig(aggregate="median")
    assert identity_config.check_params({"embedder": "dlib_resnet_v1_128"}) is None
    with pytest.raises(ValueError):
        IdentityEngine(_config()).process([], float("nan"))


def test_identity_embedder_is_an_id_not_a_face_embedder_kind() -> None:
    for kind in ("dlib", "dlib_torch", "dlib_cpp", "dinov3", "onnx"):
        problem = identity_config.check_params({"embedder": kind})
        assert problem and "not an embedder id" in problem and "dlib_resnet_v1_128" in problem
        with pytest.raises(ValueError, match="face_embedder kind"):
            EngineConfig(embedder=kind)
    assert identity_config.check_params({"embedder": "dinov3_vitb16_768_r224"}) is None


def test_a_new_tracker_session_starts_the_same_track_ids_afresh() -> None:
    """A restarted detector hands out track ids 1 and 3 again under a new session: a lookalike
    on track 1 is not KNOWN as Alex from the old track's votes, and a new stranger on track 3 is
    announced; within the same session the ids keep their evidence and announcement."""
    entries, _ = _entries(128)
    alex = next(e.vector for e in entries if e.person_id == 0)
    rng = np.random.default_rng(12)
    strangers = centres(2, 128, rng)
    outcomes = {}
    for restarted in (False, True):
        engine = IdentityEngine(_config(aggregate="max"))
        engine.load_gallery(entries)
        assert not engine.observe_session("run-a")  # the first session resets nothing
        said = []
        for step in range(4):
            out = engine.process(
                [_face(1, with_similarity(alex, 0.97, rng)),
                 _face(3, samples(strangers[[0]], rng)[0])], 0.1 * step,
            )
            said += [g.text for g in out.greetings]
        assert [d.status for d in out.decisions] == [Status.KNOWN, Status.UNKNOWN]
        assert sorted(said) == ["Hello, stranger.", "Welcome back, Alex!"]
        assert not engine.observe_session("run-a")
        assert engine.observe_session("run-b" if restarted else "run-a") is restarted
        said = []
        for step in range(2):
            # between reject and accept to Alex: not enough to name a track on its own
            out = engine.process(
                [_face(1, with_similarity(alex, 0.93, rng)),
                 _face(3, samples(strangers[[1]], rng)[0])], 1.0 + 0.1 * step,
            )
            said += [g.text for g in out.greetings]
        outcomes[restarted] = ([(d.status, d.name) for d in out.decisions], said)
    assert outcomes[False] == ([(Status.KNOWN, "Alex"), (Status.UNKNOWN, "")], [])
    first, said = outcomes[True]
    assert first[0][0] is not Status.KNOWN and first[0][1] == ""
    assert first[1] == (Status.UNKNOWN, "") and said == ["Hello, stranger."]


def _one_vector_per_person(rng: np.random.Generator) -> tuple[list[GalleryEntry], np.ndarray]:
    """A gallery of one vector per person: a face's score for a person is its cosine to it."""
    c = centres(len(NAMES), 128, rng)
    return [GalleryEntry(p, p, NAMES[p], c[p], EMB) for p in range(len(NAMES))], c


def _maybe_engine(seed: int) -> tuple[IdentityEngine, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    entries, c = _one_vector_per_person(rng)
    engine = IdentityEngine(_config(min_votes=2, aggregate="max"))
    engine.load_gallery(entries)
    return engine, c, rng


def test_a_face_in_the_uncertain_band_of_a_person_is_offered_as_maybe_that_person() -> None:
    """Between reject (0.921) and accept (0.941) to Alex: never KNOWN, each new face carries
    Alex as its candidate with its own similarity to him."""
    engine, c, rng = _maybe_engine(20)
    for step in range(3):
        face = with_similarity(c[0], 0.93, rng)
        assert (c[1:] @ face).max() < DLIB_THRESHOLDS.reject  # nobody else is near
        d = engine.process([_face(1, face)], 0.1 * step).decisions[0]
        assert d.status is Status.UNCERTAIN and d.new_evidence
        assert (d.candidate_person_id, d.person_id, d.name) == (0, -1, "")
        assert d.candidate_similarity == pytest.approx(0.93, abs=1e-4)


def test_a_face_below_reject_to_everybody_has_no_candidate() -> None:
    engine, c, rng = _maybe_engine(21)
    for step in range(3):
        face = with_similarity(c[0], 0.90, rng)  # Alex is the nearest, below reject
        assert (c @ face).max() < DLIB_THRESHOLDS.reject
        d = engine.process([_face(1, face)], 0.1 * step).decisions[0]
        # the first face is UNCERTAIN (one vote), yet not like anybody: no candidate either
        assert d.status is not Status.KNOWN and d.new_evidence
        assert d.candidate_person_id == -1 and np.isnan(d.candidate_similarity)
    assert d.status is Status.UNKNOWN


def test_a_known_face_has_no_candidate_although_it_reaches_reject() -> None:
    """The first face of Alex's track is not KNOWN yet (one vote of two) and is offered as
    maybe Alex; once the track is KNOWN its faces carry no candidate."""
    engine, c, rng = _maybe_engine(22)
    decided = [engine.process([_face(1, with_similarity(c[0], 0.97, rng))], 0.1 * step)
               .decisions[0] for step in range(3)]
    assert decided[0].status is Status.UNCERTAIN and decided[0].candidate_person_id == 0
    for d in decided[1:]:
        assert d.status is Status.KNOWN and d.name == "Alex" and d.new_evidence
        assert d.candidate_person_id == -1 and np.isnan(d.candidate_similarity)
