"""When to embed a face track: new, clearly better crop, or a due refresh; within a budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..core.handoff import UntrackedHandoff
from ..core.types import NO_TRACK


@dataclass(frozen=True)
class EmbedPolicyConfig:
    """Knobs of ``EmbedPolicy``; times in seconds of the frames' stamps."""

    min_interval_s: float = 0.5
    first_embeddings: int = 2
    first_interval_s: float = 0.2
    max_embeddings_per_track: int = 5
    quality_rel_margin: float = 0.10
    quality_abs_margin: float = 0.05
    refresh_interval_s: float = 2.0
    refresh_after_budget_s: float = 10.0
    forget_after_s: float = 10.0
    handoff_s: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "min_interval_s",
            "first_interval_s",
            "quality_rel_margin",
            "quality_abs_margin",
            "refresh_interval_s",
            "refresh_after_budget_s",
            "forget_after_s",
            "handoff_s",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if self.max_embeddings_per_track < 1:
            raise ValueError(
                f"max_embeddings_per_track must be >= 1, got {self.max_embeddings_per_track}"
            )
        if self.first_embeddings < 1:
            raise ValueError(f"first_embeddings must be >= 1, got {self.first_embeddings}")


@dataclass
class _TrackState:
    """What the policy remembers about one face track."""

    best_quality: float
    last_embed: float
    last_seen: float
    count: int


@dataclass(frozen=True)
class EmbedDecision:
    """Whether to embed now, and why (``new``, ``first``, ``improved``, ``refresh``, ``untracked``
    or a no)."""

    embed: bool
    reason: str


class EmbedPolicy:
    """Per-track state deciding when a face crop is worth embedding.

    Call ``decide`` for every face of a frame, ``mark_embedded`` for those actually embedded,
    and ``prune`` once per frame. Embed when the track is new; while it has fewer than
    ``first_embeddings``, every ``first_interval_s`` (identity needs several votes before it names
    a track, so these come quickly); then when at least ``min_interval_s`` passed, fewer than
    ``max_embeddings_per_track`` were made, and the quality rose above the best embedded so far
    by max(abs margin, rel margin x best), or ``refresh_interval_s`` (0 = never) passed since the
    last one.

    Given face boxes, an untracked face's embedding counts as the first embedding of the track
    that appears at the same place within ``handoff_s`` (``core.handoff``): the tracker confirms
    a face a detection later, and embedding it again as "new" would repeat the same evidence.
    """

    def __init__(self, config: EmbedPolicyConfig | None = None) -> None:
        """Start with no tracks."""
        self.config = config or EmbedPolicyConfig()
        self._tracks: dict[int, _TrackState] = {}
        self._untracked: UntrackedHandoff[float] = UntrackedHandoff(max_age=self.config.handoff_s)

    def configure(self, config: EmbedPolicyConfig) -> None:
        """Apply new knobs from the next decision on; the tracks' history is kept."""
        self.config = config
        self._untracked.max_age = config.handoff_s

    def __len__(self) -> int:
        """Number of tracks remembered."""
        return len(self._tracks)

    def required_quality(self, track_id: int) -> float:
        """The quality a new crop of ``track_id`` must reach to count as improved."""
        state = self._tracks.get(track_id)
        if state is None or not math.isfinite(state.best_quality):
            return -math.inf
        best = state.best_quality
        cfg = self.config
        return best + max(cfg.quality_abs_margin, cfg.quality_rel_margin * abs(best))

    def decide(
        self, track_id: int, quality: float, stamp: float, bbox: Any = None
    ) -> EmbedDecision:
        """Decide for one face of track ``track_id`` seen at ``stamp`` with crop ``quality``.

        ``bbox`` (x1, y1, x2, y2), when given, lets a new track take over the embedding of the
        untracked face it was (see the class notes).
        """
        if track_id == NO_TRACK:
            return EmbedDecision(True, "untracked")
        state = self._tracks.get(track_id)
        if state is not None and stamp < state.last_seen:
            del self._tracks[track_id]  # time went backwards (bag loop, clock reset): start over
            self._untracked.clear()
            state = None
        if state is None:
            claimed = self._untracked.claim(bbox, stamp) if bbox is not None else None
            if claimed is None:
                return EmbedDecision(True, "new")
            t_seen, q_seen = claimed
            state = _TrackState(q_seen, t_seen, stamp, 1)
            self._tracks[track_id] = state
        state.last_seen = stamp
        cfg = self.config
        since = stamp - state.last_embed
        if state.count >= cfg.max_embeddings_per_track:
            # Past the budget only a slow refresh, so a track's identity still follows gallery
            # changes (a person named while in view gets greeted).
            slow = cfg.refresh_after_budget_s
            if slow > 0 and since >= slow:
                return EmbedDecision(True, "refresh")
            return EmbedDecision(False, "budget")
        if state.count < cfg.first_embeddings:
            if since >= cfg.first_interval_s:
                return EmbedDecision(True, "first")
            return EmbedDecision(False, "interval")
        if since < cfg.min_interval_s:
            return EmbedDecision(False, "interval")
        if math.isfinite(quality) and quality >= self.required_quality(track_id):
            return EmbedDecision(True, "improved")
        if cfg.refresh_interval_s > 0 and since >= cfg.refresh_interval_s:
            return EmbedDecision(True, "refresh")
        return EmbedDecision(False, "no_improvement")

    def mark_embedded(
        self, track_id: int, quality: float, stamp: float, bbox: Any = None
    ) -> None:
        """Record that a crop of ``track_id`` with ``quality`` was embedded at ``stamp``."""
        q = quality if math.isfinite(quality) else -math.inf
        if track_id == NO_TRACK:
            if bbox is not None:
                self._untracked.remember(bbox, stamp, q)
            return
        state = self._tracks.get(track_id)
        if state is None:
            self._tracks[track_id] = _TrackState(q, stamp, stamp, 1)
            return
        state.best_quality = max(state.best_quality, q)
        state.last_embed = stamp
        state.last_seen = max(state.last_seen, stamp)
        state.count += 1

    def prune(self, now: float) -> list[int]:
        """Forget tracks not seen for ``forget_after_s``; return their ids."""
        limit = now - self.config.forget_after_s
        stale = [tid for tid, s in self._tracks.items() if s.last_seen < limit]
        for tid in stale:
            del self._tracks[tid]
        return stale

    def forget(self, track_id: int) -> None:
        """Drop one track's state (e.g. the tracker ended it)."""
        self._tracks.pop(track_id, None)

    def embedding_count(self, track_id: int) -> int:
        """How many embeddings were recorded for ``track_id``."""
        state = self._tracks.get(track_id)
        return 0 if state is None else state.count
