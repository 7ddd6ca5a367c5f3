"""The paper's upstream camera parameter: an angle that orbits the camera about a pivot at fixed distance.

Battogtokh & Borgo optimise "an additional upstream parameter for camera angle alpha, which we define to
change the camera pose without changing the camera distance". Here alpha is a rotation vector (3,) in
world coordinates (radians): the camera is rigidly rotated about ``pivot`` by R(alpha), so its distance to
the pivot, its intrinsics and the pivot's place in the image (up to the rotation) are kept.
"""

from __future__ import annotations

import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.rotations import axis_angle_to_matrix


def orbit_camera(camera: PinholeCamera, alpha: torch.Tensor, pivot: torch.Tensor) -> PinholeCamera:
    """Rotate ``camera`` about ``pivot`` by the rotation vector ``alpha``.

    Args:
        camera: the initial camera (its pose is alpha = 0).
        alpha: (3,) rotation vector, radians, world frame. Differentiable.
        pivot: (3,) world point the camera orbits, metres (e.g. the body's pelvis).

    Returns:
        A camera with world-to-camera ``R' = R @ Q^T`` and centre ``c' = pivot + Q (c - pivot)``,
        where ``Q = R(alpha)``; ``|c' - pivot| == |c - pivot|``.
    """
    q = axis_angle_to_matrix(alpha)
    rotation = camera.rotation @ q.transpose(0, 1)
    centre = pivot + q @ (camera.position - pivot)
    translation = -(rotation @ centre)
    return camera.with_pose(rotation, translation)
