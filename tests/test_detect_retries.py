"""Detection retries: the views map back exactly, and a person small in a large frame, or turned, is found with
landmarks where the upright detection puts them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from posecore.detect.retries import View, retry_views, tiles


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize("pad", [0.0, 0.5])
def test_view_pixels_map_back_to_the_photo(turns, pad) -> None:
    height, width = 40, 60
    photo = np.zeros((height, width, 3), np.uint8)
    photo[..., 0] = np.arange(width)[None, :]  # red = x, green = y
    photo[..., 1] = np.arange(height)[:, None]
    view = View((10, 5, 50, 35), turns, pad)
    image = view.image(photo)
    rows, cols = np.nonzero(image[..., 2] == 0)  # the photo's pixels (the zoom-out border is grey: blue 128)
    mapped = view.to_photo(np.stack([cols, rows], axis=1).astype(np.float32))
    assert np.array_equal(mapped[:, 0], image[rows, cols, 0]) and np.array_equal(mapped[:, 1], image[rows, cols, 1])
    mask = np.zeros(image.shape[:2], np.float32)
    mask[rows[0], cols[0]] = 1.0
    back = view.mask_to_photo(mask, width, height)
    assert back[int(mapped[0, 1]), int(mapped[0, 0])] == 1.0 and back.sum() == 1.0


def test_turned_3d_landmarks_follow_the_pixels() -> None:
    for turns in range(4):
        view = View((0, 0, 100, 100), turns)
        direction = np.array([[3.0, 1.0, 0.0]])  # a step in view pixels (u, v), as a 3D direction (x, y, z)
        pixels = view.to_photo(np.array([[50.0, 50.0], [53.0, 51.0]])).astype(np.float64)
        assert np.allclose(view.world_to_photo(direction)[0, :2], pixels[1] - pixels[0], atol=1e-5)


def test_tiles_cover_the_box_with_overlap() -> None:
    halves = tiles((0, 0, 2048, 1536), 1 / 2)
    assert len(halves) == 9 and halves[0] == (0, 0, 1024, 768) and halves[-1] == (1024, 768, 2048, 1536)
    assert tiles((0, 0, 150, 150), 1 / 2) == []  # tiles under 96 px are not tried
    assert len(retry_views((0, 0, 2048, 1536))) == 3 + 1 + 9 + 25 + 49 + 3 * (9 + 25)


# ------------------------------------------------------------------ with MediaPipe
def _portrait() -> np.ndarray:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return np.asarray(im.convert("RGB"))


def _pasted(width: int, at: tuple[int, int], frame: tuple[int, int] = (2048, 1536)) -> np.ndarray:
    portrait = _portrait()
    small = np.asarray(Image.fromarray(portrait).resize((width, round(portrait.shape[0] * width / portrait.shape[1]))))
    canvas = np.full((frame[1], frame[0], 3), 128, np.uint8)
    canvas[at[1] : at[1] + small.shape[0], at[0] : at[0] + small.shape[1]] = small
    return canvas


UPPER_BODY = list(range(0, 13))  # face and shoulders: what a portrait shows


@pytest.mark.parametrize("turns", [0, 2])
def test_a_small_person_in_a_large_frame_is_found_where_they_are(turns) -> None:
    """A 180 px wide portrait in a 2048 x 1536 frame, upright and upside down (head towards the floor)."""
    pytest.importorskip("mediapipe", reason="person detection needs mediapipe==0.10.14")
    from posecore.detect.landmarks import NoPersonFoundError, detect_landmarks

    upright = _pasted(180, (1300, 700))
    photo = np.ascontiguousarray(np.rot90(upright, turns))
    with pytest.raises(NoPersonFoundError):
        detect_landmarks(photo, retries=False)
    found = detect_landmarks(photo)
    assert found.found_by != "photo" and found.mask.shape == photo.shape[:2]
    back = View((0, 0, 2048, 1536), turns).to_photo(found.points)  # the photo is a view of the upright frame
    # The same portrait detected on its own (enlarged 3x, upright), mapped to where it was pasted.
    small = upright[700:911, 1300:1480]
    alone = detect_landmarks(np.asarray(Image.fromarray(small).resize((540, 633))), retries=False)
    expected = (alone.points + 0.5) * np.array([180 / 540, 211 / 633]) - 0.5 + np.array([1300, 700])
    error = np.linalg.norm(back[UPPER_BODY] - expected[UPPER_BODY], axis=1)
    assert np.median(error) < 8.0, error  # pixels of the 2048 px frame (the face is about 60 px wide)
    on = View((0, 0, 2048, 1536), turns).mask_to_photo(found.mask, 2048, 1536) > 0.5
    assert on[700:911, 1300:1480].sum() > 0.8 * on.sum() > 0  # the mask is on the pasted person


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_landmarks_of_a_turned_photo_map_back_onto_the_upright_detection(turns) -> None:
    pytest.importorskip("mediapipe", reason="person detection needs mediapipe==0.10.14")
    from posecore.detect.landmarks import detect_landmarks

    upright = _pasted(400, (1300, 700))
    # The reference: the upright person detected in a crop around them (MediaPipe's own repeatability on this
    # person: 6-8 px between this and the detection in the whole upright frame).
    alone = detect_landmarks(np.ascontiguousarray(upright[600:1250, 1200:1800]), retries=False)
    reference_points = alone.points + np.array([1200, 600], np.float32)
    turned = np.ascontiguousarray(np.rot90(upright, turns))
    found = detect_landmarks(turned)
    height, width = upright.shape[:2]
    back = View((0, 0, width, height), turns).to_photo(found.points)  # the turned photo is a view of the upright one
    error = np.linalg.norm(back[UPPER_BODY] - reference_points[UPPER_BODY], axis=1)
    assert np.median(error) < 10.0, error  # the face is about 130 px wide
    world_back = View((0, 0, width, height), turns).world_to_photo(found.world)
    shoulders, shoulders_ref = world_back[11] - world_back[12], alone.world[11] - alone.world[12]
    cos = shoulders[:2] @ shoulders_ref[:2] / np.linalg.norm(shoulders[:2]) / np.linalg.norm(shoulders_ref[:2])
    assert cos > 0.9  # the 3D landmarks turned back too


def test_retries_stay_inside_the_person_box() -> None:
    pytest.importorskip("mediapipe", reason="person detection needs mediapipe==0.10.14")
    from posecore.detect.landmarks import NoPersonFoundError, detect_landmarks

    photo = _pasted(180, (1300, 700))
    with pytest.raises(NoPersonFoundError, match=r"also tried \d+ turned, zoomed-out and tiled views"):
        detect_landmarks(photo, person_box=(0, 0, 1024, 1536))  # the person is in the other half


def test_a_small_person_bent_over_with_hands_on_the_floor_is_found(anny) -> None:
    """The issue's lost photo, rendered: a person folded forward, hands hanging to the floor, about 200 px in a
    2048 x 1536 frame. The plain detection finds nobody; a retry view does, with landmarks on the true joints."""
    pytest.importorskip("mediapipe", reason="person detection needs mediapipe==0.10.14")
    from posecore.bench.photo_sizes import bent_over_photo, bent_over_scene
    from posecore.detect.joint_map import POINTS, model_joints
    from posecore.detect.landmarks import NoPersonFoundError, detect_landmarks

    photo = bent_over_photo(anny, 2048)
    posed, camera = bent_over_scene(anny, 2048)
    uv = camera.project(posed.vertices)[0]
    size = float((uv.max(0).values - uv.min(0).values).max())
    assert size < 250  # small in the frame
    with pytest.raises(NoPersonFoundError):
        detect_landmarks(photo, retries=False)
    found = detect_landmarks(photo)
    assert found.found_by != "photo"
    names = ("left_shoulder", "right_shoulder", "left_wrist", "right_wrist", "left_hip", "right_hip",
             "left_ankle", "right_ankle")  # fmt: skip
    errors = []
    for name in names:
        joints = [j for n in POINTS[name].joints for j in model_joints(anny, n)]
        truth = camera.project(posed.joints[joints].mean(0)[None])[0][0].numpy()
        errors.append(float(np.linalg.norm(found.points[POINTS[name].landmarks[0]] - truth)))
    assert np.median(errors) < 0.1 * size, errors  # PCK@0.1 of the person's box, for most of the limb joints
