"""Which faces of the identity stream may become unknown faces: tracks, their keys, their fate.

The memory keys a stored unknown face by its track: ``<location>:<session>:<track id>``, where
the session names the detector's tracker run (track ids restart at 0 with each run), so a new
stranger who inherits a restarted detector's id 0 is another track. A face the tracker has not
confirmed yet gets a key of its own (``<location>:<session>:u<n>``): untracked faces never share
a key. When a track appears where an untracked face was stored a moment before (the face it
became, found by box overlap as in ``core.handoff``), that key becomes the track's alias.

A track that is, or becomes within its visit, KNOWN is an enrolled person: none of its faces is
a stranger's. ``TrackBook.known`` reports the keys (the track and its aliases) whose stored
faces must go, once; later faces of that track are not stored at all.

Plain Python, no ROS: memory_node feeds it the identities it receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.handoff import UntrackedHandoff
from ..core.types import NO_TRACK


@dataclass
class _Track:
    last_seen: float
    known: bool = False
    aliases: list[str] = field(default_factory=list)


class TrackBook:
    """Track keys, untracked-face hand-over and which tracks turned out KNOWN."""

    def __init__(self, *, handoff_s: float = 1.0, forget_after_s: float = 60.0,
                 fallback_session: str = "") -> None:
        """``forget_after_s``: a track unseen this long is forgotten (its visit is over)."""
        if forget_after_s <= 0:
            raise ValueError(f"forget_after_s must be > 0, got {forget_after_s}")
        self.forget_after_s = float(forget_after_s)
        self.fallback_session = fallback_session
        self._tracks: dict[str, _Track] = {}
        self._untracked: UntrackedHandoff[str] = UntrackedHandoff(max_age=handoff_s)
        self._counter = 0

    def __len__(self) -> int:
        return len(self._tracks)

    def key(self, location: str, session: str, track_id: int, bbox: object, t: float) -> str:
        """The key of this face's track; a fresh one for an untracked face."""
        session = session or self.fallback_session
        if int(track_id) == NO_TRACK:
            self._counter += 1
            key = f"{location}:{session}:u{self._counter}"
            self._untracked.remember(bbox, t, key)
            self._tracks[key] = _Track(t)
            return key
        key = f"{location}:{session}:{int(track_id)}"
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track(t)
            claimed = self._untracked.claim(bbox, t)
            if claimed is not None:
                track.aliases.append(claimed[1])
        track.last_seen = max(track.last_seen, t)
        return key

    def is_known(self, key: str) -> bool:
        """True once the track was KNOWN (its faces are not a stranger's)."""
        track = self._tracks.get(key)
        return track is not None and track.known

    def known(self, key: str) -> list[str]:
        """The track is KNOWN now: the keys whose stored faces must go (empty if already)."""
        track = self._tracks.setdefault(key, _Track(0.0))
        if track.known:
            return []
        track.known = True
        return [key, *track.aliases]

    def prune(self, now: float) -> int:
        """Forget tracks unseen for ``forget_after_s``; returns how many."""
        stale = [k for k, tr in self._tracks.items() if now - tr.last_seen > self.forget_after_s]
        for k in stale:
            del self._tracks[k]
        return len(stale)
