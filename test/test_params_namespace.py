"""A node started with ``--params-file`` in a namespace gets what ``load_node_params`` reads.

One user file holds every key form ROS knows (``/**``, ``/**/name``, ``name``, ``/ns/name``,
nested namespaces, ``/*/name``, ``/ns/*``, ``/ns/**``) with different values; activity_node is
started with it at ``/``, ``/robot1`` and ``/fleet/robot2`` and its parameters are read back over
its ``get_parameters`` service. The CLI and the labelling page read parameter files with
``load_node_params``, so they must see exactly what each node sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.dds, pytest.mark.slow]

from rcl_interfaces.srv import GetParameters, ListParameters  # noqa: E402
from rclpy.parameter import parameter_value_to_python  # noqa: E402

from visio_memoria_ros.config import NODE_PARAMS, load_node_params  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "visio_memoria.yaml"

NODE = "activity_node"
USER_FILE = """\
/**:
  ros__parameters:
    smoothing_time_constant: 1.5
    stale_after: 4.0
    data_dir: /nonexistent/only_memory_node_has_this   # another node's: ignored here
/**/activity_node:
  ros__parameters:
    stale_after: 5.0
    dynamics_window: 2.0
activity_node:
  ros__parameters:
    walk_speed: 0.5
/robot1/activity_node:
  ros__parameters:
    approach_rate: 0.3
fleet:
  robot2:
    activity_node:
      ros__parameters:
        approach_rate: 0.4
/*/activity_node:
  ros__parameters:
    sitting_max_aspect: 2.0
/robot1/*:
  ros__parameters:
    dynamics_min_span: 0.5
/fleet/**:
  ros__parameters:
    dynamics_min_span: 0.6
/robot2/activity_node:
  ros__parameters:
    walk_speed: 0.9
"""
COMMON = {"smoothing_time_constant": 1.5, "stale_after": 5.0, "dynamics_window": 2.0}
#: What each key form gives, worked out by hand from the ROS rules.
EXPECTED = {
    "/": {**COMMON, "walk_speed": 0.5},
    "/robot1": {**COMMON, "approach_rate": 0.3, "sitting_max_aspect": 2.0,
                "dynamics_min_span": 0.5},
    "/fleet/robot2": {**COMMON, "approach_rate": 0.4, "dynamics_min_span": 0.6},
}


def _read_back(ros, namespace: str, names: list[str], proc, node: str = NODE
               ) -> dict[str, object]:
    prefix = namespace.rstrip("/")
    client = ros.node.create_client(GetParameters, f"{prefix}/{node}/get_parameters")
    resp = ros.call(client, GetParameters.Request(names=names), 60, [proc], resend_after=5.0)
    return {n: parameter_value_to_python(v) for n, v in zip(names, resp.values, strict=True)}


@pytest.mark.parametrize("namespace", list(EXPECTED))
def test_node_in_a_namespace_reads_the_file_as_load_node_params_does(
    ros, launch, tmp_path, namespace
):
    path = tmp_path / "my.yaml"
    path.write_text(USER_FILE)
    specs = NODE_PARAMS[NODE]
    remap = {"__ns": namespace} if namespace != "/" else {}
    proc = launch(NODE, params_file=path, remap=remap)
    names = [s.name for s in specs]
    node_values = _read_back(ros, namespace, names, proc)
    cli_values = load_node_params(NODE, specs, path, namespace=namespace)
    assert cli_values == node_values
    defaults = {s.name: s.default for s in specs}
    assert cli_values == {**defaults, **EXPECTED[namespace]}


def test_an_integer_for_a_float_is_refused_by_node_and_cli_alike(launch, tmp_path):
    """rclpy refuses ``stale_after: 4`` for a double: the CLI refuses what the node refuses."""
    path = tmp_path / "int.yaml"
    path.write_text("/**/activity_node:\n  ros__parameters:\n    stale_after: 4\n")
    with pytest.raises(ValueError, match=r"stale_after must be float.*write 4\.0"):
        load_node_params(NODE, NODE_PARAMS[NODE], path, namespace="robot1")
    proc = launch(NODE, params_file=path, remap={"__ns": "/robot1"})
    assert proc.wait(60) == 1
    assert "cannot start: parameter stale_after must be float" in proc.output()


def test_the_shared_section_sets_one_visit_absence_for_identity_and_memory(ros, launch, tmp_path):
    """The shipped file's ``/**/*:`` section is read by every node that declares its parameters;
    a node's own section overrides it, and a ``-p`` rule overrides both (rcl keeps rules in a
    ``/**`` section of their own)."""
    doc = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    doc["/**/*"]["ros__parameters"]["visit_absence"] = 45.0
    doc["/**/memory_node"]["ros__parameters"]["data_dir"] = str(tmp_path / "memory")
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    for node in ("identity_node", "memory_node"):
        proc = launch(node, params_file=path, remap={"__ns": "/robot1"})
        assert _read_back(ros, "/robot1", ["visit_absence"], proc, node) == {"visit_absence": 45.0}
        assert load_node_params(node, NODE_PARAMS[node], path, namespace="robot1")[
            "visit_absence"] == 45.0
    # A rule on the command line (as launch's own overrides) beats the node's section.
    rule_dir = str(tmp_path / "from_the_rule")
    proc = launch("memory_node", params_file=path, params={"data_dir": rule_dir},
                  remap={"__ns": "/robot2"}, name="memory_node_rule")
    assert _read_back(ros, "/robot2", ["data_dir", "visit_absence"], proc, "memory_node") == {
        "data_dir": rule_dir, "visit_absence": 45.0}


def test_embedding_node_reads_torch_num_threads_as_torch_threads_with_a_warning(ros, launch):
    proc = launch("embedding_node", params={"scene_embedder": "none", "torch_num_threads": 1})
    values = _read_back(ros, "/", ["torch_threads"], proc, "embedding_node")
    assert values == {"torch_threads": 1}
    assert ("embedding_node: parameter torch_num_threads is deprecated, use torch_threads"
            in proc.output())
    client = ros.node.create_client(ListParameters, "/embedding_node/list_parameters")
    listed = ros.call(client, ListParameters.Request(), 60, [proc]).result.names
    assert "torch_threads" in listed and "torch_num_threads" not in listed
