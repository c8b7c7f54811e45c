"""The launch file and the parameters file agree with what is installed and declared.

Checked without ROS: the launch file parses, every executable it starts is installed, every
node it starts has a YAML section that applies in any namespace, the YAML and the nodes'
parameter specs match both ways, and ``load_node_params`` (the CLI and the labelling page)
picks the sections of a parameter file by the same rules as the nodes. The launch file itself
is run by ``test_ros2_launch.py``; a node reading a file under a namespace is compared with
``load_node_params`` in ``test_params_namespace.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from visio_memoria_ros.config import (
    NODE_PARAMS,
    fully_qualified_name,
    key_matches,
    load_node_params,
    parameter_sections,
    shared,
    validate_value,
)

LAUNCH = REPO / "launch" / "bringup.launch.py"
YAML = REPO / "config" / "visio_memoria.yaml"
INSTALL_LIB = REPO / "install" / "visio_memoria" / "lib" / "visio_memoria"


def _launched_executables() -> list[str]:
    tree = ast.parse(LAUNCH.read_text(encoding="utf-8"))
    names = []
    for call in ast.walk(tree):
        func = getattr(call, "func", None)
        if isinstance(call, ast.Call) and isinstance(func, ast.Name) and func.id == "node":
            first = call.args[0]
            assert isinstance(first, ast.Constant), "node() takes the executable as a literal"
            names.append(first.value)
    return names


def test_launch_file_parses_and_defines_generate_launch_description():
    tree = ast.parse(LAUNCH.read_text(encoding="utf-8"))
    funcs = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    for arg in ("namespace", "params_file", "use_sim_time", "image_topic"):
        assert f'"{arg}"' in LAUNCH.read_text(encoding="utf-8"), f"launch argument {arg} missing"


def test_every_launched_executable_is_installed_and_has_parameters():
    launched = _launched_executables()
    assert sorted(launched) == sorted(NODE_PARAMS), "launch file and node specs disagree"
    if not INSTALL_LIB.is_dir():
        pytest.skip("package not built (run make build)")
    for exe in launched:
        path = INSTALL_LIB / exe
        assert path.is_file(), f"{exe} is not installed in {INSTALL_LIB}"
        assert path.stat().st_mode & 0o111, f"{exe} is not executable"


def test_yaml_and_node_specs_match_both_ways():
    doc = yaml.safe_load(YAML.read_text(encoding="utf-8"))
    assert next(iter(doc)) == "/**/*", "the shared section comes first"
    assert set(doc) == {"/**/*"} | {f"/**/{n}" for n in NODE_PARAMS}, "sections and nodes differ"
    common = doc["/**/*"]["ros__parameters"]
    assert list(common) == [s.name for s in shared.PARAMS]
    for node, specs in NODE_PARAMS.items():
        own = (doc[f"/**/{node}"] or {}).get("ros__parameters") or {}
        assert not set(own) & set(common), f"{node} repeats a shared parameter"
        section = {**{s.name: common[s.name] for s in specs if s in shared.PARAMS}, **own}
        declared = {s.name for s in specs}
        only_yaml, undocumented = set(section) - declared, declared - set(section)
        assert not only_yaml and not undocumented, f"{node}: {only_yaml=} {undocumented=}"
        for spec in specs:
            assert spec.description.strip(), f"{node}.{spec.name} has no description"
            assert validate_value(spec, section[spec.name]) is None
            assert section[spec.name] == spec.default, f"{node}.{spec.name}: YAML != default"
        for namespace in ("/", "robot1", "/fleet/robot2"):
            assert load_node_params(node, specs, YAML, namespace=namespace) == {
                s.name: s.default for s in specs
            }


@pytest.mark.parametrize("namespace", ["/", "robot1", "/fleet/robot_2"])
def test_every_section_of_the_shipped_yaml_applies_in_any_namespace(namespace):
    doc = yaml.safe_load(YAML.read_text(encoding="utf-8"))
    for node in NODE_PARAMS:
        fqn = fully_qualified_name(node, namespace)
        matching = [key for key in doc if key_matches(key, fqn)]
        assert matching == ["/**/*", f"/**/{node}"], (fqn, matching)


def test_a_shared_parameter_is_one_declaration_read_by_several_nodes():
    for spec in shared.PARAMS:
        readers = [node for node, specs in NODE_PARAMS.items() if spec in specs]
        assert len(readers) >= 2, f"{spec.name} is shared by {readers} only"
        for node, specs in NODE_PARAMS.items():
            same_name = [s for s in specs if s.name == spec.name]
            assert all(s is spec for s in same_name), f"{node} declares its own {spec.name}"


def test_identity_and_memory_agree_on_the_visit():
    from visio_memoria_ros.identity.greeting import VisitTracker
    from visio_memoria_ros.memory.options import StoreOptions

    values = {n: load_node_params(n, NODE_PARAMS[n], YAML)["visit_absence"]
              for n in ("identity_node", "memory_node")}
    assert values == {"identity_node": shared.VISIT_ABSENCE.default,
                      "memory_node": shared.VISIT_ABSENCE.default}
    assert StoreOptions().visit_absence == shared.VISIT_ABSENCE.default
    assert StoreOptions.from_params({}).visit_absence == shared.VISIT_ABSENCE.default
    assert VisitTracker().absence == shared.VISIT_ABSENCE.default


def test_yaml_is_generated_from_the_specs():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_params_yaml.py"), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# (key, fully qualified node name, applies?) by the rules of rclpy/rclcpp parameter_map_from.
KEY_CASES = [
    ("/**", "/camera_node", True),
    ("/**", "/robot1/camera_node", True),
    ("/**/*", "/camera_node", True),
    ("/**/*", "/robot1/camera_node", True),
    ("/**/*", "/fleet/robot1/camera_node", True),
    ("**", "/a/b/camera_node", True),
    ("/**/camera_node", "/camera_node", True),
    ("/**/camera_node", "/robot1/camera_node", True),
    ("/**/camera_node", "/fleet/robot1/camera_node", True),
    ("/**/camera_node", "/robot1/detector_node", False),
    ("/**/camera_node", "/robot1/my_camera_node", False),
    ("camera_node", "/camera_node", True),
    ("camera_node", "/robot1/camera_node", False),
    ("/camera_node", "/robot1/camera_node", False),
    ("/robot1/camera_node", "/robot1/camera_node", True),
    ("robot1/camera_node", "/robot1/camera_node", True),
    ("/robot1/camera_node", "/robot2/camera_node", False),
    ("/robot1/camera_node", "/camera_node", False),
    ("/*/camera_node", "/robot1/camera_node", True),
    ("/*/camera_node", "/camera_node", False),
    ("/*/camera_node", "/fleet/robot1/camera_node", False),
    ("/robot1/*", "/robot1/camera_node", True),
    ("/robot1/*", "/robot1/sub/camera_node", False),
    ("/robot1/**", "/robot1/sub/camera_node", True),
    ("/robot1/**", "/robot2/camera_node", False),
]


@pytest.mark.parametrize(("key", "fqn", "applies"), KEY_CASES)
def test_parameter_file_keys_match_as_in_ros(key, fqn, applies):
    assert key_matches(key, fqn) is applies


def test_namespace_forms_give_the_same_fully_qualified_name():
    assert fully_qualified_name("camera_node") == "/camera_node"
    assert fully_qualified_name("camera_node", "") == "/camera_node"
    for ns in ("robot1", "/robot1", "/robot1/", "robot1/"):
        assert fully_qualified_name("camera_node", ns) == "/robot1/camera_node"
    assert fully_qualified_name("camera_node", "/a/b") == "/a/b/camera_node"
    for bad in ("robot 1", "1robot", "/a//b-c"):
        with pytest.raises(ValueError, match="invalid ROS namespace"):
            fully_qualified_name("camera_node", bad)


USER_FILE = """\
/**:
  ros__parameters:
    rate: 1.0
    data_dir: /tmp/for_memory_node_only
/**/camera_node:
  ros__parameters:
    rate: 2.0
    frame_id: any_namespace
camera_node:
  ros__parameters:
    frame_id: root_only
/robot1/camera_node:
  ros__parameters:
    frame_id: robot1_only
fleet:
  robot2:
    camera_node:
      ros__parameters:
        frame_id: nested_fleet_robot2
/*/camera_node:
  ros__parameters:
    max_frames: 7
"""


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        ("/", {"rate": 2.0, "frame_id": "root_only", "max_frames": 0}),
        ("robot1", {"rate": 2.0, "frame_id": "robot1_only", "max_frames": 7}),
        ("robot3", {"rate": 2.0, "frame_id": "any_namespace", "max_frames": 7}),
        ("/fleet/robot2", {"rate": 2.0, "frame_id": "nested_fleet_robot2", "max_frames": 0}),
    ],
)
def test_user_file_key_forms_and_order(tmp_path, namespace, expected):
    """Later matching sections override earlier ones; other nodes' values in /** are ignored."""
    path = tmp_path / "my.yaml"
    path.write_text(USER_FILE)
    got = load_node_params("camera_node", NODE_PARAMS["camera_node"], path, namespace=namespace)
    assert {k: got[k] for k in expected} == expected


def test_a_repeated_key_keeps_its_first_place(tmp_path):
    """As the ROS parser does: a key seen again merges into its first occurrence's place."""
    path = tmp_path / "my.yaml"
    path.write_text("/**/camera_node:\n  ros__parameters:\n    rate: 2.0\n"
                    "/**:\n  ros__parameters:\n    rate: 3.0\n"
                    "/**/camera_node:\n  ros__parameters:\n    frame_id: again\n")
    sections = parameter_sections(yaml.safe_load(path.read_text()))
    assert list(sections) == ["/**/camera_node", "/**"]
    got = load_node_params("camera_node", NODE_PARAMS["camera_node"], path)
    assert (got["rate"], got["frame_id"]) == (3.0, "again")


def test_nested_parameter_maps_become_dotted_names():
    doc = {"/**/n": {"ros__parameters": {"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}}}
    assert parameter_sections(doc) == {"/**/n": {"a.b": 1, "a.c.d": "x", "e": [1, 2]}}


@pytest.mark.parametrize(
    "text",
    ["- just\n- a list\n", "camera_node: 3\n", "ros__parameters:\n  rate: 1.0\n",
     "camera_node:\n  ros__parameters: [1]\n"],
)
def test_files_that_are_not_parameter_files_are_refused(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError):
        load_node_params("camera_node", NODE_PARAMS["camera_node"], path)


def test_unknown_or_invalid_yaml_values_are_refused(tmp_path):
    specs = NODE_PARAMS["camera_node"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera_node:\n  ros__parameters:\n    no_such_param: 1\n")
    with pytest.raises(ValueError, match="no_such_param"):
        load_node_params("camera_node", specs, bad)
    bad.write_text("camera_node:\n  ros__parameters:\n    rate: -5.0\n")
    with pytest.raises(ValueError, match="below its minimum"):
        load_node_params("camera_node", specs, bad)
    # A typo in a section that names the node is refused in any key form that applies...
    bad.write_text("/**/camera_node:\n  ros__parameters:\n    rat: 5.0\n")
    with pytest.raises(ValueError, match="rat"):
        load_node_params("camera_node", specs, bad, namespace="robot1")
    # ...an invalid value in a wildcard section too; a section for another robot is not read.
    bad.write_text("/**:\n  ros__parameters:\n    rate: -5.0\n")
    with pytest.raises(ValueError, match="below its minimum"):
        load_node_params("camera_node", specs, bad)
    bad.write_text("/robot2/camera_node:\n  ros__parameters:\n    rate: -5.0\n")
    assert load_node_params("camera_node", specs, bad, namespace="robot1")["rate"] == 10.0


ROBOT_FILE = """\
/**/memory_node:
  ros__parameters:
    data_dir: {root}/shared
/robot1/memory_node:
  ros__parameters:
    data_dir: {root}/robot1
"""


@pytest.mark.parametrize(("namespace", "folder"), [("/", "shared"), ("robot1", "robot1"),
                                                    ("robot2", "shared")])
def test_cli_and_labelling_page_read_the_file_in_the_namespace_given(
    tmp_path, capsys, namespace, folder
):
    from visio_memoria_ros.cli import main
    from visio_memoria_ros.ui.settings import parse_settings, store_params

    path = tmp_path / "robots.yaml"
    path.write_text(ROBOT_FILE.format(root=tmp_path))
    code = main(["--config", str(path), "--namespace", namespace, "db", "list"])
    err = capsys.readouterr().err
    assert code == 1 and f"no memory store at {tmp_path / folder / 'memory.db'}" in err
    settings = parse_settings(["--params-file", str(path), "--namespace", namespace])
    assert store_params(settings)["data_dir"] == str(tmp_path / folder)
    assert settings.app_args()[-2:] == ["--namespace", namespace]


def test_an_invalid_namespace_is_refused_by_cli_and_labelling_page(tmp_path, capsys):
    from visio_memoria_ros.cli import main
    from visio_memoria_ros.ui.settings import parse_settings

    path = tmp_path / "robots.yaml"
    path.write_text(ROBOT_FILE.format(root=tmp_path))
    assert main(["--config", str(path), "--namespace", "robot 1", "db", "list"]) == 1
    assert "invalid ROS namespace" in capsys.readouterr().err
    with pytest.raises(ValueError, match="invalid ROS namespace"):
        parse_settings(["--namespace", "robot-1"])


def test_a_renamed_parameter_is_read_under_its_old_name_with_a_warning(tmp_path, caplog):
    specs = NODE_PARAMS["embedding_node"]
    path = tmp_path / "old.yaml"
    path.write_text("/**/embedding_node:\n  ros__parameters:\n    torch_num_threads: 3\n")
    with caplog.at_level("WARNING", logger="visio_memoria_ros.config.spec"):
        values = load_node_params("embedding_node", specs, path)
    assert values["torch_threads"] == 3 and "torch_num_threads" not in values
    assert "torch_num_threads is deprecated, use torch_threads" in caplog.text
    # The new name wins wherever it is given, before or after the old one.
    path.write_text("/**:\n  ros__parameters:\n    torch_threads: 2\n"
                    "/**/embedding_node:\n  ros__parameters:\n    torch_num_threads: 3\n")
    assert load_node_params("embedding_node", specs, path)["torch_threads"] == 2
    path.write_text("/**/embedding_node:\n  ros__parameters:\n    torch_num_threads: 999\n")
    with pytest.raises(ValueError, match=r"torch_threads=999 is above its maximum.*old name"):
        load_node_params("embedding_node", specs, path)
    # Only for the node that had it: detector_node never had a torch_num_threads.
    path.write_text("/**/detector_node:\n  ros__parameters:\n    torch_num_threads: 3\n")
    with pytest.raises(ValueError, match="no parameter 'torch_num_threads'"):
        load_node_params("detector_node", NODE_PARAMS["detector_node"], path)


def test_nodes_that_run_torch_name_its_threads_alike():
    for node in ("detector_node", "embedding_node"):
        assert shared.TORCH_THREADS in NODE_PARAMS[node]
    names = {s.name for specs in NODE_PARAMS.values() for s in specs}
    assert "torch_num_threads" not in names
