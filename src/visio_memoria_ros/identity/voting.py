"""Identity per track, not per frame: windowed voting, hysteresis and one person per frame.

Each face track keeps the per-person scores (``FrameScores``) of its last N embeddings; a
person's evidence is its mean similarity over the window. A track may be KNOWN only as its own
best person, and only when, for that track alone:

- the person's mean reaches the accept threshold and at least ``min_votes`` window entries do,
  or its mean reaches the stricter ``instant`` threshold (one embedding is then enough; an
  untracked face, with its single embedding, can only be KNOWN this way), and
- the mean beats the track's runner-up person (the best other person, whoever holds it) by
  ``margin``.

So every track proposes at most one person. Within a frame, a person proposed by several tracks
goes to one of them (``assign_unique``, the Hungarian algorithm; a locked track's claim counts
``switch_margin`` extra); the others stay UNCERTAIN: a track whose best person went to another
track is never given its runner-up, which resembles it less by definition.

The face itself must not contradict the name: a track is KNOWN as a person only while its newest
embedding (the latest face of it that was embedded) is at least the reject threshold to that
person. A face that is clearly somebody else (the tracker swapped two people, or a stranger took
over the track) is never named by the window of the faces before it.

A track once KNOWN as A stays A (even while A's mean sits in the uncertain band) until A's mean
drops below the reject threshold, its newest face does, or another person B passes the
acceptance above for the track with a mean at least ``switch_margin`` above A's.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..core.types import Status
from .index import NO_ID
from .matcher import FrameScores, Thresholds

logger = logging.getLogger(__name__)

_INVALID = -1e6


@dataclass(frozen=True)
class TrackDecision:
    """Decision for one track in one frame.

    ``person_id`` is set only when KNOWN; ``similarity`` is the windowed mean of the chosen (or
    best) person; ``num_embeddings`` the evidence in the window; ``suppressed`` marks a track
    matched to an opted-out person (never stored nor greeted).
    """

    track_id: int
    status: Status
    person_id: int = NO_ID
    similarity: float = float("nan")
    num_embeddings: int = 0
    suppressed: bool = False


@dataclass
class _Track:
    frames: deque[FrameScores]
    last_seen: float
    locked: int | None = None
    suppressed: bool = False


@dataclass(frozen=True)
class _Summary:
    means: dict[int, float] = field(default_factory=dict)
    votes: dict[int, int] = field(default_factory=dict)
    count: int = 0

    floor: float = -1.0

    def best(self, exclude: frozenset[int] = frozenset()) -> tuple[int, float]:
        pool = [(p, m) for p, m in self.means.items() if p not in exclude]
        if not pool:
            return NO_ID, float("nan")
        return min(pool, key=lambda pm: (-pm[1], pm[0]))

    def runner_up(self, person: int) -> float:
        """Best mean of any other person; the mean floor (an upper bound) when none is known."""
        others = [m for p, m in self.means.items() if p != person]
        return max(others) if others else self.floor


def summarize(frames: Sequence[FrameScores], accept: float) -> _Summary:
    """Mean similarity per person over ``frames`` and how many frames reach ``accept``."""
    persons: set[int] = set()
    for f in frames:
        persons.update(f.scores)
    means: dict[int, float] = {}
    votes: dict[int, int] = {}
    for p in persons:
        values = [f.get(p) for f in frames]
        means[p] = float(np.mean(values))
        votes[p] = sum(1 for f in frames if p in f.scores and f.scores[p] >= accept)
    floor = float(np.mean([f.floor for f in frames])) if frames else -1.0
    return _Summary(means, votes, len(frames), floor)


def _mean_of(frames: Iterable[FrameScores], person_id: int) -> float:
    """Mean similarity of one person over frames (its floor where it is absent)."""
    values = [f.get(person_id) for f in frames]
    return float(np.mean(values)) if values else float("nan")


def assign_unique(weights: Mapping[int, Mapping[int, float]]) -> dict[int, int]:
    """Give each person to at most one track, maximising the total weight (Hungarian).

    ``weights[track][person]`` lists the allowed pairs; returns ``{track: person}`` for the
    tracks that received one.
    """
    tracks = [t for t, ws in weights.items() if ws]
    persons = sorted({p for t in tracks for p in weights[t]})
    if not tracks:
        return {}
    col = {p: j for j, p in enumerate(persons)}
    matrix = np.full((len(tracks), len(persons)), _INVALID)
    for i, t in enumerate(tracks):
        for p, w in weights[t].items():
            matrix[i, col[p]] = w
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return {
        tracks[i]: persons[j]
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
        if matrix[i, j] > _INVALID / 2
    }


class TrackVoter:
    """Keeps per-track evidence and turns each frame's observations into track decisions."""

    def __init__(
        self,
        thresholds: Thresholds,
        *,
        window: int = 5,
        min_votes: int = 2,
        switch_margin: float = 0.05,
        track_timeout: float = 2.0,
    ) -> None:
        if window < 1 or not 1 <= min_votes <= window:
            raise ValueError(f"need 1 <= min_votes <= window, got {min_votes}, {window}")
        if switch_margin < 0 or track_timeout <= 0:
            raise ValueError("switch_margin must be >= 0 and track_timeout > 0")
        self.thresholds = thresholds
        self.window = int(window)
        self.min_votes = int(min_votes)
        self.switch_margin = float(switch_margin)
        self.track_timeout = float(track_timeout)
        self._tracks: dict[int, _Track] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def configure(
        self,
        thresholds: Thresholds,
        *,
        window: int,
        min_votes: int,
        switch_margin: float,
        track_timeout: float,
    ) -> None:
        """Change settings in place, keeping each track's most recent evidence and lock."""
        if window < 1 or not 1 <= min_votes <= window:
            raise ValueError(f"need 1 <= min_votes <= window, got {min_votes}, {window}")
        self.thresholds = thresholds
        self.min_votes = int(min_votes)
        self.switch_margin = float(switch_margin)
        self.track_timeout = float(track_timeout)
        if window != self.window:
            self.window = int(window)
            for track in self._tracks.values():
                track.frames = deque(track.frames, maxlen=self.window)

    def track_ids(self) -> list[int]:
        """Ids of the tracks with state."""
        return list(self._tracks)

    def locked_person(self, track_id: int) -> int | None:
        """The person a track is currently KNOWN as, or None."""
        track = self._tracks.get(track_id)
        return track.locked if track else None

    def expire(self, t: float) -> list[int]:
        """Forget tracks unseen for longer than ``track_timeout``; returns their ids."""
        stale = [tid for tid, tr in self._tracks.items() if t - tr.last_seen > self.track_timeout]
        for tid in stale:
            del self._tracks[tid]
        return stale

    def seed(self, track_id: int, scores: FrameScores, t: float) -> None:
        """Start a new track with one earlier vote (its untracked sighting at time ``t``)."""
        if track_id in self._tracks:
            raise ValueError(f"track {track_id} already has evidence")
        self._tracks[track_id] = _Track(deque([scores], maxlen=self.window), t)

    def forget_track(self, track_id: int) -> None:
        """Drop one track's evidence."""
        self._tracks.pop(track_id, None)

    def forget_persons(self, person_ids: Iterable[int]) -> None:
        """Remove persons (forgotten, merged away) from every track's evidence and locks."""
        gone = {int(p) for p in person_ids}
        if not gone:
            return
        for track in self._tracks.values():
            if track.locked in gone:
                track.locked = None
            track.frames = deque(
                (
                    FrameScores(
                        {p: s for p, s in f.scores.items() if p not in gone},
                        f.floor,
                        f.excluded - gone,
                    )
                    for f in track.frames
                ),
                maxlen=self.window,
            )

    def decide_frame(
        self,
        observations: Mapping[int, FrameScores | None],
        t: float,
        *,
        opted_out: frozenset[int] = frozenset(),
        ephemeral: Mapping[int, FrameScores | None] | None = None,
    ) -> dict[int, TrackDecision]:
        """Decide every track seen in one frame.

        ``observations`` maps track id -> scores of this frame's new embedding (None when the
        track was seen without a new embedding). ``ephemeral`` are untracked faces, keyed by ids
        that do not collide with track ids: decided from their single embedding (no window, no
        state) but still competing for persons in the frame's assignment.
        """
        summaries: dict[int, _Summary] = {}
        counts_needed: dict[int, int] = {}
        for tid, scores in observations.items():
            track = self._tracks.get(tid)
            if track is None:
                track = _Track(deque(maxlen=self.window), t)
                self._tracks[tid] = track
            track.last_seen = max(track.last_seen, t)
            if scores is not None:
                track.frames.append(scores)
            summaries[tid] = summarize(list(track.frames), self.thresholds.accept)
            counts_needed[tid] = self.min_votes
        for key, scores in (ephemeral or {}).items():
            if key in summaries:
                raise ValueError(f"ephemeral key {key} collides with a track id")
            frames = [scores] if scores is not None else []
            summaries[key] = summarize(frames, self.thresholds.accept)
            counts_needed[key] = 1

        weights: dict[int, dict[int, float]] = {}
        for key, summary in summaries.items():
            track = self._tracks.get(key) if key in observations else None
            weights[key] = self._eligible(summary, track, counts_needed[key], opted_out)
        assigned = assign_unique(weights)

        out: dict[int, TrackDecision] = {}
        for key, summary in summaries.items():
            track = self._tracks.get(key) if key in observations else None
            out[key] = self._finish(
                key,
                summary,
                track,
                person=assigned.get(key),
                opted_out=opted_out,
                needed=counts_needed[key],
            )
        return out

    def _eligible(
        self,
        summary: _Summary,
        track: _Track | None,
        needed: int,
        opted_out: frozenset[int],
    ) -> dict[int, float]:
        """The one person this track may be assigned this frame, with its weight (or none)."""
        rej = self.thresholds.reject
        if summary.count == 0:
            return {}
        best_p, best_m = summary.best()
        suppressed = (track is not None and track.suppressed) or (
            best_p in opted_out and best_m >= rej
        )
        if suppressed:
            if track is not None and not track.suppressed:
                track.suppressed = True
                track.locked = None
            return {}
        # Enough evidence: min_votes at accept, or a match at the instant threshold. An untracked
        # face (needed 1 for its UNKNOWN decision) has one embedding, so only the latter.
        votes_needed = max(needed, self.min_votes)
        newest = track.frames[-1] if track is not None and track.frames else None
        accepted = (best_p not in opted_out and self._accepts(summary, best_p, votes_needed)
                    and (newest is None or newest.get(best_p) >= rej))
        if track is None or track.locked is None:
            return {best_p: best_m} if accepted else {}
        locked = track.locked
        if locked in opted_out:
            track.locked = None
            return {best_p: best_m} if accepted else {}
        locked_mean = _mean_of(track.frames, locked)
        if locked_mean < rej and summary.count >= needed:
            logger.debug("track lost its person %d (mean %.3f < reject)", locked, locked_mean)
            track.locked = None
            return {best_p: best_m} if accepted else {}
        if newest is not None and newest.get(locked) < rej:
            logger.debug("track's newest face is not its person %d (%.3f < reject)", locked,
                         newest.get(locked))
            track.locked = None
            return {best_p: best_m} if accepted else {}
        if best_p != locked and accepted and best_m > locked_mean + self.switch_margin:
            return {best_p: best_m}
        return {locked: locked_mean + self.switch_margin}

    def _accepts(self, summary: _Summary, person: int, votes_needed: int) -> bool:
        """Whether ``person`` passes the threshold and the margin on this track's evidence."""
        th = self.thresholds
        mean = summary.means.get(person, float("nan"))
        if not math.isfinite(mean):
            return False
        enough = mean >= th.instant or (
            mean >= th.accept
            and summary.votes.get(person, 0) >= votes_needed
            and summary.count >= votes_needed
        )
        return enough and th.clear_of(mean, summary.runner_up(person))

    def _finish(
        self,
        key: int,
        summary: _Summary,
        track: _Track | None,
        *,
        person: int | None,
        opted_out: frozenset[int],
        needed: int,
    ) -> TrackDecision:
        """Turn the assignment outcome into the track's decision and update its lock."""
        n = summary.count
        if track is not None and track.suppressed:
            return TrackDecision(key, Status.UNCERTAIN, NO_ID, float("nan"), n, suppressed=True)
        if n > 0 and track is None:
            best_p, best_m = summary.best()
            if best_p in opted_out and best_m >= self.thresholds.reject:
                return TrackDecision(key, Status.UNCERTAIN, NO_ID, float("nan"), n, True)
        if person is not None:
            if track is not None:
                if track.locked is not None and track.locked != person:
                    logger.info("track %d switches from person %d to %d", key, track.locked, person)
                track.locked = person
            sim = summary.means.get(person)
            if sim is None:
                sim = _mean_of(track.frames, person) if track is not None else float("nan")
            return TrackDecision(key, Status.KNOWN, person, sim, n)
        _, best_m = summary.best(exclude=opted_out)
        if n < needed:
            return TrackDecision(key, Status.UNCERTAIN, NO_ID, best_m, n)
        if math.isnan(best_m) or best_m < self.thresholds.reject:
            return TrackDecision(key, Status.UNKNOWN, NO_ID, best_m, n)
        return TrackDecision(key, Status.UNCERTAIN, NO_ID, best_m, n)
