"""Which faces of the identity stream may become unknown faces (memory.remember.TrackBook)."""

from __future__ import annotations

import pytest

from visio_memoria_ros.memory.remember import TrackBook

BOX = [100.0, 100.0, 160.0, 170.0]


def test_keys_name_the_tracker_session_and_never_repeat_for_untracked_faces() -> None:
    book = TrackBook()
    a = book.key("cam", "s1", 0, BOX, 1.0)
    assert a == "cam:s1:0" and book.key("cam", "s1", 0, BOX, 1.1) == a
    # A restarted detector hands out id 0 again, in another session: another track.
    assert book.key("cam", "s2", 0, BOX, 2.0) != a
    # Untracked faces (-1) never share a key, even at the same place.
    u1 = book.key("cam", "s2", -1, BOX, 3.0)
    u2 = book.key("cam", "s2", -1, BOX, 3.1)
    assert u1 != u2 and "-1" not in u1
    # No session announced (an older detector): the memory's own start names it.
    assert TrackBook(fallback_session="m5").key("cam", "", 3, BOX, 0.0) == "cam:m5:3"


def test_a_track_that_becomes_known_takes_its_untracked_face_along() -> None:
    book = TrackBook(handoff_s=1.0)
    untracked = book.key("cam", "s", -1, BOX, 10.0)
    elsewhere = book.key("cam", "s", -1, [400.0, 100.0, 460.0, 170.0], 10.0)
    track = book.key("cam", "s", 7, [101.0, 101.0, 161.0, 171.0], 10.2)  # where it was
    assert not book.is_known(track)
    assert book.known(track) == [track, untracked]
    assert book.is_known(track) and not book.is_known(elsewhere)
    assert book.known(track) == []  # once


def test_tracks_are_forgotten_after_their_visit() -> None:
    book = TrackBook(forget_after_s=30.0)
    key = book.key("cam", "s", 1, BOX, 0.0)
    book.known(key)
    assert book.prune(20.0) == 0 and book.is_known(key)
    assert book.prune(31.0) == 1 and not book.is_known(key) and len(book) == 0
    with pytest.raises(ValueError):
        TrackBook(forget_after_s=0.0)
