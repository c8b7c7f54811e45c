"""``make demo``: the real node graph on a replay, the whole loop shown in the terminal.

    python -m visio_memoria_ros.nodes.demo                      # scripted story, exits 0
    python -m visio_memoria_ros.nodes.demo --source 0           # live: a webcam (Ctrl-C ends)
    python -m visio_memoria_ros.nodes.demo --source clip.mp4    # live: a video file

The scripted story replays ``zidane.jpg`` (shipped with ultralytics) through all seven nodes:
faces detected -> unknown faces stored and clustered -> each cluster labelled by a service call
(printed as the ``ros2 service call`` you would type) -> the next sighting greeted
"Welcome back, <name>!" on /greeting -> visits listed. Overlay frames are written to
``<out>/overlay/``, node logs to ``<out>/logs/``, the memory to ``<out>/memory/``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import String
from visio_memoria.msg import IdentityArray, Perception
from visio_memoria.srv import LabelUnknown, ListUnknownClusters, ListVisits

from .images import ImageConverter
from .processes import NodeProcess, check_local_discovery
from .qos import RELIABLE_QOS, SENSOR_QOS
from .reliable_call import ReliableCall

NODES = ("detector_node", "embedding_node", "identity_node", "memory_node", "activity_node",
         "overlay_node")
NAMES = ("Alex", "Sam", "Kim", "Noor")


def _say(text: str) -> None:
    print(text, flush=True)


class DemoClient:
    """The demo's own rclpy node: collects topics, calls services, writes overlay frames."""

    def __init__(self, overlay_dir: Path, max_frames: int) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("visio_memoria_demo", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.greetings: list[str] = []
        self.faces_seen = 0
        self.frames = 0
        self.known: dict[str, float] = {}
        self._overlay_dir = overlay_dir
        self._max_frames = max_frames
        self._written = 0
        self._converter = ImageConverter()
        self._clients: dict[str, Any] = {}
        n = self.node
        n.create_subscription(String, "greeting", self._on_greeting, RELIABLE_QOS)
        n.create_subscription(Perception, "perception", self._on_perception, RELIABLE_QOS)
        n.create_subscription(IdentityArray, "identities", self._on_identities, RELIABLE_QOS)
        n.create_subscription(Image, "overlay/image", self._on_overlay, SENSOR_QOS)

    def _on_greeting(self, msg: String) -> None:
        self.greetings.append(msg.data)
        _say(f"  /greeting  -> {msg.data!r}")

    def _on_perception(self, msg: Perception) -> None:
        self.frames += 1
        if len(msg.faces) != self.faces_seen:
            self.faces_seen = len(msg.faces)
            embedded = sum(1 for f in msg.faces if len(f.embedding))
            _say(f"  perception: {len(msg.faces)} face(s), {len(msg.persons)} person(s), "
                 f"{embedded} embedded this frame")

    def _on_identities(self, msg: IdentityArray) -> None:
        for ident in msg.identities:
            if ident.status == ident.STATUS_KNOWN and ident.name not in self.known:
                self.known[ident.name] = ident.similarity
                _say(f"  identity:  track {ident.track_id} is {ident.name} "
                     f"(similarity {ident.similarity:.3f})")

    def _on_overlay(self, msg: Image) -> None:
        if self._written >= self._max_frames:
            return
        rgb = self._converter.to_rgb(msg)
        path = self._overlay_dir / f"overlay_{self._written:04d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self._written += 1

    @property
    def overlays_written(self) -> int:
        """Overlay frames written so far."""
        return self._written

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str,
                   procs: list[NodeProcess]) -> None:
        """Spin until ``done()``; fail with the node logs after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            for p in procs:
                if not p.alive() and p.name != "camera_node":
                    raise RuntimeError(f"{p.name} exited ({p.proc.returncode}); see {p.log_path}")
            self.executor.spin_once(timeout_sec=0.1)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")

    def call(self, srv_type: Any, service: str, procs: list[NodeProcess], **fields: Any) -> Any:
        """Call ``visio_memoria/<service>`` and return the response.

        Reads (list_*) go through ReliableCall: a reply lost right after memory_node started
        is asked for again. Writes (label_unknown) are sent once: re-sent, they would be done
        twice.
        """
        request = srv_type.Request(**fields)
        if service.startswith(("list_", "get_")):
            reliable = self._clients.get(service)
            if reliable is None:
                reliable = self._clients[service] = ReliableCall(
                    self.node, srv_type, f"visio_memoria/{service}")
            answers: list[Any] = []
            reliable.call(request, answers.append)
            self.spin_until(lambda: bool(answers), 60, f"answer of {service}", procs)
            return answers[0]
        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = self.node.create_client(
                srv_type, f"visio_memoria/{service}")
        self.spin_until(client.service_is_ready, 60, f"service {service}", procs)
        future = client.call_async(request)
        self.spin_until(future.done, 60, f"answer of {service}", procs)
        return future.result()

    def close(self) -> None:
        """Shut the client down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def _start(name: str, out: Path, params: dict[str, Any]) -> NodeProcess:
    return NodeProcess(name, out / "logs", params=params)


def _graph_params(out: Path) -> dict[str, dict[str, Any]]:
    return {
        "detector_node": {"torch_threads": 1},
        "embedding_node": {"torch_threads": 1},
        "identity_node": {},
        "memory_node": {"data_dir": str(out / "memory")},
        "activity_node": {},
        "overlay_node": {},
    }


def scripted(out: Path, image: Path) -> int:
    """The scripted story on a replayed photo; returns the exit code."""
    client = DemoClient(out / "overlay", max_frames=200)
    procs: list[NodeProcess] = []
    try:
        _say("1. starting the node graph: " + ", ".join(("camera_node", *NODES)))
        params = _graph_params(out)
        procs += [_start(n, out, params[n]) for n in NODES]
        camera = {"source": str(image), "rate": 5.0, "loop": True, "frame_id": "demo_camera"}
        procs.append(_start("camera_node", out, camera))

        _say(f"2. replaying {image.name}: faces detected, unknown faces queued and clustered")
        clusters: list[Any] = []

        def have_clusters() -> bool:
            if client.frames and client.frames % 5 == 0:
                clusters[:] = client.call(ListUnknownClusters, "list_unknown_clusters", procs,
                                          max_samples=0, min_size=3).clusters
            return bool(clusters) and client.frames >= 15

        client.spin_until(have_clusters, 300, "an unknown cluster", procs)
        for c in clusters:
            _say(f"  memory: unknown cluster #{c.cluster_id} holds {c.size} faces")
        procs[-1].stop()  # the people leave
        procs.pop()

        _say("3. labelling the clusters, as a person would:")
        for cluster, name in zip(clusters, NAMES, strict=False):
            _say(f"  $ ros2 service call /visio_memoria/label_unknown "
                 f"visio_memoria/srv/LabelUnknown \"{{cluster_id: {cluster.cluster_id}, "
                 f"name: '{name}'}}\"")
            resp = client.call(LabelUnknown, "label_unknown", procs,
                               cluster_id=cluster.cluster_id, name=name)
            _say(f"    -> success={resp.success}: {resp.message}")
            if not resp.success:
                return 1
        expected = {f"Welcome back, {n}!" for n in NAMES[: len(clusters)]}

        _say("4. they come back (the camera starts again): greeted once per visit")
        procs.append(_start("camera_node", out, camera))
        client.spin_until(lambda: expected <= set(client.greetings), 300,
                          f"greetings {sorted(expected)}", procs)
        end = time.monotonic() + 3.0  # keep watching: no second greeting for the same visit
        client.spin_until(lambda: time.monotonic() > end, 10, "a quiet moment", procs)

        _say("5. visits in the memory:")
        visits = client.call(ListVisits, "list_visits", procs, person_id=-1, limit=10).visits
        for v in visits:
            state = "in progress" if v.end.sec == 0 else "ended"
            _say(f"  {v.name}: visit {v.visit_id} at {v.location}, {state}, activity "
                 f"{v.dominant_activity or '-'}")
        client.spin_until(lambda: client.overlays_written > 0, 30, "an overlay frame", procs)
        _say(f"6. {client.overlays_written} overlay frames written to {out / 'overlay'}")
        duplicates = len(client.greetings) - len(set(client.greetings))
        ok = expected <= set(client.greetings) and duplicates == 0 and bool(visits)
        _say("demo " + ("finished: every step worked" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        for p in reversed(procs):
            p.stop()
        client.close()


def live(out: Path, source: str) -> int:
    """Run the graph on a webcam or video until Ctrl-C, printing what happens."""
    client = DemoClient(out / "overlay", max_frames=500)
    params = _graph_params(out)
    procs = [_start(n, out, params[n]) for n in NODES]
    procs.append(_start("camera_node", out, {"source": source, "rate": 15.0, "loop": False,
                                             "on_source_end": "shutdown"}))
    _say(f"running on {source!r}; label unknown faces with the services or "
         "`python -m visio_memoria_ros.ui`; Ctrl-C to stop")
    try:
        client.spin_until(lambda: not procs[-1].alive(), 10**9, "the end of the source", procs)
    except KeyboardInterrupt:
        pass
    finally:
        for p in reversed(procs):
            p.stop()
        client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m visio_memoria_ros.nodes.demo [--source S] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", help="camera device, video file or images (live mode)")
    parser.add_argument("--out", type=Path, default=Path("demo_output"),
                        help="folder for overlay frames, logs and the demo memory")
    parser.add_argument("--keep-memory", action="store_true",
                        help="keep the memory of a previous run (default: start empty)")
    args = parser.parse_args(argv)
    check_local_discovery()
    out = args.out.resolve()
    if not args.keep_memory and (out / "memory").exists():
        shutil.rmtree(out / "memory")
    for sub in ("overlay", "logs"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True, exist_ok=True)
    if args.source:
        return live(out, args.source)
    try:
        from ultralytics.utils import ASSETS
    except ImportError:
        _say("demo FAILED: the scripted story replays zidane.jpg, which ships with the optional "
             "ultralytics package (pip install -r requirements/yolo.txt); or run it live on "
             "your own source with --source")
        return 1
    try:
        return scripted(out, Path(ASSETS) / "zidane.jpg")
    except RuntimeError as exc:
        _say(f"demo FAILED: {exc}")
        return 1


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
