"""Identification metrics as the robot uses identity: open-set rates and greetings per visit.

- ``open_set_rates`` / ``dir_at_far``: the detection-and-identification rate (DIR: enrolled
  probes named as themselves, KNOWN) against the false-accept rate (FAR: stranger probes KNOWN
  as anyone), single embeddings, with the full acceptance rule (threshold and margin).
- ``replay_visits``: a *visit* is one face track with its embeddings, decided by
  ``IdentityEngine`` (the per-track voter and the greeting policy) exactly as identity_node
  decides it. A stranger visit that is greeted is a false greeting; an enrolled person's visit
  is greeted correctly, greeted with another name, or not greeted.
- ``rate_bounds``: exact (Clopper-Pearson) confidence bounds for a count out of n, so a small
  sample says how little it proves.
- ``pair_rates``: verification of image pairs (same person or not) at one threshold, the best
  threshold on those pairs and the ROC AUC (``visio-memoria eval pairs``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..core.types import FaceObservation, Status
from .calibration import ProbeOutcome
from .engine import EngineConfig, GalleryEntry, IdentityEngine
from .matcher import Thresholds

#: Seconds after a visit's first embedding at which the next ones arrive: the embed policy's
#: first two 0.2 s apart, then its 0.5 s minimum interval (embedding_node defaults).
VISIT_SCHEDULE_S = (0.0, 0.2, 0.7, 1.2, 1.7, 2.2, 2.7, 3.2)


def rate_bounds(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact (Clopper-Pearson) bounds of a rate observed as k out of n."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    from scipy.stats import beta

    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact upper bound of a rate observed as k out of n (k=0: 1 - (1-c)^(1/n))."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    if k == n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, k + 1, n - k))


def accepted(o: ProbeOutcome, thresholds: Thresholds) -> bool:
    """Whether a probe's best person is accepted by the single-embedding rule."""
    return (
        math.isfinite(o.best_score)
        and o.best_score >= thresholds.accept
        and thresholds.clear_of(o.best_score, o.runner_up)
    )


@dataclass(frozen=True)
class OpenSetRates:
    """Single-embedding open-set rates at one operating point."""

    known: int
    strangers: int
    dir: float | None  # enrolled probes KNOWN as themselves / enrolled probes
    misidentified: float | None  # enrolled probes KNOWN as someone else / enrolled probes
    far: float | None  # stranger probes KNOWN as anyone / stranger probes
    false_accepts: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return {"known": self.known, "strangers": self.strangers,
                "dir": _round(self.dir), "misidentified": _round(self.misidentified),
                "far": _round(self.far), "false_accepts": self.false_accepts}


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def open_set_rates(outcomes: Sequence[ProbeOutcome], thresholds: Thresholds) -> OpenSetRates:
    """DIR, misidentification and FAR of labelled probes at ``thresholds``."""
    known = [o for o in outcomes if o.truth is not None]
    strangers = [o for o in outcomes if o.truth is None]
    hits = sum(1 for o in known if accepted(o, thresholds) and o.best == o.truth)
    wrong = sum(1 for o in known if accepted(o, thresholds) and o.best != o.truth)
    fa = sum(1 for o in strangers if accepted(o, thresholds))
    return OpenSetRates(
        len(known), len(strangers),
        hits / len(known) if known else None,
        wrong / len(known) if known else None,
        fa / len(strangers) if strangers else None,
        fa + wrong,
    )


def dir_at_far(outcomes: Sequence[ProbeOutcome], far: float, margin: float = 0.0
               ) -> dict[str, object]:
    """DIR at the threshold where ``far`` of the stranger probes are accepted (margin kept).

    The threshold is read off these strangers (an operating point of the curve, not a
    calibration); ``resolvable`` says whether there are enough strangers (far x n >= 1).
    """
    from .calibration import far_threshold

    strangers = [o for o in outcomes if o.truth is None]
    if not strangers:
        return {"far": far, "threshold": None, "dir": None, "strangers": 0,
                "resolvable": False}
    eligible = [o.best_score if o.gap >= margin - 1e-9 else -math.inf for o in strangers]
    t = far_threshold(eligible, far)
    th = Thresholds(accept=t, reject=-1.0, margin=margin)
    rates = open_set_rates(outcomes, th)
    return {"far": far, "threshold": t, "dir": _round(rates.dir), "achieved_far": _round(rates.far),
            "strangers": len(strangers), "resolvable": far * len(strangers) >= 1.0}


@dataclass(frozen=True)
class PairRates:
    """Verification of image pairs: a pair is called "same" when its similarity >= a threshold."""

    #: Fraction of pairs called right at the threshold.
    accuracy: float
    #: Same-person pairs called same (None: no such pair).
    true_accept_rate: float | None
    #: Different-person pairs called same (None: no such pair).
    false_accept_rate: float | None
    #: The threshold (one of the similarities, or inf: call nothing same) with the best
    #: accuracy on these pairs; the lowest such threshold on a tie.
    best_threshold: float
    best_accuracy: float
    #: Area under the ROC curve (None unless both kinds of pair are present).
    roc_auc: float | None


def pair_rates(similarities: Sequence[float] | np.ndarray, same: Sequence[int] | np.ndarray,
               threshold: float) -> PairRates:
    """Verification rates of pairs with these similarities and truths (1 = same person)."""
    s = np.asarray(similarities, dtype=np.float64)
    y = np.asarray(same, dtype=int)
    if s.size == 0 or s.shape != y.shape:
        raise ValueError(f"need as many truths as similarities (> 0), got {s.shape}, {y.shape}")
    pred = s >= threshold
    candidates = np.unique(np.concatenate([s, [np.inf]]))
    accs = [float(np.mean((s >= t) == (y == 1))) for t in candidates]
    best = int(np.argmax(accs))
    auc = None
    if 0 < y.sum() < y.size:
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(y, s))
    return PairRates(
        accuracy=float(np.mean(pred == (y == 1))),
        true_accept_rate=float(pred[y == 1].mean()) if (y == 1).any() else None,
        false_accept_rate=float(pred[y == 0].mean()) if (y == 0).any() else None,
        best_threshold=float(candidates[best]),
        best_accuracy=accs[best],
        roc_auc=auc,
    )


@dataclass(frozen=True)
class Visit:
    """One face track: its embeddings in order, the true person id (None = a stranger)."""

    vectors: Sequence[np.ndarray]
    truth: int | None = None
    label: str = ""


@dataclass
class VisitReport:
    """What the engine did with a list of visits."""

    stranger_visits: int = 0
    false_greetings: int = 0
    known_visits: int = 0
    greeted_correctly: int = 0
    greeted_wrongly: int = 0
    greeted_labels: list[str] = field(default_factory=list)

    def per_1000(self) -> float | None:
        """False greetings per 1000 stranger visits."""
        if not self.stranger_visits:
            return None
        return 1000.0 * self.false_greetings / self.stranger_visits

    def to_dict(self, confidence: float = 0.95) -> dict[str, object]:
        """JSON-ready fields with the one-sided upper bound of the false-greeting rate."""
        bound = (upper_bound(self.false_greetings, self.stranger_visits, confidence)
                 if self.stranger_visits else None)
        return {
            "stranger_visits": self.stranger_visits, "false_greetings": self.false_greetings,
            "false_greetings_per_1000": _round(self.per_1000(), 3),
            "upper_per_1000": _round(None if bound is None else 1000.0 * bound, 3),
            "confidence": confidence,
            "known_visits": self.known_visits, "greeted_correctly": self.greeted_correctly,
            "greeted_wrongly": self.greeted_wrongly,
            "greeting_rate": _round(self.greeted_correctly / self.known_visits
                                    if self.known_visits else None),
        }


def replay_visits(
    config: EngineConfig,
    entries: Iterable[GalleryEntry],
    visits: Sequence[Visit],
    *,
    schedule: Sequence[float] = VISIT_SCHEDULE_S,
) -> VisitReport:
    """Run each visit as one track through an ``IdentityEngine``; count the greetings.

    Visits are kept apart in time (longer than the greeting cooldown, the visit absence and the
    track timeout), so each is decided on its own as a fresh visit. A visit's embeddings arrive
    at ``schedule`` (one embedding per entry; a visit longer than the schedule is cut).
    """
    engine = IdentityEngine(config)
    engine.load_gallery(entries)
    names = engine.names()
    gap = config.greeting_cooldown + config.visit_absence + config.track_timeout + 10.0
    span = max(schedule) if schedule else 0.0
    report = VisitReport()
    for n, visit in enumerate(visits):
        t0 = n * (gap + span)
        greeted: set[int] = set()
        for t_rel, vector in zip(schedule, visit.vectors, strict=False):
            face = FaceObservation(bbox=[0, 0, 64, 64], score=1.0, detector="replay",
                                   track_id=n, embedding=vector, embedder=config.embedder,
                                   quality=1.0)
            out = engine.process([face], t0 + t_rel)
            greeted.update(g.person_id for g in out.greetings if g.person_id >= 0)
            greeted.update(d.person_id for d in out.decisions if d.status is Status.KNOWN)
        if visit.truth is None:
            report.stranger_visits += 1
            if greeted:
                report.false_greetings += 1
                report.greeted_labels.append(
                    f"{visit.label} -> {', '.join(names.get(p, str(p)) for p in sorted(greeted))}")
        else:
            report.known_visits += 1
            if greeted - {visit.truth}:
                report.greeted_wrongly += 1
                report.greeted_labels.append(
                    f"{visit.label} -> {', '.join(names.get(p, str(p)) for p in sorted(greeted))}")
            elif visit.truth in greeted:
                report.greeted_correctly += 1
    return report


def image_visits(
    vectors: Mapping[str, Sequence[np.ndarray]],
    truth: Mapping[str, int | None],
    length: int,
    *,
    per_identity: int | None = None,
    rng: np.random.Generator | None = None,
) -> list[Visit]:
    """Visits of ``length`` embeddings made from each identity's still images.

    Without ``rng``: one visit per image, the image and the ones after it (wrapping), in
    order. With ``rng``: ``per_identity`` visits of images drawn in random order without
    repetition within a visit.
    """
    if length < 1:
        raise ValueError(f"a visit needs at least one embedding, got length {length}")
    out: list[Visit] = []
    for name in sorted(vectors):
        vecs = list(vectors[name])
        if not vecs:
            continue
        k = min(length, len(vecs))
        if rng is None:
            for i in range(len(vecs)):
                out.append(Visit([vecs[(i + j) % len(vecs)] for j in range(k)], truth[name],
                                 f"{name}#{i}"))
        else:
            for i in range(per_identity or len(vecs)):
                order = rng.permutation(len(vecs))[:k]
                out.append(Visit([vecs[j] for j in order], truth[name], f"{name}#{i}"))
    return out
