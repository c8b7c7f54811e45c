"""Bad and unusual inputs: converted when unambiguous, refused with a clear ValueError else."""

from __future__ import annotations

import numpy as np
import pytest

from visio_memoria_ros.core.types import Frame
from visio_memoria_ros.perception import (
    Perceiver,
    PerceiverConfig,
    cap_size,
    resize_max_side,
    to_rgb_uint8,
)


def test_rgb_uint8_passes_through_unchanged():
    img = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    out = to_rgb_uint8(img)
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 1)])
def test_grey_is_replicated_to_three_channels(shape):
    img = np.full(shape, 77, dtype=np.uint8)
    out = to_rgb_uint8(img)
    assert out.shape == (6, 7, 3)
    assert np.all(out == 77)


def test_rgba_drops_alpha():
    img = np.zeros((3, 3, 4), np.uint8)
    img[..., 0], img[..., 3] = 10, 255
    out = to_rgb_uint8(img)
    assert out.shape == (3, 3, 3) and np.all(out[..., 0] == 10) and out.flags.c_contiguous


def test_float_unit_range_is_scaled_and_float_255_clipped():
    np.testing.assert_array_equal(to_rgb_uint8(np.full((2, 2, 3), 1.0))[0, 0], [255] * 3)
    np.testing.assert_array_equal(to_rgb_uint8(np.full((2, 2, 3), 0.5))[0, 0], [128] * 3)
    np.testing.assert_array_equal(to_rgb_uint8(np.full((2, 2, 3), 300.0))[0, 0], [255] * 3)


def test_uint16_and_small_ints_are_converted():
    assert to_rgb_uint8(np.full((2, 2, 3), 65535, np.uint16))[0, 0, 0] == 255
    assert to_rgb_uint8(np.full((2, 2, 3), 200, np.int64))[0, 0, 0] == 200


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 0, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 2), np.uint8), "channels"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
        (np.zeros(5, np.uint8), "shape"),
        (np.zeros((4, 4, 3), bool), "dtype"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (np.full((4, 4, 3), 1000, np.int32), "outside 0..255"),
        (np.full((4, 4, 3), -1, np.int8), "outside 0..255"),
        (None, "None"),
    ],
)
def test_unconvertible_images_raise_value_error(image, match):
    with pytest.raises(ValueError, match=match):
        to_rgb_uint8(image)


def test_resize_max_side_scale_maps_back():
    img = np.zeros((480, 640, 3), np.uint8)
    small, scale = resize_max_side(img, 320)
    assert small.shape == (240, 320, 3) and scale == pytest.approx(0.5)
    same, one = resize_max_side(img, 0)
    assert same is img and one == 1.0
    capped, s = cap_size(np.zeros((100, 9000, 3), np.uint8), 4096)
    assert max(capped.shape[:2]) == 4096 and s == pytest.approx(4096 / 9000)


@pytest.fixture(scope="module")
def perceiver() -> Perceiver:
    return Perceiver(PerceiverConfig(max_input_side=1024))


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((5, 3, 3), np.uint8),
        np.zeros((11, 400, 3), np.uint8),
        np.full((48, 64), 128, np.uint8),
        np.zeros((48, 64, 4), np.uint8),
        np.random.default_rng(1).random((48, 64, 3)),
        np.zeros((48, 64, 3), np.uint16),
    ],
    ids=["1x1", "5x3", "thin", "grey", "rgba", "float", "uint16"],
)
def test_perceiver_survives_odd_inputs(perceiver, image):
    frame = perceiver.process(image)
    assert isinstance(frame, Frame)
    assert (frame.height, frame.width) == image.shape[:2]
    assert frame.faces == []


@pytest.mark.parametrize("image", [np.zeros((0, 0, 3), np.uint8), np.zeros((8, 8, 5), np.uint8)])
def test_perceiver_refuses_bad_inputs_before_torch(perceiver, image):
    with pytest.raises(ValueError):
        perceiver.process(image)


@pytest.mark.slow
def test_huge_image_is_capped_and_boxes_come_back_in_input_pixels(perceiver, asset_image_path):
    cv2 = pytest.importorskip("cv2")
    photo = cv2.cvtColor(cv2.imread(str(asset_image_path)), cv2.COLOR_BGR2RGB)
    big = cv2.resize(photo, (photo.shape[1] * 3, photo.shape[0] * 3))  # 3840 x 2160
    small_frame = Perceiver(PerceiverConfig()).process(photo)
    big_frame = perceiver.process(big)
    assert (big_frame.width, big_frame.height) == (big.shape[1], big.shape[0])
    assert len(big_frame.faces) == len(small_frame.faces) >= 1
    for a, b in zip(
        sorted(small_frame.faces, key=lambda f: f.bbox[0]),
        sorted(big_frame.faces, key=lambda f: f.bbox[0]),
        strict=True,
    ):
        np.testing.assert_allclose(b.bbox / 3.0, a.bbox, atol=12)
        assert b.crop is not None and b.crop.shape == (192, 192, 3)
        xs = b.landmarks[:, 0]
        assert np.all(xs >= b.bbox[0] - 5) and np.all(xs <= b.bbox[2] + 5)
