"""The launch file and the parameters file agree with what is installed and declared.

``launch``/``launch_ros`` are not installable here, so the launch file is checked statically:
it parses, every executable it starts is installed, every node it starts has a YAML section,
and the YAML and the nodes' parameter specs match both ways.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from visio_memoria_ros.config import NODE_PARAMS, load_node_params, validate_value

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
    assert set(doc) == set(NODE_PARAMS), "YAML sections and nodes differ"
    for node, specs in NODE_PARAMS.items():
        section = (doc[node] or {}).get("ros__parameters") or {}
        declared = {s.name for s in specs}
        only_yaml, undocumented = set(section) - declared, declared - set(section)
        assert not only_yaml and not undocumented, f"{node}: {only_yaml=} {undocumented=}"
        for spec in specs:
            assert spec.description.strip(), f"{node}.{spec.name} has no description"
            assert validate_value(spec, section[spec.name]) is None
            assert section[spec.name] == spec.default, f"{node}.{spec.name}: YAML != default"
        assert load_node_params(node, specs, YAML) == {s.name: s.default for s in specs}


def test_yaml_is_generated_from_the_specs():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_params_yaml.py"), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_or_invalid_yaml_values_are_refused(tmp_path):
    specs = NODE_PARAMS["camera_node"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera_node:\n  ros__parameters:\n    no_such_param: 1\n")
    with pytest.raises(ValueError, match="no_such_param"):
        load_node_params("camera_node", specs, bad)
    bad.write_text("camera_node:\n  ros__parameters:\n    rate: -5.0\n")
    with pytest.raises(ValueError, match="below its minimum"):
        load_node_params("camera_node", specs, bad)
