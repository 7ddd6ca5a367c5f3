"""Helpers shared by the Blender tests (imported only after ``bpy`` imported)."""

from __future__ import annotations

import bpy


def raise_error(exc: BaseException) -> None:
    """``addon_utils.enable(handle_error=...)`` callback: fail loudly instead of printing."""
    raise exc


def clear_scene() -> None:
    """Remove every object, mesh, armature, camera, image and action; go to frame 1."""
    for collection in (bpy.data.objects, bpy.data.meshes, bpy.data.armatures, bpy.data.cameras, bpy.data.images):
        for item in list(collection):
            collection.remove(item)
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    bpy.context.scene.frame_set(1)
