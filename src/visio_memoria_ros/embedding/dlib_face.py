"""dlib's ResNet face embedder (128-d) run by dlib's C++, its face-chip helper, and dlib-landmark
helpers. ``dlib_torch`` runs the same network in PyTorch on the same chips."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.face_crop import ARCFACE_TEMPLATE_112
from ..core.models import installed_package_dir
from .base import check_canonical_crops, empty_embeddings, finish_embeddings

LOG = logging.getLogger(__name__)

#: Where the 5-point shape predictor starts on a canonical crop: (left, top, right, bottom)
#: [px], a box like the ones dlib's HOG frontal-face detector gives (the predictor was trained
#: on such boxes). Chosen on calibration data only: the HOG boxes on the BBT calibration
#: identities' crops average (52, 75, 138, 162) (std 6-8 px; ``python
#: bench/measure_alignment.py``), but started from that box the chips separate the calibration
#: people worse than from this larger one (bench_identity.py's calibration table, centroid:
#: ROC AUC 0.9914 against 0.9970, smallest genuine lead over the runner-up 0.014 against
#: 0.033), so this box stays. It was first measured as the HOG mean on all 40 BBT gallery crops.
DLIB_BOX_IN_CANONICAL = (46, 60, 147, 161)

#: dlib's 5-point "nose" is the base of the nose, below the ArcFace nose tip. Its mean position
#: in the 112x112 ArcFace frame (eyes aligned to the template) on the BBT calibration
#: identities' crops (std 3-4 px), measured by ``python bench/measure_alignment.py``.
DLIB_NOSE_BASE_112 = np.array([55.3, 81.8], dtype=np.float32)


def _similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity (Umeyama, no reflection) mapping ``src`` onto ``dst``."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    var = (s**2).sum() / len(src)
    if var <= 0:
        raise ValueError("landmarks are degenerate (all points coincide)")
    scale = np.trace(np.diag(sig) @ sign) / var
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def landmarks_from_dlib5(points: np.ndarray) -> np.ndarray:
    """Return the 5 ArcFace-order landmarks (5, 2) estimated from dlib's 5-point shape.

    dlib gives two corners per eye and the nose base; the eye centres are measured, the nose
    tip and mouth corners come from the ArcFace template fitted to (eye centres, nose base).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(5, 2)
    if not np.all(np.isfinite(pts)):
        raise ValueError("dlib landmarks contain NaN or infinite values")
    eye_a, eye_b = pts[0:2].mean(0), pts[2:4].mean(0)
    left_eye, right_eye = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    measured = np.stack([left_eye, right_eye, pts[4]])
    template = np.vstack([ARCFACE_TEMPLATE_112[:2], DLIB_NOSE_BASE_112]).astype(np.float64)
    to_image = _similarity_lstsq(template, measured)
    full = ARCFACE_TEMPLATE_112.astype(np.float64) @ to_image[:, :2].T + to_image[:, 2]
    full[0], full[1] = left_eye, right_eye
    return full.astype(np.float32)


def default_model_paths() -> tuple[str, str]:
    """The dlib recognition and 5-point model files shipped in ``face_recognition_models``.

    Located without importing the package (its ``__init__`` needs the deprecated pkg_resources).
    """
    package = installed_package_dir("face_recognition_models")
    if package is None:
        raise FileNotFoundError(
            "dlib model paths not given and the face_recognition_models package is not "
            "installed (pip install face_recognition_models); see models/README.md"
        )
    models = package / "models"
    return (
        str(models / "dlib_face_recognition_resnet_model_v1.dat"),
        str(models / "shape_predictor_5_face_landmarks.dat"),
    )


def require_file(path: str | Path, what: str) -> str:
    """Return ``path`` as str, or raise FileNotFoundError naming it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found at {p}; see models/README.md")
    return str(p)


class DlibFaceChipper:
    """dlib's 150x150 face chip of a canonical crop: 5-point shape predictor + get_face_chip.

    The predictor starts from ``predictor_box``, where dlib's HOG detector puts its box on a
    canonical crop; the chip is what dlib's ResNet was trained on (padding 0.25).
    """

    def __init__(
        self,
        shape_predictor_path: str | Path | None = None,
        *,
        predictor_box: tuple[int, int, int, int] = DLIB_BOX_IN_CANONICAL,
        size: int = 150,
        padding: float = 0.25,
    ) -> None:
        """Load the 5-point shape predictor once; None = the face_recognition_models copy."""
        import dlib

        if shape_predictor_path is None:
            shape_predictor_path = default_model_paths()[1]
        path = require_file(shape_predictor_path, "dlib 5-point shape predictor")
        self._dlib = dlib
        try:
            self._predictor = dlib.shape_predictor(path)
        except RuntimeError as exc:  # dlib's serialization_error
            raise ValueError(f"dlib cannot read the shape predictor {path}: {exc}") from exc
        self._box = dlib.rectangle(*(int(v) for v in predictor_box))
        self._size = int(size)
        self._padding = float(padding)
        self.path = path

    def chips(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Return one (size, size, 3) uint8 RGB chip per validated canonical crop."""
        out = []
        for crop in crops:
            shape = self._predictor(crop, self._box)
            out.append(
                self._dlib.get_face_chip(crop, shape, size=self._size, padding=self._padding)
            )
        return out


class DlibFaceEmbedder:
    """dlib ResNet (128-d) run by dlib's C++ on dlib's own face chip of the canonical crop."""

    def __init__(
        self,
        *,
        recognition_model_path: str | Path | None = None,
        shape_predictor_path: str | Path | None = None,
        num_jitters: int = 0,
        predictor_box: tuple[int, int, int, int] = DLIB_BOX_IN_CANONICAL,
    ) -> None:
        """Load both dlib models once; empty paths mean the face_recognition_models copies."""
        import dlib

        if recognition_model_path is None or shape_predictor_path is None:
            default_rec, default_sp = default_model_paths()
            recognition_model_path = recognition_model_path or default_rec
            shape_predictor_path = shape_predictor_path or default_sp
        if num_jitters < 0:
            raise ValueError(f"num_jitters must be >= 0, got {num_jitters}")
        rec = require_file(recognition_model_path, "dlib face recognition model")
        self._chipper = DlibFaceChipper(shape_predictor_path, predictor_box=predictor_box)
        try:
            self._facerec = dlib.face_recognition_model_v1(rec)
        except RuntimeError as exc:  # dlib's serialization_error
            raise ValueError(f"dlib cannot read the face recognition model {rec}: {exc}") from exc
        self._num_jitters = int(num_jitters)
        LOG.info("dlib face embedder (dlib C++) loaded: %s, %s", rec, self._chipper.path)

    @property
    def id(self) -> str:
        """Embedder id stored with every vector."""
        return "dlib_resnet_v1_128"

    @property
    def dim(self) -> int:
        """Embedding length (128)."""
        return 128

    def face_chips(self, canonical_crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Return dlib's 150x150 aligned chip for each canonical crop (what the ResNet sees)."""
        return self._chipper.chips(check_canonical_crops(canonical_crops))

    def raw_descriptors(self, canonical_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return dlib's unnormalised (N, 128) descriptors (its 0.6 Euclidean convention)."""
        chips = self.face_chips(canonical_crops)
        if not chips:
            return empty_embeddings(self.dim)
        descriptors = self._facerec.compute_face_descriptor(chips, self._num_jitters)
        return np.array([np.asarray(d) for d in descriptors], dtype=np.float32).reshape(-1, 128)

    def embed(self, canonical_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return (N, 128) float32 L2-normalised descriptors, one dlib call for the batch."""
        raw = self.raw_descriptors(canonical_crops)
        if len(raw) == 0:
            return raw
        return finish_embeddings(raw, self.dim, self.id)


class DlibLandmarker:
    """dlib HOG face detector + 5-point predictor giving ArcFace-order landmarks (offline)."""

    def __init__(self, *, shape_predictor_path: str | Path | None = None, upsample: int = 1):
        """Load the detector and the 5-point predictor once."""
        import dlib

        if shape_predictor_path is None:
            shape_predictor_path = default_model_paths()[1]
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(
            require_file(shape_predictor_path, "dlib 5-point shape predictor")
        )
        self._upsample = int(upsample)

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """Return ArcFace-order (5, 2) landmarks for every face found, largest face first."""
        rects = sorted(self._detector(image, self._upsample), key=lambda r: -r.area())
        out = []
        for rect in rects:
            shape = self._predictor(image, rect)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            out.append(landmarks_from_dlib5(pts))
        return out


__all__ = [
    "DLIB_BOX_IN_CANONICAL",
    "DLIB_NOSE_BASE_112",
    "DlibFaceChipper",
    "DlibFaceEmbedder",
    "DlibLandmarker",
    "default_model_paths",
    "landmarks_from_dlib5",
    "require_file",
]
