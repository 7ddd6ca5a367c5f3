"""The real-photo benchmark's reading of mmpose-style annotations, its scores, and one person measured end to end
(on the public-domain grace_hopper.jpg dressed up as a COCO set: no dataset photo is needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from posecore.bench.real_photo_sets import LIMBS, Person, data_folder, load_people
from posecore.bench.real_photos import MEDIAPIPE_LIMBS, PersonResult, iou, joint_lines, main, scores, summary
from posecore.errors import ParameterError

COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle"]  # fmt: skip


def grace_hopper() -> Path:
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def coco_keypoints(points: dict[str, tuple[float, float]]) -> list[float]:
    flat = []
    for name in COCO_NAMES:
        flat += [*points[name], 2] if name in points else [0, 0, 0]
    return flat


def make_sets(root: Path, points: dict[str, tuple[float, float]]) -> Path:
    """``root/tests/data`` with a coco set (grace_hopper alone; a copy with two annotated people) and an mpii set."""
    data = root / "tests" / "data"
    (data / "coco").mkdir(parents=True)
    (data / "mpii").mkdir(parents=True)
    shutil.copy(grace_hopper(), data / "coco" / "alone.jpg")
    shutil.copy(grace_hopper(), data / "coco" / "two.jpg")
    polygon = [[150.0, 150.0, 380.0, 150.0, 380.0, 600.0, 150.0, 600.0]]
    person = {"keypoints": coco_keypoints(points), "bbox": [100.0, 100.0, 320.0, 500.0], "segmentation": polygon,
              "iscrowd": 0, "category_id": 1}  # fmt: skip
    coco = {
        "categories": [{"id": 1, "name": "person", "keypoints": COCO_NAMES}],
        "images": [{"id": 1, "file_name": "alone.jpg"}, {"id": 2, "file_name": "two.jpg"}],
        "annotations": [
            {**person, "image_id": 1, "id": 1},
            {**person, "image_id": 2, "id": 2},
            {**person, "image_id": 2, "id": 3, "bbox": [0.0, 0.0, 30.0, 30.0]},  # too small: left out
        ],
    }
    (data / "coco" / "test_coco.json").write_text(json.dumps(coco))
    shutil.copy(grace_hopper(), data / "mpii" / "m.jpg")
    joints = [[100.0 + 10 * i, 200.0 + 20 * i] for i in range(16)]
    (data / "mpii" / "test_mpii.json").write_text(json.dumps([{"image": "m.jpg", "joints": joints,
                                                               "joints_vis": [1] * 16}]))  # fmt: skip
    return data


def test_sets_are_read_with_their_limb_joints_boxes_and_masks(tmp_path) -> None:
    points = {name: (200.0 + i, 300.0 + i) for i, name in enumerate(LIMBS)}
    data = make_sets(tmp_path, points)
    assert data_folder(tmp_path, tmp_path / "scratch") == data
    people = load_people(data, ("coco", "mpii"))
    assert [p.name for p in people] == ["coco/alone.jpg#0", "coco/two.jpg#0", "mpii/m.jpg#0"]
    alone, two, mpii = people
    assert alone.single and not two.single and mpii.single
    assert alone.labelled.all() and np.allclose(alone.joints[0], points["left_shoulder"])
    assert alone.box == (100.0, 100.0, 420.0, 600.0) and alone.box_size == 500.0
    assert alone.mask(512, 600).sum() == pytest.approx(230 * 450, rel=0.02)
    # MPII's order: right ankle first; left shoulder is its 13th joint.
    assert np.allclose(mpii.joints[LIMBS.index("left_shoulder")], [230.0, 460.0])
    assert mpii.polygons is None and mpii.box == (100.0, 200.0, 250.0, 500.0)
    with pytest.raises(ParameterError, match="reserved"):
        load_people(data, ("h36m",))
    with pytest.raises(ParameterError, match="mmpose checkout"):
        data_folder(tmp_path / "nothing", tmp_path / "scratch")


def test_scores_and_summary() -> None:
    person = Person("x", Path("x.jpg"), np.zeros((12, 2), np.float32), np.ones(12, bool), (0.0, 0.0, 100.0, 200.0))
    predicted = np.zeros((12, 2), np.float32)
    predicted[:3, 0] = 30.0  # 3 joints 30 px off: beyond 0.1 x 200
    pck, error = scores(person, predicted)
    assert pck == pytest.approx(0.75) and error == pytest.approx(3 * 30 / 12 / 200)
    a = np.zeros((4, 4), bool)
    a[:2] = True
    assert iou(a, a) == 1.0 and iou(a, ~a) == 0.0
    results = [PersonResult("a", True, True, pck={"mediapipe": 1.0, "start": 0.5, "fit": 0.75},
                            error={"mediapipe": 0.1, "start": 0.2, "fit": 0.3}),
               PersonResult("b", True, False)]  # fmt: skip
    totals = summary(results)
    assert (totals["people"], totals["detected"], totals["single_detected"]) == (2, 1, 1)
    assert totals["pck_fit"] == 0.75 and np.isnan(totals["iou_fit"])
    nan = float("nan")
    results[0].joint_errors = {  # LIMBS order: shoulders, elbows, wrists, hips, knees, ankles (left, right)
        "mediapipe": [0.0] * 12,
        "start": [0.2, 0.0] + [0.0] * 10,
        "fit": [0.0, nan, 0.5, 0.5] + [0.0] * 8,
    }
    lines = joint_lines(results)
    assert lines[0] == "| PCK@0.1 per joint | shoulder | elbow | wrist | hip | knee | ankle |"
    assert lines[3].startswith("| start | 0.50 | 1.00 |") and lines[4].startswith("| fit | 1.00 | 0.00 | 1.00 |")


def test_one_person_measured_end_to_end(tmp_path, capsys) -> None:
    pytest.importorskip("mediapipe", reason="person detection needs mediapipe==0.10.14")
    from posecore.detect.landmarks import detect_landmarks
    from posecore.io.images import load_image

    photo = np.round(load_image(grace_hopper()).numpy() * 255).astype(np.uint8)
    landmarks = detect_landmarks(photo).points
    points = {name: tuple(map(float, landmarks[index])) for name, index in zip(LIMBS, MEDIAPIPE_LIMBS, strict=True)}
    make_sets(tmp_path / "mmpose", points)
    code = main(["--mmpose", str(tmp_path / "mmpose"), "--sets", "coco", "--limit", "1", "--out", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    # The truth is MediaPipe's own landmarks: its PCK is 1 and its error 0.
    assert "| coco/alone.jpg#0 | yes | yes | 1.00 / " in printed and "| 0.000 / " in printed
    text = (tmp_path / "results.md").read_text()
    assert "<!-- real-photos:start -->" in text and "| fit | 1 | 1 (single-person photos 1/1)" in text
