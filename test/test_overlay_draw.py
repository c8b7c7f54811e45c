"""draw_overlay puts boxes and labels where the data says, and nothing anywhere else."""

from __future__ import annotations

import numpy as np
import pytest

from visio_memoria_ros.config import NODE_PARAMS, validate_value
from visio_memoria_ros.core.types import IdentityDecision, PersonObservation, Status
from visio_memoria_ros.overlay import OverlayOptions, draw_overlay, identity_label, tag_size

H, W = 240, 320
OPTS = OverlayOptions()


@pytest.fixture
def image() -> np.ndarray:
    """A textured background, so any stray drawing shows up as a changed pixel."""
    rng = np.random.default_rng(7)
    return rng.integers(20, 100, (H, W, 3), dtype=np.uint8)


def _identity(box, status=Status.KNOWN, track_id=1, **kw) -> IdentityDecision:
    return IdentityDecision(
        track_id=track_id, bbox=np.asarray(box, np.float32), status=status, **kw
    )


def _changed(out: np.ndarray, image: np.ndarray) -> np.ndarray:
    return np.any(out != image, axis=2)


def _allowed(shape, *rects) -> np.ndarray:
    """Mask of the inclusive rectangles (x1, y1, x2, y2), clipped to the image."""
    mask = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in rects:
        mask[max(0, y1) : max(0, y2 + 1), max(0, x1) : max(0, x2 + 1)] = True
    return mask


def test_known_face_box_and_label_are_where_the_data_says(image: np.ndarray):
    x1, y1, x2, y2 = 100, 80, 160, 150
    ident = _identity([x1, y1, x2, y2], name="Alice", similarity=0.82, person_id=3)
    out = draw_overlay(image, [ident])
    green = np.array(OPTS.known_color, np.uint8)
    mid_y, mid_x = (y1 + y2) // 2, (x1 + x2) // 2
    for y, x in ((mid_y, x1), (mid_y, x2), (y2, mid_x), (y1 + 1, mid_x)):
        np.testing.assert_array_equal(out[y, x], green, err_msg=f"edge pixel {(x, y)}")
    # The label tag sits on the box top: its left column is the fill colour.
    label = identity_label(ident)
    assert label == "Alice 0.82 t1"
    w, h = tag_size(label, OPTS.font_scale)
    t = OPTS.face_thickness
    tag_top, tag_left = y1 - t // 2 - h, x1 - t // 2
    np.testing.assert_array_equal(out[tag_top : tag_top + h, tag_left], np.tile(green, (h, 1)))
    tag = out[tag_top : tag_top + h, tag_left : tag_left + w]
    assert np.mean(np.all(tag == green, axis=2)) > 0.5  # mostly fill, some text
    assert np.any(np.all(tag < 60, axis=2))  # dark text on the light green fill
    # Inside the box (below the tag) nothing changed; nothing outside box + tag changed.
    np.testing.assert_array_equal(
        out[y1 + t : y2 - t + 1, x1 + t : x2 - t + 1],
        image[y1 + t : y2 - t + 1, x1 + t : x2 - t + 1],
    )
    allowed = _allowed(
        image.shape,
        (x1 - t, y1 - t, x2 + t, y2 + t),
        (tag_left, tag_top, tag_left + w - 1, tag_top + h - 1),
    )
    changed = _changed(out, image)
    assert changed.any() and not np.any(changed & ~allowed)


@pytest.mark.parametrize(
    ("status", "attr"),
    [
        (Status.KNOWN, "known_color"),
        (Status.UNCERTAIN, "uncertain_color"),
        (Status.UNKNOWN, "unknown_color"),
        (Status.UNDECIDED, "uncertain_color"),  # neither known nor unknown
    ],
)
def test_box_colour_follows_status(image: np.ndarray, status: Status, attr: str):
    out = draw_overlay(image, [_identity([50, 60, 120, 200], status=status, unknown_cluster_id=4)])
    np.testing.assert_array_equal(out[130, 50], np.array(getattr(OPTS, attr), np.uint8))


def test_labels_of_each_status():
    box = [0, 0, 10, 10]
    assert identity_label(_identity(box, name="Bob", similarity=0.5)) == "Bob 0.50 t1"
    assert identity_label(_identity(box, name="Bob"), show_track_id=False) == "Bob"
    assert identity_label(_identity(box, Status.UNKNOWN, 5, unknown_cluster_id=12)) == (
        "unknown #12 t5"
    )
    assert identity_label(_identity(box, Status.UNKNOWN, 5)) == "unknown t5"
    assert identity_label(_identity(box, Status.UNCERTAIN, 9)) == "? t9"
    assert identity_label(_identity(box, Status.UNCERTAIN, -1)) == "?"
    assert identity_label(_identity(box, Status.UNDECIDED, 9, name="Bob", person_id=4,
                                    unknown_cluster_id=12)) == "? t9"
    assert identity_label(_identity(box, person_id=4), show_similarity=False) == "person 4 t1"


def test_activity_below_the_face_and_person_box_thinner(image: np.ndarray):
    face = _identity([100, 50, 150, 110], track_id=3, person_track_id=-1, name="Al")
    out = draw_overlay(image, [face], {("face", 3): ("waving", 0.9)})
    _w, h = tag_size("waving 0.90", OPTS.font_scale)
    t = OPTS.face_thickness
    green = np.array(OPTS.known_color, np.uint8)
    top = 110 + t // 2 + 1
    np.testing.assert_array_equal(out[top : top + h, 100 - t // 2], np.tile(green, (h, 1)))

    person = PersonObservation(np.array([40, 30, 220, 230], np.float32), 0.9, "yolo", track_id=8)
    blue = np.array(OPTS.person_color, np.uint8)
    out = draw_overlay(image, [], None, [person])
    np.testing.assert_array_equal(out[100, 40], blue)
    np.testing.assert_array_equal(out[100, 41], image[100, 41])  # 1 px line
    np.testing.assert_array_equal(out[100, 39], image[100, 39])
    changed = _changed(out, image)
    assert not np.any(changed & ~_allowed(image.shape, (40, 30, 220, 230)))
    assert not np.any(changed[31:230, 41:220])  # no activity known: nothing inside


def test_person_activity_is_shown_once_on_the_person_box(image: np.ndarray):
    person = PersonObservation(
        np.array([40, 30, 220, 230], np.float32), 0.9, "yolo", track_id=8, face_track_id=3
    )
    face = _identity([100, 50, 150, 110], track_id=3, person_track_id=8, name="Al")
    activities = {8: ("walking", 0.74)}  # plain ids: a person track id
    out = draw_overlay(image, [face], activities, [person])
    _w, h = tag_size("walking 0.74", OPTS.font_scale)
    blue = np.array(OPTS.person_color, np.uint8)
    # The tag sits inside the person box's bottom-left corner.
    left, bottom = 41, 230 - 1
    np.testing.assert_array_equal(out[bottom - h : bottom, left], np.tile(blue, (h, 1)))
    # Not repeated below the face.
    t = OPTS.face_thickness
    below = out[110 + t : 110 + t + h, 99:160]
    np.testing.assert_array_equal(below, image[110 + t : 110 + t + h, 99:160])
    hidden = draw_overlay(image, [face], activities, [person], OverlayOptions(show_persons=False))
    green = np.array(OPTS.known_color, np.uint8)
    np.testing.assert_array_equal(hidden[110 + t // 2 + 1, 100 - t // 2], green)  # under the face


def test_label_moves_inside_when_the_box_touches_the_top(image: np.ndarray):
    out = draw_overlay(image, [_identity([200, 0, 260, 60], Status.UNKNOWN, unknown_cluster_id=2)])
    red = np.array(OPTS.unknown_color, np.uint8)
    w, h = tag_size("unknown #2 t1", OPTS.font_scale)
    left = min(199, W - w)
    np.testing.assert_array_equal(out[0:h, left], np.tile(red, (h, 1)))
    assert left + w <= W


def test_boxes_partly_or_wholly_outside_the_image(image: np.ndarray):
    amber = np.array(OPTS.uncertain_color, np.uint8)
    out = draw_overlay(image, [_identity([-40, 150, 60, 300], Status.UNCERTAIN)])
    np.testing.assert_array_equal(out[200, 60], amber)  # right edge, visible part
    np.testing.assert_array_equal(out[150, 30], amber)  # top edge
    t = OPTS.face_thickness
    changed = _changed(out, image)
    _w, h = tag_size("? t1", OPTS.font_scale)
    assert not np.any(changed & ~_allowed(image.shape, (0, 150 - t - h, 60 + t, H - 1)))
    assert not changed[:, 61 + t :].any()

    far = [
        _identity([400, 10, 500, 80]),
        _identity([-90, -90, -10, -10]),
        _identity([np.nan, 0, 10, 10]),
    ]
    np.testing.assert_array_equal(draw_overlay(image, far), image)
    huge = draw_overlay(image, [_identity([-1e12, -1e12, 1e12, 1e12])])
    assert huge.shape == image.shape  # no overflow; the edges are outside, the tag inside


def test_empty_inputs_return_an_unmodified_copy(image: np.ndarray):
    before = image.copy()
    out = draw_overlay(image, [], {}, [])
    np.testing.assert_array_equal(out, image)
    assert out is not image
    draw_overlay(image, [_identity([10, 10, 50, 50])], None, None)
    np.testing.assert_array_equal(image, before)  # the input is never drawn on


def test_unicode_names_are_transliterated_or_replaced(image: np.ndarray):
    def drawn(name: str) -> np.ndarray:
        return draw_overlay(image, [_identity([100, 80, 160, 150], name=name, similarity=0.7)])

    np.testing.assert_array_equal(drawn("José Ñúñez"), drawn("Jose Nunez"))
    np.testing.assert_array_equal(drawn("李明"), drawn("??"))
    np.testing.assert_array_equal(drawn("Søren Ødegård"), drawn("Soren Odegard"))


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        draw_overlay(np.zeros((10, 10, 3), np.float32), [])
    with pytest.raises(ValueError, match="uint8"):
        draw_overlay(np.zeros((10, 10), np.uint8), [])
    with pytest.raises(ValueError, match="numpy"):
        draw_overlay([[0]], [])  # type: ignore[arg-type]


def test_options_from_node_parameters(image: np.ndarray):
    specs = NODE_PARAMS["overlay_node"]
    params = {s.name: s.default for s in specs}
    for spec in specs:
        assert spec.description.strip()
        assert validate_value(spec, spec.default) is None, spec.name
    assert OverlayOptions.from_params(params) == OPTS
    opts = OverlayOptions.from_params({**params, "face_thickness": 4, "show_track_ids": False})
    assert opts.face_thickness == 4 and not opts.show_track_ids
    out = draw_overlay(image, [_identity([100, 80, 160, 150])], options=opts)
    green = np.array(OPTS.known_color, np.uint8)
    assert np.all(out[115, 98:103] == green)  # a thick line around x=100 (-2..+2)
    with pytest.raises(ValueError):
        OverlayOptions(face_thickness=0)
