"""The rasteriser backend: visibility, shading and silhouette antialiasing put together behind the renderer
interface (:class:`~posecore.render.scene.RenderScene` in, :class:`~posecore.render.scene.RenderOutput` out)."""

from __future__ import annotations

import torch

from posecore.render.raster.antialias import antialias, find_silhouette_crossings
from posecore.render.raster.shading import make_shader
from posecore.render.raster.topology import MeshTopology, gather_rows
from posecore.render.raster.visibility import NEAR, doubled_signed_area, edge_functions, longest_edge, zbuffer
from posecore.render.scene import RenderOutput, RenderScene


class RasterRenderer:
    """Deterministic differentiable rasteriser (see :mod:`posecore.render.raster`).

    Args:
        smooth_normals: shade with interpolated vertex normals (True) or flat face normals (False).
        cull_backfaces: skip back-facing triangles (right for closed, outward-facing meshes).
        antialias: apply the analytic edge antialiasing (the source of silhouette gradients).
        sliver_height: faces thinner than this on screen (pixels) pass no interior-shading gradient.
        edge_color: "centre" (the front pixel's colour, Laine et al.) or "edge" (shading at the crossing) as the
            front colour of the antialiasing blend; see :func:`~posecore.render.raster.antialias.antialias`.
    """

    name = "raster"

    def __init__(
        self,
        smooth_normals: bool = True,
        cull_backfaces: bool = True,
        antialias: bool = True,
        sliver_height: float = 0.25,
        edge_color: str = "centre",
    ) -> None:
        if edge_color not in ("centre", "edge"):
            raise ValueError(f"edge_color must be 'centre' or 'edge', got {edge_color!r}")
        self.edge_color = edge_color
        self.sliver_height = sliver_height
        self.smooth_normals = smooth_normals
        self.cull_backfaces = cull_backfaces
        self.antialias = antialias
        self._topologies: list[MeshTopology] = []  # the last two meshes rendered (whole mesh, visible part)

    def _topology(self, faces: torch.Tensor, num_vertices: int) -> MeshTopology:
        for topology in self._topologies:
            if topology.matches(faces, num_vertices):
                return topology
        topology = MeshTopology(faces.clone(), num_vertices)
        self._topologies = [topology, *self._topologies[:1]]
        return topology

    def render(self, scene: RenderScene) -> RenderOutput:
        """Render ``scene``.

        Returns:
            RenderOutput with image (H, W, 3), alpha (H, W) — both differentiable w.r.t. the vertices and
            the camera pose — and face_index (H, W) into ``scene.faces`` (-1 = background).
        """
        cam = scene.camera
        width, height = cam.width, cam.height
        num_vertices = scene.vertices.shape[0]
        face_ids = None if scene.face_mask is None else torch.nonzero(scene.face_mask, as_tuple=True)[0]
        faces = scene.faces if face_ids is None else scene.faces[face_ids]
        topology = self._topology(faces, num_vertices)
        # Planar (3, V) camera-space vertices: one contiguous row per coordinate (see visibility.py).
        points = cam.world_to_camera(scene.vertices).t().contiguous()
        z = points[2]
        z_safe = torch.where(z > NEAR, z, torch.full_like(z, NEAR))
        u = cam.fx * points[0] / z_safe + cam.cx  # (V,) pixels, differentiable in pose and vertices
        v = cam.fy * points[1] / z_safe + cam.cy
        # Visibility works on detached copies; gradients flow through the per-pixel and per-edge gathers below.
        with torch.no_grad():
            num_faces = faces.shape[0]
            corner_x = u.detach().index_select(0, topology.corner_major).view(3, num_faces)  # (3, F)
            corner_y = v.detach().index_select(0, topology.corner_major).view(3, num_faces)
            corner_z = z_safe.detach().index_select(0, topology.corner_major).view(3, num_faces)
            area = doubled_signed_area(corner_x, corner_y)  # (F,), negative = front-facing
            local_index = zbuffer(corner_x, corner_y, corner_z, area, width, height, self.cull_backfaces)
            flat_index = local_index.view(-1)
            covered = torch.nonzero(flat_index >= 0, as_tuple=True)[0]
            tri_of_pixel = flat_index.index_select(0, covered)
            corners = gather_rows(faces, tri_of_pixel).t().contiguous()  # (3, M) vertex ids
            centre_x, centre_y = (covered % width).to(u.dtype), (covered // width).to(u.dtype)
            orientation = -1.0 if self.cull_backfaces else torch.sign(area).index_select(0, tri_of_pixel)

        whole_mesh = topology if face_ids is None else self._topology(scene.faces, num_vertices)
        shade = make_shader(scene, points, z_safe, whole_mesh, self.smooth_normals)
        flat_corners = corners.reshape(-1)
        pixel_x = u.index_select(0, flat_corners).view(3, -1)  # (3, M), differentiable
        pixel_y = v.index_select(0, flat_corners).view(3, -1)
        pixel_bary = edge_functions(pixel_x, pixel_y, centre_x, centre_y, orientation)
        # Slivers (grazing faces at silhouettes, thinner than a fraction of a pixel) have barycentric
        # derivatives that grow as 1/height: one pixel centre landing inside one would swamp the image gradient
        # with a spike that holds over a fraction of a pixel. Their interior-shading gradient is dropped (the
        # silhouette gradient, which matters for fitting, comes from the antialiasing).
        with torch.no_grad():
            longest = longest_edge(pixel_x.detach(), pixel_y.detach()).clamp_min(1e-12)
            sliver = pixel_bary.detach().sum(0).abs() / longest < self.sliver_height
        pixel_bary = torch.where(sliver, pixel_bary.detach(), pixel_bary)
        colors = shade(corners, pixel_bary)  # (3, M)
        # The image is assembled row-major, (H*W, 3), so that it is returned (and its gradient arrives) contiguous.
        color = scene.background.to(u).repeat(height * width, 1)
        color.index_copy_(0, covered, colors.t())
        alpha = u.new_zeros(height * width).index_fill_(0, covered, 1.0)
        if self.antialias and covered.numel() > 0:
            crossings = find_silhouette_crossings(
                local_index, corner_x, corner_y, corner_z, area, topology.adjacency, self.cull_backfaces
            )
            edge_shade = shade if self.edge_color == "edge" else None
            antialias(color, alpha, crossings, width, u, v, faces, edge_shade)
        if covered.numel() == 0 and u.requires_grad:
            # Nothing in view: the image is the background, but stays connected (with a zero gradient) to the
            # vertices and camera, so a fit whose body left the frame stalls instead of failing in backward().
            nothing = 0.0 * u.sum()
            color, alpha = color + nothing, alpha + nothing
        if face_ids is None:
            face_index = local_index
        else:
            face_index = torch.where(local_index >= 0, face_ids[local_index.clamp_min(0)], local_index)
        return RenderOutput(
            image=color.view(height, width, 3),
            alpha=alpha.view(height, width),
            face_index=face_index,
            footprint=_footprint(covered, centre_x, width, height),
        )


def _footprint(covered: torch.Tensor, centre_x: torch.Tensor, width: int, height: int) -> tuple[int, int, int, int]:
    """The box of covered pixels (``covered``: sorted flat indices; ``centre_x``: their columns) grown by the one
    pixel the antialiasing may blend into: (top, bottom, left, right), bottom and right exclusive."""
    if covered.numel() == 0:
        return (0, 0, 0, 0)
    top, bottom = int(covered[0]) // width, int(covered[-1]) // width
    left, right = int(centre_x.min()), int(centre_x.max())
    return max(top - 1, 0), min(bottom + 2, height), max(left - 1, 0), min(right + 2, width)
