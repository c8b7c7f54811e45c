"""A short test video with real camera motion, made from the BBT group photos (for tests).

Each labelled group photo becomes one shot of ``frames_per_shot`` 640x480 frames seen through
a moving camera: a zoom in or out (scale x1.0 to x1.6 of the fitted view), a pan across the
photo, a slow roll (up to 6 degrees), and motion blur along the pan on its fastest frames.
In the second half of each shot one person turns away: the face is squeezed sideways (the
head turning) and then covered by the hair above it, blurred (the back of the head).

``Frame.people`` gives, for every labelled person, where the face centre is in that frame and
what is seen there: ``face`` (a face, turned or not) or ``back`` (the back of the head: a crop
there is not a face). Everything is computed from the photos, deterministically.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 480


@dataclass
class Frame:
    """One video frame and its ground truth."""

    image: np.ndarray
    shot: str
    #: (name, x, y, state) per labelled person; state "face" or "back".
    people: list[tuple[str, float, float, str]] = field(default_factory=list)

    def who(self, bbox: np.ndarray) -> list[tuple[str, str]]:
        """(name, state) of the labelled face centres inside ``bbox`` (x1, y1, x2, y2)."""
        x1, y1, x2, y2 = bbox
        return [(n, s) for n, x, y, s in self.people if x1 <= x <= x2 and y1 <= y <= y2]


def _turn_away(photo: np.ndarray, cx: float, cy: float, size: float, amount: float
               ) -> np.ndarray:
    """The photo with the face at (cx, cy) turned away by ``amount`` in [0, 1]."""
    out = photo.copy()
    h, w = photo.shape[:2]
    half = int(size * 0.75)
    x1, y1 = max(0, int(cx - half)), max(0, int(cy - half))
    x2, y2 = min(w, int(cx + half)), min(h, int(cy + half))
    if x2 - x1 < 8 or y2 - y1 < 8:
        return out
    face = photo[y1:y2, x1:x2]
    if amount < 0.5:  # turning: the face narrows towards one side
        squeeze = 1.0 - 1.2 * amount
        narrow = cv2.resize(face, (max(4, int((x2 - x1) * squeeze)), y2 - y1))
        side = cv2.resize(photo[max(0, y1 - (y2 - y1)):y1, x1:x2] if y1 > 8 else face,
                          (x2 - x1, y2 - y1))
        region = cv2.GaussianBlur(side, (0, 0), 3)
        region[:, : narrow.shape[1]] = narrow
        out[y1:y2, x1:x2] = region
    else:  # the back of the head: the hair above the face, stretched over it, blurred
        top = max(0, y1 - (y2 - y1) // 2)
        hair = photo[top:y1 + 2, x1:x2] if y1 - top >= 4 else face[: (y2 - y1) // 4]
        back = cv2.resize(hair, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        out[y1:y2, x1:x2] = cv2.GaussianBlur(back, (0, 0), 2)
    return out


def _motion_blur(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Blur along the camera's motion of (dx, dy) px in one frame."""
    length = round(math.hypot(dx, dy))
    if length < 3:
        return image
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2.0
    cv2.line(kernel, (round(c - dx / 2), round(c - dy / 2)),
             (round(c + dx / 2), round(c + dy / 2)), 1.0, 1)
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(image, -1, kernel)


def make_video(bbt_dir: Path, frames_per_shot: int = 24) -> list[Frame]:
    """The frames of the video (see the module docstring)."""
    labels = json.loads((bbt_dir / "labels.json").read_text())["group_photos"]
    frames: list[Frame] = []
    for n, (name, people) in enumerate(sorted(labels.items())):
        photo = cv2.cvtColor(cv2.imread(str(bbt_dir / name)), cv2.COLOR_BGR2RGB)
        ph, pw = photo.shape[:2]
        fit = min(WIDTH / pw, HEIGHT / ph)
        zoom_in = n % 2 == 0
        turner = people[n % len(people)]
        centres = np.array([p["center"] for p in people], np.float64)
        spacing = (np.min([np.linalg.norm(a - b) for i, a in enumerate(centres)
                           for b in centres[i + 1:]]) if len(centres) > 1 else pw / 4)
        prev = None
        for k in range(frames_per_shot):
            u = k / max(1, frames_per_shot - 1)
            scale = fit * (1.0 + 0.6 * (u if zoom_in else 1.0 - u))
            angle = 6.0 * math.sin(math.pi * u)
            # Pan: the point looked at moves from one side of the photo to the other.
            look = np.array([pw * (0.35 + 0.3 * u) if n % 2 else pw * (0.65 - 0.3 * u),
                             ph * 0.45])
            m = cv2.getRotationMatrix2D((float(look[0]), float(look[1])), angle, scale)
            m[:, 2] += np.array([WIDTH / 2, HEIGHT / 2]) - look
            amount = max(0.0, (u - 0.5) * 2.0)  # turning away in the second half
            src = (_turn_away(photo, *turner["center"], 0.45 * spacing, amount)
                   if amount > 0 else photo)
            image = cv2.warpAffine(src, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 90, 90))
            here = m @ np.array([*turner["center"], 1.0])
            if prev is not None:
                image = _motion_blur(image, *(0.5 * (here - prev)))
            prev = here
            frame = Frame(image, name)
            for p in people:
                x, y = m @ np.array([*p["center"], 1.0])
                back = p is turner and amount >= 0.5
                frame.people.append((p["name"], float(x), float(y), "back" if back else "face"))
            frames.append(frame)
    return frames
