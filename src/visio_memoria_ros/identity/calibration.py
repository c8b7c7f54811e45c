"""Threshold calibration: accept, reject and margin for a target false-accept rate.

Calibration reads labelled probes scored against a gallery (``probe_outcomes``) and recommends:

- ``margin``: how far a face's best person must beat the runner-up person. The highest 3-decimal
  value below which at most ``margin_frr`` of the genuine probes' gaps fall (genuine probes whose
  best person is their own; gap = own score - best other person's score).
- ``accept_threshold``: the lowest 4-decimal value at which at most ``target_far`` of the
  impostor scores would be accepted *by the whole rule*: an impostor score counts only when it
  also clears the margin (a probe whose wrong person does not beat every other person by the
  margin cannot be falsely accepted). It is never below the threshold that alone, without the
  margin, holds the impostors to ``REJECT_FAR_FACTOR`` x ``target_far``.
- ``reject_threshold``: the lower of the highest 4-decimal value below which at most
  ``reject_frr`` of the genuine scores fall and the accept rule (without margin) at
  ``REJECT_FAR_FACTOR`` x ``target_far``, capped at accept: the uncertain band holds the
  strangers that come closest.

Scores are gathered on identities that the reported figures never use (``split_identities``):
calibrate on some people, report on the others.

``write_thresholds_yaml`` writes the result into the identity_node section of a parameter file,
changing only those lines.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .engine import EngineConfig, GalleryEntry, IdentityEngine
from .matcher import FrameScores

DEFAULT_REJECT_FRR = 0.01
DEFAULT_MARGIN_FRR = 0.01
#: The reject threshold is at most the accept rule at this many times the target FAR.
REJECT_FAR_FACTOR = 10.0


class CalibrationError(ValueError):
    """Calibration cannot be done or written; the message says why."""


@dataclass(frozen=True)
class ProbeOutcome:
    """How one labelled probe scored against a gallery.

    ``truth`` is the person id of the probe's own identity when it is enrolled, else None (a
    stranger). ``best``/``best_score``: the top person and its score; ``runner_up``: the best
    score of any other person. ``own_score``: the score of the probe's own person (None for a
    stranger). ``wrong_score``: the best score of a person that is not the probe's (what a false
    accept would be made at); ``wrong_gap``: that score minus the best score of every other
    person, own included (negative when the probe's own person, or another, is higher).
    """

    truth: int | None
    best: int
    best_score: float
    runner_up: float
    own_score: float | None
    wrong_score: float
    wrong_gap: float

    @property
    def gap(self) -> float:
        """Best score minus runner-up score."""
        return self.best_score - self.runner_up

    @property
    def top1_correct(self) -> bool:
        """An enrolled probe whose best person is its own."""
        return self.truth is not None and self.best == self.truth


def probe_outcome(scores: FrameScores, truth: int | None) -> ProbeOutcome:
    """The ``ProbeOutcome`` of one probe's per-person scores."""
    ranked = scores.ranked()
    if not ranked:
        return ProbeOutcome(truth, -1, -math.inf, -math.inf, None, -math.inf, -math.inf)
    best, best_score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else scores.floor
    own = scores.get(truth) if truth is not None else None
    wrong = [(p, s) for p, s in ranked if p != truth]
    if wrong:
        w_person, w_score = wrong[0]
        others = [s for p, s in ranked if p != w_person]
        w_gap = w_score - (max(others) if others else scores.floor)
    else:  # only the own person was retrieved: every other sits at or below the floor
        w_score, w_gap = scores.floor, scores.floor - best_score
    return ProbeOutcome(truth, int(best), float(best_score), float(runner_up),
                        None if own is None else float(own), float(w_score), float(w_gap))


def probe_outcomes(
    scores: Sequence[FrameScores], truths: Sequence[int | None]
) -> list[ProbeOutcome]:
    """``probe_outcome`` of each probe."""
    if len(scores) != len(truths):
        raise ValueError(f"{len(scores)} score sets but {len(truths)} truths")
    return [probe_outcome(s, t) for s, t in zip(scores, truths, strict=True)]


def enroll(
    config: EngineConfig, gallery: Mapping[str, Sequence[np.ndarray]], person_of: Mapping[str, int]
) -> tuple[IdentityEngine, list[GalleryEntry]]:
    """An engine whose gallery holds ``gallery``'s vectors ({identity: vectors}) under
    ``person_of[identity]``."""
    entries: list[GalleryEntry] = []
    for name in sorted(gallery):
        for vector in gallery[name]:
            entries.append(GalleryEntry(len(entries) + 1, person_of[name], name,
                                        np.asarray(vector, np.float32), config.embedder))
    engine = IdentityEngine(config)
    engine.load_gallery(entries)
    return engine, entries


def score_probes(
    engine: IdentityEngine,
    probes: Sequence[tuple[str, np.ndarray]],
    person_of: Mapping[str, int],
) -> list[ProbeOutcome]:
    """Outcome of each (identity, vector) probe; identities absent from the gallery are
    strangers."""
    if not probes:
        return []
    enrolled = set(engine.names())
    scores = engine.matcher.score(np.stack([np.asarray(v, np.float32) for _, v in probes]))
    truths = [person_of[n] if person_of.get(n) in enrolled else None for n, _ in probes]
    return probe_outcomes(scores, truths)


def leave_one_identity_out(
    config: EngineConfig,
    gallery: Mapping[str, Sequence[np.ndarray]],
    probes: Mapping[str, Sequence[np.ndarray]],
    identities: Sequence[str],
) -> list[ProbeOutcome]:
    """Outcomes over rotations: each identity in turn is a stranger (all its images probe)
    while the others are enrolled with their gallery vectors and probe with the rest."""
    person_of = {n: i + 1 for i, n in enumerate(sorted(identities))}
    out: list[ProbeOutcome] = []
    for held in sorted(identities):
        enrolled = {n: gallery[n] for n in identities if n != held and len(gallery.get(n, ()))}
        if not enrolled:
            continue
        engine, _ = enroll(config, enrolled, person_of)
        batch = [(n, v) for n in sorted(enrolled) for v in probes.get(n, ())]
        batch += [(held, v) for v in [*gallery.get(held, ()), *probes.get(held, ())]]
        out += score_probes(engine, batch, person_of)
    return out


def split_identities(names: Sequence[str], calibration: Sequence[str] | None = None,
                     *, fraction: float = 0.5) -> tuple[list[str], list[str]]:
    """(calibration identities, test identities): the given ones, or every k-th sorted name.

    Without ``calibration``, ``round(fraction * n)`` identities (at least 1, at most n - 1)
    spread evenly over the sorted names calibrate; the rest are the test identities.
    """
    pool = sorted(dict.fromkeys(names))
    if len(pool) < 2:
        raise CalibrationError("need at least 2 identities to keep calibration and test apart")
    if calibration is not None:
        cal = sorted(dict.fromkeys(calibration))
        unknown = [c for c in cal if c not in pool]
        if unknown:
            raise CalibrationError(f"no identity named {', '.join(unknown)} "
                                   f"(have: {', '.join(pool)})")
        if not cal or len(cal) == len(pool):
            raise CalibrationError("the calibration identities must leave test identities, "
                                   "and there must be at least one")
    else:
        if not 0.0 < fraction < 1.0:
            raise CalibrationError(f"fraction must be in (0, 1), got {fraction}")
        k = min(len(pool) - 1, max(1, round(fraction * len(pool))))
        picks = {int(i) for i in np.floor(np.arange(k) * len(pool) / k)}
        cal = [pool[i] for i in sorted(picks)]
    return cal, [n for n in pool if n not in cal]


def far_threshold(impostor: Sequence[float] | np.ndarray, rate: float) -> float:
    """Lowest 4-decimal t with #(impostor >= t) <= floor(rate * N); -1 when all may pass."""
    desc = np.sort(np.asarray(impostor, dtype=np.float64))[::-1]
    allowed = math.floor(rate * desc.size + 1e-9)
    if allowed >= desc.size or not math.isfinite(desc[allowed]):
        return -1.0
    return min(1.0, (math.floor(desc[allowed] * 1e4 + 1e-6) + 1) / 1e4)


def margin_for(genuine_gaps: Sequence[float], margin_frr: float) -> float:
    """Highest 3-decimal margin with #(gap < margin) <= floor(margin_frr * M); >= 0."""
    gaps = np.sort(np.asarray(genuine_gaps, dtype=np.float64))
    if gaps.size == 0:
        return 0.0
    k = math.floor(margin_frr * gaps.size + 1e-9)
    return max(0.0, math.floor(gaps[min(k, gaps.size - 1)] * 1e3 + 1e-6) / 1e3)


def _num(value: float, digits: int = 6) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def recommend_thresholds(
    genuine: Sequence[float],
    impostor: Sequence[float],
    target_far: float,
    reject_frr: float = DEFAULT_REJECT_FRR,
    *,
    genuine_gaps: Sequence[float] | None = None,
    impostor_gaps: Sequence[float] | None = None,
    margin_frr: float = DEFAULT_MARGIN_FRR,
) -> dict[str, Any]:
    """Accept/reject thresholds and margin for a target false-accept rate, from scores.

    ``genuine``: own-person scores of enrolled probes; ``impostor``: each probe's best wrong
    person's score. ``genuine_gaps``/``impostor_gaps`` (the ``ProbeOutcome`` gaps) enable the
    margin; without them the margin is 0. Raises ValueError on empty scores or a bad rate.
    """
    if not 0.0 < target_far < 1.0:
        raise ValueError(f"the target false-accept rate must be in (0, 1), got {target_far}")
    if not 0.0 <= reject_frr < 1.0:
        raise ValueError(f"the reject false-reject rate must be in [0, 1), got {reject_frr}")
    if not 0.0 <= margin_frr < 1.0:
        raise ValueError(f"the margin false-reject rate must be in [0, 1), got {margin_frr}")
    imp = np.asarray(impostor, dtype=np.float64)
    gen = np.sort(np.asarray(genuine, dtype=np.float64))
    if imp.size == 0:
        raise ValueError("no impostor scores to calibrate on (need at least 2 identities)")
    if gen.size == 0:
        raise ValueError("no genuine scores to calibrate on (need probes of enrolled identities)")
    margin = margin_for(genuine_gaps, margin_frr) if genuine_gaps is not None else 0.0
    if impostor_gaps is not None and margin > 0:
        i_gaps = np.asarray(impostor_gaps, dtype=np.float64)
        if i_gaps.shape != imp.shape:
            raise ValueError("impostor_gaps must have one gap per impostor score")
        # An impostor that does not clear the margin is never accepted, at any threshold.
        effective = np.where(i_gaps >= margin - 1e-9, imp, -np.inf)
    else:
        effective = imp
    # The margin never carries the whole load: without it, accept still holds the impostors
    # to REJECT_FAR_FACTOR x the target (the reject rule below).
    by_impostor = far_threshold(imp, min(0.5, REJECT_FAR_FACTOR * target_far))
    accept = max(far_threshold(effective, target_far), by_impostor)
    k = math.floor(reject_frr * gen.size + 1e-9)
    by_genuine = math.floor(gen[min(k, gen.size - 1)] * 1e4 + 1e-6) / 1e4
    reject = max(-1.0, min(by_genuine, by_impostor, accept))
    notes = []
    if target_far * imp.size < 1.0:
        notes.append(f"only {imp.size} impostor scores: a false-accept rate below "
                     f"{1.0 / imp.size:.4g} cannot be measured, so the accept threshold sits "
                     "just above the highest impostor score; collect more identities and images "
                     "for a threshold you can trust")
    if reject >= accept:
        notes.append("no uncertain band is left on this data (reject = accept): every face is "
                     "KNOWN or UNKNOWN; consider a lower reject threshold")
    accepted_gen = np.asarray(genuine, dtype=np.float64) >= accept
    if genuine_gaps is not None and len(genuine_gaps) == len(genuine):
        accepted_gen &= np.asarray(genuine_gaps, dtype=np.float64) >= margin - 1e-9
    return {
        "target_far": target_far, "reject_frr": reject_frr, "margin_frr": margin_frr,
        "impostor_scores": int(imp.size), "genuine_scores": int(gen.size),
        "far_resolution": _num(1.0 / imp.size),
        "accept_threshold": accept, "reject_threshold": reject, "margin": margin,
        "achieved": {
            "false_accept_rate": _num(float(np.mean(effective >= accept))),
            "false_reject_rate": _num(float(np.mean(~accepted_gen))),
            "genuine_unknown_rate": _num(float(np.mean(gen < reject))),
        },
        "note": "; ".join(notes) or None, "written_to": None,
    }


def recommend_from_outcomes(outcomes: Sequence[ProbeOutcome], target_far: float,
                            reject_frr: float = DEFAULT_REJECT_FRR,
                            margin_frr: float = DEFAULT_MARGIN_FRR) -> dict[str, Any]:
    """``recommend_thresholds`` on labelled probes (genuine gaps of top-1 correct probes)."""
    known = [o for o in outcomes if o.own_score is not None and math.isfinite(o.own_score)]
    genuine = [float(o.own_score) for o in known]  # type: ignore[arg-type]
    gaps = [o.gap if o.top1_correct else (o.own_score or 0.0) - o.best_score for o in known]
    imp = [o for o in outcomes if math.isfinite(o.wrong_score)]
    return recommend_thresholds(
        genuine, [o.wrong_score for o in imp], target_far, reject_frr,
        genuine_gaps=gaps, impostor_gaps=[o.wrong_gap for o in imp], margin_frr=margin_frr,
    )


_SECTION_RE = re.compile(r"""^["']?(?:[^\s:#"']*/)?identity_node["']?\s*:\s*(?:#.*)?$""")
_KEY_RE = r"""^(\s+)({key})(\s*:\s*)([^#\r\n]*?)(\s+#[^\r\n]*)?(\r?\n)?$"""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def write_thresholds_yaml(path: str | Path, accept: float, reject: float,
                          margin: float | None = None) -> None:
    """Set identity_node accept_threshold/reject_threshold (and accept_margin) in a YAML file.

    A line-based edit: every other line (comments included) stays byte for byte. Raises
    CalibrationError when the file has no single identity_node section holding the keys, or
    when the result would not load back with exactly those values changed.
    """
    import yaml

    from ..config.identity import check_params

    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"--write-yaml: {path} does not exist "
                               "(copy config/visio_memoria.yaml)")
    text = path.read_text(encoding="utf-8")
    try:
        before = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CalibrationError(f"--write-yaml: {path} is not valid YAML: "
                               f"{_one_line(str(exc))}") from exc
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _SECTION_RE.match(line)]
    if len(starts) != 1:
        what = "no identity_node section" if not starts else "several identity_node sections"
        raise CalibrationError(f"--write-yaml: {path} has {what}; refusing to edit it")
    start = starts[0]
    end = next((i for i in range(start + 1, len(lines))
                if lines[i][:1] not in ("", " ", "\t", "#", "\n", "\r")), len(lines))
    values: dict[str, float] = {"accept_threshold": accept, "reject_threshold": reject}
    if margin is not None:
        values["accept_margin"] = margin
    for key, value in values.items():
        pattern = re.compile(_KEY_RE.format(key=key))
        hits = [i for i in range(start + 1, end) if pattern.match(lines[i])]
        if len(hits) != 1:
            what = "no" if not hits else "more than one"
            raise CalibrationError(f"--write-yaml: the identity_node section of {path} has "
                                   f"{what} {key} key; refusing to edit it (add the key, see "
                                   "config/visio_memoria.yaml)")
        m = pattern.match(lines[hits[0]])
        assert m is not None
        indent, name, colon, _, comment, newline = m.groups()
        lines[hits[0]] = f"{indent}{name}{colon}{value:.4f}{comment or ''}{newline or ''}"
    new_text = "".join(lines)
    after = yaml.safe_load(new_text) or {}
    key = next(k for k in after if _SECTION_RE.match(f"{k}:"))
    got = (after[key] or {}).get("ros__parameters", {}) or {}
    expected = json.loads(json.dumps(before))
    exp_params = (expected[key] or {}).get("ros__parameters", {}) or {}
    exp_params.update(values)
    if after != expected or any(got.get(k) != round(v, 4) for k, v in values.items()):
        raise CalibrationError(f"--write-yaml: editing {path} line by line would change more "
                               "than the thresholds; refusing (set them by hand)")
    problem = check_params(got)
    if problem:
        raise CalibrationError(f"--write-yaml: {problem}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(new_text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
