"""A rendered moving sequence with known truth: the demo's judo stance, arms and the raised leg swinging.

Used by the batch tests, the batch throughput benchmark and the temporal smoothing measurement. Frame ``t``'s
true pose is the demo's pose plus smooth sinusoidal joint motion; the initialisation is the demo's faulty
one (15-30 degree errors) at frame 0, as a single-pose ``--init``. Frames are drawn by PoseFit's rasteriser with
the demo's lights, or by a target renderer handed in (Blender Cycles: ``scripts/make_moving_clip.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posecore.bodies.base import BodyModel, BodyParams
from posecore.demo import SKIN, make_demo_case, target_lighting

# joint -> (axis, amplitude in radians, phase): the motion added to the demo pose over one period.
MOTION = {
    "upperarm01.L": (0, 0.45, 0.0),
    "lowerarm01.L": (2, 0.35, 0.8),
    "upperarm01.R": (1, 0.30, 1.6),
    "upperleg01.L": (0, 0.25, 0.4),
    "spine04": (0, 0.10, 2.0),
}


@dataclass
class MovingSequence:
    """Frames of a moving body: ``truth[t]`` parameters, ``images[t]`` (H, W, 3) in [0, 1], the camera,
    and ``initial``: the faulty initialisation of frame 0."""

    truth: list[BodyParams]
    images: list[torch.Tensor]
    camera: object
    initial: BodyParams

    def save(self, folder: str | Path, name: str = "frame_{:03d}.png") -> list[Path]:
        """Write the frames as PNG files; returns their paths."""
        from posecore.io.images import save_image

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for t, image in enumerate(self.images):
            paths.append(folder / name.format(t))
            save_image(paths[-1], image)
        return paths

    def save_init(self, path: str | Path, body: BodyModel) -> Path:
        """Write the frame-0 initialisation (with the camera) as a PoseFit ``fit.npz``-format file."""
        from posecore.results import fit_arrays

        np.savez(path, **fit_arrays(body, self.initial, self.camera, torch.zeros(3)))
        return Path(path)

    def save_truth(self, path: str | Path, body: BodyModel) -> Path:
        """Write every frame's true parameters as one multi-frame PoseFit file (``read_init_sequence`` reads it)."""
        from posecore.results import fit_arrays

        frames = [fit_arrays(body, p, self.camera, torch.zeros(3)) for p in self.truth]
        arrays = dict(frames[0])
        for key in ("rotations", "translation", "shape"):
            arrays[key] = np.stack([f[key] for f in frames])
        np.savez(path, **arrays)
        return Path(path)


def make_moving_sequence(
    body: BodyModel, frames: int = 8, size: int = 64, period: float = 24.0, render=None, samples: int = 24
) -> MovingSequence:
    """Render ``frames`` frames of the moving demo body at ``size`` px.

    Args:
        period: frames per full swing of the motion.
        render: a :data:`posecore.bench.scenes.TargetRenderer` (Blender Cycles), or None for PoseFit's rasteriser
            with the demo's key/fill/ambient lights. samples: its paths per pixel.
    """
    from posecore.render.raster import RasterRenderer
    from posecore.render.scene import RenderScene

    case = make_demo_case(body, size=size)
    renderer = RasterRenderer()
    colors = torch.tensor(SKIN).expand(body.num_vertices, 3)
    truths, images = [], []
    for t in range(frames):
        params = case.truth.clone()
        for joint, (axis, amplitude, phase) in MOTION.items():
            params.rotations[body.joint_index(joint), axis] += amplitude * math.sin(2 * math.pi * t / period + phase)
        with torch.no_grad():
            vertices = body(params).vertices
            if render is None:
                scene = RenderScene(vertices, body.faces, colors, case.camera, target_lighting(), torch.zeros(3))
                image = renderer.render(scene).image.clamp(0, 1)
            else:
                image = _render_external(render, body, vertices, case.camera, samples, seed=t)
        truths.append(params)
        images.append(image)
    initial = case.initial.clone()
    initial.rotations = case.initial.rotations - case.truth.rotations + truths[0].rotations
    return MovingSequence(truths, images, case.camera, initial)


def _render_external(render, body: BodyModel, vertices: torch.Tensor, camera, samples: int, seed: int) -> torch.Tensor:
    """(H, W, 3) one frame drawn by a target renderer in Blender's world, composited over black."""
    from posecore import rig as rigmath
    from posecore.bench.scenes import CyclesLook

    to_blender = rigmath.model_to_blender_matrix(body.up_axis)
    vertices_world = vertices @ to_blender[:3, :3].T + to_blender[:3, 3]
    camera_world = rigmath.camera_to_frame(camera, torch.linalg.inv(to_blender))
    rgba = render(vertices_world.numpy(), body.faces.numpy(), camera_world, CyclesLook(color=(0.7, 0.45, 0.35)),
                  samples, 1, seed)  # fmt: skip
    return torch.from_numpy(np.ascontiguousarray(rgba[..., :3] * rgba[..., 3:])).float().clamp(0, 1)
