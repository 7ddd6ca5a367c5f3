"""The three backends render the same scene description alike, and agree on gradients.

The built-in rasteriser always runs; Mitsuba where it imports (with LLVM 19); redner where ``pyredner``
imports (it has no Python 3.11 package: a local build on PYTHONPATH). Images must agree within Monte Carlo
noise and edge antialiasing; gradients of the same loss w.r.t. the same motion within 15%.
"""

from __future__ import annotations

import pytest
import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import BackendUnavailableError
from posecore.render import get_renderer
from posecore.render.primitives import icosphere
from posecore.render.scene import Lighting, RenderScene


def available(name: str, **options):
    try:
        return get_renderer(name, **options)
    except BackendUnavailableError as exc:
        pytest.skip(f"{name} backend unavailable: {exc}")


def scene(vertices: torch.Tensor | None = None) -> RenderScene:
    """Two spheres, one partly hiding the other, lit by a headlight and no ambient, seen from an off-centre
    camera. (A path tracer casts shadows from lights off the viewing axis, which a rasteriser does not; a
    headlight's shadows hide behind the occluders. Ambient light would add Monte Carlo noise to Mitsuba.)"""
    v, f = icosphere(4)
    verts = torch.cat([v * 0.5 + torch.tensor([0.25, 0.0, 0.0]), v * 0.28 + torch.tensor([-0.2, 0.12, -0.6])])
    faces = torch.cat([f, f + v.shape[0]])
    colors = torch.cat([torch.tensor([0.8, 0.6, 0.5]).expand(v.shape[0], 3), torch.full((v.shape[0], 3), 0.4)])
    cam = PinholeCamera.look_at(torch.tensor([0.3, 0.2, -3.0]), torch.tensor([0.0, 0.05, 0.0]),
                                torch.tensor([0.0, 1.0, 0.0]), 96, 80, 38.0)  # fmt: skip
    lights = Lighting(ambient=torch.zeros(3), headlight=True, headlight_intensity=torch.full((3,), 0.9))
    return RenderScene(
        verts if vertices is None else vertices, faces, colors, cam, lights, torch.tensor([0.1, 0.1, 0.2])
    )


@pytest.mark.parametrize("backend", ["mitsuba", "redner"])
def test_images_agree_with_the_rasteriser(backend: str) -> None:
    other = available(backend, spp=64)
    reference = get_renderer("raster").render(scene())
    with torch.no_grad():
        out = other.render(scene())
    assert float(out.alpha.sum()) == pytest.approx(float(reference.alpha.sum()), rel=0.01)
    inside = (reference.alpha == 1) & (out.alpha > 0.999)  # away from edges: shading only
    diff = (out.image - reference.image).abs()[inside]
    assert float(diff.mean()) < 0.02  # redner shades per vertex, Mitsuba samples: both close to per-pixel Lambert
    assert float((out.image - reference.image).abs().mean()) < 0.02
    background = (reference.alpha == 0) & (out.alpha == 0)
    assert torch.allclose(out.image[background], torch.tensor([0.1, 0.1, 0.2]).expand(int(background.sum()), 3))


@pytest.mark.parametrize("backend", ["mitsuba", "redner"])
@pytest.mark.parametrize("motion", ["occluder up", "both grow"])
def test_gradients_agree_with_the_rasteriser(backend: str, motion: str) -> None:
    base = scene().vertices
    half = base.shape[0] // 2
    if motion == "occluder up":  # moves the occlusion edge and the small sphere's outline
        direction = torch.cat([torch.zeros(half, 3), torch.tensor([0.0, 1.0, 0.0]).expand(half, 3)])
    else:
        centres = torch.cat(
            [torch.tensor([0.25, 0.0, 0.0]).expand(half, 3), torch.tensor([-0.2, 0.12, -0.6]).expand(half, 3)]
        )
        direction = base - centres
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 80), torch.linspace(0, 1, 96), indexing="ij")
    weights = torch.stack([xx, yy, 1 - xx * yy], dim=-1)

    def gradient(renderer) -> float:
        s = torch.zeros((), requires_grad=True)
        (renderer.render(scene(base + s * direction)).image * weights).sum().backward()
        return float(s.grad)

    reference = gradient(get_renderer("raster"))
    other = sum(gradient(available(backend, spp=32, seed=k)) for k in range(2)) / 2
    assert other == pytest.approx(reference, rel=0.15), (backend, motion, reference, other)
