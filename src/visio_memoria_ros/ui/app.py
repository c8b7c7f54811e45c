"""The labelling page (Streamlit script): name, merge, reject and forget remembered faces.

Run it through ``python -m visio_memoria_ros.ui`` (binds 127.0.0.1, headless, no telemetry).
Settings come from the command line after ``--``; the store path is fixed at start and the
page has no input that names a file.
"""

from __future__ import annotations

import html
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
THUMB_WIDTH = 72
FLASH = "vm_flash"
THUMBS = "vm_thumbnails"
VISIT_ROWS = 30
SPLIT_MAX = 64
AUTH = "vm_authenticated"
PERSON_KEY = "vm_person"
SHOWN_REVISIONS = "vm_shown_revisions"


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
        if stats.num_non_faces:
            st.caption(f"{stats.num_non_faces} 'not a face' examples keep faces like them "
                       "out of the memory.")
            if st.button("Forget the 'not a face' examples"):
                _done(actions.forget_non_faces(store))
        samples = int(st.number_input("Faces shown per cluster", min_value=1, max_value=16,
                                      value=6, step=1))
        st.button("Refresh")
        if password is not None and st.button("Log out"):
            st.session_state.pop(AUTH, None)
            st.rerun()
    return samples


def _candidates_section(store: MemoryStore) -> None:
    """Faces in the uncertain band of an enrolled person: "maybe <name>?", yes or no."""
    candidates = _read("the faces that may be someone", store.list_candidates)
    if not candidates:
        return
    st.subheader("Maybe someone you know?")
    by_person: dict[int, list[Any]] = {}
    for c in candidates:
        by_person.setdefault(c.person_id, []).append(c)
    for pid, faces in by_person.items():
        name = faces[0].name
        with st.container(border=True), st.form(f"maybe-{pid}"):
            st.markdown(f"**Maybe {name}?** {len(faces)} face(s) look like {name}, not "
                        "surely enough to be greeted.")
            ticked = _tick_grid(faces, [actions.candidate_caption(f.similarity) for f in faces],
                                f"maybe-{pid}", default=True)
            yes, no = st.columns(2)
            if yes.form_submit_button(f"Yes, {name}", type="primary"):
                _done(actions.confirm_candidates(store, ticked, pid))
            if no.form_submit_button(f"Not {name}"):
                _done(actions.reject_candidates(store, ticked, name))


def _tick_grid(faces: Sequence[Any], details: Sequence[str], key: str, *,
               default: bool = False, per_row: int = 8) -> list[int]:
    """Faces as pictures, each with a tick box "face <id> · <detail>" (inside a form);
    returns the ticked ids."""
    ticked = []
    for start in range(0, len(faces), per_row):
        cols = st.columns(per_row)
        for col, face, detail in zip(cols, faces[start:start + per_row],
                                     details[start:start + per_row], strict=False):
            with col:
                if face.crop is not None:
                    st.image(face.crop, width=CROP_WIDTH)
                if st.checkbox(f"face {face.unknown_id} · {detail}", value=default,
                               key=f"{key}-{face.unknown_id}"):
                    ticked.append(int(face.unknown_id))
    return ticked


def _cluster_section(store: MemoryStore, persons: list[PersonRecord], samples: int) -> None:
    clusters = _read("the unknown clusters", store.list_clusters, 1, samples)
    if not clusters:
        st.info("No unknown faces are waiting for a name.")
        return
    max_shown = 30
    st.caption(f"{len(clusters)} cluster(s) of unknown faces, largest first, best pictures "
               "first" + (f"; the first {max_shown} are shown" if len(clusters) > max_shown
                          else "") + ". Naming a cluster names the faces it holds as shown "
               "here; faces that arrive meanwhile stay unknown.")
    by_id = {p.person_id: p for p in persons}
    # A click reruns this script, which reads the clusters afresh: the forms act on the
    # revision the previous run drew (what the user saw), not on the one read for this run.
    shown = st.session_state.setdefault(SHOWN_REVISIONS, {})
    for c in clusters[:max_shown]:
        cid = c.cluster_id
        rev = shown.get(cid, c.revision)
        shown[cid] = c.revision
        with st.container(border=True):
            st.subheader(f"Cluster {cid}")
            st.caption(actions.cluster_caption(c.size, c.first_seen, c.last_seen))
            _crops(c.sample_crops, [actions.face_caption(u, q)
                                    for u, q in zip(c.unknown_ids, c.qualities, strict=False)])
            if c.size > len(c.unknown_ids):
                with st.expander(f"All {c.size} faces of cluster {cid}"):
                    every = _cluster_faces(store, cid)
                    _crops([u.crop for u in every if u.crop is not None],
                           [actions.face_caption(u.unknown_id, u.quality) for u in every
                            if u.crop is not None])
            col_name, col_merge, col_reject = st.columns(3)
            with col_name, st.form(f"name-{cid}"):
                name = st.text_input(f"Name for cluster {cid}",
                                     placeholder="A new name, or an existing person's name")
                if st.form_submit_button("Save name", type="primary"):
                    _done(actions.name_cluster(store, cid, name, rev))
            with col_merge, st.form(f"merge-{cid}"):
                pid = st.selectbox(f"Add cluster {cid} to", list(by_id), index=None,
                                   format_func=lambda i: actions.person_label(by_id[i]),
                                   placeholder="Choose a person")
                if st.form_submit_button("Add to person"):
                    _done(actions.add_cluster_to_person(store, cid, pid, rev))
            with col_reject, st.form(f"reject-{cid}"):
                reason = st.radio(f"Reject cluster {cid}", actions.REJECT_REASONS)
                if st.form_submit_button("Reject"):
                    _done(actions.reject_cluster(store, cid, str(reason), rev))
            with st.expander(f"Split cluster {cid}"), st.form(f"split-{cid}"):
                st.caption("Tick the faces that are someone else, then move them to a new "
                           "cluster or give them to a person.")
                every = _cluster_faces(store, cid)[:SPLIT_MAX]
                ticked = _tick_grid(every, [f"q {u.quality:.2f}" for u in every],
                                    f"split-{cid}")
                to_pid = st.selectbox(f"Person for the faces ticked in cluster {cid}",
                                      list(by_id), index=None,
                                      format_func=lambda i: actions.person_label(by_id[i]),
                                      placeholder="Choose a person")
                new, give = st.columns(2)
                if new.form_submit_button("Move to a new cluster"):
                    _done(actions.split_to_new_cluster(store, ticked))
                if give.form_submit_button("Give to the person"):
                    _done(actions.give_faces_to_person(store, ticked, to_pid))


def _cluster_faces(store: MemoryStore, cluster_id: int) -> list[Any]:
    """Every face of a cluster with its crop, best quality first."""
    faces = _read("the cluster's faces", store.list_unknowns, cluster_id, with_crops=True)
    return sorted(faces, key=lambda u: (-u.quality, u.unknown_id))


def _thumbnail(store: MemoryStore, person_id: int) -> Any:
    """A person's best face picture (cached for this run of the page), or None."""
    cache = st.session_state.setdefault(THUMBS, {})
    if person_id not in cache:
        try:
            cache[person_id] = store.person_thumbnail(person_id)
        except STORE_ERRORS:
            cache[person_id] = None
    return cache[person_id]


def _figures(faces: Sequence[tuple[Any, str]], width: int = THUMB_WIDTH) -> None:
    """Face pictures in a row, each with its name as caption and as alternative text."""
    items = "".join(
        f'<figure style="margin:0 12px 8px 0;text-align:center">'
        f'<img src="{actions.data_url(crop)}" alt="{html.escape(name)}" width="{width}" '
        f'style="border-radius:4px"/><figcaption style="font-size:0.8em">'
        f"{html.escape(name)}</figcaption></figure>" for crop, name in faces)
    st.markdown(f'<div style="display:flex;flex-wrap:wrap">{items}</div>',
                unsafe_allow_html=True)


def _faces_row(store: MemoryStore, persons: Sequence[PersonRecord]) -> None:
    """A face thumbnail for every person, with the name under it."""
    shown = [(p, _thumbnail(store, p.person_id)) for p in persons]
    with_face = [(t, p.name) for p, t in shown if t is not None]
    if with_face:
        _figures(with_face)
    missing = [p.name for p, t in shown if t is None]
    if missing:
        st.caption("No face picture stored for: " + ", ".join(missing))


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
    _faces_row(store, persons)
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
    head, title = st.columns([1, 8])
    thumb = _thumbnail(store, pid)
    if thumb is not None:
        with head:
            _figures([(thumb, person.name)])
    title.subheader(person.name)
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
    rows = actions.visit_rows(visits)
    for v, row in zip(visits[:VISIT_ROWS], rows, strict=False):
        face, text = st.columns([1, 10])
        thumb = _thumbnail(store, v.person_id)
        if thumb is not None:
            with face:
                _figures([(thumb, v.name)], width=48)
        text.markdown(f"**{v.name}** · {row['start']} – {row['end']} · {row['duration']}"
                      + (f" · {row['location']}" if row["location"] else "")
                      + (f" · {row['activity']}" if row["activity"] else ""))
    if len(visits) > VISIT_ROWS:
        st.dataframe([{"who": v.name, **r} for v, r in zip(visits[VISIT_ROWS:],
                                                           rows[VISIT_ROWS:], strict=True)],
                     hide_index=True)


def main() -> None:
    """Draw the page for one run of the script."""
    st.set_page_config(page_title="visio_memoria: who is who", layout="wide")
    password, store = _start()
    st.session_state[THUMBS] = {}  # thumbnails are read afresh on every run
    samples = _sidebar(password, store)
    st.title("Who is who")
    _show_flash()
    persons = _read("the persons", store.list_persons)
    tab_unknown, tab_people, tab_visits = st.tabs(["Unknown faces", "People", "Recent visits"],
                                                   key="vm_tab")
    with tab_unknown:
        _candidates_section(store)
        _cluster_section(store, persons, samples)
    with tab_people:
        _person_section(store, persons)
    with tab_visits:
        _recent_visits(store)


main()
