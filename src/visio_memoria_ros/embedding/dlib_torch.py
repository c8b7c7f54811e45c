"""dlib's face-recognition ResNet in PyTorch: batched, multi-threaded, CUDA, fp16/bf16.

The weights come from the same ``dlib_face_recognition_resnet_model_v1.dat`` that dlib loads
(shipped by ``face_recognition_models``; nothing is downloaded). No maintained package reads
dlib's DNN serialization without compiling dlib's C++ (the public converters run a C++ tool
that re-serializes the network to XML first), so the file is parsed here (``parse_dlib_resnet``):

* dlib integers: a control byte (bit 7 = negative, low 4 bits = byte count) then that many
  little-endian bytes; strings: an integer length then the bytes; scalar floats (loss margin,
  input means, learning-rate multipliers): a mantissa integer then an exponent integer;
  tensors (version 2): version, then num_samples, k, nr, nc, then raw little-endian float32.
* The network nests outside-in: ``add_loss_layer`` (version, ``loss_metric_2`` details), then
  one version integer per ``add_layer`` (2), ``add_tag_layer`` / ``add_skip_layer`` (1) down to
  the input ``add_layer`` (3); then each layer's details from the input outwards, each
  followed by its training state (3 bools and 3 empty tensors; the input one by 4 tensors
  and an integer), until the end of the file.
* The layer records must follow dlib's ``anet_type`` grammar (dlib's
  examples/dnn_face_recognition_ex.cpp): ``input_rgb_image_sized<150>``, stem
  ``con 7x7/2 -> affine -> relu -> max_pool 3x3/2``, residual blocks
  ``con 3x3/s -> affine -> relu -> con 3x3/1 -> affine [-> avg_pool 2x2/2 of the block input]
  -> add_prev -> relu``, ``avg_pool_everything``, ``fc_no_bias<128>``. Anything else is
  refused with ``DlibModelError``.

What dlib computes, and the module reproduces: input ``(pixel - mean_rgb) / 256`` with dlib's
means (122.782, 117.001, 104.298); every ``affine`` (a frozen batch norm) is folded into the
convolution before it; ``add_prev`` of two tensors of different shapes zero-pads both to the
larger one, aligned at the top-left corner (the down-sampling blocks add 32 -> 64 channels,
and at 8x8 input a 3x3 block output to a 4x4 pooled shortcut). The descriptor is the raw fc
output, which ``embed`` L2-normalises like every embedder.

Embedder id: ``dlib_resnet_v1_128``, the same as ``DlibFaceEmbedder``. Its vectors are dlib's
(the oracle test: cosine >= 0.9999 to ``compute_face_descriptor`` on every BBT crop and test
crop, on the same 150x150 chips from dlib's own shape predictor and ``get_face_chip``), so a
gallery made by either engine stays valid with the other, no re-embedding; a distinct id would
force every existing gallery to be re-embedded for no change in the vectors. The engine is not
part of the id for the same reason the BLAS library is not.

The converted weights are cached as a torch file in the user cache directory
(``$XDG_CACHE_HOME/visio_memoria/dlib_torch`` or ``~/.cache/...``), named by the .dat file's
sha256; a cache that does not load or does not match is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual torch alias

from .base import check_canonical_crops, empty_embeddings, finish_embeddings
from .dinov3 import resolve_device
from .dlib_face import DLIB_BOX_IN_CANONICAL, DlibFaceChipper, default_model_paths, require_file

LOG = logging.getLogger(__name__)

#: Embedder id shared with the dlib C++ backend (see the module docstring).
EMBEDDER_ID = "dlib_resnet_v1_128"
#: Bumped when the cached state layout changes; older caches are rebuilt.
CACHE_FORMAT = 1
PRECISIONS = ("fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class DlibModelError(ValueError):
    """The file is not a dlib face-recognition ResNet this module can read."""


# ------------------------------------------------------------------------------------------
# dlib serialization
# ------------------------------------------------------------------------------------------


class _Reader:
    """Sequential reader of dlib's serialization format over an in-memory file."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> DlibModelError:
        """An error naming the file and the byte offset."""
        return DlibModelError(f"{self.source}: {what} (at byte {self.pos})")

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"file ends early (needs {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        """A dlib integer: control byte (sign bit 0x80, size in the low nibble), LE bytes."""
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        """A dlib string: integer length, then bytes."""
        n = self.integer()
        if n < 0 or n > 256:
            raise self.fail(f"implausible string length {n}")
        try:
            return bytes(self._take(n)).decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail("non-ASCII layer name") from exc

    def real(self) -> float:
        """A dlib float: mantissa integer, then exponent integer (value = m * 2**e)."""
        mantissa = self.integer()
        exponent = self.integer()
        if abs(exponent) > 2000:
            raise self.fail(f"implausible float exponent {exponent}")
        return float(mantissa) * 2.0**exponent

    def boolean(self) -> bool:
        """A dlib bool: the ASCII byte '1' or '0'."""
        byte = self._take(1)[0]
        if byte not in (0x30, 0x31):
            raise self.fail(f"bad bool byte 0x{byte:02x}")
        return byte == 0x31

    def tensor(self) -> np.ndarray:
        """A dlib resizable_tensor (version 2): dims, then little-endian float32 data."""
        version = self.integer()
        if version != 2:
            raise self.fail(f"unsupported tensor version {version}")
        dims = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor size {dims}")
        count = int(np.prod(dims, dtype=np.int64))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias(self) -> tuple[int, int, int, int]:
        """A dlib alias_tensor (version 1): its 4 dims."""
        version = self.integer()
        if version != 1:
            raise self.fail(f"unsupported alias_tensor version {version}")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


@dataclass
class _Record:
    """One parsed dlib layer: its name and what matters for inference."""

    name: str
    offset: int
    values: dict[str, Any] = field(default_factory=dict)


def _read_layer(r: _Reader) -> _Record:
    """Read one layer's details (the part its ``serialize`` writes)."""
    offset = r.pos
    name = r.string()
    rec = _Record(name, offset)
    v = rec.values
    if name == "con_4":
        params = r.tensor().reshape(-1)
        keys = ("filters_out", "nr", "nc", "stride_y", "stride_x", "pad_y", "pad_x")
        v.update(zip(keys, (r.integer() for _ in keys), strict=True))
        filters, biases = r.alias(), r.alias()
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.real()
        nf, k, nr, nc = filters
        if (nf, nr, nc) != (v["filters_out"], v["nr"], v["nc"]) or biases[1] != nf:
            raise r.fail(f"con_ shapes disagree: filters {filters}, biases {biases}")
        if params.size != nf * k * nr * nc + nf:
            raise r.fail(f"con_ has {params.size} parameters, expected {nf * k * nr * nc + nf}")
        v["weight"] = params[: nf * k * nr * nc].reshape(nf, k, nr, nc)
        v["bias"] = params[nf * k * nr * nc :]
    elif name == "affine_":
        params = r.tensor().reshape(-1)
        gamma, beta = r.alias(), r.alias()
        mode = r.integer()
        if mode != 0:
            raise r.fail("affine_ in fc mode; only the conv mode (per channel) is supported")
        channels = gamma[1]
        if params.size != 2 * channels or beta[1] != channels:
            raise r.fail(f"affine_ has {params.size} parameters for {channels} channels")
        v["gamma"], v["beta"] = params[:channels], params[channels:]
    elif name in ("relu_", "add_prev_"):
        pass
    elif name in ("max_pool_2", "avg_pool_2"):
        keys = ("nr", "nc", "stride_y", "stride_x", "pad_y", "pad_x")
        v.update(zip(keys, (r.integer() for _ in keys), strict=True))
    elif name == "fc_2":
        outputs, inputs = r.integer(), r.integer()
        params = r.tensor().reshape(-1)
        r.alias()
        r.alias()
        bias_mode = r.integer()
        for _ in range(4):
            r.real()
        if bias_mode != 1:
            raise r.fail("fc_ with a bias; the face ResNet ends in fc_no_bias")
        if params.size != inputs * outputs:
            raise r.fail(f"fc_ has {params.size} parameters, expected {inputs}x{outputs}")
        # dlib: output = input (N x inputs) * W (inputs x outputs); torch Linear wants W^T.
        v["weight"] = params.reshape(inputs, outputs).T.copy()
    else:
        raise r.fail(f"unsupported layer {name!r} (not the dlib face-recognition ResNet)")
    return rec


def _read_layer_state(r: _Reader, version: int) -> None:
    """Skip the training state ``add_layer`` writes after a layer's details."""
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output disabled
        r.boolean()
    for _ in range(2):  # x_grad, cached_output
        r.tensor()
    if version == 3:  # the input add_layer: grad_final, sample_expansion_factor
        r.tensor()
        r.integer()
    else:  # params_grad
        r.tensor()


@dataclass(frozen=True)
class ConvSpec:
    """One convolution (affine folded in): channels, kernel, stride and padding."""

    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    pad: int


@dataclass(frozen=True)
class BlockSpec:
    """A residual block: two 3x3 convolutions and, when down-sampling, the pooled shortcut."""

    conv1: ConvSpec
    conv2: ConvSpec
    pool: tuple[int, int, int] | None  # (kernel, stride, pad) of the shortcut's avg_pool


@dataclass(frozen=True)
class NetSpec:
    """The architecture read from the file: input, stem, blocks and the fc size."""

    mean_rgb: tuple[float, float, float]
    input_size: int
    stem: ConvSpec
    stem_pool: tuple[int, int, int]
    blocks: tuple[BlockSpec, ...]
    fc_in: int
    fc_out: int

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (ints, floats, lists), for a weights-only torch cache."""

        def conv(c: ConvSpec) -> list[int]:
            return [c.in_ch, c.out_ch, c.kernel, c.stride, c.pad]

        return {
            "mean_rgb": list(self.mean_rgb),
            "input_size": self.input_size,
            "stem": conv(self.stem),
            "stem_pool": list(self.stem_pool),
            "blocks": [
                [conv(b.conv1), conv(b.conv2), list(b.pool) if b.pool else []] for b in self.blocks
            ],
            "fc": [self.fc_in, self.fc_out],
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> NetSpec:
        """Inverse of ``to_dict``."""
        return NetSpec(
            mean_rgb=tuple(float(x) for x in d["mean_rgb"]),  # type: ignore[arg-type]
            input_size=int(d["input_size"]),
            stem=ConvSpec(*(int(x) for x in d["stem"])),
            stem_pool=tuple(int(x) for x in d["stem_pool"]),  # type: ignore[arg-type]
            blocks=tuple(
                BlockSpec(
                    ConvSpec(*(int(x) for x in c1)),
                    ConvSpec(*(int(x) for x in c2)),
                    tuple(int(x) for x in pool) if pool else None,  # type: ignore[arg-type]
                )
                for c1, c2, pool in d["blocks"]
            ),
            fc_in=int(d["fc"][0]),
            fc_out=int(d["fc"][1]),
        )


def _conv_spec(rec: _Record, r: _Reader) -> ConvSpec:
    v = rec.values
    if v["nr"] != v["nc"] or v["stride_y"] != v["stride_x"] or v["pad_y"] != v["pad_x"]:
        raise r.fail(f"non-square convolution at byte {rec.offset}: {v}")
    return ConvSpec(v["weight"].shape[1], v["filters_out"], v["nr"], v["stride_y"], v["pad_y"])


def _fold(conv: _Record, affine: _Record, r: _Reader) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``affine(con(x))`` = gamma * (W x + b) + beta into one convolution."""
    gamma, beta = affine.values["gamma"], affine.values["beta"]
    w, b = conv.values["weight"], conv.values["bias"]
    if gamma.size != w.shape[0]:
        raise r.fail(f"affine_ of {gamma.size} channels after a con_ of {w.shape[0]} filters")
    weight = (w.astype(np.float64) * gamma[:, None, None, None]).astype(np.float32)
    bias = (b.astype(np.float64) * gamma + beta).astype(np.float32)
    return weight, bias


def _pool(rec: _Record, r: _Reader) -> tuple[int, int, int]:
    v = rec.values
    if v["nr"] != v["nc"] or v["stride_y"] != v["stride_x"] or v["pad_y"] != v["pad_x"]:
        raise r.fail(f"non-square pooling at byte {rec.offset}: {v}")
    return v["nr"], v["stride_y"], v["pad_y"]


def parse_dlib_resnet(path: str | Path) -> tuple[NetSpec, dict[str, torch.Tensor]]:
    """Parse a dlib face-recognition ResNet ``.dat`` into its spec and a torch state_dict.

    Raises FileNotFoundError for a missing file and ``DlibModelError`` (a ValueError) for
    anything that is not such a network, naming the byte offset where reading stopped.
    """
    p = Path(require_file(path, "dlib face recognition model"))
    r = _Reader(p.read_bytes(), str(p))
    try:
        if r.integer() != 1:
            raise r.fail("not a dlib network (add_loss_layer version != 1)")
        loss = r.string()
        if loss != "loss_metric_2":
            raise r.fail(f"loss layer {loss!r}, expected loss_metric_2 (a metric network)")
        r.real()  # margin
        r.real()  # distance threshold
        versions = []
        while True:
            version = r.integer()
            versions.append(version)
            if version == 3:
                break
            if version not in (1, 2) or len(versions) > 10000:
                raise r.fail(f"unexpected layer version {version}")
        if r.string() != "input_rgb_image_sized":
            raise r.fail("input layer is not input_rgb_image_sized")
        mean_rgb = (r.real(), r.real(), r.real())
        rows, cols = r.integer(), r.integer()
        if rows != cols:
            raise r.fail(f"non-square input {rows}x{cols}")
        records = []
        for i in range(versions.count(2) + 1):
            records.append(_read_layer(r))
            _read_layer_state(r, 3 if i == 0 else 2)
        if r.pos != len(r.data):  # dlib itself stops reading there too
            LOG.warning("%s: %d bytes after the last layer ignored", p, len(r.data) - r.pos)
    except DlibModelError:
        raise
    except (ValueError, IndexError) as exc:
        raise r.fail(f"cannot parse: {exc}") from exc
    return _build_spec(records, mean_rgb, rows, r)


def _build_spec(
    records: list[_Record], mean_rgb: tuple[float, float, float], size: int, r: _Reader
) -> tuple[NetSpec, dict[str, torch.Tensor]]:
    """Match the flat layer list against the ResNet grammar; fold affines into convs."""
    names = [rec.name for rec in records]
    state: dict[str, torch.Tensor] = {}

    def expect(i: int, *wanted: str) -> None:
        got = names[i : i + len(wanted)]
        if tuple(got) != wanted:
            raise r.fail(f"layers {i}..{i + len(wanted) - 1} are {got}, expected {list(wanted)}")

    expect(0, "con_4", "affine_", "relu_", "max_pool_2")
    stem = _conv_spec(records[0], r)
    if stem.in_ch != 3:
        raise r.fail(f"the first convolution takes {stem.in_ch} channels, not RGB")
    w, b = _fold(records[0], records[1], r)
    state["stem.weight"], state["stem.bias"] = torch.from_numpy(w), torch.from_numpy(b)
    stem_pool = _pool(records[3], r)
    i, blocks = 4, []
    channels = stem.out_ch
    while i < len(records) and names[i] == "con_4":
        expect(i, "con_4", "affine_", "relu_", "con_4", "affine_")
        c1, c2 = _conv_spec(records[i], r), _conv_spec(records[i + 3], r)
        if c1.in_ch != channels or c2.in_ch != c1.out_ch:
            raise r.fail(f"block {len(blocks)}: channels {channels}->{c1.in_ch}/{c2.in_ch}")
        n = len(blocks)
        for j, (conv, aff) in enumerate(((i, i + 1), (i + 3, i + 4)), start=1):
            w, b = _fold(records[conv], records[aff], r)
            state[f"blocks.{n}.conv{j}.weight"] = torch.from_numpy(w)
            state[f"blocks.{n}.conv{j}.bias"] = torch.from_numpy(b)
        i += 5
        pool = None
        if i < len(names) and names[i] == "avg_pool_2":
            pool = _pool(records[i], r)
            i += 1
        expect(i, "add_prev_", "relu_")
        i += 2
        blocks.append(BlockSpec(c1, c2, pool))
        channels = max(channels, c2.out_ch)
    expect(i, "avg_pool_2", "fc_2")
    if records[i].values["nr"] != 0 or records[i].values["nc"] != 0:
        raise r.fail("the last pooling is not avg_pool_everything")
    fc = records[i + 1].values["weight"]
    if i + 2 != len(records):
        raise r.fail(f"{len(records) - i - 2} layers after the fc layer")
    if fc.shape[1] != channels:
        raise r.fail(f"fc takes {fc.shape[1]} inputs, the last block gives {channels}")
    state["fc.weight"] = torch.from_numpy(fc)
    spec = NetSpec(mean_rgb, size, stem, stem_pool, tuple(blocks), fc.shape[1], fc.shape[0])
    return spec, state


# ------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------


def _conv(c: ConvSpec) -> nn.Conv2d:
    return nn.Conv2d(c.in_ch, c.out_ch, c.kernel, stride=c.stride, padding=c.pad, bias=True)


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: a + b, each zero-padded (after its end) to the larger shape."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class _Block(nn.Module):
    """relu(add_prev(conv2(relu(conv1(x))), shortcut(x))), affines folded into the convs."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.conv1 = _conv(spec.conv1)
        self.conv2 = _conv(spec.conv2)
        self.pool = spec.pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        shortcut = x if self.pool is None else F.avg_pool2d(x, *self.pool)
        return F.relu(_add_zero_padded(y, shortcut))


class DlibResNet(nn.Module):
    """dlib's metric ResNet; input uint8 RGB chips (N, S, S, 3), output raw (N, 128)."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        mean = torch.tensor(spec.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)  # part of the spec, not the state
        self.stem = _conv(spec.stem)
        self.blocks = nn.ModuleList(_Block(b) for b in spec.blocks)
        self.fc = nn.Linear(spec.fc_in, spec.fc_out, bias=False)

    @classmethod
    def from_state(cls, spec: NetSpec, state: dict[str, torch.Tensor]) -> DlibResNet:
        """The network in eval mode with ``state`` loaded strictly (no random init first)."""
        with torch.device("meta"):
            model = cls(spec)
        model.load_state_dict(state, strict=True, assign=True)
        mean = torch.tensor(spec.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1)
        model.register_buffer("mean", mean, persistent=False)
        return model.eval().requires_grad_(False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """Raw descriptors of (N, S, S, 3) uint8 RGB chips."""
        # dlib's input_rgb_image: (pixel - mean) / 256 per channel, in float32 (an fp16 mean
        # would be off by up to 0.03), then the network's dtype
        x = (chips.permute(0, 3, 1, 2).float() - self.mean.float()) * (1.0 / 256.0)
        x = x.to(self.stem.weight.dtype)
        if self.stem.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu(self.stem(x))
        x = F.max_pool2d(x, *self.spec.stem_pool)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))


# ------------------------------------------------------------------------------------------
# Loading with a cache
# ------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/visio_memoria/dlib_torch`` (``~/.cache/...`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "visio_memoria" / "dlib_torch"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_cache(path: Path, sha: str) -> DlibResNet | None:
    """The network cached for ``sha``, or None when absent, unreadable or not matching."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("format") != CACHE_FORMAT or blob.get("source_sha256") != sha:
            raise ValueError("format or source mismatch")
        return DlibResNet.from_state(NetSpec.from_dict(blob["spec"]), blob["state_dict"])
    except Exception as exc:  # any defect in a cache means: rebuild it
        LOG.warning("ignoring the unusable dlib weights cache %s (%s); rebuilding it", path, exc)
        return None


def _write_cache(path: Path, sha: str, spec: NetSpec, state: dict[str, torch.Tensor]) -> None:
    """Write the cache atomically; a cache that cannot be written is only a warning."""
    blob = {
        "format": CACHE_FORMAT,
        "source_sha256": sha,
        "spec": spec.to_dict(),
        "state_dict": state,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(blob, f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        LOG.warning("cannot write the dlib weights cache %s: %s", path, exc)


@dataclass(frozen=True)
class LoadInfo:
    """How the weights were obtained: from the cache or by parsing, and how long it took."""

    source: str
    sha256: str
    cache_path: Path | None
    cache_hit: bool
    seconds: float


def load_dlib_resnet(
    path: str | Path, *, cache_dir: str | Path | None = None, use_cache: bool = True
) -> tuple[DlibResNet, LoadInfo]:
    """Build the torch network from a dlib ``.dat``, through the sha256-keyed cache."""
    t0 = time.perf_counter()
    source = require_file(path, "dlib face recognition model")
    sha = file_sha256(source)
    cache_path = None
    cached = None
    if use_cache:
        cache_path = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        cache_path = cache_path / f"{sha}.pt"
        cached = _read_cache(cache_path, sha)
    model = cached
    if model is None:
        spec, state = parse_dlib_resnet(source)
        model = DlibResNet.from_state(spec, state)
        if cache_path is not None:
            _write_cache(cache_path, sha, spec, state)
    info = LoadInfo(source, sha, cache_path, cached is not None, time.perf_counter() - t0)
    return model, info


# ------------------------------------------------------------------------------------------
# The embedder
# ------------------------------------------------------------------------------------------


def resolve_precision(precision: str, device: torch.device, *, auto: bool = False) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``.

    fp16 is for CUDA only: asked on a CPU device it raises ValueError, except when ``auto``
    (device ``auto`` found no GPU), where it runs fp32 with a warning so one configuration
    serves machines with and without a GPU.
    """
    name = (precision or "fp32").strip().lower()
    if name not in _DTYPES:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if name == "fp16" and device.type != "cuda":
        if auto:
            LOG.warning("precision fp16 needs CUDA; device auto found none: running fp32")
            return torch.float32
        raise ValueError(
            f"precision fp16 needs a CUDA device, got {device.type}; use fp32 or bf16 "
            "(bf16: within cosine 0.9999 of fp32 here) on the CPU"
        )
    return _DTYPES[name]


class DlibTorchFaceEmbedder:
    """dlib's ResNet (128-d) in PyTorch, on dlib's own 150x150 face chips; one forward per batch.

    The chips come from ``DlibFaceChipper`` (dlib's 5-point shape predictor and
    ``get_face_chip``), exactly what ``DlibFaceEmbedder`` feeds dlib's network, so the two
    give the same vectors and share the id ``dlib_resnet_v1_128``.
    """

    def __init__(
        self,
        *,
        recognition_model_path: str | Path | None = None,
        shape_predictor_path: str | Path | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        num_threads: int = 0,
        channels_last: bool | None = None,
        max_batch: int = 16,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        predictor_box: tuple[int, int, int, int] = DLIB_BOX_IN_CANONICAL,
        warmup: bool = True,
    ) -> None:
        """Load (or convert and cache) the weights, the shape predictor, and pick the device.

        ``num_threads`` > 0 sets torch's CPU threads (process-wide, torch.set_num_threads);
        ``channels_last`` None = on for the CPU, where it is faster, off elsewhere; ``warmup``
        runs one forward pass now, so the first face does not pay the kernels' set-up.
        """
        if num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {num_threads}")
        if recognition_model_path is None or shape_predictor_path is None:
            default_rec, default_sp = default_model_paths()
            recognition_model_path = recognition_model_path or default_rec
            shape_predictor_path = shape_predictor_path or default_sp
        self._device = resolve_device(device)
        auto = (device or "auto").strip().lower() == "auto"
        self._dtype = resolve_precision(precision, self._device, auto=auto)
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        self._chipper = DlibFaceChipper(shape_predictor_path, predictor_box=predictor_box)
        model, info = load_dlib_resnet(
            recognition_model_path, cache_dir=cache_dir, use_cache=use_cache
        )
        self.load_info = info
        if channels_last is None:
            channels_last = self._device.type == "cpu"
        self._channels_last = bool(channels_last)
        model = model.to(self._device, dtype=self._dtype)
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        self._model = model
        self.max_batch = max_batch
        self._size = model.spec.input_size
        if warmup:
            self.warmup()
        LOG.info(
            "dlib ResNet in torch: %s on %s %s%s, weights %s in %.2f s (%s)",
            info.source,
            self._device,
            str(self._dtype).replace("torch.", ""),
            ", channels-last" if self._channels_last else "",
            "from cache" if info.cache_hit else "parsed",
            info.seconds,
            info.cache_path or "no cache",
        )

    @property
    def id(self) -> str:
        """Embedder id stored with every vector (the same as the dlib C++ backend)."""
        return EMBEDDER_ID

    @property
    def dim(self) -> int:
        """Embedding length (128)."""
        return self._model.spec.fc_out

    @property
    def max_batch(self) -> int:
        """Most chips in one forward pass; more run as several passes."""
        return self._max_batch

    @max_batch.setter
    def max_batch(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"max_batch must be >= 1, got {value}")
        self._max_batch = int(value)

    @property
    def device(self) -> torch.device:
        """The torch device the network runs on."""
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (float32, float16 or bfloat16)."""
        return self._dtype

    def face_chips(self, canonical_crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Return dlib's 150x150 aligned chip for each canonical crop (what the ResNet sees)."""
        return self._chipper.chips(check_canonical_crops(canonical_crops))

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> float:
        """Run the network on blank chips once per batch size; return the seconds it took."""
        t0 = time.perf_counter()
        blank = np.zeros((self._size, self._size, 3), np.uint8)
        for n in batch_sizes:
            self.descriptors_from_chips([blank] * int(n))
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        return time.perf_counter() - t0

    def descriptors_from_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Raw (N, 128) float32 descriptors of dlib face chips (uint8 RGB, S x S x 3)."""
        if len(chips) == 0:
            return empty_embeddings(self.dim)
        for i, chip in enumerate(chips):
            if (
                not isinstance(chip, np.ndarray)
                or chip.dtype != np.uint8
                or chip.shape != (self._size, self._size, 3)
            ):
                got = getattr(chip, "shape", type(chip).__name__)
                raise ValueError(f"chip {i} must be uint8 {self._size}x{self._size}x3, got {got}")
        out = []
        with torch.inference_mode():
            for start in range(0, len(chips), self._max_batch):
                batch = np.stack(chips[start : start + self._max_batch])
                x = torch.from_numpy(batch).to(self._device, non_blocking=True)
                out.append(self._model(x).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)

    def raw_descriptors(self, canonical_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return dlib's unnormalised (N, 128) descriptors (its 0.6 Euclidean convention)."""
        return self.descriptors_from_chips(self.face_chips(canonical_crops))

    def embed(self, canonical_crops: Sequence[np.ndarray]) -> np.ndarray:
        """Return (N, 128) float32 L2-normalised descriptors, one forward pass per batch."""
        raw = self.raw_descriptors(canonical_crops)
        if len(raw) == 0:
            return raw
        return finish_embeddings(raw, self.dim, self.id)


__all__ = [
    "CACHE_FORMAT",
    "EMBEDDER_ID",
    "PRECISIONS",
    "DlibModelError",
    "DlibResNet",
    "DlibTorchFaceEmbedder",
    "LoadInfo",
    "NetSpec",
    "default_cache_dir",
    "file_sha256",
    "load_dlib_resnet",
    "parse_dlib_resnet",
    "resolve_precision",
]
