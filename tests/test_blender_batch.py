"""Frame ranges and the headless batch (``addon/batch.py``), with the real ``bpy`` module.

A scene is built once: an imported Anny body whose left arm starts 25-30 degrees off, and a 3-frame target
sequence ``frame_####.png`` rendered by posecore's RasterRenderer from known poses (the arm turns a little more
each frame). It is saved as a .blend; the batch then runs on it for real, as a subprocess under plain Python.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

try:
    import bpy
except Exception as exc:  # ImportError, or missing system libraries (OSError)
    pytest.skip(f"bpy does not import: {exc}", allow_module_level=True)

import addon_utils
from blender_support import clear_scene as _clear_scene
from blender_support import fcurves as _fcurves
from blender_support import raise_error as _raise

from posecore import rig as rigmath
from posecore.demo import JUDO_POSE, pose_from_table
from posecore.io.images import load_image, save_image
from posecore.render.raster import RasterRenderer
from posecore.render.scene import Lighting, RenderScene
from posecore.rotations import axis_angle_to_matrix, rotation_angle_between

pytestmark = pytest.mark.blender

REPO = pathlib.Path(__file__).resolve().parent.parent
BATCH = REPO / "addon" / "batch.py"
MODULE = "bl_ext.posefit_batch_dev.posefit"
SIZE = 80
FRAMES = (1, 2, 3)
ITERATIONS = 25
ARM = ("upperarm01.L", "lowerarm01.L")


def _truth(anny, frame: int):
    truth = anny.default_params()
    truth.rotations = pose_from_table(anny, JUDO_POSE) + pose_from_table(
        anny, {"upperarm01.L": (-6.0 * (frame - 1), 0.0, 4.0 * (frame - 1))}, degrees=True
    )
    return truth


def _arm_error_deg(anny, rotations: torch.Tensor, truth) -> float:
    joints = [anny.joint_index(n) for n in ARM]
    a, b = axis_angle_to_matrix(rotations[joints]), axis_angle_to_matrix(truth.rotations[joints])
    return float(torch.rad2deg(rotation_angle_between(a, b)).mean())


@pytest.fixture(scope="module")
def scene(anny, tmp_path_factory):
    """Enable the extension from the checkout, build and save the scene; yields paths and the modules."""
    parent = tmp_path_factory.mktemp("extensions")
    os.symlink(REPO, parent / "posefit")
    repo = bpy.context.preferences.extensions.repos.new(
        name="posefit_batch_dev", module="posefit_batch_dev", custom_directory=str(parent), source="USER"
    )
    addon_utils.enable(MODULE, default_set=True, handle_error=_raise)
    scene_io, operators, frames = (sys.modules[f"{MODULE}.addon.{m}"] for m in ("scene_io", "operators", "frames"))
    tmp = tmp_path_factory.mktemp("batch")

    _clear_scene()
    empty = bpy.context.scene.posefit  # neither a body nor a target (with a target, a batch detects the body)
    empty.target_path = empty.mask_path = empty.init_path = ""
    empty.detect_first_frame = False
    empty_blend = tmp / "empty.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(empty_blend), copy=True)

    camera = rigmath.default_camera(rigmath.rest_rig(anny), SIZE, SIZE)
    light = Lighting(ambient=torch.full((3,), 0.5), headlight=True, headlight_intensity=torch.full((3,), 0.5))
    for frame in FRAMES:
        with torch.no_grad():
            vertices = anny(_truth(anny, frame)).vertices
            out = RasterRenderer().render(
                RenderScene(
                    vertices, anny.faces, torch.full((anny.num_vertices, 3), 0.7), camera, light, torch.zeros(3)
                )
            )
        save_image(tmp / f"frame_{frame:04d}.png", out.image.clamp(0, 1))

    settings = bpy.context.scene.posefit
    settings.model, settings.init_path = "anny", ""
    settings.target_path = str(tmp / "frame_####.png")
    settings.vertex_group, settings.iterations, settings.fit_size = "part_left_arm", ITERATIONS, SIZE
    assert bpy.ops.posefit.import_body() == {"FINISHED"}
    arm, _mesh = scene_io.find_body_objects(bpy.context)
    spec = str(arm[scene_io.MODEL_KEY])
    rig = scene_io.get_rig(spec, scene_io.get_body(spec), torch.tensor(list(arm[scene_io.SHAPE_KEY])))
    initial = _truth(anny, 1)
    initial.rotations = initial.rotations + pose_from_table(
        anny, {"upperarm01.L": (-25.0, -20.0, 0.0), "lowerarm01.L": (0.0, 0.0, 25.0)}, degrees=True
    )
    scene_io.write_pose(arm, rig, initial.rotations, initial.translation)
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = FRAMES[0], FRAMES[-1]
    bpy.context.scene.frame_set(FRAMES[0])
    blend = tmp / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    yield {
        "tmp": tmp,
        "blend": blend,
        "empty_blend": empty_blend,
        "initial": initial,
        "rig": rig,
        "arm": arm,
        "scene_io": scene_io,
        "operators": operators,
        "frames": frames,
    }
    _clear_scene()
    addon_utils.disable(MODULE, default_set=True)
    bpy.context.preferences.extensions.repos.remove(repo)


def _batch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BATCH), *args], capture_output=True, text=True, timeout=300, cwd=REPO, check=False
    )


def _keyed_frames(arm, data_path: str) -> list[float]:
    curves = [fc for fc in _fcurves(arm) if fc.data_path == data_path]
    assert len(curves) == 4, data_path  # w, x, y, z
    return [k.co[0] for k in curves[0].keyframe_points]


def _check_saved_keys_are_the_fits(scene, anny, blend: pathlib.Path, out: pathlib.Path) -> None:
    """The saved .blend keys the left arm at every frame with the pose of the frame's fit.npz, closer to the truth
    than the first pose, and keys no joint the fits did not move."""
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene_io, rig = scene["scene_io"], scene["rig"]
    arm, _mesh = scene_io.find_body_objects(bpy.context)
    assert _keyed_frames(arm, 'pose.bones["upperarm01.L"].rotation_quaternion') == [1.0, 2.0, 3.0]
    assert 'pose.bones["upperleg01.R"].rotation_quaternion' not in {fc.data_path for fc in _fcurves(arm)}
    for frame in FRAMES:
        bpy.context.scene.frame_set(frame)
        rotations = scene_io.read_pose(arm, rig)[0]
        saved = np.load(out / f"frame_{frame:04d}" / "fit.npz")["rotations"]
        assert np.allclose(rotations.numpy(), saved, atol=1e-4)
        truth = _truth(anny, frame)
        before, after = _arm_error_deg(anny, scene["initial"].rotations, truth), _arm_error_deg(anny, rotations, truth)
        print(f"frame {frame}: left-arm error {before:.1f} -> {after:.1f} degrees")
        assert after < 0.7 * before


def test_targets_and_frame_ranges(scene):
    frames = scene["frames"]
    assert frames.parse_frame_range("1-3") == [1, 2, 3]
    assert frames.parse_frame_range("5, 1-2,2") == [1, 2, 5]
    for bad in ("3-1", "a-b", "", "-2", "1-"):
        with pytest.raises(frames.ParameterError):
            frames.parse_frame_range(bad)
    source = frames.target_source(str(scene["tmp"] / "frame_####.png"), offset=1)
    assert source.kind == "sequence" and source.frame_file(2).endswith("frame_0003.png")
    assert source.missing([1, 2, 3]) == [str(scene["tmp"] / "frame_0004.png")]
    folder = frames.target_source(str(scene["tmp"]))
    assert folder.kind == "folder" and folder.frame_file(2).endswith("frame_0002.png")
    assert frames.target_source(str(scene["tmp"] / "frame_0001.png")).kind == "image"
    # The camera background follows the frame like the fit does.
    background = bpy.context.scene.camera.data.background_images[0]
    assert background.image.source == "SEQUENCE"
    background.image_user.frame_current = 2
    assert background.image.filepath_from_user(image_user=background.image_user).endswith("frame_0002.png")


def _encode_movie(images: list[pathlib.Path], path: pathlib.Path, size: int) -> None:
    """Images -> a lossless movie (FFV1 in Matroska) through Blender's sequencer and FFmpeg."""
    encode = bpy.data.scenes.new("encode")
    try:
        encode.render.resolution_x = encode.render.resolution_y = size
        encode.render.resolution_percentage = 100
        editor = encode.sequence_editor_create()
        strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 4.2/4.3: sequences
        strip = strips.new_image("frames", str(images[0]), 1, 1)
        for image in images[1:]:
            strip.elements.append(image.name)
        encode.frame_start, encode.frame_end = 1, len(images)
        settings = encode.render.image_settings
        if hasattr(settings, "media_type"):  # Blender 5.0+
            settings.media_type = "VIDEO"
        settings.file_format, settings.color_mode = "FFMPEG", "RGB"
        encode.render.ffmpeg.format, encode.render.ffmpeg.codec = "MKV", "FFV1"
        encode.view_settings.view_transform = "Standard"
        encode.render.filepath = str(path)
        bpy.ops.render.render(animation=True, scene=encode.name)
    finally:
        bpy.data.scenes.remove(encode)


def test_movie_target_frames_are_read_headless(scene):
    """A movie target: Blender decodes frame N for the fit (exactly, for a lossless movie)."""
    frames, operators, tmp = scene["frames"], scene["operators"], scene["tmp"]
    pngs = [tmp / f"frame_{f:04d}.png" for f in FRAMES]
    movie = tmp / "clip.mkv"
    _encode_movie(pngs, movie, SIZE)
    source = frames.target_source(str(movie))
    assert source.kind == "movie" and frames.movie_length(str(movie)) == 3
    assert source.missing([1, 2, 3, 4]) == [f"{movie} (movie frame 4)"]
    for frame in (2, 3, 1):
        expected = load_image(pngs[frame - 1])
        assert float((source.load(frame, (SIZE, SIZE)) - expected).abs().max()) < 1.5 / 255
    settings = bpy.context.scene.posefit
    settings.target_path = str(movie)
    try:
        bpy.context.scene.frame_set(2)
        driver = operators.FitDriver(bpy.context)
        assert float((driver.target - load_image(pngs[1])).abs().max()) < 1.5 / 255
    finally:
        settings.target_path = str(tmp / "frame_####.png")
        bpy.context.scene.frame_set(1)


def test_modal_frame_range_escape_keeps_frames_done(scene, anny):
    """Driven by hand like the modal operator: frame 1 completes and is keyframed, Esc during frame 2 restores
    frame 2's pose and keeps frame 1."""
    scene_io, operators, frames = scene["scene_io"], scene["operators"], scene["frames"]
    arm, rig = scene["arm"], scene["rig"]
    settings = bpy.context.scene.posefit
    settings.iterations = 3
    try:
        driver = frames.FrameRangeDriver(bpy.context, [1, 2])
        assert driver.total == 8
        for _ in range(4):  # 3 steps + the final evaluation of frame 1
            assert operators.handle_event(driver, "TIMER") == {"RUNNING_MODAL"}
        assert [r.frame for r in driver.done] == [1]
        assert operators.handle_event(driver, "TIMER") == {"RUNNING_MODAL"}  # frame 2 starts
        assert bpy.context.scene.frame_current == 2 and settings.status_frame == 2
        before_frame_2 = driver._frame_snapshot
        assert operators.handle_event(driver, "TIMER") == {"RUNNING_MODAL"}
        assert operators.handle_event(driver, "ESC") == {"CANCELLED"}
        assert scene_io.snapshot_pose(arm) == before_frame_2
        assert _keyed_frames(arm, 'pose.bones["upperarm01.L"].rotation_quaternion') == [1.0]
        assert "1 frame(s) kept" in settings.status_message
    finally:
        settings.iterations = ITERATIONS
        arm.animation_data_clear()
        scene_io.write_pose(arm, rig, scene["initial"].rotations, scene["initial"].translation)


def test_batch_bad_input_exits_2_with_one_line(scene, capsys):
    tmp = scene["tmp"]
    # As subprocesses (the real exit status), run side by side: no .blend, and a .blend without a body.
    cases = {
        ".blend file not found": [str(tmp / "missing.blend"), "--frames", "1-3"],
        "no PoseFit body": [str(scene["empty_blend"]), "--frames", "1-3"],
    }
    procs = {
        what: subprocess.Popen(
            [sys.executable, str(BATCH), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
        )
        for what, args in cases.items()
    }
    for what, proc in procs.items():
        _out, err = proc.communicate(timeout=120)
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 2, (what, err)
        assert len(lines) == 1 and lines[0].startswith("posefit batch: error:") and what in lines[0], err
    # In this process (same main(), cheaper): a bad frame range, and frames whose target images are missing.
    batch = importlib.import_module(f"{MODULE}.addon.batch")
    for what, frames in (("bad frame range", "3-1"), ("missing target for 2 frame(s)", "2-5")):
        capsys.readouterr()
        assert batch.main(["batch.py", str(scene["blend"]), "--frames", frames]) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("posefit batch: error:") and what in lines[0], lines
    assert "frame_0004.png" in lines[0] and "frame_0005.png" in lines[0]
    assert not (tmp / "scene.blend1").exists()  # nothing was saved


def test_batch_fits_keyframes_and_writes_results(scene, anny):
    blend = scene["tmp"] / "run.blend"
    shutil.copy(scene["blend"], blend)
    out = scene["tmp"] / "results"
    proc = _batch(str(blend), "--frames", "1-3", "--out", str(out), "--threads", "1")
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    progress = [line for line in proc.stdout.splitlines() if line.startswith("posefit batch: frame")]
    assert sum(" done (" in line for line in progress) == 3

    records = {}
    for frame in FRAMES:
        folder = out / f"frame_{frame:04d}"
        assert (folder / "result.json").is_file() and (folder / "fit.npz").is_file()
        records[frame] = json.loads((folder / "result.json").read_text())
        assert records[frame]["settings"]["frame"] == frame
    assert records[1]["settings"]["warm_start_from"] is None and records[2]["settings"]["warm_start_from"] == 1
    # Warm start: frame 2 begins from frame 1's result, much closer to its photo than the scene's first pose.
    assert records[2]["history"][0]["loss"] < 0.8 * records[1]["history"][0]["loss"]

    # The saved .blend (saved in place) holds keyframes at the fitted frames, and they are the fitted poses.
    _check_saved_keys_are_the_fits(scene, anny, blend, out)


def test_batch_unregisters_the_checkout_before_it_returns(scene):
    """The batch registers the checkout as an add-on module when no PoseFit extension is enabled; it must
    unregister it again (Blender 4.2 segfaulted and 4.5 hung at exit otherwise), after success and after bad
    input alike. Run in a fresh process (no extension enabled there)."""
    probe = f"""
import runpy, sys, bpy
batch = runpy.run_path({str(BATCH)!r}, run_name="posefit_batch_probe")
codes = [
    batch["main"](["batch.py", {str(scene["empty_blend"])!r}, "--frames", "1"]),
    batch["main"](["batch.py", {str(scene["blend"])!r}, "--frames", "1", "--iterations", "1",
                   "--save-as", {str(scene["tmp"] / "probe.blend")!r}]),
]
left = [name for name in sys.modules if name.startswith("posefit_checkout")]
print("RESULT", codes, hasattr(bpy.types.Scene, "posefit"), hasattr(bpy.types, "POSEFIT_PT_main"), left)
"""
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=REPO, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    assert result == "RESULT [2, 0] False False []", proc.stdout + proc.stderr


def test_batch_mask_options_reach_the_scene_settings(scene):
    batch = importlib.import_module(f"{MODULE}.addon.batch")
    settings = bpy.context.scene.posefit
    try:
        args = batch.build_parser().parse_args(["x.blend", "--mask", "masks/mask_####.png", "--mask-from-alpha"])
        batch.apply_overrides(settings, args)
        assert settings.mask_path == str(pathlib.Path("masks/mask_####.png").resolve())
        assert settings.mask_from_alpha
    finally:
        settings.mask_path, settings.mask_from_alpha = "", False


def test_batch_on_ray_workers_keys_what_the_workers_fitted(scene, anny):
    """``--workers 2``: the frames go to posecore's batch on a local Ray (chunks of 1: 3 frames are enough work for
    2 workers), without Ray's token-authentication warning; the results are keyed onto the armature and the .blend
    saved; a re-run redoes only a frame whose results are gone."""
    blend = scene["tmp"] / "ray.blend"
    shutil.copy(scene["blend"], blend)
    out = scene["tmp"] / "ray_results"
    proc = _batch(str(blend), "--frames", "1-3", "--out", str(out), "--workers", "2", "--chunk", "1")
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Token authentication" not in proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["frames"], summary["done"], summary["failed"]) == (3, 3, {}) and summary["ray"]["workers"] == 2
    assert summary["serial_because"] is None
    records = {f: json.loads((out / f"frame_{f:04d}" / "result.json").read_text()) for f in FRAMES}
    assert [records[f]["settings"]["warm_start_from"] for f in FRAMES] == [None, None, None]  # 3 chunks
    assert all(r["settings"]["part"] == "left_arm" and r["settings"]["size"] == [SIZE, SIZE] for r in records.values())
    assert "3 of 3 frame(s) fitted and keyed" in proc.stdout

    _check_saved_keys_are_the_fits(scene, anny, blend, out)
    scene_io, rig = scene["scene_io"], scene["rig"]

    # Resume (serially this time) with smoothing: only the missing frame is fitted, the smoothed poses are keyed.
    shutil.rmtree(out / "frame_0003")
    again = _batch(str(blend), "--frames", "1-3", "--out", str(out), "--workers", "0", "--chunk", "1", "--smooth", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fitted_this_run"] == ["frame_0003"] and summary["skipped"] == 2
    smoothed, raw = np.load(out / "smoothed.npz")["rotations"], np.load(out / "sequence.npz")["rotations"]
    assert np.abs(smoothed - raw).max() > 1e-3  # smoothing changed the poses ...
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    arm, _mesh = scene_io.find_body_objects(bpy.context)
    for position, frame in enumerate(FRAMES):
        bpy.context.scene.frame_set(frame)
        rotations = scene_io.read_pose(arm, rig)[0].numpy()
        assert np.allclose(rotations, smoothed[position], atol=1e-4)  # ... and the keys are the smoothed ones


def test_a_small_batch_runs_serially_with_a_one_line_note(scene):
    """3 frames for 2 workers in chunks of 2 (fewer than 2 x 2): no Ray is started (it would take longer than the
    workers save); one line says so, and the frames are fitted and keyed in this process, warm-started in order."""
    blend = scene["tmp"] / "small.blend"
    shutil.copy(scene["blend"], blend)
    out = scene["tmp"] / "small_results"
    proc = _batch(str(blend), "--frames", "1-3", "--out", str(out), "--workers", "2", "--chunk", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    note = (
        "3 frame(s) to fit, fewer than 2 worker(s) x chunk 2: fitting serially in this process (starting Ray would "
        "take longer than the workers save)"
    )
    assert [line for line in proc.stdout.splitlines() if "serially" in line] == [f"posefit batch: {note}"], proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ray"] is None and summary["serial_because"] == note and summary["done"] == 3
    starts = [json.loads((out / f"frame_{f:04d}" / "result.json").read_text())["settings"]["warm_start_from"]
              for f in FRAMES]  # fmt: skip
    assert starts == [None, "frame_0001", None]  # the same chunks as on workers
    assert "3 of 3 frame(s) fitted and keyed" in proc.stdout


def test_batch_on_workers_refuses_what_workers_cannot_follow(scene, capsys):
    """Worker options without --out, and a look the workers cannot express, stop before anything is written."""
    batch = importlib.import_module(f"{MODULE}.addon.batch")
    out = scene["tmp"] / "refused"
    cases = (
        (["--workers", "2"], "need --out DIR"),
        (["--smooth", "2", "--out", str(out)], "--smooth smooths a batch on workers"),
        (["--workers", "0", "--out", str(out), "--vertex-group", "part_nose_tip"], "Vertex group 'part_nose_tip'"),
    )
    for extra, what in cases:
        capsys.readouterr()
        assert batch.main(["batch.py", str(scene["blend"]), "--frames", "1-2", *extra]) == 2, what
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("posefit batch: error:") and what in lines[0], lines
    assert not out.exists()
