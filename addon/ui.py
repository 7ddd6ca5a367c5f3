"""The sidebar panel: 3D viewport > N panel > PoseFit, the workflow from top to bottom."""

from __future__ import annotations

import bpy

from .properties import preferences
from .scene_io import find_body_objects


class POSEFIT_PT_main(bpy.types.Panel):  # noqa: N801 (Blender naming convention)
    """Body, target image, look, settings, Fit, status."""

    bl_label = "PoseFit"
    bl_idname = "POSEFIT_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "PoseFit"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.posefit
        armature, mesh = find_body_objects(context)

        box = layout.box()
        box.label(text="Body", icon="ARMATURE_DATA")
        box.prop(settings, "model")
        if settings.model == "smplx":
            box.prop(settings, "gender")
            prefs = preferences(context)
            if prefs is not None and not prefs.smplx_folder:
                box.label(text="Set the SMPL-X folder in the preferences", icon="ERROR")
        box.prop(settings, "init_path")
        box.prop(settings, "init_frame")
        if armature is not None and len(settings.shape_values):
            col = box.column(align=True)
            col.label(text="Shape")
            for item in settings.shape_values:
                col.prop(item, "value", text=item.name)
            col.operator("posefit.apply_shape", icon="MOD_ARMATURE")

        box = layout.box()
        box.label(text="Target image", icon="IMAGE_DATA")
        box.prop(settings, "target_path", text="")
        box.prop(settings, "target_offset")
        box.prop(settings, "resolution_from_photo")
        box.prop(settings, "mask_path")
        row = box.row()
        row.enabled = not settings.mask_path
        row.prop(settings, "mask_from_alpha")
        row = box.row()
        row.operator("posefit.import_body", icon="IMPORT")
        row.operator("posefit.detect_pose", icon="VIEWZOOM")

        box = layout.box()
        box.label(text="Look", icon="CAMERA_DATA")
        box.label(text=f"Camera: {context.scene.camera.name if context.scene.camera else 'none'}")
        if mesh is not None:
            box.prop_search(settings, "vertex_group", mesh, "vertex_groups")
        else:
            box.prop(settings, "vertex_group")

        box = layout.box()
        box.label(text="Settings", icon="PREFERENCES")
        box.prop(settings, "preset")
        box.prop(settings, "iterations")
        box.prop(settings, "fit_size")
        box.prop(settings, "hypotheses")
        box.prop(settings, "keyframe")

        # No row.enabled here: each operator's poll greys its button and says why (poll_message_set).
        row = layout.row()
        row.scale_y = 1.5
        row.operator("posefit.fit", icon="PLAY")
        row = layout.row(align=True)
        row.operator("posefit.reset_pose", icon="LOOP_BACK")
        row.operator("posefit.next_alternative", icon="FILE_REFRESH", text="")
        row.operator("posefit.save_fit", icon="EXPORT")
        row.operator("posefit.export_body", icon="ARMATURE_DATA")

        box = layout.box()
        box.label(text="Frame range", icon="SEQUENCE")
        row = box.row(align=True)
        row.prop(context.scene, "frame_start", text="Start")
        row.prop(context.scene, "frame_end", text="End")
        box.prop(settings, "detect_first_frame")
        box.operator("posefit.fit_frames", icon="RENDER_ANIMATION")

        if not (settings.status_fitted or settings.status_message):
            return  # nothing to report before the first import or fit
        box = layout.box()
        box.label(text="Status", icon="INFO")
        col = box.column(align=True)
        if settings.status_fitted:
            col.label(text=f"Frame {settings.status_frame}, iteration {settings.status_iteration}")
            col.label(text=f"Loss {settings.status_loss:.5g}")
            col.label(text=f"Image error {settings.status_error:.2f} %")
        if settings.status_message:
            col.label(text=settings.status_message)


CLASSES = (POSEFIT_PT_main,)
