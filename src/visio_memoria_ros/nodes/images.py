"""sensor_msgs/Image and CompressedImage -> numpy at the node boundary, and numpy -> Image.

Raw encodings accepted: bgr8, rgb8, mono8, bgra8, rgba8, mono16 (scaled to 8 bit by 255/65535,
as cv_bridge does) and the YUV formats of usb_cam / v4l2 drivers: yuv422_yuy2 (= yuyv, YUYV),
uyvy (= yuv422, UYVY) and nv21. CompressedImage (the image_transport ``compressed`` transport):
jpeg and png, with or without image_transport's ``"bgr8; jpeg compressed bgr8"`` form of the
format string; compressedDepth is refused. Everything else is refused with the reason.
The pipeline works on RGB uint8 (H, W, 3) arrays.

cv_bridge is used when it imports for the formats every cv_bridge release knows (the five
8-bit ones and mono16); the YUV formats always go through OpenCV's own ``cv2.cvtColor`` codes
(``COLOR_YUV2RGB_YUY2``, ``_UYVY``, ``_NV21``), which is what cv_bridge calls where it knows
them, because older cv_bridge releases do not know ``yuyv``, ``uyvy`` or ``nv21``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

try:  # cv_bridge exists on real ROS installs; not installable from PyPI for ROS 2.
    from cv_bridge import CvBridge as _CvBridge
except ImportError:  # pragma: no cover - depends on the machine
    _CvBridge = None

#: encoding -> (bytes per pixel of the first plane, how the numpy path converts it)
_RAW = {
    "bgr8": (3, "bgr"),
    "rgb8": (3, "rgb"),
    "mono8": (1, "mono"),
    "bgra8": (4, "bgra"),
    "rgba8": (4, "rgba"),
    "mono16": (2, "mono16"),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": (2, cv2.COLOR_YUV2RGB_YUY2),
    "uyvy": (2, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422": (2, cv2.COLOR_YUV2RGB_UYVY),
    "nv21": (1, cv2.COLOR_YUV2RGB_NV21),
}
SUPPORTED_ENCODINGS = tuple(_RAW)
#: Encodings handed to cv_bridge when it is installed (every release converts these).
_BRIDGE_ENCODINGS = frozenset({"bgr8", "rgb8", "mono8", "bgra8", "rgba8", "mono16"})
#: CompressedImage payload formats (the part after ``;`` in image_transport's format string).
SUPPORTED_COMPRESSED = ("jpeg", "png")
#: Refuse images above this many pixels (a 8K frame is 33 Mpx); protects memory and latency.
MAX_PIXELS = 40_000_000
#: Refuse compressed payloads above this size [bytes] before decoding them.
MAX_COMPRESSED_BYTES = 64 * 1024 * 1024

#: Values of the ``image_transport`` parameter: which topic and message type carry the images.
IMAGE_TRANSPORTS = ("raw", "compressed")
#: Values of the ``*_reliability`` QoS parameters.
RELIABILITIES = ("best_effort", "reliable")


class ImageError(ValueError):
    """An image message that cannot be converted; the message says why."""


class ImageConverter:
    """Converts images; holds one CvBridge for the node's lifetime when cv_bridge exists."""

    def __init__(self) -> None:
        self._bridge = _CvBridge() if _CvBridge is not None else None

    def to_rgb(self, msg: Image | CompressedImage) -> np.ndarray:
        """Return the image as an RGB uint8 (H, W, 3) array; raises ImageError on bad input."""
        if isinstance(msg, CompressedImage):
            return compressed_to_rgb(msg)
        enc = _check(msg)
        if self._bridge is not None and enc in _BRIDGE_ENCODINGS:
            return np.ascontiguousarray(self._bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        return _to_rgb_numpy(msg, enc)

    def from_rgb(self, image: np.ndarray, header=None, encoding: str = "rgb8") -> Image:
        """Return an Image message (rgb8 or bgr8) for an RGB uint8 array."""
        return rgb_to_msg(image, header=header, encoding=encoding)


def _check(msg: Image) -> str:
    """Validate sizes against the encoding; return the normalised encoding."""
    enc = msg.encoding.lower()
    if enc not in _RAW:
        raise ImageError(
            f"unsupported encoding {msg.encoding!r}; accepted: {', '.join(SUPPORTED_ENCODINGS)}"
            f" (or CompressedImage {'/'.join(SUPPORTED_COMPRESSED)} with image_transport "
            "compressed)"
        )
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageError(f"empty image ({w}x{h})")
    if h * w > MAX_PIXELS:
        raise ImageError(f"image of {w}x{h} exceeds the {MAX_PIXELS} pixel limit")
    pixel_bytes = _RAW[enc][0]
    if enc in ("yuv422_yuy2", "yuyv", "uyvy", "yuv422") and w % 2:
        raise ImageError(f"{enc} needs an even width (2 pixels share U and V), got {w}")
    rows = h
    if enc == "nv21":
        if w % 2 or h % 2:
            raise ImageError(f"nv21 needs an even width and height, got {w}x{h}")
        rows = h + h // 2  # the Y plane, then interleaved V/U at half resolution
    if step < w * pixel_bytes:
        raise ImageError(f"step {step} is smaller than width*bytes per pixel = {w * pixel_bytes}")
    if len(msg.data) < step * rows:
        raise ImageError(
            f"truncated image: {len(msg.data)} bytes for {rows} rows of {step} bytes ({enc})"
        )
    return enc


def _to_rgb_numpy(msg: Image, enc: str) -> np.ndarray:
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    pixel_bytes, how = _RAW[enc]
    rows = h + h // 2 if enc == "nv21" else h
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=step * rows)
    plane = buf.reshape(rows, step)[:, : w * pixel_bytes]
    if not isinstance(how, str):  # a cv2.cvtColor code: YUYV/UYVY (2 bytes), NV21 (1 byte)
        src = plane.reshape(rows, w, 2) if pixel_bytes == 2 else np.ascontiguousarray(plane)
        return cv2.cvtColor(np.ascontiguousarray(src), how)
    if how == "mono16":
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        mono = np.ascontiguousarray(plane).view(dtype).reshape(h, w).astype(np.float32)
        mono8 = np.clip(np.rint(mono * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(mono8[:, :, None], 3, axis=2))
    img = plane.reshape(h, w, pixel_bytes)
    if how == "rgb":
        out = img
    elif how == "bgr":
        out = img[:, :, ::-1]
    elif how == "mono":
        out = np.repeat(img, 3, axis=2)
    elif how == "rgba":
        out = img[:, :, :3]
    else:  # bgra
        out = img[:, :, 2::-1]
    return np.ascontiguousarray(out)


def compressed_format(fmt: str) -> str:
    """The payload format ('jpeg' or 'png') of a CompressedImage ``format`` string.

    Accepts the plain names drivers write (``jpeg``, ``jpg``, ``png``) and image_transport's
    ``"<encoding>; <jpeg|png> compressed <encoding>"``; raises ImageError for anything else.
    """
    text = fmt.strip().lower()
    accepted = (
        f"accepted: {', '.join(SUPPORTED_COMPRESSED)} or image_transport's "
        "'<encoding>; jpeg|png compressed <encoding>'"
    )
    if not text:
        raise ImageError(f"CompressedImage with an empty format; {accepted}")
    if "compresseddepth" in text:
        raise ImageError(
            f"CompressedImage format {fmt!r} is the compressedDepth transport (depth images); "
            f"{accepted}"
        )
    payload = text.split(";", 1)[1].strip() if ";" in text else text
    name = payload.split()[0] if payload else ""
    name = "jpeg" if name == "jpg" else name
    if name not in SUPPORTED_COMPRESSED:
        raise ImageError(f"unsupported CompressedImage format {fmt!r}; {accepted}")
    return name


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a jpeg/png CompressedImage to RGB uint8 (H, W, 3); ImageError on bad data."""
    name = compressed_format(msg.format)
    size = len(msg.data)
    if size == 0:
        raise ImageError("CompressedImage with no data")
    if size > MAX_COMPRESSED_BYTES:
        raise ImageError(f"CompressedImage of {size} bytes exceeds {MAX_COMPRESSED_BYTES}")
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageError(f"corrupt {name} CompressedImage: {exc}") from exc
    if bgr is None or bgr.size == 0:
        raise ImageError(f"corrupt {name} CompressedImage: {size} bytes OpenCV cannot decode")
    h, w = bgr.shape[:2]
    if h * w > MAX_PIXELS:
        raise ImageError(f"image of {w}x{h} exceeds the {MAX_PIXELS} pixel limit")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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


def image_qos(reliability: str, depth: int = 5) -> QoSProfile:
    """Keep-last image QoS: sensor-data (best effort) or reliable, volatile in both cases."""
    if reliability not in RELIABILITIES:
        raise ValueError(f"reliability {reliability!r} is not one of {list(RELIABILITIES)}")
    if reliability == "best_effort":
        return qos_profile_sensor_data
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE
    )


def subscribe_image(
    node: Node, topic: str, callback: Any, *, transport: str, reliability: str
) -> Any:
    """Subscribe to camera images the way image_transport does.

    ``raw``: sensor_msgs/Image on ``topic``; ``compressed``: sensor_msgs/CompressedImage on
    ``<topic>/compressed``, where ``topic`` is first resolved with the node's namespace and
    remappings (so ``-r image_raw:=/camera/image`` reads ``/camera/image/compressed``).
    """
    qos = image_qos(reliability)
    if transport == "raw":
        return node.create_subscription(Image, topic, callback, qos)
    if transport == "compressed":
        base = node.resolve_topic_name(topic)
        return node.create_subscription(CompressedImage, f"{base}/compressed", callback, qos)
    raise ValueError(f"image_transport {transport!r} is not one of {list(IMAGE_TRANSPORTS)}")
