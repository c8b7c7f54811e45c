"""What the repositories share: blob encoding and ``IN (...)`` placeholders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..codec import CropCodec
from ..database import Database, VectorCodec
from ..privacy import BlobCipher


def in_marks(ids: Sequence[Any]) -> str:
    """``?,?,?`` for an ``IN (...)`` list of ``len(ids)`` values."""
    return ",".join("?" * len(ids))


class Blobs:
    """Vectors through the backend's codec; crops compressed, then encrypted with a key."""

    def __init__(self, vectors: VectorCodec, cipher: BlobCipher, codec: CropCodec,
                 store_crops: bool = True) -> None:
        self.vectors = vectors
        self.cipher = cipher
        self.codec = codec
        self.store_crops = store_crops

    def vector(self, v: np.ndarray) -> Any:
        """The column value of a vector."""
        return self.vectors.dump(v)

    def unvector(self, value: Any, dim: int) -> np.ndarray:
        """The vector of a column value."""
        return self.vectors.load(value, dim)

    def crop(self, crop: np.ndarray | None) -> bytes | None:
        """The stored bytes of a crop (None when crops are not kept)."""
        if crop is None or not self.store_crops:
            return None
        return self.cipher.encrypt(self.codec.encode(crop), "crop")

    def uncrop(self, blob: bytes | None) -> np.ndarray | None:
        """The RGB crop of stored bytes."""
        if blob is None:
            return None
        return self.codec.decode(self.cipher.decrypt(blob, "crop"))


class Repository:
    """A repository works through its database and the blob codecs."""

    def __init__(self, db: Database, blobs: Blobs) -> None:
        self.db = db
        self.blobs = blobs
