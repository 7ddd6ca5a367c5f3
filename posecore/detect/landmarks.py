"""MediaPipe Pose behind one function: a photo in, 33 landmarks (2D + visibility, 3D) and a person mask out.

MediaPipe (``mediapipe==0.10.14``, the last release whose wheel carries its models) runs offline on the CPU.
It is imported on first use, so no other PoseFit command needs it. Only ``model_complexity=1`` is bundled.

Conventions of :class:`Detection`:

- ``points`` (33, 2): pixels of the image that was detected on, OpenCV convention (pixel centres at integers,
  u = x * W - 0.5 for MediaPipe's normalised x).
- ``world`` (33, 3): metres, hip-centred, in the camera's axes (x image right, y down, z away from the camera),
  fixed scale (about 0.46 m hip to shoulder for everybody): use its directions, not its lengths.
- ``visibility`` (33,): MediaPipe's visibility in [0, 1] (unreliable for self-occluded limbs).
- ``mask`` (H, W): the person, in [0, 1].

Landmark indices are MediaPipe's (:data:`LANDMARK_NAMES`); "left" is the person's left.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from posecore.errors import BackendUnavailableError, ParameterError

LANDMARK_NAMES: list[str] = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
]  # fmt: skip
"""MediaPipe Pose's 33 landmarks, in its order."""

NUM_LANDMARKS = len(LANDMARK_NAMES)

SKELETON: list[tuple[int, int]] = [
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27),
    (24, 26), (26, 28), (27, 31), (28, 32), (0, 2), (0, 5), (2, 7), (5, 8),
]  # fmt: skip
"""Landmark pairs drawn in overlays."""

REFINE_ROUNDS = 1
"""How many times a find by a retry view is refined (see :mod:`posecore.detect.retries`)."""

MIN_PERSON_SIZE = 16
"""Smallest ``--person`` box side, pixels."""


@dataclass
class Detection:
    """One person detected in a photo (see the module docstring for the conventions).

    Attributes:
        points: (33, 2) float32 pixels. visibility: (33,) float32 in [0, 1]. world: (33, 3) float32 metres.
        mask: (H, W) float32 in [0, 1]. width, height: the image size the points and mask refer to.
        person_box: (x0, y0, x1, y1) the box the detection ran in, or None for the whole image.
        found_by: ``"photo"`` (the plain detection) or the retry view that found the person
            (:mod:`posecore.detect.retries`), e.g. ``"box 0,512,1024,1536, turned 90 deg"``.
    """

    points: np.ndarray
    visibility: np.ndarray
    world: np.ndarray
    mask: np.ndarray
    width: int
    height: int
    person_box: tuple[int, int, int, int] | None = None
    found_by: str = "photo"

    def scaled(self, width: int, height: int) -> Detection:
        """The same detection for the image resized to ``width`` x ``height`` (points and mask resized)."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        points = (self.points + 0.5) * np.array([sx, sy], np.float32) - 0.5
        from PIL import Image

        mask = np.asarray(
            Image.fromarray(self.mask.astype(np.float32)).resize((width, height), Image.BILINEAR),
            np.float32,
        )
        box = None
        if self.person_box is not None:
            x0, y0, x1, y1 = self.person_box
            box = (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy))
        return Detection(
            points.astype(np.float32), self.visibility, self.world, mask, width, height, box, self.found_by
        )

    def as_json(self) -> dict:
        """JSON-ready landmarks (named), image size and box."""
        return {
            "format": "posefit-landmarks",
            "source": "mediapipe-pose-0.10.14",
            "image_size": [self.width, self.height],
            "person_box": list(self.person_box) if self.person_box is not None else None,
            "landmarks": [
                {
                    "name": name,
                    "u": float(self.points[i, 0]),
                    "v": float(self.points[i, 1]),
                    "visibility": float(self.visibility[i]),
                    "world": [float(x) for x in self.world[i]],
                }
                for i, name in enumerate(LANDMARK_NAMES)
            ],
        }


class NoPersonFoundError(ParameterError):
    """MediaPipe found nobody in the photo (or in the ``--person`` box)."""


_POSE_CACHE: dict[str, object] = {}


@contextlib.contextmanager
def _quiet_native_logs() -> Iterator[None]:
    """Silence MediaPipe's C++ start-up logging (TensorFlow Lite and absl lines written straight to file
    descriptor 2) and protobuf's deprecation warning, so a command's stderr keeps only PoseFit's own lines."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no real descriptor 2 (embedded interpreters): leave it alone
            yield
            return
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                try:
                    yield
                finally:
                    os.dup2(saved, 2)
        finally:
            os.close(saved)


def _mediapipe_pose():
    """One MediaPipe Pose instance per process (building it costs about 0.2 s)."""
    if "pose" not in _POSE_CACHE:
        try:
            with _quiet_native_logs():
                import mediapipe as mp
        except ImportError as exc:
            raise BackendUnavailableError(
                f"detecting people in photos needs MediaPipe: pip install mediapipe==0.10.14 ({exc})"
            ) from exc
        with _quiet_native_logs():
            _POSE_CACHE["pose"] = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=True, min_detection_confidence=0.5
            )
    return _POSE_CACHE["pose"]


def parse_person_box(text: str | None, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``x0,y0,x1,y1`` (pixels of the photo, x1/y1 exclusive) -> the checked box; None passes through.

    Raises:
        ParameterError: not four integers, outside the ``width`` x ``height`` photo, or smaller than
            :data:`MIN_PERSON_SIZE` pixels.
    """
    if text is None:
        return None
    try:
        box = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        raise ParameterError(f"--person must be x0,y0,x1,y1 in pixels, got {text!r}") from None
    if len(box) != 4:
        raise ParameterError(f"--person must be x0,y0,x1,y1 in pixels, got {text!r}")
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ParameterError(f"--person box {box} is not inside the {width}x{height} photo")
    if min(x1 - x0, y1 - y0) < MIN_PERSON_SIZE:
        raise ParameterError(f"--person box {box} is smaller than {MIN_PERSON_SIZE} pixels")
    return box


def detect_landmarks(
    image: np.ndarray,
    person_box: tuple[int, int, int, int] | None = None,
    source: str = "photo",
    retries: bool = True,
) -> Detection:
    """Detect one person and their 33 landmarks.

    Args:
        image: (H, W, 3) uint8 RGB photo (EXIF orientation already applied).
        person_box: (x0, y0, x1, y1) pixels: detect only inside this box (for photos of several people:
            MediaPipe returns one person per image). Points and mask are returned in the whole photo's pixels.
        source: what to call the photo in errors (its path).
        retries: when the plain detection finds nobody, try turned, zoomed-out and tiled views
            (:mod:`posecore.detect.retries`) before giving up; when it finds somebody upside down (hips above the
            shoulders), look again with the photo turned so they stand upright (kept when it finds them: on
            mmpose's real photos this took an acrobat from PCK@0.1 0.17 to 0.67).

    Returns:
        The :class:`Detection` (``found_by`` names the view that found the person).

    Raises:
        NoPersonFoundError: nobody found. BackendUnavailableError: mediapipe is not installed.
    """
    from posecore.detect.retries import View, refine_box, retry_views, upright_turns

    arr = np.ascontiguousarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ParameterError(f"detect_landmarks needs an (H, W, 3) uint8 RGB image, got {arr.shape} {arr.dtype}")
    height, width = arr.shape[:2]
    box = person_box if person_box is not None else (0, 0, width, height)
    first = View(box)
    found, view = _detect_in_view(arr, first), first
    tried = 1
    if found is None and retries:
        for view in retry_views(box):
            tried += 1
            found = _detect_in_view(arr, view)
            if found is not None:
                break
        refine = REFINE_ROUNDS if found is not None else 0
    else:  # found upside down by the plain detection: its landmarks are poor; look again turned upright
        refine = 1 if retries and found is not None and upright_turns(found[0], found[1]) == 2 else 0
    for _ in range(refine):  # see the found person whole and upright
        refined = refine_box(found[0], width, height)
        if refined is None:
            break
        refined = (max(refined[0], box[0]), max(refined[1], box[1]), min(refined[2], box[2]),
                   min(refined[3], box[3]))  # fmt: skip
        turned = View(refined, upright_turns(found[0], found[1]))
        if turned == view:
            break
        again = _detect_in_view(arr, turned)
        if again is None:
            break
        found, view = again, turned
    if found is None:
        where = f" inside the box {person_box}" if person_box is not None else ""
        also = f" (also tried {tried - 1} turned, zoomed-out and tiled views)" if tried > 1 else ""
        raise NoPersonFoundError(f"{source}: no person found{where}{also}")
    points, visibility, world, mask = found
    found_by = "photo" if view == first else view.name
    return Detection(points, visibility, world, mask, width, height, person_box, found_by=found_by)


def _detect_in_view(photo: np.ndarray, view) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """MediaPipe on one :class:`~posecore.detect.retries.View` of ``photo`` (H, W, 3) uint8.

    Returns:
        None when nobody is found, else points (33, 2) photo pixels, visibility (33,), world (33, 3) metres in the
        photo's camera axes, mask (H, W) float32 in [0, 1].
    """
    height, width = photo.shape[:2]
    crop = view.image(photo)
    pose = _mediapipe_pose()
    with _quiet_native_logs():
        result = pose.process(crop)
    if result.pose_landmarks is None or result.pose_world_landmarks is None:
        return None
    ch, cw = crop.shape[:2]
    lms = result.pose_landmarks.landmark
    points = view.to_photo(np.array([[lm.x * cw - 0.5, lm.y * ch - 0.5] for lm in lms], np.float32))
    visibility = np.clip(np.array([lm.visibility for lm in lms], np.float32), 0.0, 1.0)
    world = view.world_to_photo(
        np.array([[lm.x, lm.y, lm.z] for lm in result.pose_world_landmarks.landmark], np.float32)
    )
    mask = np.zeros((height, width), np.float32)
    if result.segmentation_mask is not None:
        seg = np.clip(np.asarray(result.segmentation_mask, np.float32), 0.0, 1.0)
        mask = view.mask_to_photo(seg, width, height)
    return points, visibility, world, mask
