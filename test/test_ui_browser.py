"""End to end: the labelling page in a real headless Chromium, served by the real launcher.

A temp store holds one cluster of 3 unknown faces; the page (behind a password) is started as
``python -m visio_memoria_ros.ui`` on a free localhost port; the browser logs in, names the
cluster, and the store must then hold a person with exactly those 3 faces and no cluster;
then it tries to forget the person without confirming (refused) and renames them.
Skips when Playwright or a Chromium binary is missing (scripts/bootstrap.sh installs both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from visio_memoria_ros.memory import PENDING, SQLiteStore, StoreOptions

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "open sesame ü"
NAME = "Leonard Hofstadter"
RENAMED = "Leonard"
START_TIMEOUT = 40.0
UI_TIMEOUT_MS = 20_000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def chromium_path() -> str:
    """The Chromium binary to drive (VISIO_MEMORIA_CHROMIUM, else Debian's), or skip."""
    pytest.importorskip("playwright.sync_api",
                        reason="Playwright for Python is missing (pip install playwright)")
    for candidate in (os.environ.get("VISIO_MEMORIA_CHROMIUM", ""), "/usr/bin/chromium",
                      shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no Chromium binary (apt-get install chromium, or set VISIO_MEMORIA_CHROMIUM)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def make_store(path: Path) -> tuple[int, list[int]]:
    """Create a store with one cluster of 3 unknown faces (vectors + 32x32 crops)."""
    rng = np.random.default_rng(7)
    centre = unit(rng.normal(size=32))
    with SQLiteStore(path, StoreOptions()) as store:  # the memory node's defaults
        ids = []
        for i in range(3):
            img = np.zeros((32, 32, 3), np.uint8)
            img[..., i] = 200
            img[8:24, 8:24] = 255
            ids.append(store.add_unknown(unit(centre + 0.05 * rng.normal(size=32)), "synth",
                                         crop=img, quality=0.5 + i / 10).unknown_id)
        clusters = store.list_clusters()
        if not clusters:
            store.recluster()
            clusters = store.list_clusters()
        assert [c.size for c in clusters] == [3], clusters
        assert all(u.cluster_id != PENDING for u in store.list_unknowns())
        return clusters[0].cluster_id, ids


@contextlib.contextmanager
def serve(db: Path, tmp: Path) -> Iterator[str]:
    """Run the launcher on a free port with a password; yield the page URL."""
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env["HOME"] = str(tmp / "home")
    env["VISIO_MEMORIA_UI_PASSWORD"] = PASSWORD
    env.pop("VISIO_MEMORIA_DB", None)
    env.pop("VISIO_MEMORIA_UI_PASSWORD_FILE", None)
    log_path = tmp / "streamlit.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "visio_memoria_ros.ui", "--db", str(db), "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp))
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the page server exited ({proc.returncode}):\n"
                            + log_path.read_text(errors="replace"))
            try:
                with urllib.request.urlopen(url + "_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the page server did not answer within "
                            f"{START_TIMEOUT:.0f} s:\n" + log_path.read_text(errors="replace"))
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log_path.read_text(errors="replace"))  # shown by pytest when the test fails


def test_label_a_cluster_through_the_page(tmp_path: Path) -> None:
    chromium = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)

    db = tmp_path / "mem" / "memory.db"
    cluster_id, face_ids = make_store(db)

    with serve(db, tmp_path) as url, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1000})
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(url)

            # The password gate: nothing personal before the right password.
            password = page.get_by_label("Password", exact=True)
            expect(password).to_be_visible()
            expect(page.get_by_text(f"Cluster {cluster_id}", exact=True)).to_have_count(0)
            password.fill("wrong")
            page.get_by_role("button", name="Enter").click()
            expect(page.get_by_text("Wrong password.")).to_be_visible()
            expect(page.get_by_text(f"Cluster {cluster_id}", exact=True)).to_have_count(0)
            password.fill(PASSWORD)
            page.get_by_role("button", name="Enter").click()

            # The cluster as an image grid, then name it through the page's widgets.
            expect(page.get_by_text(f"Cluster {cluster_id}", exact=True)).to_be_visible()
            expect(page.get_by_text("3 faces · first seen")).to_be_visible()
            expect(page.get_by_role("img")).to_have_count(3)
            name_box = page.get_by_label(f"Name for cluster {cluster_id}")
            page.get_by_role("button", name="Save name").click()  # empty: a clear refusal
            expect(page.get_by_text("Type a name for these faces first.")).to_be_visible()
            name_box.fill(NAME)
            page.get_by_role("button", name="Save name").click()
            expect(page.get_by_text(f"New person {NAME} remembered with 3 faces.")
                   ).to_be_visible()
            expect(page.get_by_text("No unknown faces are waiting for a name.")).to_be_visible()

            # The person: forgetting needs the tick; a rename goes through.
            page.get_by_role("tab", name="People").click()
            page.get_by_label("Person", exact=True).click()
            page.get_by_role("option", name=f"{NAME} (#").click()
            expect(page.get_by_role("heading", name=NAME)).to_be_visible()
            page.get_by_role("button", name="Forget").click()
            expect(page.get_by_text(f"Tick the confirmation to forget {NAME}")).to_be_visible()
            new_name = page.get_by_label("New name")
            new_name.fill(RENAMED)
            page.get_by_role("button", name="Rename").click()
            expect(page.get_by_text(f"{NAME} is now called {RENAMED}.")).to_be_visible()
            expect(page.get_by_text("Traceback")).to_have_count(0)
        finally:
            browser.close()

    with SQLiteStore(db, StoreOptions(read_only=True)) as store:
        assert store.find_person(NAME) is None
        person = store.find_person(RENAMED)
        assert person is not None and person.num_embeddings == 3
        assert sorted(e.embedding_id for e in store.list_embeddings(person.person_id)
                      ) == sorted(face_ids)
        assert store.list_clusters() == [] and store.list_unknowns() == []
