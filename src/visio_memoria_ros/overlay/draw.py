"""Draw identities, activities and person boxes onto an RGB image (a copy; the input is kept).

Layout: person boxes thin (``person_thickness``) in ``person_color``, with their activity in a
filled tag inside the box's bottom-left corner; face boxes (``face_thickness``) coloured by
status (known green, uncertain amber, unknown red) with the identity label in a filled tag
just above the box (inside the box top when there is no room above) and, when no person box
already shows it, the activity in a tag just below the box (inside its bottom when there is no
room below). Tags are shifted horizontally to stay inside the image. Boxes partly outside the
image are drawn clipped; boxes entirely outside or with non-finite corners are skipped. Text is
drawn through ``ascii_text`` (OpenCV fonts are ASCII only).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..core.types import NO_TRACK, IdentityDecision, PersonObservation, Status
from .text import (
    ActivityKey,
    ActivityValue,
    activity_text,
    ascii_text,
    identity_label,
    lookup_activity,
)

logger = logging.getLogger(__name__)

Color = tuple[int, int, int]
FONT = cv2.FONT_HERSHEY_SIMPLEX
_PAD = 2


@dataclass(frozen=True)
class OverlayOptions:
    """How the overlay looks; colours are RGB."""

    known_color: Color = (0, 200, 0)
    uncertain_color: Color = (255, 176, 0)
    unknown_color: Color = (230, 0, 0)
    person_color: Color = (0, 160, 255)
    face_thickness: int = 2
    person_thickness: int = 1
    font_scale: float = 0.5
    show_similarity: bool = True
    show_track_ids: bool = True
    show_activity: bool = True
    show_persons: bool = True

    def __post_init__(self) -> None:
        if self.face_thickness < 1 or self.person_thickness < 1:
            raise ValueError("box thicknesses must be at least 1 px")
        if not (math.isfinite(self.font_scale) and self.font_scale > 0):
            raise ValueError(f"font_scale must be > 0, got {self.font_scale}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> OverlayOptions:
        """Build from overlay_node parameter values (``config.overlay.PARAMS`` names)."""
        names = (
            "face_thickness",
            "person_thickness",
            "font_scale",
            "show_similarity",
            "show_track_ids",
            "show_activity",
            "show_persons",
        )
        return cls(**{name: params[name] for name in names if name in params})

    def status_color(self, status: Status | int) -> Color:
        """The box colour of an identity status."""
        if status == Status.KNOWN:
            return self.known_color
        if status == Status.UNKNOWN:
            return self.unknown_color
        return self.uncertain_color


def _check_image(image: object) -> np.ndarray:
    """Return a writable copy of an RGB uint8 (H, W, 3) image, or raise ValueError."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(
            f"image must be RGB uint8 of shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    return np.ascontiguousarray(image).copy()


def _pixel_box(bbox: object, width: int, height: int, margin: int) -> tuple[int, ...] | None:
    """Integer corners limited to the image plus ``margin``; None when invisible or not finite."""
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        return None
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1 or x2 < 0 or y2 < 0 or x1 > width - 1 or y1 > height - 1:
        return None
    lo = np.array([-margin, -margin, -margin, -margin], dtype=np.float64)
    hi = np.array([width - 1 + margin, height - 1 + margin] * 2, dtype=np.float64)
    corners = np.rint(np.clip(box, lo, hi)).astype(np.int64)
    return tuple(int(v) for v in corners)


def text_color(background: Color) -> Color:
    """Black or white, whichever has the higher WCAG contrast on ``background`` (RGB)."""
    channels = np.asarray(background, dtype=np.float64) / 255.0
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    luminance = float(np.dot([0.2126, 0.7152, 0.0722], linear))
    # Contrast with black (L + 0.05) / 0.05 beats white 1.05 / (L + 0.05) above L ~ 0.179.
    return (0, 0, 0) if (luminance + 0.05) ** 2 > 0.05 * 1.05 else (255, 255, 255)


def tag_size(text: str, font_scale: float) -> tuple[int, int]:
    """Width and height [px] of a filled text tag."""
    (tw, th), baseline = cv2.getTextSize(ascii_text(text), FONT, font_scale, 1)
    return tw + 2 * _PAD, th + baseline + 2 * _PAD


def _draw_tag(
    image: np.ndarray,
    text: str,
    x: int,
    y_edge: int,
    *,
    color: Color,
    font_scale: float,
    above: bool,
) -> tuple[int, int, int, int]:
    """Draw a filled tag whose bottom (``above``) or top sits on ``y_edge``; return its corners.

    A tag that would leave the image on its side of the edge flips to the other side; it is
    then shifted to stay inside the image.
    """
    height, width = image.shape[:2]
    label = ascii_text(text)
    (tw, th), baseline = cv2.getTextSize(label, FONT, font_scale, 1)
    w, h = tw + 2 * _PAD, th + baseline + 2 * _PAD
    if above:
        top = y_edge - h if y_edge - h >= 0 else y_edge
    else:
        top = y_edge if y_edge + h <= height else y_edge - h
    top = max(0, min(top, height - h))
    left = max(0, min(x, width - w))
    cv2.rectangle(image, (left, top), (left + w - 1, top + h - 1), color, thickness=cv2.FILLED)
    cv2.putText(
        image,
        label,
        (left + _PAD, top + _PAD + th),
        FONT,
        font_scale,
        text_color(color),
        1,
        cv2.LINE_AA,
    )
    return left, top, left + w - 1, top + h - 1


def draw_overlay(
    image_rgb: np.ndarray,
    identities: Sequence[IdentityDecision],
    activities: Mapping[ActivityKey, ActivityValue] | None = None,
    persons: Sequence[PersonObservation] | None = None,
    options: OverlayOptions | None = None,
) -> np.ndarray:
    """Return a copy of ``image_rgb`` with face boxes, labels, activities and person boxes."""
    opts = options or OverlayOptions()
    out = _check_image(image_rgb)
    height, width = out.shape[:2]
    shown_persons: set[int] = set()
    shown_faces: set[int] = set()

    for person in (persons or ()) if opts.show_persons else ():
        box = _pixel_box(person.bbox, width, height, opts.person_thickness + 1)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        cv2.rectangle(out, (x1, y1), (x2, y2), opts.person_color, opts.person_thickness)
        found = lookup_activity(activities, person.track_id, person.face_track_id)
        if opts.show_activity and found is not None:
            _draw_tag(
                out,
                activity_text(*found),
                x1 + opts.person_thickness,
                y2 - opts.person_thickness,
                color=opts.person_color,
                font_scale=opts.font_scale,
                above=True,
            )
            if person.track_id != NO_TRACK:
                shown_persons.add(int(person.track_id))
            if person.face_track_id != NO_TRACK:
                shown_faces.add(int(person.face_track_id))

    for identity in identities:
        box = _pixel_box(identity.bbox, width, height, opts.face_thickness + 1)
        if box is None:
            logger.debug("face track %s has no visible box; not drawn", identity.track_id)
            continue
        x1, y1, x2, y2 = box
        color = opts.status_color(identity.status)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, opts.face_thickness)
        label = identity_label(
            identity, show_similarity=opts.show_similarity, show_track_id=opts.show_track_ids
        )
        half = opts.face_thickness // 2
        _draw_tag(
            out, label, x1 - half, y1 - half, color=color, font_scale=opts.font_scale, above=True
        )
        if not opts.show_activity:
            continue
        if identity.track_id in shown_faces or identity.person_track_id in shown_persons:
            continue
        found = lookup_activity(activities, identity.person_track_id, identity.track_id)
        if found is not None:
            _draw_tag(
                out,
                activity_text(*found),
                x1 - half,
                y2 + half + 1,
                color=color,
                font_scale=opts.font_scale,
                above=False,
            )
    return out
