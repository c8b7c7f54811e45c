"""visio-memoria detect / identify on folders and video files: a folder is a set of independent
photos, a video runs as a video (tracked faces, identity voted per track), every N-th frame."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from visio_memoria_ros.cli import main

pytest.importorskip("facenet_pytorch")
pytest.importorskip("dlib")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _drift(rgb: np.ndarray, n: int, step: int = 3) -> list[np.ndarray]:
    return [np.roll(rgb, step * i, axis=1) for i in range(n)]


def test_detect_takes_a_folder_of_photos(bbt_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.png", "a.jpg"):
        (folder / name).write_bytes((bbt_dir / "leonard" / "leonard1.png").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    code, out, err = run("detect", "--json", str(folder), str(tmp_path / "empty"))
    assert code == 1  # the empty folder is an error, reported and nothing else lost
    images = json.loads(out)["images"]
    assert [Path(i["path"]).name for i in images] == ["a.jpg", "b.png", "empty"]
    assert all(len(i["faces"]) == 1 and i["frame"] is None for i in images[:2])
    assert "without image files" in images[2]["error"] and "without image files" in err


def test_detect_a_video_every_second_frame_tracks_faces(asset_image_path: Path,
                                                        tmp_path: Path) -> None:
    rgb = cv2.cvtColor(cv2.imread(str(asset_image_path)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (640, 360))
    clip = _video(tmp_path / "clip.avi", _drift(rgb, 7))
    code, out, err = run("detect", "--json", "--every", "2", str(clip))
    assert code == 0, err
    images = json.loads(out)["images"]
    assert [i["frame"] for i in images] == [0, 2, 4, 6]
    assert [i["time"] for i in images] == [0.0, 0.2, 0.4, 0.6]
    for i in images:
        assert len(i["faces"]) == 2, i
    # a video is tracked: unconfirmed on the first frame, the same ids afterwards
    assert {f["track_id"] for f in images[0]["faces"]} == {-1}
    ids = [sorted(f["track_id"] for f in i["faces"]) for i in images[1:]]
    assert ids[0] == ids[1] == ids[2] and min(ids[0]) >= 0

    code, _, err = run("detect", "--every", "0", str(clip))
    assert code == 2 and "--every must be >= 1" in err


def test_identify_a_video_votes_per_track_like_the_robot(bbt_dir: Path, tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "memory.db")]
    for name in ("raj", "leonard", "howard", "sheldon"):
        code, _, err = run(*db, "enroll", name, *(str(bbt_dir / name / f"{name}{i}.png")
                                                  for i in (1, 2)))
        assert code == 0, err
    group = cv2.cvtColor(cv2.imread(str(bbt_dir / "bbt1.jpg")), cv2.COLOR_BGR2RGB)
    clip = _video(tmp_path / "group.avi", _drift(group, 6, step=2))
    code, out, err = run(*db, "identify", "--json", str(clip), str(bbt_dir / "bbt1.jpg"))
    assert code == 0, err
    images = json.loads(out)["images"]
    frames, photo = images[:-1], images[-1]
    assert [i["frame"] for i in frames] == list(range(6)) and photo["frame"] is None
    labels = json.loads((bbt_dir / "labels.json").read_text())["group_photos"]["bbt1.jpg"]
    last = frames[-1]
    known = 0
    for label in labels:
        cx, cy = label["center"]
        (face,) = [f for f in last["faces"]
                   if f["bbox"][0] - 12 <= cx <= f["bbox"][2] + 12 and f["bbox"][1] <= cy
                   <= f["bbox"][3]]
        assert face["track_id"] >= 0
        assert face["status"] != "UNKNOWN" and face["name"] in (label["name"], None), face
        known += face["status"] == "KNOWN"
    assert known >= 2  # the clearest faces are named once their tracks have their votes
    # decisions are per track: the first frame's faces are untracked, later ones keep their ids
    assert {f["track_id"] for f in frames[0]["faces"]} == {-1}
    assert len({tuple(sorted(f["track_id"] for f in i["faces"])) for i in frames[1:]}) == 1
    # the photo after the video is a still again: decided from its own faces, no track ids
    assert all("track_id" not in f for f in photo["faces"])
    assert {f["name"] for f in photo["faces"] if f["status"] == "KNOWN"} <= {
        label["name"] for label in labels}
    assert len(photo["faces"]) == len(labels)
