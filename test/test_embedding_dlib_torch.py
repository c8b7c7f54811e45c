"""dlib's ResNet in PyTorch: .dat parsing, the oracle (dlib's own descriptors), batching,
precision and device choices, the weights cache, and the factory's engine choice."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("dlib")
torch = pytest.importorskip("torch")

from visio_memoria_ros.core.face_crop import CANONICAL_SIZE, align_face  # noqa: E402
from visio_memoria_ros.embedding import build_face_embedder  # noqa: E402
from visio_memoria_ros.embedding.dlib_face import (  # noqa: E402
    DlibFaceEmbedder,
    DlibLandmarker,
    default_model_paths,
)
from visio_memoria_ros.embedding.dlib_torch import (  # noqa: E402
    CACHE_FORMAT,
    DlibModelError,
    DlibTorchFaceEmbedder,
    file_sha256,
    load_dlib_resnet,
    parse_dlib_resnet,
    resolve_precision,
)

#: The oracle bound: cosine between our descriptor and dlib's own, on the same chip.
ORACLE_COSINE = 0.9999


@pytest.fixture(scope="module")
def dat_path() -> str:
    """dlib_face_recognition_resnet_model_v1.dat from face_recognition_models."""
    path = default_model_paths()[0]
    if not Path(path).is_file():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private weights cache for this module (the user cache stays untouched)."""
    return tmp_path_factory.mktemp("dlib_torch_cache")


@pytest.fixture(scope="module")
def torch_embedder(cache_dir: Path) -> DlibTorchFaceEmbedder:
    """The torch port on the CPU in float32."""
    return DlibTorchFaceEmbedder(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def dlib_embedder() -> DlibFaceEmbedder:
    """dlib's own C++ network: the oracle."""
    return DlibFaceEmbedder()


def _rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _faces(images: list[Path]) -> list[np.ndarray]:
    """Canonical crops of every face dlib's HOG detector finds in ``images``."""
    landmarker = DlibLandmarker()
    crops = []
    for path in images:
        image = _rgb(path)
        crops += [align_face(image, points) for points in landmarker(image)]
    return crops


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _dlib_descriptors(dlib_embedder: DlibFaceEmbedder, chips: list[np.ndarray]) -> np.ndarray:
    """dlib's own compute_face_descriptor on the chips (jitter 0)."""
    out = dlib_embedder._facerec.compute_face_descriptor(chips, 0)
    return np.array([np.asarray(d) for d in out], dtype=np.float32)


def _assert_oracle(
    torch_embedder: DlibTorchFaceEmbedder,
    dlib_embedder: DlibFaceEmbedder,
    crops: list[np.ndarray],
    what: str,
) -> None:
    chips = dlib_embedder.face_chips(crops)
    ours = torch_embedder.descriptors_from_chips(chips)
    theirs = _dlib_descriptors(dlib_embedder, chips)
    cos = _cosines(ours, theirs)
    max_abs = float(np.abs(ours - theirs).max())
    logging.getLogger(__name__).info(
        "%s: %d crops, min cosine %.9f, max abs diff %.3g", what, len(crops), cos.min(), max_abs
    )
    assert cos.min() >= ORACLE_COSINE, f"{what}: min cosine {cos.min():.6f}, max abs {max_abs}"
    # dlib's descriptors are ~0.1 per component; float32 rounding differs only in the 7th digit
    assert max_abs < 1e-4, f"{what}: max abs difference {max_abs}"


# --- parsing ------------------------------------------------------------------------------


def test_parse_reads_dlibs_network(dat_path: str) -> None:
    spec, state = parse_dlib_resnet(dat_path)
    np.testing.assert_allclose(spec.mean_rgb, (122.782, 117.001, 104.298), atol=1e-4)
    assert spec.input_size == 150
    assert (spec.stem.in_ch, spec.stem.out_ch, spec.stem.kernel, spec.stem.stride) == (3, 32, 7, 2)
    assert spec.stem.pad == 0 and spec.stem_pool == (3, 2, 0)
    # alevel4..alevel0 of dnn_face_recognition_ex.cpp: 3x32, 4x64, 3x128, 3x256, 1x256
    widths = [b.conv1.out_ch for b in spec.blocks]
    assert widths == [32] * 3 + [64] * 4 + [128] * 3 + [256] * 3 + [256]
    downs = [i for i, b in enumerate(spec.blocks) if b.pool is not None]
    assert downs == [3, 7, 10, 13]
    assert all(spec.blocks[i].conv1.stride == 2 and spec.blocks[i].pool == (2, 2, 0) for i in downs)
    assert (spec.fc_in, spec.fc_out) == (256, 128)
    assert state["fc.weight"].shape == (128, 256)
    assert sum(t.numel() for t in state.values()) > 5_000_000


def test_missing_dat_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.dat"
    with pytest.raises(FileNotFoundError, match=r"nope\.dat"):
        parse_dlib_resnet(missing)
    with pytest.raises(FileNotFoundError, match=r"nope\.dat"):
        DlibTorchFaceEmbedder(recognition_model_path=missing, use_cache=False)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "file ends early"),
        (lambda b: b"\x00" * 64, "bad integer control byte"),
        (lambda b: b"", "file ends early"),
    ],
    ids=["truncated", "zeros", "empty"],
)
def test_corrupt_dat_is_a_clear_error(dat_path: str, tmp_path: Path, damage, message) -> None:
    bad = tmp_path / "corrupt.dat"
    bad.write_bytes(damage(Path(dat_path).read_bytes()))
    with pytest.raises(DlibModelError, match=message) as info:
        parse_dlib_resnet(bad)
    assert "corrupt.dat" in str(info.value)
    # the strict engine refuses it; the auto choice falls back to dlib's C++, which refuses too
    with pytest.raises(DlibModelError):
        build_face_embedder("dlib_torch", dlib_recognition_model_path=str(bad))
    with pytest.raises(ValueError, match=r"corrupt\.dat"):
        build_face_embedder("dlib", dlib_recognition_model_path=str(bad))


def test_trailing_bytes_are_ignored_like_dlib(dat_path: str, tmp_path: Path, caplog) -> None:
    longer = tmp_path / "longer.dat"
    longer.write_bytes(Path(dat_path).read_bytes() + b"\x01\x02")
    with caplog.at_level(logging.WARNING):
        _, state = parse_dlib_resnet(longer)
    assert "2 bytes after the last layer ignored" in caplog.text
    _, reference = parse_dlib_resnet(dat_path)
    assert all(torch.equal(state[k], reference[k]) for k in reference)


class _DatWriter:
    """Writes dlib's serialization format (the parser's inverse), for synthetic networks."""

    def __init__(self) -> None:
        self.out = bytearray()

    def int(self, v: int) -> None:
        raw = abs(v).to_bytes(max(1, (abs(v).bit_length() + 7) // 8), "little")
        self.out += bytes([len(raw) | (0x80 if v < 0 else 0)]) + raw

    def str(self, v: str) -> None:
        self.int(len(v))
        self.out += v.encode()

    def real(self, v: float) -> None:
        self.int(round(v * 2**16))
        self.int(-16)

    def tensor(self, a: np.ndarray, dims: tuple[int, ...] | None = None) -> None:
        self.int(2)
        for d in dims or (a.size, 1, 1, 1):
            self.int(d)
        self.out += np.asarray(a, "<f4").tobytes()

    def alias(self, *dims: int) -> None:
        self.int(1)
        for d in dims:
            self.int(d)

    def state(self, first: bool) -> None:
        self.out += b"110"
        for _ in range(3):
            self.tensor(np.zeros(0), (0, 0, 0, 0))
        if first:
            self.int(1)

    def con(self, cin: int, cout: int, k: int, stride: int, pad: int) -> None:
        rng = np.random.default_rng(cin * 100 + cout)
        self.str("con_4")
        self.tensor(rng.normal(0, 0.1, cout * cin * k * k + cout))
        for v in (cout, k, k, stride, stride, pad, pad):
            self.int(v)
        self.alias(cout, cin, k, k)
        self.alias(1, cout, 1, 1)
        for v in (1.0, 1.0, 1.0, 0.0):
            self.real(v)

    def affine(self, c: int) -> None:
        self.str("affine_")
        self.tensor(np.concatenate([np.full(c, 0.9), np.full(c, 0.1)]))
        self.alias(1, c, 1, 1)
        self.alias(1, c, 1, 1)
        self.int(0)

    def pool(self, name: str, k: int, stride: int) -> None:
        self.str(name)
        for v in (k, k, stride, stride, 0, 0):
            self.int(v)

    def fc(self, cin: int, cout: int) -> None:
        self.str("fc_2")
        self.int(cout)
        self.int(cin)
        self.tensor(np.random.default_rng(1).normal(0, 0.1, cin * cout), (cin, cout, 1, 1))
        self.alias(cin, cout, 1, 1)
        self.alias(0, 0, 0, 0)
        self.int(1)
        for v in (1.0, 1.0, 1.0, 0.0):
            self.real(v)


def _write_net(path: Path, layers: list) -> None:
    """A dlib metric network file: loss, nesting versions, input, then each layer + state."""
    w = _DatWriter()
    w.int(1)
    w.str("loss_metric_2")
    w.real(0.04)
    w.real(0.6)
    for _ in range(len(layers) - 1):
        w.int(2)  # add_layer
    w.int(1)  # a tag layer
    w.int(3)  # the input add_layer
    w.str("input_rgb_image_sized")
    for v in (122.75, 117.0, 104.25):
        w.real(v)
    w.int(150)
    w.int(150)
    for i, layer in enumerate(layers):
        layer(w)
        w.state(first=i == 0)
    path.write_bytes(bytes(w.out))


_STEM = [
    lambda w: w.con(3, 4, 7, 2, 0),
    lambda w: w.affine(4),
    lambda w: w.str("relu_"),
    lambda w: w.pool("max_pool_2", 3, 2),
]
_DOWN_BLOCK = [
    lambda w: w.con(4, 8, 3, 2, 0),
    lambda w: w.affine(8),
    lambda w: w.str("relu_"),
    lambda w: w.con(8, 8, 3, 1, 1),
    lambda w: w.affine(8),
    lambda w: w.pool("avg_pool_2", 2, 2),
    lambda w: w.str("add_prev_"),
    lambda w: w.str("relu_"),
]
_HEAD = [lambda w: w.pool("avg_pool_2", 0, 1), lambda w: w.fc(8, 5)]


def test_parse_follows_the_grammar_not_one_file(tmp_path: Path) -> None:
    small = tmp_path / "small.dat"
    _write_net(small, _STEM + _DOWN_BLOCK + _HEAD)
    spec, state = parse_dlib_resnet(small)
    assert spec.mean_rgb == (122.75, 117.0, 104.25) and (spec.fc_in, spec.fc_out) == (8, 5)
    assert len(spec.blocks) == 1 and spec.blocks[0].pool == (2, 2, 0)
    # the stem's affine (gamma 0.9, beta 0.1) is folded into its convolution
    raw = np.random.default_rng(3 * 100 + 4).normal(0, 0.1, 4 * 3 * 7 * 7 + 4).astype(np.float32)
    weight, bias = raw[:-4].reshape(4, 3, 7, 7), raw[-4:]
    np.testing.assert_allclose(state["stem.weight"].numpy(), 0.9 * weight, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(state["stem.bias"].numpy(), 0.9 * bias + 0.1, rtol=1e-6, atol=1e-7)
    model, _ = load_dlib_resnet(small, use_cache=False)
    chips = torch.zeros((2, 150, 150, 3), dtype=torch.uint8)
    assert model(chips).shape == (2, 5)


def test_network_ending_inside_a_block_is_refused(tmp_path: Path) -> None:
    cut = tmp_path / "cut.dat"
    _write_net(cut, _STEM + _DOWN_BLOCK[:5])
    with pytest.raises(DlibModelError, match=r"expected \['add_prev_', 'relu_'\]"):
        parse_dlib_resnet(cut)
    odd = tmp_path / "odd.dat"
    _write_net(odd, [*_STEM, lambda w: w.str("sig_")])
    with pytest.raises(DlibModelError, match="unsupported layer 'sig_'"):
        parse_dlib_resnet(odd)


def test_another_dlib_file_is_refused(tmp_path: Path) -> None:
    shape_predictor = default_model_paths()[1]
    with pytest.raises(DlibModelError, match="shape_predictor_5_face_landmarks"):
        parse_dlib_resnet(shape_predictor)


# --- the oracle ---------------------------------------------------------------------------


@pytest.mark.bbt
def test_oracle_on_every_bbt_crop(bbt_dir: Path, torch_embedder, dlib_embedder) -> None:
    gallery = sorted(p for p in bbt_dir.glob("*/*") if p.suffix.lower() in (".png", ".jpg"))
    groups = sorted(bbt_dir.glob("*.jpg"))
    crops = _faces(gallery)
    assert len(crops) >= len(gallery) - 2, "dlib's detector lost BBT gallery faces"
    group_crops = _faces(groups)
    assert len(group_crops) >= 20
    _assert_oracle(torch_embedder, dlib_embedder, crops + group_crops, "BBT")


def test_oracle_on_package_photos(asset_image_path: Path, torch_embedder, dlib_embedder) -> None:
    photos = [asset_image_path, asset_image_path.with_name("bus.jpg")]
    crops = _faces([p for p in photos if p.is_file()])
    assert len(crops) >= 2
    _assert_oracle(torch_embedder, dlib_embedder, crops, "ultralytics assets")


def test_oracle_on_synthesized_crops(torch_embedder, dlib_embedder) -> None:
    rng = np.random.default_rng(7)
    size = (CANONICAL_SIZE, CANONICAL_SIZE, 3)
    noise = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(4)]
    flat = [np.full(size, v, np.uint8) for v in (0, 128, 255)]
    ramp = np.tile(
        np.linspace(0, 255, CANONICAL_SIZE, dtype=np.uint8)[:, None, None], (1, *size[1:])
    )
    _assert_oracle(torch_embedder, dlib_embedder, noise + flat + [ramp], "synthesized")


def test_embed_matches_dlib_through_canonical_crops(torch_embedder, dlib_embedder) -> None:
    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 256, (CANONICAL_SIZE,) * 2 + (3,), dtype=np.uint8) for _ in range(3)]
    ours, theirs = torch_embedder.embed(crops), dlib_embedder.embed(crops)
    assert torch_embedder.id == dlib_embedder.id == "dlib_resnet_v1_128"
    assert ours.shape == (3, 128) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert _cosines(ours, theirs).min() >= ORACLE_COSINE
    assert torch_embedder.embed([]).shape == (0, 128)


# --- batching, layout, precision ----------------------------------------------------------


def test_batch_equals_single(torch_embedder) -> None:
    rng = np.random.default_rng(1)
    chips = [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(5)]
    batch = torch_embedder.descriptors_from_chips(chips)
    single = np.concatenate([torch_embedder.descriptors_from_chips([c]) for c in chips])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_max_batch_splits_the_same(cache_dir: Path, torch_embedder) -> None:
    rng = np.random.default_rng(2)
    chips = [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(5)]
    small = DlibTorchFaceEmbedder(cache_dir=cache_dir, max_batch=2)
    np.testing.assert_allclose(
        small.descriptors_from_chips(chips), torch_embedder.descriptors_from_chips(chips), atol=1e-5
    )


def test_max_batch_bounds_each_forward(cache_dir: Path, monkeypatch, tmp_path: Path) -> None:
    emb = DlibTorchFaceEmbedder(cache_dir=cache_dir, warmup=False)
    sizes: list[int] = []
    emb._model.register_forward_hook(lambda _m, args, _out: sizes.append(len(args[0])))
    chips = [np.zeros((150, 150, 3), np.uint8)] * 5
    emb.descriptors_from_chips(chips)
    assert emb.max_batch == 16 and sizes == [5]
    emb.max_batch = 2  # what embedding_node does when max_batch changes at run time
    emb.descriptors_from_chips(chips)
    assert sizes == [5, 2, 2, 1]
    with pytest.raises(ValueError, match="max_batch"):
        emb.max_batch = 0
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build_face_embedder("dlib", max_batch=3).max_batch == 3


def test_channels_last_gives_the_same(cache_dir: Path, torch_embedder) -> None:
    rng = np.random.default_rng(4)
    chips = [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(2)]
    plain = DlibTorchFaceEmbedder(cache_dir=cache_dir, channels_last=False)
    np.testing.assert_allclose(
        plain.descriptors_from_chips(chips), torch_embedder.descriptors_from_chips(chips), atol=1e-5
    )


@pytest.mark.parametrize(
    "bad", [np.zeros((150, 150, 3), np.float32), np.zeros((112, 112, 3), np.uint8)]
)
def test_bad_chips_raise(torch_embedder, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="chip 0"):
        torch_embedder.descriptors_from_chips([bad])


def test_warmup_runs_the_network_at_load(cache_dir: Path, monkeypatch) -> None:
    calls: list[int] = []
    original = DlibTorchFaceEmbedder.descriptors_from_chips

    def counting(self, chips):
        calls.append(len(chips))
        return original(self, chips)

    monkeypatch.setattr(DlibTorchFaceEmbedder, "descriptors_from_chips", counting)
    cold = DlibTorchFaceEmbedder(cache_dir=cache_dir, warmup=False)
    assert calls == []
    DlibTorchFaceEmbedder(cache_dir=cache_dir)
    assert calls == [1]
    assert cold.warmup((1, 2)) > 0 and calls == [1, 1, 2]


def test_fp16_on_cpu_is_refused(cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        DlibTorchFaceEmbedder(device="cpu", precision="fp16", cache_dir=cache_dir)
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8", torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_fp16_with_device_auto_runs_fp32_without_gpu(cache_dir: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        emb = DlibTorchFaceEmbedder(device="auto", precision="fp16", cache_dir=cache_dir)
    assert emb.device.type == "cpu" and emb.dtype == torch.float32
    assert "running fp32" in caplog.text


def test_bf16_on_cpu_stays_within_the_oracle(
    cache_dir: Path, torch_embedder, dlib_embedder
) -> None:
    rng = np.random.default_rng(5)
    crops = [rng.integers(0, 256, (CANONICAL_SIZE,) * 2 + (3,), dtype=np.uint8) for _ in range(4)]
    bf16 = DlibTorchFaceEmbedder(precision="bf16", cache_dir=cache_dir)
    assert bf16.dtype == torch.bfloat16
    chips = dlib_embedder.face_chips(crops)
    cos = _cosines(bf16.descriptors_from_chips(chips), _dlib_descriptors(dlib_embedder, chips))
    assert cos.min() >= ORACLE_COSINE, cos.min()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_matches_dlib(cache_dir: Path, dlib_embedder, precision: str) -> None:
    rng = np.random.default_rng(6)
    crops = [rng.integers(0, 256, (CANONICAL_SIZE,) * 2 + (3,), dtype=np.uint8) for _ in range(6)]
    emb = DlibTorchFaceEmbedder(device="cuda", precision=precision, cache_dir=cache_dir)
    assert emb.device.type == "cuda"
    chips = dlib_embedder.face_chips(crops)
    cos = _cosines(emb.descriptors_from_chips(chips), _dlib_descriptors(dlib_embedder, chips))
    assert cos.min() >= ORACLE_COSINE, (precision, cos.min())


def test_num_threads_sets_torch_threads(cache_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        DlibTorchFaceEmbedder(num_threads=1, cache_dir=cache_dir)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="num_threads"):
        DlibTorchFaceEmbedder(num_threads=-1, cache_dir=cache_dir)


# --- the weights cache --------------------------------------------------------------------


def _outputs(model) -> np.ndarray:
    chips = torch.from_numpy(np.random.default_rng(9).integers(0, 256, (2, 150, 150, 3), np.uint8))
    with torch.inference_mode():
        return model(chips).numpy()


def test_cache_miss_then_hit(dat_path: str, tmp_path: Path) -> None:
    first, info1 = load_dlib_resnet(dat_path, cache_dir=tmp_path)
    assert not info1.cache_hit
    assert info1.cache_path == tmp_path / f"{file_sha256(dat_path)}.pt"
    assert info1.cache_path.is_file()
    second, info2 = load_dlib_resnet(dat_path, cache_dir=tmp_path)
    assert info2.cache_hit and info2.sha256 == info1.sha256
    np.testing.assert_array_equal(_outputs(first), _outputs(second))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda p: p.write_bytes(b"not a torch file"),
        lambda p: p.write_bytes(p.read_bytes()[:1000]),
        lambda p: torch.save({"format": CACHE_FORMAT, "source_sha256": "0" * 64}, p),
        lambda p: torch.save({**torch.load(p, weights_only=True), "state_dict": {}}, p),
    ],
    ids=["garbage", "truncated", "other-source", "no-weights"],
)
def test_bad_cache_is_ignored_and_rebuilt(dat_path: str, tmp_path: Path, spoil, caplog) -> None:
    reference, _ = load_dlib_resnet(dat_path, use_cache=False)
    _, info = load_dlib_resnet(dat_path, cache_dir=tmp_path)
    spoil(info.cache_path)
    with caplog.at_level(logging.WARNING):
        model, again = load_dlib_resnet(dat_path, cache_dir=tmp_path)
    assert not again.cache_hit and "ignoring the unusable dlib weights cache" in caplog.text
    np.testing.assert_array_equal(_outputs(model), _outputs(reference))
    _, third = load_dlib_resnet(dat_path, cache_dir=tmp_path)
    assert third.cache_hit, "the rebuilt cache was not written back"


def test_unwritable_cache_only_warns(dat_path: str, tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    with caplog.at_level(logging.WARNING):
        _, info = load_dlib_resnet(dat_path, cache_dir=blocker / "sub")
    assert not info.cache_hit and "cannot write the dlib weights cache" in caplog.text


# --- the factory's engine choice ----------------------------------------------------------


def test_factory_engines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    auto = build_face_embedder("dlib")
    assert isinstance(auto, DlibTorchFaceEmbedder)
    assert auto.load_info.cache_path.parent == tmp_path / "visio_memoria" / "dlib_torch"
    assert isinstance(build_face_embedder("dlib_torch"), DlibTorchFaceEmbedder)
    assert isinstance(build_face_embedder("dlib_cpp"), DlibFaceEmbedder)
    # jittered descriptors are dlib's C++ only
    assert isinstance(build_face_embedder("dlib", dlib_num_jitters=2), DlibFaceEmbedder)
    with pytest.raises(ValueError, match="jitter"):
        build_face_embedder("dlib_torch", dlib_num_jitters=2)
    with pytest.raises(ValueError, match="fp16"):
        build_face_embedder("dlib", device="cpu", precision="fp16")


def test_factory_passes_threads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    before = torch.get_num_threads()
    try:
        build_face_embedder("dlib", torch_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_factory_falls_back_to_dlib_without_torch(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    # an import of the torch port fails as it would without torch installed
    monkeypatch.setitem(sys.modules, "visio_memoria_ros.embedding.dlib_torch", None)
    with caplog.at_level(logging.WARNING):
        emb = build_face_embedder("dlib")
    assert isinstance(emb, DlibFaceEmbedder) and emb.id == "dlib_resnet_v1_128"
    assert "falls back to dlib's C++" in caplog.text
    with pytest.raises(ImportError):
        build_face_embedder("dlib_torch")
