"""What every renderer backend takes and returns.

Shading model (the same in every backend, so their images agree): a Lambertian surface with per-vertex
albedo, lit by directional lights without shadows... except where a path tracer casts them (the default
light is a *headlight* along the viewing direction, whose shadows hide behind the occluders, so every
backend renders the same image), plus an optional ambient term, over a constant background colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import ParameterError


@dataclass
class DirectionalLight:
    """Light arriving along ``direction`` (world, need not be unit) with RGB ``intensity`` (radiance scale)."""

    direction: torch.Tensor
    intensity: torch.Tensor


@dataclass
class Lighting:
    """Directional lights plus an ambient RGB term.

    ``headlight=True`` adds a light travelling along the camera's viewing direction at render time (so it
    follows the camera, including the optimised orbit angle) with intensity ``headlight_intensity``.
    """

    directional: list[DirectionalLight] = field(default_factory=list)
    ambient: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    headlight: bool = True
    headlight_intensity: torch.Tensor = field(default_factory=lambda: torch.ones(3))

    def resolved(self, camera: PinholeCamera) -> list[DirectionalLight]:
        """The directional lights, the headlight included, with unit directions (world)."""
        lights = list(self.directional)
        if self.headlight:
            lights.append(DirectionalLight(camera.forward_axis, self.headlight_intensity))
        out = []
        for light in lights:
            d = torch.as_tensor(light.direction, dtype=torch.float32)
            out.append(DirectionalLight(d / d.norm().clamp_min(1e-12), torch.as_tensor(light.intensity)))
        return out


@dataclass
class RenderScene:
    """A triangle mesh seen by a pinhole camera.

    Attributes:
        vertices: (V, 3) float32 world positions, metres. Differentiable.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        vertex_colors: (V, 3) albedo in [0, 1].
        camera: the pinhole camera (its pose may be differentiable).
        lighting: lights (see :class:`Lighting`).
        background: (3,) RGB of pixels the mesh does not cover.
        face_mask: optional (F,) bool: only these faces are rendered (others are removed from the scene).
        face_labels: optional (F,) int64 labels reported per pixel by backends that can (part maps).
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    vertex_colors: torch.Tensor
    camera: PinholeCamera
    lighting: Lighting = field(default_factory=Lighting)
    background: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    face_mask: torch.Tensor | None = None

    def visible_faces(self) -> torch.Tensor:
        """(F', 3) the faces to render."""
        return self.faces if self.face_mask is None else self.faces[self.face_mask]

    def validated(self, who: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Check shapes, finiteness and face indices; raise :class:`ParameterError` prefixed with ``who``.

        Returns:
            vertices (V, 3), vertex colours (V, 3) and the (F', 3) int64 faces to render.
        """
        v, f, c = self.vertices, self.faces, self.vertex_colors
        if v.ndim != 2 or v.shape[1] != 3:
            raise ParameterError(f"{who}: vertices must be (V, 3), got {tuple(v.shape)}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ParameterError(f"{who}: faces must be (F, 3), got {tuple(f.shape)}")
        if tuple(c.shape) != tuple(v.shape):
            raise ParameterError(f"{who}: vertex_colors must be {tuple(v.shape)} like vertices, got {tuple(c.shape)}")
        if not bool(torch.isfinite(v).all()):
            raise ParameterError(f"{who}: vertices contain NaN or infinite values")
        if self.face_mask is not None and tuple(self.face_mask.shape) != (f.shape[0],):
            raise ParameterError(f"{who}: face_mask must be ({f.shape[0]},), got {tuple(self.face_mask.shape)}")
        if f.numel() and (int(f.min()) < 0 or int(f.max()) >= v.shape[0]):
            raise ParameterError(f"{who}: face indices out of range for {v.shape[0]} vertices")
        return v, c, self.visible_faces().detach().to(torch.int64)


@dataclass
class RenderOutput:
    """A rendered image.

    Attributes:
        image: (H, W, 3) linear RGB (not clamped). Differentiable w.r.t. vertices and camera pose.
        alpha: (H, W) coverage of the mesh in [0, 1] (antialiased where the backend can).
        face_index: optional (H, W) int64 index (into the *rendered* faces) of the face seen at each pixel
            centre, -1 for background. Not differentiable.
        footprint: optional (top, bottom, left, right) pixel box (bottom, right exclusive) outside which the
            image is exactly the background, alpha is 0 and nothing depends on the scene (so a loss may compare
            only the box); None when the backend does not know one.
    """

    image: torch.Tensor
    alpha: torch.Tensor
    face_index: torch.Tensor | None = None
    footprint: tuple[int, int, int, int] | None = None
