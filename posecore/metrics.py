"""Accuracy metrics: the paper's Table 1 image error, MPJPE and PA-MPJPE, joint-angle changes."""

from __future__ import annotations

import torch

from posecore.rotations import axis_angle_to_matrix, rotation_angle_between


def image_error_percent(rendered: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> float:
    """The paper's Table 1 error: squared L2 of [0, 1]-clamped images as a percentage of H * W * C.

    Args:
        rendered, target: (H, W, C) images. weight: optional (H, W) pixel weights (then the denominator is
            the weighted pixel count times C).
    """
    diff = (rendered.clamp(0, 1) - target.clamp(0, 1)).square()
    if weight is None:
        return float(100.0 * diff.sum() / diff.numel())
    denom = weight.sum() * diff.shape[-1]
    return float(100.0 * (diff * weight[..., None]).sum() / denom.clamp_min(1.0))


def mpjpe_mm(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean per-joint position error in millimetres.

    Args:
        predicted, truth: (J, 3) joint positions in metres (same joints, same frame).
    """
    return float(1000.0 * (predicted - truth).norm(dim=-1).mean())


def procrustes_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity transform (rotation, uniform scale, translation) of ``source`` best matching ``target``.

    Args:
        source, target: (J, 3).

    Returns:
        (J, 3) aligned source.
    """
    src = source.double()
    tgt = target.double()
    mu_s, mu_t = src.mean(0), tgt.mean(0)
    xs, xt = src - mu_s, tgt - mu_t
    cov = xt.T @ xs
    u, sigma, vt = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u @ vt))
    correction = torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=torch.float64))
    rot = u @ correction @ vt
    scale = (sigma * correction.diagonal()).sum() / xs.square().sum().clamp_min(1e-12)
    aligned = scale * xs @ rot.T + mu_t
    return aligned.to(source.dtype)


def pa_mpjpe_mm(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """MPJPE after Procrustes alignment (rotation, scale, translation) of the prediction, millimetres."""
    return mpjpe_mm(procrustes_align(predicted, truth), truth)


def joint_angle_change_degrees(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(J,) geodesic angle between two (J, 3) axis-angle tables, degrees."""
    return torch.rad2deg(rotation_angle_between(axis_angle_to_matrix(before), axis_angle_to_matrix(after)))
