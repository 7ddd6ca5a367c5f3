"""The Blender side of PoseFit: properties, preferences, the sidebar panel and the operators.

Everything here uses ``bpy``; all maths lives in ``posecore`` (pure torch). ``posecore`` ships as source next
to this package (in a checkout and in the packaged zip, whose dependencies come as bundled wheels) and is put
first on ``sys.path``, so the extension always uses its own copy, not another ``posecore`` that happens to be
importable.
"""

from __future__ import annotations

import pathlib
import sys

_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _ensure_posecore() -> None:
    """Make ``import posecore`` find the copy shipped with this extension."""
    if (_ROOT / "posecore").is_dir() and str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))


_ensure_posecore()

from . import alternatives, first_use, operators, properties, ui  # noqa: E402

_CLASSES = (
    *properties.CLASSES,
    *operators.CLASSES,
    *alternatives.CLASSES,
    *ui.CLASSES,
)


def register() -> None:
    """Register every class and attach the scene settings (``scene.posefit``)."""
    import bpy

    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.posefit = bpy.props.PointerProperty(type=properties.PoseFitSettings)
    first_use.use_extension_cache_folder(properties.ADDON_PACKAGE)
    bpy.app.handlers.load_pre.append(operators.forget_running_fit)


def unregister() -> None:
    """Undo :func:`register`."""
    import bpy

    first_use.forget_extension_cache_folder()
    if operators.forget_running_fit in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(operators.forget_running_fit)
    del bpy.types.Scene.posefit
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
