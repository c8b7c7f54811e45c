"""Synthetic face embeddings for the identity tests, and checks that they look like real ones.

The vectors come from ``identity.simulation.DLIB_MODEL``: fitted to the similarities the default
embedder (the dlib ResNet) gives on the calibration identities, so strangers sit around cosine
0.85 from everybody (not 0, as random vectors would) and two images of one person around 0.96.
An open-set test on these vectors can fail: a threshold too low accepts strangers.

``centres`` are noise-free identity embeddings (unit vectors), ``samples`` one image of each
given centre, ``gallery`` a whole enrolled set, ``with_similarity`` a vector at an exact cosine
from a given one (to aim at a decision boundary).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from visio_memoria_ros.config.identity import embedder_defaults
from visio_memoria_ros.identity.matcher import Thresholds
from visio_memoria_ros.identity.simulation import (
    DLIB_MODEL,
    EmbeddingModel,
    pair_stats,
    with_cosine,
)

#: The dlib defaults (config/identity.py): what the synthetic vectors are tested against.
DLIB = embedder_defaults("dlib_resnet_v1_128")
DLIB_THRESHOLDS = Thresholds(accept=DLIB.accept, reject=DLIB.reject, margin=DLIB.margin)
#: Pair cosines measured on the calibration identities (config/identity.py): genuine mean/std,
#: different people mean/std.
MEASURED = (0.9586, 0.0171, 0.8466, 0.0261)


def model(dim: int) -> EmbeddingModel:
    """The dlib-like model in ``dim`` dimensions."""
    if dim == DLIB_MODEL.dim:
        return DLIB_MODEL
    return replace(DLIB_MODEL, dim=dim, identity_dim=min(DLIB_MODEL.identity_dim, dim // 2))


def centres(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """n noise-free identity embeddings (unit rows)."""
    m = model(dim)
    return m.centres(m.identities(n, rng))


def samples(centre_rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One image embedding per given centre row."""
    return model(np.atleast_2d(centre_rows).shape[1]).noisy(centre_rows, rng)


def gallery(
    n_people: int, per_person: int, dim: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(centres, vector ids, person ids, vectors) for a gallery of n_people x per_person."""
    rng = np.random.default_rng(seed)
    c = centres(n_people, dim, rng)
    pids = np.repeat(np.arange(n_people, dtype=np.int64), per_person)
    vecs = samples(c[pids], rng)
    ids = np.arange(len(pids), dtype=np.int64) + 1000
    return c, ids, pids, vecs


def with_similarity(target: np.ndarray, sim: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose cosine with the unit vector ``target`` is exactly ``sim``."""
    return with_cosine(target, sim, rng)


def test_synthetic_cosines_match_the_measured_embedder() -> None:
    got = pair_stats(DLIB_MODEL, seed=3)
    tolerance = (0.005, 0.004, 0.005, 0.004)
    for g, m, tol in zip(got, MEASURED, tolerance, strict=True):
        assert abs(g - m) <= tol, (got, MEASURED)
    # through this module's helpers too, and in 768 dimensions
    for dim in (128, 768):
        _, _, pids, vecs = gallery(40, 5, dim, seed=dim)
        sims = vecs @ vecs.T
        same = (pids[:, None] == pids[None, :]) & ~np.eye(len(pids), dtype=bool)
        diff = pids[:, None] != pids[None, :]
        assert 0.94 <= np.median(sims[same]) <= 0.975
        assert 0.82 <= np.median(sims[diff]) <= 0.87  # strangers are far from orthogonal
        assert np.percentile(sims[diff], 99.9) > 0.9  # and some come close


def test_strangers_are_not_trivially_rejected() -> None:
    """Below the calibrated threshold a stranger is often accepted: the tests can fail."""
    rng = np.random.default_rng(4)
    c = centres(200, 128, rng)
    probes = samples(c[:100], rng)
    best_other = (probes @ c[100:].T).max(axis=1)
    assert np.mean(best_other >= 0.85) > 0.9  # the old synthetic accept threshold of 0.5 ...
    assert np.mean(best_other >= DLIB_THRESHOLDS.accept) < 0.1  # ... the calibrated one


def test_with_similarity_is_exact() -> None:
    rng = np.random.default_rng(1)
    t = centres(1, 128, rng)[0]
    for s in (-0.2, 0.0, 0.41, 0.99):
        v = with_similarity(t, s, rng)
        assert abs(float(v @ t) - s) < 1e-5
        assert abs(float(np.linalg.norm(v)) - 1) < 1e-5
