"""Labelling page logic without a browser: actions on a real tmp store, settings, launcher."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from visio_memoria_ros.memory import (
    PENDING,
    ClusterParams,
    NotAFaceError,
    SQLiteStore,
    StoreOptions,
)
from visio_memoria_ros.ui import actions, launcher, settings

DIM = 16
EMB = "test-emb"


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def face(ident: int, sample: int) -> np.ndarray:
    centre = unit(np.random.default_rng(1000 + ident).normal(size=DIM))
    noise = np.random.default_rng(ident * 7919 + sample).normal(size=DIM)
    return unit(centre + 0.075 * noise)


def crop(seed: int, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def add_cluster(store: SQLiteStore, ident: int, n: int = 3) -> tuple[int, list[int]]:
    """Add n unknown faces of one identity; return their cluster id and face ids."""
    ids = [store.add_unknown(face(ident, i), EMB, crop=crop(ident * 100 + i), quality=i)
           .unknown_id for i in range(n)]
    cids = {u.cluster_id for u in store.list_unknowns() if u.unknown_id in ids}
    assert len(cids) == 1 and PENDING not in cids, cids
    return cids.pop(), ids


@pytest.fixture
def store(make_store):
    """The page's store, on each backend (SQLite, PostgreSQL)."""
    opts = StoreOptions(crop_format="png", cluster=ClusterParams(similarity=0.8, min_size=2))
    return make_store(opts)


def assert_sentence(outcome: actions.Outcome, ok: bool, *needles: str) -> None:
    assert outcome.ok is ok, outcome
    assert "Traceback" not in outcome.message and "Error" not in outcome.message
    assert not outcome.message[0].islower() and outcome.message.endswith("."), outcome.message
    for needle in needles:
        assert needle.lower() in outcome.message.lower(), (needle, outcome.message)


# -- clusters --------------------------------------------------------------------------------
def test_name_cluster_creates_person_then_extends_it(store: SQLiteStore) -> None:
    c1, ids1 = add_cluster(store, 1)
    out = actions.name_cluster(store, c1, "  Leonard ")
    assert_sentence(out, True, "New person Leonard", "3 faces")
    leonard = store.find_person("leonard")
    assert leonard is not None and leonard.num_embeddings == 3
    assert sorted(e.embedding_id for e in store.list_embeddings(leonard.person_id)) == ids1
    assert c1 not in {c.cluster_id for c in store.list_clusters()}

    c2, _ = add_cluster(store, 2, n=2)
    out = actions.name_cluster(store, c2, "LEONARD")  # an existing name extends the person
    assert_sentence(out, True, "2 faces added to Leonard")
    assert store.get_person(leonard.person_id).num_embeddings == 5
    assert len(store.list_persons()) == 1


def test_name_cluster_refusals_change_nothing(store: SQLiteStore) -> None:
    cid, _ = add_cluster(store, 1)
    for bad in ("", "   "):
        assert_sentence(actions.name_cluster(store, cid, bad), False, "name")
    assert_sentence(actions.name_cluster(store, 999, "Raj"), False, "999", "does not exist")
    assert_sentence(actions.name_cluster(store, cid, "x" * 5000), False)
    assert [c.cluster_id for c in store.list_clusters()] == [cid]
    assert store.list_persons() == []


def test_add_cluster_to_existing_person(store: SQLiteStore) -> None:
    penny = store.create_person("Penny")
    cid, ids = add_cluster(store, 1)
    assert_sentence(actions.add_cluster_to_person(store, cid, None), False, "choose")
    assert_sentence(actions.add_cluster_to_person(store, cid, 4242), False, "4242")
    out = actions.add_cluster_to_person(store, cid, penny.person_id)
    assert_sentence(out, True, "3 faces added to Penny")
    assert sorted(e.embedding_id for e in store.list_embeddings(penny.person_id)) == ids
    assert store.list_clusters() == []


def test_add_cluster_to_opted_out_person_is_refused(store: SQLiteStore) -> None:
    amy = store.create_person("Amy")
    assert_sentence(actions.set_never_remember(store, amy.person_id, True), True, "not be")
    cid, _ = add_cluster(store, 1)
    assert_sentence(actions.add_cluster_to_person(store, cid, amy.person_id), False,
                    "never to be remembered")
    assert [c.cluster_id for c in store.list_clusters()] == [cid]
    assert_sentence(actions.set_never_remember(store, amy.person_id, False), True, "again")


@pytest.mark.parametrize("reason", actions.REJECT_REASONS)
def test_reject_cluster(store: SQLiteStore, reason: str) -> None:
    cid, _ = add_cluster(store, 1)
    keep, _ = add_cluster(store, 2)
    assert_sentence(actions.reject_cluster(store, cid, reason), True, "3 faces deleted", reason)
    assert [c.cluster_id for c in store.list_clusters()] == [keep]
    assert_sentence(actions.reject_cluster(store, cid, reason), False, "does not exist")
    # "not a face" teaches: a face like them is not remembered again, until forgotten.
    examples = 3 if reason == actions.NOT_A_FACE else 0
    assert store.stats().num_non_faces == examples
    if examples:
        with pytest.raises(NotAFaceError):
            store.add_unknown(face(1, 50), EMB)
        assert_sentence(actions.forget_non_faces(store), True, "3 'not a face' examples")
    assert store.add_unknown(face(1, 50), EMB).unknown_id > 0


def test_cluster_actions_name_the_faces_shown(store: SQLiteStore) -> None:
    cid, _ = add_cluster(store, 1)
    shown = store.list_clusters()[0]
    late = store.add_unknown(face(1, 9), EMB, crop=crop(9)).unknown_id  # after the page drew
    assert store.get_unknown(late).cluster_id == cid
    assert_sentence(actions.name_cluster(store, cid, "Amy", shown.revision), True, "3 faces")
    assert store.get_unknown(late).cluster_id == cid  # still unknown
    assert_sentence(actions.reject_cluster(store, cid, "don't remember", shown.revision), False,
                    "does not exist")


def test_split_a_cluster_and_give_faces_to_a_person(store: SQLiteStore) -> None:
    cid, ids = add_cluster(store, 1, n=4)
    assert_sentence(actions.split_to_new_cluster(store, []), False, "tick the faces")
    assert_sentence(actions.split_to_new_cluster(store, ids[:2]), True, "2 faces",
                    "new cluster")
    new = store.get_unknown(ids[0]).cluster_id
    assert new != cid and store.get_unknown(ids[1]).cluster_id == new
    assert store.get_unknown(ids[2]).cluster_id == cid
    amy = store.create_person("Amy")
    assert_sentence(actions.give_faces_to_person(store, ids[2:3], None), False, "choose")
    assert_sentence(actions.give_faces_to_person(store, ids[2:3], amy.person_id), True,
                    "1 face added to Amy")
    assert [e.embedding_id for e in store.list_embeddings(amy.person_id)] == [ids[2]]
    assert_sentence(actions.give_faces_to_person(store, ids[2:3], amy.person_id), False,
                    "does not exist")


def test_maybe_faces_confirm_or_reject(store: SQLiteStore) -> None:
    amy = store.create_person("Amy")
    store.add_embedding(amy.person_id, face(1, 0), EMB)
    maybe = [store.add_unknown(face(1, i), EMB, crop=crop(i), candidate_id=amy.person_id,
                               candidate_similarity=0.9).unknown_id for i in (1, 2)]
    assert_sentence(actions.confirm_candidates(store, maybe[:1], amy.person_id), True,
                    "1 face added to Amy")
    assert_sentence(actions.reject_candidates(store, maybe[1:], "Amy"), True,
                    "not be taken for Amy")
    assert store.list_candidates() == []
    assert [n.face_id for n in store.gallery(EMB).negatives] == maybe[1:]
    assert_sentence(actions.reject_candidates(store, [], "Amy"), False, "tick the faces")
    assert actions.face_caption(12, 0.8712) == "face 12 · q 0.87"
    assert actions.candidate_caption(0.9321) == "similarity 0.93"


def test_reject_needs_a_known_reason(store: SQLiteStore) -> None:
    cid, _ = add_cluster(store, 1)
    assert_sentence(actions.reject_cluster(store, cid, "because"), False, "not a face")
    assert [c.cluster_id for c in store.list_clusters()] == [cid]


# -- persons ---------------------------------------------------------------------------------
def test_rename_and_conflict(store: SQLiteStore) -> None:
    a = store.create_person("Sheldon")
    store.create_person("Penny")
    assert_sentence(actions.rename_person(store, a.person_id, "Dr. Sheldon Cooper"), True,
                    "Sheldon is now called Dr. Sheldon Cooper")
    assert_sentence(actions.rename_person(store, a.person_id, "penny"), False, "merge")
    assert_sentence(actions.rename_person(store, a.person_id, " "), False)
    assert_sentence(actions.rename_person(store, 77, "Raj"), False, "77")
    assert store.get_person(a.person_id).name == "Dr. Sheldon Cooper"


def test_merge_persons(store: SQLiteStore) -> None:
    cid, _ = add_cluster(store, 1)
    raj = actions.name_cluster(store, cid, "Raj")
    assert raj.ok
    a = store.find_person("Raj")
    b = store.create_person("Rajesh")
    assert_sentence(actions.merge_persons(store, a.person_id, None), False, "choose")
    assert_sentence(actions.merge_persons(store, a.person_id, a.person_id), False, "itself")
    assert_sentence(actions.merge_persons(store, a.person_id, b.person_id), True,
                    "Raj merged into Rajesh", "3 faces moved")
    assert [p.name for p in store.list_persons()] == ["Rajesh"]
    assert store.get_person(b.person_id).num_embeddings == 3


def test_forget_needs_confirmation(store: SQLiteStore) -> None:
    cid, _ = add_cluster(store, 1)
    actions.name_cluster(store, cid, "Bernadette")
    pid = store.find_person("Bernadette").person_id
    store.open_or_extend_visit(pid, 1_700_000_000.0, location="lab")
    assert_sentence(actions.forget_person(store, pid, confirmed=False), False, "nothing was")
    assert store.get_person(pid).num_embeddings == 3
    assert_sentence(actions.forget_person(store, pid, confirmed=True), True,
                    "Bernadette is forgotten")
    assert store.list_persons() == [] and store.list_visits() == []
    assert_sentence(actions.forget_person(store, pid, confirmed=True), False, "does not exist")


def test_read_only_store_reports_instead_of_raising(store: SQLiteStore, make_store) -> None:
    cid, _ = add_cluster(store, 1)
    store.close()
    ro = make_store(StoreOptions(read_only=True))
    assert_sentence(actions.name_cluster(ro, cid, "Stuart"), False, "read-only")
    assert [c.cluster_id for c in ro.list_clusters()] == [cid]


def test_unexpected_errors_are_logged_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> str:
        raise KeyError("internal detail")

    with caplog.at_level(logging.ERROR, logger="visio_memoria_ros.ui.actions"):
        out = actions.run_action(boom)
    assert not out.ok and "internal detail" not in out.message and "log" in out.message
    assert any(r.exc_info for r in caplog.records)


# -- what the page shows ---------------------------------------------------------------------
def test_formatting() -> None:
    assert actions.format_time(0.0) == "never"
    t = datetime(2024, 5, 6, 7, 8, 9).timestamp()
    assert actions.format_time(t) == "2024-05-06 07:08:09"
    assert [actions.format_duration(s) for s in (0.4, 42, 185, 7800)] == [
        "0 s", "42 s", "3 min 5 s", "2 h 10 min"]
    assert actions.cluster_caption(1, 0.0, t) == (
        "1 face · first seen never · last seen 2024-05-06 07:08:09")


def test_person_and_visit_tables(store: SQLiteStore) -> None:
    p = store.create_person("Howard")
    day1 = datetime(2024, 5, 6, 9, 30).timestamp()
    late = datetime(2024, 5, 7, 23, 50).timestamp()
    store.open_or_extend_visit(p.person_id, day1, location="kitchen", activity="cooking",
                               absence=600)
    store.open_or_extend_visit(p.person_id, day1 + 1800, location="kitchen",
                               activity="cooking", absence=3600)
    store.open_or_extend_visit(p.person_id, late, location="hall", absence=600)
    store.open_or_extend_visit(p.person_id, late + 1200, location="hall", absence=3600)
    visits = store.list_visits(p.person_id)
    assert len(visits) == 2

    [row] = actions.person_rows(store.list_persons())
    assert row["name"] == "Howard" and row["visits"] == 2 and row["faces"] == 0
    assert actions.person_label(store.get_person(p.person_id)) == f"Howard (#{p.person_id})"

    rows = actions.visit_rows(visits)  # newest first, as the store returns them
    assert rows[0]["end"] == "in progress" and rows[0]["location"] == "hall"
    assert rows[1]["duration"] == "30 min 0 s" and rows[1]["activity"] == "cooking"

    bars = actions.visit_timeline(visits, now=late + 1200)  # oldest first
    assert [b["day"] for b in bars] == ["2024-05-06", "2024-05-07"]
    assert bars[0]["from"] == 9.5 and bars[0]["to"] == 10.0 and bars[0]["minutes"] == 30.0
    assert bars[1]["from"] == pytest.approx(23 + 50 / 60, abs=1e-3)
    assert bars[1]["to"] == 24.0  # cut at midnight
    assert bars[1]["end"] == "in progress"


# -- settings and launcher -------------------------------------------------------------------
@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (settings.DB_ENV, settings.PASSWORD_ENV, settings.PASSWORD_FILE_ENV):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_defaults_match_the_memory_node(clean_env: pytest.MonkeyPatch) -> None:
    s = settings.parse_settings([])
    assert (s.address, s.port, s.db, s.read_only) == ("127.0.0.1", 8501, "", False)
    params = settings.store_params(s)
    assert params["data_dir"] == "~/.local/share/visio_memoria" and params["db_path"] == ""


def test_db_from_env_and_args(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv(settings.DB_ENV, str(tmp_path / "env.db"))
    assert settings.parse_settings([]).db == str(tmp_path / "env.db")
    clean_env.chdir(tmp_path)
    s = settings.parse_settings(["--db", "rel/x.db", "--read-only"])
    assert s.db == str(tmp_path / "rel" / "x.db") and s.read_only
    params = settings.store_params(s)
    assert params["db_path"] == s.db and params["data_dir"] == str(tmp_path / "rel")
    assert params["read_only"] is True
    with pytest.raises(ValueError, match="port"):
        settings.parse_settings(["--port", "70000"])


def test_params_file_locates_the_store_like_the_node(clean_env: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    yaml_file = tmp_path / "params.yaml"
    yaml_file.write_text(f"memory_node:\n  ros__parameters:\n    data_dir: {tmp_path / 'd'}\n"
                         "    db_path: faces.db\n    crop_format: png\n")
    s = settings.parse_settings(["--params-file", str(yaml_file)])
    store = settings.open_store(s)
    try:
        assert store.path == tmp_path / "d" / "faces.db"
        assert store.options.crop_format == "png" and store.writable
    finally:
        store.close()


def test_password_sources(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert settings.load_password(settings.parse_settings([])) is None
    clean_env.setenv(settings.PASSWORD_ENV, "s3cret")
    assert settings.load_password(settings.parse_settings([])) == "s3cret"
    clean_env.setenv("OTHER_PW", "other")
    assert settings.load_password(settings.parse_settings(["--password-env", "OTHER_PW"])
                                  ) == "other"
    pw = tmp_path / "pw"
    pw.write_text("from file ü\n")
    pw.chmod(0o600)
    assert settings.load_password(settings.parse_settings(["--password-file", str(pw)])
                                  ) == "from file ü"
    pw.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        settings.load_password(settings.parse_settings(["--password-file", str(pw)]))
    with pytest.raises(ValueError, match="cannot read"):
        settings.load_password(settings.parse_settings(["--password-file",
                                                        str(tmp_path / "nope")]))


def test_password_check_and_bind_rules() -> None:
    assert settings.check_password("pässword", "pässword")
    assert not settings.check_password("pässwort", "pässword")
    assert not settings.check_password("", "x")
    for ok in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert settings.is_loopback(ok), ok
    for public in ("0.0.0.0", "", "::", "192.168.1.20", "robot.local", "example.com"):
        assert not settings.is_loopback(public), public
    settings.check_bind("127.0.0.1", None)
    settings.check_bind("0.0.0.0", "pw")
    with pytest.raises(ValueError, match="without a password"):
        settings.check_bind("0.0.0.0", None)
    with pytest.raises(ValueError, match="all interfaces"):
        settings.check_bind("", None)


def test_launcher_command(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    cmd = launcher.prepare(["--db", db, "--port", "9001"])
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(launcher.APP)]
    opts = dict(zip(cmd[5:cmd.index("--"):2], cmd[6:cmd.index("--"):2], strict=True))
    assert opts["--server.address"] == "127.0.0.1" and opts["--server.port"] == "9001"
    assert opts["--server.headless"] == "true"
    assert opts["--browser.gatherUsageStats"] == "false"
    assert opts["--client.showErrorDetails"] == "none"
    app_args = cmd[cmd.index("--") + 1:]
    assert settings.parse_settings(app_args) == settings.parse_settings(
        ["--db", db, "--port", "9001"])
    assert launcher.APP.is_file()


def test_launcher_refuses_public_address_without_password(
        clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert launcher.main(["--address", "0.0.0.0"]) == 2
    assert "without a password" in caplog.text
    clean_env.setenv(settings.PASSWORD_ENV, "correct horse")
    cmd = launcher.prepare(["--address", "0.0.0.0"])
    assert "correct horse" not in " ".join(cmd)  # the secret never goes on a command line
