"""Hand a scene's frame range to ``posecore batch`` (chunks fanned out over Ray, or run serially) and key its
results onto the armature.

The in-Blender frame driver (:mod:`.frames`) fits one frame after another in this process. For long ranges the
headless batch (``addon/batch.py --workers N`` or ``--address ADDR``) builds the same job as
``python -m posecore batch`` instead: the scene's target frames under the names ``frame_NNNN`` (the Blender
frame), the body's pose and the scene camera at the first frame as the pose that starts each chunk, and the
panel's settings as fit options; then it keys every fitted frame (optionally the temporally smoothed poses).

What differs from the in-Blender driver, because the workers see files, not the scene: within a chunk each
frame starts from the previous frame's result *including its camera* (an animated scene camera is read at the
first frame only), the look is the whole body or one of PoseFit's ``part_...`` vertex groups, and a person
mask is one image for every frame or the target's alpha channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import bpy
import numpy as np
import torch

from posecore.errors import InputFileError, ParameterError

from . import scene_io, targets
from .fit_driver import check_target_shape, vposer_folder
from .properties import chosen_renderer, preferences

START_POSE_FILE = "start_pose.npz"
"""The scene's pose and camera at the first frame, in ``OUT``: what starts each chunk (kept on a re-run)."""


def frame_name(frame: int) -> str:
    """The result folder of a scene frame (the same as the in-Blender batch writes)."""
    return f"frame_{frame:04d}"


def selected_frames(source: targets.TargetSource, frames: Sequence[int]):
    """The target frames of scene ``frames`` as a :class:`~posecore.io.frame_sources.SelectedFrames`.

    Raises:
        InputFileError: a frame's target is missing.
    """
    from posecore.io.frame_sources import Frame, ImageFilesSource, SelectedFrames

    source.require(frames)
    if source.kind == "movie":
        movie = targets.movie_source(source.path)
        chosen = [Frame(source.number(f) - 1, frame_name(f)) for f in frames]  # movie frames count from 1
        return SelectedFrames(movie, chosen)
    if source.kind == "image":
        photo = ImageFilesSource(source.path, [Path(source.path)])
        return SelectedFrames(photo, [Frame(0, frame_name(f)) for f in frames])
    files = ImageFilesSource(source.path, [Path(source.frame_file(f)) for f in frames])
    return SelectedFrames(files, [Frame(i, frame_name(f)) for i, f in enumerate(frames)])


def look_part(vertex_group: str) -> str | None:
    """The posecore part of the look's vertex group: None for the whole body, ``left_arm`` for ``part_left_arm``.

    Raises:
        ParameterError: any other vertex group (a batch's workers know PoseFit's parts only).
    """
    from posecore.fitting.parts import PART_NAMES

    if not vertex_group:
        return None
    part = vertex_group.removeprefix(scene_io.PART_PREFIX)
    if vertex_group.startswith(scene_io.PART_PREFIX) and part in PART_NAMES:
        return part
    raise ParameterError(
        f"Vertex group {vertex_group!r}: a batch on workers fits the whole body or one of PoseFit's part groups "
        f"({', '.join(scene_io.PART_PREFIX + p for p in PART_NAMES)}); fit this group without workers"
    )


def fit_options(context: bpy.types.Context, source: targets.TargetSource, start_pose: Path):
    """The panel's settings as :class:`~posecore.fitting.setup.FitOptions` for the workers.

    Raises:
        ParameterError, InputFileError: settings the workers cannot follow (a per-frame mask sequence, alpha of a
        movie, a custom vertex group), each naming the panel field.
    """
    from posecore.fitting.setup import FitOptions

    scene = context.scene
    settings = scene.posefit
    arm_obj, _mesh = scene_io.find_body_objects(context)
    mask = None
    if settings.mask_path:
        masks = targets.target_source(settings.mask_path, settings.target_offset)
        if masks.kind != "image":
            raise InputFileError(
                masks.path, "Person mask: a batch on workers takes one mask image for every frame, not a sequence"
            )
        mask = masks.path
    if settings.mask_from_alpha and source.kind == "movie":
        raise InputFileError(source.path, "Mask from alpha: a movie has no alpha channel; set a Person mask")
    prefs = preferences(context)
    vposer = vposer_folder(context)
    spec = str(arm_obj[scene_io.MODEL_KEY])
    return FitOptions(
        init=str(start_pose),
        model=spec,
        size=min(settings.fit_size, max(scene_io.render_size(scene))),
        mask=mask,
        mask_from_alpha=bool(settings.mask_from_alpha and not mask),
        part=look_part(settings.vertex_group),
        preset=settings.preset,
        iterations=settings.iterations or None,
        renderer=chosen_renderer(prefs),
        vposer=vposer if vposer and spec.startswith("smplx") else None,
    )


def scene_batch_job(context: bpy.types.Context, frames: Sequence[int], out: str, chunk: int, threads: int = 1):
    """The scene's frame range as a posecore :class:`~posecore.batch.plan.BatchJob` writing to ``out``.

    Writes ``out/start_pose.npz`` (the body and scene camera at the first frame), unless a run into ``out`` wrote
    it before: a resumed run starts its chunks from the same pose as the first try.

    Raises:
        ParameterError, InputFileError: no body or camera, bad settings, missing targets, an unusable ``out``.
    """
    from posecore.batch.plan import BatchJob
    from posecore.io.atomic import check_output_dir, claim_output_dir

    if not frames:
        raise ParameterError("the frame range is empty")
    scene = context.scene
    settings = scene.posefit
    if scene_io.find_body_objects(context)[0] is None:
        raise ParameterError("no PoseFit body in the scene: import one first")
    if scene.camera is None:
        raise ParameterError("the scene has no active camera: the fit looks through it")
    source = targets.target_source(settings.target_path, settings.target_offset)
    chosen = selected_frames(source, frames)
    scene.frame_set(frames[0])
    check_target_shape(source, scene)
    folder = check_output_dir(out)
    start_pose = folder / START_POSE_FILE
    options = fit_options(context, source, start_pose)  # bad settings fail here, before the folder is made
    claim_output_dir(folder)
    if not start_pose.is_file():
        scene_io.save_fit(context, str(start_pose))
    return BatchJob(chosen, options, str(folder), chunk, threads=threads)


def _moved(values: np.ndarray, start: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """(J,) bool: joints whose rotation differs from ``start`` in any frame; values (T, J, 3), start (J, 3)."""
    return np.abs(values - start[None]).max(axis=(0, 2)) > tolerance


def key_results(context: bpy.types.Context, job, frames: Sequence[int], smoothed_file: Path | None = None) -> list[int]:
    """Write each fitted frame's pose onto the armature and keyframe it at that scene frame.

    Keys the joints the fits moved (their rotations, and the root's location when the translation moved), and
    the camera at frames whose fit turned it. ``smoothed_file``: take the poses from this sequence file
    (``OUT/smoothed.npz``) instead of the frames' own ``fit.npz``.

    Returns:
        The scene frames keyed (those with a result), in order.
    """
    from posecore.batch.plan import RESULT_FILE
    from posecore.bodies import params_from_init
    from posecore.cameras.init_camera import camera_from_init
    from posecore.io.init_files import read_init, read_init_sequence

    scene = context.scene
    arm_obj, _mesh = scene_io.find_body_objects(context)
    spec = str(arm_obj[scene_io.MODEL_KEY])
    body = scene_io.get_body(spec)
    rig = scene_io.get_rig(spec, body, torch.tensor(list(arm_obj[scene_io.SHAPE_KEY]), dtype=torch.float32))
    sequence = read_init_sequence(smoothed_file) if smoothed_file is not None else None
    inits, angles = {}, {}
    for position, frame in enumerate(frames):
        result = job.frame_dir(frame_name(frame)) / RESULT_FILE
        if not result.is_file():
            continue
        inits[frame] = sequence[position] if sequence is not None else read_init(result)
        with np.load(result, allow_pickle=False) as data:
            angles[frame] = float(np.abs(data["camera_angle"]).max()) if "camera_angle" in data.files else 0.0
    if not inits:
        return []
    start = params_from_init(body, read_init(Path(job.out) / START_POSE_FILE))
    params = {frame: params_from_init(body, init) for frame, init in inits.items()}
    rotations = np.stack([p.rotations.numpy() for p in params.values()])
    moved = _moved(rotations, start.rotations.numpy())
    translations = np.stack([p.translation.numpy() for p in params.values()])
    moved_root = bool(np.abs(translations - start.translation.numpy()[None]).max() > 1e-6)
    width, height = scene_io.render_size(scene)
    for frame, p in params.items():
        scene.frame_set(frame)
        scene_io.write_pose(arm_obj, rig, p.rotations, p.translation)
        for j in np.nonzero(moved)[0]:
            name = body.joint_names[j]
            arm_obj.pose.bones[name].keyframe_insert("rotation_quaternion", frame=frame, group=name)
        if moved_root:
            root = body.joint_names[0]
            arm_obj.pose.bones[root].keyframe_insert("location", frame=frame, group=root)
        if angles[frame] > 0 and inits[frame].camera is not None:
            camera = camera_from_init(inits[frame].camera, width, height)
            scene_io.set_camera_pose(scene.camera, camera, arm_obj)
            scene.camera.keyframe_insert("location", frame=frame)
            scene.camera.keyframe_insert("rotation_euler", frame=frame)
    return list(params)


def run_on_workers(
    context: bpy.types.Context,
    frames: Sequence[int],
    out: str,
    workers: int | None,
    address: str | None = None,
    chunk: int = 16,
    smooth: float = 0.0,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> dict:
    """Fit scene ``frames`` with ``posecore batch`` (``workers`` Ray workers, or ``address``'s cluster; 0 = serial
    in this process), then key the results.

    Returns:
        posecore's batch summary, plus ``keyed``: the scene frames keyed.
    """
    from posecore.batch.runner import run_batch
    from posecore.batch.sequence_files import SMOOTHED_FILE, write_sequence_files

    if workers != 0 or address:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ParameterError(
                "fitting on Ray workers needs the ray package in this Python (pip install ray; it is not in the "
                "extension's zip): run the batch with plain Python and the bpy module, or with --workers 0"
            ) from None
    job = scene_batch_job(context, frames, out, chunk, threads)
    where = f"the Ray cluster at {address}" if address else (f"{workers} local Ray worker(s)" if workers else "")
    log(f"{len(frames)} frame(s) in chunks of {chunk} on {where or 'this process (no Ray)'}; results in {job.out}")
    try:
        summary = run_batch(job, workers=workers, address=address, note=log)
    except KeyboardInterrupt:
        key_results(context, job, frames)  # the frames finished before the interrupt keep their keys
        raise
    smoothed_file = None
    if summary["done"] == summary["frames"]:
        write_sequence_files(job, smooth)
        if smooth > 0:
            smoothed_file = Path(job.out) / SMOOTHED_FILE
    for name, reason in summary["failed"].items():
        log(f"frame {name} failed: {reason}")
    summary["keyed"] = key_results(context, job, frames, smoothed_file)
    return summary
