"""A robust, visibility-weighted 2D keypoint term: body joints projected onto detected landmarks.

The image term of Eq. 5 matches shapes and cannot tell a left arm from a right one (a mirrored arm fills the same
silhouette). Landmarks from a detector can: this term pulls each matched joint's projection towards its landmark.
A Geman-McClure kernel caps the pull of any one landmark (a wrong detection, or a landmark that sits off the
joint centre) at a constant, so a small weight keeps the image term's precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import ParameterError

DEFAULT_SIGMA = 0.03
"""Geman-McClure scale, as a fraction of the image diagonal: residuals below it count quadratically."""


@dataclass
class Keypoints2D:
    """2D targets for some body joints.

    Attributes:
        joints: (K,) int64 joint indices of the body model.
        uv: (K, 2) float32 target pixels (OpenCV convention) in the image of ``width`` x ``height``.
        weights: (K,) float32 >= 0 (detector visibility x per-joint trust).
        width, height: the image size ``uv`` refers to.
    """

    joints: torch.Tensor
    uv: torch.Tensor
    weights: torch.Tensor
    width: int
    height: int

    def validate(self, num_joints: int) -> None:
        """Raise :class:`ParameterError` for inconsistent shapes, bad indices or non-finite values."""
        k = self.joints.shape[0]
        if tuple(self.uv.shape) != (k, 2) or tuple(self.weights.shape) != (k,):
            raise ParameterError(
                f"keypoints: joints {tuple(self.joints.shape)}, uv {tuple(self.uv.shape)} and weights "
                f"{tuple(self.weights.shape)} do not match (expected (K,), (K, 2), (K,))"
            )
        if k and (int(self.joints.min()) < 0 or int(self.joints.max()) >= num_joints):
            raise ParameterError(f"keypoints: joint indices must lie in [0, {num_joints})")
        if not (torch.isfinite(self.uv).all() and torch.isfinite(self.weights).all()):
            raise ParameterError("keypoints contain NaN or infinite values")
        if bool((self.weights < 0).any()):
            raise ParameterError("keypoint weights must be >= 0")

    def resized(self, width: int, height: int) -> Keypoints2D:
        """The same keypoints for the image resized to ``width`` x ``height`` (pixel centres kept consistent)."""
        scale = torch.tensor([width / self.width, height / self.height])
        return Keypoints2D(self.joints, (self.uv + 0.5) * scale - 0.5, self.weights, width, height)


def geman_mcclure(squared: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure robust kernel ``r^2 / (r^2 + sigma^2)`` of squared residuals ``r^2``: in [0, 1)."""
    return squared / (squared + sigma * sigma)


def keypoint_loss(
    joints: torch.Tensor, camera: PinholeCamera, keypoints: Keypoints2D, sigma: float = DEFAULT_SIGMA
) -> torch.Tensor:
    """Weighted mean Geman-McClure reprojection error of the matched joints.

    Args:
        joints: (J, 3) posed joints, metres, world frame. camera: the camera (same image size as the keypoints).
        keypoints: the targets. sigma: kernel scale as a fraction of the image diagonal.

    Returns:
        Scalar in [0, 1): sum_k w_k rho(|pi(X_k) - uv_k| / diagonal) / sum_k w_k (0 when all weights are 0).
    """
    if (camera.width, camera.height) != (keypoints.width, keypoints.height):
        keypoints = keypoints.resized(camera.width, camera.height)
    uv, _ = camera.project(joints[keypoints.joints.to(joints.device)])
    diagonal = math.hypot(camera.width, camera.height)
    squared = ((uv - keypoints.uv.to(uv)) / diagonal).square().sum(-1)
    weights = keypoints.weights.to(uv)
    return (weights * geman_mcclure(squared, sigma)).sum() / weights.sum().clamp_min(1e-12)
