"""Deterministic shading of rasterised points: interpolated albedo and normals, Lambert with directional lights
plus ambient (the lights every backend uses, from :class:`~posecore.render.scene.Lighting`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from posecore.render.raster.topology import MeshTopology, cross_planar, normalize_planar, vertex_normals
from posecore.render.scene import RenderScene

Shader = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_shader(
    scene: RenderScene, points: torch.Tensor, depth: torch.Tensor, topology: MeshTopology, smooth_normals: bool
) -> Shader:
    """A function (triangle corners (3, M) vertex ids, screen-space barycentric weights (3, M)) -> (3, M) RGB.

    Args:
        scene: the scene (vertex colours, lighting, camera rotation).
        points: (3, V) planar camera-space vertices, metres (differentiable).
        depth: (V,) vertex depths, metres, for the perspective correction of the weights.
        topology: the topology of ``scene.faces`` (for the vertex normals).
        smooth_normals: interpolate vertex normals (True) or use flat face normals (False).

    The weights may be unnormalised (edge functions); they are perspective-corrected and normalised here.
    """
    normals = vertex_normals(points, scene.faces, topology, planar=True) if smooth_normals else None
    albedo_v = scene.vertex_colors.to(points).t()  # (3, V)
    rotation = scene.camera.rotation.to(points)
    lights = [
        (rotation @ light.direction.to(points), light.intensity.to(points))
        for light in scene.lighting.resolved(scene.camera)
    ]
    ambient = scene.lighting.ambient.to(points)

    def at_corners(values: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
        return values.index_select(1, corners.reshape(-1)).view(values.shape[0], 3, -1)  # (C, 3, M)

    def shade(corners: torch.Tensor, screen_weights: torch.Tensor) -> torch.Tensor:
        if corners.numel() == 0:
            return points.new_zeros(3, 0)
        bary = screen_weights / depth.index_select(0, corners.reshape(-1)).view(3, -1)  # perspective correction
        bary = bary / bary.sum(0, keepdim=True)
        albedo = (at_corners(albedo_v, corners) * bary).sum(1)  # (3, M)
        if normals is not None:
            n = (at_corners(normals, corners) * bary).sum(1)
        else:
            v = at_corners(points, corners)
            n = cross_planar(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        n = normalize_planar(n)
        radiance = ambient[:, None].expand(3, n.shape[1])
        for direction, intensity in lights:
            cosine = -(direction[:, None] * n).sum(0)
            radiance = radiance + cosine.clamp_min(0.0) * intensity[:, None]
        return albedo * radiance

    return shade
