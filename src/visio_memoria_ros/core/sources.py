"""Image sources for the camera node and the CLI: a device, a video file or a list of images."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class SourceError(RuntimeError):
    """The configured source cannot be opened or read; the message says which and why."""


class FrameSource:
    """Yields BGR uint8 frames from a device, a video file, a folder, a glob or a file list.

    ``read()`` returns the next frame, or None at the end (files only; ``loop`` restarts them).
    """

    def __init__(self, source: str, *, loop: bool = False, width: int = 0, height: int = 0):
        self.source = source.strip()
        self.loop = loop
        self._capture: cv2.VideoCapture | None = None
        self._files: list[Path] = []
        self._index = 0
        if not self.source:
            raise SourceError("empty source")
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
        if self.kind == "device":
            raise SourceError(f"camera device {self.source!r} stopped delivering frames")
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
