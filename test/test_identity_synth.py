"""Synthetic face-like embeddings for the identity tests, and checks that they look like faces.

Each identity is a random unit centre; a sample is the centre plus isotropic noise of variance
``s2`` (drawn per sample), renormalised. In high dimension two samples of one identity have
cosine ~ 1 / sqrt((1 + s2_a) (1 + s2_b)), i.e. 0.6-0.85 for s2 in [0.2, 0.6], and strangers
have cosine ~ 0 (std 1/sqrt(dim)), like real face embeddings.
"""

from __future__ import annotations

import numpy as np

NOISE2 = (0.2, 0.6)


def centres(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """n random unit identity centres."""
    c = rng.standard_normal((n, dim)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def samples(
    centre_rows: np.ndarray, rng: np.random.Generator, noise2: tuple[float, float] = NOISE2
) -> np.ndarray:
    """One noisy unit sample per given centre row."""
    n, dim = centre_rows.shape
    s2 = rng.uniform(*noise2, size=(n, 1)).astype(np.float32)
    x = centre_rows + np.sqrt(s2) * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


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
    t = target / np.linalg.norm(target)
    r = rng.standard_normal(t.shape).astype(np.float64)
    r -= r.dot(t) * t
    r /= np.linalg.norm(r)
    return (sim * t + np.sqrt(1 - sim**2) * r).astype(np.float32)


def test_synthetic_cosines_look_like_face_embeddings() -> None:
    for dim in (128, 768):
        _, _, pids, vecs = gallery(40, 5, dim, seed=dim)
        sims = vecs @ vecs.T
        same = (pids[:, None] == pids[None, :]) & ~np.eye(len(pids), dtype=bool)
        diff = pids[:, None] != pids[None, :]
        assert 0.6 <= np.median(sims[same]) <= 0.85
        assert abs(np.median(sims[diff])) < 0.05
        assert np.percentile(sims[diff], 99.9) < 0.35


def test_with_similarity_is_exact() -> None:
    rng = np.random.default_rng(1)
    t = centres(1, 128, rng)[0]
    for s in (-0.2, 0.0, 0.41, 0.99):
        v = with_similarity(t, s, rng)
        assert abs(float(v @ t) - s) < 1e-5
        assert abs(float(np.linalg.norm(v)) - 1) < 1e-5
