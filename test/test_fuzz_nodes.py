"""Hostile input over DDS: malformed images and messages to every node, hostile service calls.

A seeded generator (reproducible: ``VISIO_MEMORIA_FUZZ_SEED``; more with
``VISIO_MEMORIA_FUZZ_SCALE``) builds images of random sizes, encodings, steps and truncated
data; Perception, IdentityArray and ActivityArray messages with NaN/inf/huge boxes, landmarks
and embeddings, wrong embedding lengths, extreme ids and stamps, and hostile strings; and
calls every memory_node service with SQL metacharacters, unicode, 10 KB strings, path
traversal strings, negative and huge ids. Passing means: every node process is alive at the
end and still answers a valid request, every service call got an answer (never an "internal
error"), the memory file passes integrity_check, and no file appeared outside the memory's
own three. The counts are printed (``-s``).

Also here: every file or directory parameter of every node is a read-only parameter (set by
the robot's operator at start, never over the network), and no message or service field
names a path.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from visio_memoria_ros.config import NODE_PARAMS
from visio_memoria_ros.memory import SQLiteStore, StoreUnavailable

REPO = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("VISIO_MEMORIA_FUZZ_SEED", "1234"))
SCALE = float(os.environ.get("VISIO_MEMORIA_FUZZ_SCALE", "1"))
N_MESSAGES = int(1100 * SCALE)
N_CALLS = int(240 * SCALE)

HOSTILE = [
    "'; DROP TABLE persons; --", "Robert'); DROP TABLE persons;--", "' OR '1'='1", "\" OR 1=1 --",
    "%s%s%n%x", "{name}", "{0.__class__.__mro__}", "../../../../etc/passwd",
    "..\\..\\windows\\system32\\config", "/dev/null", "file:memory.db?mode=rwc", "$(rm -rf /)",
    "`reboot`", "名前テスト", "👩‍👩‍👧‍👦", "\u202eevil\u202c", "Zoë\u0301", "\t\n\r", "", "   ",
    "NULL", "null\x00byte", "a" * 10240, "é" * 5000, "..", "/", "~root/.ssh/id_rsa",
    "memory.db", "*", "?", "\\", "<script>alert(1)</script>",
]
ENCODINGS = ["rgb8", "bgr8", "mono8", "rgba8", "bgra8", "16UC1", "32FC1", "yuv422", "jpeg",
             "", "RGB8", "rgb8\x00", "bayer_rggb8", "../rgb8", "a" * 300]
INT64 = [-(2**63), -(2**31), -2, -1, 0, 1, 2, 3, 5, 2**31, 2**63 - 1]
UINT32 = [0, 1, 2, 3, 50, 2**31, 2**32 - 1]
FLOATS = [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e-45, 3.4e38, -3.4e38, 1e6, 100.0]


# -- static checks -------------------------------------------------------------------------
PATHLIKE = re.compile(r"(_path|_dir|_file|_weights|_repo_dir)$|^source$|^db_path$")


def test_file_and_directory_parameters_are_read_only_and_documented() -> None:
    found = []
    for node, specs in NODE_PARAMS.items():
        for spec in specs:
            if not PATHLIKE.search(spec.name):
                continue
            found.append((node, spec.name))
            assert spec.read_only, f"{node}.{spec.name} names a file but can change at run time"
            assert spec.description.strip(), f"{node}.{spec.name} is undocumented"
    assert ("memory_node", "data_dir") in found and ("activity_node", "head_path") in found
    assert len(found) >= 10


def test_no_message_or_service_field_is_a_path() -> None:
    for path in sorted([*REPO.glob("msg/*.msg"), *REPO.glob("srv/*.srv")]):
        for line in path.read_text().splitlines():
            fields = line.split("#")[0].split()
            if len(fields) >= 2 and fields[0] != "---":
                name = fields[1].split("=")[0]
                assert not re.search(r"path|file|dir(ectory)?$|url|uri", name), (path, name)


def test_db_path_cannot_escape_the_data_dir(tmp_path: Path) -> None:
    params = {"data_dir": str(tmp_path / "mem"), "encryption_key_env": ""}
    with SQLiteStore.from_params({**params, "db_path": "sub.db"}) as store:
        assert store.path == tmp_path / "mem" / "sub.db"
    with pytest.raises(StoreUnavailable, match="outside"):
        SQLiteStore.from_params({**params, "db_path": "../escape.db"})
    assert not (tmp_path / "escape.db").exists()
    # An absolute path is the operator's explicit choice.
    with SQLiteStore.from_params({**params, "db_path": str(tmp_path / "abs.db")}) as store:
        assert store.path == tmp_path / "abs.db"


# -- generators ----------------------------------------------------------------------------
class Gen:
    """Seeded generator of malformed messages."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.np = np.random.default_rng(seed)

    def text(self) -> str:
        r = self.r
        return r.choice(HOSTILE) if r.random() < 0.7 else "".join(
            chr(r.randrange(1, 0x2FFF)) for _ in range(r.randrange(0, 40)))

    def floats(self, n: int) -> list[float]:
        return [self.r.choice(FLOATS) if self.r.random() < 0.5 else self.r.uniform(-1e4, 1e4)
                for _ in range(n)]

    def embedding(self):
        r = self.r
        kind = r.randrange(7)
        if kind == 0:
            return []
        if kind == 1:  # wrong length, possibly huge (within 20000 floats)
            n = r.choice([1, 2, 127, 129, 512, 16385, 20000])
            return self.np.normal(size=n).astype(np.float32)
        v = self.np.normal(size=128).astype(np.float32)
        if kind == 2:
            v[r.randrange(128)] = r.choice([math.nan, math.inf, -math.inf])
        elif kind == 3:
            v[:] = 0.0
        elif kind == 4:
            v[:] = 3.4e38
        elif kind == 5:
            v[:] = math.nan
        return v / max(float(np.linalg.norm(v[np.isfinite(v)])), 1e-9) if kind == 6 else v

    def image(self, max_bytes: int = 1_500_000):
        from sensor_msgs.msg import Image

        r = self.r
        msg = Image()
        big = r.random() < 0.1
        msg.height = r.choice([0, 1, 2, 7, 64, 480, 100_000, 2**32 - 1]) if big else \
            r.randrange(0, 300)
        msg.width = r.choice([0, 1, 3, 640, 100_000, 2**32 - 1]) if big else r.randrange(0, 300)
        msg.encoding = r.choice(ENCODINGS)
        channels = {"mono8": 1, "rgba8": 4, "bgra8": 4}.get(msg.encoding, 3)
        natural = min(msg.width * channels, 2**32 - 1)
        msg.step = r.choice([natural, 0, max(natural - 1, 0), natural + r.randrange(1, 16),
                             2**32 - 1])
        full = msg.step * msg.height
        size = r.choice([0, 1, full // 2, full - 1, full, full + 7])
        msg.data = self.np.integers(0, 256, size=max(0, min(size, max_bytes)),
                                    dtype=np.uint8).tobytes()
        msg.is_bigendian = r.randrange(2)
        msg.header.frame_id = self.text()[:512]
        msg.header.stamp.sec = r.choice([-(2**31), -1, 0, 2**31 - 1, int(time.time())])
        msg.header.stamp.nanosec = r.choice([0, 999_999_999, 2**32 - 1])
        return msg

    def small_image(self):
        from sensor_msgs.msg import Image

        return self.image(max_bytes=40_000) if self.r.random() < 0.5 else Image()

    def perception(self):
        from visio_memoria.msg import Face, Perception, Person

        r = self.r
        msg = Perception(image_width=r.choice(UINT32), image_height=r.choice(UINT32),
                         processing_time=r.choice(FLOATS))
        msg.header.stamp.sec = r.choice([-(2**31), 0, 2**31 - 1, int(time.time())])
        msg.header.stamp.nanosec = r.choice([0, 2**32 - 1])
        msg.header.frame_id = self.text()[:2000]
        for _ in range(r.randrange(0, 6)):
            face = Face(track_id=r.choice(INT64), score=r.choice(FLOATS),
                        quality=r.choice(FLOATS), detector=self.text(),
                        embedder=r.choice(["dlib_resnet_v1_128", self.text()]))
            face.bbox = self.floats(4)
            face.landmarks = self.floats(10)
            face.embedding = self.embedding()
            face.aligned_crop = self.small_image()
            msg.faces.append(face)
        for _ in range(r.randrange(0, 4)):
            p = Person(track_id=r.choice(INT64), score=r.choice(FLOATS), detector=self.text(),
                       face_track_id=r.choice(INT64), scene_embedder=self.text(),
                       activity=self.text(), activity_confidence=r.choice(FLOATS))
            p.bbox = self.floats(4)
            p.scene_embedding = self.embedding()
            p.scene_crop = self.small_image()
            msg.persons.append(p)
        return msg

    def identities(self):
        from visio_memoria.msg import Identity, IdentityArray

        r = self.r
        msg = IdentityArray()
        msg.header.stamp.sec = r.choice([-(2**31), 0, 2**31 - 1, int(time.time())])
        msg.header.stamp.nanosec = r.choice([0, 2**32 - 1])
        msg.header.frame_id = self.text()
        for _ in range(r.randrange(0, 5)):
            ident = Identity(track_id=r.choice(INT64), person_track_id=r.choice(INT64),
                             person_id=r.choice(INT64), name=self.text(),
                             similarity=r.choice(FLOATS), status=r.randrange(256),
                             unknown_cluster_id=r.choice(INT64), new_evidence=r.random() < 0.7,
                             embedder=r.choice(["dlib_resnet_v1_128", self.text()]),
                             quality=r.choice(FLOATS))
            ident.bbox = self.floats(4)
            ident.embedding = self.embedding()
            ident.crop = self.small_image()
            msg.identities.append(ident)
        return msg

    def activities(self):
        from visio_memoria.msg import Activity, ActivityArray

        r = self.r
        msg = ActivityArray()
        msg.header.stamp.sec = r.choice([-(2**31), 0, int(time.time())])
        msg.header.frame_id = self.text()
        msg.activities = [Activity(person_track_id=r.choice(INT64),
                                   face_track_id=r.choice(INT64), activity=self.text(),
                                   confidence=r.choice(FLOATS), method=self.text())
                          for _ in range(r.randrange(0, 6))]
        return msg

    def service_call(self):
        """(srv type, service name, request fields) with hostile values in every field."""
        from visio_memoria.srv import (
            DiscardUnknowns,
            ForgetPerson,
            GetGallery,
            LabelUnknown,
            ListPersons,
            ListUnknownClusters,
            ListVisits,
            MergePersons,
            NotThisPerson,
            RenamePerson,
            SetNeverRemember,
            SplitPerson,
        )

        r = self.r
        i64, u32, txt = (lambda: r.choice(INT64)), (lambda: r.choice(UINT32)), self.text

        def ids():
            return [r.choice(INT64) for _ in range(r.choice([0, 1, 3, 1000]))]

        return r.choice([
            (LabelUnknown, "label_unknown", dict(cluster_id=i64(), unknown_id=i64(), name=txt(),
                                                 person_id=i64())),
            (RenamePerson, "rename_person", dict(person_id=i64(), name=txt())),
            (MergePersons, "merge_persons", dict(source_id=i64(), target_id=i64())),
            (NotThisPerson, "not_this_person", dict(person_id=i64(), embedding_ids=ids(),
                                                    unknown_cluster_id=i64())),
            (SplitPerson, "split_person", dict(person_id=i64(), embedding_ids=ids(),
                                               new_name=txt())),
            (ForgetPerson, "forget_person", dict(person_id=i64())),
            (DiscardUnknowns, "discard_unknowns", dict(cluster_id=i64(), unknown_id=i64(),
                                                       reason=txt())),
            (SetNeverRemember, "set_never_remember", dict(person_id=i64(),
                                                          never_remember=r.random() < 0.5)),
            (ListPersons, "list_persons", dict(name_filter=txt())),
            (ListUnknownClusters, "list_unknown_clusters", dict(max_samples=u32(),
                                                                min_size=u32())),
            (ListVisits, "list_visits", dict(person_id=i64(), limit=u32())),
            (GetGallery, "get_gallery", dict(embedder=txt())),
        ])


# -- over DDS ------------------------------------------------------------------------------
@pytest.mark.dds
@pytest.mark.slow
def test_nodes_survive_hostile_messages_and_service_calls(ros, launch, tmp_path) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from reliability_tools import Services, identities, integrity, perception, unit, unknown
    from sensor_msgs.msg import Image
    from visio_memoria.msg import ActivityArray, IdentityArray, Perception
    from visio_memoria.srv import LabelUnknown, ListPersons, ListUnknownClusters

    from visio_memoria_ros.nodes.images import rgb_to_msg
    from visio_memoria_ros.nodes.qos import RELIABLE_QOS, SENSOR_QOS

    data = tmp_path / "mem"
    procs = {
        "detector": launch("detector_node", params={"face_backend": "haar", "torch_threads": 1}),
        "identity": launch("identity_node"),
        "memory": launch("memory_node", params={"data_dir": str(data), "cluster_min_size": 1,
                                                "remember_gate": False}),  # synthetic crops
        "activity": launch("activity_node"),
        "overlay": launch("overlay_node"),
    }
    alive = list(procs.values())
    node = ros.node
    pubs = {
        "image_raw": node.create_publisher(Image, "image_raw", SENSOR_QOS),
        "perception": node.create_publisher(Perception, "perception", RELIABLE_QOS),
        "identities": node.create_publisher(IdentityArray, "identities", RELIABLE_QOS),
        "activities": node.create_publisher(ActivityArray, "activities", RELIABLE_QOS),
    }
    # overlay_node subscribes image_raw only while its overlay has a subscriber: this one.
    overlay_out = ros.collect(Image, "overlay/image", SENSOR_QOS)
    expected_subs = {"image_raw": 2, "perception": 3, "identities": 2, "activities": 2}
    for topic, pub in pubs.items():
        ros.wait_for_subscribers(pub, expected_subs[topic], 120, alive)
    svc = Services(ros, alive)
    # Real rows for the hostile calls to hit: a few unknown faces and one labelled person.
    rng = np.random.default_rng(SEED)
    for k in range(4):
        pubs["identities"].publish(identities(time.time(), [unknown(k, unit(rng))]))
    ros.spin_until(lambda: len(svc.call(ListUnknownClusters, "list_unknown_clusters").clusters)
                   >= 4, 30, "4 seed faces", alive)
    first = svc.call(ListUnknownClusters, "list_unknown_clusters").clusters[0].cluster_id
    assert svc.call(LabelUnknown, "label_unknown", cluster_id=first, name="Seed").success

    diags: dict[str, dict[str, str]] = {}
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.update(
        {s.name: {kv.key: kv.value for kv in s.values} for s in m.status}), 50)

    gen = Gen(SEED)
    sent: Counter = Counter()
    makers = [("image_raw", gen.image), ("perception", gen.perception),
              ("identities", gen.identities), ("activities", gen.activities)]
    t0 = time.monotonic()
    for i in range(N_MESSAGES):
        topic, make = makers[i % len(makers)]
        pubs[topic].publish(make())
        sent[topic] += 1
        ros.executor.spin_once(timeout_sec=0.01)
        if i % 100 == 0:
            for p in alive:
                assert p.alive(), f"{p.name} died after {i} messages:\n{p.output()[-3000:]}"
    t_messages = time.monotonic() - t0

    answers: Counter = Counter()
    t0 = time.monotonic()
    for _ in range(N_CALLS):
        srv, name, fields = gen.service_call()
        resp = svc.call(srv, name, timeout=30, **fields)
        answers[(name, resp.success)] += 1
        assert resp.success or resp.message, f"{name} refused without a reason"
        assert not resp.message.startswith("internal error"), (name, fields, resp.message)
    t_calls = time.monotonic() - t0

    # Every node still alive and answering a valid request.
    for p in alive:
        assert p.alive(), f"{p.name} died:\n{p.output()[-3000:]}"
    got = {t: ros.collect(m, t, q) for t, m, q in (
        ("detections", Perception, RELIABLE_QOS), ("identities", IdentityArray, RELIABLE_QOS),
        ("activities", ActivityArray, RELIABLE_QOS))}
    overlay_out.clear()
    got["overlay/image"] = overlay_out
    face = unit(rng)
    valid_image = rgb_to_msg(np.full((120, 160, 3), 90, np.uint8), encoding="bgr8")
    valid_image.header.frame_id = "cam"

    def valid_round() -> bool:
        # The image and the identities share a stamp: overlay_node draws an image when the
        # identities of that very image arrive (pair_with: results).
        stamp = float(int(time.time()))
        valid_image.header.stamp.sec, valid_image.header.stamp.nanosec = int(stamp), 0
        pubs["image_raw"].publish(valid_image)
        msg = perception(stamp, [(77, face)])
        msg.persons = []
        pubs["perception"].publish(msg)
        return all(got.values())

    ros.spin_until(valid_round, 60, "answers to valid input from every node", alive)
    assert any(i.track_id == 77 for m in got["identities"] for i in m.identities)
    assert svc.call(ListPersons, "list_persons", name_filter="").success
    assert integrity(data / "memory.db") == "ok"
    assert {p.name for p in data.iterdir()} <= {"memory.db", "memory.db-wal", "memory.db-shm"}
    assert {p.name for p in tmp_path.iterdir()} <= {"mem"} | {f"{p.name}.log" for p in alive}

    received = {name.split(":")[0].strip("/"): values.get("received", "?")
                for name, values in diags.items()}
    ok = sum(n for (_, success), n in answers.items() if success)
    print(f"\nfuzz (seed {SEED}): {sum(sent.values())} malformed messages in {t_messages:.1f} s "
          f"({dict(sent)}); {N_CALLS} hostile service calls in {t_calls:.1f} s ({ok} succeeded, "
          f"{N_CALLS - ok} refused with a reason, 0 internal errors); node deaths: 0; "
          f"integrity_check: ok; received per /diagnostics: {received}")
