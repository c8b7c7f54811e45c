"""DINOv3 ViT features: face embeddings (class token) and scene features (cls + patch mean).

Two ways to load real weights from local disk, never the network:
``DinoV3Embedder.from_pretrained_dir`` (a transformers ``DINOv3ViTModel`` directory) and
``DinoV3Embedder.from_hub_repo`` (a local clone of facebookresearch/dinov3 + a ``.pth``).

Scene embedding (2 * hidden, 1536-d for ViT-B/16) = ``[L2(cls), L2(mean patch)] / sqrt(2)``:
unit length, and its cosine similarity is the mean of the class-token and the patch-mean
cosine similarities. The mean is over patch tokens only; register (storage) tokens are excluded.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .base import (
    check_canonical_crops,
    check_image,
    empty_embeddings,
    finish_embeddings,
)

LOG = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODELS_README = "models/README.md"

#: transformers hidden size -> the dinov3 architecture name, for embedder ids.
_ARCH_BY_HIDDEN = {384: "vits16", 768: "vitb16", 1024: "vitl16", 1280: "vith16", 4096: "vit7b16"}

#: (pixels NCHW float) -> (class token (N, D), patch tokens (N, P, D)), both after the final norm.
TokenFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class SceneFeatures:
    """DINOv3 features of N scene/person crops: raw tokens and the combined unit embedding."""

    cls: np.ndarray
    patch_mean: np.ndarray
    embedding: np.ndarray


def resolve_device(device: str) -> torch.device:
    """Return the torch device for ``device`` ('auto', 'cpu', 'cuda', 'cuda:N', 'mps')."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available here")
    return dev


def _hf_token_fn(model: torch.nn.Module, num_register_tokens: int) -> TokenFn:
    """Token extractor for a transformers ``DINOv3ViTModel`` (layout: cls, registers, patches)."""

    def tokens(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = model(pixel_values=pixels).last_hidden_state
        return hidden[:, 0], hidden[:, 1 + num_register_tokens :]

    return tokens


def _hub_token_fn(model: torch.nn.Module) -> TokenFn:
    """Token extractor for a dinov3 torch.hub model (``forward_features`` dict)."""

    def tokens(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = model.forward_features(pixels)
        return out["x_norm_clstoken"], out["x_norm_patchtokens"]

    return tokens


class DinoV3Embedder:
    """DINOv3 ViT: batched face embeddings (L2 class token) and scene features."""

    def __init__(
        self,
        model: torch.nn.Module,
        token_fn: TokenFn,
        *,
        arch: str,
        hidden_size: int,
        patch_size: int,
        device: str = "cpu",
        face_resolution: int = 112,
        scene_resolution: int = 224,
        max_batch: int = 16,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        precision: str = "fp32",
    ) -> None:
        """Wrap a loaded backbone; prefer the ``from_*`` factories. ``precision`` fp16 needs
        CUDA (``core.precision``); the features come back as float32 either way."""
        resolutions = {"face_resolution": face_resolution, "scene_resolution": scene_resolution}
        for name, res in resolutions.items():
            if res < patch_size or res % patch_size:
                raise ValueError(
                    f"{name}={res} must be a positive multiple of the patch size {patch_size}"
                )
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean/std need 3 values and std > 0, got {mean}, {std}")
        from ..core.precision import effective_precision

        self._device = resolve_device(device)
        auto = (device or "auto").strip().lower() == "auto"
        self.precision = effective_precision(precision, self._device.type, auto=auto)
        self._dtype = {"fp32": torch.float32, "fp16": torch.float16,
                       "bf16": torch.bfloat16}[self.precision]
        self._model = model.to(self._device, dtype=self._dtype).eval().requires_grad_(False)
        self._tokens = token_fn
        self.arch = arch
        self.hidden_size = int(hidden_size)
        self.patch_size = int(patch_size)
        self.face_resolution = int(face_resolution)
        self.scene_resolution = int(scene_resolution)
        self.max_batch = int(max_batch)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self._device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self._device).view(1, 3, 1, 1)
        LOG.info(
            "DINOv3 %s on %s %s: face %dpx, scene %dpx, hidden %d",
            arch,
            self._device,
            self.precision,
            face_resolution,
            scene_resolution,
            hidden_size,
        )

    # ---- factories -------------------------------------------------------------------------

    @classmethod
    def from_model(cls, model: torch.nn.Module, **kwargs: object) -> DinoV3Embedder:
        """Wrap an already built transformers ``DINOv3ViTModel`` (tests, benchmarks)."""
        config = model.config
        hidden = int(config.hidden_size)
        return cls(
            model,
            _hf_token_fn(model, int(config.num_register_tokens)),
            arch=_ARCH_BY_HIDDEN.get(hidden, f"vit{hidden}"),
            hidden_size=hidden,
            patch_size=int(config.patch_size),
            **kwargs,  # type: ignore[arg-type]
        )

    @classmethod
    def from_pretrained_dir(
        cls,
        path: str | Path,
        *,
        device: str = "cpu",
        face_resolution: int = 112,
        scene_resolution: int = 224,
        max_batch: int = 16,
        precision: str = "fp32",
    ) -> DinoV3Embedder:
        """Load a transformers DINOv3 directory (config.json + weights) from local disk."""
        from transformers import DINOv3ViTModel

        root = Path(path).expanduser()
        if not (root / "config.json").is_file():
            raise FileNotFoundError(
                f"DINOv3 model directory {root} not found or has no config.json; "
                f"see {MODELS_README} for how to get the weights"
            )
        model = DINOv3ViTModel.from_pretrained(str(root), local_files_only=True)
        mean, std = _preprocessor_stats(root)
        return cls.from_model(
            model,
            device=device,
            face_resolution=face_resolution,
            scene_resolution=scene_resolution,
            max_batch=max_batch,
            mean=mean,
            std=std,
            precision=precision,
        )

    @classmethod
    def from_hub_repo(
        cls,
        repo_dir: str | Path,
        weights_path: str | Path,
        *,
        arch: str = "dinov3_vitb16",
        device: str = "cpu",
        face_resolution: int = 112,
        scene_resolution: int = 224,
        max_batch: int = 16,
        precision: str = "fp32",
    ) -> DinoV3Embedder:
        """Load via ``torch.hub.load(repo_dir, arch, source='local', weights=weights_path)``."""
        repo = Path(repo_dir).expanduser()
        weights = Path(weights_path).expanduser()
        if not (repo / "hubconf.py").is_file():
            raise FileNotFoundError(
                f"dinov3 repository {repo} not found or has no hubconf.py (clone "
                f"facebookresearch/dinov3 there); see {MODELS_README}"
            )
        if not weights.is_file():
            raise FileNotFoundError(f"DINOv3 weights {weights} not found; see {MODELS_README}")
        model = torch.hub.load(str(repo), arch, source="local", weights=str(weights))
        hidden = int(getattr(model, "embed_dim", 0) or getattr(model, "num_features", 0))
        patch = getattr(model, "patch_size", 16)
        patch = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
        if hidden <= 0 or not hasattr(model, "forward_features"):
            raise ValueError(
                f"{arch} from {repo} is not a DINOv3 ViT (no embed_dim / forward_features)"
            )
        return cls(
            model,
            _hub_token_fn(model),
            arch=arch.removeprefix("dinov3_"),
            hidden_size=hidden,
            patch_size=patch,
            device=device,
            face_resolution=face_resolution,
            scene_resolution=scene_resolution,
            max_batch=max_batch,
            precision=precision,
        )

    # ---- ids -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """Face embedder id: model, dim and face resolution (vectors differ per resolution)."""
        return f"dinov3_{self.arch}_{self.hidden_size}_r{self.face_resolution}"

    @property
    def dim(self) -> int:
        """Face embedding length (the hidden size, 768 for ViT-B/16)."""
        return self.hidden_size

    @property
    def scene_id(self) -> str:
        """Scene embedder id."""
        return f"dinov3_{self.arch}_scene_{self.scene_dim}_r{self.scene_resolution}"

    @property
    def scene_dim(self) -> int:
        """Scene embedding length (2 x hidden size)."""
        return 2 * self.hidden_size

    @property
    def device(self) -> torch.device:
        """The device the model runs on."""
        return self._device

    # ---- inference -------------------------------------------------------------------------

    def embed(self, canonical_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return (N, hidden) float32 face embeddings: L2(class token) of the resized crops."""
        crops = check_canonical_crops(canonical_crops)
        if not crops:
            return empty_embeddings(self.dim)
        cls_tok, _ = self._forward(crops, self.face_resolution)
        return finish_embeddings(cls_tok, self.dim, self.id)

    def scene_features(self, crops: Sequence[np.ndarray]) -> SceneFeatures:
        """Return raw cls / patch-mean (N, hidden) and the unit scene embedding (N, 2*hidden)."""
        if isinstance(crops, np.ndarray) and crops.ndim == 3:
            raise ValueError("scene_features() takes a sequence of crops; wrap one in a list")
        images = [check_image(c, i, "scene crop") for i, c in enumerate(crops)]
        if not images:
            empty = empty_embeddings(self.hidden_size)
            return SceneFeatures(empty, empty.copy(), empty_embeddings(self.scene_dim))
        cls_tok, patch_mean = self._forward(images, self.scene_resolution)
        return SceneFeatures(
            cls=cls_tok,
            patch_mean=patch_mean,
            embedding=combine_scene(cls_tok, patch_mean, source=self.scene_id),
        )

    def embed_scenes(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return (N, 2*hidden) unit scene embeddings."""
        return self.scene_features(crops).embedding

    def _preprocess(self, images: Sequence[np.ndarray], size: int) -> torch.Tensor:
        """Resize to size x size, scale to [0, 1], ImageNet-normalise; NCHW float on device."""
        resized = []
        for img in images:
            if img.shape[:2] == (size, size):
                resized.append(img)
                continue
            shrink = img.shape[0] > size or img.shape[1] > size
            interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            resized.append(cv2.resize(img, (size, size), interpolation=interp))
        batch = torch.from_numpy(np.stack(resized)).to(self._device)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        return ((batch - self._mean) / self._std).to(self._dtype)

    def _forward(self, images: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
        """Class tokens and patch-token means for all images, max_batch per forward pass."""
        cls_out, mean_out = [], []
        with torch.inference_mode():
            for start in range(0, len(images), self.max_batch):
                pixels = self._preprocess(images[start : start + self.max_batch], size)
                cls_tok, patches = self._tokens(pixels)
                cls_out.append(cls_tok.float().cpu())
                mean_out.append(patches.float().mean(dim=1).cpu())
        cls_np = torch.cat(cls_out).numpy()
        mean_np = torch.cat(mean_out).numpy()
        if not (np.all(np.isfinite(cls_np)) and np.all(np.isfinite(mean_np))):
            raise ValueError(f"DINOv3 {self.arch} produced NaN/inf features")
        return cls_np, mean_np


def combine_scene(cls_tok: np.ndarray, patch_mean: np.ndarray, source: str = "scene") -> np.ndarray:
    """Return [L2(cls), L2(patch mean)] / sqrt(2): (N, 2D) float32, unit length."""
    dim = cls_tok.shape[-1]
    a = finish_embeddings(cls_tok, dim, source)
    b = finish_embeddings(patch_mean, dim, source)
    return (np.concatenate([a, b], axis=1) / np.float32(math.sqrt(2.0))).astype(np.float32)


def _preprocessor_stats(root: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std from the directory's preprocessor_config.json, else ImageNet's."""
    cfg_path = root / "preprocessor_config.json"
    if cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            mean, std = tuple(cfg["image_mean"]), tuple(cfg["image_std"])
            if len(mean) == 3 and len(std) == 3:
                return mean, std
        except (KeyError, ValueError, TypeError):
            LOG.warning("%s has no usable image_mean/image_std; using ImageNet's", cfg_path)
    return IMAGENET_MEAN, IMAGENET_STD
