"""A network camera for tests: an MJPEG-over-HTTP stream on 127.0.0.1 that can be unplugged.

``MjpegServer(port).start()`` serves ``http://127.0.0.1:<port>/stream.mjpg`` (the format of
cheap IP cameras and ``mjpg-streamer``); ``stop()`` closes the listening socket and every open
stream at once, as pulling the camera's cable would; ``start()`` again plugs it back on the same
port. Frame ``i`` is a uniform grey of value ``(10 * i) % 250``.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler

import cv2
import numpy as np

BOUNDARY = b"frame"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class MjpegServer:
    """An MJPEG stream at ``fps`` frames per second that can be stopped and started again."""

    def __init__(self, port: int, *, fps: float = 20.0, size: tuple[int, int] = (64, 48)):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/stream.mjpg"
        self._fps = fps
        self._size = size
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._live = threading.Event()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.frames_sent = 0

    def start(self) -> MjpegServer:
        """Listen and stream to every client until ``stop``."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner._connections.append(self.connection)
                self.send_response(200)
                self.send_header(
                    "Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"
                )
                self.end_headers()
                w, h = owner._size
                try:
                    while owner._live.is_set():
                        value = (10 * owner.frames_sent) % 250
                        ok, jpg = cv2.imencode(".jpg", np.full((h, w, 3), value, np.uint8))
                        assert ok
                        self.wfile.write(
                            b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: " + str(len(jpg)).encode() + b"\r\n\r\n"
                            + jpg.tobytes() + b"\r\n"
                        )
                        owner.frames_sent += 1
                        time.sleep(1.0 / owner._fps)
                except OSError:
                    pass  # the client went away, or stop() closed the socket

            def log_message(self, *args: object) -> None:
                pass

        self._live.set()
        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open stream."""
        self._live.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._connections.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
