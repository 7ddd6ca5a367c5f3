"""Pinhole cameras in OpenCV convention, with exact conversions to and from Blender's camera model.

Conventions:
- OpenCV camera frame: +X right, +Y down, +Z forward (into the scene). Pixel (0, 0) is the
  *centre* of the top-left pixel, so a point projects to u = fx * x / z + cx.
- Blender camera frame: +X right, +Y up, looking down -Z. ``R_cv = diag(1, -1, -1) @ R_blender``.
- Extrinsics are world-to-camera: ``x_cam = R @ x_world + t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from posecore.errors import ParameterError

BLENDER_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


@dataclass
class PinholeCamera:
    """An ideal pinhole camera (no distortion).

    Attributes:
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in pixels (OpenCV: pixel centres at integers).
        width, height: image size in pixels.
        rotation: (3, 3) world-to-camera rotation (OpenCV frame). May require grad.
        translation: (3,) world-to-camera translation, metres. May require grad.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    rotation: torch.Tensor
    translation: torch.Tensor

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ParameterError(f"camera image size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ParameterError(f"camera focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if tuple(self.rotation.shape) != (3, 3) or tuple(self.translation.shape) != (3,):
            raise ParameterError(
                f"camera rotation/translation must be (3, 3)/(3,), got "
                f"{tuple(self.rotation.shape)}/{tuple(self.translation.shape)}"
            )

    # ---------------------------------------------------------------- intrinsics
    @property
    def intrinsic_matrix(self) -> torch.Tensor:
        """(3, 3) K in OpenCV convention."""
        return torch.tensor([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def vertical_fov_degrees(self) -> float:
        return float(2.0 * torch.rad2deg(torch.atan(torch.tensor(0.5 * self.height / self.fy))))

    @property
    def horizontal_fov_degrees(self) -> float:
        return float(2.0 * torch.rad2deg(torch.atan(torch.tensor(0.5 * self.width / self.fx))))

    # ---------------------------------------------------------------- extrinsics
    @property
    def position(self) -> torch.Tensor:
        """(3,) camera centre in world coordinates, metres."""
        return -(self.rotation.transpose(0, 1) @ self.translation)

    @property
    def forward_axis(self) -> torch.Tensor:
        """(3,) the viewing direction (camera +Z) in world coordinates."""
        return self.rotation[2]

    def camera_to_world(self) -> torch.Tensor:
        """(4, 4) camera-to-world matrix (OpenCV camera frame)."""
        m = torch.eye(4, dtype=self.rotation.dtype)
        m = m.clone()
        m[:3, :3] = self.rotation.transpose(0, 1)
        m[:3, 3] = self.position
        return m

    def with_pose(self, rotation: torch.Tensor, translation: torch.Tensor) -> PinholeCamera:
        """The same intrinsics with another world-to-camera pose."""
        return PinholeCamera(self.fx, self.fy, self.cx, self.cy, self.width, self.height, rotation, translation)

    def detached(self) -> PinholeCamera:
        return self.with_pose(self.rotation.detach().clone(), self.translation.detach().clone())

    def scaled(self, factor: float) -> PinholeCamera:
        """The same view at ``factor`` times the resolution (pixel centres stay consistent)."""
        w, h = max(1, round(self.width * factor)), max(1, round(self.height * factor))
        sx, sy = w / self.width, h / self.height
        return PinholeCamera(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            w,
            h,
            self.rotation,
            self.translation,
        )

    def cropped(self, window: tuple[float, float, float, float], width: int, height: int) -> PinholeCamera:
        """The camera of a window of this image resized to ``width`` x ``height`` (same pose).

        Args:
            window: (x0, y0, x1, y1) pixel *edges* of this image (pixel i spans [i, i + 1); may be fractional,
                may reach outside the image).
            width, height: the size the window is resized to, pixels.

        A point at pixel u of this image lands at ``(u + 0.5 - x0) * width / (x1 - x0) - 0.5`` in the crop
        (pixel centres stay consistent, as in :meth:`scaled`).
        """
        x0, y0, x1, y1 = (float(v) for v in window)
        if not (x1 > x0 and y1 > y0):
            raise ParameterError(f"crop window {window} is empty")
        sx, sy = width / (x1 - x0), height / (y1 - y0)
        return PinholeCamera(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5 - x0) * sx - 0.5,
            (self.cy + 0.5 - y0) * sy - 0.5,
            int(width),
            int(height),
            self.rotation,
            self.translation,
        )

    # ---------------------------------------------------------------- projection
    def world_to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """(N, 3) world points -> (N, 3) camera-frame points (OpenCV)."""
        return points @ self.rotation.transpose(0, 1) + self.translation

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points to pixels.

        Args:
            points: (N, 3) world positions, metres.

        Returns:
            uv: (N, 2) pixel coordinates (OpenCV, pixel centres at integers).
            depth: (N,) camera-frame z, metres (positive in front of the camera).
        """
        cam = self.world_to_camera(points)
        z = cam[:, 2]
        z_safe = torch.where(z.abs() < 1e-9, torch.full_like(z, 1e-9), z)
        u = self.fx * cam[:, 0] / z_safe + self.cx
        v = self.fy * cam[:, 1] / z_safe + self.cy
        return torch.stack([u, v], dim=-1), z

    # ---------------------------------------------------------------- constructors
    @staticmethod
    def look_at(
        eye: torch.Tensor,
        target: torch.Tensor,
        up: torch.Tensor,
        width: int,
        height: int,
        vertical_fov_degrees: float = 40.0,
    ) -> PinholeCamera:
        """A camera at ``eye`` looking at ``target`` with ``up`` (all (3,), world) pointing up in the image."""
        eye, target, up = (torch.as_tensor(x, dtype=torch.float32) for x in (eye, target, up))
        forward = target - eye
        if forward.norm() < 1e-9:
            raise ParameterError("look_at: eye and target coincide")
        forward = forward / forward.norm()
        right = torch.linalg.cross(forward, up)
        if right.norm() < 1e-9:
            raise ParameterError("look_at: up is parallel to the viewing direction")
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        rotation = torch.stack([right, down, forward])  # rows: camera axes in world coords
        translation = -(rotation @ eye)
        f = 0.5 * height / torch.tan(torch.deg2rad(torch.tensor(vertical_fov_degrees * 0.5)))
        f = float(f)
        return PinholeCamera(f, f, (width - 1) * 0.5, (height - 1) * 0.5, width, height, rotation, translation)

    @staticmethod
    def from_blender(
        lens_mm: float,
        sensor_width_mm: float,
        sensor_height_mm: float,
        sensor_fit: str,
        shift_x: float,
        shift_y: float,
        resolution_x: int,
        resolution_y: int,
        pixel_aspect_x: float = 1.0,
        pixel_aspect_y: float = 1.0,
        matrix_world: torch.Tensor | None = None,
    ) -> PinholeCamera:
        """Build from a Blender camera's data and object matrix (final render resolution, percentage applied).

        ``matrix_world`` is the (4, 4) camera object's world matrix without scale (Blender frame, -Z forward).
        """
        if not (lens_mm > 0 and pixel_aspect_x > 0 and pixel_aspect_y > 0):
            raise ParameterError(
                f"Blender camera lens and pixel aspect must be positive, got lens={lens_mm}, "
                f"pixel aspect={pixel_aspect_x}x{pixel_aspect_y}"
            )
        pixel_aspect = pixel_aspect_y / pixel_aspect_x
        fit = sensor_fit.upper()
        if fit == "AUTO":
            sensor = sensor_width_mm
            view = resolution_x if resolution_x >= resolution_y * pixel_aspect else pixel_aspect * resolution_y
        elif fit == "HORIZONTAL":
            sensor, view = sensor_width_mm, resolution_x
        elif fit == "VERTICAL":
            sensor, view = sensor_height_mm, pixel_aspect * resolution_y
        else:
            raise ParameterError(f"unknown sensor fit {sensor_fit!r} (expected AUTO, HORIZONTAL or VERTICAL)")
        if not sensor > 0:
            raise ParameterError(f"Blender camera sensor size must be positive, got {sensor} mm")
        # Blender (BKE_camera_params_compute_viewplane): a pixel is pixel_aspect times as tall as it is wide
        # on the view plane, so fy = fx / pixel_aspect, and the y shift (in x-pixel units) is divided by it too.
        fx = lens_mm / sensor * view
        fy = fx / pixel_aspect
        cx = resolution_x / 2.0 - shift_x * view - 0.5
        cy = resolution_y / 2.0 + shift_y * view / pixel_aspect - 0.5
        if matrix_world is None:
            matrix_world = torch.eye(4)
        matrix_world = torch.as_tensor(matrix_world, dtype=torch.float32)
        rot_bl = matrix_world[:3, :3]
        rot_bl = rot_bl / rot_bl.norm(dim=0, keepdim=True)  # drop any object scale
        world_to_cam_bl = rot_bl.transpose(0, 1)
        rotation = BLENDER_TO_OPENCV @ world_to_cam_bl
        translation = -(rotation @ matrix_world[:3, 3])
        return PinholeCamera(fx, fy, cx, cy, int(resolution_x), int(resolution_y), rotation, translation)

    def as_dict(self) -> dict:
        """JSON-ready intrinsics (pixels) and extrinsics (R (3, 3) nested lists, t (3,) metres; OpenCV)."""
        return {
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "width": self.width,
            "height": self.height,
            "R": self.rotation.detach().tolist(),
            "t": self.translation.detach().tolist(),
        }

    def to_blender(self, sensor_width_mm: float = 36.0) -> dict:
        """Blender camera settings reproducing this camera (sensor fit HORIZONTAL, square pixels if fx == fy).

        Returns a dict: lens_mm, sensor_width_mm, sensor_fit, shift_x, shift_y, resolution_x, resolution_y,
        pixel_aspect_x, pixel_aspect_y, matrix_world ((4, 4) nested lists, Blender frame).
        """
        view = float(self.width)
        lens = self.fx * sensor_width_mm / view
        pixel_aspect = self.fx / self.fy  # = pixel_aspect_y / pixel_aspect_x
        shift_x = (self.width / 2.0 - 0.5 - self.cx) / view
        shift_y = (self.cy + 0.5 - self.height / 2.0) * pixel_aspect / view
        rot_bl = (BLENDER_TO_OPENCV @ self.rotation.detach()).transpose(0, 1)
        mw = torch.eye(4)
        mw[:3, :3] = rot_bl
        mw[:3, 3] = self.position.detach()
        return {
            "lens_mm": float(lens),
            "sensor_width_mm": float(sensor_width_mm),
            "sensor_fit": "HORIZONTAL",
            "shift_x": float(shift_x),
            "shift_y": float(shift_y),
            "resolution_x": int(self.width),
            "resolution_y": int(self.height),
            "pixel_aspect_x": 1.0 if pixel_aspect >= 1 else 1.0 / pixel_aspect,
            "pixel_aspect_y": pixel_aspect if pixel_aspect >= 1 else 1.0,
            "matrix_world": mw.tolist(),
        }
