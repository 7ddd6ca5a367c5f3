"""Rotation conversions, as pure functions on batched tensors (radians throughout)."""

from __future__ import annotations

import torch


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, smooth (and with a correct gradient) at the zero rotation.

    Args:
        axis_angle: (..., 3) rotation vectors; direction = axis, norm = angle in radians.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = theta2 < 1e-8
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    # sin(t)/t and (1-cos t)/t^2 with their Taylor series near zero.
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2_safe)
    x, y, z = axis_angle.unbind(-1)
    zeros = torch.zeros_like(x)
    skew = torch.stack([zeros, -z, y, z, zeros, -x, -y, x, zeros], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(skew)
    return eye + a[..., None] * skew + b[..., None] * (skew @ skew)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`axis_angle_to_matrix` (angles in [0, pi]), via the quaternion.

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) rotation vectors.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to unit quaternions (w, x, y, z) with w >= 0.

    Args:
        matrix: (..., 3, 3).

    Returns:
        (..., 4).
    """
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    q_abs = (
        torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1)
        .clamp_min(1e-12)
        .sqrt()
    )
    # Four candidate quaternions; pick the best conditioned one (largest |component|).
    cands = torch.stack(
        [
            torch.stack(
                [
                    q_abs[..., 0] ** 2,
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                dim=-1,
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    q_abs[..., 1] ** 2,
                    m[..., 1, 0] + m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                dim=-1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] + m[..., 0, 1],
                    q_abs[..., 2] ** 2,
                    m[..., 2, 1] + m[..., 1, 2],
                ],
                dim=-1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 2, 0] + m[..., 0, 2],
                    m[..., 2, 1] + m[..., 1, 2],
                    q_abs[..., 3] ** 2,
                ],
                dim=-1,
            ),
        ],
        dim=-2,
    ) / (2.0 * q_abs[..., None])
    best = q_abs.argmax(dim=-1)
    quat = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (w, x, y, z) to rotation vectors.

    Args:
        quat: (..., 4).

    Returns:
        (..., 3), angle in [0, pi] when w >= 0.
    """
    quat = torch.where(quat[..., :1] < 0, -quat, quat)
    xyz = quat[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    half = torch.atan2(sin_half, quat[..., :1])
    small = sin_half < 1e-6
    scale = torch.where(small, 2.0 / quat[..., :1].clamp_min(1e-12), 2.0 * half / sin_half.clamp_min(1e-12))
    return xyz * scale


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (..., 3) to unit quaternions (..., 4) as (w, x, y, z)."""
    angle = axis_angle.norm(dim=-1, keepdim=True)
    half = 0.5 * angle
    small = angle < 1e-6
    scale = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(half) / angle.clamp_min(1e-12))
    return torch.cat([torch.cos(half), axis_angle * scale], dim=-1)


def rotation_angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (radians) between two batches of rotation matrices (..., 3, 3) -> (...).

    atan2(sin, cos) rather than acos(cos): acos loses about 1e-3 rad near 0 in float32.
    """
    rel = a.transpose(-1, -2) @ b
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) * 0.5
    skew = torch.stack(
        [rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]], dim=-1
    )
    sin = 0.5 * skew.norm(dim=-1)
    return torch.atan2(sin, cos)
