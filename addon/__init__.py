"""The Blender side of PoseFit: properties, preferences, the sidebar panel and the operators.

Everything here uses ``bpy``; all maths lives in ``posecore`` (pure torch). When the extension runs from a
source checkout, ``posecore`` sits next to this package and is put on ``sys.path`` if it is not importable yet.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _ensure_posecore() -> None:
    """Make ``import posecore`` work from a checkout (the packaged extension ships it as a wheel)."""
    if importlib.util.find_spec("posecore") is None and (_ROOT / "posecore").is_dir():
        sys.path.append(str(_ROOT))


_ensure_posecore()

from . import operators, properties, ui  # noqa: E402

_CLASSES = (
    *properties.CLASSES,
    *operators.CLASSES,
    *ui.CLASSES,
)


def register() -> None:
    """Register every class and attach the scene settings (``scene.posefit``)."""
    import bpy

    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.posefit = bpy.props.PointerProperty(type=properties.PoseFitSettings)


def unregister() -> None:
    """Undo :func:`register`."""
    import bpy

    del bpy.types.Scene.posefit
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
