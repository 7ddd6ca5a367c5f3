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


def fcurves(owner: bpy.types.ID) -> list:
    """The F-curves of ``owner``'s action, on every Blender the extension supports: 4.4+ keeps them in the
    action slot's channel bag (5.0 removed ``Action.fcurves``), 4.2 and 4.3 in ``Action.fcurves``."""
    animation = owner.animation_data
    from bpy_extras import anim_utils

    if hasattr(anim_utils, "action_get_channelbag_for_slot"):
        bag = anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot)
        return list(bag.fcurves) if bag is not None else []
    return list(animation.action.fcurves)
