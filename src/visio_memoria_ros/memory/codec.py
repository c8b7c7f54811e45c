"""Blob codecs: crops as compressed images (cv2.imencode) and vectors as float32 bytes."""

from __future__ import annotations

import cv2
import numpy as np

from .errors import MemoryStoreError

CROP_FORMATS = ("jpeg", "png", "webp")
_EXT = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
MAX_CROP_SIDE = 4096


class CropCodec:
    """Encodes RGB crops to JPEG/PNG/WebP bytes and back; ``quality`` 1..100 (PNG: ignored)."""

    def __init__(self, fmt: str = "jpeg", quality: int = 90) -> None:
        fmt = fmt.lower()
        if fmt == "jpg":
            fmt = "jpeg"
        if fmt not in CROP_FORMATS:
            raise ValueError(f"crop format {fmt!r} is not one of {list(CROP_FORMATS)}")
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"crop quality must be within 1..100, got {quality}")
        self.format = fmt
        self.quality = int(quality)

    def _params(self) -> list[int]:
        if self.format == "jpeg":
            return [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        if self.format == "webp":
            return [cv2.IMWRITE_WEBP_QUALITY, self.quality]
        return [cv2.IMWRITE_PNG_COMPRESSION, 6]

    def encode(self, crop: np.ndarray) -> bytes:
        """Return the compressed bytes of an RGB (H, W, 3) or grey (H, W) uint8 crop."""
        img = np.asarray(crop)
        if img.dtype != np.uint8:
            raise MemoryStoreError(f"a crop must be uint8, got {img.dtype}")
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
            raise MemoryStoreError(f"a crop must be (H, W, 3) RGB or (H, W) grey, got {img.shape}")
        h, w = img.shape[:2]
        if h == 0 or w == 0 or max(h, w) > MAX_CROP_SIDE:
            raise MemoryStoreError(f"a crop must be 1..{MAX_CROP_SIDE} px a side, got {w}x{h}")
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
        ok, buf = cv2.imencode(_EXT[self.format], np.ascontiguousarray(bgr), self._params())
        if not ok:
            raise MemoryStoreError(f"OpenCV could not encode the crop as {self.format}")
        return buf.tobytes()

    @staticmethod
    def decode(data: bytes) -> np.ndarray:
        """Return the RGB (H, W, 3) uint8 image stored in ``data`` (any supported format)."""
        buf = np.frombuffer(data, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None:
            raise MemoryStoreError("a stored crop could not be decoded (corrupt blob?)")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def vector_to_blob(vector: np.ndarray) -> bytes:
    """Return the little-endian float32 bytes of a 1-D vector."""
    return np.asarray(vector, dtype="<f4").reshape(-1).tobytes()


def blob_to_vector(blob: bytes, dim: int) -> np.ndarray:
    """Return the float32 vector stored in ``blob``; raises when its length is not ``dim``."""
    v = np.frombuffer(blob, dtype="<f4")
    if v.shape[0] != dim:
        raise MemoryStoreError(f"a stored vector has {v.shape[0]} values, expected {dim}")
    return v.astype(np.float32)
