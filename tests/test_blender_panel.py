"""The panel explains itself (real ``bpy``): greyed buttons say why, a second fit is refused while one runs,
exports cover the keyed frames, and a Fit is one undo step."""

from __future__ import annotations

import os
import pathlib
import re
import sys
import types

import pytest
import torch

try:
    import bpy
except Exception as exc:  # ImportError, or missing system libraries (OSError)
    pytest.skip(f"bpy does not import: {exc}", allow_module_level=True)

import addon_utils
from blender_support import clear_scene as _clear_scene
from blender_support import raise_error as _raise

from posecore import rig as rigmath
from posecore.demo import JUDO_POSE, pose_from_table
from posecore.io.images import save_image
from posecore.render.raster import RasterRenderer
from posecore.render.scene import Lighting, RenderScene

pytestmark = pytest.mark.blender

REPO = pathlib.Path(__file__).resolve().parent.parent
MODULE = "bl_ext.posefit_panel_dev.posefit"
SIZE = 64


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    """Enable the extension from the checkout; yields its ``operators`` and ``scene_io`` modules."""
    parent = tmp_path_factory.mktemp("extensions")
    os.symlink(REPO, parent / "posefit")
    repo = bpy.context.preferences.extensions.repos.new(
        name="posefit_panel_dev", module="posefit_panel_dev", custom_directory=str(parent), source="USER"
    )
    addon_utils.enable(MODULE, default_set=True, handle_error=_raise)
    yield types.SimpleNamespace(
        operators=sys.modules[f"{MODULE}.addon.operators"], scene_io=sys.modules[f"{MODULE}.addon.scene_io"]
    )
    _clear_scene()
    addon_utils.disable(MODULE, default_set=True)
    bpy.context.preferences.extensions.repos.remove(repo)


@pytest.fixture()
def body(ops, anny, tmp_path):
    """An imported Anny body with a rendered target of a different pose (so a fit moves it)."""
    _clear_scene()
    truth = anny.default_params()
    truth.rotations = pose_from_table(anny, JUDO_POSE)
    camera = rigmath.default_camera(rigmath.rest_rig(anny), SIZE, SIZE)
    light = Lighting(ambient=torch.full((3,), 0.5), headlight=True, headlight_intensity=torch.full((3,), 0.5))
    with torch.no_grad():
        out = RasterRenderer().render(
            RenderScene(
                anny(truth).vertices, anny.faces, torch.full((anny.num_vertices, 3), 0.7), camera, light, torch.zeros(3)
            )
        )
    save_image(tmp_path / "target.png", out.image.clamp(0, 1))
    settings = bpy.context.scene.posefit
    settings.model, settings.init_path, settings.mask_path = "anny", "", ""
    settings.target_path, settings.resolution_from_photo = str(tmp_path / "target.png"), True
    settings.vertex_group, settings.iterations, settings.fit_size, settings.keyframe = "", 3, SIZE, False
    assert bpy.ops.posefit.import_body() == {"FINISHED"}
    yield ops.scene_io.find_body_objects(bpy.context)[0]
    ops.operators._Running.driver = None
    bpy.context.scene.posefit.target_path = ""  # fetched again: an undo in the test frees the old settings


def _refused(operator, message: str) -> None:
    """``operator`` is greyed out (poll fails) and calling it raises Blender's error with ``message``."""
    assert not operator.poll()
    with pytest.raises(RuntimeError, match=re.escape(message)):
        operator()


def test_greyed_buttons_say_why(ops):
    _clear_scene()
    settings = bpy.context.scene.posefit
    settings.target_path = ""
    no_body = ops.operators.NO_BODY
    for name in ("fit", "reset_pose", "save_fit", "export_body", "apply_shape"):
        _refused(getattr(bpy.ops.posefit, name), no_body)
    _refused(bpy.ops.posefit.detect_pose, "Detect Pose needs a photo")
    _refused(bpy.ops.posefit.fit_frames, "Set 'Target image'")
    assert bpy.ops.posefit.import_body.poll()  # always possible


def test_buttons_work_once_there_is_a_body(body):
    for name in ("fit", "reset_pose", "save_fit", "export_body", "apply_shape", "detect_pose", "fit_frames"):
        assert getattr(bpy.ops.posefit, name).poll(), name


class _WindowManager:
    """What a modal fit asks of the window manager, without a window (background mode has none)."""

    def __init__(self) -> None:
        self.handlers: list = []

    def event_timer_add(self, *_args, **_kwargs):
        return object()

    def event_timer_remove(self, _timer) -> None:
        pass

    def modal_handler_add(self, operator) -> None:
        self.handlers.append(operator)

    def progress_begin(self, *_args) -> None:
        pass

    def progress_update(self, *_args) -> None:
        pass

    def progress_end(self) -> None:
        pass


class _Context:
    """``bpy.context`` with a stand-in window manager and no window or workspace."""

    def __init__(self) -> None:
        self.window_manager = _WindowManager()
        self.window = self.workspace = self.area = None

    def __getattr__(self, name: str):
        return getattr(bpy.context, name)


def _modal_fit(operators, label: str = "Fit"):
    """A plain instance of the operators' modal-fit logic (the class Blender registers adds only its names)."""

    class Fit(operators._ModalFit):
        bl_label = label

        def __init__(self) -> None:
            self.reports: list[str] = []

        def report(self, _level, message: str) -> None:
            self.reports.append(message)

        def _make_driver(self, context):
            return operators.FitDriver(context)

    return Fit()


def test_a_second_fit_is_refused_while_one_runs(body, ops):
    operators = ops.operators
    context = _Context()
    before = [tuple(pb.rotation_quaternion) for pb in body.pose.bones]
    first = _modal_fit(operators)
    assert first.invoke(context, None) == {"RUNNING_MODAL"}
    assert operators.fit_running() == "Fit"
    assert first.modal(context, types.SimpleNamespace(type="TIMER")) == {"RUNNING_MODAL"}
    # The buttons say why they are greyed, and a fit started anyway (a script) is refused with a message.
    _refused(bpy.ops.posefit.fit, operators.FIT_RUNNING)
    _refused(bpy.ops.posefit.fit_frames, operators.FIT_RUNNING)
    _refused(bpy.ops.posefit.detect_pose, operators.FIT_RUNNING)
    second = _modal_fit(operators)
    assert second.invoke(context, None) == {"CANCELLED"}
    assert second.reports == ["PoseFit: 'Fit' is running: wait for it to finish, or press Esc to stop it"]
    assert second._driver is None and len(context.window_manager.handlers) == 1
    # Esc on the first restores its start, and fitting is possible again.
    assert first.modal(context, types.SimpleNamespace(type="ESC")) == {"CANCELLED"}
    assert [tuple(pb.rotation_quaternion) for pb in body.pose.bones] == before
    assert operators.fit_running() is None and bpy.ops.posefit.fit.poll()


def test_opening_a_file_forgets_the_running_fit(body, ops):
    """Opening another file ends a modal fit without telling it; the load_pre handler forgets it, so the next Fit
    is not refused for ever."""
    operators = ops.operators
    assert operators.forget_running_fit in bpy.app.handlers.load_pre
    context = _Context()
    first = _modal_fit(operators)
    assert first.invoke(context, None) == {"RUNNING_MODAL"}
    assert operators.fit_running() == "Fit" and not bpy.ops.posefit.fit.poll()
    for handler in bpy.app.handlers.load_pre:  # what Blender calls before it loads a file
        if handler is operators.forget_running_fit:
            handler(None, None)
    assert operators.fit_running() is None and bpy.ops.posefit.fit.poll()
    assert first.modal(context, types.SimpleNamespace(type="ESC")) == {"CANCELLED"}  # (here the scene is still there)


def _bvh_frames(path: pathlib.Path) -> int:
    match = re.search(r"^Frames:\s*(\d+)", path.read_text(), re.MULTILINE)
    assert match, path
    return int(match.group(1))


def test_exports_default_to_the_keyed_frames(body, tmp_path):
    scene, settings = bpy.context.scene, bpy.context.scene.posefit
    scene.frame_start, scene.frame_end = 1, 40
    settings.keyframe, settings.iterations = True, 1
    scene.frame_set(5)
    assert bpy.ops.posefit.fit() == {"FINISHED"}  # one keyframed fit, at frame 5
    assert bpy.ops.posefit.export_body(filepath=str(tmp_path / "one.bvh"), file_format="BVH") == {"FINISHED"}
    assert _bvh_frames(tmp_path / "one.bvh") == 1 and settings.status_message.endswith("(frame 5)")
    assert bpy.ops.posefit.export_body(filepath=str(tmp_path / "one.fbx")) == {"FINISHED"}
    assert settings.status_message.endswith("(frame 5)")
    scene.frame_set(9)
    assert bpy.ops.posefit.fit() == {"FINISHED"}  # a second key: frames 5 to 9
    assert bpy.ops.posefit.export_body(filepath=str(tmp_path / "two.bvh"), file_format="BVH") == {"FINISHED"}
    assert _bvh_frames(tmp_path / "two.bvh") == 5 and settings.status_message.endswith("(frames 5-9)")
    path = tmp_path / "scene.bvh"
    assert bpy.ops.posefit.export_body(filepath=str(path), file_format="BVH", frame_range="SCENE") == {"FINISHED"}
    assert _bvh_frames(path) == 40  # the scene's range when asked for


def test_a_fit_is_one_undo_step(body, ops):
    """Fit is an undoable operator (Blender pushes one undo step when it finishes; Fit pushes none of its own),
    and that one step takes the whole fit back: the pose and the keys. Background Blender does not push undo steps
    for operators itself, so the test pushes the step Blender would push, under the operator's name."""
    scene_io, operators = ops.scene_io, ops.operators
    for cls in (operators.POSEFIT_OT_fit, operators.POSEFIT_OT_fit_frames):
        assert {"REGISTER", "UNDO"} <= set(cls.bl_options), cls
    settings = bpy.context.scene.posefit
    settings.iterations, settings.keyframe = 3, True
    bpy.ops.ed.undo_push(message="before the fit")
    before = [tuple(pb.rotation_quaternion) for pb in body.pose.bones]
    assert not bpy.ops.ed.undo.poll()  # nothing to undo yet beyond the first step
    assert bpy.ops.posefit.fit() == {"FINISHED"}
    assert not bpy.ops.ed.undo.poll()  # the fit pushed no undo step of its own
    bpy.ops.ed.undo_push(message="Fit")  # what Blender does after an UNDO operator finishes
    arm = scene_io.find_body_objects(bpy.context)[0]
    after = [tuple(pb.rotation_quaternion) for pb in arm.pose.bones]
    assert after != before and arm.animation_data is not None  # moved and keyed
    bpy.ops.ed.undo()  # one step back: the pose before the fit, no key
    arm = scene_io.find_body_objects(bpy.context)[0]
    assert [tuple(pb.rotation_quaternion) for pb in arm.pose.bones] == before
    assert arm.animation_data is None or arm.animation_data.action is None
    bpy.ops.ed.redo()  # and forward again: the whole fit
    arm = scene_io.find_body_objects(bpy.context)[0]
    assert [tuple(pb.rotation_quaternion) for pb in arm.pose.bones] == after


def test_windows_model_and_vposer_folders_reach_posecore_unchanged(ops):
    """Folders typed as on Windows (drive colon, backslashes, spaces) reach posecore as typed, with the gender
    split off correctly; a folder that is not there (here: not on Linux) is named in the error."""
    _clear_scene()
    prefs = bpy.context.preferences.addons[MODULE].preferences
    saved = prefs.smplx_folder, prefs.vposer_folder
    settings = bpy.context.scene.posefit
    try:
        prefs.smplx_folder = r"C:\Users\Ana\SMPL-X models"
        prefs.vposer_folder = r"D:\priors\V02_05"
        settings.model, settings.gender, settings.init_path, settings.target_path = "smplx", "female", "", ""
        spec = ops.operators.model_spec(bpy.context)
        assert spec == r"smplx:C:\Users\Ana\SMPL-X models:female"
        assert ops.scene_io.model_gender(spec) == "female"
        fit_driver = sys.modules[f"{MODULE}.addon.fit_driver"]
        assert fit_driver.vposer_folder(bpy.context) == r"D:\priors\V02_05"
        with pytest.raises(RuntimeError, match=re.escape(r"C:\Users\Ana\SMPL-X models")):
            bpy.ops.posefit.import_body()
    finally:
        prefs.smplx_folder, prefs.vposer_folder = saved
        settings.model, settings.gender = "anny", "neutral"
