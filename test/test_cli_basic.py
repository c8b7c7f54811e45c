"""visio-memoria CLI without face detection: usage, calibration maths, YAML edit, db commands.

Commands run in-process through ``main([...])``; one test runs the installed console script as
a real subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from visio_memoria_ros.cli import main, recommend_thresholds, write_thresholds_yaml
from visio_memoria_ros.core.face_crop import CANONICAL_SIZE
from visio_memoria_ros.memory import NotAFaceError, SQLiteStore

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "visio_memoria.yaml"
FAKE = "fake_embedder_8"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one in-process CLI run."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


def _crop(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (CANONICAL_SIZE, CANONICAL_SIZE, 3), dtype=np.uint8)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A memory with Ada (2 faces, 1 visit), Bob (1 face), Wil (never remember), 1 unknown."""
    path = tmp_path / "memory.db"
    with SQLiteStore(path) as store:
        ada = store.create_person("Ada").person_id
        bob = store.create_person("Bob").person_id
        wil = store.create_person("Wil").person_id
        store.add_embedding(ada, _vec(1), FAKE, crop=_crop(1), quality=0.9)
        store.add_embedding(ada, _vec(2), FAKE, crop=_crop(2), quality=0.8)
        store.add_embedding(bob, _vec(3), FAKE, crop=_crop(3))
        store.add_embedding(wil, _vec(4), FAKE, crop=_crop(4))
        store.open_or_extend_visit(ada, 1000.0)
        store.open_or_extend_visit(wil, 1000.0)
        store.set_never_remember(wil, True)
        store.add_unknown(_vec(5), FAKE, crop=_crop(5))
    assert (ada, bob, wil) == (1, 2, 3)
    return path


# -- usage ------------------------------------------------------------------------------------
def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "--help")[0] == 0
    for cmd in (["detect"], ["eval", "identify"], ["db"], ["db", "list"], ["train-activity"]):
        code, out, _ = run(capsys, *cmd, "--help")
        assert code == 0 and "usage:" in out
    assert run(capsys)[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys, "db", "rename", "one", "Ada")[0] == 2  # not an integer id
    code, _, err = run(capsys, "--config", str(tmp_path / "nope.yaml"), "db", "list")
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, "eval", "identify", str(tmp_path))
    assert code == 2 and "--split" in err
    code, _, err = run(capsys, "eval", "identify", str(tmp_path), "--split", "2",
                       "--write-yaml", str(tmp_path / "x.yaml"))
    assert code == 2 and "--target-far" in err
    code, _, err = run(capsys, "eval", "identify", str(tmp_path), "--split", "2",
                       "--target-far", "1.5")
    assert code == 2 and "(0, 1)" in err


def test_bad_config_values_are_one_line_errors(capsys, tmp_path: Path, db: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("memory_node:\n  ros__parameters:\n    crop_quality: 500\n")
    code, _, err = run(capsys, "--config", str(bad), "--db", str(db), "db", "list")
    assert code == 1 and err.count("\n") == 1 and "crop_quality" in err
    assert "Traceback" not in err


# -- calibration -------------------------------------------------------------------------------
def test_recommend_thresholds_meets_target() -> None:
    rng = np.random.default_rng(0)
    impostor = rng.normal(0.3, 0.1, 5000)
    genuine = rng.normal(0.8, 0.05, 500)
    cal = recommend_thresholds(genuine, impostor, 0.01, 0.02)
    acc, rej = cal["accept_threshold"], cal["reject_threshold"]
    assert np.mean(impostor >= acc) <= 0.01
    assert np.mean(impostor >= acc - 1e-4) > 0.01 - 1 / 5000  # the lowest such 4-decimal value
    assert np.mean(genuine < rej) <= 0.02
    assert np.mean(impostor >= rej) <= 0.1  # the band holds the closest 10 x target strangers
    assert np.mean(impostor >= rej - 1e-4) > 0.1 - 1 / 5000
    assert rej < acc and round(acc, 4) == acc and round(rej, 4) == rej
    assert cal["achieved"]["false_accept_rate"] <= 0.01 and cal["note"] is None


def test_recommend_thresholds_small_data_note_and_refusals() -> None:
    cal = recommend_thresholds([0.95, 0.97], [0.50, 0.6123], 0.001)
    assert cal["accept_threshold"] == 0.6124 and cal["achieved"]["false_accept_rate"] == 0
    assert "cannot be measured" in cal["note"]
    with pytest.raises(ValueError, match="impostor"):
        recommend_thresholds([0.9], [], 0.01)
    with pytest.raises(ValueError, match="genuine"):
        recommend_thresholds([], [0.2], 0.01)


def test_write_yaml_changes_only_the_two_thresholds(tmp_path: Path) -> None:
    copy = tmp_path / "params.yaml"
    shutil.copy(CONFIG, copy)
    before_lines = CONFIG.read_text().splitlines()
    write_thresholds_yaml(copy, 0.9312, 0.9011)
    after_lines = copy.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before_lines, after_lines, strict=True) if a != b]
    assert len(changed) == 2
    assert changed[0][1].strip() == "accept_threshold: 0.9312"
    assert changed[1][1].strip() == "reject_threshold: 0.9011"
    before, after = yaml.safe_load(CONFIG.read_text()), yaml.safe_load(copy.read_text())
    params = after["/**/identity_node"]["ros__parameters"]
    assert params["accept_threshold"] == 0.9312 and params["reject_threshold"] == 0.9011
    for section in before:
        if section != "/**/identity_node":
            assert after[section] == before[section]


def test_write_yaml_refuses_missing_keys(tmp_path: Path) -> None:
    from visio_memoria_ros.cli import CliError

    path = tmp_path / "p.yaml"
    text = "# mine\nidentity_node:\n  ros__parameters:\n    accept_threshold: 0.9  # a\n"
    path.write_text(text)
    with pytest.raises(CliError, match="reject_threshold"):
        write_thresholds_yaml(path, 0.95, 0.9)
    assert path.read_text() == text
    path.write_text("memory_node:\n  ros__parameters:\n    robot_id: r\n")
    with pytest.raises(CliError, match="no identity_node"):
        write_thresholds_yaml(path, 0.95, 0.9)
    path.write_text(text + "    reject_threshold: 0.8\n")
    with pytest.raises(CliError, match="exceeds"):
        write_thresholds_yaml(path, 0.85, 0.9)
    write_thresholds_yaml(path, 0.95, 0.9)
    assert path.read_text() == text.replace("0.9  # a", "0.9500  # a") + \
        "    reject_threshold: 0.9000\n"


# -- pairs CSV refusals (no model is loaded before the CSV is read) ---------------------------
def test_pairs_csv_refusals(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("a,b,same\nx.png,y.png,2\n")
    code, _, err = run(capsys, "eval", "pairs", str(csv_path), "--images", str(tmp_path))
    assert code == 1 and "pairs.csv:2: 'same' must be 0 or 1" in err
    csv_path.write_text("left,right\nx,y\n")
    code, _, err = run(capsys, "eval", "pairs", str(csv_path), "--images", str(tmp_path))
    assert code == 1 and "a,b,same" in err
    code, _, err = run(capsys, "eval", "pairs", str(tmp_path / "no.csv"), "--images", "x")
    assert code == 1 and "no such file" in err


# -- eval pairs: calibrate on some people's pairs, report on the others' ------------------------
# Identities a, b, c, d: the default split calibrates on a, c and reports on b, d. Each pair has
# its own two images, embedded (stubbed) so that their dot product is the similarity given.
SPLIT_PAIRS = [
    ("a/1.png", "a/2.png", 1, 0.95), ("c/1.png", "c/2.png", 1, 0.93),   # calibration half
    ("a/3.png", "c/3.png", 0, 0.50), ("a/4.png", "c/4.png", 0, 0.40),
    ("b/1.png", "b/2.png", 1, 0.90), ("d/1.png", "d/2.png", 1, 0.60),   # report half
    ("b/3.png", "d/3.png", 0, 0.70), ("b/4.png", "d/4.png", 0, 0.30),
    ("a/5.png", "b/5.png", 0, 0.20), ("c/5.png", "d/5.png", 0, 0.10),   # mixed: used by neither
]


@pytest.fixture
def stub_pairs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Write a pairs CSV and stub the face pipeline so that each pair scores its similarity."""
    from types import SimpleNamespace

    from visio_memoria_ros.cli import eval_pairs

    vectors: dict[str, np.ndarray] = {}

    def write(pairs: list[tuple[str, str, int, float]]) -> Path:
        root = tmp_path / "people"
        root.mkdir(exist_ok=True)
        for a, b, _, s in pairs:
            vectors[str(root / a)] = np.array([1.0, 0.0])
            vectors[str(root / b)] = np.array([s, np.sqrt(1.0 - s * s)])
        csv_path = tmp_path / "pairs.csv"
        csv_path.write_text("a,b,same\n" + "".join(f"{a},{b},{y}\n" for a, b, y, _ in pairs))
        return csv_path

    monkeypatch.setattr(eval_pairs, "build_pipeline", lambda args, embed: SimpleNamespace(
        embedder_id="dlib_resnet_v1_128"))
    monkeypatch.setattr(eval_pairs, "embed_files", lambda args, pipe, paths, desc: (
        {p: vectors[p] for p in paths}, {}))
    return write


def test_eval_pairs_calibrates_and_reports_on_disjoint_identities(
        capsys: pytest.CaptureFixture[str], stub_pairs, tmp_path: Path) -> None:
    csv_path = stub_pairs(SPLIT_PAIRS)
    images = str(tmp_path / "people")
    code, out, err = run(capsys, "eval", "pairs", str(csv_path), "--images", images, "--json",
                         "--target-far", "0.1")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "visio-memoria.eval-pairs/2"
    assert (doc["calibration_identities"], doc["test_identities"]) == (["a", "c"], ["b", "d"])
    assert doc["calibration"]["identities"] == ["a", "c"]
    assert (doc["pairs"], doc["evaluated"], doc["calibration_pairs"], doc["mixed_pairs"],
            doc["reported"], doc["genuine"], doc["impostor"]) == (10, 10, 4, 2, 4, 2, 2)
    # Calibrated on a and c's pairs only: 2 genuine, 2 impostor scores (the highest 0.50).
    cal = doc["calibration"]
    assert (cal["genuine_scores"], cal["impostor_scores"]) == (2, 2)
    assert cal["accept_threshold"] == pytest.approx(0.5001)
    assert cal["achieved"]["false_accept_rate"] == 0
    # Every figure comes from b and d's pairs at that threshold: their impostor pair at 0.70
    # passes it (FAR 50 %), which the calibration pairs never show (calibrated on all pairs, the
    # threshold would be above 0.70 and the FAR 0).
    assert doc["threshold"] == doc["thresholds"]["accept"] == cal["accept_threshold"]
    assert doc["thresholds"]["reject"] == cal["reject_threshold"]
    assert (doc["accuracy"], doc["true_accept_rate"], doc["false_accept_rate"]) == (0.75, 1.0, 0.5)
    assert (doc["in_sample_best_threshold"], doc["in_sample_best_accuracy"]) == (0.6, 0.75)
    assert doc["roc_auc"] == 0.75 and "best_threshold" not in doc and "best_accuracy" not in doc

    # The other way round (--calibrate-on): calibrated on b, d, reported on a, c.
    code, out, err = run(capsys, "eval", "pairs", str(csv_path), "--images", images, "--json",
                         "--target-far", "0.1", "--calibrate-on", "b,d")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["calibration_identities"], doc["test_identities"]) == (["b", "d"], ["a", "c"])
    assert doc["threshold"] == pytest.approx(0.7001)
    assert (doc["accuracy"], doc["false_accept_rate"], doc["reported"]) == (1.0, 0.0, 4)

    code, out, err = run(capsys, "eval", "pairs", str(csv_path), "--images", images,
                         "--target-far", "0.1")
    assert code == 0, err
    assert "4 calibration pairs (a, c), 4 report pairs (b, d), 2 with an image in each half, " \
        "used by neither" in out
    assert "4 of 10 pairs reported, held out from calibration (2 same, 2 different)" in out
    assert "accuracy at the calibrated threshold 0.5001: 75.0% (TAR 100.0%, FAR 50.0%)" in out
    assert "in-sample best accuracy" in out


def test_eval_pairs_without_calibration_labels_the_best_threshold_in_sample(
        capsys: pytest.CaptureFixture[str], stub_pairs, tmp_path: Path) -> None:
    csv_path = stub_pairs(SPLIT_PAIRS)
    config = tmp_path / "p.yaml"
    config.write_text("/**/identity_node:\n  ros__parameters:\n    accept_threshold: 0.92\n"
                      "    reject_threshold: 0.9\n")
    code, out, err = run(capsys, "--config", str(config), "eval", "pairs", str(csv_path),
                         "--images", str(tmp_path / "people"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    # Every pair at the configured threshold; the best threshold is chosen on those same pairs.
    assert doc["calibration"] is None and doc["calibration_identities"] == []
    assert doc["test_identities"] == ["a", "b", "c", "d"]
    assert (doc["evaluated"], doc["reported"], doc["calibration_pairs"], doc["mixed_pairs"]) == (
        10, 10, 0, 0)
    assert doc["threshold"] == doc["thresholds"]["accept"] == 0.92
    assert (doc["accuracy"], doc["true_accept_rate"], doc["false_accept_rate"]) == (0.8, 0.5, 0.0)
    assert (doc["in_sample_best_threshold"], doc["in_sample_best_accuracy"]) == (0.6, 0.9)
    assert "best_threshold" not in doc and "best_accuracy" not in doc
    code, out, err = run(capsys, "--config", str(config), "eval", "pairs", str(csv_path),
                         "--images", str(tmp_path / "people"))
    assert code == 0, err
    assert "accuracy at the configured threshold 0.9200: 80.0%" in out
    assert "in-sample best accuracy (threshold chosen on these same pairs, optimistic): 90.0% " \
        "at threshold 0.6000" in out
    assert "held out" not in out


def test_eval_pairs_refuses_to_calibrate_without_identities(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Refused before any model is loaded: no image here exists."""
    images = str(tmp_path)
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("a,b,same\nada1.jpg,ada2.jpg,1\nada1.jpg,bob1.jpg,0\n")
    code, out, err = run(capsys, "eval", "pairs", str(csv_path), "--images", images,
                         "--target-far", "0.01")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "line 2: " in err and "ada1.jpg is not in a per-person folder" in err
    # Folders that are not one per person.
    csv_path.write_text("a,b,same\nx/1.jpg,y/1.jpg,1\n")
    code, _, err = run(capsys, "eval", "pairs", str(csv_path), "--images", images,
                       "--target-far", "0.01")
    assert code == 1 and "same-person pair spans the folders x, y" in err
    # A half without different-person pairs: a-b and c-d mix the halves (a, c | b, d).
    csv_path.write_text("a,b,same\n" + "".join(f"{n}/1.jpg,{n}/2.jpg,1\n" for n in "abcd")
                        + "a/1.jpg,b/1.jpg,0\nc/1.jpg,d/1.jpg,0\n")
    code, _, err = run(capsys, "eval", "pairs", str(csv_path), "--images", images,
                       "--target-far", "0.01", "--write-yaml", str(tmp_path / "p.yaml"))
    assert code == 1 and "the calibration identities (a, c) have no different-person pair" in err
    code, _, err = run(capsys, "eval", "pairs", str(csv_path), "--images", images,
                       "--target-far", "0.01", "--calibrate-on", "a,zed")
    assert code == 2 and "--calibrate-on: no identity named zed" in err


# -- db ----------------------------------------------------------------------------------------
def test_db_list_json(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "--db", str(db), "db", "list", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "visio-memoria.db-list/1"
    assert [p["name"] for p in doc["persons"]] == ["Ada", "Bob", "Wil"]
    ada = doc["persons"][0]
    assert ada["num_embeddings"] == 2 and ada["num_visits"] == 1 and ada["last_seen"] >= 1000
    assert doc["persons"][2]["never_remember"] is True
    assert doc["embedders"] == {FAKE: 8} and doc["unknown_faces"] == 1
    code, out, _ = run(capsys, "db", "list", "--db", str(db))  # --db after the command too
    assert code == 0 and "Ada" in out and "[never remember]" in out


def test_db_rename_merge_forget(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    d = ["--db", str(db)]
    code, out, _ = run(capsys, *d, "db", "rename", "2", "Robert")
    assert code == 0 and "Robert" in out
    code, out, _ = run(capsys, *d, "db", "merge", "2", "1")
    assert code == 0 and "1 faces moved" in out
    code, _, err = run(capsys, *d, "db", "forget", "1")  # stdin is not a terminal
    assert code == 1 and "--yes" in err
    code, out, _ = run(capsys, *d, "db", "forget", "1", "--yes")
    assert code == 0 and "forgot person 1 (Ada)" in out
    with SQLiteStore(db) as store:
        assert [p.name for p in store.list_persons()] == ["Wil"]


def test_db_forget_non_faces(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    with SQLiteStore(db) as store:
        v = np.zeros(8, np.float32)
        v[3] = 1.0
        u = store.add_unknown(v, FAKE)
        store.discard_unknowns(unknown_ids=[u.unknown_id], not_a_face=True)
        with pytest.raises(NotAFaceError):
            store.add_unknown(v, FAKE)
    code, out, _ = run(capsys, "--db", str(db), "db", "forget-non-faces", "--embedder", "x")
    assert code == 0 and "forgot 0 'not a face' examples" in out
    code, out, _ = run(capsys, "--db", str(db), "db", "forget-non-faces")
    assert code == 0 and "forgot 1 'not a face' example" in out
    with SQLiteStore(db) as store:
        assert store.add_unknown(v, FAKE).unknown_id > u.unknown_id


def test_db_refusals(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    d = ["--db", str(db)]
    for argv, words in [
        (["db", "rename", "99", "X"], "person 99 does not exist"),
        (["db", "rename", "1", "   "], "name is empty"),
        (["db", "rename", "1", "Bob"], "already has that name"),
        (["db", "merge", "1", "1"], "into itself"),
        (["db", "forget", "42", "--yes"], "person 42 does not exist"),
        (["db", "rename", "-3", "X"], "person id must be >= 0"),
    ]:
        code, _, err = run(capsys, *d, *argv)
        assert code == 1, argv
        assert words in err and err.startswith("visio-memoria: error:"), err
        assert err.count("\n") == 1 and "Traceback" not in err
    code, _, err = run(capsys, "--db", str(tmp_path / "none.db"), "db", "list")
    assert code == 1 and "no memory store" in err
    assert not (tmp_path / "none.db").exists()


def test_db_export_leaves_out_never_remember(capsys, db: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "export"
    code, out, _ = run(capsys, "--db", str(db), "db", "export", str(out_dir))
    assert code == 0 and "1 never-remember" in out
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["persons"] == 2 and manifest["excluded_never_remember"] == 1
    assert manifest["vectors_included"] is False and manifest["crops"] == 4
    persons = json.loads((out_dir / "persons.json").read_text())
    assert [p["name"] for p in persons] == ["Ada", "Bob"]
    assert "Wil" not in (out_dir / "visits.json").read_text()
    crop = out_dir / persons[0]["faces"][0]["crop"]
    assert crop.is_file() and crop.suffix == ".png"
    unknowns = json.loads((out_dir / "unknowns.json").read_text())
    assert len(unknowns["faces"]) == 1 and (out_dir / unknowns["faces"][0]["crop"]).is_file()
    assert (out_dir.stat().st_mode & 0o777) == 0o700
    assert (crop.stat().st_mode & 0o777) == 0o600
    assert not list((out_dir / "crops" / "persons").glob("3"))
    code, _, err = run(capsys, "--db", str(db), "db", "export", str(out_dir))
    assert code == 1 and "not an empty folder" in err


def test_db_reembed_with_dlib(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    pytest.importorskip("dlib")
    code, out, err = run(capsys, "--db", str(db), "db", "reembed", "--embedder", "dlib")
    assert code == 0, err
    assert "re-embedded 4 faces of persons and 1 unknown faces with dlib_resnet_v1_128" in out
    with SQLiteStore(db) as store:
        assert len(store.gallery("dlib_resnet_v1_128").entries) == 4
        assert not store.gallery(FAKE).entries
    code, out, _ = run(capsys, "--db", str(db), "db", "reembed", "--embedder", "dlib")
    assert code == 0 and "nothing to re-embed" in out


def test_console_script_subprocess(db: Path) -> None:
    exe = Path(sys.executable).with_name("visio-memoria")
    if not exe.is_file():
        pytest.skip(f"console script not installed at {exe} (pip install -e .)")
    env = dict(os.environ)
    # Run this source tree even when a colcon install/ copy of the package is on PYTHONPATH.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([str(exe), "--db", str(db), "db", "list", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [p["name"] for p in json.loads(proc.stdout)["persons"]] == ["Ada", "Bob", "Wil"]
    proc = subprocess.run([str(exe), "--db", str(db), "db", "forget", "77", "--yes"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "visio-memoria: error: person 77 does not exist"


def test_cli_never_imports_ros() -> None:
    code = (
        "import sys\n"
        "from visio_memoria_ros import cli, pipeline, activity, embedding, identity, memory\n"
        "cli.main(['db', 'list', '--db', '/nonexistent/memory.db'])\n"
        "bad = [m for m in sys.modules if m == 'rclpy' or m.startswith('rclpy.')\n"
        "       or m.startswith('visio_memoria_ros.nodes')]\n"
        "assert not bad, bad\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "no memory store at /nonexistent/memory.db" in proc.stderr


def test_identify_refuses_a_missing_memory_before_loading_any_model() -> None:
    # Loading torch and the detector takes seconds; a mistyped --db must not wait for them.
    code = (
        "import sys\n"
        "from visio_memoria_ros import cli\n"
        "rc = cli.main(['--db', '/nonexistent/memory.db', 'identify', sys.argv[1]])\n"
        "assert rc == 1, rc\n"
        "loaded = [m for m in ('torch', 'facenet_pytorch', 'dlib') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    image = REPO / "test" / "data" / "does_not_matter.jpg"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code, str(image)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "no memory store at /nonexistent/memory.db" in proc.stderr
