"""PoseFit as a Blender extension (Blender 4.2+): the entry points Blender calls.

Everything Blender-specific lives in :mod:`addon`; the fitting itself in ``posecore`` (pure torch). This file
imports nothing at module level, so tools that walk the repository (pytest, setuptools) are unaffected.
"""


def register() -> None:
    """Register the add-on's classes (called by Blender when the extension is enabled)."""
    from .addon import register as _register

    _register()


def unregister() -> None:
    """Unregister the add-on's classes (called by Blender when the extension is disabled)."""
    from .addon import unregister as _unregister

    _unregister()
