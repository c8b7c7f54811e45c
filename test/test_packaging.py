"""Packaging: every dependency is declared where its installer looks, and only where needed.

* package.xml: every key resolves in rosdistro's rosdep files (``../shared/rosdep``; skipped
  with the reason when absent) or is a ROS package; test tools are test dependencies only;
  ultralytics (AGPL-3.0) is not a dependency.
* Every third-party module the code imports has a package.xml key (or is named in its
  "no-rosdep-key" comments) and a distribution in setup.py.
* The package imports and runs its default pipeline with ultralytics blocked.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import REPO

ROSDEP_DIR = Path(os.environ.get("VISIO_MEMORIA_ROSDEP", REPO.parent / "shared" / "rosdep"))
PACKAGE_XML = REPO / "package.xml"
SOURCES = [*sorted((REPO / "src" / "visio_memoria_ros").rglob("*.py")),
           *sorted((REPO / "scripts").glob("*_node")), REPO / "launch" / "bringup.launch.py"]
#: ROS packages this package depends on (rosdep resolves them from rosdistro, not the yaml files).
ROS_PACKAGES = {
    "ament_cmake", "ament_cmake_python", "ament_cmake_pytest", "ament_index_python",
    "builtin_interfaces", "cv_bridge", "diagnostic_msgs", "launch", "launch_ros", "rclpy",
    "rcl_interfaces", "rosidl_default_generators", "rosidl_default_runtime", "sensor_msgs",
    "std_msgs", "visualization_msgs",
}
#: ROS packages not installable from PyPI, so not in this machine's ament index.
ROS_NOT_ON_PYPI = {"cv_bridge"}
#: The rosdep key of each third-party module the code imports.
IMPORT_KEYS = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "scipy": "python3-scipy",
    "sklearn": "python3-sklearn",
    "tqdm": "python3-tqdm",
    "torch": "python3-torch",
    "torchvision": "python3-torchvision",
    "faiss": "python3-faiss",
    "dlib": "python3-dlib-pip",
    "transformers": "python3-transformers-pip",
    "facenet_pytorch": "python3-facenet-pytorch-pip",
    "supervision": "python3-supervision-pip",
    "streamlit": "python3-streamlit-pip",
    "altair": "python3-streamlit-pip",  # comes with streamlit
    "cryptography": "python3-cryptography",
}
#: Imported only when a user chooses it; never a dependency.
OPTIONAL_IMPORTS = {"ultralytics", "tensorrt"}  # tensorrt: export --tensorrt only
TEST_TOOLS = ("pytest", "ruff", "playwright", "hypothesis", "onnx")


def _depends() -> list[tuple[str, str]]:
    root = ET.parse(PACKAGE_XML).getroot()
    return [(el.tag, (el.text or "").strip()) for el in root
            if el.tag.endswith("depend") and el.tag != "member_of_group"]


def _no_key_names() -> set[str]:
    """Modules package.xml says have no rosdep key (``no-rosdep-key: name`` in its comments)."""
    return set(re.findall(r"no-rosdep-key:\s*([A-Za-z0-9_.-]+)",
                          PACKAGE_XML.read_text(encoding="utf-8")))


def _imports() -> set[str]:
    """Top-level modules imported anywhere in the code, plus packages looked up without an
    import (``find_spec("name")``, ``installed_package_dir("name")``: their model files)."""
    names: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif (isinstance(node, ast.Call) and node.args
                  and isinstance(node.args[0], ast.Constant)
                  and (getattr(node.func, "attr", "") == "find_spec"
                       or getattr(node.func, "id", "") == "installed_package_dir")):
                names.add(str(node.args[0].value).split(".")[0])
    return names


def _third_party() -> set[str]:
    own = {"visio_memoria", "visio_memoria_ros"}
    return {n for n in _imports() if n not in sys.stdlib_module_names and n not in own}


def _ament_packages() -> set[str]:
    found: set[str] = set()
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        index = Path(prefix) / "share" / "ament_index" / "resource_index" / "packages"
        if prefix and index.is_dir():
            found.update(p.name for p in index.iterdir())
    return found


def _setup_requirements() -> set[str]:
    """Distribution names in setup.py's install_requires and extras (normalised)."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "setup")
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords
              if k.arg in ("install_requires", "extras_require")}
    reqs = list(kwargs["install_requires"])
    for extra in kwargs["extras_require"].values():
        reqs += extra
    return {_norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in reqs}


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def test_every_package_xml_key_resolves_in_rosdep_or_is_a_ros_package():
    if not (ROSDEP_DIR / "base.yaml").is_file():
        pytest.skip(f"rosdep key files not found in {ROSDEP_DIR} (set VISIO_MEMORIA_ROSDEP to "
                    "a folder with rosdistro's base.yaml and python.yaml)")
    keys: set[str] = set()
    for name in ("base.yaml", "python.yaml"):
        keys.update(yaml.safe_load((ROSDEP_DIR / name).read_text(encoding="utf-8")))
    unresolved = [(tag, key) for tag, key in _depends()
                  if key not in keys and key not in ROS_PACKAGES]
    assert not unresolved, f"not rosdep keys nor ROS packages: {unresolved}"
    # The keys `rosdep install` could not resolve before, by name.
    declared = {key for _, key in _depends()}
    assert {"python3-faiss", "python3-dlib-pip"} <= declared
    assert not {"python3-faiss-pip", "python3-dlib"} & declared


def _launch_installed() -> bool:
    """Whether ROS's launch is importable (the repository's own launch/ folder is not it)."""
    try:
        import launch_ros  # noqa: F401

        from launch import LaunchDescription  # noqa: F401
    except ImportError:
        return False
    return True


def test_ros_package_names_are_real_ros_packages():
    index = _ament_packages()
    if not index:
        pytest.skip("no ament index on AMENT_PREFIX_PATH (source scripts/env.sh)")
    # launch and launch_ros are not on PyPI either: bootstrap installs them from
    # ../shared/ros-cli when that folder exists (without it test_ros2_launch.py skips too)
    absent = set() if _launch_installed() else {"launch", "launch_ros"}
    not_ros = sorted(p for p in ROS_PACKAGES
                     if p not in index and p not in ROS_NOT_ON_PYPI | absent)
    assert not not_ros, f"not in the ament index ({len(index)} packages): {not_ros}"
    declared = {key for _, key in _depends()}
    assert {k for k in declared if not k.startswith("python3-")} == ROS_PACKAGES
    unused = sorted(p for p in ROS_PACKAGES if p not in {
        "ament_cmake", "ament_cmake_python", "ament_cmake_pytest", "rosidl_default_generators",
        "rosidl_default_runtime"} and p not in _imports())
    assert not unused, f"declared ROS packages no code imports: {unused}"


def test_test_tools_are_test_dependencies_only_and_ultralytics_is_none():
    for tag, key in _depends():
        if any(tool in key for tool in TEST_TOOLS):
            assert tag == "test_depend", f"{key} is a {tag}; test tools are test_depend only"
        assert "ultralytics" not in key, f"{key}: ultralytics (AGPL-3.0) is optional"
    runtime = (REPO / "requirements" / "ml.txt").read_text(encoding="utf-8")
    lines = {ln.strip() for ln in runtime.splitlines() if ln.strip() and not ln.startswith("#")}
    names = {_norm(re.split(r"[<>=!~\[; ]", ln, maxsplit=1)[0]) for ln in lines}
    assert not names & {_norm(t) for t in (*TEST_TOOLS, "ultralytics")}, lines


def test_every_runtime_import_has_a_rosdep_key_or_says_it_has_none():
    declared = {key for tag, key in _depends() if tag != "test_depend"}
    no_key = _no_key_names()
    ros_modules = set(ROS_PACKAGES)
    missing = []
    for module in sorted(_third_party() - OPTIONAL_IMPORTS):
        if module in ros_modules:
            ok = module in declared
        elif module in IMPORT_KEYS:
            ok = IMPORT_KEYS[module] in declared
        else:
            ok = module in no_key
        if not ok:
            missing.append(module)
    assert not missing, (f"imported but not declared in package.xml (add its rosdep key, or a "
                         f"'no-rosdep-key: name' comment when rosdistro has none): {missing}")


def test_every_runtime_import_has_a_distribution_in_setup_py():
    mapping = importlib.metadata.packages_distributions()
    declared = _setup_requirements()
    ros = ROS_PACKAGES | {"rclpy"}
    missing = []
    for module in sorted(_third_party() - ros):
        dists = {_norm(d) for d in mapping.get(module, [])}
        if not dists:
            continue  # not installed here: nothing to compare with
        if not dists & declared:
            missing.append((module, sorted(dists)))
    assert not missing, f"imported but not in setup.py install_requires/extras: {missing}"
    assert "ultralytics" not in {_norm(r) for r in _install_requires()}


def _install_requires() -> list[str]:
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "setup")
    return next(ast.literal_eval(k.value) for k in call.keywords if k.arg == "install_requires")


# --- ultralytics is optional ---------------------------------------------------------------
BLOCK_ULTRALYTICS = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ultralytics" or name.startswith("ultralytics."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""

WITHOUT_ULTRALYTICS = BLOCK_ULTRALYTICS + """
import json, pkgutil, importlib
import cv2
import visio_memoria_ros
from visio_memoria_ros.config import NODE_PARAMS, load_node_params
from visio_memoria_ros.embedding import build_embedding_stack
from visio_memoria_ros.perception import Perceiver, PerceiverConfig, YoloFaceDetector

skip = {"visio_memoria_ros.ui.app"}  # a Streamlit script: runs the page when imported
modules = [m.name for m in pkgutil.walk_packages(visio_memoria_ros.__path__, "visio_memoria_ros.")
           if m.name not in skip and not m.name.endswith("__main__")]
for name in modules:
    importlib.import_module(name)
detector = load_node_params("detector_node", NODE_PARAMS["detector_node"])
perceiver = Perceiver(PerceiverConfig.from_params(detector))
rgb = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
faces = perceiver.process(rgb).faces
stack = build_embedding_stack(load_node_params("embedding_node", NODE_PARAMS["embedding_node"]))
vectors = stack.face.embed([f.crop for f in faces if f.crop is not None])
try:
    YoloFaceDetector(model_path=sys.argv[2])
    yolo_error = ""
except ImportError as exc:
    yolo_error = str(exc)
from visio_memoria_ros.cli import main
code = main(["--quiet", "detect", sys.argv[1], "--json"])
print(json.dumps({"modules": len(modules), "faces": len(faces), "vectors": len(vectors),
                  "yolo_error": yolo_error, "cli": code,
                  "ultralytics_loaded": any(m.startswith("ultralytics") for m in sys.modules)}))
"""


@pytest.mark.slow
def test_default_pipeline_and_cli_run_with_ultralytics_blocked(bbt_dir, tmp_path):
    fake = tmp_path / "yolov8n-face.pt"
    fake.write_bytes(b"not a model: the import must fail first")
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_ULTRALYTICS, str(bbt_dir / "bbt1.jpg"), str(fake)],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    report = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert report["modules"] > 40 and not report["ultralytics_loaded"]
    assert report["faces"] == 4 and report["vectors"] == 4  # bbt1.jpg: four people
    assert report["cli"] == 0
    assert "ultralytics" in report["yolo_error"] and "AGPL" in report["yolo_error"]
    assert "requirements/yolo.txt" in report["yolo_error"]
    assert (REPO / "requirements" / "yolo.txt").read_text().count("ultralytics") >= 1
