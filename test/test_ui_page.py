"""The labelling page's script run in-process (streamlit.testing's AppTest, no browser).

What a click does depends on what the previous run drew: Streamlit reruns the whole script on
a click, and the rerun reads the memory afresh. These tests change the memory between drawing
the page and clicking, as the robot does while somebody looks at the page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visio_memoria_ros.memory import PENDING, ClusterParams, SQLiteStore, StoreOptions

pytest.importorskip("streamlit")
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

import visio_memoria_ros.ui as ui_package

APP = Path(ui_package.__file__).resolve().parent / "app.py"
DIM = 16
EMB = "test-emb"


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def face(sample: int) -> np.ndarray:
    """One stranger's face: every sample within cosine ~0.99 of the others."""
    centre = unit(np.random.default_rng(7).normal(size=DIM))
    return unit(centre + 0.05 * np.random.default_rng(100 + sample).normal(size=DIM))


def crop(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         request: pytest.FixtureRequest) -> tuple[AppTest, SQLiteStore]:
    """The page on a fresh SQLite memory holding one cluster of four faces, drawn once."""
    db = tmp_path / "memory.db"
    store = SQLiteStore(db, StoreOptions(crop_format="png",
                                         cluster=ClusterParams(similarity=0.8, min_size=2)))
    for i in range(4):
        store.add_unknown(face(i), EMB, crop=crop(i), quality=0.5 + i / 10)
    (cluster,) = store.list_clusters()
    assert cluster.size == 4 and cluster.cluster_id != PENDING
    monkeypatch.setattr("sys.argv", ["app", "--db", str(db)])
    # as `python -m visio_memoria_ros.ui` binds it (the page refuses any other address)
    address = st_config.get_option("server.address")
    st_config.set_option("server.address", "127.0.0.1")
    request.addfinalizer(lambda: st_config.set_option("server.address", address))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at, store


def _submit(at: AppTest, label: str) -> None:
    (button,) = [b for b in at.button if b.label == label]
    button.click()
    at.run()
    assert not at.exception, at.exception


def test_save_name_names_the_faces_drawn_not_one_that_joined_since(page) -> None:
    at, store = page
    (cluster,) = store.list_clusters()
    shown = sorted(u.unknown_id for u in store.list_unknowns(cluster.cluster_id))
    late = store.add_unknown(face(9), EMB, crop=crop(9), quality=0.9)  # arrives meanwhile
    assert late.cluster_id == cluster.cluster_id
    (name,) = [t for t in at.text_input if t.label == f"Name for cluster {cluster.cluster_id}"]
    name.set_value("Amy")
    _submit(at, "Save name")
    amy = store.find_person("Amy")
    assert amy is not None and amy.num_embeddings == len(shown) == 4
    left = store.list_unknowns()
    assert [u.unknown_id for u in left] == [late.unknown_id]  # still unknown, not Amy's
    assert any("Amy" in s.value and "4 faces" in s.value for s in at.success), at.success


def test_reject_acts_on_the_faces_drawn(page) -> None:
    at, store = page
    (cluster,) = store.list_clusters()
    late = store.add_unknown(face(9), EMB, crop=crop(9), quality=0.9)
    assert late.cluster_id == cluster.cluster_id
    _submit(at, "Reject")
    assert [u.unknown_id for u in store.list_unknowns()] == [late.unknown_id]


def test_a_second_click_acts_on_what_the_first_one_redrew(page) -> None:
    """After a click the page is drawn again: the next click names what that drawing showed."""
    at, store = page
    (cluster,) = store.list_clusters()
    store.add_unknown(face(9), EMB, crop=crop(9), quality=0.9)
    at.run()  # the page redrawn (any interaction) now shows the fifth face
    (name,) = [t for t in at.text_input if t.label == f"Name for cluster {cluster.cluster_id}"]
    name.set_value("Amy")
    _submit(at, "Save name")
    amy = store.find_person("Amy")
    assert amy is not None and amy.num_embeddings == 5
    assert store.list_unknowns() == []
