"""Plain marker data per identity, for the node to turn into ``visualization_msgs`` markers.

Positions are in image pixels (x right, y down) at the centre of the face box's top edge; the
node decides how pixels map to its marker frame. Colours are RGBA floats in [0, 1]. Text keeps
its Unicode (rviz renders UTF-8); the activity, when known, is a second line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.types import IdentityDecision, Status
from .draw import OverlayOptions
from .text import ActivityKey, ActivityValue, activity_text, identity_label, lookup_activity


@dataclass(frozen=True)
class MarkerSpec:
    """One text marker: which track, what it says, where (px) and in which colour."""

    marker_id: int
    text: str
    x: float
    y: float
    color: tuple[float, float, float, float]
    status: Status


def identity_markers(
    identities: Sequence[IdentityDecision],
    activities: Mapping[ActivityKey, ActivityValue] | None = None,
    options: OverlayOptions | None = None,
) -> list[MarkerSpec]:
    """One ``MarkerSpec`` per identity with a finite box, in input order."""
    opts = options or OverlayOptions()
    out: list[MarkerSpec] = []
    for identity in identities:
        box = np.asarray(identity.bbox, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            continue
        text = identity_label(
            identity, show_similarity=opts.show_similarity, show_track_id=opts.show_track_ids
        )
        found = lookup_activity(activities, identity.person_track_id, identity.track_id)
        if opts.show_activity and found is not None:
            text += "\n" + activity_text(*found)
        r, g, b = opts.status_color(identity.status)
        out.append(
            MarkerSpec(
                marker_id=int(identity.track_id),
                text=text,
                x=float((box[0] + box[2]) / 2),
                y=float(box[1]),
                color=(r / 255.0, g / 255.0, b / 255.0, 1.0),
                status=Status(int(identity.status)),
            )
        )
    return out


def marker_scale(font_scale: float) -> float:
    """A text height for rviz markers matching ``font_scale`` of the drawn overlay [px]."""
    return float(max(1.0, math.ceil(22.0 * font_scale)))
