"""sensor_msgs/Image <-> numpy at the node boundary: cv_bridge when it imports, else numpy.

Accepted encodings: bgr8, rgb8, mono8, bgra8, rgba8. Everything else is refused with a reason.
The pipeline works on RGB uint8 (H, W, 3) arrays.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

try:  # cv_bridge exists on real ROS installs; not installable from PyPI for ROS 2.
    from cv_bridge import CvBridge as _CvBridge
except ImportError:  # pragma: no cover - depends on the machine
    _CvBridge = None

_CHANNELS = {"bgr8": 3, "rgb8": 3, "mono8": 1, "bgra8": 4, "rgba8": 4}
SUPPORTED_ENCODINGS = tuple(_CHANNELS)
#: Refuse images above this many pixels (a 8K frame is 33 Mpx); protects memory and latency.
MAX_PIXELS = 40_000_000


class ImageError(ValueError):
    """An image message that cannot be converted; the message says why."""


class ImageConverter:
    """Converts images; holds one CvBridge for the node's lifetime when cv_bridge exists."""

    def __init__(self) -> None:
        self._bridge = _CvBridge() if _CvBridge is not None else None

    def to_rgb(self, msg: Image) -> np.ndarray:
        """Return the image as an RGB uint8 (H, W, 3) array; raises ImageError on bad input."""
        channels = _check(msg)
        if self._bridge is not None:
            return np.ascontiguousarray(self._bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        return _to_rgb_numpy(msg, channels)

    def from_rgb(self, image: np.ndarray, header=None, encoding: str = "rgb8") -> Image:
        """Return an Image message (rgb8 or bgr8) for an RGB uint8 array."""
        return rgb_to_msg(image, header=header, encoding=encoding)


def _check(msg: Image) -> int:
    enc = msg.encoding.lower()
    if enc not in _CHANNELS:
        raise ImageError(
            f"unsupported encoding {msg.encoding!r}; accepted: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageError(f"empty image ({w}x{h})")
    if h * w > MAX_PIXELS:
        raise ImageError(f"image of {w}x{h} exceeds the {MAX_PIXELS} pixel limit")
    channels = _CHANNELS[enc]
    if step < w * channels:
        raise ImageError(f"step {step} is smaller than width*channels = {w * channels}")
    if len(msg.data) < step * h:
        raise ImageError(f"truncated image: {len(msg.data)} bytes for {h} rows of {step} bytes")
    return channels


def _to_rgb_numpy(msg: Image, channels: int) -> np.ndarray:
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=step * h)
    rows = buf.reshape(h, step)[:, : w * channels]
    img = rows.reshape(h, w, channels)
    enc = msg.encoding.lower()
    if enc == "rgb8":
        out = img
    elif enc == "bgr8":
        out = img[:, :, ::-1]
    elif enc == "mono8":
        out = np.repeat(img, 3, axis=2)
    elif enc == "rgba8":
        out = img[:, :, :3]
    else:  # bgra8
        out = img[:, :, 2::-1]
    return np.ascontiguousarray(out)


def rgb_to_msg(image: np.ndarray, header=None, encoding: str = "rgb8") -> Image:
    """Return an Image message for an RGB uint8 (H, W, 3) array, as rgb8 or bgr8."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"expected an RGB uint8 (H, W, 3) array, got {arr.dtype} {arr.shape}")
    if encoding == "bgr8":
        arr = arr[:, :, ::-1]
    elif encoding != "rgb8":
        raise ImageError(f"can only publish rgb8 or bgr8, not {encoding!r}")
    arr = np.ascontiguousarray(arr)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * 3)
    msg.data = arr.tobytes()
    return msg


def empty_image() -> Image:
    """An Image with no pixels, used where a message field's crop has been dropped."""
    return Image()
