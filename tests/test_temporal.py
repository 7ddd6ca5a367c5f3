"""Temporal smoothing: a Gaussian filter in quaternion space removes jitter from rotation trajectories without
bending a steady motion, handles the quaternion double cover, and the acceleration error measures jitter."""

from __future__ import annotations

import math

import pytest
import torch

from posecore.errors import ParameterError
from posecore.fitting.temporal import acceleration_error_mm, gaussian_weights, smooth_rotations, smooth_translations
from posecore.rotations import axis_angle_to_matrix, rotation_angle_between


def steady_motion(frames: int = 40, joints: int = 3) -> torch.Tensor:
    """(T, J, 3) rotations turning at a constant rate about fixed axes (a geodesic: smoothing must keep it)."""
    t = torch.arange(frames, dtype=torch.float64)[:, None, None]
    axes = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2, 0.0], [0.0, 1.0, 0.5], [0.3, 0.0, 1.0]]), dim=-1)
    return (0.2 + 0.03 * t) * axes[:joints].double()


def angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return rotation_angle_between(axis_angle_to_matrix(a), axis_angle_to_matrix(b))


def test_a_steady_rotation_is_kept_and_jitter_is_removed() -> None:
    truth = steady_motion()
    g = torch.Generator().manual_seed(0)
    noisy = truth + 0.03 * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    smooth = smooth_rotations(noisy, sigma=2.0)
    assert angles(smooth_rotations(truth, 2.0), truth).max() < 1e-3  # a constant-rate turn stays (ends included)
    inner = slice(3, -3)
    assert angles(smooth, truth)[inner].mean() < 0.5 * angles(noisy, truth)[inner].mean()
    assert torch.equal(smooth_rotations(noisy, 0.0), noisy)


def test_rotations_near_half_a_turn_average_across_the_double_cover() -> None:
    """Axis-angle vectors just below and above pi about opposite axes are neighbours: the average stays there."""
    axis = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    angle = torch.tensor([math.pi - 0.02, math.pi - 0.01, -(math.pi - 0.005) + 0.0, math.pi - 0.01, math.pi - 0.02])
    rotations = (angle[:, None] * axis)[:, None, :]  # (5, 1, 3); frame 2 is the same axis flipped
    smooth = smooth_rotations(rotations, sigma=1.0)
    assert angles(smooth, rotations).max() < 0.03  # nothing swung towards the identity


def test_translations_and_weights() -> None:
    w = gaussian_weights(7, 1.0)
    assert torch.allclose(w.sum(1), torch.ones(7, dtype=torch.float64))
    assert w[0, 4] == 0 and int(w[3].argmax()) == 3
    line = torch.linspace(0, 1, 10, dtype=torch.float64)[:, None].repeat(1, 3)
    assert torch.allclose(smooth_translations(line, 1.0), line, atol=1e-9)  # ends too
    with pytest.raises(ParameterError):
        gaussian_weights(5, -1.0)


def test_acceleration_error_is_zero_for_the_truth_and_measures_a_jolt() -> None:
    truth = torch.zeros(6, 2, 3)
    truth[:, :, 0] = torch.linspace(0, 0.5, 6)[:, None]  # constant velocity: zero acceleration
    assert acceleration_error_mm(truth, truth) == 0.0
    jolt = truth.clone()
    jolt[3, 0, 1] += 0.004  # one joint 4 mm off in one frame
    # frames 2, 3, 4 see accelerations of 4, 8, 4 mm for that joint; 4 interior frames x 2 joints
    assert acceleration_error_mm(jolt, truth) == pytest.approx((4 + 8 + 4) / 8, rel=1e-5)
