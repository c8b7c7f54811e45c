"""Model paths resolve from an absolute path, the user's model folders or the installed share,
never from the current directory; a missing model names every place searched."""

from __future__ import annotations

from pathlib import Path

import pytest

from visio_memoria_ros.core import models
from visio_memoria_ros.core.models import (
    MODELS_ENV,
    ModelNotFoundError,
    model_search_dirs,
    resolve_model,
)


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """Two $VISIO_MEMORIA_MODELS folders, XDG_DATA_HOME, an installed prefix and another one."""
    p = {
        "env1": tmp_path / "env1",
        "env2": tmp_path / "env2",
        "xdg": tmp_path / "xdg",
        "prefix": tmp_path / "install" / "visio_memoria",
        "other_prefix": tmp_path / "install" / "other",
        "cwd": tmp_path / "cwd",
    }
    for d in p.values():
        d.mkdir(parents=True)
    (p["prefix"] / "share" / "visio_memoria" / "models").mkdir(parents=True)
    (p["other_prefix"] / "share" / "other").mkdir(parents=True)
    return p


def _env(p: dict[str, Path]) -> dict[str, str]:
    return {
        MODELS_ENV: f"{p['env1']}:{p['env2']}",
        "XDG_DATA_HOME": str(p["xdg"]),
        "HOME": str(p["cwd"]),
        "AMENT_PREFIX_PATH": f"{p['other_prefix']}:{p['prefix']}",
    }


def test_search_order_env_then_user_data_then_installed_share_then_checkout(places):
    dirs = model_search_dirs(_env(places))
    assert dirs == [
        places["env1"],
        places["env2"],
        places["xdg"] / "visio_memoria" / "models",
        places["prefix"] / "share" / "visio_memoria" / "models",  # not the other package's
        models._SOURCE_MODELS,
    ]
    home_only = {"HOME": str(places["cwd"])}
    assert model_search_dirs(home_only)[0] == places["cwd"] / ".local/share/visio_memoria/models"


def test_the_first_place_holding_the_model_wins(places):
    env = _env(places)
    installed = places["prefix"] / "share" / "visio_memoria" / "models" / "yolov8n.pt"
    installed.write_bytes(b"x")
    assert resolve_model("yolov8n.pt", "YOLO", env=env) == installed
    user = places["xdg"] / "visio_memoria" / "models" / "yolov8n.pt"
    user.parent.mkdir(parents=True)
    user.write_bytes(b"x")
    assert resolve_model("yolov8n.pt", "YOLO", env=env) == user
    (places["env2"] / "yolov8n.pt").write_bytes(b"x")
    assert resolve_model("yolov8n.pt", "YOLO", env=env) == places["env2"] / "yolov8n.pt"


def test_never_the_current_directory_and_every_place_is_named(places, monkeypatch):
    monkeypatch.chdir(places["cwd"])
    (places["cwd"] / "yolov8n-face.pt").write_bytes(b"x")
    (places["cwd"] / "models").mkdir()
    (places["cwd"] / "models" / "yolov8n-face.pt").write_bytes(b"x")
    env = _env(places)
    for name in ("yolov8n-face.pt", "models/yolov8n-face.pt", "./yolov8n-face.pt"):
        with pytest.raises(ModelNotFoundError) as err:
            resolve_model(name, "YOLOv8-face model", env=env)
        message = str(err.value)
        for d in model_search_dirs(env):
            assert str(d / name.removeprefix("./")) in message or str(d / name) in message
        assert "models/README.md" in message and "YOLOv8-face model" in message
        assert err.value.searched == [d / name for d in model_search_dirs(env)]


def test_absolute_paths_are_used_as_given(places, tmp_path):
    model = tmp_path / "elsewhere" / "face.onnx"
    model.parent.mkdir()
    model.write_bytes(b"x")
    env = _env(places)
    assert resolve_model(str(model), "ONNX", env=env) == model
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(str(tmp_path / "nope.onnx"), "ONNX", env=env)
    assert err.value.searched == [tmp_path / "nope.onnx"]
    with pytest.raises(FileNotFoundError, match="no path given"):
        resolve_model("  ", "ONNX", env=env)


def test_a_model_folder_needs_its_marker_file(places):
    env = _env(places)
    half = places["env1"] / "dinov3-vitb16"
    half.mkdir()  # no config.json: not a model folder, the search goes on
    full = places["xdg"] / "visio_memoria" / "models" / "dinov3-vitb16"
    full.mkdir(parents=True)
    (full / "config.json").write_text("{}")
    assert resolve_model("dinov3-vitb16", "DINOv3", kind="dir", marker="config.json",
                         env=env) == full
    (full / "config.json").unlink()
    with pytest.raises(ModelNotFoundError, match=r"a folder holding config\.json"):
        resolve_model("dinov3-vitb16", "DINOv3", kind="dir", marker="config.json", env=env)
    (places["env2"] / "weights.pth").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError):  # a file is not a folder
        resolve_model("weights.pth", "DINOv3", kind="dir", env=env)


def test_shipped_defaults_are_bare_names_resolved_in_the_model_folders():
    from visio_memoria_ros.config import NODE_PARAMS

    paths = {s.name: s.default for specs in NODE_PARAMS.values() for s in specs
             if s.name.endswith(("_model_path", "_model_dir", "_repo_dir", "_weights"))}
    assert paths["face_model_path"] == "yolov8n-face.pt"
    assert paths["person_model_path"] == "yolov8n.pt"
    assert paths["dinov3_model_dir"] == "dinov3-vitb16-pretrain-lvd1689m"
    for name, default in paths.items():
        assert not default.startswith(("models/", "./", "/")), (name, default)


# --- the detector, the embedder, the activity head and the CLI resolve through it ------------
@pytest.fixture
def model_folder(tmp_path: Path, monkeypatch) -> Path:
    """$VISIO_MEMORIA_MODELS pointing at an empty folder; the test runs from another folder."""
    folder = tmp_path / "my_models"
    folder.mkdir()
    monkeypatch.setenv(MODELS_ENV, str(folder))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return folder


def test_yolo_detectors_find_bare_names_in_the_model_folder(model_folder):
    pytest.importorskip("ultralytics")
    from test_perception_faces import build_face_model

    from visio_memoria_ros.perception import YoloFaceDetector, YoloPersonDetector

    with pytest.raises(ModelNotFoundError, match=str(model_folder / "yolov8n-face.pt")):
        YoloFaceDetector(model_path="yolov8n-face.pt")
    build_face_model(model_folder).rename(model_folder / "yolov8n-face.pt")
    assert YoloFaceDetector(model_path="yolov8n-face.pt").model is not None
    with pytest.raises(ModelNotFoundError, match=str(model_folder / "yolov8n.pt")):
        YoloPersonDetector(model_path="yolov8n.pt")


def test_dinov3_folder_found_by_name_and_auto_says_what_it_misses(model_folder, caplog):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    from visio_memoria_ros.embedding.factory import SCENE_FALLBACK, build_embedding_stack

    params = {"face_embedder": "dlib", "scene_embedder": "auto",
              "dinov3_model_dir": "dinov3-tiny", "scene_resolution": 64}
    with caplog.at_level("WARNING"):
        stack = build_embedding_stack(params)
    assert stack.scene is None
    assert str(model_folder / "dinov3-tiny") in stack.scene_note
    assert "config.json" in stack.scene_note and SCENE_FALLBACK in stack.scene_note
    assert stack.scene_note in caplog.text  # the same words in the log
    with pytest.raises(ModelNotFoundError):  # dinov3 asked for explicitly: an error
        build_embedding_stack({**params, "scene_embedder": "dinov3"})
    torch.manual_seed(0)
    config = transformers.DINOv3ViTConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        patch_size=16, num_register_tokens=1, image_size=64)
    transformers.DINOv3ViTModel(config).save_pretrained(model_folder / "dinov3-tiny")
    stack = build_embedding_stack(params)
    assert stack.scene is not None and stack.scene_note == ""
    none = build_embedding_stack({**params, "scene_embedder": "none"})
    assert none.scene is None and none.scene_note == ""


def test_activity_head_found_by_name(model_folder):
    import numpy as np

    from visio_memoria_ros.activity import train_head
    from visio_memoria_ros.activity.engine import ActivityEngine

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.1, (8, 4)) for c in (-1.0, 1.0)]).astype(np.float32)
    head, _ = train_head(x, ["sitting"] * 8 + ["standing"] * 8, "toy_4", folds=2)
    with pytest.raises(ModelNotFoundError, match="activity head"):
        ActivityEngine.from_params({"head_path": "activity_head.npz"})
    head.save(model_folder / "activity_head.npz")
    engine = ActivityEngine.from_params({"head_path": "activity_head.npz"})
    assert engine.head is not None and engine.head.labels == head.labels


def test_cli_names_every_place_searched(model_folder, capsys, tmp_path):
    import cv2
    import numpy as np

    from visio_memoria_ros.cli import main

    config = tmp_path / "yolo.yaml"
    config.write_text("/**/detector_node:\n  ros__parameters:\n    face_backend: yolo\n")
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    assert main(["--config", str(config), "detect", str(image)]) == 1
    err = capsys.readouterr().err
    for d in model_search_dirs():
        assert str(d / "yolov8n-face.pt") in err
    assert str(Path.cwd() / "yolov8n-face.pt") not in err


@pytest.mark.dds
@pytest.mark.slow
def test_embedding_node_reports_missing_dinov3_on_diagnostics(ros, launch, tmp_path):
    """scene_embedder=auto without DINOv3: the node runs, and /diagnostics says WARN and why."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    empty = tmp_path / "no_models"
    empty.mkdir()
    statuses: list[DiagnosticStatus] = []
    ros.node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: statuses.extend(m.status), 10)
    proc = launch("embedding_node", params={"scene_embedder": "auto"},
                  env={MODELS_ENV: str(empty)})

    def warned() -> bool:
        return any(s.name.startswith("/embedding_node:") and s.level == DiagnosticStatus.WARN
                   and "scene embedding off" in s.message for s in statuses)

    ros.spin_until(warned, 120, "a WARN from embedding_node on /diagnostics", [proc])
    status = next(s for s in statuses if s.name.startswith("/embedding_node:")
                  and s.level == DiagnosticStatus.WARN)
    assert str(empty / "dinov3-vitb16-pretrain-lvd1689m") in status.message
    assert "activity comes from track dynamics only" in status.message
    assert str(empty / "dinov3-vitb16-pretrain-lvd1689m") in proc.output()  # and in the log


def test_dlib_model_files_given_by_name_are_found_in_the_model_folder(model_folder):
    pytest.importorskip("dlib")
    from visio_memoria_ros.embedding import build_face_embedder
    from visio_memoria_ros.embedding.dlib_face import default_model_paths

    rec, shape = default_model_paths()
    names = {"dlib_recognition_model_path": "rec.dat", "dlib_shape_predictor_path": "sp.dat"}
    with pytest.raises(ModelNotFoundError, match=str(model_folder / "rec.dat")):
        build_face_embedder("dlib_cpp", **names)
    (model_folder / "rec.dat").symlink_to(rec)
    (model_folder / "sp.dat").symlink_to(shape)
    assert build_face_embedder("dlib_cpp", **names).id == "dlib_resnet_v1_128"
