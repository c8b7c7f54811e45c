"""Input checks shared by every store backend: names, embedder ids, vectors, ids, times."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable

import numpy as np

from .errors import MemoryStoreError

MAX_NAME_LENGTH = 64
MAX_EMBEDDER_LENGTH = 128
MAX_LABEL_LENGTH = 256
MAX_DIM = 16384

# Character categories never allowed in a name: controls, surrogates, private use, unassigned,
# line/paragraph separators. Bidi overrides/isolates are refused too (they disguise names).
_BAD_CATEGORIES = {"Cc", "Cs", "Co", "Cn", "Zl", "Zp"}
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def _bad_char(text: str) -> str | None:
    """Return the first disallowed character of ``text``, or None."""
    for ch in text:
        if unicodedata.category(ch) in _BAD_CATEGORIES or ch in _BIDI_CONTROLS:
            return ch
    return None


def validate_name(name: object) -> str:
    """Return ``name`` stripped, or raise MemoryStoreError saying why it is not a usable name."""
    if not isinstance(name, str):
        raise MemoryStoreError(f"a name must be text, got {type(name).__name__}")
    stripped = name.strip()
    if not stripped:
        raise MemoryStoreError("the name is empty (or only whitespace)")
    if len(stripped) > MAX_NAME_LENGTH:
        raise MemoryStoreError(
            f"the name is {len(stripped)} characters long; at most {MAX_NAME_LENGTH} are allowed"
        )
    bad = _bad_char(stripped)
    if bad is not None:
        raise MemoryStoreError(
            f"the name contains a control or invisible character (U+{ord(bad):04X}); "
            "use printable characters only"
        )
    return stripped


def name_key(name: str) -> str:
    """Return the key under which names are unique: NFC-normalised and case-folded."""
    return unicodedata.normalize("NFC", name).casefold()


def validate_label(value: object, what: str, *, allow_empty: bool = True,
                   max_length: int = MAX_LABEL_LENGTH) -> str:
    """Return a short free-text label (embedder id, location, robot id, activity) or raise."""
    if not isinstance(value, str):
        raise MemoryStoreError(f"{what} must be text, got {type(value).__name__}")
    value = value.strip()
    if not value and not allow_empty:
        raise MemoryStoreError(f"{what} must not be empty")
    if len(value) > max_length:
        raise MemoryStoreError(f"{what} is {len(value)} characters long; at most {max_length}")
    bad = _bad_char(value)
    if bad is not None:
        raise MemoryStoreError(f"{what} contains a control character (U+{ord(bad):04X})")
    return value


def validate_embedder(embedder: object) -> str:
    """Return a non-empty embedder id or raise."""
    return validate_label(embedder, "the embedder id", allow_empty=False,
                          max_length=MAX_EMBEDDER_LENGTH)


def validate_vector(vector: object, expected_dim: int | None = None) -> np.ndarray:
    """Return ``vector`` as an L2-normalised float32 1-D array, or raise saying what is wrong."""
    try:
        v = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise MemoryStoreError(f"the embedding is not a numeric array: {exc}") from exc
    if v.ndim != 1 and not (v.ndim == 2 and 1 in v.shape):
        raise MemoryStoreError(f"an embedding is one vector, got an array of shape {v.shape}")
    v = v.reshape(-1)
    if v.size == 0:
        raise MemoryStoreError("the embedding is empty")
    if v.size > MAX_DIM:
        raise MemoryStoreError(f"the embedding has {v.size} values; at most {MAX_DIM}")
    if expected_dim is not None and v.size != expected_dim:
        raise MemoryStoreError(
            f"the embedding has {v.size} values but this embedder's vectors have {expected_dim}"
        )
    if not np.all(np.isfinite(v)):
        raise MemoryStoreError("the embedding contains NaN or infinite values")
    norm = float(np.linalg.norm(v.astype(np.float64)))
    if norm < 1e-9:
        raise MemoryStoreError("the embedding is all zeros")
    return (v.astype(np.float64) / norm).astype(np.float32)


def validate_time(t: object, what: str = "the time") -> float:
    """Return ``t`` as a finite, non-negative float of seconds or raise."""
    if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)):
        raise MemoryStoreError(f"{what} must be a number of seconds, got {type(t).__name__}")
    value = float(t)
    if not math.isfinite(value) or value < 0:
        raise MemoryStoreError(f"{what} must be finite and >= 0, got {value}")
    return value


def validate_quality(q: object) -> float:
    """Return a finite quality score or raise."""
    if isinstance(q, bool) or not isinstance(q, (int, float, np.floating, np.integer)):
        raise MemoryStoreError(f"the quality must be a number, got {type(q).__name__}")
    value = float(q)
    if not math.isfinite(value):
        raise MemoryStoreError(f"the quality must be finite, got {value}")
    return value


def validate_id(value: object, what: str) -> int:
    """Return ``value`` as an int id >= 0 or raise naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MemoryStoreError(f"{what} must be an integer, got {type(value).__name__}")
    ident = int(value)
    if ident < 0:
        raise MemoryStoreError(f"{what} must be >= 0, got {ident}")
    if ident >= 2**63:
        raise MemoryStoreError(f"{what} {ident} is out of range")
    return ident


def validate_ids(values: Iterable[object], what: str) -> list[int]:
    """Return distinct ids in the given order, or raise when one is invalid or ids is empty."""
    out: list[int] = []
    seen: set[int] = set()
    for v in values:
        ident = validate_id(v, what)
        if ident not in seen:
            seen.add(ident)
            out.append(ident)
    if not out:
        raise MemoryStoreError(f"no {what}s given")
    return out
