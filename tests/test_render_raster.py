"""The built-in rasteriser: visibility, determinism, and gradients against finite differences of a
heavily supersampled hard (z-buffer only) render."""

from __future__ import annotations

import pytest
import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.fitting.loop import fit_lighting
from posecore.render.primitives import icosphere
from posecore.render.raster import RasterRenderer, face_adjacency, rasterize
from posecore.render.scene import Lighting, RenderScene

FLAT = Lighting(ambient=torch.ones(3), headlight=False)  # constant colour: pure coverage
SHADED = fit_lighting()  # the fit's half-ambient, half-headlight light: shading varies to the silhouette


def front_camera(width: int = 64, height: int = 48) -> PinholeCamera:
    return PinholeCamera.look_at(torch.tensor([0.0, 0.0, -3.0]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]),
                                 width, height, 40.0)  # fmt: skip


def ramp_weights(height: int, width: int) -> torch.Tensor:
    """(H, W, 3) smooth, non-symmetric pixel weights, so translations have a clear gradient."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([xx, yy, 1 - xx * yy], dim=-1)


def weighted_sum(vertices, faces, colors, camera, lighting, weights, renderer):
    return (renderer.render(RenderScene(vertices, faces, colors, camera, lighting)).image * weights).sum()


def supersampled_sum(vertices, faces, colors, camera, lighting, weights, factor: int = 12) -> torch.Tensor:
    """The same weighted sum of a hard z-buffer render at ``factor``x resolution, box-filtered down."""
    hard = RasterRenderer(antialias=False)
    img = hard.render(RenderScene(vertices, faces, colors, camera.scaled(factor), lighting)).image
    img = torch.nn.functional.avg_pool2d(img.permute(2, 0, 1)[None], factor)[0].permute(1, 2, 0)
    return (img * weights).sum()


def gradient_pair(vertices, direction, faces, colors, camera, lighting, h: float = 0.01):
    """(autodiff d/ds, central finite difference of the supersampled render) of L(vertices + s * direction)."""
    weights = ramp_weights(camera.height, camera.width)
    s = torch.zeros((), requires_grad=True)
    weighted_sum(vertices + s * direction, faces, colors, camera, lighting, weights, RasterRenderer()).backward()
    plus = supersampled_sum(vertices + h * direction, faces, colors, camera, lighting, weights)
    minus = supersampled_sum(vertices - h * direction, faces, colors, camera, lighting, weights)
    return float(s.grad), float((plus - minus) / (2 * h))


@pytest.fixture(scope="module")
def sphere():
    v, f = icosphere(3, radius=0.6)
    return v, f


def analytic_sphere_coverage(cam: PinholeCamera, centre: torch.Tensor, radius: float, ss: int = 8) -> torch.Tensor:
    """(H, W) fraction of each pixel whose camera rays hit the sphere (ss x ss samples per pixel)."""
    offsets = (torch.arange(ss) + 0.5) / ss - 0.5
    ys = (torch.arange(cam.height)[:, None] + offsets[None, :]).reshape(-1)
    xs = (torch.arange(cam.width)[:, None] + offsets[None, :]).reshape(-1)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    rays = torch.stack([(xx - cam.cx) / cam.fx, (yy - cam.cy) / cam.fy, torch.ones_like(xx)], -1)
    rays = rays / rays.norm(dim=-1, keepdim=True)
    c = cam.world_to_camera(centre[None])[0]
    along = rays @ c
    hit = ((c.square().sum() - along.square()) <= radius**2) & (along > 0)
    return torch.nn.functional.avg_pool2d(hit.float()[None, None], ss)[0, 0]


def test_projected_sphere_area_and_position() -> None:
    v, f = icosphere(4, radius=0.6)
    cam = front_camera(96, 72)
    offset = torch.tensor([0.4, -0.2, 0.0])
    out = RasterRenderer().render(RenderScene(v + offset, f, torch.full((v.shape[0], 3), 0.5), cam, FLAT))
    expected = analytic_sphere_coverage(cam, offset, 0.6)
    assert float(out.alpha.sum()) == pytest.approx(float(expected.sum()), rel=0.01)  # the mesh is slightly inside
    ys, xs = torch.meshgrid(torch.arange(72.0), torch.arange(96.0), indexing="ij")

    def centroid(a: torch.Tensor) -> torch.Tensor:
        return torch.stack([(a * xs).sum(), (a * ys).sum()]) / a.sum()

    assert torch.allclose(centroid(out.alpha), centroid(expected), atol=0.05)  # principal point, half-pixel
    edge = (expected > 0) & (expected < 1)
    # Antialiased edges follow the true coverage (a 1-D model per pixel row/column: about 0.1 on average).
    assert float((out.alpha - expected)[edge].abs().mean()) < 0.15
    assert float(((out.alpha > 0) & (out.alpha < 1)).sum()) > 0.5 * float(edge.sum())
    assert (out.face_index[out.alpha == 0] == -1).all()
    assert torch.allclose(out.image[out.alpha == 0], torch.zeros(3))


def test_renders_are_bitwise_deterministic(sphere) -> None:
    v, f = sphere
    scene = RenderScene(v, f, torch.rand(v.shape[0], 3, generator=torch.Generator().manual_seed(0)), front_camera())
    a, b = RasterRenderer().render(scene), RasterRenderer().render(scene)
    assert torch.equal(a.image, b.image) and torch.equal(a.face_index, b.face_index)


def test_backfaces_are_culled_and_ties_resolve_to_lowest_face() -> None:
    cam = front_camera(32, 32)
    tri = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]])
    towards = torch.tensor([[0, 2, 1]])  # counter-clockwise seen from the camera at -z
    away = torch.tensor([[0, 1, 2]])
    uv, depth = cam.project(tri)
    assert (rasterize(uv, depth, towards, 32, 32) == 0).sum() > 50
    assert (rasterize(uv, depth, away, 32, 32) >= 0).sum() == 0
    assert (rasterize(uv, depth, away, 32, 32, cull_backfaces=False) >= 0).sum() > 50
    both = torch.tensor([[0, 2, 1], [0, 2, 1]])  # coplanar duplicates: the lower index wins everywhere
    index = rasterize(uv, depth, both, 32, 32)
    assert set(index.unique().tolist()) == {-1, 0}


def test_nearer_surface_wins() -> None:
    cam = front_camera(32, 32)
    v, f = icosphere(2, radius=0.3)
    verts = torch.cat([v + torch.tensor([0.0, 0.0, 0.5]), v + torch.tensor([0.1, 0.0, -0.5])])
    faces = torch.cat([f, f + v.shape[0]])
    out = RasterRenderer().render(RenderScene(verts, faces, torch.ones(verts.shape[0], 3), cam, FLAT))
    centre = out.face_index[16, 17]
    assert centre >= f.shape[0]  # the sphere nearer the camera (second one) covers the overlap


def test_face_adjacency_of_closed_mesh() -> None:
    _v, f = icosphere(1)
    adj = face_adjacency(f)
    assert (adj >= 0).all()
    # Symmetric: if g is across edge i of f, then f is across some edge of g.
    for face in range(f.shape[0]):
        for g in adj[face].tolist():
            assert face in adj[g].tolist()


@pytest.mark.parametrize(
    ("name", "direction", "tolerance"),
    [("translate x", (1.0, 0.0, 0.0), 0.03), ("translate y", (0.0, 1.0, 0.0), 0.03), ("scale", None, 0.03)],
)
def test_coverage_gradient_matches_supersampled_finite_differences(sphere, name, direction, tolerance) -> None:
    v, f = sphere
    d = v.clone() if direction is None else torch.tensor(direction).expand_as(v)
    auto, fd = gradient_pair(v, d, f, torch.full((v.shape[0], 3), 0.7), front_camera(), FLAT)
    assert auto == pytest.approx(fd, rel=tolerance), name


def two_spheres() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small, dark sphere in front of a large, bright one: (vertices, faces, colours); the small one is second."""
    v, f = icosphere(3)
    verts = torch.cat([v * 0.5 + torch.tensor([0.3, 0.0, 0.0]), v * 0.3 + torch.tensor([-0.1, 0.1, -0.6])])
    faces = torch.cat([f, f + v.shape[0]])
    colors = torch.cat([torch.full((v.shape[0], 3), 0.9), torch.full((v.shape[0], 3), 0.3)])
    return verts, faces, colors


def shaded_case(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(vertices, faces, colours, direction of motion) of the named shaded test case."""
    if name.startswith("sphere"):
        v, f = icosphere(3, radius=0.6)
        colors = torch.full((v.shape[0], 3), 0.7)
        d = v.clone() if name.endswith("scale") else torch.tensor([1.0, 0.0, 0.0]).expand_as(v)
    elif name.startswith("limb"):  # an elongated ellipsoid: long silhouette slivers
        v, f = icosphere(4)
        v = v * torch.tensor([0.6, 0.12, 0.12])
        colors = torch.full((v.shape[0], 3), 0.7)
        d = torch.tensor([1.0, 0.0, 0.0] if name.endswith("x") else [0.0, 1.0, 0.0]).expand_as(v)
    else:
        v, f, colors = two_spheres()
        half = v.shape[0] // 2
        zeros = torch.zeros(half, 3)
        if name == "occluder y":
            d = torch.cat([zeros, torch.tensor([0.0, 1.0, 0.0]).expand(half, 3)])
        else:
            d = torch.cat([torch.tensor([1.0, 0.0, 0.0]).expand(half, 3), zeros])
    return v, f, colors, d


@pytest.mark.parametrize("name", ["sphere scale", "sphere x", "limb x", "limb y", "occluder y", "occluded x"])
def test_shaded_gradient_matches_supersampled_finite_differences(name) -> None:
    """With the fit's lighting, shading varies up to the silhouettes; 192 px, as in a fit."""
    v, f, colors, d = shaded_case(name)
    auto, fd = gradient_pair(v, d, f, colors, front_camera(192, 144), SHADED)
    assert auto == pytest.approx(fd, rel=0.1), name


def test_occlusion_gradient_matches_supersampled_finite_differences() -> None:
    """Moving either sphere changes the occlusion edge between them (constant colours: pure visibility)."""
    verts, faces, colors = two_spheres()
    half = verts.shape[0] // 2
    zeros = torch.zeros(half, 3)
    cam = front_camera(128, 96)
    for moved in (torch.cat([torch.tensor([1.0, 0, 0]).expand(half, 3), zeros]),  # the occluded sphere
                  torch.cat([zeros, torch.tensor([0, 1.0, 0]).expand(half, 3)])):  # the occluder  # fmt: skip
        auto, fd = gradient_pair(verts, moved, faces, colors, cam, FLAT)
        assert auto == pytest.approx(fd, rel=0.06)


def bent_limb(angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A limb (an ellipsoid 1.2 m x 0.24 m) bent at its middle by ``angle`` radians about the view axis,
    with the bend blended over the joint region like linear blend skinning. Returns vertices, faces."""
    v, f = icosphere(4)
    v = v * torch.tensor([0.6, 0.12, 0.12])
    blend = torch.clamp((v[:, 0] + 0.3) / 0.6, 0.0, 1.0)[:, None]  # 0 on the upper arm, 1 on the forearm
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    rot = torch.stack([torch.stack([c, -s, zero]), torch.stack([s, c, zero]), torch.stack([zero, zero, one])])
    bent = v @ rot.T
    return (1 - blend) * v + blend * bent, f


def test_bend_of_a_limb_matches_supersampled_finite_differences() -> None:
    """d(image loss)/d(bend angle) towards a target bend, against finite differences of supersampled renders.

    The image is strongly curved in the angle (the tip sweeps fastest), so the central differences at h and 2h
    are Richardson-extrapolated to h -> 0; a single difference at h = 0.02 rad is off by 25%.
    """
    cam = front_camera(192, 144)
    colors = torch.full((2562, 3), 0.8)

    def supersampled(angle: float, factor: int = 16) -> torch.Tensor:
        v, f = bent_limb(torch.tensor(angle))
        img = RasterRenderer(antialias=False).render(RenderScene(v, f, colors, cam.scaled(factor), FLAT)).image
        return torch.nn.functional.avg_pool2d(img.permute(2, 0, 1)[None], factor)[0].permute(1, 2, 0)

    with torch.no_grad():
        target = supersampled(0.7)
    angle = torch.tensor(0.3, requires_grad=True)
    v, f = bent_limb(angle)
    image = RasterRenderer().render(RenderScene(v, f, colors, cam, FLAT)).image
    (image - target).square().sum().backward()

    def central(h: float) -> float:
        with torch.no_grad():
            plus = (supersampled(0.3 + h) - target).square().sum()
            minus = (supersampled(0.3 - h) - target).square().sum()
        return float((plus - minus) / (2 * h))

    fd = (4 * central(0.005) - central(0.01)) / 3
    assert fd < -100.0  # bending towards the target lowers the loss
    assert float(angle.grad) == pytest.approx(fd, rel=0.06)


def test_camera_pose_gradient_flows() -> None:
    v, f = icosphere(2, radius=0.5)
    cam = front_camera()
    shift = torch.zeros(3, requires_grad=True)
    moved = cam.with_pose(cam.rotation, cam.translation + shift)
    out = RasterRenderer().render(RenderScene(v, f, torch.ones(v.shape[0], 3), moved, FLAT))
    (out.image * ramp_weights(48, 64)).sum().backward()
    assert shift.grad is not None and shift.grad[0].abs() > 1.0


def test_camera_that_sees_nothing_renders_background() -> None:
    v, f = icosphere(2, radius=0.5)
    cam = PinholeCamera.look_at(torch.tensor([0.0, 0.0, -3.0]), torch.tensor([0.0, 0.0, -6.0]),
                                torch.tensor([0.0, 1.0, 0.0]), 32, 32)  # fmt: skip
    vertices = v.clone().requires_grad_(True)
    out = RasterRenderer().render(
        RenderScene(vertices, f, torch.ones(v.shape[0], 3), cam, background=torch.tensor([0.1, 0.2, 0.3]))
    )
    assert float(out.alpha.sum()) == 0.0
    assert torch.allclose(out.image, torch.tensor([0.1, 0.2, 0.3]).expand(32, 32, 3))
    (out.image.sum() + out.alpha.sum()).backward()  # a fit whose body left the frame stalls, it does not fail
    assert torch.equal(vertices.grad, torch.zeros_like(v))


def test_face_mask_renders_only_the_chosen_faces_with_global_face_ids() -> None:
    v, f = icosphere(2, radius=0.3)
    verts = torch.cat([v + torch.tensor([-0.35, 0.0, 0.0]), v + torch.tensor([0.35, 0.0, 0.0])])
    faces = torch.cat([f, f + v.shape[0]])
    colors = torch.rand(verts.shape[0], 3, generator=torch.Generator().manual_seed(0))
    cam = front_camera(48, 32)
    mask = torch.zeros(faces.shape[0], dtype=torch.bool)
    mask[f.shape[0] :] = True  # the second sphere only
    masked = RasterRenderer().render(RenderScene(verts, faces, colors, cam, FLAT, face_mask=mask))
    alone = RasterRenderer().render(RenderScene(verts, faces[mask], colors, cam, FLAT))
    assert torch.equal(masked.image, alone.image) and torch.equal(masked.alpha, alone.alpha)
    seen = masked.face_index[masked.face_index >= 0]
    assert seen.numel() > 50 and bool((seen >= f.shape[0]).all())  # ids into the whole mesh's faces


@pytest.mark.parametrize("offset", [(0.0, 0.0), (0.9, -0.5), (5.0, 0.0)], ids=["centre", "off-centre", "out-of-view"])
def test_footprint_bounds_everything_the_scene_changes(sphere, offset: tuple[float, float]) -> None:
    """Outside the raster's footprint the image is exactly the background, alpha is 0 and no pixel depends on the
    vertices (a loss may compare only the box, see PyramidL2); inside it the silhouette is."""
    vertices, faces = sphere
    background = torch.tensor([0.2, 0.4, 0.6])
    moved = (vertices + torch.tensor([offset[0], offset[1], 0.0])).requires_grad_(True)
    colors = torch.full_like(vertices, 0.7)
    out = RasterRenderer().render(RenderScene(moved, faces, colors, front_camera(), SHADED, background=background))
    top, bottom, left, right = out.footprint
    outside = torch.ones(out.alpha.shape, dtype=torch.bool)
    outside[top:bottom, left:right] = False
    assert torch.equal(out.image[outside], background.expand(int(outside.sum()), 3))
    assert torch.equal(out.alpha[outside], torch.zeros(int(outside.sum())))
    if offset[0] > 2:  # nothing in view: an empty box
        assert (bottom - top) * (right - left) == 0
        return
    weights = torch.rand(out.image.shape, generator=torch.Generator().manual_seed(3))
    (out.image * weights * outside[..., None]).sum().backward(retain_graph=True)
    assert moved.grad is None or torch.count_nonzero(moved.grad) == 0
    (out.image * weights).sum().backward()
    assert torch.count_nonzero(moved.grad) > 0
    covered = torch.nonzero(out.face_index >= 0)  # the box is the covered pixels' grown by one
    assert (top, left) == (max(int(covered[:, 0].min()) - 1, 0), max(int(covered[:, 1].min()) - 1, 0))
    height, width = out.alpha.shape
    assert (bottom, right) == (min(int(covered[:, 0].max()) + 2, height), min(int(covered[:, 1].max()) + 2, width))
