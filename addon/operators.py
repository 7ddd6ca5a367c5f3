"""Operators: ``posefit.import_body`` (modal only while the free body's first use builds its data),
``posefit.fit`` and ``posefit.fit_frames`` (modal, one optimisation step per timer event), ``posefit.reset_pose``,
``posefit.apply_shape``, ``posefit.save_fit`` and ``posefit.export_body``."""

from __future__ import annotations

import contextlib
import os
import traceback

import bpy
import torch
from bpy_extras.io_utils import ExportHelper

from posecore.bodies import params_from_init
from posecore.errors import ParameterError, PoseFitError

from . import first_use, frames, scene_io, targets
from .fit_driver import VPOSER_ENV, FitDriver, torch_setup, vposer_for  # noqa: F401 (VPOSER_ENV: re-exported)
from .messages import SMPLX_FOLDER, panel_words
from .properties import preferences

DEFAULT_IMAGE_SIZE = (512, 512)


NO_BODY = "No PoseFit body in the scene: press Import Body or Detect Pose first"
FIT_RUNNING = "A fit is running: wait for it to finish, or press Esc to stop it"


class _Running:
    """The modal fit that is running (one at a time: a second would restore its start underneath the first)."""

    driver = None
    label = ""


def fit_running() -> str | None:
    """The label of the fit that is running (``Fit``, ``Fit Frame Range``), or None."""
    return _Running.label if _Running.driver is not None else None


@bpy.app.handlers.persistent
def forget_running_fit(*_args: object) -> None:
    """``load_pre`` handler: opening a file ends a modal fit without telling it, so it no longer counts."""
    _Running.driver, _Running.label = None, ""


def needs_body(cls: type, context: bpy.types.Context) -> bool:
    """Poll: a PoseFit body in the scene, else False with the reason (Blender shows it on the greyed button)."""
    if scene_io.find_body_objects(context)[0] is None:
        cls.poll_message_set(NO_BODY)
        return False
    return True


def model_spec(context: bpy.types.Context) -> str:
    """The body-model spec chosen in the panel (SMPL-X needs the folder from the preferences)."""
    settings = context.scene.posefit
    if settings.model == "anny":
        return "anny"
    prefs = preferences(context)
    folder = prefs.smplx_folder if prefs is not None else ""
    if not folder:
        raise ParameterError(f"SMPL-X needs its model files: set {SMPLX_FOLDER}")
    return f"smplx:{bpy.path.abspath(folder)}:{settings.gender}"


def _image_size(path: str) -> tuple[int, int] | None:
    """(width, height) of the target (the first image of a sequence, a movie's frames), or None without one."""
    if not path:
        return None
    source = targets.target_source(path)
    return source.size(0) if source.kind == "movie" else targets.TargetSource("image", targets.first_file(path)).size(0)


class POSEFIT_OT_import_body(bpy.types.Operator):  # noqa: N801 (Blender naming convention)
    """Import the body: from the initialisation file if one is set, else the free model at rest"""

    bl_idname = "posefit.import_body"
    bl_label = "Import Body"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context: bpy.types.Context) -> set[str]:
        from posecore import rig as rigmath
        from posecore.cameras.init_camera import camera_from_init
        from posecore.io.init_files import read_init

        settings = context.scene.posefit
        try:
            spec = model_spec(context)
            body = scene_io.get_body(spec, torch_setup(context))
            source_size = _image_size(settings.target_path)
            init = None
            if settings.init_path:
                init = read_init(bpy.path.abspath(settings.init_path), frame=settings.init_frame)
                params = params_from_init(body, init, vposer=vposer_for(context))
            else:
                params = body.default_params()
            replaced = scene_io.remove_posefit_objects(context.scene)
            arm_obj, _mesh = scene_io.build_body(context, spec, body, params)
            from_photo = settings.resolution_from_photo
            render = scene_io.render_size(context.scene)
            if init is not None and init.camera is not None:
                size = (source_size or init.camera.image_size or DEFAULT_IMAGE_SIZE) if from_photo else render
                camera = camera_from_init(init.camera, size[0], size[1], source_size)
            else:
                size = (source_size or DEFAULT_IMAGE_SIZE) if from_photo else render
                camera = rigmath.default_camera(scene_io.get_rig(spec, body, params.shape), size[0], size[1])
            cam_obj = scene_io.make_camera(context, camera, arm_obj, set_resolution=from_photo)
            if settings.target_path:
                targets.set_background_image(cam_obj, settings.target_path, settings.target_offset)
        except (PoseFitError, FileNotFoundError) as exc:
            self.report({"ERROR"}, panel_words(str(exc)))
            return {"CANCELLED"}
        show_shape(settings, body, params.shape)
        again = " (replacing the previous PoseFit body and camera)" if replaced else ""
        settings.status_message = f"Imported {spec.split(':')[0]} ({len(arm_obj.pose.bones)} bones){again}"
        context.view_layer.objects.active = arm_obj
        return {"FINISHED"}

    _task = None  # the free body's first-use build while it runs (a plain attribute, see _ModalFit)
    _timer = None

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        """As execute(), but the free body's first-use build runs in a thread, with its progress shown."""
        if context.scene.posefit.model != "anny" or not first_use.free_body_needs_building():
            return self.execute(context)
        device = torch_setup(context)
        self._task = first_use.BackgroundTask(lambda: scene_io.get_body("anny", device), "preparing the free body")
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type != "TIMER":
            return {"RUNNING_MODAL"} if event.type == "ESC" else {"PASS_THROUGH"}  # the build cannot stop midway
        task = self._task
        settings = context.scene.posefit
        if not task.done:
            text = task.status_text()
            settings.status_message = text.removeprefix("PoseFit: ")
            context.window_manager.progress_update(min(99, int(task.elapsed)))
            if context.workspace is not None:
                context.workspace.status_text_set(text)
            if context.area is not None:
                context.area.tag_redraw()
            return {"RUNNING_MODAL"}
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        self._task = self._timer = None
        if task.error is not None:
            settings.status_message = f"Error: {panel_words(str(task.error))}"
            self.report({"ERROR"}, f"PoseFit: the free body could not be prepared: {panel_words(str(task.error))}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"PoseFit: the free body is ready ({task.elapsed:.0f} s, once per machine)")
        return self.execute(context)


def detected_mask_folder() -> str:
    """Where Detect Pose keeps the person masks it writes: the extension's user folder (``masks/``) when PoseFit
    runs as an installed extension, else a temporary folder."""
    import tempfile

    from .properties import ADDON_PACKAGE

    try:
        return bpy.utils.extension_path_user(ADDON_PACKAGE, path="masks", create=True)
    except (ValueError, RuntimeError, AttributeError):  # not registered as an extension (a plain script)
        return tempfile.mkdtemp(prefix="posefit-masks-")


class POSEFIT_OT_detect_pose(bpy.types.Operator):  # noqa: N801 (Blender naming convention)
    """Find the person in the target photo and import the body posed like them, with a camera that sees them as
    the photo does, and their outline as the person mask (the photo alone: no initialisation file needed)"""

    bl_idname = "posefit.detect_pose"
    bl_label = "Detect Pose"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not context.scene.posefit.target_path:
            cls.poll_message_set("Detect Pose needs a photo: set 'Target image' above")
            return False
        if fit_running():
            cls.poll_message_set(FIT_RUNNING)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.posefit
        try:
            if not settings.target_path:
                raise ParameterError("Detect Pose needs a photo: set 'Target image'")
            message = detect_and_import(context, context.scene.frame_current)
        except (PoseFitError, FileNotFoundError) as exc:
            self.report({"ERROR"}, panel_words(str(exc)))
            return {"CANCELLED"}
        settings.status_message = message
        return {"FINISHED"}


def detect_and_import(context: bpy.types.Context, frame: int) -> str:
    """Detect the person in the target's image of ``frame`` and import the body posed from the landmarks with
    its camera (replacing the PoseFit objects there are); the detected person mask becomes the panel's
    'Person mask'. Returns a one-line summary. Used by Detect Pose and by Fit Frames' "Detect the first frame".

    Raises:
        ParameterError: no person found, a movie target, a bad setting. InputFileError: unreadable photo.
    """
    from posecore.detect.photo import photo_start
    from posecore.io.images import save_image

    settings = context.scene.posefit
    source = targets.target_source(settings.target_path, settings.target_offset)
    if source.kind == "movie":
        raise ParameterError(
            f"{source.path}: Detect Pose reads photos and image sequences (the current frame's image), not movies: "
            "export the frame as an image"
        )
    photo = source.frame_file(frame)
    spec = model_spec(context)
    body = scene_io.get_body(spec, torch_setup(context))
    from_photo = settings.resolution_from_photo
    size = source.size(frame) if from_photo else scene_io.render_size(context.scene)
    start = photo_start(photo, body, size=size)
    replaced = scene_io.remove_posefit_objects(context.scene)
    arm_obj, _mesh = scene_io.build_body(context, spec, body, start.init.params)
    cam_obj = scene_io.make_camera(context, start.init.camera, arm_obj, set_resolution=from_photo)
    targets.set_background_image(cam_obj, settings.target_path, settings.target_offset)
    mask_path = os.path.join(detected_mask_folder(), f"{os.path.splitext(os.path.basename(photo))[0]}_mask.png")
    save_image(mask_path, start.mask)
    settings.mask_path, settings.mask_from_alpha = mask_path, False
    show_shape(settings, body, start.init.params.shape)
    context.view_layer.objects.active = arm_obj
    summary = start.summary()
    again = " (replacing the previous PoseFit body and camera)" if replaced else ""
    return (
        f"Detected the person in {os.path.basename(photo)}: focal {summary['focal_px']:.0f} px "
        f"({start.focal_source}), landmarks reprojected within {summary['reprojection_px']:.1f} px{again}"
    )


def show_shape(settings: bpy.types.PropertyGroup, body: object, shape: torch.Tensor) -> None:
    """Fill the panel's editable shape list (``scene.posefit.shape_values``) with the body's shape."""
    settings.shape_values.clear()
    for label, value in zip(scene_io.shape_labels(body), shape.tolist(), strict=True):
        item = settings.shape_values.add()
        item.name, item.value = label, value


class POSEFIT_OT_apply_shape(bpy.types.Operator):  # noqa: N801 (Blender naming convention)
    """Rebuild the body with the shape values shown in the panel, keeping its pose, keyframes and camera"""

    bl_idname = "posefit.apply_shape"
    bl_label = "Apply Shape"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return needs_body(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.posefit
        shape = torch.tensor([item.value for item in settings.shape_values], dtype=torch.float32)
        try:
            arm_obj, _mesh = scene_io.rebuild_with_shape(context, shape)
        except PoseFitError as exc:
            self.report({"ERROR"}, panel_words(str(exc)))
            return {"CANCELLED"}
        context.view_layer.objects.active = arm_obj
        settings.status_message = "Shape applied"
        return {"FINISHED"}


class POSEFIT_OT_reset_pose(bpy.types.Operator):  # noqa: N801 (Blender naming convention)
    """Put the body back in the pose it was imported with (the initialisation file's, or the rest pose)"""

    bl_idname = "posefit.reset_pose"
    bl_label = "Reset Pose"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return needs_body(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        arm_obj, mesh_obj = scene_io.find_body_objects(context)
        try:
            spec = str(arm_obj[scene_io.MODEL_KEY])
            body = scene_io.get_body(spec)
            rig = scene_io.get_rig(spec, body, torch.tensor(list(arm_obj[scene_io.SHAPE_KEY]), dtype=torch.float32))
            rotations, translation = scene_io.initial_pose(arm_obj, body)
            scene_io.write_pose(arm_obj, rig, rotations, translation)
            if mesh_obj is not None:
                scene_io.update_correctives(mesh_obj, rig, body, scene_io.body_params(arm_obj, body, rig))
        except PoseFitError as exc:
            self.report({"ERROR"}, panel_words(str(exc)))
            return {"CANCELLED"}
        context.scene.posefit.status_message = "Pose reset to the import's"
        return {"FINISHED"}


class POSEFIT_OT_save_fit(bpy.types.Operator, ExportHelper):  # noqa: N801 (Blender naming convention)
    """Save the body's pose, shape and the camera as PoseFit's fit.npz (a later Import Body can start from it);
    for SMPL-X also NAME_smplx.npz and NAME_smplx.json with the parameters under the smplx package's names"""

    bl_idname = "posefit.save_fit"
    bl_label = "Save Fit"
    filename_ext = ".npz"
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return needs_body(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            written = scene_io.save_fit(context, self.filepath)
        except (PoseFitError, OSError) as exc:
            self.report({"ERROR"}, panel_words(str(exc)))
            return {"CANCELLED"}
        context.scene.posefit.status_message = f"Saved {', '.join(written)}"
        self.report({"INFO"}, f"PoseFit: saved {', '.join(written)}")
        return {"FINISHED"}


class POSEFIT_OT_export_body(bpy.types.Operator, ExportHelper):  # noqa: N801 (Blender naming convention)
    """Export the body with Blender's own exporters: FBX (armature and skinned mesh) or BVH (the armature's
    motion); the frames from its first keyframe to its last, else the current pose"""

    bl_idname = "posefit.export_body"
    bl_label = "Export FBX/BVH"
    filename_ext = ".fbx"
    filter_glob: bpy.props.StringProperty(default="*.fbx;*.bvh", options={"HIDDEN"})
    file_format: bpy.props.EnumProperty(
        name="Format",
        description="FBX: armature and skinned mesh, for other 3D tools; BVH: the skeleton's motion only",
        items=[("FBX", "FBX", "Armature and skinned mesh"), ("BVH", "BVH", "The skeleton's motion")],
        default="FBX",
    )
    frame_range: bpy.props.EnumProperty(
        name="Frames",
        description="Which frames to export when the body has keyframes",
        items=[
            ("KEYS", "Keyed frames", "From the body's first keyframe to its last"),
            ("SCENE", "Scene range", "The scene's frame range (Start to End)"),
        ],
        default="KEYS",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return needs_body(cls, context)

    def check(self, context: bpy.types.Context) -> bool:
        self.filename_ext = "." + self.file_format.lower()
        return super().check(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = self.filepath
        if not path.lower().endswith((".fbx", ".bvh")):
            path = bpy.path.ensure_ext(path, "." + self.file_format.lower())
        try:
            first, last = scene_io.export_body(context, path, scene_range=self.frame_range == "SCENE")
        except (PoseFitError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, panel_words(str(exc)))
            return {"CANCELLED"}
        frames_text = f"frame {first}" if first == last else f"frames {first}-{last}"
        context.scene.posefit.status_message = f"Exported {path} ({frames_text})"
        return {"FINISHED"}


class _ModalFit:
    """Shared operator logic: ``execute()`` runs a driver to the end, ``invoke()``/``modal()`` step it on timer
    events (Esc cancels). Subclasses say which driver with :meth:`_make_driver`."""

    _driver = None  # the driver while running (plain attributes: Blender treats annotations as properties)
    _timer = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if fit_running():
            cls.poll_message_set(FIT_RUNNING)
            return False
        return needs_body(cls, context)

    def _make_driver(self, context: bpy.types.Context) -> FitDriver | frames.FrameRangeDriver:
        raise NotImplementedError

    def _start(self, context: bpy.types.Context) -> bool:
        try:
            self._driver = self._make_driver(context)
        except PoseFitError as exc:
            self.report({"ERROR"}, panel_words(str(exc)))
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        running = fit_running()
        if running:
            self.report({"ERROR"}, f"PoseFit: '{running}' is running: wait for it to finish, or press Esc to stop it")
            return {"CANCELLED"}
        if not self._start(context):
            return {"CANCELLED"}
        try:
            self._driver.run()
        except PoseFitError as exc:
            self._driver.cancel()
            self.report({"ERROR"}, panel_words(str(exc)))
            return {"CANCELLED"}
        self.report({"INFO"}, context.scene.posefit.status_message)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        running = fit_running()
        if running:  # poll refuses this too; the check stays for callers that skip poll
            self.report({"ERROR"}, f"PoseFit: '{running}' is running: wait for it to finish, or press Esc to stop it")
            return {"CANCELLED"}
        if not self._start(context):
            return {"CANCELLED"}
        _Running.driver, _Running.label = self._driver, self.bl_label
        self._begin(context)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _begin(self, context: bpy.types.Context) -> None:
        """The timer that drives the steps, the progress bar and the status-bar text (removed by _cleanup)."""
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.01, window=context.window)
        wm.progress_begin(0, self._driver.total)
        if context.workspace is not None:
            context.workspace.status_text_set(self._driver.status_text)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        try:
            result = handle_event(self._driver, event.type)
            if result == {"PASS_THROUGH"}:
                return result
            context.window_manager.progress_update(self._driver.progress)
            if context.workspace is not None:
                context.workspace.status_text_set(self._driver.status_text)
            if context.area is not None:
                context.area.tag_redraw()
        except Exception as exc:  # any failure must end the modal fit cleanly
            return self._fail(context, exc)
        if result != {"RUNNING_MODAL"}:
            self._cleanup(context)
            message = context.scene.posefit.status_message
            if result == {"CANCELLED"} and message.startswith("Error: "):
                self.report({"ERROR"}, f"PoseFit: {message.removeprefix('Error: ')}")
        return result

    def _fail(self, context: bpy.types.Context, exc: BaseException) -> set[str]:
        """End the fit after an unexpected exception: restore what can be restored, remove the timer, progress
        bar and status text, and report the error in Blender's info area (and the panel's status line)."""
        message = failure_message(exc)
        if not isinstance(exc, (PoseFitError, ReferenceError)):
            traceback.print_exc()  # the full story for the console; the user sees one line
        with contextlib.suppress(Exception):  # the body or camera may be gone (ReferenceError)
            self._driver.cancel()
        self._cleanup(context)
        with contextlib.suppress(Exception):
            context.scene.posefit.status_message = f"Error: {message}"
        self.report({"ERROR"}, f"PoseFit: {message}")
        return {"CANCELLED"}

    def _cleanup(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        if _Running.driver is self._driver:
            _Running.driver, _Running.label = None, ""
        self._driver = None


def failure_message(exc: BaseException) -> str:
    """One line for the info area about an exception that ended a fit."""
    if isinstance(exc, PoseFitError):
        return panel_words(str(exc))
    if isinstance(exc, ReferenceError):
        return "the fit stopped because the body, its mesh or the camera was deleted while it ran"
    return f"the fit stopped: {type(exc).__name__}: {exc}"


class POSEFIT_OT_fit(_ModalFit, bpy.types.Operator):  # noqa: N801 (Blender naming convention)
    """Fit the body's pose to the target image through the scene camera (Esc cancels and restores)"""

    bl_idname = "posefit.fit"
    bl_label = "Fit"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    def _make_driver(self, context: bpy.types.Context) -> FitDriver:
        return FitDriver(context)


class POSEFIT_OT_fit_frames(_ModalFit, bpy.types.Operator):  # noqa: N801 (Blender naming convention)
    """Fit each frame of a range to its target (image sequence, folder or movie), warm-started from the previous
    frame and keyframed; Esc keeps the frames done and restores the frame in progress"""

    bl_idname = "posefit.fit_frames"
    bl_label = "Fit Frame Range"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    frame_start: bpy.props.IntProperty(name="Start", description="First frame (-1 = the scene's start)", default=-1)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        """A body to fit, or a target to detect the first frame's body in; no other fit running."""
        if fit_running():
            cls.poll_message_set(FIT_RUNNING)
            return False
        if not context.scene.posefit.target_path and scene_io.find_body_objects(context)[0] is None:
            cls.poll_message_set("Set 'Target image' (an image sequence, folder or movie) and import a body first")
            return False
        return True

    frame_end: bpy.props.IntProperty(name="End", description="Last frame (-1 = the scene's end)", default=-1)

    def _make_driver(self, context: bpy.types.Context) -> frames.FrameRangeDriver:
        scene = context.scene
        start = scene.frame_start if self.frame_start < 0 else self.frame_start
        end = scene.frame_end if self.frame_end < 0 else self.frame_end
        return frames.FrameRangeDriver(
            context, frames.parse_frame_range(f"{start}-{end}"), detect=first_frame_detector(context)
        )


def first_frame_detector(context: bpy.types.Context):
    """``detect`` for :class:`~.frames.FrameRangeDriver`: when 'Detect the first frame' is on, or when the scene
    has no PoseFit body yet (nothing to warm-start the first frame from); else None."""
    settings = context.scene.posefit
    has_body = scene_io.find_body_objects(context)[0] is not None
    if not settings.target_path or (has_body and not settings.detect_first_frame):
        return None  # nothing to detect in, or a body to warm-start from
    return lambda frame: detect_and_import(context, frame)


def handle_event(driver: FitDriver | frames.FrameRangeDriver, event_type: str) -> set[str]:
    """The modal loop's logic, separate from Blender's event objects so it can be driven by hand.

    ESC cancels (the pose is restored; a frame range keeps the frames done); TIMER performs one step and
    finishes once the driver is complete; other events pass through (the viewport stays usable).
    """
    if event_type == "ESC":
        driver.cancel()
        return {"CANCELLED"}
    if event_type != "TIMER":
        return {"PASS_THROUGH"}
    try:
        driver.step()
    except PoseFitError as exc:
        driver.cancel()
        driver.scene.posefit.status_message = f"Error: {panel_words(str(exc))}"
        return {"CANCELLED"}
    if driver.complete:
        driver.finish()
        return {"FINISHED"}
    return {"RUNNING_MODAL"}


CLASSES = (
    POSEFIT_OT_import_body,
    POSEFIT_OT_detect_pose,
    POSEFIT_OT_fit,
    POSEFIT_OT_fit_frames,
    POSEFIT_OT_reset_pose,
    POSEFIT_OT_apply_shape,
    POSEFIT_OT_save_fit,
    POSEFIT_OT_export_body,
)
