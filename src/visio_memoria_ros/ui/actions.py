"""What the labelling page does to the memory store, and the tables it shows (no Streamlit).

Every action takes a ``MemoryStore`` and returns an ``Outcome``: ``ok`` and one sentence for
the visitor. Refusals of the store (``MemoryStoreError``, ``StoreUnavailable``) become that
sentence; anything unexpected is logged with its traceback and shown as a short apology, so a
stack trace never reaches the page.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import cv2
import numpy as np

from ..memory import STORE_ERRORS, MemoryStore, MemoryStoreError, PersonRecord, VisitRecord

LOG = logging.getLogger(__name__)

#: Why a cluster may be rejected; the reason is passed to ``discard_unknowns``.
NOT_A_FACE = "not a face"
REJECT_REASONS: tuple[str, ...] = (NOT_A_FACE, "don't remember")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Shortest bar of the visit timeline [h], so that a brief visit stays visible on a 24 h axis.
MIN_BAR_HOURS = 10.0 / 60.0


@dataclass(frozen=True)
class Outcome:
    """Result of one page action: success flag and a sentence to show."""

    ok: bool
    message: str


def run_action(action: Callable[[], str]) -> Outcome:
    """Run ``action`` (which returns a success sentence) and turn any failure into an Outcome."""
    try:
        return Outcome(True, action())
    except STORE_ERRORS as exc:
        LOG.info("store refused a page action: %s", exc)
        return Outcome(False, _sentence(str(exc)))
    except Exception:
        LOG.exception("unexpected error in a labelling page action")
        return Outcome(False, "Something unexpected went wrong; nothing is known to have "
                              "changed. The page's log has the details.")


def _sentence(text: str) -> str:
    text = text.strip() or "the store refused the request"
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _faces(n: int) -> str:
    return f"{n} face" if n == 1 else f"{n} faces"


# -- unknown clusters ----------------------------------------------------------------------
# Every action names exactly the faces the visitor was shown: the cluster at the revision the
# page listed (faces that joined later stay unknown), or the face ids that were ticked.
def name_cluster(store: MemoryStore, cluster_id: int, name: str, revision: int = 0) -> Outcome:
    """Give a cluster (as listed at ``revision``) to the person called ``name`` (created when
    nobody has that name)."""

    def act() -> str:
        if not name or not name.strip():
            raise_refusal("type a name for these faces first")
        res = store.label(cluster_id=int(cluster_id), name=name,
                          cluster_revision=int(revision))
        if res.created:
            return f"New person {res.name} remembered with {_faces(res.num_embeddings)}."
        return f"{_faces(res.num_embeddings).capitalize()} added to {res.name}."

    return run_action(act)


def add_cluster_to_person(store: MemoryStore, cluster_id: int, person_id: int | None,
                          revision: int = 0) -> Outcome:
    """Give a cluster's faces (as listed at ``revision``) to an existing person."""

    def act() -> str:
        if person_id is None:
            raise_refusal("choose the person these faces belong to first")
        res = store.label(cluster_id=int(cluster_id), person_id=int(person_id),
                          cluster_revision=int(revision))
        return f"{_faces(res.num_embeddings).capitalize()} added to {res.name}."

    return run_action(act)


def reject_cluster(store: MemoryStore, cluster_id: int, reason: str, revision: int = 0
                   ) -> Outcome:
    """Delete a cluster's faces (as listed), recording why. "not a face" also keeps their
    embeddings as examples, so faces like them are not remembered again."""

    def act() -> str:
        if reason not in REJECT_REASONS:
            raise_refusal(f"the reason must be one of: {', '.join(REJECT_REASONS)}")
        n = store.discard_unknowns(cluster_id=int(cluster_id), reason=reason,
                                   not_a_face=reason == NOT_A_FACE,
                                   cluster_revision=int(revision))
        return f"{_faces(n).capitalize()} deleted ({reason})" + (
            "; faces like them will not be remembered again." if reason == NOT_A_FACE else ".")

    return run_action(act)


def split_to_new_cluster(store: MemoryStore, unknown_ids: Sequence[int]) -> Outcome:
    """Move the ticked faces of a cluster into a cluster of their own."""

    def act() -> str:
        if not unknown_ids:
            raise_refusal("tick the faces to move first")
        cid = store.split_cluster([int(i) for i in unknown_ids])
        return f"{_faces(len(unknown_ids)).capitalize()} moved to the new cluster {cid}."

    return run_action(act)


def give_faces_to_person(store: MemoryStore, unknown_ids: Sequence[int],
                         person_id: int | None) -> Outcome:
    """Give exactly the ticked faces to an existing person."""

    def act() -> str:
        if not unknown_ids:
            raise_refusal("tick the faces to move first")
        if person_id is None:
            raise_refusal("choose the person these faces belong to first")
        res = store.label(unknown_ids=[int(i) for i in unknown_ids], person_id=int(person_id))
        return f"{_faces(res.num_embeddings).capitalize()} added to {res.name}."

    return run_action(act)


def confirm_candidates(store: MemoryStore, unknown_ids: Sequence[int], person_id: int
                       ) -> Outcome:
    """"Yes, it is <name>": the faces go to that person."""

    def act() -> str:
        if not unknown_ids:
            raise_refusal("tick the faces first")
        res = store.label(unknown_ids=[int(i) for i in unknown_ids], person_id=int(person_id))
        return f"{_faces(res.num_embeddings).capitalize()} added to {res.name}."

    return run_action(act)


def reject_candidates(store: MemoryStore, unknown_ids: Sequence[int], name: str) -> Outcome:
    """"No, not <name>": negative links; the faces join the unknown faces of strangers."""

    def act() -> str:
        if not unknown_ids:
            raise_refusal("tick the faces first")
        n = store.reject_candidates([int(i) for i in unknown_ids])
        return (f"{_faces(n).capitalize()} will not be taken for {name} again; they wait "
                "with the unknown faces.")

    return run_action(act)


def forget_non_faces(store: MemoryStore) -> Outcome:
    """Forget every "not a face" example: faces like them may be remembered again."""

    def act() -> str:
        n = store.forget_non_faces()
        return f"{n} 'not a face' example{'' if n == 1 else 's'} forgotten."

    return run_action(act)


# -- persons -------------------------------------------------------------------------------
def rename_person(store: MemoryStore, person_id: int, name: str) -> Outcome:
    """Rename a person; refused when another person has that name."""

    def act() -> str:
        old = store.get_person(int(person_id)).name
        rec = store.rename_person(int(person_id), name)
        return f"{old} is now called {rec.name}."

    return run_action(act)


def merge_persons(store: MemoryStore, source_id: int, target_id: int | None) -> Outcome:
    """Merge one person into another (the same human remembered twice)."""

    def act() -> str:
        if target_id is None:
            raise_refusal("choose the person to merge into first")
        src = store.get_person(int(source_id)).name
        dst = store.get_person(int(target_id)).name
        n = store.merge_persons(int(source_id), int(target_id))
        return f"{src} merged into {dst} ({_faces(n)} moved)."

    return run_action(act)


def forget_person(store: MemoryStore, person_id: int, *, confirmed: bool) -> Outcome:
    """Delete every trace of a person, only when the visitor confirmed it."""

    def act() -> str:
        name = store.get_person(int(person_id)).name
        if not confirmed:
            raise_refusal(f"tick the confirmation to forget {name}; nothing was deleted")
        store.forget_person(int(person_id))
        return f"{name} is forgotten: faces, crops and visits deleted."

    return run_action(act)


def set_never_remember(store: MemoryStore, person_id: int, never: bool) -> Outcome:
    """Opt a person out of (or back into) being remembered and greeted."""

    def act() -> str:
        rec = store.set_never_remember(int(person_id), bool(never))
        if rec.never_remember:
            return f"{rec.name} will not be remembered or greeted any more."
        return f"{rec.name} may be remembered and greeted again."

    return run_action(act)


def raise_refusal(message: str) -> NoReturn:
    """Refuse a page request the same way the store does (shown as an error sentence)."""
    raise MemoryStoreError(message)


# -- what the page shows -------------------------------------------------------------------
def format_time(t: float) -> str:
    """Return a local date and time for ``t`` [s], or "never" for 0."""
    return time.strftime(TIME_FORMAT, time.localtime(t)) if t > 0 else "never"


def format_duration(seconds: float) -> str:
    """Return a short duration such as "42 s", "3 min 5 s" or "2 h 10 min"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def cluster_caption(size: int, first_seen: float, last_seen: float) -> str:
    """Return the one-line description of an unknown cluster."""
    return (f"{_faces(size)} · first seen {format_time(first_seen)} · "
            f"last seen {format_time(last_seen)}")


def data_url(rgb: np.ndarray) -> str:
    """An RGB picture as a ``data:image/png;base64,...`` URL (for an HTML <img>)."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("the picture could not be encoded")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")


def face_caption(unknown_id: int, quality: float) -> str:
    """How one face is named under its picture: id and quality."""
    return f"face {unknown_id} · q {quality:.2f}"


def candidate_caption(similarity: float) -> str:
    """How a "maybe <name>?" face is captioned: its similarity to that person."""
    return f"similarity {similarity:.2f}"


def person_label(person: PersonRecord) -> str:
    """Return how a person is named in choice lists: name and id."""
    return f"{person.name} (#{person.person_id})"


def person_rows(persons: Sequence[PersonRecord]) -> list[dict[str, Any]]:
    """Return one table row per person: id, name, counts, first/last seen, opted out."""
    return [{"id": p.person_id, "name": p.name, "faces": p.num_embeddings,
             "visits": p.num_visits, "first seen": format_time(p.first_seen),
             "last seen": format_time(p.last_seen),
             "never remember": p.never_remember} for p in persons]


def _visit_end(v: VisitRecord, now: float) -> float:
    return v.end if v.end > 0 else max(v.last_seen, min(now, v.last_seen + 1.0))


def visit_rows(visits: Sequence[VisitRecord]) -> list[dict[str, Any]]:
    """Return one table row per visit, in the given order: times, duration, place, activity."""
    return [{"start": format_time(v.start),
             "end": format_time(v.end) if v.end > 0 else "in progress",
             "duration": format_duration((v.end if v.end > 0 else v.last_seen) - v.start),
             "location": v.location, "robot": v.robot_id,
             "activity": v.dominant_activity} for v in visits]


def _hour_of_day(d: datetime) -> float:
    return d.hour + d.minute / 60.0 + d.second / 3600.0


def visit_timeline(visits: Sequence[VisitRecord], now: float | None = None
                   ) -> list[dict[str, Any]]:
    """Return one bar per visit for a day-by-hour timeline chart, oldest first.

    ``from``/``to`` are hours of the day (0-24) in local time; a visit that runs past midnight
    is cut at midnight; an open visit ends at its last sighting; bars are at least
    ``MIN_BAR_HOURS`` wide (``minutes`` keeps the true length).
    """
    now = time.time() if now is None else now
    out = []
    for v in sorted(visits, key=lambda v: v.start):
        start = datetime.fromtimestamp(v.start)
        end = datetime.fromtimestamp(max(_visit_end(v, now), v.start))
        begin = _hour_of_day(start)
        stop = _hour_of_day(end) if end.date() == start.date() else 24.0
        out.append({"day": start.strftime("%Y-%m-%d"), "from": round(begin, 4),
                    "to": round(min(24.0, max(stop, begin + MIN_BAR_HOURS)), 4),
                    "start": format_time(v.start),
                    "end": format_time(v.end) if v.end > 0 else "in progress",
                    "minutes": round((end - start).total_seconds() / 60.0, 1),
                    "where": v.location or v.robot_id or "-",
                    "activity": v.dominant_activity or "-"})
    return out
