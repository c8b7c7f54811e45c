"""Image sources for the camera node and the CLI: a device, a video file or a list of images.

``FrameSource`` reads one source; ``SupervisedSource`` wraps it the way a robot needs it: a
source that cannot be opened, or a device that stops delivering frames (unplugged), is reopened
with exponential back-off a bounded number of times before it counts as failed, and a file
source that ends is reported as ended rather than as an error.
"""

from __future__ import annotations

import enum
import glob
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: A network camera URL (rtsp://, http://, ...), read through FFmpeg.
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
#: How long opening or reading a network stream may block [ms].
STREAM_TIMEOUT_MS = 5000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class SourceError(RuntimeError):
    """The configured source cannot be opened or read; the message says which and why."""


class FrameSource:
    """Yields BGR uint8 frames from a device, a stream URL, a video file, a folder, a glob or a
    file list.

    ``read()`` returns the next frame, or None at the end (files only; ``loop`` restarts them);
    a device or stream that stops delivering raises ``SourceError``.
    """

    def __init__(self, source: str, *, loop: bool = False, width: int = 0, height: int = 0):
        self.source = source.strip()
        self.loop = loop
        self._capture: cv2.VideoCapture | None = None
        self._files: list[Path] = []
        self._index = 0
        if not self.source:
            raise SourceError("empty source")
        if _URL.match(self.source):
            # Network cameras (rtsp://, http://...): bounded waits, so a dead camera is an error
            # after a few seconds instead of a blocked node.
            self._capture = cv2.VideoCapture(
                self.source,
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS],
            )
            if not self._capture.isOpened():
                raise SourceError(f"cannot open stream {self.source!r}")
            self.kind = "stream"
            return
        if self.source.isdigit() or self.source.startswith("/dev/video"):
            device = int(self.source) if self.source.isdigit() else self.source
            self._capture = cv2.VideoCapture(device)
            if not self._capture.isOpened():
                raise SourceError(f"cannot open camera device {self.source!r}")
            if width:
                self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            self.kind = "device"
            return
        self._files = _image_list(self.source)
        if self._files:
            self.kind = "images"
            return
        path = Path(self.source)
        if not path.is_file():
            raise SourceError(f"no such camera device, video file, folder or image: {source!r}")
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise SourceError(f"cannot open video file {source!r} (unsupported format?)")
        self.kind = "video"

    def read(self) -> np.ndarray | None:
        """Return the next BGR frame, or None when a non-looping file source has ended."""
        if self._files:
            return self._read_image()
        assert self._capture is not None
        ok, frame = self._capture.read()
        if ok:
            return frame
        if self.kind == "video" and self.loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
            if ok:
                return frame
        if self.kind in ("device", "stream"):
            raise SourceError(f"camera {self.kind} {self.source!r} stopped delivering frames")
        return None

    def _read_image(self) -> np.ndarray | None:
        for _ in range(len(self._files)):
            if self._index >= len(self._files):
                if not self.loop:
                    return None
                self._index = 0
            path = self._files[self._index]
            self._index += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
            log.warning("skipping unreadable image %s", path)
        raise SourceError(f"none of the {len(self._files)} images of {self.source!r} is readable")

    def __iter__(self) -> Iterator[np.ndarray]:
        while (frame := self.read()) is not None:
            yield frame

    def close(self) -> None:
        """Release the device or file."""
        if self._capture is not None:
            self._capture.release()


def expected_kind(source: str) -> str:
    """What a source string names before it is opened: 'stream', 'device' or 'file'."""
    text = source.strip()
    if _URL.match(text):
        return "stream"
    if text.isdigit() or text.startswith("/dev/video"):
        return "device"
    return "file"


def _image_list(source: str) -> list[Path]:
    """Images named by a folder, a glob, a single image or a comma-separated list."""
    parts = [p.strip() for p in source.split(",") if p.strip()] if "," in source else [source]
    files: list[Path] = []
    for part in parts:
        path = Path(part)
        if path.is_dir():
            files += sorted(
                p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            )
        elif any(ch in part for ch in "*?["):
            files += sorted(
                Path(p) for p in glob.glob(part) if Path(p).suffix.lower() in IMAGE_EXTENSIONS
            )
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            if not path.is_file():
                raise SourceError(f"no such image: {part!r}")
            files.append(path)
        elif len(parts) > 1:
            raise SourceError(f"{part!r} in the list is not an image file")
    return [f for f in files if os.access(f, os.R_OK)]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed source is reopened (exponential back-off)."""

    attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 0:
            raise ValueError(f"attempts must be >= 0, got {self.attempts}")
        if not 0.0 < self.initial_delay <= self.max_delay:
            raise ValueError(
                f"need 0 < initial_delay <= max_delay, got {self.initial_delay}, {self.max_delay}"
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): doubling, capped."""
        return min(self.max_delay, self.initial_delay * 2.0 ** (attempt - 1))


class SourceState(enum.Enum):
    """Where a ``SupervisedSource`` stands."""

    RUNNING = "running"
    RETRYING = "retrying"
    ENDED = "ended"
    FAILED = "failed"


class SupervisedSource:
    """A ``FrameSource`` that is reopened with back-off after failures; never blocks to wait.

    ``poll()`` is called at the publish rate: it returns the next frame, or None while waiting
    for a retry, after the end of a file source (``ENDED``) or once every retry has failed
    (``FAILED``). ``state``, ``message`` and the counters say which, for diagnostics.
    """

    def __init__(
        self,
        source: str,
        *,
        loop: bool = False,
        width: int = 0,
        height: int = 0,
        policy: RetryPolicy | None = None,
        opener: Callable[[], FrameSource] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.policy = policy or RetryPolicy()
        self._open = opener or (
            lambda: FrameSource(source, loop=loop, width=width, height=height)
        )
        self._clock = clock
        self._current: FrameSource | None = None
        self.kind = expected_kind(source)
        self.frames = 0
        self.failures = 0  # consecutive failed (re)open attempts or reads
        self.reconnects = 0  # successful reopenings after a failure
        self.last_error = ""
        self.state = SourceState.RETRYING
        self._next_try = clock()
        self._try_open()

    @property
    def retry_in(self) -> float:
        """Seconds until the next (re)open attempt; 0 unless ``RETRYING``."""
        if self.state is not SourceState.RETRYING:
            return 0.0
        return max(0.0, self._next_try - self._clock())

    @property
    def message(self) -> str:
        """One line saying what the source is doing, for logs and /diagnostics."""
        if self.state is SourceState.RUNNING:
            return f"publishing {self.kind} {self.source!r} ({self.frames} frames)"
        if self.state is SourceState.ENDED:
            return f"source ended after {self.frames} frames"
        if self.state is SourceState.FAILED:
            return f"gave up after {self.failures} failed attempts: {self.last_error}"
        return (
            f"{self.last_error}; retry {self.failures} of {self.policy.attempts} "
            f"in {self.retry_in:.1f} s"
        )

    def poll(self) -> np.ndarray | None:
        """The next BGR frame, or None (retry pending, ended or failed: see ``state``)."""
        if self.state is SourceState.RETRYING and (
            self._clock() < self._next_try or not self._try_open()
        ):
            return None
        if self.state is not SourceState.RUNNING:
            return None
        assert self._current is not None
        try:
            frame = self._current.read()
        except SourceError as exc:
            self._close()
            self._fail(str(exc))
            return None
        if frame is None:
            self.state = SourceState.ENDED
            self._close()
            return None
        self.frames += 1
        self.failures = 0
        return frame

    def end(self) -> None:
        """Declare the source ended (e.g. a frame limit was reached) and release it."""
        self._close()
        self.state = SourceState.ENDED

    def close(self) -> None:
        """Release the device or file."""
        self._close()

    def _try_open(self) -> bool:
        try:
            self._current = self._open()
        except SourceError as exc:
            self._fail(str(exc))
            return False
        self.kind = self._current.kind
        if self.failures:
            self.reconnects += 1
            log.info("reopened %s %r after %d failed attempts", self.kind, self.source,
                     self.failures)
        else:
            log.debug("opened %s %r", self.kind, self.source)
        self.state = SourceState.RUNNING
        return True

    def _fail(self, error: str) -> None:
        first = self.failures == 0
        self.failures += 1
        self.last_error = error
        if self.failures > self.policy.attempts:
            self.state = SourceState.FAILED
            log.error("%s; giving up after %d attempts", error, self.failures)
            return
        delay = self.policy.delay(self.failures)
        self._next_try = self._clock() + delay
        self.state = SourceState.RETRYING
        if first:
            log.error("%s; retrying up to %d times with back-off (first in %.1f s)", error,
                      self.policy.attempts, delay)
        else:
            log.warning("%s; retry %d of %d in %.1f s", error, self.failures,
                        self.policy.attempts, delay)

    def _close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
