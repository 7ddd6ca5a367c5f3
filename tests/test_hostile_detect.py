"""Hostile input to the photo path: a landmarks.json from a stranger is read with the same bounds as every other
reader (regular file, size cap, nesting depth, integer size), and a photo's EXIF is read from the checked bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from posecore.detect.files import read_landmarks
from posecore.errors import InputFileError


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"format": "posefit-landmarks", "image_size": [' + "9" * 5000 + ", 1]}", "digits"),
        ("{not json", "not valid JSON"),
        ('{"format": "posefit-landmarks", "image_size": [4, 4], "landmarks": [[1]]}', "malformed landmarks"),
    ],
)
def test_bad_landmark_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "landmarks.json"
    path.write_text(content)
    with pytest.raises(InputFileError, match=message) as info:
        read_landmarks(path)
    assert str(path) in str(info.value) and len(str(info.value)) < 1200


def test_non_regular_landmark_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match=r"fifo\.json"):
        read_landmarks(fifo)  # would block forever if opened for reading
    with pytest.raises(InputFileError, match="/dev/zero"):
        read_landmarks("/dev/zero")


def test_exif_of_a_broken_photo_is_simply_absent(tmp_path: Path) -> None:
    from posecore.detect.camera_solve import focal_from_exif

    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00II*\x00" + b"\xff" * 64)
    assert focal_from_exif(path, 640, 480) is None
