"""Which MediaPipe landmark plays which body joint, for SMPL-X and Anny.

Everything is written once with SMPL-X joint names and resolved per model by :func:`model_joints` (Anny through
:data:`posecore.bodies.anny_body.SMPLX_TO_ANNY`). Two uses:

- :data:`BONES`: directions between *points* (a point is the mean of some joints on the model and of some
  landmarks in the photo), matched to MediaPipe's 3D landmarks by the initialisation. The torso's points
  (mid-hip, mid-shoulder) have no single joint: the spine, neck and collar joints between them are shared
  out by the pose prior.
- :data:`KEYPOINTS`: single joints whose 2D projections are matched to 2D landmarks (camera solve, refinement,
  and the fit's keypoint term).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from posecore.bodies.anny_body import SMPLX_TO_ANNY
from posecore.bodies.base import BodyModel
from posecore.errors import ParameterError

# Joints MediaPipe sees that SMPLX_TO_ANNY does not list: eyes, and the ball of the foot (SMPL-X's "foot").
_EXTRA_JOINTS: dict[str, dict[str, tuple[str, ...]]] = {
    "smplx": {"left_eye": ("left_eye_smplhf",), "right_eye": ("right_eye_smplhf",)},
    "anny": {
        "left_eye": ("eye.L",),
        "right_eye": ("eye.R",),
        "left_foot": tuple(f"toe{i}-1.L" for i in range(1, 6)),
        "right_foot": tuple(f"toe{i}-1.R" for i in range(1, 6)),
    },
}


@dataclass(frozen=True)
class Point:
    """A point seen both on the model (mean of ``joints``, SMPL-X names) and in the photo (mean of ``landmarks``)."""

    joints: tuple[str, ...]
    landmarks: tuple[int, ...]


POINTS: dict[str, Point] = {
    "mid_hip": Point(("left_hip", "right_hip"), (23, 24)),
    "mid_shoulder": Point(("left_shoulder", "right_shoulder"), (11, 12)),
    "mid_eye": Point(("left_eye", "right_eye"), (2, 5)),
    **{
        f"{side}_{name}": Point((f"{side}_{name}",), (index + offset,))
        for side, offset in (("left", 0), ("right", 1))
        for name, index in (
            ("shoulder", 11),
            ("elbow", 13),
            ("wrist", 15),
            ("hip", 23),
            ("knee", 25),
            ("ankle", 27),
            ("foot", 31),
        )
    },
    "left_eye": Point(("left_eye",), (2,)),
    "right_eye": Point(("right_eye",), (5,)),
}

BONES: list[tuple[str, str, float]] = [
    ("mid_hip", "mid_shoulder", 2.0),
    ("right_hip", "left_hip", 1.0),
    ("right_shoulder", "left_shoulder", 1.0),
    ("mid_shoulder", "mid_eye", 1.0),
    ("right_eye", "left_eye", 0.5),
    *[
        (f"{side}_{a}", f"{side}_{b}", w)
        for side in ("left", "right")
        for a, b, w in (
            ("shoulder", "elbow", 1.0),
            ("elbow", "wrist", 1.0),
            ("hip", "knee", 1.0),
            ("knee", "ankle", 1.0),
            ("ankle", "foot", 0.5),
        )
    ],
]
"""(from point, to point, weight): the directions the initialisation matches to the 3D landmarks."""

KEYPOINTS: list[tuple[str, int, float]] = [
    *[
        (f"{side}_{name}", index + offset, weight)
        for side, offset in (("left", 0), ("right", 1))
        for name, index, weight in (
            ("shoulder", 11, 1.0),
            ("elbow", 13, 1.0),
            ("wrist", 15, 1.0),
            ("hip", 23, 0.5),  # MediaPipe's hips sit wider than SMPL-X's hip joints
            ("knee", 25, 1.0),
            ("ankle", 27, 1.0),
        )
    ],
    ("left_eye", 2, 0.5),
    ("right_eye", 5, 0.5),
]
"""(joint, landmark index, weight): joints matched to 2D landmarks."""


def model_joints(body: BodyModel, name: str) -> list[int]:
    """Indices of the ``body`` joints playing the SMPL-X joint ``name`` (several for a mean, e.g. Anny's toes).

    Raises:
        ParameterError: the model has no such joint.
    """
    extra = _EXTRA_JOINTS.get(body.name, {})
    if name in extra:
        return [body.joint_index(n) for n in extra[name]]
    if name in body.joint_names:
        return [body.joint_index(name)]
    if body.name == "anny" and name in SMPLX_TO_ANNY:
        return [body.joint_index(SMPLX_TO_ANNY[name])]
    raise ParameterError(f"{body.name} has no joint matching the landmark joint {name!r}")


def front_camera_rotation(body: BodyModel) -> torch.Tensor:
    """(3, 3) OpenCV world-to-camera rotation of an upright camera facing the body's front.

    Both models put the body's left side at +X; its front is +X x up (SMPL-X: +Z, Anny: -Y). The camera's
    image right is the body's left (as in a photo of someone facing the camera), image down is the model's
    down, and it looks at the body's front.
    """
    up = body.up_axis.to(torch.float32)
    left = torch.tensor([1.0, 0.0, 0.0])
    front = torch.linalg.cross(left, up)
    return torch.stack([left, -up, -front])
