"""Rotation conversions: shapes, values, round trips, gradients at and near the zero rotation."""

from __future__ import annotations

import math

import pytest
import torch

from posecore.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_axis_angle,
    rotation_angle_between,
)


def random_axis_angle(n: int, max_angle: float, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(n, 3) rotation vectors with random axes and angles spread over [0, max_angle]."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.randn(n, 3, generator=g, dtype=dtype)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angle = torch.linspace(0.0, max_angle, n, dtype=dtype)
    return axis * angle[:, None]


def skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.tolist()
    return torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], dtype=v.dtype)


# ------------------------------------------------------------------------------------------ axis-angle -> matrix
def test_axis_angle_to_matrix_batched_shape_orthonormal_det_one() -> None:
    aa = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(1)) * 2.0
    rot = axis_angle_to_matrix(aa)
    assert rot.shape == (5, 4, 3, 3) and rot.dtype == torch.float32
    eye = torch.eye(3).expand(5, 4, 3, 3)
    torch.testing.assert_close(rot.transpose(-1, -2) @ rot, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(5, 4), atol=1e-5, rtol=0)


def test_axis_angle_to_matrix_known_values() -> None:
    rot_z = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    torch.testing.assert_close(rot_z @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    rot_x = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0]))
    torch.testing.assert_close(rot_x, torch.diag(torch.tensor([1.0, -1.0, -1.0])), atol=1e-6, rtol=0)
    torch.testing.assert_close(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))
    # The axis is fixed by its own rotation.
    aa = torch.tensor([0.3, -0.4, 1.2])
    torch.testing.assert_close(axis_angle_to_matrix(aa) @ aa, aa)


def test_axis_angle_to_matrix_taylor_branch_matches_closed_form() -> None:
    # Just below and above the small-angle switch (theta^2 = 1e-8), the two branches agree.
    axis = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64) / 3.0
    for angle in (0.0, 1e-9, 1e-5, 0.99e-4, 1.01e-4, 1e-3):
        rot = axis_angle_to_matrix(axis * angle)
        k = skew(axis)
        expected = torch.eye(3, dtype=torch.float64) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)
        torch.testing.assert_close(rot, expected, atol=1e-15, rtol=0)


# ------------------------------------------------------------------------------------------ round trips
def test_matrix_axis_angle_round_trip_up_to_pi() -> None:
    aa = random_axis_angle(200, math.pi - 1e-3)
    aa = torch.cat([aa, torch.tensor([[1e-8, 0.0, 0.0], [0.0, -1e-7, 2e-7]], dtype=torch.float64)])
    rot = axis_angle_to_matrix(aa)
    back = matrix_to_axis_angle(rot)
    torch.testing.assert_close(back, aa, atol=1e-9, rtol=0)
    torch.testing.assert_close(axis_angle_to_matrix(back), rot, atol=1e-12, rtol=0)


def test_matrix_to_axis_angle_at_pi_gives_same_rotation() -> None:
    # At exactly pi the sign of the axis is ambiguous; the rotation must still round-trip.
    aa = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.0, -0.8]], dtype=torch.float64) * math.pi
    rot = axis_angle_to_matrix(aa)
    back = matrix_to_axis_angle(rot)
    torch.testing.assert_close(back.norm(dim=-1), torch.full((3,), math.pi, dtype=torch.float64))
    torch.testing.assert_close(axis_angle_to_matrix(back), rot, atol=1e-9, rtol=0)


def test_quaternion_round_trips() -> None:
    aa = random_axis_angle(100, math.pi - 1e-3, seed=2)
    quat = axis_angle_to_quaternion(aa)
    assert quat.shape == (100, 4)
    torch.testing.assert_close(quat.norm(dim=-1), torch.ones(100, dtype=torch.float64))
    assert (quat[:, 0] >= 0).all()
    # The matrix path and the direct path give the same quaternion (w >= 0 for angles <= pi).
    torch.testing.assert_close(matrix_to_quaternion(axis_angle_to_matrix(aa)), quat, atol=1e-12, rtol=0)
    torch.testing.assert_close(quaternion_to_axis_angle(quat), aa, atol=1e-10, rtol=0)
    # q and -q are the same rotation.
    torch.testing.assert_close(quaternion_to_axis_angle(-quat), aa, atol=1e-10, rtol=0)


def test_quaternion_known_value() -> None:
    quat = axis_angle_to_quaternion(torch.tensor([0.0, 0.0, math.pi / 2]))
    h = math.sqrt(0.5)
    torch.testing.assert_close(quat, torch.tensor([h, 0.0, 0.0, h]))
    torch.testing.assert_close(axis_angle_to_quaternion(torch.zeros(2, 3)), torch.tensor([[1.0, 0, 0, 0]] * 2))


# ------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("scale", [0.0, 1e-9, 1e-6, 1e-4, 1e-2, 1.0, 3.0])
def test_axis_angle_to_matrix_gradcheck_at_and_near_zero(scale: float) -> None:
    aa = (torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64) * scale).requires_grad_(True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,), eps=1e-7, atol=1e-7)


def test_axis_angle_to_matrix_gradient_at_zero_is_skew_generator_float32() -> None:
    aa = torch.zeros(3, requires_grad=True)
    weights = torch.randn(3, 3, generator=torch.Generator().manual_seed(3))
    (axis_angle_to_matrix(aa) * weights).sum().backward()
    assert torch.isfinite(aa.grad).all()
    # dR/dx_i at 0 is the generator skew(e_i).
    expected = torch.stack([(skew(torch.eye(3)[i]) * weights).sum() for i in range(3)])
    torch.testing.assert_close(aa.grad, expected)


# ------------------------------------------------------------------------------------------ geodesic angle
def test_rotation_angle_between_known_values() -> None:
    axis = torch.tensor([2.0, -1.0, 2.0], dtype=torch.float64) / 3.0
    a = axis_angle_to_matrix(axis * 0.2)
    for delta in (0.0, 1e-4, 0.5, 2.0, math.pi - 1e-6):
        b = axis_angle_to_matrix(axis * (0.2 + delta))
        torch.testing.assert_close(rotation_angle_between(a, b), torch.tensor(delta, dtype=torch.float64))
        torch.testing.assert_close(rotation_angle_between(b, a), torch.tensor(delta, dtype=torch.float64))


def test_rotation_angle_between_batched_and_small_in_float32() -> None:
    aa = torch.randn(50, 3, generator=torch.Generator().manual_seed(4))
    rot = axis_angle_to_matrix(aa)
    angle = rotation_angle_between(rot, rot)
    assert angle.shape == (50,)
    assert angle.abs().max() < 1e-5  # acos(trace) would give ~1e-3 rad of noise here
    # A 1e-3 rad change is resolved in float32, whatever the base rotation.
    delta = torch.tensor([0.0, 1e-3, 0.0])
    angle = rotation_angle_between(rot, rot @ axis_angle_to_matrix(delta))
    torch.testing.assert_close(angle, torch.full((50,), 1e-3), atol=2e-5, rtol=0)
