"""The camera of a photo from its landmarks: focal length (EXIF or a stated default) and translation.

The rotation is not solved here: the initialisation keeps an upright camera facing the model's front and turns the
body instead (its global orientation). With the rotation and focal length known, the translation that best
projects 3D joints onto their 2D landmarks is linear least squares (each point gives two equations).
"""

from __future__ import annotations

import math
import os

import torch

from posecore.errors import ParameterError

FULL_FRAME_DIAGONAL_MM = 43.27
"""Diagonal of a 36 x 24 mm frame: what a "35 mm equivalent" focal length refers to."""

EXIF_IFD = 0x8769
EXIF_FOCAL_LENGTH_35MM = 0xA405


def default_focal_px(width: int, height: int) -> float:
    """The focal length assumed when a photo does not say: a normal lens, focal length = image diagonal.

    That is a 53 degree diagonal field of view (a 43 mm lens on a full-frame camera), between a phone's wide
    main camera (about 26 mm) and a portrait lens (50-85 mm). Pixels.
    """
    return math.hypot(width, height)


def focal_from_exif(path: str | os.PathLike[str], width: int, height: int) -> float | None:
    """Focal length in pixels of a ``width`` x ``height`` image from its EXIF ``FocalLengthIn35mmFilm``, or None.

    ``f_px = f_35mm / 43.27 mm * diagonal_px`` (the 35 mm equivalent is defined on the frame diagonal, which
    also holds for crops that keep the aspect ratio and for resized copies).
    """
    from posecore.io.images import image_exif_tag

    value = image_exif_tag(path, EXIF_FOCAL_LENGTH_35MM, EXIF_IFD) or image_exif_tag(path, EXIF_FOCAL_LENGTH_35MM)
    try:
        focal_35 = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return None
    if not 5.0 <= focal_35 <= 2000.0:
        return None
    return focal_35 / FULL_FRAME_DIAGONAL_MM * math.hypot(width, height)


def solve_translation(
    points: torch.Tensor, uv: torch.Tensor, weights: torch.Tensor, fx: float, fy: float, cx: float, cy: float
) -> torch.Tensor:
    """The camera translation ``t`` that projects ``points + t`` onto ``uv`` (weighted linear least squares).

    For each point P (camera axes) with pixel (u, v): ``fx (P_x + t_x) = (u - cx)(P_z + t_z)`` and likewise for y,
    linear in t. Exact for noise-free data.

    Args:
        points: (N, 3) points in the camera's axes (``R @ X``, before translation), metres.
        uv: (N, 2) their pixels (OpenCV convention). weights: (N,) >= 0.
        fx, fy, cx, cy: intrinsics, pixels.

    Returns:
        (3,) translation, metres (float64).

    Raises:
        ParameterError: fewer than two weighted points.
    """
    p = points.detach().to(torch.float64)
    du = uv.detach().to(torch.float64)[:, 0] - cx
    dv = uv.detach().to(torch.float64)[:, 1] - cy
    w = weights.detach().to(torch.float64).clamp_min(0.0).sqrt()
    if int((w > 0).sum()) < 2:
        raise ParameterError("the camera solve needs at least two landmarks with non-zero weight")
    zeros = torch.zeros_like(du)
    rows_u = torch.stack([torch.full_like(du, fx), zeros, -du], dim=-1)
    rows_v = torch.stack([zeros, torch.full_like(dv, fy), -dv], dim=-1)
    rhs_u = du * p[:, 2] - fx * p[:, 0]
    rhs_v = dv * p[:, 2] - fy * p[:, 1]
    a = torch.cat([rows_u * w[:, None], rows_v * w[:, None]])
    b = torch.cat([rhs_u * w, rhs_v * w])
    return torch.linalg.lstsq(a, b[:, None]).solution[:, 0]
