"""Every parameter a node declares changeable does at run time what it says; read-only ones
are refused with the reason.

Table-driven over ``config.NODE_PARAMS`` (every spec of every node), so a new parameter cannot
be forgotten: for each node type ONE process is started; then

* every changeable parameter is set, one by one, to a new valid value (the first of
  ``new_values`` the node accepts; ``NEW_VALUES`` where the generic rule cannot pick one: the
  test says so for a new parameter) through the node's SetParameters service, called with rclpy
  from the test (the bulk: fast), and must read back through GetParameters;
* every read-only parameter is set and must be refused with rclpy's read-only reason;
* the important ones are checked for their effect where it can be observed:
  memory_node: store_crops=false stores no crop from the next face on, crop_format changes the
  stored bytes, cluster_min_size forms a cluster, a shorter unknown_retention_days deletes an
  expired face at once, robot_id is written into the next visit;
  embedding_node: max_faces_per_frame, the embed policy (first_embeddings,
  max_embeddings_per_track, refresh_after_budget_s), drop_crops_after_embedding, and max_batch
  as the embedder applies it (/diagnostics);
  identity_node: accept/instant thresholds decide a face differently, greeting_template changes
  the greeting;
  camera_node: frame_id in the next images' headers, rate in their spacing.

The real ``ros2 param set`` command (on PATH after ``source scripts/env.sh``; those checks skip
with the reason when it is absent) runs for a representative set, the lines README.md shows:
store_crops on memory_node, a threshold on identity_node, a policy knob on embedding_node, a
read-only parameter and an out-of-range value (both refused with the reason).
"""

from __future__ import annotations

import math
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import REPO

pytestmark = pytest.mark.dds

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.parameter import Parameter, parameter_value_to_python  # noqa: E402
from reliability_tools import (  # noqa: E402
    EMBEDDER,
    FakeMemory,
    Services,
    identities,
    known,
    perception,
    read_only,
    unit,
    unknown,
)
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from visio_memoria.msg import Face, Identity, IdentityArray, Perception  # noqa: E402
from visio_memoria.srv import LabelUnknown  # noqa: E402

from visio_memoria_ros.config import NODE_PARAMS, ParamSpec  # noqa: E402
from visio_memoria_ros.nodes.images import rgb_to_msg  # noqa: E402
from visio_memoria_ros.nodes.processes import node_env  # noqa: E402
from visio_memoria_ros.nodes.qos import RELIABLE_QOS, SENSOR_QOS  # noqa: E402
from visio_memoria_ros.nodes.stamps import s_to_stamp  # noqa: E402

README = REPO / "README.md"
#: Values for parameters whose new value the generic rule cannot pick (cross-checks).
NEW_VALUES: dict[str, dict[str, Any]] = {
    "identity_node": {"accept_threshold": 0.95, "reject_threshold": 0.5,
                      "instant_accept_threshold": 0.99,
                      "greeting_template": "Good to see you, {name}."},
    "camera_node": {"max_frames": 100000},
}
#: The ``ros2 param set`` lines README.md shows; the test runs each as printed.
CLI_SET = {
    "memory_node": "ros2 param set /memory_node store_crops false",
    "identity_node": "ros2 param set /identity_node accept_threshold 0.93",
    "embedding_node": "ros2 param set /embedding_node max_embeddings_per_track 3",
}
CLI_REFUSED = {
    "memory_node": ("ros2 param set /memory_node data_dir /tmp",
                    "Trying to set a read-only parameter: data_dir"),
}
CLI_OUT_OF_RANGE = ("ros2 param set /memory_node crop_quality 500",
                    "crop_quality out of range")


def new_values(node: str, spec: ParamSpec, current: Any) -> list[Any]:
    """Valid values for ``spec`` other than ``current``, the likeliest first: a change is
    checked with the first one the node accepts (cross-checks with other parameters may refuse
    some, e.g. an accept threshold below the reject threshold)."""
    if spec.name in NEW_VALUES.get(node, {}):
        return [NEW_VALUES[node][spec.name]]
    kind = spec.type
    if kind is bool:
        return [not current]
    if spec.choices:
        return [c for c in spec.choices if c != current]
    if kind in (int, float):
        lo = spec.min if spec.min is not None else current - 2
        hi = spec.max if spec.max is not None else current + 2
    if kind is int:
        return [v for v in (current + 1, current - 1) if lo <= v <= hi]
    if kind is float:
        points = [current + (hi - current) * f for f in (0.25, 0.5, 0.75)]
        points += [current - (current - lo) * f for f in (0.5, 0.25)]
        return [float(v) for v in points if lo <= v <= hi and v != current]
    if kind is str:
        if "{name}" in current:
            return [current.replace("{name}", "{name} (changed)")]
        return [f"{current}_changed" if current else "changed"]
    if kind is list:
        return [["changed"]]
    raise AssertionError(f"{node}.{spec.name}: no rule for {kind.__name__}; add a value to "
                         "NEW_VALUES")


def as_parameter(spec: ParamSpec, value: Any) -> Any:
    """The rcl_interfaces Parameter message for ``value``, typed as ``spec`` declares it."""
    if spec.type is float:
        value = float(value)
    if spec.type is list:
        return Parameter(spec.name, Parameter.Type.STRING_ARRAY, list(value)).to_parameter_msg()
    return Parameter(spec.name, value=value).to_parameter_msg()


class Params:
    """SetParameters / GetParameters of one node, called from the test's node."""

    def __init__(self, ros: Any, node: str, proc: Any) -> None:
        self.ros, self.node, self.proc = ros, node, proc
        self._set = ros.node.create_client(SetParameters, f"/{node}/set_parameters")
        self._get = ros.node.create_client(GetParameters, f"/{node}/get_parameters")

    def set(self, spec: ParamSpec, value: Any) -> Any:
        """Set one parameter; return its SetParametersResult. (A set is idempotent: re-sent
        after 5 s without an answer, see RosTestNode.call.)"""
        request = SetParameters.Request(parameters=[as_parameter(spec, value)])
        return self.ros.call(self._set, request, 30, [self.proc], resend_after=5.0).results[0]

    def set_ok(self, **values: Any) -> None:
        """Set parameters by name; each must be accepted."""
        specs = {s.name: s for s in NODE_PARAMS[self.node]}
        for name, value in values.items():
            result = self.set(specs[name], value)
            assert result.successful, f"{self.node}.{name}={value!r}: {result.reason}"

    def get(self, names: list[str]) -> dict[str, Any]:
        """The node's own values of ``names``."""
        request = GetParameters.Request(names=names)
        response = self.ros.call(self._get, request, 30, [self.proc], resend_after=5.0)
        return {n: parameter_value_to_python(v) for n, v in zip(names, response.values,
                                                                 strict=True)}


def check_every_parameter(ros: Any, node: str, proc: Any) -> None:
    """Every changeable parameter accepted and read back; every read-only one refused."""
    specs = NODE_PARAMS[node]
    params = Params(ros, node, proc)
    current = params.get([s.name for s in specs])
    for spec in specs:
        candidates = new_values(node, spec, current[spec.name])
        assert candidates, f"{node}.{spec.name}: no other valid value; add one to NEW_VALUES"
        if spec.read_only:
            result = params.set(spec, candidates[0])
            assert not result.successful, f"{node}.{spec.name} is read-only but was set"
            assert "read-only" in result.reason, result.reason
            continue
        refused = []
        for value in candidates:
            result = params.set(spec, value)
            if result.successful:
                break
            refused.append(f"{value!r}: {result.reason}")
        assert result.successful, f"{node}.{spec.name}: every new value refused: {refused}"
        got = params.get([spec.name])[spec.name]
        if spec.type is float:
            assert math.isclose(got, value), (spec.name, got, value)
        else:
            assert got == value, (spec.name, got, value)
    assert proc.alive(), proc.output()[-3000:]
    assert "parameters changed" in proc.output()


# -- the real command line ----------------------------------------------------------------------
def cli_missing() -> str | None:
    """Why the real ``ros2 param`` command cannot run here, or None."""
    if shutil.which("ros2") is None:
        return ("`ros2` is not on PATH: install ROS 2, or put ../shared/ros-cli next to the "
                "repository and run scripts/bootstrap.sh (then `source scripts/env.sh`)")
    return None


def ros2(line: str, timeout: float = 60.0) -> str:
    """Run one ``ros2`` command line as printed; return its output."""
    result = subprocess.run(shlex.split(line), capture_output=True, text=True, env=node_env(),
                            timeout=timeout, check=False)
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def cli():
    """The real ``ros2`` CLI (the daemon it starts is stopped after the module)."""
    reason = cli_missing()
    yield reason
    if reason is None:
        ros2("ros2 daemon stop")


def cli_sees(node: str, proc: Any) -> None:
    """Wait until ``ros2 node list`` shows ``/node`` (as a user would before setting)."""
    deadline = time.monotonic() + 60
    while f"/{node}\n" not in ros2("ros2 node list") + "\n":
        assert proc.alive(), proc.output()[-3000:]
        assert time.monotonic() < deadline, f"ros2 node list never showed /{node}"


def ros2_set(line: str) -> str:
    """Run a ``ros2 param set`` line; again while it answers "Node not found" (the daemon may
    still list a node of that name that has just exited and not yet know the new one; a user
    would type the line again)."""
    out = ros2(line)
    deadline = time.monotonic() + 60
    while "Node not found" in out and time.monotonic() < deadline:
        out = ros2(line)
    return out


def cli_set(cli: str | None, node: str, proc: Any) -> bool:
    """Run README's ``ros2 param set`` line for ``node``; False when the CLI is missing."""
    if cli is not None:
        return False
    line = CLI_SET[node]
    assert line in README.read_text(encoding="utf-8"), f"README.md no longer shows: {line}"
    cli_sees(node, proc)
    out = ros2_set(line)
    assert "Set parameter successful" in out, f"{line}\n{out}"
    if node in CLI_REFUSED:
        refused, reason = CLI_REFUSED[node]
        assert refused in README.read_text(encoding="utf-8"), refused
        out = ros2_set(refused)
        assert "Setting parameter failed" in out and reason in out, f"{refused}\n{out}"
    return True


def set_store_crops_off(cli: str | None, params: Params, proc: Any) -> None:
    """store_crops=false with the README's ``ros2 param set`` line (rclpy when no CLI)."""
    if not cli_set(cli, "memory_node", proc):
        params.set_ok(store_crops=False)
    assert params.get(["store_crops"])["store_crops"] is False


# -- memory_node --------------------------------------------------------------------------------
def _unknowns(db: Path) -> list[tuple[int, bytes | None, int, float]]:
    conn = read_only(db)
    try:
        return conn.execute("SELECT id, crop, cluster_id, last_seen FROM unknowns ORDER BY id"
                            ).fetchall()
    finally:
        conn.close()


def test_memory_node_parameters_apply_at_run_time(ros, launch, tmp_path, cli):
    data = tmp_path / "mem"
    db = data / "memory.db"
    # Synthetic crops: the quality gate (test_memory_node_unknowns.py) would refuse them.
    proc = launch("memory_node", params={"data_dir": str(data), "remember_gate": False})
    params = Params(ros, "memory_node", proc)
    svc = Services(ros, [proc])
    pub = ros.node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
    ros.wait_for_subscribers(pub, 1, 60, [proc])
    rng = np.random.default_rng(5)
    track = [0]

    def store_face(t: float | None = None) -> tuple[int, bytes | None, int, float]:
        """One new stranger with a crop; returns its row once stored."""
        track[0] += 1
        before = len(_unknowns(db)) if db.exists() else 0
        crop = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
        pub.publish(identities(time.time() if t is None else t,
                               [unknown(track[0], unit(rng), crop)]))
        ros.spin_until(lambda: db.exists() and len(_unknowns(db)) > before, 30,
                       f"unknown face {track[0]} stored", [proc])
        return _unknowns(db)[-1]

    first = store_face()
    assert first[1] is not None and first[1][:2] == b"\xff\xd8"  # a JPEG crop, by default
    assert first[2] == -1  # alone: pending (cluster_min_size 3)

    set_store_crops_off(cli, params, proc)
    assert store_face()[1] is None, "a crop was stored after store_crops=false"
    assert "no longer stored" in proc.output()

    params.set_ok(store_crops=True, crop_format="png")
    assert store_face()[1][:4] == b"\x89PNG"

    params.set_ok(cluster_min_size=1)
    assert store_face()[2] >= 0, "a lone face formed no cluster with cluster_min_size=1"

    old = store_face(t=time.time() - 10 * 86400.0)  # last seen 10 days ago: kept (30 days)
    ros.spin_until(lambda: any(r[0] == old[0] for r in _unknowns(db)), 5, "old face kept", [proc])
    params.set_ok(unknown_retention_days=5.0)
    ros.spin_until(lambda: all(r[0] != old[0] for r in _unknowns(db)), 10,
                   "the expired face deleted at once", [proc])

    params.set_ok(robot_id="robot_b")
    cluster = _unknowns(db)[3][2]
    label = svc.call(LabelUnknown, "label_unknown", cluster_id=cluster, name="Dana")
    assert label.success, label.message
    pub.publish(identities(time.time(), [known(99, label.person_id)]))

    def robot_of_visit() -> str | None:
        conn = read_only(db)
        try:
            row = conn.execute("SELECT robot_id FROM visits WHERE person_id = ?",
                               (label.person_id,)).fetchone()
        finally:
            conn.close()
        return row[0] if row else None

    ros.spin_until(lambda: robot_of_visit() is not None, 30, "a visit of Dana", [proc])
    assert robot_of_visit() == "robot_b"

    if cli is None:
        line, reason = CLI_OUT_OF_RANGE
        assert line in README.read_text(encoding="utf-8"), line
        out = ros2_set(line)
        assert "Setting parameter failed" in out and reason in out, f"{line}\n{out}"

    check_every_parameter(ros, "memory_node", proc)


# -- embedding_node -----------------------------------------------------------------------------
def _face(track_id: int, crop: np.ndarray, x: float) -> Face:
    face = Face(track_id=track_id, bbox=[x, 50.0, x + 100.0, 170.0], score=0.99, quality=0.8,
                detector="test")
    face.landmarks = [math.nan] * 10
    face.aligned_crop = rgb_to_msg(crop)
    return face


class Embedder:
    """Detections in, perception out, one frame at a time (the worker keeps only the newest)."""

    def __init__(self, ros: Any, proc: Any) -> None:
        self.ros, self.proc = ros, proc
        self.pub = ros.node.create_publisher(Perception, "detections", RELIABLE_QOS)
        self.out = ros.collect(Perception, "perception", RELIABLE_QOS)
        self.diag: list[dict[str, str]] = []
        ros.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 20)
        ros.wait_for_subscribers(self.pub, 1, 60, [proc])
        ros.wait_for_publishers(ros.node.create_subscription(Perception, "perception",
                                                              lambda m: None, RELIABLE_QOS),
                                1, 60, [proc])
        self.t = 1_700_000_000.0
        rng = np.random.default_rng(9)
        self.crop = rng.integers(0, 256, size=(192, 192, 3), dtype=np.uint8)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith("embedding_node: embed"):
                self.diag.append({kv.key: kv.value for kv in status.values})

    def send(self, tracks: list[int], dt: float = 1.0) -> Perception:
        """One frame with a face per track, ``dt`` s after the previous; returns the output."""
        self.t += dt
        msg = Perception(image_width=640, image_height=480)
        msg.header.stamp = s_to_stamp(self.t)
        msg.header.frame_id = "cam"
        msg.faces = [_face(tid, self.crop, 10.0 + 120.0 * i) for i, tid in enumerate(tracks)]
        stamp = msg.header.stamp
        done: Callable[[], bool] = lambda: any(m.header.stamp == stamp for m in self.out)  # noqa: E731
        deadline = time.monotonic() + 60
        while not done():  # re-send until answered: the first frames may meet discovery
            assert time.monotonic() < deadline, "embedding_node never answered"
            self.pub.publish(msg)
            self._wait(done, 2.0)
        return next(m for m in self.out if m.header.stamp == stamp)

    def _wait(self, done: Callable[[], bool], seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not done():
            assert self.proc.alive(), self.proc.output()[-3000:]
            self.ros.executor.spin_once(timeout_sec=0.05)


def embedded(msg: Perception) -> list[int]:
    """Track ids of the faces embedded in this frame."""
    return [f.track_id for f in msg.faces if len(f.embedding)]


def test_embedding_node_parameters_apply_at_run_time(ros, launch, cli):
    proc = launch("embedding_node", params={"scene_embedder": "none", "torch_threads": 1})
    params = Params(ros, "embedding_node", proc)
    emb = Embedder(ros, proc)
    assert sorted(embedded(emb.send([1, 2]))) == [1, 2]  # two new tracks: both embedded

    params.set_ok(max_faces_per_frame=1)
    assert len(embedded(emb.send([3, 4]))) == 1

    # Default policy: a new track is embedded again 0.2 s later (first_embeddings 2).
    assert embedded(emb.send([5])) == [5]
    assert embedded(emb.send([5], dt=0.3)) == [5]
    # One embedding per track, no refresh: a new track is embedded once, then never again.
    params.set_ok(first_embeddings=1, max_embeddings_per_track=1, refresh_after_budget_s=0.0)
    assert embedded(emb.send([6])) == [6]
    # 13.8 s in all, each gap below forget_track_after_s: the default would refresh at 10 s.
    later = [emb.send([6], dt=dt) for dt in (0.3, 1.0, 3.0, 9.5)]
    assert all(embedded(m) == [] for m in later)
    assert all(m.faces[0].aligned_crop.height == 0 for m in later)  # crops dropped (default)

    params.set_ok(drop_crops_after_embedding=False)
    kept = emb.send([6], dt=0.3)
    assert embedded(kept) == [] and kept.faces[0].aligned_crop.height == 192

    if cli_set(cli, "embedding_node", proc):
        assert params.get(["max_embeddings_per_track"])["max_embeddings_per_track"] == 3
        assert embedded(emb.send([7])) == [7]
        assert [embedded(emb.send([7], dt=0.3)) for _ in range(3)] == [[], [], []]
    emb.diag.clear()
    ros.spin_until(lambda: emb.diag, 10, "embedding_node diagnostics", [proc])
    assert emb.diag[-1]["first_embeddings"] == "1"

    check_every_parameter(ros, "embedding_node", proc)


def test_embedding_node_batch_size_reaches_the_scene_embedder(ros, launch, tmp_path):
    """max_batch is the DINOv3 batch: checked on a tiny random DINOv3 saved to disk."""
    transformers = pytest.importorskip("transformers")
    config = transformers.DINOv3ViTConfig(hidden_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=64,
                                          patch_size=16, image_size=64)
    model_dir = tmp_path / "tiny_dinov3"
    transformers.DINOv3ViTModel(config).save_pretrained(model_dir)
    proc = launch("embedding_node", params={
        "scene_embedder": "dinov3", "dinov3_model_dir": str(model_dir), "scene_resolution": 64,
        "torch_threads": 1})
    params = Params(ros, "embedding_node", proc)
    emb = Embedder(ros, proc)

    def batch() -> str | None:
        return emb.diag[-1].get("scene_max_batch") if emb.diag else None

    ros.spin_until(lambda: batch() == "16", 60, "scene_max_batch 16 on /diagnostics", [proc])
    params.set_ok(max_batch=3)
    ros.spin_until(lambda: batch() == "3", 10, "scene_max_batch 3 on /diagnostics", [proc])


# -- identity_node ------------------------------------------------------------------------------
@pytest.fixture
def fake_memory():
    """A scripted memory_node stand-in (reliability_tools.FakeMemory), closed after the test."""
    made: list[FakeMemory] = []

    def make(revision: int) -> FakeMemory:
        made.append(FakeMemory(revision))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


def near(vector: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at ``cosine`` similarity to ``vector``."""
    other = rng.normal(size=vector.shape)
    other -= other.dot(vector) * vector
    other /= np.linalg.norm(other)
    out = cosine * vector + math.sqrt(1 - cosine**2) * other
    return (out / np.linalg.norm(out)).astype(np.float32)


def test_identity_node_parameters_apply_at_run_time(ros, launch, fake_memory, cli):
    rng = np.random.default_rng(13)
    alice, bob = unit(rng), unit(rng)
    memory = fake_memory(1)
    memory.people[EMBEDDER] = {1: ("Alice", alice), 2: ("Bob", bob)}
    memory.announce("started")
    proc = launch("identity_node")
    params = Params(ros, "identity_node", proc)
    pub = ros.node.create_publisher(Perception, "perception", RELIABLE_QOS)
    out = ros.collect(IdentityArray, "identities", RELIABLE_QOS)
    greetings = ros.collect(String, "greeting", RELIABLE_QOS)
    ros.wait_for_subscribers(pub, 1, 60, [proc])
    ros.spin_until(lambda: "gallery revision 1" in proc.output(), 30, "the gallery", [proc])

    def status_of(track: int, vector: np.ndarray, frames: int = 8) -> set[int]:
        """Statuses decided for ``track`` over ``frames`` frames of ``vector``."""
        start = len(out)
        for _ in range(frames):
            answered = len(out)
            deadline = time.monotonic() + 30
            while len(out) == answered:  # re-sent when lost to discovery on the node's side
                assert time.monotonic() < deadline, "identity_node never answered"
                pub.publish(perception(time.time(), [(track, vector)]))
                end = time.monotonic() + 2.0
                while len(out) == answered and time.monotonic() < end:
                    assert proc.alive(), proc.output()[-3000:]
                    ros.executor.spin_once(timeout_sec=0.05)
        return {i.status for m in out[start:] for i in m.identities if i.track_id == track}

    params.set_ok(greeting_template="Hello {name}.")
    assert Identity.STATUS_KNOWN in status_of(1, bob)
    ros.spin_until(lambda: any(g.data == "Hello Bob." for g in greetings), 10,
                   "the new greeting", [proc])

    alice_like = near(alice, 0.95, rng)  # above the default accept (0.915), below 0.99
    params.set_ok(accept_threshold=0.99, instant_accept_threshold=1.0)
    assert status_of(2, alice_like) == {Identity.STATUS_UNCERTAIN}, (
        "UNCERTAIN expected above the raised threshold")
    if not cli_set(cli, "identity_node", proc):
        params.set_ok(accept_threshold=0.93)
    assert Identity.STATUS_KNOWN in status_of(3, alice_like), (
        "KNOWN expected once accept is back below 0.95")

    check_every_parameter(ros, "identity_node", proc)


# -- camera_node --------------------------------------------------------------------------------
def test_camera_node_parameters_apply_at_run_time(ros, launch, tmp_path):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, np.uint8))
    proc = launch("camera_node", params={"source": str(image), "loop": True, "rate": 10.0})
    params = Params(ros, "camera_node", proc)
    frames: list[tuple[str, float]] = []
    ros.node.create_subscription(
        Image, "image_raw",
        lambda m: frames.append((m.header.frame_id, m.header.stamp.sec + m.header.stamp.nanosec
                                 * 1e-9)), SENSOR_QOS)
    ros.spin_until(lambda: len(frames) >= 3, 60, "camera images", [proc])
    params.set_ok(frame_id="cam_b", rate=2.0)
    mark = len(frames)
    ros.spin_until(lambda: sum(f == "cam_b" for f, _ in frames[mark:]) >= 5, 30,
                   "5 images from cam_b", [proc])
    stamps = [t for f, t in frames[mark:] if f == "cam_b"]
    gaps = np.diff(stamps)
    assert np.median(gaps) >= 0.4, f"rate 2 Hz but images {gaps} s apart"
    check_every_parameter(ros, "camera_node", proc)


# -- the nodes without an effect checked here -------------------------------------------------
@pytest.mark.parametrize("node,start", [
    ("detector_node", {"face_backend": "haar", "torch_threads": 1}),
    ("activity_node", {}),
    ("overlay_node", {}),
])
def test_every_parameter_is_applied_or_refused(ros, launch, node, start):
    """Set and read back; activity effects: test_activity_node, overlay: test_overlay_node."""
    specs = {s.name for s in NODE_PARAMS[node]}
    proc = launch(node, params={k: v for k, v in start.items() if k in specs})
    check_every_parameter(ros, node, proc)


def test_every_node_is_covered():
    """A node added to NODE_PARAMS must get a parameter test here."""
    covered = {"memory_node", "embedding_node", "identity_node", "camera_node", "detector_node",
               "activity_node", "overlay_node"}
    assert set(NODE_PARAMS) == covered


def test_a_node_without_a_run_time_handler_refuses_changes(ros):
    """VisioNode answers "successful" only when the node applies changes (on_params_changed)."""
    from visio_memoria_ros.nodes.params import VisioNode

    spec = ParamSpec("threshold", 0.5, "A value the node would read only at start.")
    node = VisioNode("no_handler_node", [spec], context=ros.context)
    try:
        refused = node.set_parameters([Parameter("threshold", value=0.7)])[0]
        assert not refused.successful
        assert "applies no parameter at run time" in refused.reason
        assert node.params["threshold"] == 0.5
        applied: list[dict[str, Any]] = []
        node.on_params_changed(applied.append)
        assert node.set_parameters([Parameter("threshold", value=0.7)])[0].successful
        assert applied == [{"threshold": 0.7}] and node.params["threshold"] == 0.7
    finally:
        node.destroy_node()
