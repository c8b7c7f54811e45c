"""ROS messages <-> core dataclasses. The core never sees a message; nodes convert here."""

from __future__ import annotations

import math

import numpy as np
from std_msgs.msg import Header
from visio_memoria.msg import (
    Activity,
    ActivityArray,
    Face,
    Identity,
    IdentityArray,
    Perception,
    Person,
)

from ..core.types import (
    FaceObservation,
    Frame,
    IdentityDecision,
    PersonObservation,
    Status,
    as_landmarks,
)
from .images import ImageConverter, empty_image, rgb_to_msg
from .stamps import s_to_stamp, stamp_to_s

_NAN10 = [math.nan] * 10


def _vector(values) -> np.ndarray | None:
    arr = np.asarray(values, dtype=np.float32)
    return arr if arr.size else None


def _crop(image_msg, converter: ImageConverter) -> np.ndarray | None:
    if image_msg.height == 0 or image_msg.width == 0:
        return None
    return converter.to_rgb(image_msg)


def face_to_msg(face: FaceObservation, include_crop: bool = True) -> Face:
    """FaceObservation -> Face."""
    msg = Face()
    msg.track_id = int(face.track_id)
    msg.bbox = face.bbox.astype(np.float32).tolist()
    msg.landmarks = face.landmarks.reshape(-1).tolist() if face.landmarks is not None else _NAN10
    msg.score = float(face.score)
    msg.quality = float(face.quality)
    msg.detector = face.detector
    msg.aligned_crop = (
        rgb_to_msg(face.crop) if include_crop and face.crop is not None else empty_image()
    )
    msg.embedding = face.embedding.astype(np.float32).tolist() if face.embedding is not None else []
    msg.embedder = face.embedder
    return msg


def face_from_msg(msg: Face, converter: ImageConverter) -> FaceObservation:
    """Face -> FaceObservation (raises ValueError on malformed fields)."""
    return FaceObservation(
        bbox=np.asarray(msg.bbox, dtype=np.float32),
        score=msg.score,
        detector=msg.detector,
        landmarks=np.asarray(msg.landmarks, dtype=np.float32),
        track_id=int(msg.track_id),
        quality=float(msg.quality),
        crop=_crop(msg.aligned_crop, converter),
        embedding=_vector(msg.embedding),
        embedder=msg.embedder,
    )


def person_to_msg(person: PersonObservation, include_crop: bool = True) -> Person:
    """PersonObservation -> Person."""
    msg = Person()
    msg.track_id = int(person.track_id)
    msg.bbox = person.bbox.astype(np.float32).tolist()
    msg.score = float(person.score)
    msg.detector = person.detector
    msg.face_track_id = int(person.face_track_id)
    msg.scene_crop = (
        rgb_to_msg(person.scene_crop)
        if include_crop and person.scene_crop is not None
        else empty_image()
    )
    msg.scene_embedding = (
        person.scene_embedding.astype(np.float32).tolist()
        if person.scene_embedding is not None
        else []
    )
    msg.scene_embedder = person.scene_embedder
    msg.activity = person.activity
    msg.activity_confidence = float(person.activity_confidence)
    return msg


def person_from_msg(msg: Person, converter: ImageConverter) -> PersonObservation:
    """Person -> PersonObservation."""
    return PersonObservation(
        bbox=np.asarray(msg.bbox, dtype=np.float32),
        score=msg.score,
        detector=msg.detector,
        track_id=int(msg.track_id),
        face_track_id=int(msg.face_track_id),
        scene_crop=_crop(msg.scene_crop, converter),
        scene_embedding=_vector(msg.scene_embedding),
        scene_embedder=msg.scene_embedder,
        activity=msg.activity,
        activity_confidence=float(msg.activity_confidence),
    )


def frame_to_msg(
    frame: Frame,
    header: Header | None = None,
    include_face_crops: bool = True,
    include_scene_crops: bool = True,
) -> Perception:
    """Frame -> Perception (header copied from the source image when given)."""
    msg = Perception()
    if header is not None:
        msg.header = header
    else:
        msg.header.stamp = s_to_stamp(frame.stamp)
        msg.header.frame_id = frame.frame_id
    msg.image_width, msg.image_height = int(frame.width), int(frame.height)
    msg.faces = [face_to_msg(f, include_face_crops) for f in frame.faces]
    msg.persons = [person_to_msg(p, include_scene_crops) for p in frame.persons]
    msg.processing_time = float(frame.processing_time)
    msg.track_session = frame.track_session
    return msg


def frame_from_msg(
    msg: Perception, converter: ImageConverter, problems: list[str] | None = None
) -> Frame:
    """Perception -> Frame.

    Without ``problems`` a malformed face or person raises ValueError; with a list, it is left
    out and the reason appended, so one bad face does not cost the others their frame.
    """
    faces, persons = [], []
    for kind, items, convert, out in (
        ("face", msg.faces, face_from_msg, faces),
        ("person", msg.persons, person_from_msg, persons),
    ):
        for i, item in enumerate(items):
            try:
                out.append(convert(item, converter))
            except ValueError as exc:
                if problems is None:
                    raise
                problems.append(f"{kind} {i} (track {item.track_id}): {exc}")
    return Frame(
        stamp=stamp_to_s(msg.header.stamp),
        frame_id=msg.header.frame_id,
        width=int(msg.image_width),
        height=int(msg.image_height),
        faces=faces,
        persons=persons,
        processing_time=float(msg.processing_time),
        track_session=msg.track_session,
    )


def identity_to_msg(d: IdentityDecision) -> Identity:
    """IdentityDecision -> Identity."""
    msg = Identity()
    msg.track_id = int(d.track_id)
    msg.person_track_id = int(d.person_track_id)
    msg.person_id = int(d.person_id)
    msg.name = d.name
    msg.similarity = float(d.similarity)
    msg.status = int(d.status)
    msg.unknown_cluster_id = int(d.unknown_cluster_id)
    msg.bbox = np.asarray(d.bbox, dtype=np.float32).tolist()
    msg.new_evidence = bool(d.new_evidence)
    msg.embedding = d.embedding.astype(np.float32).tolist() if d.embedding is not None else []
    msg.embedder = d.embedder
    msg.quality = float(d.quality)
    msg.crop = rgb_to_msg(d.crop) if d.crop is not None else empty_image()
    msg.score = float(d.score)
    msg.landmarks = (np.asarray(d.landmarks, np.float32).reshape(-1).tolist()
                     if d.landmarks is not None else _NAN10)
    msg.candidate_person_id = int(d.candidate_person_id)
    msg.candidate_similarity = float(d.candidate_similarity)
    return msg


def identity_from_msg(msg: Identity, converter: ImageConverter) -> IdentityDecision:
    """Identity -> IdentityDecision."""
    return IdentityDecision(
        track_id=int(msg.track_id),
        bbox=np.asarray(msg.bbox, dtype=np.float32),
        status=Status(int(msg.status)),
        person_id=int(msg.person_id),
        name=msg.name,
        similarity=float(msg.similarity),
        unknown_cluster_id=int(msg.unknown_cluster_id),
        person_track_id=int(msg.person_track_id),
        new_evidence=bool(msg.new_evidence),
        embedding=_vector(msg.embedding),
        embedder=msg.embedder,
        quality=float(msg.quality),
        crop=_crop(msg.crop, converter),
        score=float(msg.score),
        landmarks=as_landmarks(msg.landmarks),
        candidate_person_id=int(msg.candidate_person_id),
        candidate_similarity=float(msg.candidate_similarity),
    )


def identities_to_msg(decisions: list[IdentityDecision], header: Header, *,
                      track_session: str = "", gallery_revision: int = -1) -> IdentityArray:
    """Decisions of one frame -> IdentityArray with the source header, the faces' tracker
    session and the revision of the gallery that decided them (-1: none loaded)."""
    return IdentityArray(header=header, identities=[identity_to_msg(d) for d in decisions],
                         track_session=track_session, gallery_revision=int(gallery_revision))


def activities_to_msg(
    rows: list[tuple[int, int, str, float, str]], header: Header
) -> ActivityArray:
    """(person_track_id, face_track_id, activity, confidence, method) rows -> ActivityArray."""
    return ActivityArray(
        header=header,
        activities=[
            Activity(
                person_track_id=int(p),
                face_track_id=int(f),
                activity=a,
                confidence=float(c),
                method=m,
            )
            for p, f, a, c, m in rows
        ],
    )


def persons_from_msg(msg: Perception) -> tuple[list[PersonObservation], list[str]]:
    """The persons of a Perception message without decoding crops, and why any were skipped.

    For nodes that need boxes, tracks and scene embeddings only (activity, overlay).
    """
    persons: list[PersonObservation] = []
    problems: list[str] = []
    for i, p in enumerate(msg.persons):
        embedding = np.asarray(p.scene_embedding, dtype=np.float32)
        try:
            persons.append(
                PersonObservation(
                    bbox=np.asarray(p.bbox, dtype=np.float32),
                    score=float(p.score),
                    detector=p.detector,
                    track_id=int(p.track_id),
                    face_track_id=int(p.face_track_id),
                    scene_embedding=embedding if embedding.size else None,
                    scene_embedder=p.scene_embedder,
                )
            )
        except ValueError as exc:
            problems.append(f"person {i} (track {p.track_id}): {exc}")
    return persons, problems
