"""Tracking: stable ids over motion, new ids for new objects, short misses, association."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visio_memoria_ros.core.types import NO_TRACK, FaceObservation, PersonObservation
from visio_memoria_ros.perception import (
    MtcnnFaceDetector,
    ObservationTracker,
    Perceiver,
    PerceiverConfig,
    associate_faces_to_persons,
    link_faces_to_persons,
)


def face(x: float, y: float, size: float = 60.0, score: float = 0.99) -> FaceObservation:
    lm = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]) * size
    lm += np.array([x, y])
    return FaceObservation(
        bbox=[x, y, x + size, y + size], score=score, detector="test", landmarks=lm
    )


def test_ids_stable_over_crossing_free_motion():
    tracker: ObservationTracker[FaceObservation] = ObservationTracker(min_frames=2)
    history = []
    for t in range(25):
        obs = tracker.update([face(50 + 6 * t, 100), face(400 - 4 * t, 300, size=80)])
        history.append([o.track_id for o in obs])
    assert history[0] == [NO_TRACK, NO_TRACK]  # confirmed on the 2nd consecutive match
    confirmed = history[1:]
    assert all(ids == confirmed[0] for ids in confirmed)
    assert len(set(confirmed[0])) == 2 and min(confirmed[0]) >= 0


def test_update_keeps_order_and_fields():
    tracker: ObservationTracker[FaceObservation] = ObservationTracker()
    tracker.update([face(10, 10), face(200, 10)])
    obs = [face(203, 12), face(12, 11)]
    landmarks = [o.landmarks.copy() for o in obs]
    boxes = [o.bbox.copy() for o in obs]
    out = tracker.update(obs)
    assert out[0] is obs[0] and out[1] is obs[1]
    for o, lm, box in zip(out, landmarks, boxes, strict=True):
        np.testing.assert_array_equal(o.landmarks, lm)
        np.testing.assert_array_equal(o.bbox, box)
    assert out[0].track_id != out[1].track_id
    assert tracker.update([]) == []


def test_new_object_gets_a_new_id():
    tracker: ObservationTracker[FaceObservation] = ObservationTracker()
    for t in range(5):
        first = tracker.update([face(50 + 3 * t, 50)])
    old_id = first[0].track_id
    assert old_id >= 0
    seen = []
    for t in range(5, 10):
        obs = tracker.update([face(50 + 3 * t, 50), face(400, 300)])
        assert obs[0].track_id == old_id
        seen.append(obs[1].track_id)
    assert seen[0] == NO_TRACK
    assert len(set(seen[1:])) == 1 and seen[1] not in (old_id, NO_TRACK)


def test_id_survives_a_short_miss_but_not_a_long_one():
    tracker: ObservationTracker[FaceObservation] = ObservationTracker(track_buffer=5)
    x = 100.0
    for _ in range(6):
        x += 4
        tid = tracker.update([face(x, 80), face(500, 300)])[0].track_id
    for _ in range(3):  # missed for 3 frames (still moving)
        x += 4
        tracker.update([face(500, 300)])
    x += 4
    assert tracker.update([face(x, 80), face(500, 300)])[0].track_id == tid
    for _ in range(12):  # gone for longer than the buffer
        tracker.update([face(500, 300)])
    back = [tracker.update([face(x, 80), face(500, 300)])[0].track_id for _ in range(2)]
    assert back[-1] not in (tid, NO_TRACK)


def test_reset_restarts_ids():
    tracker: ObservationTracker[FaceObservation] = ObservationTracker(min_frames=1)
    tracker.update([face(0, 0)])
    assert tracker.update([face(1, 0)])[0].track_id == 0
    tracker.reset()
    tracker.update([face(300, 300)])
    assert tracker.update([face(300, 300)])[0].track_id == 0


def test_each_tracker_and_each_reset_name_a_new_session():
    """Two trackers (two detector_node starts) and a reset hand out id 0 again, each under a
    session of its own; updates keep the session."""
    first: ObservationTracker[FaceObservation] = ObservationTracker(min_frames=1)
    second: ObservationTracker[FaceObservation] = ObservationTracker(min_frames=1)
    sessions = [first.session, second.session]
    ids = []
    for tracker in (first, second):
        ids.append([tracker.update([face(10 + t, 10)])[0].track_id for t in range(3)])
    assert [first.session, second.session] == sessions  # updates keep it
    first.reset()
    sessions.append(first.session)
    ids.append([first.update([face(10 + t, 10)])[0].track_id for t in range(3)])
    assert ids[0] == ids[1] == ids[2] and ids[0][-1] == 0  # the same numbers every run
    assert all(sessions) and len(set(sessions)) == 3


class FixedFaces:
    """A face detector that finds the same faces in every image (fresh objects each call)."""

    name = "fixed"

    def __init__(self, *boxes: tuple[float, float]) -> None:
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        return [face(x, y) for x, y in self.boxes]


def test_every_perceiver_frame_carries_the_session_of_its_track_ids():
    """Detected and reused frames name the face tracker's session; a reset Perceiver and a new
    one (a restarted detector) give the same track ids under other sessions."""
    image = np.zeros((240, 320, 3), np.uint8)
    config = PerceiverConfig(detect_stride=2, full_detect_interval=1, track_min_frames=1)
    perceiver = Perceiver(config, face_detector=FixedFaces((40, 40), (200, 60)))
    runs = []
    for restart in ("none", "reset", "new"):
        if restart == "reset":
            perceiver.reset()
        elif restart == "new":
            perceiver = Perceiver(config, face_detector=FixedFaces((40, 40), (200, 60)))
        frames = []
        for i in range(4):
            frames.append(perceiver.process(image, stamp=i / 10))
            assert perceiver.last_detected == (i % 2 == 0)
        sessions = {f.track_session for f in frames}
        assert sessions == {perceiver.face_tracker.session}  # detected and reused frames
        runs.append((next(iter(sessions)), [[x.track_id for x in f.faces] for f in frames]))
    assert all(ids == runs[0][1] for _, ids in runs) and NO_TRACK not in runs[0][1][-1]
    assert all(session for session, _ in runs) and len({session for session, _ in runs}) == 3


def test_the_session_travels_in_the_perception_message():
    """detector_node publishes a Frame's session and identity_node reads it back."""
    pytest.importorskip("visio_memoria.msg")
    from visio_memoria_ros.nodes.convert import frame_from_msg, frame_to_msg
    from visio_memoria_ros.nodes.images import ImageConverter

    perceiver = Perceiver(PerceiverConfig(full_detect_interval=1, track_min_frames=1),
                          face_detector=FixedFaces((40, 40)))
    sent = []
    for _run in range(2):  # before and after a reset
        msg = frame_to_msg(perceiver.process(np.zeros((240, 320, 3), np.uint8)))
        assert msg.track_session == perceiver.face_tracker.session != ""
        assert frame_from_msg(msg, ImageConverter()).track_session == msg.track_session
        sent.append(msg.track_session)
        perceiver.reset()
    assert sent[0] != sent[1]


def test_a_restarted_trackers_ids_make_other_memory_keys():
    """Track 0 of a restarted tracker is stored under another key than the old track 0; within a
    run the key stays the same."""
    from visio_memoria_ros.memory.remember import TrackBook

    book = TrackBook()
    keys = []
    for _run in range(2):
        tracker: ObservationTracker[FaceObservation] = ObservationTracker(min_frames=1)
        run_keys = set()
        for t in range(4):
            f = tracker.update([face(10 + t, 10)])[0]
            if f.track_id != NO_TRACK:  # confirmed from the 2nd update on
                run_keys.add(book.key("hall", tracker.session, f.track_id, f.bbox, float(t)))
        assert len(run_keys) == 1 and f.track_id == 0
        keys.append(run_keys.pop())
    assert keys[0] != keys[1]
    assert all(k.startswith("hall:") and k.endswith(":0") for k in keys)


def person(x1: float, y1: float, x2: float, y2: float) -> PersonObservation:
    return PersonObservation(bbox=[x1, y1, x2, y2], score=0.9, detector="test")


def test_association_uses_upper_body_and_hungarian():
    # Two overlapping bodies; each face is inside both boxes, the assignment must pair them
    # with the body they head, not greedily with the first box.
    persons = [person(100, 100, 300, 600), person(200, 110, 400, 610)]
    faces = [face(270, 120, 60), face(150, 110, 60)]
    pairs = associate_faces_to_persons(faces, persons)
    assert sorted(pairs) == [(0, 1), (1, 0)]
    # A face in the lower half of every body (a hand, a T-shirt print) links to nothing.
    assert associate_faces_to_persons([face(170, 450, 40)], persons) == []
    assert associate_faces_to_persons([], persons) == []


def test_link_sets_face_track_id_or_no_track():
    persons = [person(100, 100, 300, 600), person(600, 100, 800, 600)]
    f = face(170, 110, 60)
    f.track_id = 7
    link_faces_to_persons([f], persons)
    assert persons[0].face_track_id == 7
    assert persons[1].face_track_id == NO_TRACK


# --- a replayed real image sequence ---------------------------------------------------------


@pytest.fixture(scope="module")
def mtcnn() -> MtcnnFaceDetector:
    return MtcnnFaceDetector(min_face_size=30)


def shifted_sequence(photo: np.ndarray, n: int, step: int = 4) -> list[np.ndarray]:
    """A 640x360 window panning over the photo by ``step`` px per frame (camera motion)."""
    small = cv2.resize(photo, (720, 405), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(small[:360, i * step:i * step + 640]) for i in range(n)]


@pytest.mark.slow
def test_replayed_photo_sequence_keeps_face_and_person_ids(mtcnn, asset_image_path):
    photo = cv2.cvtColor(cv2.imread(str(asset_image_path)), cv2.COLOR_BGR2RGB)
    perceiver = Perceiver(PerceiverConfig(), face_detector=mtcnn)
    sequence = shifted_sequence(photo, 10)
    frames = [perceiver.process(img, stamp=i / 10) for i, img in enumerate(sequence)]
    assert all(len(f.faces) == 2 and len(f.persons) == 2 for f in frames)
    face_ids = [sorted(x.track_id for x in f.faces) for f in frames[1:]]
    person_ids = [sorted(p.track_id for p in f.persons) for f in frames[1:]]
    assert all(ids == face_ids[0] for ids in face_ids) and NO_TRACK not in face_ids[0]
    assert all(ids == person_ids[0] for ids in person_ids) and NO_TRACK not in person_ids[0]
    links = [sorted(p.face_track_id for p in f.persons) for f in frames[1:]]
    assert all(ids == face_ids[0] for ids in links)
    # the boxes really move with the panning window (4 px per frame to the left)
    xs = [min(x.bbox[0] for x in f.faces) for f in frames]
    assert xs[-1] < xs[0] - 20


class CountingDetector:
    """A real MTCNN detector that counts its calls (to observe the stride)."""

    name = "mtcnn"

    def __init__(self, inner: MtcnnFaceDetector) -> None:
        self.inner, self.calls = inner, 0

    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        self.calls += 1
        return self.inner.detect(image)


def test_detection_stride_reuses_last_detection_between_detections(mtcnn, asset_image_path):
    photo = cv2.cvtColor(cv2.imread(str(asset_image_path)), cv2.COLOR_BGR2RGB)
    counting = CountingDetector(mtcnn)
    # every detected frame a full pass, so each detection is one detector call (the schedule's
    # region passes between full passes are tested in test_perception_schedule.py)
    perceiver = Perceiver(PerceiverConfig(detect_stride=3, full_detect_interval=1),
                          face_detector=counting)
    seq = shifted_sequence(photo, 9)
    detected, frames = [], []
    for img in seq:
        frames.append(perceiver.process(img))
        detected.append(perceiver.last_detected)
    assert counting.calls == 3
    assert detected == [True, False, False] * 3
    for k in (1, 2):  # reused frames carry the detected frame's ids and boxes, no crop
        assert [f.track_id for f in frames[k].faces] == [f.track_id for f in frames[0].faces]
        np.testing.assert_array_equal(frames[k].faces[0].bbox, frames[0].faces[0].bbox)
        assert frames[0].faces[0].crop is not None
        assert all(f.crop is None for f in frames[k].faces)  # nothing new to embed
        assert frames[k].faces[0] is not frames[0].faces[0]
    ids = {tuple(sorted(f.track_id for f in fr.faces)) for fr in frames[3:]}
    assert len(ids) == 1 and NO_TRACK not in next(iter(ids))
    # a different image size forces a detection even inside the stride
    perceiver.process(seq[0][:300, :500])
    assert perceiver.last_detected and counting.calls == 4


def test_a_still_photo_is_not_tracked_even_by_a_tracker_that_knows_its_faces():
    """process(track=False), as the pipeline runs still photos: every face and person is
    untracked, also right after frames that confirmed tracks at exactly those boxes."""
    image = np.zeros((480, 640, 3), np.uint8)
    config = PerceiverConfig(full_detect_interval=1, track_min_frames=1,
                             person_backend="face_extrapolated")
    perceiver = Perceiver(config, face_detector=FixedFaces((40, 40), (300, 60)))
    tracked = [perceiver.process(image, stamp=i / 10) for i in range(3)][-1]
    assert NO_TRACK not in [f.track_id for f in tracked.faces]
    assert {p.face_track_id for p in tracked.persons} == {f.track_id for f in tracked.faces}
    still = perceiver.process(image, stamp=0.3, track=False)
    assert [f.track_id for f in still.faces] == [NO_TRACK, NO_TRACK]
    assert len(still.persons) == 2
    assert {(p.track_id, p.face_track_id) for p in still.persons} == {(NO_TRACK, NO_TRACK)}


def test_still_photos_never_load_the_tracker(tmp_path):
    """The CLI's still path (identify on photos) pays no import of ByteTrack's packages."""
    import subprocess
    import sys

    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((120, 160, 3), 90, np.uint8))
    code = (
        "import sys\n"
        "from visio_memoria_ros.config import NODE_PARAMS\n"
        "from visio_memoria_ros.pipeline import Pipeline, load_image\n"
        "d = {s.name: s.default for s in NODE_PARAMS['detector_node']}\n"
        "pipe = Pipeline.from_params(d, None, still=True)\n"
        f"pipe.detect(load_image({str(photo)!r}))\n"
        "loaded = [m for m in ('trackers', 'supervision', 'scipy.optimize') if m in sys.modules]\n"
        "print('loaded:', loaded)\n"
        "pipe.start(still=False)\n"
        f"pipe.detect(load_image({str(photo)!r}))\n"
        "print('video:', 'trackers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "loaded: []" in out.stdout, out.stdout
    assert "video: True" in out.stdout, out.stdout
