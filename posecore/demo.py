"""The built-in demo: fit the free Anny body to a target rendered from a hidden pose.

Nothing is downloaded and nothing licensed is needed. The hidden "true" pose is a judo-like stance (a
forward lean, a raised and bent leg, an arm over the head, a turned head); the initialisation is that
pose with 15-30 degree errors on the limbs and torso, the way a faulty SMPLify-X fit is wrong. The target
is rendered with a key light, a fill light and ambient light the fit does not know about (the fit uses a
headlight and estimates the body colour from the photo), so it never sees its own image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.pinhole import PinholeCamera
from posecore.render.scene import DirectionalLight, Lighting, RenderScene

# Axis-angle rotations (radians, world-aligned axes of Anny: +X = body's left, -Y = front, +Z = up).
JUDO_POSE = {
    "spine04": (0.25, 0.0, 0.0),  # lean forward
    "spine02": (0.15, 0.0, 0.10),
    "upperleg01.L": (-1.2, 0.0, 0.15),  # knee raised forward
    "lowerleg01.L": (1.3, 0.0, 0.0),  # knee bent
    "upperleg01.R": (0.15, 0.0, -0.1),
    "upperarm01.R": (0.0, 2.2, 0.0),  # right arm over the head
    "lowerarm01.R": (0.0, 0.0, 0.5),
    "upperarm01.L": (-0.9, -0.3, 0.0),  # left arm forward
    "lowerarm01.L": (0.0, 0.0, -0.8),
    "head": (0.0, 0.0, 0.35),
}

# Initialisation errors (degrees) of a faulty SMPLify-X-like fit, on torso and limbs.
INIT_ERRORS_DEG = {
    "spine04": (-18.0, 0.0, 10.0),
    "upperleg01.L": (25.0, 0.0, -15.0),
    "lowerleg01.L": (-30.0, 0.0, 0.0),
    "upperleg01.R": (-15.0, 10.0, 15.0),
    "upperarm01.R": (0.0, -20.0, 15.0),
    "lowerarm01.R": (0.0, 0.0, -25.0),
    "upperarm01.L": (-20.0, -20.0, 0.0),
    "lowerarm01.L": (0.0, 0.0, 20.0),
    "head": (10.0, 0.0, -20.0),
}

SKIN = (0.85, 0.62, 0.5)


@dataclass
class DemoCase:
    """A synthetic fitting problem with a known answer."""

    body: BodyModel
    truth: BodyParams
    initial: BodyParams
    camera: PinholeCamera
    target: torch.Tensor  # (H, W, 3) in [0, 1]
    target_lighting: Lighting


def pose_from_table(
    body: BodyModel, table: dict[str, tuple[float, float, float]], degrees: bool = False
) -> torch.Tensor:
    """(J, 3) rotations with the listed joints set (others zero)."""
    rotations = torch.zeros(body.num_joints, 3)
    for name, value in table.items():
        v = torch.tensor(value, dtype=torch.float32)
        rotations[body.joint_index(name)] = torch.deg2rad(v) if degrees else v
    return rotations


def demo_camera(
    size: int = 256, azimuth_deg: float = 25.0, elevation_deg: float = 8.0, distance: float = 2.9
) -> PinholeCamera:
    """A camera orbiting the body (Anny frame: Z up, facing -Y) looking at the hips/chest."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    eye = torch.tensor(
        [distance * math.sin(az) * math.cos(el), -distance * math.cos(az) * math.cos(el), distance * math.sin(el) + 0.0]
    )
    return PinholeCamera.look_at(eye, torch.tensor([0.0, 0.0, -0.05]), torch.tensor([0.0, 0.0, 1.0]), size, size, 42.0)


def target_lighting() -> Lighting:
    """Key + fill + ambient: deliberately not the fit's headlight."""
    return Lighting(
        directional=[
            DirectionalLight(torch.tensor([-0.5, 0.8, -0.4]), torch.tensor([0.75, 0.72, 0.68])),
            DirectionalLight(torch.tensor([0.6, 0.6, 0.2]), torch.tensor([0.25, 0.27, 0.3])),
        ],
        ambient=torch.tensor([0.18, 0.18, 0.2]),
        headlight=False,
    )


def make_demo_case(body: BodyModel, size: int = 256, renderer=None) -> DemoCase:
    """The demo's truth, initialisation, camera and target image (rendered with ``renderer``, default raster)."""
    if renderer is None:
        from posecore.render.raster import RasterRenderer

        renderer = RasterRenderer()
    truth = body.default_params()
    truth.rotations = pose_from_table(body, JUDO_POSE)
    initial = truth.clone()
    initial.rotations = truth.rotations + pose_from_table(body, INIT_ERRORS_DEG, degrees=True)
    camera = demo_camera(size)
    lighting = target_lighting()
    with torch.no_grad():
        vertices = body(truth).vertices
        colors = torch.tensor(SKIN).expand(body.num_vertices, 3)
        out = renderer.render(RenderScene(vertices, body.faces, colors, camera, lighting, torch.zeros(3)))
    return DemoCase(body, truth, initial, camera, out.image.clamp(0, 1), lighting)
