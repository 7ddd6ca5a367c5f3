"""Next Alternative: cycle the body through the poses the last fit's hypothesis search kept.

After a fit with *Try Alternatives* the armature remembers the fitted pose and the other candidates the search
brief-fitted (:mod:`posecore.fitting.hypotheses`), best objective first, as a custom property. Each press of Next
Alternative puts the next one on the bones (keyed when *Keyframe* is on) and is one undo step, so an animator who
sees that the photo was read the wrong way round picks another reading in one click.
"""

from __future__ import annotations

import json

import bpy
import torch

from posecore.errors import ParameterError

from . import scene_io

ALTERNATIVES_KEY = "posefit_alternatives"
INDEX_KEY = "posefit_alternative_index"


def remember(arm_obj: bpy.types.Object, search, final_state) -> None:
    """Store the fit's result and its search's other brief-fitted candidates on the armature (or forget them when
    the fit ran no search)."""
    if search is None:
        for key in (ALTERNATIVES_KEY, INDEX_KEY):
            if key in arm_obj:
                del arm_obj[key]
        return
    entries = [{"name": f"fit (from {search.chosen.name})", "objective": final_state.loss,
                "rotations": final_state.params.rotations.tolist(),
                "translation": final_state.params.translation.tolist()}]  # fmt: skip
    for report in search.alternatives_ranked():
        if report.chosen:
            continue
        entries.append({"name": report.name, "objective": report.objective,
                        "rotations": report.params.rotations.tolist(),
                        "translation": report.params.translation.tolist()})  # fmt: skip
    arm_obj[ALTERNATIVES_KEY] = json.dumps(entries)
    arm_obj[INDEX_KEY] = 0


def stored(arm_obj: bpy.types.Object | None) -> list[dict]:
    """The alternatives stored on ``arm_obj`` (empty when none)."""
    if arm_obj is None or ALTERNATIVES_KEY not in arm_obj:
        return []
    try:
        return list(json.loads(str(arm_obj[ALTERNATIVES_KEY])))
    except ValueError:
        return []


class POSEFIT_OT_next_alternative(bpy.types.Operator):  # noqa: N801 (Blender naming convention)
    """Show the next pose the last fit's hypothesis search kept (the fitted pose comes first)"""

    bl_idname = "posefit.next_alternative"
    bl_label = "Next Alternative"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        arm_obj, _mesh = scene_io.find_body_objects(context)
        if len(stored(arm_obj)) < 2:
            cls.poll_message_set("No alternatives: fit whole-body with 'Try Alternatives' on and a person in the photo")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        arm_obj, mesh_obj = scene_io.find_body_objects(context)
        entries = stored(arm_obj)
        if len(entries) < 2:
            self.report({"ERROR"}, "no alternatives stored: run a whole-body fit with 'Try Alternatives'")
            return {"CANCELLED"}
        index = (int(arm_obj.get(INDEX_KEY, 0)) + 1) % len(entries)
        entry = entries[index]
        spec = str(arm_obj[scene_io.MODEL_KEY])
        try:
            body = scene_io.get_body(spec, "cpu")
            shape = torch.tensor(list(arm_obj[scene_io.SHAPE_KEY]), dtype=torch.float32)
            rig = scene_io.get_rig(spec, body, shape)
            rotations = torch.tensor(entry["rotations"], dtype=torch.float32)
            translation = torch.tensor(entry["translation"], dtype=torch.float32)
            if rotations.shape != (body.num_joints, 3):
                raise ParameterError(
                    f"stored alternative has {tuple(rotations.shape)} rotations, body {body.num_joints}"
                )
        except (ParameterError, KeyError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        scene_io.write_pose(arm_obj, rig, rotations, translation)
        if mesh_obj is not None:
            from posecore.bodies.base import BodyParams

            scene_io.update_correctives(mesh_obj, rig, body, BodyParams(rotations, translation, shape))
        arm_obj[INDEX_KEY] = index
        settings = context.scene.posefit
        if settings.keyframe:
            frame = context.scene.frame_current
            for name in body.joint_names:
                arm_obj.pose.bones[name].keyframe_insert("rotation_quaternion", frame=frame, group=name)
        settings.status_message = (
            f"Alternative {index + 1}/{len(entries)}: {entry['name']} (objective {entry['objective']:.4g})"
        )
        self.report({"INFO"}, settings.status_message)
        return {"FINISHED"}


CLASSES = (POSEFIT_OT_next_alternative,)
