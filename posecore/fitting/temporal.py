"""Temporal smoothing of a fitted sequence: a Gaussian filter over frames, in quaternion space for rotations.

Frame-by-frame fits jitter: each frame's fit stops at a slightly different point of its objective. Filtering
afterwards keeps single-image fits untouched and needs no change to the fit. Each joint's rotations are
turned into unit quaternions, made sign-consistent along time (q and -q are the same rotation), averaged with
Gaussian weights over the neighbouring frames and renormalised, which is the rotation closest to the weighted
mean for rotations a few degrees apart (neighbouring frames); translations are averaged linearly. Beyond the ends
the sequence is extended by point reflection (rotations R_{-k} = R_0 R_k^T R_0, translations x_{-k} = 2 x_0 - x_k),
so a steady motion is kept up to the first and last frame instead of lagging there.

Also here: the acceleration error video pose papers report (mm/frame^2).
"""

from __future__ import annotations

import math

import torch

from posecore.errors import ParameterError
from posecore.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
    quaternion_to_axis_angle,
)


def _radius(sigma: float, num_frames: int) -> int:
    """Frames the kernel reaches on each side (3 sigma), at most ``num_frames - 1``."""
    return min(num_frames - 1, math.ceil(3 * sigma))


def _reflect_rotations(rotations: torch.Tensor, radius: int) -> torch.Tensor:
    """(T + 2 radius, J, 3): the sequence extended at both ends by R_{-k} = R_0 R_k^T R_0 (and likewise at the end)."""
    if radius == 0:
        return rotations
    m = axis_angle_to_matrix(rotations)
    k = torch.arange(radius, 0, -1)
    before = m[0] @ m[k].transpose(-1, -2) @ m[0]
    after = m[-1] @ m[-1 - k.flip(0)].transpose(-1, -2) @ m[-1]
    return torch.cat([matrix_to_axis_angle(before), rotations, matrix_to_axis_angle(after)])


def _reflect_points(points: torch.Tensor, radius: int) -> torch.Tensor:
    """(T + 2 radius, ...): the sequence extended at both ends by x_{-k} = 2 x_0 - x_k (and likewise at the end)."""
    if radius == 0:
        return points
    k = torch.arange(radius, 0, -1)
    return torch.cat([2 * points[0] - points[k], points, 2 * points[-1] - points[-1 - k.flip(0)]])


def gaussian_weights(num_frames: int, sigma: float) -> torch.Tensor:
    """(T, T) row-normalised Gaussian weights over frames (radius 3 sigma), cut at the sequence ends."""
    if sigma < 0:
        raise ParameterError(f"smoothing sigma must be >= 0 frames, got {sigma}")
    t = torch.arange(num_frames, dtype=torch.float64)
    if sigma == 0:
        return torch.eye(num_frames, dtype=torch.float64)
    distance = t[:, None] - t[None, :]
    weights = torch.exp(-0.5 * (distance / sigma) ** 2) * (distance.abs() <= 3 * sigma + 1e-9)
    return weights / weights.sum(1, keepdim=True)


def smooth_rotations(rotations: torch.Tensor, sigma: float) -> torch.Tensor:
    """Smooth per-joint rotation trajectories.

    Args:
        rotations: (T, J, 3) axis-angle, radians, frame by frame.
        sigma: Gaussian standard deviation in frames (0 = unchanged).

    Returns:
        (T, J, 3) smoothed axis-angle rotations.
    """
    if rotations.ndim != 3 or rotations.shape[-1] != 3:
        raise ParameterError(f"rotations must be (T, J, 3), got {tuple(rotations.shape)}")
    num_frames = rotations.shape[0]
    if sigma == 0 or num_frames < 2:
        gaussian_weights(num_frames, sigma)  # validates sigma
        return rotations.clone()
    radius = _radius(sigma, num_frames)
    quats = axis_angle_to_quaternion(_reflect_rotations(rotations.double(), radius))  # (T + 2r, J, 4)
    for frame in range(1, quats.shape[0]):  # keep each joint on one hemisphere along time
        flip = (quats[frame] * quats[frame - 1]).sum(-1, keepdim=True) < 0
        quats[frame] = torch.where(flip, -quats[frame], quats[frame])
    weights = gaussian_weights(quats.shape[0], sigma)[radius : radius + num_frames]
    mean = torch.einsum("st,tjc->sjc", weights, quats)
    mean = mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return quaternion_to_axis_angle(mean).to(rotations.dtype)


def smooth_translations(translations: torch.Tensor, sigma: float) -> torch.Tensor:
    """(T, 3) translations smoothed with the same Gaussian weights (and the same reflection at the ends)."""
    num_frames = translations.shape[0]
    if sigma == 0 or num_frames < 2:
        gaussian_weights(num_frames, sigma)  # validates sigma
        return translations.clone()
    radius = _radius(sigma, num_frames)
    weights = gaussian_weights(num_frames + 2 * radius, sigma)[radius : radius + num_frames]
    return (weights @ _reflect_points(translations.double(), radius)).to(translations.dtype)


def acceleration_error_mm(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean acceleration error, mm/frame^2: || (p[t-1] - 2 p[t] + p[t+1]) - (same for the truth) || averaged
    over interior frames and joints.

    Args:
        predicted, truth: (T, J, 3) joint positions in metres, T >= 3.
    """
    if predicted.shape != truth.shape or predicted.ndim != 3 or predicted.shape[0] < 3:
        raise ParameterError(f"need two (T >= 3, J, 3) sequences, got {tuple(predicted.shape)}, {tuple(truth.shape)}")

    def acceleration(x: torch.Tensor) -> torch.Tensor:
        return x[:-2] - 2 * x[1:-1] + x[2:]

    return float(1000.0 * (acceleration(predicted) - acceleration(truth)).norm(dim=-1).mean())
