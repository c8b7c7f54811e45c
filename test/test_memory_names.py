"""Names: every string is either refused with a reason or stored exactly (stripped)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visio_memoria_ros.memory import (
    ConflictError,
    MemoryStoreError,
    SQLiteStore,
    StoreOptions,
    validate_name,
)


@pytest.fixture
def store(make_store):
    """One store per backend (SQLite, PostgreSQL) for all the examples of a test."""
    return make_store(StoreOptions(synchronous="NORMAL"))


SQL_NASTY = st.sampled_from([
    "Robert'); DROP TABLE persons;--", "%", "_", "' OR 1=1 --", '"quoted"', "back\\slash",
    "semi;colon", "x' || 'y", "?", ":name", "$1", "*/", "/*", "NULL",
])
NAMES = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=70),
    SQL_NASTY,
    st.builds(lambda a, b: a + b, SQL_NASTY, st.text(max_size=20)),
    st.builds(lambda s, n: (s * (n // len(s) + 1))[:n], st.text(min_size=1, max_size=16),
              st.integers(9_000, 10_240)),
)


def assert_stored_exactly_or_refused(store: SQLiteStore, name: str) -> None:
    try:
        clean = validate_name(name)
    except MemoryStoreError as exc:
        assert str(exc)  # a reason, never an empty message
        with pytest.raises(MemoryStoreError):
            store.create_person(name)
        return
    assert clean == name.strip() and 0 < len(clean) <= 64
    existing = store.find_person(clean)
    if existing is not None:
        with pytest.raises(ConflictError, match=f"person {existing.person_id}"):
            store.create_person(name)
        return
    rec = store.create_person(name)
    assert rec.name == clean
    assert store.get_person(rec.person_id).name == clean
    assert store.find_person(clean).person_id == rec.person_id
    assert rec.person_id in {p.person_id for p in store.list_persons(clean)}


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(name=NAMES)
def test_any_name_is_refused_or_stored_exactly(store: SQLiteStore, name: str) -> None:
    assert_stored_exactly_or_refused(store, name)


@pytest.mark.parametrize("name", [
    "Zoë", "Дмитрий", "李小龍", "محمد", "Ngũgĩ wa Thiong'o", "O'Brien", "Jean-Luc", "ß",
    "🙂 Smiley", "a" * 64, "  padded  ",
    "Robert'); DROP TABLE persons;--",
])
def test_good_names_are_stored_exactly(make_store, name: str) -> None:
    with make_store() as store:
        pid = store.create_person(name).person_id
        assert store.get_person(pid).name == name.strip()
        assert store.stats().num_persons == 1  # the table survived


@pytest.mark.parametrize(("name", "reason"), [
    ("", "empty"), ("   \t\n ", "empty"), ("a" * 65, "65 characters"),
    ("x" * 10_240, "10240 characters"), ("a\x00b", "U\\+0000"), ("a\nb", "U\\+000A"),
    ("a\u202eb", "U\\+202E"), ("a\x7fb", "U\\+007F"), ("a\u2028b", "U\\+2028"),
    (None, "text"), (42, "text"),
])
def test_bad_names_are_refused_with_reason(make_store, name: object, reason: str) -> None:
    with make_store() as store:
        with pytest.raises(MemoryStoreError, match=reason):
            store.create_person(name)  # type: ignore[arg-type]
        assert store.list_persons() == []


def test_names_unique_after_normalisation(make_store) -> None:
    with make_store() as store:
        store.create_person("Zoë")
        decomposed = unicodedata.normalize("NFD", "ZOË")
        assert decomposed != "ZOË"
        with pytest.raises(ConflictError):
            store.create_person(decomposed)
