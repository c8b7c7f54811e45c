"""Label text: what each identity says, and ASCII for OpenCV's Hershey fonts.

``cv2.putText`` draws ASCII only (other characters come out as '?' boxes or garbage), so drawn
labels go through ``ascii_text``: accents are stripped by Unicode decomposition (José -> Jose,
Zoë -> Zoe, Ålesund -> Alesund), a few letters without a decomposition are spelled out (ß -> ss,
Ø -> O, Æ -> AE, Ł -> L, Þ -> Th, typographic quotes and dashes -> ASCII), control characters
become spaces, and anything else (e.g. CJK, Cyrillic, emoji) becomes '?', one per character.
Markers for rviz keep the original Unicode text.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Hashable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ..core.types import NO_TRACK, IdentityDecision, Status

_SPELLED: Mapping[str, str] = MappingProxyType(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "œ": "oe",
        "Œ": "OE",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ı": "i",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
    }
)

#: Activity lookup keys: ``("person", id)`` / ``("face", id)``, or a plain track id.
ActivityKey = Hashable
ActivityValue = tuple[str, float]


def ascii_text(text: str) -> str:
    """Return ``text`` in printable ASCII (transliterated where possible, '?' otherwise)."""
    out: list[str] = []
    for ch in str(text):
        if " " <= ch <= "~":
            out.append(ch)
        elif ch in _SPELLED:
            out.append(_SPELLED[ch])
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(" ")
        elif unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue  # a lone combining mark or an invisible format character
        else:
            decomposed = unicodedata.normalize("NFKD", ch)
            kept = "".join(c for c in decomposed if " " <= c <= "~")
            out.append(kept or "?")
    return "".join(out)


def identity_label(
    identity: IdentityDecision, *, show_similarity: bool = True, show_track_id: bool = True
) -> str:
    """The label of one identity: "Name 0.82", "unknown #3", "unknown" or "?" (+ " t<track>")."""
    if identity.status == Status.KNOWN:
        text = identity.name.strip() or f"person {identity.person_id}"
        if show_similarity and math.isfinite(identity.similarity):
            text += f" {identity.similarity:.2f}"
    elif identity.status == Status.UNKNOWN:
        if identity.unknown_cluster_id >= 0:
            text = f"unknown #{identity.unknown_cluster_id}"
        else:
            text = "unknown"
    else:
        text = "?"
    if show_track_id and identity.track_id != NO_TRACK:
        text += f" t{identity.track_id}"
    return text


#: The activity published when there is no evidence (``activity.UNKNOWN_ACTIVITY``, Activity.msg).
UNKNOWN_ACTIVITY = "unknown"


def activity_text(activity: str, confidence: float) -> str:
    """The label of one activity: "walking 0.74" (the confidence is left out when not finite);
    "activity unknown" when there is no evidence (not to be read as an unknown face)."""
    if activity == UNKNOWN_ACTIVITY:
        return "activity unknown"
    if math.isfinite(confidence):
        return f"{activity} {confidence:.2f}"
    return activity


def activity_map(results: Iterable[Any]) -> dict[ActivityKey, ActivityValue]:
    """Index activity results (anything with ``person_track_id``, ``face_track_id``,
    ``activity`` and ``confidence``: ``ActivityResult`` or ``Activity`` messages) by tagged keys.
    """
    out: dict[ActivityKey, ActivityValue] = {}
    for r in results:
        value = (str(r.activity), float(r.confidence))
        if not value[0]:
            continue
        if int(r.person_track_id) != NO_TRACK:
            out[("person", int(r.person_track_id))] = value
        if int(r.face_track_id) != NO_TRACK:
            out[("face", int(r.face_track_id))] = value
    return out


def lookup_activity(
    activities: Mapping[ActivityKey, ActivityValue] | None,
    person_track_id: int,
    face_track_id: int,
) -> ActivityValue | None:
    """Find the activity of a person/face track pair; tagged keys first, then plain ids.

    Plain integer keys are tried as the person track id, then as the face track id; use the
    tagged keys of ``activity_map`` when the two id spaces can overlap.
    """
    if not activities:
        return None
    keys: list[ActivityKey] = []
    if person_track_id != NO_TRACK:
        keys.append(("person", int(person_track_id)))
    if face_track_id != NO_TRACK:
        keys.append(("face", int(face_track_id)))
    if person_track_id != NO_TRACK:
        keys.append(int(person_track_id))
    if face_track_id != NO_TRACK:
        keys.append(int(face_track_id))
    for key in keys:
        value = activities.get(key)
        if value is not None and value[0]:
            return value
    return None
