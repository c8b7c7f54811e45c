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
            settle(page)
            password.fill(PASSWORD)
            page.get_by_role("button", name="Enter").click()

            # The cluster as an image grid, then name it through the page's widgets.
            expect(page.get_by_text(f"Cluster {cluster_id}", exact=True)).to_be_visible()
            expect(page.get_by_text("3 faces · first seen")).to_be_visible()
            expect(page.get_by_role("img")).to_have_count(3)
            settle(page)
            name_box = page.get_by_label(f"Name for cluster {cluster_id}")
            page.get_by_role("button", name="Save name").click()  # empty: a clear refusal
            expect(page.get_by_text("Type a name for these faces first.")).to_be_visible()
            settle(page)
            name_box.fill(NAME)
            page.get_by_role("button", name="Save name").click()
            expect(page.get_by_text(f"New person {NAME} remembered with 3 faces.")
                   ).to_be_visible()
            expect(page.get_by_text("No unknown faces are waiting for a name.")).to_be_visible()
            settle(page)

            # The person: forgetting needs the tick; a rename goes through.
            page.get_by_role("tab", name="People").click()
            page.get_by_label("Person", exact=True).click()
            page.get_by_role("option", name=f"{NAME} (#").click()
            expect(page.get_by_role("heading", name=NAME)).to_be_visible()
            settle(page)
            page.get_by_role("button", name="Forget").click()
            expect(page.get_by_text(f"Tick the confirmation to forget {NAME}")).to_be_visible()
            settle(page)
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


def settle(page) -> None:
    """Wait until the page's script run is over: while Streamlit reruns the page, the previous
    run's elements stay on screen (stale) beside the new ones, and a click on one of them is
    lost when the run replaces it. A user sees them greyed out and waits; so do the tests,
    before every interaction that follows a run (login, an action, the first load)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                           timeout=UI_TIMEOUT_MS)
    page.wait_for_function('!document.querySelector(\'[data-stale="true"]\')',
                           timeout=UI_TIMEOUT_MS)


def tick(page, label: str) -> None:
    """Tick the check box whose label starts with ``label`` (clicking its label, as a user)."""
    settle(page)
    box = page.get_by_role("checkbox", name=label)
    page.locator("label").filter(has=box).click()
    from playwright.sync_api import expect

    expect(box).to_be_checked()


def expand(page, title: str) -> None:
    """Open the expander ``title`` unless it is open already (it stays open across runs)."""
    settle(page)
    details = page.locator("details").filter(has=page.locator("summary", has_text=title))
    if not details.evaluate("el => el.open"):
        details.locator("summary").click()
    page.wait_for_function("el => el.open", arg=details.element_handle())


def make_people_store(path: Path) -> tuple[int, list[int], int, int]:
    """A store with a person (Amy: a face picture and a visit), a cluster of 4 unknown faces
    and one face offered as "maybe Amy?": (cluster id, its face ids, Amy's id, the maybe id)."""
    rng = np.random.default_rng(11)
    centre = unit(rng.normal(size=32))
    with SQLiteStore(path, StoreOptions()) as store:
        amy = store.create_person("Amy").person_id
        picture = np.zeros((32, 32, 3), np.uint8)
        picture[4:28, 4:28] = (250, 200, 40)
        store.add_embedding(amy, unit(rng.normal(size=32)), "synth", crop=picture, quality=0.9)
        store.open_or_extend_visit(amy, time.time() - 60, location="hall")
        ids = []
        for i in range(4):
            img = np.full((32, 32, 3), 40 * i, np.uint8)
            ids.append(store.add_unknown(unit(centre + 0.05 * rng.normal(size=32)), "synth",
                                         crop=img, quality=0.2 * i).unknown_id)
        maybe = store.add_unknown(unit(rng.normal(size=32)), "synth", crop=picture,
                                  candidate_id=amy, candidate_similarity=0.93).unknown_id
        clusters = store.list_clusters()
        assert [c.size for c in clusters] == [4], clusters
        return clusters[0].cluster_id, ids, amy, maybe


def test_split_a_cluster_and_see_faces_of_people(tmp_path: Path) -> None:
    chromium = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    db = tmp_path / "mem" / "memory.db"
    cluster_id, ids, amy, maybe = make_people_store(db)

    with serve(db, tmp_path) as url, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1200})
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(url)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Enter").click()

            # The face offered as "maybe Amy?" waits for a yes or no, apart from the cluster.
            expect(page.get_by_text("Maybe Amy?")).to_be_visible()
            expect(page.get_by_text(f"face {maybe} · similarity 0.93")).to_be_visible()

            # Split: tick the two best faces, move them to a cluster of their own.
            expect(page.get_by_text(f"Cluster {cluster_id}", exact=True)).to_be_visible()
            expand(page, f"Split cluster {cluster_id}")
            best = ids[:1:-1]  # the two best pictures (qualities rise with the id)
            for face_id in best:
                tick(page, f"face {face_id} · q")
            page.get_by_role("button", name="Move to a new cluster").click()
            expect(page.get_by_text("2 faces moved to the new cluster")).to_be_visible()

            # The rest of the cluster goes to Amy, from the split form, face by face.
            expand(page, f"Split cluster {cluster_id}")
            tick(page, f"face {ids[0]} · q")
            page.get_by_label(f"Person for the faces ticked in cluster {cluster_id}").click()
            page.get_by_role("option", name="Amy (#").click()
            page.get_by_role("button", name="Give to the person").first.click()
            expect(page.get_by_text("1 face added to Amy.")).to_be_visible()
            settle(page)

            # People: a face thumbnail for every person; the visits show faces too.
            page.get_by_role("tab", name="People").click()
            expect(page.get_by_role("img", name="Amy")).to_have_count(1)
            page.get_by_role("tab", name="Recent visits").click()
            expect(page.get_by_role("img", name="Amy").last).to_be_visible()
            expect(page.get_by_text("Traceback")).to_have_count(0)
        finally:
            browser.close()

    with SQLiteStore(db, StoreOptions(read_only=True)) as store:
        new = {store.get_unknown(i).cluster_id for i in best}
        assert len(new) == 1 and new != {cluster_id}
        assert [e.embedding_id for e in store.list_embeddings(amy)][1:] == [ids[0]]
        left = [i for i in ids if i not in best and i != ids[0]]
        assert {store.get_unknown(i).cluster_id for i in left} == {cluster_id}
        assert [c.unknown_id for c in store.list_candidates()] == [maybe]
