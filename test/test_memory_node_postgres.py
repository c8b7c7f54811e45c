"""memory_node on a PostgreSQL memory over DDS: a server that is down at start, then restarted
mid-stream. The node never exits; while the server is away its services answer success=false
with the reason, sightings wait in its buffer (counted on /diagnostics, ERROR) and are written
in order once the server is back; nothing a robot saw is lost.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.dds, pytest.mark.timeout(600)]

from memory_backends import PgCluster, create_database  # noqa: E402
from reliability_tools import MemoryDiagnostics, identities, known, unknown  # noqa: E402
from visio_memoria.msg import IdentityArray  # noqa: E402
from visio_memoria.srv import ListPersons  # noqa: E402

from visio_memoria_ros.memory import PostgresStore  # noqa: E402
from visio_memoria_ros.nodes.qos import RELIABLE_QOS  # noqa: E402

ERROR = 2


@pytest.fixture
def server():
    """A durable PostgreSQL server of this test alone (it is stopped and started)."""
    pytest.importorskip("pgserver")
    pytest.importorskip("psycopg")
    cluster = PgCluster(Path(tempfile.mkdtemp(prefix="visio_memoria_pg_")), durable=True)
    yield cluster
    cluster.close()


def test_memory_node_waits_for_the_server_and_rides_out_a_restart(ros, launch, server):
    url = server.admin_url(create_database(server))
    with PostgresStore(url) as store:
        pid = store.create_person("Amy").person_id
    server.stop()
    node = launch("memory_node", params={"db_path": url, "robot_id": "robot9",
                                         "reembed_on_start": False, "cluster_min_size": 2,
                                         "cluster_similarity": 0.7,
                                         "remember_gate": False})  # synthetic crops
    diag = MemoryDiagnostics(ros)
    pub = ros.node.create_publisher(IdentityArray, "identities", RELIABLE_QOS)
    ros.wait_for_subscribers(pub, 1, 180, [node])
    lister = ros.node.create_client(ListPersons, "visio_memoria/list_persons")

    # 1. Down at start: the node runs, says why, and answers services with the reason.
    ros.spin_until(lambda: "cannot be reached" in node.output(), 60, "the start-up error",
                   [node])
    answer = ros.call(lister, ListPersons.Request(), 60, [node])
    assert not answer.success and "memory server" in answer.message, answer.message
    ros.spin_until(lambda: diag.seen(ERROR, "cannot be reached"), 30, "ERROR on /diagnostics",
                   [node])

    # 2. The server comes up: the node connects (back-off) and serves.
    server.start()

    def listed() -> bool:
        reply = ros.call(lister, ListPersons.Request(), 60, [node])
        return reply.success and [p.name for p in reply.persons] == ["Amy"]

    ros.spin_until(listed, 90, "list_persons after the server started", [node])

    # 3. Restarted mid-stream: sightings wait in order and are written afterwards.
    rng = np.random.default_rng(3)
    t0 = time.time()
    pub.publish(identities(t0, [known(1, pid)]))

    def visits() -> list:
        with PostgresStore(url) as store:
            return store.list_visits(pid)

    ros.spin_until(lambda: bool(visits()), 30, "the first visit", [node])
    server.stop()
    sent = []
    for i in range(6):
        v = rng.standard_normal(128)
        sent.append(t0 + 2.0 + 1.1 * i)
        pub.publish(identities(sent[-1], [known(1, pid), unknown(10 + i, v / np.linalg.norm(v))]))
    ros.spin_until(lambda: any(float(v.get("sightings_buffered", 0)) >= 12
                               for _, _, v in diag.statuses), 60,
                   "12 sightings buffered on /diagnostics", [node])
    assert node.alive()
    server.start()

    def written() -> bool:
        with PostgresStore(url) as store:
            unknowns = store.list_unknowns()
            visit = store.list_visits(pid)
        return len(unknowns) == 6 and visit[0].last_seen == pytest.approx(sent[-1], abs=1e-3)

    ros.spin_until(lambda: _quiet(written), 120, "the buffered sightings written", [node])
    with PostgresStore(url) as store:
        unknowns = store.list_unknowns()
        visit = store.list_visits(pid)
    assert [u.first_seen for u in unknowns] == pytest.approx(sent, abs=1e-3)  # in order
    assert all(u.robot_id == "robot9" for u in unknowns)
    assert len(visit) == 1 and visit[0].robot_id == "robot9"  # one visit, extended throughout
    ros.spin_until(lambda: any(float(v.get("sightings_buffered", 1)) == 0
                               and float(v.get("sightings_written_late", 0)) >= 12
                               and float(v.get("sightings_dropped", 1)) == 0
                               for _, _, v in diag.statuses[-3:]), 30,
                   "nothing buffered or dropped on /diagnostics", [node])
    assert node.alive()


def _quiet(check) -> bool:
    """``check()``, False while the server still refuses connections."""
    try:
        return bool(check())
    except Exception:  # the server is still starting
        return False
