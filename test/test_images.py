"""Image messages -> RGB: every accepted encoding against a known picture; bad data refused.

Each raw encoding is produced from a known RGB picture the inverse way with OpenCV (e.g.
``COLOR_RGB2YUV_YUY2`` for yuyv) and must come back within a tolerance that a wrong channel
order or a wrong conversion code exceeds many times over (checked in the same test).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from visio_memoria_ros.nodes.images import (
    SUPPORTED_ENCODINGS,
    ImageConverter,
    ImageError,
    compressed_format,
    compressed_to_rgb,
    image_qos,
)

H, W = 48, 64
#: Mean absolute error allowed after a lossy (chroma-subsampled) round trip [levels of 255].
MEAN_TOL = 3.0


def picture() -> np.ndarray:
    """8x8 blocks of saturated and mixed colours (chroma subsampling keeps block interiors)."""
    colours = np.array(
        [[230, 30, 30], [30, 200, 40], [20, 40, 220], [240, 220, 30],
         [200, 40, 200], [30, 210, 210], [128, 128, 128], [250, 250, 250]],
        np.uint8,
    )
    idx = (np.arange(H)[:, None] // 8 + np.arange(W)[None, :] // 8) % len(colours)
    return colours[idx]


def raw(data: np.ndarray | bytes, encoding: str, w: int = W, h: int = H, step: int = 0,
        big_endian: bool = False) -> Image:
    buf = data.tobytes() if isinstance(data, np.ndarray) else data
    return Image(height=h, width=w, encoding=encoding, is_bigendian=int(big_endian),
                 step=step or len(buf) // (h * 3 // 2 if encoding == "nv21" else h), data=buf)


def yuyv(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2)


def uyvy(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY)


def nv21(rgb: np.ndarray) -> np.ndarray:
    """NV21 (Y plane, then V/U interleaved) from OpenCV's planar I420 (Y, U, V)."""
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    y, quarter = H * W, H * W // 4
    u, v = i420[y:y + quarter], i420[y + quarter:]
    vu = np.stack([v, u], axis=1).reshape(-1)
    return np.concatenate([i420[:y], vu]).reshape(H * 3 // 2, W)


ENCODED = {
    "rgb8": lambda rgb: rgb,
    "bgr8": lambda rgb: rgb[:, :, ::-1],
    "rgba8": lambda rgb: np.dstack([rgb, np.full((H, W), 255, np.uint8)]),
    "bgra8": lambda rgb: np.dstack([rgb[:, :, ::-1], np.full((H, W), 7, np.uint8)]),
    "yuv422_yuy2": yuyv,
    "yuyv": yuyv,
    "uyvy": uyvy,
    "yuv422": uyvy,
    "nv21": nv21,
}


def error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


@pytest.mark.parametrize("encoding", sorted(ENCODED))
def test_colour_encodings_come_back_as_the_picture(encoding):
    rgb = picture()
    out = ImageConverter().to_rgb(raw(ENCODED[encoding](rgb), encoding))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3) and out.flags.c_contiguous
    assert error(out, rgb) < MEAN_TOL, encoding
    # The tolerance separates right from wrong: swapped channels are far outside it.
    assert error(out[:, :, ::-1], rgb) > 10 * MEAN_TOL


def test_wrong_yuv_codes_would_fail_the_tolerance():
    """YUYV read as UYVY, or NV21 read as NV12 (U and V swapped), is far from the picture."""
    rgb = picture()
    as_uyvy = cv2.cvtColor(yuyv(rgb).reshape(H, W, 2), cv2.COLOR_YUV2RGB_UYVY)
    as_nv12 = cv2.cvtColor(nv21(rgb), cv2.COLOR_YUV2RGB_NV12)
    assert error(as_uyvy, rgb) > 10 * MEAN_TOL
    assert error(as_nv12, rgb) > 10 * MEAN_TOL


def test_mono8_is_grey_on_three_channels():
    grey = cv2.cvtColor(picture(), cv2.COLOR_RGB2GRAY)
    out = ImageConverter().to_rgb(raw(grey, "mono8"))
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(out[:, :, 0], grey)
    np.testing.assert_array_equal(out[:, :, 2], grey)


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_is_scaled_to_8_bit_like_cv_bridge(big_endian):
    values = np.linspace(0, 65535, H * W).round().astype(np.uint16).reshape(H, W)
    data = values.astype(">u2" if big_endian else "<u2")
    out = ImageConverter().to_rgb(raw(data, "mono16", big_endian=big_endian))
    expected = np.rint(values * (255 / 65535)).astype(np.uint8)  # cv_bridge: 255/65535
    np.testing.assert_array_equal(out[:, :, 1], expected)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255


def test_padded_rows_are_cropped():
    rgb = picture()
    padded = np.zeros((H, W * 2 + 6), np.uint8)
    padded[:, : W * 2] = yuyv(rgb).reshape(H, W * 2)
    out = ImageConverter().to_rgb(raw(padded, "yuyv", step=W * 2 + 6))
    assert error(out, rgb) < MEAN_TOL


def test_every_supported_encoding_is_tested():
    assert set(SUPPORTED_ENCODINGS) == set(ENCODED) | {"mono8", "mono16"}


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (raw(np.zeros((H, W), np.float32), "32FC1"), "unsupported encoding '32FC1'; accepted: "),
        (raw(np.zeros(10, np.uint8), "bayer_rggb8", step=W), "unsupported encoding"),
        (raw(yuyv(picture()).tobytes()[:-W], "yuyv", step=W * 2), "truncated image"),
        (raw(nv21(picture()).tobytes()[: H * W], "nv21", step=W), "truncated image"),
        (raw(np.zeros((H, W + 1, 2), np.uint8), "uyvy", w=W + 1), "even width"),
        (raw(np.zeros((H + 1) * 3 // 2 * W, np.uint8), "nv21", h=H + 1, step=W),
         "even width and height"),
        (raw(np.zeros((H, W), np.uint16), "mono16", step=W), "step"),
        (raw(b"", "mono16", w=0, h=1, step=1), "empty image"),
    ],
)
def test_malformed_raw_images_are_refused_with_the_reason(msg, match):
    with pytest.raises(ImageError, match=match):
        ImageConverter().to_rgb(msg)


def test_the_refusal_lists_the_accepted_encodings():
    with pytest.raises(ImageError) as info:
        ImageConverter().to_rgb(raw(np.zeros((H, W, 3), np.uint8), "hsv8"))
    for enc in ("bgr8", "yuv422_yuy2", "uyvy", "nv21", "mono16"):
        assert enc in str(info.value)


def compressed(rgb: np.ndarray, ext: str, fmt: str) -> CompressedImage:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return CompressedImage(format=fmt, data=buf.tobytes())


@pytest.mark.parametrize(
    ("ext", "fmt", "tol"),
    [
        (".jpg", "jpeg", 15.0),
        (".jpg", "bgr8; jpeg compressed bgr8", 15.0),
        (".jpg", "rgb8; jpeg compressed bgr8", 15.0),
        (".png", "png", 0.0),
        (".png", "bgr8; png compressed bgr8", 0.0),
    ],
)
def test_compressed_images_decode_to_the_picture(ext, fmt, tol):
    rgb = picture()
    out = ImageConverter().to_rgb(compressed(rgb, ext, fmt))
    assert out.shape == (H, W, 3) and error(out, rgb) <= tol
    assert error(out[:, :, ::-1], rgb) > 4 * max(tol, 10)  # JPEG loss: 11; swapped: 68


@pytest.mark.parametrize(
    ("fmt", "match"),
    [
        ("", "empty format"),
        ("16UC1; compressedDepth png", "compressedDepth"),
        ("bgr8; tiff compressed bgr8", "unsupported CompressedImage format"),
        ("h264", "unsupported CompressedImage format"),
    ],
)
def test_unsupported_compressed_formats_are_refused(fmt, match):
    with pytest.raises(ImageError, match=match):
        compressed_format(fmt)


def test_corrupt_or_empty_compressed_payloads_are_refused():
    good = compressed(picture(), ".jpg", "jpeg")
    for data, match in [
        (b"", "no data"),
        (b"\x00" * 100, "corrupt jpeg"),
        (bytes(good.data)[:20], "corrupt jpeg"),
        (b"not a png at all", "corrupt png"),
    ]:
        msg = CompressedImage(format="png" if b"png" in data else "jpeg", data=data)
        with pytest.raises(ImageError, match=match):
            compressed_to_rgb(msg)


def test_image_qos_choices():
    assert image_qos("best_effort").reliability.name == "BEST_EFFORT"
    reliable = image_qos("reliable")
    assert reliable.reliability.name == "RELIABLE" and reliable.durability.name == "VOLATILE"
    with pytest.raises(ValueError, match="reliability"):
        image_qos("sometimes")
