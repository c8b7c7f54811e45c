"""The labelling page (Streamlit script): name, merge, reject and forget remembered faces.

Run it through ``python -m visio_memoria_ros.ui`` (binds 127.0.0.1, headless, no telemetry).
Settings come from the command line after ``--``; the store path is fixed at start and the
page has no input that names a file.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import streamlit as st

from visio_memoria_ros.memory import STORE_ERRORS, MemoryStore, PersonRecord
from visio_memoria_ros.ui import actions
from visio_memoria_ros.ui.settings import (
    UiSettings,
    check_bind,
    check_password,
    load_password,
    open_store,
    parse_settings,
)

LOG = logging.getLogger("visio_memoria_ros.ui.app")
T = TypeVar("T")
CROP_WIDTH = 96
FLASH = "vm_flash"
AUTH = "vm_authenticated"
PERSON_KEY = "vm_person"


# -- start-up (once per server process) ----------------------------------------------------
@st.cache_resource(show_spinner=False)
def _settings(argv: tuple[str, ...]) -> tuple[UiSettings, str | None]:
    """Parse the page's start arguments and load its password."""
    try:
        settings = parse_settings(argv)
    except SystemExit as exc:  # argparse already printed the usage to the server log
        raise ValueError("the page was started with invalid arguments (see the log)") from exc
    return settings, load_password(settings)


@st.cache_resource(show_spinner=False)
def _store(argv: tuple[str, ...]) -> MemoryStore:
    """Open the memory store once for every session of this server."""
    settings, _ = _settings(argv)
    store = open_store(settings)
    LOG.info("labelling page serves %s", getattr(store, "where", "the memory store"))
    return store


def _fail(message: str) -> NoReturn:
    st.error(message)
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


def _start() -> tuple[str | None, MemoryStore]:
    """Check the start settings, ask for the password, open the store; stop on failure."""
    argv = tuple(sys.argv[1:])
    try:
        _, password = _settings(argv)
        # Also refuses `streamlit run app.py` started by hand on a public address.
        check_bind(str(st.get_option("server.address") or ""), password)
    except ValueError as exc:
        _fail(f"The labelling page cannot start: {exc}")
    _gate(password)
    try:
        store = _store(argv)
    except STORE_ERRORS as exc:
        _fail(f"The memory store cannot be opened: {exc}")
    return password, store


def _gate(password: str | None) -> None:
    """Ask for the password once per browser session (no password configured = open)."""
    if password is None or st.session_state.get(AUTH):
        return
    st.title("visio_memoria")
    with st.form("login"):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Enter")
    if submitted:
        if check_password(given, password):
            st.session_state[AUTH] = True
            st.rerun()
        time.sleep(1.0)  # slows down guessing
        st.error("Wrong password.")
    st.stop()


# -- helpers -------------------------------------------------------------------------------
def _done(outcome: actions.Outcome) -> None:
    """Remember the outcome for the next run and redraw the page with fresh data."""
    st.session_state[FLASH] = outcome
    st.rerun()


def _show_flash() -> None:
    # One slot that always exists, so the elements below keep their place between runs.
    slot = st.empty()
    outcome = st.session_state.pop(FLASH, None)
    if outcome is None:
        return
    if outcome.ok:
        slot.success(outcome.message)
    else:
        slot.error(outcome.message)


def _crops(images: Sequence[Any], captions: Sequence[str] | None = None) -> None:
    if not images:
        st.caption("No face pictures stored.")
        return
    st.image(list(images), width=CROP_WIDTH,
             caption=list(captions) if captions and len(captions) == len(images) else None)


def _read(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a store read; on a store error show it and stop this run."""
    try:
        return fn(*args, **kwargs)
    except STORE_ERRORS as exc:
        _fail(f"Could not read {what}: {exc}")


# -- sections ------------------------------------------------------------------------------
def _sidebar(password: str | None, store: MemoryStore) -> int:
    with st.sidebar:
        st.header("Memory")
        st.caption(str(getattr(store, "where", "")))
        if not store.writable:
            st.warning("Opened read-only: nothing can be changed.")
        stats = _read("the store statistics", store.stats)
        st.metric("Persons", stats.num_persons)
        st.metric("Unknown faces", stats.num_unknowns)
        st.metric("Unknown clusters", stats.num_clusters)
        st.caption(f"Revision {stats.revision}")
        samples = int(st.number_input("Faces shown per cluster", min_value=1, max_value=16,
                                      value=6, step=1))
        st.button("Refresh")
        if password is not None and st.button("Log out"):
            st.session_state.pop(AUTH, None)
            st.rerun()
    return samples


def _cluster_section(store: MemoryStore, persons: list[PersonRecord], samples: int) -> None:
    clusters = _read("the unknown clusters", store.list_clusters, 1, samples)
    if not clusters:
        st.info("No unknown faces are waiting for a name.")
        return
    max_shown = 30
    st.caption(f"{len(clusters)} cluster(s) of unknown faces, largest first"
               + (f"; the first {max_shown} are shown" if len(clusters) > max_shown else "")
               + ".")
    by_id = {p.person_id: p for p in persons}
    for c in clusters[:max_shown]:
        cid = c.cluster_id
        with st.container(border=True):
            st.subheader(f"Cluster {cid}")
            st.caption(actions.cluster_caption(c.size, c.first_seen, c.last_seen))
            _crops(c.sample_crops, [f"face {u}" for u in c.unknown_ids])
            col_name, col_merge, col_reject = st.columns(3)
            with col_name, st.form(f"name-{cid}"):
                name = st.text_input(f"Name for cluster {cid}",
                                     placeholder="A new name, or an existing person's name")
                if st.form_submit_button("Save name", type="primary"):
                    _done(actions.name_cluster(store, cid, name))
            with col_merge, st.form(f"merge-{cid}"):
                pid = st.selectbox(f"Add cluster {cid} to", list(by_id), index=None,
                                   format_func=lambda i: actions.person_label(by_id[i]),
                                   placeholder="Choose a person")
                if st.form_submit_button("Add to person"):
                    _done(actions.add_cluster_to_person(store, cid, pid))
            with col_reject, st.form(f"reject-{cid}"):
                reason = st.radio(f"Reject cluster {cid}", actions.REJECT_REASONS)
                if st.form_submit_button("Reject"):
                    _done(actions.reject_cluster(store, cid, str(reason)))


def _visits(store: MemoryStore, person: PersonRecord) -> None:
    visits = _read("the visits", store.list_visits, person.person_id, 500)
    st.markdown("**Visits**")
    if not visits:
        st.caption("No visits recorded.")
        return
    st.dataframe(actions.visit_rows(visits), hide_index=True)
    _timeline_chart(actions.visit_timeline(visits))


def _timeline_chart(rows: list[dict[str, Any]]) -> None:
    import altair as alt

    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar(cornerRadius=2)
        .encode(
            x=alt.X("from:Q", title="hour of day", scale=alt.Scale(domain=[0, 24])),
            x2="to:Q",
            y=alt.Y("day:O", title=None, sort="descending"),
            color=alt.Color("where:N", title="where"),
            tooltip=["start:N", "end:N", "minutes:Q", "where:N", "activity:N"],
        )
    )
    st.altair_chart(chart, height=60 + 26 * len({r["day"] for r in rows}))


def _person_section(store: MemoryStore, persons: list[PersonRecord]) -> None:
    if not persons:
        st.info("Nobody is remembered yet: name a cluster of unknown faces first.")
        return
    st.dataframe(actions.person_rows(persons), hide_index=True)
    by_id = {p.person_id: p for p in persons}
    # The choice lives in our own state (not a widget key) so that a renamed person shows
    # the new name, and a forgotten or merged-away person is simply no longer chosen.
    ids = list(by_id)
    chosen = st.session_state.get(PERSON_KEY)
    pid = st.selectbox("Person", ids, index=ids.index(chosen) if chosen in by_id else None,
                       placeholder="Choose a person",
                       format_func=lambda i: actions.person_label(by_id[i]))
    st.session_state[PERSON_KEY] = pid
    if pid is None:
        return
    person = by_id[pid]
    st.subheader(person.name)
    st.caption(f"{person.num_embeddings} faces · {person.num_visits} visits · first seen "
               f"{actions.format_time(person.first_seen)} · last seen "
               f"{actions.format_time(person.last_seen)}"
               + (" · never remember" if person.never_remember else ""))
    faces = _read("the person's faces", store.list_embeddings, pid, with_crops=True)
    shown = [e for e in faces if e.crop is not None][:12]
    _crops([e.crop for e in shown], [f"face {e.embedding_id}" for e in shown])

    col_rename, col_merge = st.columns(2)
    with col_rename, st.form(f"rename-{pid}"):
        new_name = st.text_input("New name", value=person.name)
        if st.form_submit_button("Rename"):
            _done(actions.rename_person(store, pid, new_name))
    others = {i: p for i, p in by_id.items() if i != pid}
    with col_merge, st.form(f"merge-person-{pid}"):
        target = st.selectbox(f"Merge {person.name} into", list(others), index=None,
                              format_func=lambda i: actions.person_label(others[i]),
                              placeholder="Choose a person")
        if st.form_submit_button("Merge"):
            _done(actions.merge_persons(store, pid, target))

    col_never, col_forget = st.columns(2)
    with col_never, st.form(f"never-{pid}"):
        never = st.checkbox("Never remember or greet this person",
                            value=person.never_remember)
        if st.form_submit_button("Save privacy choice"):
            _done(actions.set_never_remember(store, pid, never))
    with col_forget, st.form(f"forget-{pid}"):
        st.markdown(f"**Forget {person.name}**: deletes their faces, pictures and visits.")
        confirmed = st.checkbox(f"Yes, forget {person.name} for good")
        if st.form_submit_button("Forget"):
            _done(actions.forget_person(store, pid, confirmed=confirmed))

    _visits(store, person)


def _recent_visits(store: MemoryStore) -> None:
    visits = _read("the visits", store.list_visits, -1, 100)
    if not visits:
        st.info("No visits recorded yet.")
        return
    rows = [{"who": v.name, **r} for v, r in zip(visits, actions.visit_rows(visits),
                                                   strict=True)]
    st.dataframe(rows, hide_index=True)


def main() -> None:
    """Draw the page for one run of the script."""
    st.set_page_config(page_title="visio_memoria: who is who", layout="wide")
    password, store = _start()
    samples = _sidebar(password, store)
    st.title("Who is who")
    _show_flash()
    persons = _read("the persons", store.list_persons)
    tab_unknown, tab_people, tab_visits = st.tabs(["Unknown faces", "People", "Recent visits"],
                                                   key="vm_tab")
    with tab_unknown:
        _cluster_section(store, persons, samples)
    with tab_people:
        _person_section(store, persons)
    with tab_visits:
        _recent_visits(store)


main()
