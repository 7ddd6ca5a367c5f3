"""Differentiable renderers behind one interface: ``render(RenderScene) -> RenderOutput``.

- ``raster``: PoseFit's own deterministic rasteriser with analytic silhouette gradients (default).
- ``mitsuba``: Mitsuba 3, projective integrator (``pip install mitsuba drjit``).
- ``redner``: the paper's renderer (pyredner; no Python 3.11 wheel: build it yourself).
"""

from __future__ import annotations

from posecore.errors import ParameterError
from posecore.render.scene import DirectionalLight, Lighting, RenderOutput, RenderScene

RENDERER_NAMES = ("raster", "mitsuba", "redner")
DEFAULT_RENDERER = "raster"

__all__ = [
    "DEFAULT_RENDERER",
    "RENDERER_NAMES",
    "DirectionalLight",
    "Lighting",
    "RenderOutput",
    "RenderScene",
    "get_renderer",
]


def get_renderer(name: str, **options):
    """A renderer backend by name; optional backends are imported lazily (clear error if missing)."""
    if name == "raster":
        from posecore.render.raster import RasterRenderer

        return RasterRenderer(**options)
    if name == "mitsuba":
        from posecore.render.mitsuba_backend import MitsubaRenderer

        return MitsubaRenderer(**options)
    if name == "redner":
        from posecore.render.redner_backend import RednerRenderer

        return RednerRenderer(**options)
    raise ParameterError(f"unknown renderer {name!r}; choose one of {', '.join(RENDERER_NAMES)}")
