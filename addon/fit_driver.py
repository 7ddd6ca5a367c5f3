"""One fit of the scene's PoseFit body, stepped by its caller: the modal operator (timer events), ``execute()``,
the frame-range driver (:mod:`.frames`) and the headless batch all use :class:`FitDriver`."""

from __future__ import annotations

import os

import bpy
import torch

from posecore.errors import ParameterError
from posecore.fitting.look import Look
from posecore.fitting.loop import FitProblem, FitState, PoseFitter
from posecore.fitting.presets import get_preset
from posecore.metrics import image_error_percent
from posecore.render import get_renderer

from . import alternatives, scene_io, targets
from .properties import chosen_renderer, preferences

VPOSER_ENV = "POSEFIT_VPOSER"
"""Environment variable naming a VPoser folder for scripts that run without the add-on's preferences
(``addon/batch.py --vposer DIR`` sets it)."""

_vposer_cache: dict[str, object] = {}


def vposer_folder(context: bpy.types.Context) -> str:
    """The absolute 'VPoser folder' preference (or ``$POSEFIT_VPOSER``); '' if unset."""
    prefs = preferences(context)
    folder = (prefs.vposer_folder if prefs is not None else "") or os.environ.get(VPOSER_ENV, "")
    return bpy.path.abspath(folder) if folder else ""


def vposer_for(context: bpy.types.Context):
    """The VPoser decoder of :func:`vposer_folder`, loaded once; None if unset."""
    from posecore.io.vposer_files import load_vposer

    path = vposer_folder(context)
    if not path:
        return None
    if path not in _vposer_cache:
        _vposer_cache[path] = load_vposer(path)
    return _vposer_cache[path]


def torch_setup(context: bpy.types.Context) -> str:
    """Apply the preferences' thread count; return the torch device."""
    prefs = preferences(context)
    if prefs is not None and prefs.threads > 0:
        torch.set_num_threads(prefs.threads)
    return prefs.device if prefs is not None else "cpu"


def load_person_mask(
    settings: bpy.types.PropertyGroup, source: targets.TargetSource, frame: int, size: tuple[int, int]
) -> torch.Tensor | None:
    """The person mask for ``frame`` at ``size`` = (width, height): (H, W) in [0, 1], or None without one.

    From the panel's "Person mask" (one image, or a sequence/folder numbered like the target), else with
    "Mask from alpha" from the target image's alpha channel.

    Raises:
        InputFileError: a missing or unreadable mask, or a target without alpha (movies have none).
    """
    from posecore.errors import InputFileError
    from posecore.io.images import load_mask

    if settings.mask_path:
        masks = targets.target_source(bpy.path.abspath(settings.mask_path), settings.target_offset)
        if masks.kind == "movie":
            raise InputFileError(masks.path, "Person mask: a movie cannot be a mask; use images (mask_####.png)")
        return load_mask(masks.frame_file(frame), size=size)
    if settings.mask_from_alpha:
        if source.kind == "movie":
            raise InputFileError(source.path, "Mask from alpha: a movie has no alpha channel; set a Person mask")
        return load_mask(source.frame_file(frame), size=size, from_alpha=True)
    return None


def check_target_shape(source: targets.TargetSource, scene: bpy.types.Scene) -> None:
    """Refuse a target whose shape (aspect ratio) differs from the render resolution's: the fit would stretch it.

    Raises:
        ParameterError: naming both sizes and the settings that fix it.
    """
    from posecore.io.images import same_aspect

    image = source.size(scene.frame_current)
    render = scene_io.render_size(scene)
    if not same_aspect(image, render):
        raise ParameterError(
            f"the target image is {image[0]}x{image[1]} pixels but the render resolution is {render[0]}x{render[1]}: "
            "the photo would be stretched. Set Output Properties > Format > Resolution to the photo's shape, or "
            "tick 'Resolution from photo' and press Import Body again"
        )


class FitDriver:
    """One fit of the scene's PoseFit body, stepped by the caller (timer events, or a loop).

    Builds the :class:`FitProblem` from the scene: the body from the armature, the look from the scene camera
    (read back with ``PinholeCamera.from_blender``) plus the chosen vertex group, the target photo at the fit
    size (for a sequence or movie target: the current frame's image). Writes each state's rotations onto the
    pose bones; :meth:`cancel` restores the pose exactly.

    Args:
        context: Blender context.
        keyframe: keyframe the result at the current frame; None = the scene setting ``posefit.keyframe``.
        source: the target (default: classified from ``posefit.target_path`` and ``target_offset``).
    """

    def __init__(
        self,
        context: bpy.types.Context,
        keyframe: bool | None = None,
        source: targets.TargetSource | None = None,
    ) -> None:
        scene = context.scene
        settings = scene.posefit
        self.arm_obj, self.mesh_obj = scene_io.find_body_objects(context)
        if self.arm_obj is None:
            raise ParameterError("no PoseFit body in the scene: import one first")
        if scene.camera is None:
            raise ParameterError("the scene has no active camera: the fit looks through it")
        source = source or targets.target_source(settings.target_path, settings.target_offset)
        self.scene, self.cam_obj = scene, scene.camera
        self.keyframe = settings.keyframe if keyframe is None else keyframe
        device = torch_setup(context)
        self.spec = str(self.arm_obj[scene_io.MODEL_KEY])
        self.body = scene_io.get_body(self.spec, device)
        shape = torch.tensor(list(self.arm_obj[scene_io.SHAPE_KEY]), dtype=torch.float32)
        self.rig = scene_io.get_rig(self.spec, self.body, shape)
        initial = scene_io.body_params(self.arm_obj, self.body, self.rig)

        check_target_shape(source, scene)
        camera = scene_io.camera_in_model_frame(scene, self.cam_obj, self.arm_obj)
        camera = camera.scaled(min(1.0, settings.fit_size / max(camera.width, camera.height)))
        target = source.load(scene.frame_current, (camera.width, camera.height))
        person_mask = load_person_mask(settings, source, scene.frame_current, (camera.width, camera.height))
        mask = None
        if settings.vertex_group:
            if self.mesh_obj is None:
                raise ParameterError("the PoseFit body has no mesh to take the vertex group from")
            mask = scene_io.vertex_group_mask(self.mesh_obj, settings.vertex_group)
        prefs = preferences(context)
        renderer = get_renderer(chosen_renderer(prefs))
        preset = get_preset(settings.preset).with_overrides(iterations=settings.iterations or None)
        cues = None
        if settings.hypotheses and preset.hypotheses > 0 and mask is None:
            from posecore.detect.cues import detect_cues

            cues = detect_cues(target, self.body, source=str(settings.target_path))
        if not settings.hypotheses:
            preset = preset.with_overrides(hypotheses=0)
        self.target = target
        self.fitter = PoseFitter(
            FitProblem(
                self.body,
                initial,
                target,
                Look(camera, vertex_mask=mask),
                renderer,
                person_mask=person_mask,
                vposer=vposer_for(context) if self.spec.startswith("smplx") else None,
                keypoints=cues[0] if cues is not None else None,
                bone_directions=cues[1] if cues is not None else None,
            ),
            preset,
        )
        self.snapshot = scene_io.snapshot_pose(self.arm_obj)
        self.camera_snapshot = scene_io.snapshot_camera(self.cam_obj)
        self._steps = self.fitter.steps()
        self.state: FitState | None = None
        self.first: FitState | None = None

    @property
    def total(self) -> int:
        """Steps of the fit (iterations plus the final evaluation)."""
        return self.fitter.preset.iterations + 1

    @property
    def progress(self) -> int:
        """Steps done."""
        return 0 if self.state is None else self.state.iteration + 1

    @property
    def complete(self) -> bool:
        """True after the final evaluation (then call :meth:`finish`)."""
        return self.state is not None and self.state.final

    @property
    def status_text(self) -> str:
        """One line for the status bar."""
        iteration = 0 if self.state is None else self.state.iteration
        loss = f", loss {self.state.loss:.4g}" if self.state is not None else ""
        return f"PoseFit: iteration {iteration}/{self.total - 1}{loss} (Esc cancels)"

    def step(self) -> FitState:
        """One optimisation step; writes the rendered parameters onto the bones and updates the status."""
        self.state = next(self._steps)
        if self.first is None:
            self.first = self.state
        scene_io.write_pose(self.arm_obj, self.rig, self.state.params.rotations, self.state.params.translation)
        settings = self.scene.posefit
        settings.status_fitted = True
        settings.status_frame = self.scene.frame_current
        settings.status_iteration = self.state.iteration
        settings.status_loss = self.state.loss
        settings.status_error = image_error_percent(self.state.render, self.target, self.state.weight)
        settings.status_message = f"Fitting: {self.state.iteration}/{self.total - 1}"
        if self.state.phase == "hypotheses":
            settings.status_message = "Trying alternatives (arms, legs, elbows, knees, turned round)"
        return self.state

    def finish(self) -> None:
        """Write the final pose, corrective shapes and the orbited camera; keyframe if asked."""
        state = self.state
        if state is None:
            return
        scene_io.write_pose(self.arm_obj, self.rig, state.params.rotations, state.params.translation)
        if self.mesh_obj is not None:
            scene_io.update_correctives(self.mesh_obj, self.rig, self.body, state.params)
        moved_camera = bool(state.camera_angle.abs().max() > 0)
        if moved_camera:
            scene_io.set_camera_pose(self.cam_obj, state.camera, self.arm_obj)
        settings = self.scene.posefit
        if self.keyframe:
            frame = self.scene.frame_current
            names = [self.body.joint_names[j] for j in self.fitter.free_joints]
            root = self.body.joint_names[0]
            for name in names:
                pb = self.arm_obj.pose.bones[name]
                pb.keyframe_insert("rotation_quaternion", frame=frame, group=name)
            if "translation" in self.fitter.preset.optimise:
                self.arm_obj.pose.bones[root].keyframe_insert("location", frame=frame, group=root)
            if moved_camera:
                self.cam_obj.keyframe_insert("location", frame=frame)
                self.cam_obj.keyframe_insert("rotation_euler", frame=frame)
        alternatives.remember(self.arm_obj, self.fitter.search, state)
        settings.status_message = f"Done: loss {self.first.loss:.4g} -> {state.loss:.4g}"
        if self.fitter.search is not None:
            settings.status_message += f" (from '{self.fitter.search.chosen.name}')"

    def cancel(self) -> None:
        """Restore the pose and the camera exactly as they were before the fit."""
        scene_io.restore_pose(self.arm_obj, self.snapshot)
        scene_io.restore_camera(self.cam_obj, self.camera_snapshot)
        self.scene.posefit.status_message = "Cancelled: pose restored"

    def run(self) -> FitState:
        """Step to the end and finish (background mode)."""
        state = self.step()
        while not state.final:
            state = self.step()
        self.finish()
        return state
