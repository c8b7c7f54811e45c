"""Camera sources without ROS: file ends, missing sources, and reopening with back-off."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from mjpeg_server import MjpegServer, free_port

from visio_memoria_ros.core.sources import (
    FrameSource,
    RetryPolicy,
    SourceError,
    SourceState,
    SupervisedSource,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeCamera:
    """A device that delivers ``frames`` frames and then fails (unplugged) or ends (a file)."""

    def __init__(self, frames: int, *, then: str = "unplug", kind: str = "device") -> None:
        self.left, self.then, self.kind = frames, then, kind
        self.closed = False

    def read(self) -> np.ndarray | None:
        if self.left:
            self.left -= 1
            return np.zeros((2, 2, 3), np.uint8)
        if self.then == "end":
            return None
        raise SourceError("camera device '/dev/video0' stopped delivering frames")

    def close(self) -> None:
        self.closed = True


class Opener:
    """Plays a script: an int opens a FakeCamera with that many frames, None fails to open."""

    def __init__(self, script: list[int | None], **camera) -> None:
        self.script, self.camera, self.opened = list(script), camera, []

    def __call__(self) -> FakeCamera:
        step = self.script.pop(0)
        if step is None:
            raise SourceError("cannot open camera device '/dev/video0'")
        cam = FakeCamera(step, **self.camera)
        self.opened.append(cam)
        return cam


def test_retry_policy_doubles_up_to_the_cap():
    policy = RetryPolicy(attempts=6, initial_delay=0.5, max_delay=3.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=-1)
    with pytest.raises(ValueError, match="max_delay"):
        RetryPolicy(initial_delay=2.0, max_delay=1.0)


def test_missing_device_is_retried_with_back_off_then_gives_up():
    clock = FakeClock()
    opener = Opener([None, None, None, None])
    src = SupervisedSource(
        "/dev/video0", opener=opener,
        policy=RetryPolicy(attempts=3, initial_delay=1.0, max_delay=10.0), clock=clock,
    )
    waits = []
    while src.state is SourceState.RETRYING:
        assert src.poll() is None
        if src.state is SourceState.RETRYING:
            assert "retry" in src.message and "cannot open camera device" in src.message
            waits.append(src.retry_in)
            polls_before = len(opener.script)
            clock.t += src.retry_in - 0.01
            assert src.poll() is None and len(opener.script) == polls_before  # not yet
            clock.t += 0.01
    assert waits == [1.0, 2.0, 4.0]  # one wait after each failure, doubling
    assert src.state is SourceState.FAILED and src.failures == 4 and not opener.script
    assert src.message.startswith("gave up after 4 failed attempts: cannot open")
    assert src.poll() is None and src.state is SourceState.FAILED


def test_a_source_that_never_opened_says_what_it_names():
    for source, kind in [("/dev/video3", "device"), ("2", "device"), ("rtsp://cam/1", "stream"),
                         ("/data/clip.mp4", "file")]:
        src = SupervisedSource(source, opener=Opener([None]), policy=RetryPolicy(attempts=0))
        assert src.kind == kind, source


def test_zero_attempts_fails_at_once():
    src = SupervisedSource("x", opener=Opener([None]), policy=RetryPolicy(attempts=0))
    assert src.state is SourceState.FAILED


def test_unplugged_device_is_reopened_and_the_count_starts_afresh():
    clock = FakeClock()
    opener = Opener([2, None, 3, 1000])
    src = SupervisedSource(
        "/dev/video0", opener=opener, clock=clock,
        policy=RetryPolicy(attempts=2, initial_delay=1.0, max_delay=10.0),
    )
    got = 0
    for _ in range(50):
        if src.poll() is not None:
            got += 1
        clock.t += 0.5
    # 2 frames, unplugged (failure 1), the reopening fails (failure 2), reopened: 3 frames,
    # unplugged again: failure 1 again, since frames came in between (without that reset it
    # would be failure 3 > attempts, FAILED); reopened for good.
    assert src.state is SourceState.RUNNING and src.failures == 0
    assert src.reconnects == 2 and opener.opened[0].closed and opener.opened[1].closed
    assert got == src.frames and 5 < got < 50


def test_a_file_that_ends_is_ended_not_failed():
    src = SupervisedSource("clip.mp4", opener=Opener([3], then="end", kind="video"))
    frames = [src.poll() for _ in range(5)]
    assert sum(f is not None for f in frames) == 3
    assert src.state is SourceState.ENDED and src.message == "source ended after 3 frames"


def test_end_releases_the_source():
    opener = Opener([10])
    src = SupervisedSource("/dev/video0", opener=opener)
    src.poll()
    src.end()
    assert src.state is SourceState.ENDED and opener.opened[0].closed
    assert src.poll() is None


@pytest.fixture
def images(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((8, 8, 3), 50 * (i + 1), np.uint8))
    return tmp_path


def test_image_folder_ends_or_loops(images):
    once = list(FrameSource(str(images)))
    assert [int(f[0, 0, 0]) for f in once] == [50, 100, 150]
    looping = FrameSource(str(images), loop=True)
    assert [int(looping.read()[0, 0, 0]) for _ in range(5)] == [50, 100, 150, 50, 100]


def test_video_file_ends(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for _ in range(4):
        writer.write(np.full((24, 32, 3), 90, np.uint8))
    writer.release()
    src = SupervisedSource(str(path))
    frames = [src.poll() for _ in range(6)]
    assert sum(f is not None for f in frames) == 4 and src.state is SourceState.ENDED


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("/nonexistent/clip.mp4", "no such camera device, video file"),
        ("/dev/video99", "cannot open camera device '/dev/video99'"),
        (f"http://127.0.0.1:{free_port()}/stream.mjpg", "cannot open stream"),
        ("", "empty source"),
    ],
)
def test_sources_that_cannot_be_opened_say_why(source, match):
    with pytest.raises(SourceError, match=match):
        FrameSource(source)


def test_network_camera_that_is_unplugged_raises_and_is_reopened_when_back():
    server = MjpegServer(free_port()).start()
    try:
        src = SupervisedSource(
            server.url, policy=RetryPolicy(attempts=100, initial_delay=0.05, max_delay=0.05)
        )
        assert src.kind == "stream"
        assert all(src.poll() is not None for _ in range(3))
        server.stop()
        for _ in range(200):  # frames already buffered may still come
            if src.poll() is None and src.state is SourceState.RETRYING:
                break
        assert src.state is SourceState.RETRYING
        assert "stopped delivering frames" in src.last_error or "cannot open" in src.last_error
        server.start()
        for _ in range(400):
            if src.poll() is not None and src.reconnects:
                break
            time.sleep(0.01)
        assert src.reconnects == 1 and src.state is SourceState.RUNNING
    finally:
        server.stop()
        src.close()
