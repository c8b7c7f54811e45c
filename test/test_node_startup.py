"""How a node process is run: its executor and torch's threads (no DDS needed)."""

from __future__ import annotations

import pytest

from visio_memoria_ros.nodes import startup


def test_torch_threads_zero_is_one_thread_in_a_node() -> None:
    assert startup.node_torch_threads(0) == 1
    assert startup.node_torch_threads(3) == 3


class _StoppedError(Exception):
    pass


@pytest.mark.parametrize(("threads", "kind"), [(1, "SingleThreadedExecutor"),
                                               (3, "MultiThreadedExecutor")])
def test_run_node_spins_one_thread_unless_the_node_asks_for_more(
        monkeypatch: pytest.MonkeyPatch, threads: int, kind: str) -> None:
    """The executor run_node builds."""
    built: list[str] = []

    class Recorder:
        def __init__(self, *args, **kwargs) -> None:
            built.append(self.name)

        def add_node(self, node) -> None:
            raise _StoppedError

    for name in ("SingleThreadedExecutor", "MultiThreadedExecutor"):
        monkeypatch.setattr(startup, name, type(name, (Recorder,), {"name": name}))
    monkeypatch.setattr(startup.rclpy, "init", lambda **kw: None)
    monkeypatch.setattr(startup.rclpy, "try_shutdown", lambda: None)
    monkeypatch.setattr(startup, "route_library_logging", lambda: None)
    with pytest.raises(_StoppedError):
        startup.run_node(object, [], threads=threads)
    assert built == [kind]
