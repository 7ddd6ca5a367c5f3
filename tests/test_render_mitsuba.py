"""Tests of the Mitsuba 3 backend (posecore/render/mitsuba_backend.py): geometry, shading, gradients, errors.

Skipped as a whole where mitsuba/drjit do not import or no LLVM 19 library is found. Small scenes only
(48x48 or 64x64, a few hundred triangles) so each test takes seconds on a 2-core CPU.
"""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import BackendUnavailableError, ParameterError
from posecore.render import mitsuba_backend as mb
from posecore.render.primitives import icosphere
from posecore.render.scene import DirectionalLight, Lighting, RenderScene

try:
    mb.import_mitsuba()
except BackendUnavailableError as _exc:
    pytest.skip(f"Mitsuba backend unavailable: {_exc}", allow_module_level=True)
_llvm = os.environ.get("DRJIT_LIBLLVM_PATH")
if _llvm is None or not os.path.exists(_llvm):
    pytest.skip(
        f"no LLVM 19 library for Dr.Jit (DRJIT_LIBLLVM_PATH={_llvm!r}): {mb.INSTALL_HINT}",
        allow_module_level=True,
    )

pytestmark = pytest.mark.mitsuba


# ---------------------------------------------------------------------------- helpers
def quad(half: float, z: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A square facing an identity-pose camera (normal -Z), side 2 * half, at depth z."""
    v = torch.tensor([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
    return v, torch.tensor([[0, 3, 2], [0, 2, 1]])


def pixel_grid(w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")  # fmt: skip
    return xs, ys


def sphere_coverage(cam: PinholeCamera, center_cam: torch.Tensor, radius: float, ss: int = 16) -> torch.Tensor:
    """(H, W) exact box-filtered coverage of a true sphere (camera frame), by ss x ss supersampling."""
    xs, ys = pixel_grid(cam.width, cam.height)
    o = (torch.arange(ss, dtype=torch.float32) + 0.5) / ss - 0.5
    u = xs[..., None, None] + o[None, None, None, :]
    v = ys[..., None, None] + o[None, None, :, None]
    u, v = torch.broadcast_tensors(u, v)
    d = torch.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, torch.ones_like(u)], -1)
    d = d / d.norm(dim=-1, keepdim=True)
    b = (d * center_cam).sum(-1)
    hit = b**2 - (center_cam.norm() ** 2 - radius**2) > 0
    return hit.float().mean((-1, -2))


def identity_camera(w: int = 48, h: int = 48, f: float = 60.0, cx: float = 30.0, cy: float = 28.0):
    """An identity-pose camera with an off-centre principal point."""
    return PinholeCamera(f, f, cx, cy, w, h, torch.eye(3), torch.zeros(3))


# ---------------------------------------------------------------------------- 1. geometry
def test_sphere_coverage_and_centroid_match_projection() -> None:
    """Alpha of an off-centre sphere seen by a rotated camera with an off-centre principal point."""
    w = h = 64
    look = PinholeCamera.look_at(
        torch.tensor([1.0, -0.5, -2.5]), torch.tensor([0.0, 0.0, 0.5]), torch.tensor([0.0, -1.0, 0.0]), w, h
    )
    cam = PinholeCamera(70.0, 70.0, 27.3, 35.6, w, h, look.rotation, look.translation)
    center, radius = torch.tensor([0.25, 0.2, 0.6]), 0.45
    v, f = icosphere(3)
    scene = RenderScene(v * radius + center, f, torch.full_like(v, 0.7), cam)
    out = mb.MitsubaRenderer(spp=16).render(scene)
    assert out.image.shape == (h, w, 3) and out.alpha.shape == (h, w)
    assert out.image.dtype == torch.float32 and out.alpha.dtype == torch.float32
    assert out.face_index is None

    expected = sphere_coverage(cam, cam.world_to_camera(center[None])[0], radius)
    a = out.alpha
    xs, ys = pixel_grid(w, h)
    # The icosphere is inscribed in the sphere: its area is ~0.5% smaller.
    assert a.sum().item() == pytest.approx(expected.sum().item(), rel=0.02)
    for grid in (xs, ys):
        got = (a * grid).sum() / a.sum()
        want = (expected * grid).sum() / expected.sum()
        assert abs(got.item() - want.item()) < 0.1  # pixels: intrinsics, principal point, half pixel
    # and the centroid is near the projected centre (a projected sphere's centroid lies slightly outward)
    uv, _ = cam.project(center[None])
    assert abs(((a * xs).sum() / a.sum()).item() - uv[0, 0].item()) < 1.0
    assert abs(((a * ys).sum() / a.sum()).item() - uv[0, 1].item()) < 1.0
    assert (a - expected).abs().sum().item() < 0.05 * expected.sum().item()


# ---------------------------------------------------------------------------- 2. shading
@pytest.mark.parametrize("smooth", [True, False])
def test_flat_quad_colour_is_albedo_times_intensity(smooth: bool) -> None:
    cam = identity_camera(32, 32, 40.0, 15.5, 15.5)
    v, f = quad(1.0, 3.0)  # covers pixels ~2..29
    albedo = torch.tensor([0.2, 0.5, 0.8])
    intensity = torch.tensor([1.5, 0.8, 0.5])
    bg = torch.tensor([0.3, 0.1, 0.05])
    lighting = Lighting(headlight_intensity=intensity)
    scene = RenderScene(v, f, albedo.expand(4, 3).clone(), cam, lighting=lighting, background=bg)
    out = mb.MitsubaRenderer(spp=4, smooth_normals=smooth).render(scene)
    inner = out.image[6:26, 6:26].reshape(-1, 3)
    assert torch.allclose(inner, (albedo * intensity).expand_as(inner), atol=1e-4)
    assert torch.all(out.alpha[6:26, 6:26] == 1.0)
    border = torch.cat([out.image[0], out.image[-1], out.image[:, 0], out.image[:, -1]])
    assert torch.allclose(border, bg.expand_as(border), atol=1e-6)
    assert torch.all(out.alpha[0] == 0.0) and torch.all(out.alpha[:, -1] == 0.0)


def test_ambient_and_oblique_light_shading() -> None:
    """A tilted light gives albedo * I * cos; an unoccluded plane gets albedo * ambient (no noise)."""
    cam = identity_camera(32, 32, 40.0, 15.5, 15.5)
    v, f = quad(1.0, 3.0)
    albedo = torch.tensor([0.6, 0.4, 0.9])
    angle = 0.5
    light = DirectionalLight(torch.tensor([math.sin(angle), 0.0, math.cos(angle)]), torch.ones(3))
    ambient = torch.tensor([0.1, 0.2, 0.05])
    lighting = Lighting(directional=[light], ambient=ambient, headlight=False)
    scene = RenderScene(v, f, albedo.expand(4, 3).clone(), cam, lighting=lighting)
    out = mb.MitsubaRenderer(spp=4).render(scene)
    inner = out.image[6:26, 6:26].reshape(-1, 3)
    want = albedo * (math.cos(angle) + ambient)
    assert torch.allclose(inner.mean(0), want, rtol=0.01)
    assert torch.allclose(inner, want.expand_as(inner), atol=0.02)


def test_seeds_are_deterministic_and_vary_per_call() -> None:
    v, f = icosphere(1)
    verts = v * 0.5 + torch.tensor([0.0, 0.0, 3.0])
    scene = RenderScene(verts, f, torch.full_like(v, 0.5), identity_camera())
    a1, a2 = mb.MitsubaRenderer(spp=1, seed=3), mb.MitsubaRenderer(spp=1, seed=3)
    first = a1.render(scene).image
    assert torch.equal(first, a2.render(scene).image)
    assert not torch.equal(first, a1.render(scene).image)  # next call, next seed
    fixed = mb.MitsubaRenderer(spp=1, seed=3, vary_seed=False)
    assert torch.equal(fixed.render(scene).image, fixed.render(scene).image)


# ---------------------------------------------------------------------------- 3. gradients
def _loss(renderer: mb.MitsubaRenderer, scene: RenderScene, weights: torch.Tensor) -> torch.Tensor:
    return (weights * renderer.render(scene).image).sum()


def _ad_mean(make_scene, param: torch.Tensor, weights: torch.Tensor, calls: int, spp: int) -> torch.Tensor:
    """Autodiff gradient of the weighted image sum, averaged over ``calls`` renders (seeds vary)."""
    renderer = mb.MitsubaRenderer(spp=spp, seed=11)
    grads = []
    for _ in range(calls):
        param.grad = None
        _loss(renderer, make_scene(param), weights).backward()
        grads.append(param.grad.clone())
    return torch.stack(grads).mean(0)


def _fd(make_scene, param: torch.Tensor, weights: torch.Tensor, h: float, index: int) -> float:
    """Central difference along element ``index`` of ``param``: 1024 spp, the same samples on both sides."""
    renderer = mb.MitsubaRenderer(spp=1024, seed=5, vary_seed=False)
    step = torch.zeros_like(param)
    step.view(-1)[index] = h
    with torch.no_grad():
        plus = _loss(renderer, make_scene(param.detach() + step), weights).item()
        minus = _loss(renderer, make_scene(param.detach() - step), weights).item()
    return (plus - minus) / (2 * h)


SPHERE_V, SPHERE_F = icosphere(2)
CENTER = torch.tensor([0.2, -0.1, 3.0])


def tilted_grid(n: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A (n x n)-vertex square patch, side 1.4 m, turned 0.3/0.4 rad about x/y, centred at CENTER.

    Returns vertices (V, 3), faces (F, 3) (facing an identity-pose camera) and random colours (V, 3).
    """
    t = torch.linspace(-0.7, 0.7, n)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    v = torch.stack([xx.reshape(-1), yy.reshape(-1), torch.zeros(n * n)], 1)
    faces = []
    for j in range(n - 1):
        for i in range(n - 1):
            a = j * n + i
            faces += [[a, a + n, a + n + 1], [a, a + n + 1, a + 1]]
    cx, sx, cy, sy = math.cos(0.3), math.sin(0.3), math.cos(0.4), math.sin(0.4)
    rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    ry = torch.tensor([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    colors = torch.rand(n * n, 3, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.3
    return v @ (ry @ rx).T + CENTER, torch.tensor(faces), colors


def _weights(w: int, h: int) -> torch.Tensor:
    xs, ys = pixel_grid(w, h)
    return (xs / w + 0.5 * ys / h)[..., None].expand(h, w, 3)


@pytest.mark.parametrize("kind", ["translate_x", "scale"])
def test_vertex_gradients_match_finite_differences(kind: str) -> None:
    """A tilted, vertex-coloured patch over a nonzero background: interior shading and silhouettes."""
    cam = identity_camera()
    base, faces, colors = tilted_grid()
    direction = torch.tensor([1.0, 0.0, 0.0]).expand_as(base) if kind == "translate_x" else base - CENTER
    bg = torch.tensor([0.5, 0.4, 0.3])

    def make_scene(s: torch.Tensor) -> RenderScene:
        return RenderScene(base + s * direction, faces, colors, cam, background=bg)

    weights = _weights(cam.width, cam.height)
    s = torch.zeros((), requires_grad=True)
    ad = _ad_mean(make_scene, s, weights, calls=3, spp=16).item()
    fd = _fd(make_scene, s, weights, 0.02, 0)
    assert abs(fd) > 10.0
    assert ad == pytest.approx(fd, rel=0.1)


def test_sphere_scale_gradient_matches_finite_differences() -> None:
    """Silhouettes of a smooth-shaded sphere (grazing hits make this the noisiest case)."""
    cam = identity_camera()
    base = SPHERE_V * 0.6 + CENTER
    colors = torch.full_like(base, 0.6)
    bg = torch.tensor([0.3, 0.3, 0.3])

    def make_scene(s: torch.Tensor) -> RenderScene:
        return RenderScene(base + s * (base - CENTER), SPHERE_F, colors, cam, background=bg)

    weights = _weights(cam.width, cam.height)
    s = torch.zeros((), requires_grad=True)
    ad = _ad_mean(make_scene, s, weights, calls=3, spp=32).item()
    fd = _fd(make_scene, s, weights, 0.02, 0)
    assert abs(fd) > 10.0
    assert ad == pytest.approx(fd, rel=0.12)


def test_camera_translation_gradient_matches_finite_differences() -> None:
    base_cam = identity_camera()
    verts, faces, colors = tilted_grid()
    bg = torch.tensor([0.2, 0.2, 0.2])

    def make_scene(t: torch.Tensor) -> RenderScene:
        return RenderScene(verts, faces, colors, base_cam.with_pose(torch.eye(3), t), background=bg)

    weights = _weights(base_cam.width, base_cam.height)
    t = torch.zeros(3, requires_grad=True)
    ad = _ad_mean(make_scene, t, weights, calls=3, spp=16)
    for axis in (0, 2):
        fd = _fd(make_scene, t, weights, 0.02, axis)
        assert abs(fd) > 10.0
        assert ad[axis].item() == pytest.approx(fd, rel=0.1)


def test_shading_gradient_through_normals_is_exact() -> None:
    """Tilting a quad under the headlight: d/dθ of sum over its inside of a * I * cos θ."""
    cam = identity_camera(32, 32, 40.0, 15.5, 15.5)
    v, f = quad(1.0, 0.0)
    weights = torch.zeros(32, 32, 3)
    weights[12:20, 12:20] = 1.0
    for smooth in (True, False):
        theta = torch.tensor(0.4, requires_grad=True)
        c, s = torch.cos(theta), torch.sin(theta)
        zero, one = torch.zeros(()), torch.ones(())
        rows = (torch.stack([c, zero, s]), torch.stack([zero, one, zero]), torch.stack([-s, zero, c]))
        rot = torch.stack(rows)
        verts = v @ rot.T + torch.tensor([0.0, 0.0, 3.0])
        renderer = mb.MitsubaRenderer(spp=4, smooth_normals=smooth)
        loss = _loss(renderer, RenderScene(verts, f, torch.full_like(v, 0.5), cam), weights)
        loss.backward()
        assert loss.item() == pytest.approx(64 * 3 * 0.5 * math.cos(0.4), rel=1e-4)
        assert theta.grad.item() == pytest.approx(-64 * 3 * 0.5 * math.sin(0.4), rel=1e-3)


def test_colour_gradient_and_backward_after_other_renders() -> None:
    """The image is linear in the albedo; a backward pass still sees its own scene after later renders."""
    cam = identity_camera()
    base = SPHERE_V * 0.6 + CENTER
    colors = torch.full_like(base, 0.5, requires_grad=True)
    bg = torch.tensor([0.1, 0.2, 0.3])
    renderer = mb.MitsubaRenderer(spp=8, seed=2)
    verts = base.clone().requires_grad_()
    out = renderer.render(RenderScene(verts, SPHERE_F, colors, cam, background=bg))
    # another render with the same cached scene before the first backward
    renderer.render(RenderScene(base + 0.3, SPHERE_F, colors.detach() * 0.1, cam, background=bg * 2))
    out.image.sum().backward()
    mesh_part = (out.image - (1 - out.alpha)[..., None] * bg).sum().item()
    # (the backward pass draws its own samples: edge pixels differ by Monte Carlo noise)
    assert (colors.grad * colors.detach()).sum().item() == pytest.approx(mesh_part, rel=0.02)
    # and the vertex gradient equals that of a render that was not followed by another one
    fresh = mb.MitsubaRenderer(spp=8, seed=2)
    verts2 = base.clone().requires_grad_()
    fresh.render(RenderScene(verts2, SPHERE_F, colors.detach(), cam, background=bg)).image.sum().backward()
    assert torch.allclose(verts.grad, verts2.grad, rtol=1e-4, atol=1e-4)
    assert verts.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- 4. bad input
def test_camera_that_sees_nothing_gives_background() -> None:
    v, f = icosphere(1)
    bg = torch.tensor([0.25, 0.5, 0.75])
    verts = (v * 0.5 + torch.tensor([0.0, 0.0, -3.0])).requires_grad_()  # behind the camera
    out = mb.MitsubaRenderer(spp=2).render(RenderScene(verts, f, torch.full_like(v, 0.5), identity_camera(),
                                                       background=bg))  # fmt: skip
    assert torch.all(out.alpha == 0.0)
    assert torch.allclose(out.image, bg.expand_as(out.image))
    out.image.sum().backward()
    assert torch.isfinite(verts.grad).all()

    # no visible faces at all
    mask = torch.zeros(len(f), dtype=torch.bool)
    verts = (v * 0.5 + torch.tensor([0.0, 0.0, 3.0])).requires_grad_()
    scene = RenderScene(verts, f, torch.full_like(v, 0.5), identity_camera(), background=bg, face_mask=mask)
    out = mb.MitsubaRenderer(spp=2).render(scene)
    assert torch.all(out.alpha == 0.0) and torch.allclose(out.image, bg.expand_as(out.image))
    out.image.sum().backward()


def test_face_mask_hides_faces() -> None:
    v, f = quad(1.0, 3.0)
    cam = identity_camera(32, 32, 40.0, 15.5, 15.5)
    renderer = mb.MitsubaRenderer(spp=4)
    full = renderer.render(RenderScene(v, f, torch.full_like(v, 0.5), cam)).alpha.sum()
    half = renderer.render(
        RenderScene(v, f, torch.full_like(v, 0.5), cam, face_mask=torch.tensor([True, False]))
    ).alpha.sum()
    assert half.item() == pytest.approx(full.item() / 2, rel=0.02)


def test_bad_parameters_raise() -> None:
    v, f = quad(1.0, 3.0)
    cam = PinholeCamera(40.0, 44.0, 15.5, 15.5, 32, 32, torch.eye(3), torch.zeros(3))
    renderer = mb.MitsubaRenderer(spp=1)
    with pytest.raises(ParameterError, match="fx must equal fy"):
        renderer.render(RenderScene(v, f, torch.full_like(v, 0.5), cam))
    cam = identity_camera(32, 32)
    with pytest.raises(ParameterError, match="NaN"):
        renderer.render(RenderScene(v * float("nan"), f, torch.full_like(v, 0.5), cam))
    with pytest.raises(ParameterError, match="out of range"):
        renderer.render(RenderScene(v, f + 2, torch.full_like(v, 0.5), cam))
    with pytest.raises(ParameterError, match="spp"):
        mb.MitsubaRenderer(spp=0)


def test_missing_mitsuba_raises_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mitsuba", None)  # makes `import mitsuba` fail
    with pytest.raises(BackendUnavailableError) as info:
        mb.MitsubaRenderer()
    message = str(info.value)
    assert "pip install mitsuba==3.9.1 drjit==1.5.0" in message
    assert "LLVM 19" in message and "libllvm19" in message
