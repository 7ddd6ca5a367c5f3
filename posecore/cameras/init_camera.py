"""The camera of an initialisation file, at the size a fit runs at."""

from __future__ import annotations

import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.io.init_files import SMPLIFYX_DEFAULT_FOCAL_LENGTH


def camera_from_init(camera_init, width: int, height: int, source_size: tuple[int, int] | None = None) -> PinholeCamera:
    """The pinhole camera an initialisation describes, scaled to a ``width`` x ``height`` image.

    Args:
        camera_init: a :class:`posecore.io.init_files.CameraInit` (or None): optional rotation (3, 3) and
            translation (3,) (world-to-camera, OpenCV), focal_length (fx, fy) and principal_point (cx, cy) in
            pixels of the image it was made for, image_size (width, height).
        width, height: the size the fit renders at, pixels.
        source_size: (width, height) of the photo the initialisation was made for, when the file does not say.

    Returns:
        The camera; missing pieces default to SMPLify-X's conventions: focal length 5000 px, principal point
        at the image centre, camera at the origin looking down +Z.
    """
    size = camera_init.image_size if camera_init is not None and camera_init.image_size else None
    src_w, src_h = size or source_size or (width, height)
    sx, sy = width / src_w, height / src_h
    fx = fy = SMPLIFYX_DEFAULT_FOCAL_LENGTH
    cx, cy = (src_w - 1) / 2.0, (src_h - 1) / 2.0
    rotation, translation = torch.eye(3), torch.zeros(3)
    if camera_init is not None:
        if camera_init.focal_length is not None:
            fx, fy = camera_init.focal_length
        if camera_init.principal_point is not None:
            cx, cy = camera_init.principal_point
        if camera_init.rotation is not None:
            rotation = torch.as_tensor(camera_init.rotation, dtype=torch.float32)
        if camera_init.translation is not None:
            translation = torch.as_tensor(camera_init.translation, dtype=torch.float32)
    # Pixel centres stay consistent under scaling: (c + 0.5) * s - 0.5.
    return PinholeCamera(
        fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5, width, height, rotation, translation
    )
