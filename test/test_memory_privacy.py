"""Privacy: forgetting leaves no trace, owner-only files, encryption at rest."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from visio_memoria_ros.config import NODE_PARAMS
from visio_memoria_ros.memory import (
    BlobCipher,
    ClusterParams,
    SQLiteStore,
    StoreOptions,
    StoreUnavailable,
    load_key,
)

DIM = 32
EMB = "emb"
NAME = "Zebulon Quixote-Ünïcødé"


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def crop(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)


def raw_bytes(path: Path) -> bytes:
    """The database file and its side files, as stored on disk."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal"))
                    if p.exists())


def all_cells(conn: sqlite3.Connection) -> list[object]:
    """Every value of every table (schema included)."""
    values: list[object] = []
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        for row in conn.execute(f'SELECT * FROM "{table}"'):
            values.extend(row)
    values.extend(r[0] for r in conn.execute("SELECT sql FROM sqlite_master"))
    return values


def key_b64() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.mark.parametrize("encrypted", [False, True])
def test_forget_leaves_no_trace(tmp_path: Path, encrypted: bool) -> None:
    path = tmp_path / "memory.db"
    key = base64.urlsafe_b64decode(key_b64()) if encrypted else None
    store = SQLiteStore(path, StoreOptions(crop_format="png",
                                           cluster=ClusterParams(similarity=0.9, min_size=2)),
                        key=key)
    keep = store.create_person("Keeper")
    keep_face = store.add_embedding(keep.person_id, vec(99), EMB, crop=crop(99))
    target = store.create_person(NAME)
    faces = [store.add_embedding(target.person_id, vec(i), EMB, crop=crop(i), source=NAME)
             for i in range(3)]
    # Labelled through the unknowns too, and with visits, negatives both ways and events.
    u = store.add_unknown(vec(10), EMB, crop=crop(10))
    store.label_unknown(u.unknown_id, name=NAME.lower())
    store.open_or_extend_visit(target.person_id, 100.0, location="hall", activity="waving")
    store.not_this_person(target.person_id, [faces[2].embedding_id])
    store.label_unknown(faces[2].embedding_id, person_id=keep.person_id)
    moved = store.add_embedding(keep.person_id, vec(20), EMB, crop=crop(20)).embedding_id
    store.not_this_person(keep.person_id, [moved])  # keep's negative on a face of the target
    store.label_unknown(moved, person_id=target.person_id)
    store.add_unknown(vec(50), EMB)
    cluster = store.add_unknown(vec(50) + 0.01 * vec(51), EMB).cluster_id
    store.not_this_person(target.person_id, [], unknown_cluster_id=cluster)
    store.rename_person(target.person_id, NAME + " Jr")
    store.rename_person(target.person_id, NAME)
    store.checkpoint()
    conn = store._conn
    gone_vectors = [vec(0), vec(1), vec(10), vec(20)]
    gone_crops = [bytes(r[0]) for r in conn.execute(
        "SELECT crop FROM embeddings WHERE person_id = ?", (target.person_id,))]
    gone_blobs = [bytes(r[0]) for r in conn.execute(
        "SELECT vector FROM embeddings WHERE person_id = ?", (target.person_id,))]
    assert len(gone_crops) == 4
    before = raw_bytes(path)
    assert NAME.encode() in before  # the checks below can see names
    if not encrypted:
        assert gone_vectors[0].tobytes() in before  # the check below can see vectors

    store.forget_person(target.person_id)

    for text in (NAME, NAME.casefold(), NAME.lower()):
        assert all(text not in str(v) for v in all_cells(conn))
    assert conn.execute("SELECT COUNT(*) FROM visits").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM negative_links").fetchone()[0] == 0
    assert len(store.list_unknowns(cluster)) == 2  # other people's data stays
    assert [p.name for p in store.list_persons()] == ["Keeper"]
    assert {e.embedding_id for e in store.list_embeddings(keep.person_id)} == {
        keep_face.embedding_id, faces[2].embedding_id}
    assert store.integrity_check() == "ok"
    data = raw_bytes(path)
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    for needle in (NAME.encode(), NAME.casefold().encode(), NAME.lower().encode()):
        assert needle not in data
    for v in gone_vectors:
        assert v.tobytes() not in data
    for blob in gone_blobs + gone_crops:
        assert blob[-48:] not in data
    store.close()
    data = raw_bytes(path)
    assert NAME.encode() not in data and vec(1).tobytes() not in data


def test_discard_leaves_no_vector(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path) as store:
        u = store.add_unknown(vec(7), EMB, crop=crop(7))
        store.checkpoint()
        assert vec(7).tobytes() in raw_bytes(path)
        store.discard_unknowns(unknown_ids=[u.unknown_id])
        assert vec(7).tobytes() not in raw_bytes(path)


def test_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        params = {s.name: s.default for s in NODE_PARAMS["memory_node"]}
        params["data_dir"] = str(tmp_path / "a" / "b")
        params["encryption_key_env"] = ""
        with SQLiteStore.from_params(params) as store:
            store.create_person("Mallory")
            data_dir = tmp_path / "a" / "b"
            assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
            for p in data_dir.iterdir():
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
            assert {p.name for p in data_dir.iterdir()} >= {"memory.db", "memory.db-wal"}
        with SQLiteStore(tmp_path / "c" / "m.db") as store:
            assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o700
            assert stat.S_IMODE((tmp_path / "c" / "m.db").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_encryption_at_rest(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("cryptography")
    path = tmp_path / "m.db"
    key_text = key_b64()
    key_file = tmp_path / "key"
    key_file.write_text(key_text + "\n")
    key_file.chmod(0o600)
    key = load_key(str(key_file))
    assert key is not None and len(key) == 32
    with SQLiteStore(path, StoreOptions(crop_format="png"), key=key) as store:
        assert store.encrypted and store.stats().encrypted
        pid = store.create_person("Trent").person_id
        img = crop(3)
        e = store.add_embedding(pid, vec(3), EMB, crop=img)
        store.checkpoint()
        back = store.list_embeddings(pid, with_crops=True)[0]
        np.testing.assert_allclose(back.vector, vec(3), rtol=1e-6)
        np.testing.assert_array_equal(back.crop, img)
        raw = store._conn.execute("SELECT vector, crop FROM embeddings WHERE id = ?",
                                  (e.embedding_id,)).fetchone()
        assert vec(3).tobytes() not in bytes(raw[0])
        assert not bytes(raw[1]).startswith(b"\x89PNG")
        assert vec(3).tobytes() not in raw_bytes(path)
    monkeypatch.setenv("VM_TEST_KEY", key_text)
    assert load_key("", "VM_TEST_KEY") == key
    with SQLiteStore(path, key=load_key("", "VM_TEST_KEY")) as store:
        assert store.gallery(EMB).entries[0].person_id == pid
    with pytest.raises(StoreUnavailable, match="no encryption key") as info:
        SQLiteStore(path)
    assert info.value.reason == "encryption"
    with pytest.raises(StoreUnavailable, match="wrong key"):
        SQLiteStore(path, key=os.urandom(32))
    monkeypatch.setenv("VM_BAD_KEY", "tooshort")
    with pytest.raises(StoreUnavailable, match="32"):
        load_key("", "VM_BAD_KEY")
    with pytest.raises(StoreUnavailable, match="cannot read"):
        load_key(str(tmp_path / "missing"))
    monkeypatch.delenv("VM_UNSET_KEY", raising=False)
    assert load_key("", "VM_UNSET_KEY") is None and load_key() is None


def test_cipher_binds_blobs_to_their_column() -> None:
    pytest.importorskip("cryptography")
    cipher = BlobCipher(os.urandom(32))
    blob = cipher.encrypt(b"secret face", "crop")
    assert cipher.decrypt(blob, "crop") == b"secret face"
    with pytest.raises(StoreUnavailable):
        cipher.decrypt(blob, "vector")
    plain = BlobCipher(None)
    assert not plain.enabled and plain.encrypt(b"x", "crop") == b"x"


def test_plain_blobs_stay_readable_after_enabling_encryption(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    path = tmp_path / "m.db"
    with SQLiteStore(path) as store:
        pid = store.create_person("Oscar").person_id
        store.add_embedding(pid, vec(1), EMB)
    with SQLiteStore(path, key=os.urandom(32)) as store:
        store.add_embedding(pid, vec(2), EMB)
        vs = store.gallery(EMB).vectors
        np.testing.assert_allclose(vs, np.stack([vec(1), vec(2)]), rtol=1e-6)


def test_shared_directories_are_not_chmodded(tmp_path: Path) -> None:
    from visio_memoria_ros.memory.privacy import secure_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    secure_dir(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    private = secure_dir(shared / "mine")
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
