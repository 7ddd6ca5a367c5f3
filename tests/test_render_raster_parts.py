"""The rasteriser's parts on their own: z-buffer against brute force, watertight edge functions, the silhouette
pair filter and the walk's compaction (which must change nothing), planar normals and their gradients."""

from __future__ import annotations

import pytest
import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.render.primitives import icosphere
from posecore.render.raster import RasterRenderer, rasterize, vertex_normals
from posecore.render.raster import antialias as antialias_module
from posecore.render.raster.antialias import find_silhouette_crossings
from posecore.render.raster.topology import MeshTopology
from posecore.render.raster.visibility import doubled_signed_area, edge_functions
from posecore.render.scene import RenderScene


def camera(width: int, height: int) -> PinholeCamera:
    return PinholeCamera.look_at(torch.tensor([0.3, -0.2, -3.0]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]),
                                 width, height, 25.0)  # fmt: skip


def scene_mesh() -> tuple[torch.Tensor, torch.Tensor]:
    """Two overlapping spheres and an elongated 'limb' crossing them: occlusions, slivers, several silhouettes."""
    parts, faces, offset = [], [], 0
    for level, scale, shift in ((3, (0.5, 0.5, 0.5), (0.2, 0.0, 0.0)), (2, (0.3, 0.3, 0.3), (-0.2, 0.1, -0.5)),
                                (3, (0.7, 0.1, 0.1), (0.0, -0.3, -0.3))):  # fmt: skip
        v, f = icosphere(level)
        parts.append(v * torch.tensor(scale) + torch.tensor(shift))
        faces.append(f + offset)
        offset += v.shape[0]
    return torch.cat(parts), torch.cat(faces)


def brute_force_zbuffer(vertices: torch.Tensor, faces: torch.Tensor, cam: PinholeCamera) -> torch.Tensor:
    """(H, W) nearest front face at each pixel centre, every pixel against every face (maths in float64)."""
    uv, depth = (t.double() for t in cam.project(vertices))
    tri, z = uv[faces], depth[faces]  # (F, 3, 2), (F, 3)
    ys, xs = torch.meshgrid(torch.arange(cam.height), torch.arange(cam.width), indexing="ij")
    p = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).double()  # (P, 2)
    rel = tri[None] - p[:, None, None]  # (P, F, 3, 2)
    r1, r2 = rel.roll(-1, 2), rel.roll(-2, 2)
    w = -(r1[..., 0] * r2[..., 1] - r2[..., 0] * r1[..., 1])  # front faces have a negative area
    front = doubled_signed_area(tri[..., 0].t(), tri[..., 1].t()) < 0
    inside = (w >= 0).all(-1) & front[None]
    pixel_depth = w.sum(-1) / (w / z[None]).sum(-1)
    pixel_depth = torch.where(inside, pixel_depth, torch.full_like(pixel_depth, float("inf")))
    best = pixel_depth.argmin(dim=1)
    return torch.where(inside.any(1), best, -1).reshape(cam.height, cam.width)


def test_zbuffer_matches_brute_force() -> None:
    v, f = scene_mesh()
    cam = camera(40, 30)
    uv, depth = cam.project(v)
    fast = rasterize(uv, depth, f, cam.width, cam.height)
    reference = brute_force_zbuffer(v, f, cam)
    assert (fast >= 0).sum() > 300  # the scene covers a good part of the frame
    assert torch.equal(fast, reference)


def test_edge_functions_are_watertight_and_barycentric() -> None:
    g = torch.Generator().manual_seed(0)
    p, q, r, s = (torch.rand(500, 2, generator=g) * 100 for _ in range(4))
    points = torch.rand(500, 2, generator=g) * 100
    tri_a = torch.stack([p, q, r], 1)  # edge 2 of A runs p -> q
    tri_b = torch.stack([q, p, s], 1)  # edge 2 of B runs q -> p
    wa = edge_functions(tri_a[..., 0].t(), tri_a[..., 1].t(), points[:, 0], points[:, 1], 1.0)
    wb = edge_functions(tri_b[..., 0].t(), tri_b[..., 1].t(), points[:, 0], points[:, 1], 1.0)
    assert torch.equal(wa[2], -wb[2])  # bit-exact: no pixel centre on a shared edge is lost or doubled
    area = doubled_signed_area(tri_a[..., 0].t(), tri_a[..., 1].t())
    assert torch.allclose(wa.sum(0), area, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize(("width", "height", "cull"), [(48, 36, True), (97, 71, True), (64, 48, False)])
def test_silhouette_pair_filter_changes_nothing(width: int, height: int, cull: bool) -> None:
    """The prefilter only skips pairs whose walk would find nothing: the same crossings with and without it."""
    v, f = scene_mesh()
    cam = camera(width, height)
    uv, depth = cam.project(v)
    x, y, z = uv[f][..., 0].t(), uv[f][..., 1].t(), depth[f].t()
    area = doubled_signed_area(x, y)
    topology = MeshTopology(f, v.shape[0])
    index = rasterize(uv, depth, f, width, height, cull_backfaces=cull)
    fast = find_silhouette_crossings(index, x, y, z, area, topology.adjacency, cull, prefilter=True)
    full = find_silhouette_crossings(index, x, y, z, area, topology.adjacency, cull, prefilter=False)
    assert fast.face.numel() > 50

    def rows(c) -> set[tuple[int, int, int, int]]:
        return set(zip(c.front_pix.tolist(), c.back_pix.tolist(), c.face.tolist(), c.edge.tolist(), strict=True))

    assert rows(fast) == rows(full)


def test_walk_compaction_changes_nothing(monkeypatch) -> None:
    v, f = scene_mesh()
    cam = camera(96, 72)
    colors = torch.rand(v.shape[0], 3, generator=torch.Generator().manual_seed(1))
    results = []
    for every in (1, 3, 1000):
        monkeypatch.setattr(antialias_module, "_COMPACT_EVERY", every)
        vv = v.clone().requires_grad_(True)
        out = RasterRenderer().render(RenderScene(vv, f, colors, cam))
        out.image.sum().backward()
        results.append((out.image.detach(), vv.grad))
    for image, grad in results[1:]:
        assert torch.equal(image, results[0][0]) and torch.equal(grad, results[0][1])


def reference_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    face_n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals = normals.index_add(0, faces[:, corner], face_n)
    return normals / normals.norm(dim=-1, keepdim=True)


def test_vertex_normals_match_reference_and_finite_differences() -> None:
    v, f = icosphere(1)
    v = (v * torch.tensor([1.0, 0.5, 0.3])).double()
    assert torch.allclose(vertex_normals(v, f), reference_normals(v, f), atol=1e-12)
    planar = vertex_normals(v.t().contiguous(), f, planar=True)
    assert planar.shape == (3, v.shape[0]) and torch.allclose(planar.t(), reference_normals(v, f), atol=1e-12)
    topology = MeshTopology(f, v.shape[0])
    vv = v.t().contiguous().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: vertex_normals(p, f, topology, planar=True), (vv,))
    assert torch.autograd.gradcheck(topology.gather_corners, (vv,))
    face_values = torch.rand(2, f.shape[0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(topology.sum_faces_to_vertices, (face_values,))


def test_topology_rejects_faces_beyond_the_vertices() -> None:
    _v, f = icosphere(1)
    with pytest.raises(ValueError, match="faces index vertex 41 but there are 10"):
        MeshTopology(f, 10)
