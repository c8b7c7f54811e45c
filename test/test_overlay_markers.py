"""Marker data for rviz, activity lookup and the ASCII text OpenCV can draw."""

from __future__ import annotations

import numpy as np

from visio_memoria_ros.activity import UNKNOWN_ACTIVITY as ACTIVITY_UNKNOWN
from visio_memoria_ros.activity import ActivityResult
from visio_memoria_ros.core.types import IdentityDecision, Status
from visio_memoria_ros.overlay import (
    OverlayOptions,
    activity_map,
    activity_text,
    ascii_text,
    identity_markers,
    lookup_activity,
    text_color,
)
from visio_memoria_ros.overlay.text import UNKNOWN_ACTIVITY


def _identity(track_id, box, status=Status.KNOWN, **kw) -> IdentityDecision:
    box = np.asarray(box, np.float32)
    return IdentityDecision(track_id=track_id, bbox=box, status=status, **kw)


def test_identity_markers_give_text_position_and_colour():
    identities = [
        _identity(4, [100, 50, 160, 120], name="Zoë", similarity=0.91, person_track_id=9),
        _identity(5, [10, 20, 30, 40], Status.UNKNOWN, unknown_cluster_id=2),
        _identity(6, [np.nan, 0, 1, 1], Status.UNCERTAIN),
        _identity(7, [0, 0, 8, 8], Status.UNCERTAIN),
    ]
    activities = activity_map([ActivityResult(9, 4, "walking", 0.8, "dynamics")])
    markers = identity_markers(identities, activities)
    assert [m.marker_id for m in markers] == [4, 5, 7]  # the NaN box is skipped
    first, second, third = markers
    assert first.text == "Zoë 0.91 t4\nwalking 0.80"  # Unicode kept for rviz
    assert (first.x, first.y) == (130.0, 50.0)
    assert first.color == (0.0, 200 / 255, 0.0, 1.0) and first.status == Status.KNOWN
    assert second.text == "unknown #2 t5" and second.color[0] == 230 / 255
    assert third.text == "? t7" and third.status == Status.UNCERTAIN
    plain = identity_markers(identities, activities, OverlayOptions(show_activity=False))
    assert plain[0].text == "Zoë 0.91 t4"
    assert identity_markers([]) == []


def test_activity_lookup_prefers_tagged_keys_then_plain_ids():
    tagged = activity_map(
        [
            ActivityResult(1, 10, "standing", 0.6, "dynamics"),
            ActivityResult(-1, 11, "sitting", 0.7, "dynamics"),
            ActivityResult(2, -1, "", 0.0, "dynamics"),  # empty activity: not indexed
        ]
    )
    assert tagged == {
        ("person", 1): ("standing", 0.6),
        ("face", 10): ("standing", 0.6),
        ("face", 11): ("sitting", 0.7),
    }
    assert lookup_activity(tagged, -1, 10) == ("standing", 0.6)
    assert lookup_activity(tagged, 5, 11) == ("sitting", 0.7)
    assert lookup_activity(tagged, 2, -1) is None
    assert lookup_activity(None, 1, 1) is None
    plain = {3: ("waving", 0.5), 7: ("reading", 0.9)}
    assert lookup_activity(plain, 3, 7) == ("waving", 0.5)  # person id first
    assert lookup_activity(plain, -1, 7) == ("reading", 0.9)


def test_ascii_text_transliterates_or_replaces():
    assert ascii_text("José Zoë Ålesund") == "Jose Zoe Alesund"
    assert ascii_text("Straße Łódź Æsir Þór") == "Strasse Lodz AEsir Thor"
    assert ascii_text("李明") == "??"
    assert ascii_text("Иван") == "????"
    assert ascii_text("tab\tnew\nline") == "tab new line"
    assert ascii_text("e\u0301") == "e"  # a lone combining accent is dropped
    assert ascii_text("“quoted” – fine…") == '"quoted" - fine...'
    assert ascii_text("😀") == "?"
    assert all(" " <= c <= "~" for c in ascii_text("".join(map(chr, range(0x20, 0x3000)))))


def test_activity_text_and_text_colour():
    assert activity_text("walking", 0.736) == "walking 0.74"
    assert activity_text("walking", float("nan")) == "walking"
    # no evidence: said as such, without a confidence, and not read as an unknown face
    assert activity_text(UNKNOWN_ACTIVITY, 0.0) == "activity unknown"
    assert UNKNOWN_ACTIVITY == ACTIVITY_UNKNOWN
    assert text_color((255, 255, 255)) == (0, 0, 0)
    assert text_color((0, 0, 0)) == (255, 255, 255)
    assert text_color((0, 200, 0)) == (0, 0, 0)
