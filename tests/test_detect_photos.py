"""Person detection on real photos (public-domain portraits inside matplotlib and scikit-image, loaded from the
packages, never copied into the repository): plausible landmarks and masks, one person picked from a photo of two
with --person, a clear error when nobody is there, and an initialisation that projects onto the landmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("mediapipe", reason="person detection needs mediapipe==0.10.14 (scripts/setup.sh installs it)")

from posecore.detect.joint_map import model_joints
from posecore.detect.landmarks import NoPersonFoundError, detect_landmarks, parse_person_box
from posecore.detect.photo import photo_start
from posecore.errors import ParameterError

NOSE, LEFT_EYE, RIGHT_EYE, LEFT_SHOULDER, RIGHT_SHOULDER = 0, 2, 5, 11, 12


def grace_hopper_path() -> str:
    from matplotlib import cbook

    return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def grace_hopper() -> np.ndarray:
    with Image.open(grace_hopper_path()) as im:
        return np.asarray(im.convert("RGB"))


def astronaut() -> np.ndarray:
    data = pytest.importorskip("skimage.data", reason="the astronaut photo comes with scikit-image")
    return np.ascontiguousarray(data.astronaut())


def assert_plausible_portrait(image: np.ndarray, face_box: tuple[int, int, int, int]) -> None:
    """A frontal upper-body portrait: nose in the face box, eyes above it and mirrored, shoulders below and wider."""
    detection = detect_landmarks(image)
    p, vis = detection.points, detection.visibility
    x0, y0, x1, y1 = face_box
    assert x0 <= p[NOSE, 0] <= x1 and y0 <= p[NOSE, 1] <= y1, p[NOSE]
    assert p[LEFT_EYE, 1] < p[NOSE, 1] and p[RIGHT_EYE, 1] < p[NOSE, 1]
    # Facing the camera: the person's left is on the image right.
    assert p[LEFT_EYE, 0] > p[RIGHT_EYE, 0] and p[LEFT_SHOULDER, 0] > p[RIGHT_SHOULDER, 0]
    assert min(p[LEFT_SHOULDER, 1], p[RIGHT_SHOULDER, 1]) > p[NOSE, 1]
    shoulders = p[LEFT_SHOULDER, 0] - p[RIGHT_SHOULDER, 0]
    assert shoulders > 2.5 * (p[LEFT_EYE, 0] - p[RIGHT_EYE, 0])
    assert vis[[NOSE, LEFT_EYE, RIGHT_EYE, LEFT_SHOULDER, RIGHT_SHOULDER]].min() > 0.8
    # 3D: shoulders about 0.3-0.45 m apart, the person's left at +x (image right).
    assert 0.2 < detection.world[LEFT_SHOULDER, 0] - detection.world[RIGHT_SHOULDER, 0] < 0.6
    mask = detection.mask
    assert mask.shape == image.shape[:2]
    assert mask[y0:y1, x0:x1].mean() > 0.6
    assert mask[:20, :20].mean() < 0.1 and mask[:20, -20:].mean() < 0.1  # the top corners are background


def test_grace_hopper_has_plausible_landmarks_and_mask() -> None:
    assert_plausible_portrait(grace_hopper(), face_box=(200, 150, 330, 300))


def test_astronaut_has_plausible_landmarks_and_mask() -> None:
    assert_plausible_portrait(astronaut(), face_box=(170, 70, 280, 200))


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_a_photo_without_a_person_is_a_clear_error(kind) -> None:
    rng = np.random.default_rng(0)
    image = np.full((240, 320, 3), 128, np.uint8) if kind == "blank" else rng.integers(0, 256, (240, 320, 3), np.uint8)
    with pytest.raises(NoPersonFoundError, match=r"holiday\.png: no person found"):
        detect_landmarks(image, source="holiday.png")
    assert issubclass(NoPersonFoundError, ParameterError)  # the CLI exits 2 on it


def test_person_box_picks_who_to_detect_in_a_photo_of_two() -> None:
    left = grace_hopper()  # 512 x 600
    right = np.asarray(Image.fromarray(astronaut()).resize((600, 600)))
    both = np.concatenate([left, right], axis=1)
    for box, nose in (((512, 0, 1112, 600), (772, 149)), ((0, 0, 512, 600), (270, 225))):
        detection = detect_landmarks(both, box)
        assert np.abs(detection.points[NOSE] - np.array(nose)).max() < 25, detection.points[NOSE]
        seen = detection.visibility > 0.5
        assert (detection.points[seen, 0] >= box[0] - 5).all() and (detection.points[seen, 0] <= box[2] + 5).all()
        assert detection.mask[:, box[0] : box[2]].sum() > 0.99 * detection.mask.sum()  # mask only inside the box
        assert detection.person_box == box


def test_bad_person_boxes_are_refused() -> None:
    for text, message in (("1,2,3", "x0,y0,x1,y1"), ("0,0,900,100", "not inside"), ("a,b,c,d", "x0,y0,x1,y1")):
        with pytest.raises(ParameterError, match=message):
            parse_person_box(text, 640, 480)
    with pytest.raises(ParameterError, match="smaller"):
        parse_person_box("0,0,8,8", 640, 480)


def test_initialisation_on_a_real_photo_projects_onto_its_landmarks(anny) -> None:
    start = photo_start(grace_hopper_path(), anny, size=(256, 300))
    assert start.focal_source == "default"
    assert start.init.reprojection_px < 8.0  # pixels at 256 x 300
    camera = start.init.camera
    assert (camera.width, camera.height) == (256, 300)
    with torch.no_grad():
        joints = anny(start.init.params).joints
    uv, depth = camera.project(joints)
    assert bool((depth > 0).all())
    left, right = model_joints(anny, "left_shoulder")[0], model_joints(anny, "right_shoulder")[0]
    assert float(uv[left, 0]) > float(uv[right, 0])  # left and right as in the photo
    assert tuple(start.mask.shape) == (300, 256) and float(start.mask[100:200, 80:180].mean()) > 0.6
