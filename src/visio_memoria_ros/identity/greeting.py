"""Visits and greetings: "Welcome back, <name>!" once per visit, with a per-person cooldown.

``VisitTracker`` holds the visits the greeting policy greets once: a visit of a person is a run
of sightings with no gap longer than ``absence`` seconds. A gap of exactly ``absence`` continues
the visit; a longer one ends it (at the last sighting) and the next sighting starts a new
visit. Times are always passed in (seconds, float), so tests are deterministic and ROS
simulated time works.

These visits live in identity_node's memory only. The visits that are stored (per robot, with
activities) are memory_node's: ``MemoryStore.open_or_extend_visit`` applies the same absence
rule (``memory.rules.visit_continues``, memory_node's ``visit_absence``; a clock jumping back
does not end a stored visit) and ``close_stale_visits`` ends them. After a restart
identity_node takes the stored open visits over (``IdentityEngine.resume_visits``), so nobody
is greeted twice in one visit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from enum import Enum

from ..config.shared import VISIT_ABSENCE
from ..core.types import NO_TRACK

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "Welcome back, {name}!"


@dataclass(frozen=True)
class Visit:
    """One continuous presence of a person: first and last sighting times [s]."""

    person_id: int
    start: float
    last_seen: float

    @property
    def duration(self) -> float:
        """Seconds between the first and the last sighting."""
        return self.last_seen - self.start


class VisitEventKind(str, Enum):
    """What a sighting did to the person's visit."""

    STARTED = "started"
    CONTINUED = "continued"


@dataclass(frozen=True)
class VisitEvent:
    """Outcome of one sighting: the (new or ongoing) visit, and a previous visit it closed."""

    kind: VisitEventKind
    visit: Visit
    ended: Visit | None = None


class VisitTracker:
    """Open visits keyed by person id; a visit ends after more than ``absence`` seconds unseen."""

    def __init__(self, absence: float = VISIT_ABSENCE.default) -> None:
        if not (math.isfinite(absence) and absence > 0):
            raise ValueError(f"absence must be a positive number of seconds, got {absence}")
        self.absence = float(absence)
        self._open: dict[int, Visit] = {}

    def __len__(self) -> int:
        return len(self._open)

    def current(self, person_id: int) -> Visit | None:
        """The open visit of a person, or None (expired visits may linger until ``expire``)."""
        return self._open.get(person_id)

    def active(self) -> list[Visit]:
        """All open visits."""
        return list(self._open.values())

    def observe(self, person_id: int, t: float) -> VisitEvent:
        """Record a sighting at time ``t`` and say whether it started a new visit.

        A sighting older than the last one (out of order) continues the visit without moving
        time backwards; a clock that jumped back by more than ``absence`` (simulation restart)
        ends the open visit and starts a new one.
        """
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"time must be finite, got {t}")
        pid = int(person_id)
        visit = self._open.get(pid)
        if visit is not None:
            gap = t - visit.last_seen
            if -self.absence <= gap <= self.absence:
                visit = replace(visit, last_seen=max(visit.last_seen, t))
                self._open[pid] = visit
                return VisitEvent(VisitEventKind.CONTINUED, visit)
        new = Visit(pid, t, t)
        self._open[pid] = new
        return VisitEvent(VisitEventKind.STARTED, new, ended=visit)

    def expire(self, t: float) -> list[Visit]:
        """Close and return the visits whose person has been unseen for more than ``absence``."""
        ended = [v for v in self._open.values() if t - v.last_seen > self.absence]
        for v in ended:
            del self._open[v.person_id]
        return ended

    def forget(self, person_id: int) -> Visit | None:
        """Drop a person's open visit without reporting it (the person was forgotten)."""
        return self._open.pop(int(person_id), None)

    def close_all(self) -> list[Visit]:
        """Close every open visit (shutdown) and return them."""
        ended = list(self._open.values())
        self._open.clear()
        return ended


@dataclass(frozen=True)
class Greeting:
    """A sentence to say: for a KNOWN person (``person_id`` >= 0) or an unknown face track."""

    text: str
    t: float
    track_id: int = NO_TRACK
    person_id: int = -1
    name: str = ""

    @property
    def is_unknown(self) -> bool:
        """True for an unknown-face announcement."""
        return self.person_id < 0


def check_template(template: str) -> None:
    """Raise ValueError unless ``template`` formats with only a ``{name}`` field."""
    try:
        template.format(name="Alex")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"greeting template {template!r} may only use the {{name}} field: {exc!r}"
        ) from exc


class GreetingPolicy:
    """Decides when to greet: once per visit, never twice within ``cooldown``; unknowns once."""

    def __init__(
        self,
        *,
        template: str = DEFAULT_TEMPLATE,
        cooldown: float = 300.0,
        absence: float = VISIT_ABSENCE.default,
        unknown_text: str = "",
        visits: VisitTracker | None = None,
    ) -> None:
        check_template(template)
        if not (math.isfinite(cooldown) and cooldown >= 0):
            raise ValueError(f"cooldown must be >= 0 seconds, got {cooldown}")
        self.template = template
        self.cooldown = float(cooldown)
        self.unknown_text = unknown_text
        self.visits = visits if visits is not None else VisitTracker(absence)
        self._last_greeted: dict[int, float] = {}
        self._announced_tracks: set[int] = set()

    def configure(
        self, *, template: str, cooldown: float, absence: float, unknown_text: str
    ) -> None:
        """Change settings in place, keeping visits and greeting history."""
        check_template(template)
        if not (math.isfinite(cooldown) and cooldown >= 0):
            raise ValueError(f"cooldown must be >= 0 seconds, got {cooldown}")
        if not (math.isfinite(absence) and absence > 0):
            raise ValueError(f"absence must be a positive number of seconds, got {absence}")
        self.template = template
        self.cooldown = float(cooldown)
        self.unknown_text = unknown_text
        self.visits.absence = float(absence)

    def on_known(
        self, person_id: int, name: str, t: float, track_id: int = NO_TRACK
    ) -> Greeting | None:
        """Record a sighting of a KNOWN person; return the greeting when one is due."""
        event = self.visits.observe(person_id, t)
        if event.kind is not VisitEventKind.STARTED or not self.template.strip():
            return None
        last = self._last_greeted.get(person_id)
        if last is not None and -self.cooldown < t - last < self.cooldown:
            logger.debug("person %d: new visit within greeting cooldown", person_id)
            return None
        self._last_greeted[person_id] = t
        return Greeting(self.template.format(name=name), t, track_id, person_id, name)

    def on_unknown(self, track_id: int, t: float) -> Greeting | None:
        """Return the unknown-face announcement the first time a track is UNKNOWN (if enabled)."""
        if not self.unknown_text.strip() or track_id == NO_TRACK:
            return None
        if track_id in self._announced_tracks:
            return None
        self._announced_tracks.add(track_id)
        return Greeting(self.unknown_text, t, track_id)

    def resume_visit(self, person_id: int, start: float, t: float) -> None:
        """Take over a visit still open elsewhere (the memory): greeted at ``start``, seen at ``t``.

        After a restart of the greeting process the person is not greeted again while this
        visit goes on, and the cooldown counts from ``start``.
        """
        start, t = float(start), float(t)
        if not (math.isfinite(start) and math.isfinite(t)):
            raise ValueError(f"times must be finite, got start={start}, t={t}")
        pid = int(person_id)
        self.visits.observe(pid, t)
        last = self._last_greeted.get(pid)
        self._last_greeted[pid] = start if last is None else max(last, start)

    def forget_track(self, track_id: int) -> None:
        """Forget that a track was announced (call when the track ends)."""
        self._announced_tracks.discard(track_id)

    def forget_person(self, person_id: int) -> None:
        """Forget a person's greeting history and open visit."""
        self._last_greeted.pop(person_id, None)
        self.visits.forget(person_id)

    def expire(self, t: float) -> list[Visit]:
        """Close visits ended by absence (see ``VisitTracker.expire``)."""
        return self.visits.expire(t)
