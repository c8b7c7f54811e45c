"""memory_node over DDS: unknowns stored and clustered, labelling services, visits, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.dds

from reliability_tools import MemoryDiagnostics  # noqa: E402
from visio_memoria.msg import Identity, IdentityArray, MemoryEvent  # noqa: E402
from visio_memoria.srv import (  # noqa: E402
    ForgetPerson,
    LabelUnknown,
    ListPersons,
    ListUnknownClusters,
    ListVisits,
    MergePersons,
    RenamePerson,
)

from visio_memoria_ros.nodes.images import rgb_to_msg  # noqa: E402
from visio_memoria_ros.nodes.qos import LATCHED_QOS, RELIABLE_QOS  # noqa: E402

DIM = 128


def _identities(stamp_s: float, rows: list[Identity]) -> IdentityArray:
    msg = IdentityArray()
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int((stamp_s % 1) * 1e9)
    msg.header.frame_id = "front_cam"
    msg.identities = rows
    return msg


def _unknown(track_id: int, vector: np.ndarray, shade: int) -> Identity:
    ident = Identity(track_id=track_id, person_track_id=-1, person_id=-1, name="",
                     similarity=0.1, status=Identity.STATUS_UNKNOWN, unknown_cluster_id=-1,
                     bbox=[10.0, 10.0, 60.0, 70.0], new_evidence=True,
                     embedding=vector.astype(np.float32).tolist(), embedder="test_embedder_128",
                     quality=0.8)
    ident.crop = rgb_to_msg(np.full((32, 32, 3), shade, np.uint8))
    return ident


@pytest.fixture
def memory(ros, launch, tmp_path):
    node = launch("memory_node", params={"data_dir": str(tmp_path / "mem"),
                                         "cluster_min_size": 2, "cluster_similarity": 0.7,
                                         "remember_gate": False})  # synthetic crops
    return node


def _call(ros, node, srv_type, service, **fields):
    client = ros.node.create_client(srv_type, f"visio_memoria/{service}")
    req = srv_type.Request(**fields)
    return ros.call(client, req, timeout=30, processes=[node])


def test_unknowns_cluster_label_and_visits(ros, memory):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, DIM))
    pub = ros.node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
    events = ros.collect(MemoryEvent, "memory/events", LATCHED_QOS)
    ros.wait_for_subscribers(pub, 1, 30, [memory])
    ros.spin_until(lambda: bool(events), 30, "the latched 'started' event", [memory])
    assert events[0].kind == "started"

    t = 1_700_000_000.0
    for k in range(4):  # two strangers, 4 tracks each, one new embedding per track
        for who in range(2):
            v = centres[who] + 0.15 * rng.normal(size=DIM)
            pub.publish(_identities(t + k, [_unknown(100 * who + k, v / np.linalg.norm(v),
                                                      50 + 100 * who)]))

    def clusters():
        resp = _call(ros, memory, ListUnknownClusters, "list_unknown_clusters",
                     max_samples=2, min_size=1)
        assert resp.success, resp.message
        return resp.clusters

    ros.spin_until(lambda: sum(c.size for c in clusters()) == 8, 30, "8 stored unknowns",
                   [memory])
    found = clusters()
    assert sorted(c.size for c in found) == [4, 4], [(c.cluster_id, c.size) for c in found]
    assert all(len(c.sample_crops) == 2 and c.sample_crops[0].height == 32 for c in found)

    first = found[0]
    resp = _call(ros, memory, LabelUnknown, "label_unknown", cluster_id=first.cluster_id,
                 name="Alex")
    assert resp.success and resp.person_id >= 0 and resp.num_embeddings == 4, resp.message
    alex = resp.person_id
    ros.spin_until(lambda: events[-1].kind == "labelled", 30, "a 'labelled' event", [memory])
    assert alex in events[-1].person_ids

    persons = _call(ros, memory, ListPersons, "list_persons", name_filter="al")
    assert [p.name for p in persons.persons] == ["Alex"]
    assert persons.persons[0].num_embeddings == 4

    # Alex is recognised twice, 2 s apart: one visit, still open.
    known = Identity(track_id=7, person_id=alex, name="Alex", similarity=0.9,
                     status=Identity.STATUS_KNOWN, bbox=[0.0, 0.0, 10.0, 10.0],
                     unknown_cluster_id=-1, person_track_id=-1, quality=0.5,
                     new_evidence=False, embedder="test_embedder_128")
    pub.publish(_identities(t + 10, [known]))
    pub.publish(_identities(t + 12, [known]))

    def visits():
        return _call(ros, memory, ListVisits, "list_visits", person_id=alex, limit=10).visits

    ros.spin_until(lambda: len(visits()) == 1, 30, "one visit", [memory])
    v = visits()[0]
    assert v.name == "Alex" and v.location == "front_cam"
    assert math.isclose(v.start.sec, t + 10, abs_tol=1)


def test_services_refuse_bad_input_with_reasons(ros, memory):
    r = _call(ros, memory, LabelUnknown, "label_unknown", cluster_id=12345, name="Bob")
    assert not r.success and "12345" in r.message
    r = _call(ros, memory, LabelUnknown, "label_unknown", cluster_id=-1, unknown_id=-1,
              name="Bob")
    assert not r.success and r.message
    r = _call(ros, memory, RenamePerson, "rename_person", person_id=999, name="   ")
    assert not r.success and r.message
    r = _call(ros, memory, MergePersons, "merge_persons", source_id=3, target_id=3)
    assert not r.success and r.message
    r = _call(ros, memory, ForgetPerson, "forget_person", person_id=424242)
    assert not r.success and "424242" in r.message
    # Still alive and answering.
    assert _call(ros, memory, ListPersons, "list_persons", name_filter="").success


def test_persons_without_vectors_of_the_arriving_embedder_are_reported(ros, launch, tmp_path):
    from visio_memoria_ros.memory import SQLiteStore

    data = tmp_path / "mem"
    with SQLiteStore(data / "memory.db") as store:  # enrolled with another embedder
        old = store.create_person("Olga").person_id
        store.add_embedding(old, np.ones(64, np.float32) / 8.0, "old_model_64", quality=0.9)
    node = launch("memory_node", params={"data_dir": str(data)})
    diag = MemoryDiagnostics(ros)
    pub = ros.node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
    ros.wait_for_subscribers(pub, 1, 30, [node])
    ros.spin_until(lambda: diag.statuses and diag.statuses[-1][0] == 0, 30,
                   "OK before any face", [node])
    rng = np.random.default_rng(4)
    face = _unknown(1, rng.normal(size=DIM), 90)
    face.embedder = "dlib_resnet_v1_128"

    def send() -> bool:
        pub.publish(_identities(1_700_000_000.0, [face]))
        return diag.seen(1, "1 persons have no face vector made by dlib_resnet_v1_128")

    ros.spin_until(send, 30, "WARN: Olga has no dlib vector", [node])
    assert diag.statuses[-1][2]["face_embedder"] == "dlib_resnet_v1_128"
    assert "1 persons have no face vector made by dlib_resnet_v1_128" in node.output()

    # Olga forgotten: nobody is left without a vector, the warning goes.
    resp = _call(ros, node, ForgetPerson, "forget_person", person_id=old)
    assert resp.success, resp.message
    mark = len(diag.statuses)
    ros.spin_until(lambda: len(diag.statuses) > mark + 1 and diag.statuses[-1][0] == 0, 30,
                   "OK again", [node])


def test_an_undecided_identity_is_neither_a_visit_nor_an_unknown(ros, launch, tmp_path):
    from visio_memoria_ros.memory import SQLiteStore

    data = tmp_path / "mem"
    with SQLiteStore(data / "memory.db") as store:
        ada = store.create_person("Ada").person_id
    node = launch("memory_node", params={"data_dir": str(data), "remember_gate": False})
    diag = MemoryDiagnostics(ros)
    pub = ros.node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
    ros.wait_for_subscribers(pub, 1, 30, [node])
    rng = np.random.default_rng(5)
    t = 1_700_000_000.0
    for k in range(3):
        # Everything a visit or an unknown face needs, but the status left at its zero value.
        v = rng.normal(size=DIM)
        undecided = Identity(track_id=1, person_track_id=-1, person_id=ada, name="Ada",
                             similarity=0.95, unknown_cluster_id=-1,
                             bbox=[10.0, 10.0, 60.0, 70.0], new_evidence=True,
                             embedding=(v / np.linalg.norm(v)).astype(np.float32).tolist(),
                             embedder="test_embedder_128", quality=0.8)
        undecided.crop = rgb_to_msg(np.full((32, 32, 3), 90, np.uint8))
        assert undecided.status == Identity.STATUS_UNDECIDED
        pub.publish(_identities(t + k, [undecided]))
    # Then one stranger: remembered once the three before it were handled (one topic, in order).
    v = rng.normal(size=DIM)
    pub.publish(_identities(t + 3, [_unknown(2, v / np.linalg.norm(v), 150)]))

    def counted() -> bool:
        values = diag.statuses[-1][2] if diag.statuses else {}
        return float(values.get("unknowns_remembered", 0)) >= 1

    ros.spin_until(counted, 30, "the stranger remembered", [node])
    visits = _call(ros, node, ListVisits, "list_visits", person_id=ada, limit=10)
    assert visits.success and list(visits.visits) == []  # no visit of Ada
    values = diag.statuses[-1][2]
    assert float(values["unknowns_remembered"]) == 1  # and no stranger
    assert float(values["not_remembered_undecided"]) == 3
