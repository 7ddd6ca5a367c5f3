"""Frame ranges: the driver that fits each frame of a range to its target (:mod:`.targets`: image sequences,
folders of images, movies), warm-started from the previous frame's result, and the per-frame result files.

:class:`FrameRangeDriver` reuses :class:`~.fit_driver.FitDriver` (and so ``PoseFitter.steps()``) for every
frame; the modal operator, ``execute()`` and the headless batch (:mod:`.batch`) all step it the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy
import torch

from posecore.errors import ParameterError

from . import scene_io
from .fit_driver import FitDriver
from .targets import (  # noqa: F401 (re-exported: frames.target_source etc. are what callers know)
    TargetSource,
    first_file,
    movie_length,
    read_movie_frame,
    sequence_files,
    target_source,
)


# ---------------------------------------------------------------------------------------------- frame ranges
def parse_frame_range(text: str) -> list[int]:
    """Frames from ``"1-10"``, ``"7"`` or a comma list of both (``"1-3,8,10-12"``); sorted, without repeats.

    Raises:
        ParameterError: anything else, an empty range (``"5-3"``) or a negative frame.
    """
    frames: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise ParameterError(f"bad frame range {text!r}: use FIRST-LAST, a frame, or a comma list (1-10,15)")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ParameterError(f"bad frame range {text!r}: {first}-{last} is empty (the last frame comes first)")
        frames.update(range(first, last + 1))
    return sorted(frames)


# ---------------------------------------------------------------------------------------------- the driver
@dataclass
class FrameResult:
    """One fitted frame: what the result files need.

    Attributes:
        frame: scene frame. target: its target's description. warm_start_from: the frame whose result started
        this one (None for the first). first, last: the first and final :class:`FitState`. history: per-iteration
        dicts (``posecore.cli.history_of``). target_image: (H, W, 3) the target at the fit size.
        body: the body model. preset: the preset's name. vertex_group: the look's group ('' = whole body).
    """

    frame: int
    target: str
    warm_start_from: int | None
    first: object
    last: object
    history: list[dict]
    target_image: torch.Tensor
    body: object
    preset: str
    vertex_group: str


class FrameRangeDriver:
    """Fit each frame of a range in turn; stepped by the caller, one optimisation step per :meth:`step`.

    Each frame: go to it (``scene.frame_set``), write the previous frame's result onto the bones (warm start),
    fit it with a :class:`~.fit_driver.FitDriver` and keyframe the result at that frame. :meth:`cancel` keeps the
    frames done and restores the pose (and camera) of the frame in progress.

    Args:
        context: Blender context (its scene holds the body, camera and ``scene.posefit`` settings).
        frames: scene frames to fit, in order.
        on_frame_done: called with each :class:`FrameResult` once its keyframes are written.
        detect: called with the first frame before it is fitted, to start it from a detected pose instead of the
            body's current one (the frames after it are warm-started as usual); it may replace the body.
    """

    def __init__(
        self,
        context: bpy.types.Context,
        frames: Sequence[int],
        on_frame_done: Callable[[FrameResult], None] | None = None,
        detect: Callable[[int], object] | None = None,
    ) -> None:
        if not frames:
            raise ParameterError("the frame range is empty")
        self.context, self.scene = context, context.scene
        self.frames = list(frames)
        self.on_frame_done = on_frame_done
        self.detect = detect
        arm_obj, _mesh = scene_io.find_body_objects(context)
        if arm_obj is None and detect is None:
            raise ParameterError("no PoseFit body in the scene: import one first")
        settings = self.scene.posefit
        self.source = target_source(settings.target_path, settings.target_offset)
        self.source.require(self.frames)
        from posecore.fitting.presets import get_preset

        preset = get_preset(settings.preset).with_overrides(iterations=settings.iterations or None)
        self.steps_per_frame = preset.iterations + 1
        self.index = 0
        self.done: list[FrameResult] = []
        self.driver = None  # FitDriver of the frame in progress
        self.state = None
        self._previous = None  # (frame, BodyParams) of the last frame done
        self._frame_snapshot: dict | None = None
        self._first = None
        self._history: list[dict] = []

    # ------------------------------------------------------------------ progress
    @property
    def total(self) -> int:
        """Optimisation steps over the whole range."""
        return self.steps_per_frame * len(self.frames)

    @property
    def progress(self) -> int:
        """Steps done over the whole range."""
        return self.index * self.steps_per_frame + (len(self._history) if self.driver is not None else 0)

    @property
    def complete(self) -> bool:
        """True once every frame is fitted and keyframed."""
        return self.index >= len(self.frames)

    @property
    def frame(self) -> int:
        """The frame in progress (the last one once complete)."""
        return self.frames[min(self.index, len(self.frames) - 1)]

    @property
    def status_text(self) -> str:
        """One line for the status bar."""
        iteration = self.state.iteration if self.state is not None and self.driver is not None else 0
        loss = f", loss {self.state.loss:.4g}" if self.state is not None else ""
        return (
            f"PoseFit: frame {self.frame} ({min(self.index + 1, len(self.frames))}/{len(self.frames)}), "
            f"iteration {iteration}/{self.steps_per_frame - 1}{loss} (Esc cancels)"
        )

    # ------------------------------------------------------------------ stepping
    def _start_frame(self) -> None:
        frame = self.frames[self.index]
        self.scene.frame_set(frame)
        if self._previous is None and self.detect is not None:
            self.detect(frame)  # no warm start: begin from the person detected in this frame's image
        arm_obj, _mesh = scene_io.find_body_objects(self.context)
        self._frame_snapshot = scene_io.snapshot_pose(arm_obj)
        if self._previous is not None:
            spec = str(arm_obj[scene_io.MODEL_KEY])
            body = scene_io.get_body(spec)
            rig = scene_io.get_rig(spec, body, torch.tensor(list(arm_obj[scene_io.SHAPE_KEY]), dtype=torch.float32))
            params = self._previous[1]
            scene_io.write_pose(arm_obj, rig, params.rotations, params.translation)
        try:
            self.driver = FitDriver(self.context, keyframe=True, source=self.source)
        except Exception:
            scene_io.restore_pose(arm_obj, self._frame_snapshot)
            raise
        self._first, self._history = None, []

    def step(self):
        """One optimisation step of the frame in progress (starting it first if needed); returns its FitState.

        After a frame's final evaluation its result is written, keyframed and reported, and the next frame
        starts on the following call.
        """
        from posecore.cli import history_of

        if self.complete:
            raise RuntimeError("all frames are done")
        if self.driver is None:
            self._start_frame()
        state = self.driver.step()
        self.state = state
        if self._first is None:
            self._first = state
        self._history.extend(history_of([state]))
        settings = self.scene.posefit
        settings.status_frame = self.frame
        settings.status_message = (
            f"Frame {self.frame} ({self.index + 1}/{len(self.frames)}): {state.iteration}/{self.steps_per_frame - 1}"
        )
        if state.final:
            self._finish_frame()
        return state

    def _finish_frame(self) -> None:
        driver = self.driver
        driver.finish()
        settings = self.scene.posefit
        result = FrameResult(
            frame=self.frame,
            target=self.source.describe(self.frame),
            warm_start_from=self._previous[0] if self._previous is not None else None,
            first=self._first,
            last=self.state,
            history=self._history,
            target_image=driver.target,
            body=driver.body,
            preset=driver.fitter.preset.name,
            vertex_group=settings.vertex_group,
        )
        self._previous = (self.frame, self.state.params.clone())
        self.done.append(result)
        self.driver = None
        self.index += 1
        if self.on_frame_done is not None:
            self.on_frame_done(result)

    def finish(self) -> None:
        """Status once the range is complete."""
        self.scene.posefit.status_message = f"Done: {len(self.done)} frame(s) fitted and keyframed"

    def cancel(self) -> None:
        """Stop: frames done keep their keyframes; the frame in progress gets its pose and camera back."""
        if self.driver is not None:
            self.driver.cancel()
            scene_io.restore_pose(self.driver.arm_obj, self._frame_snapshot)
            self.driver = None
        self.scene.posefit.status_message = (
            f"Cancelled at frame {self.frame}: {len(self.done)} frame(s) kept, the frame in progress restored"
        )

    def run(self) -> list[FrameResult]:
        """Fit every frame to the end (background mode, batch)."""
        while not self.complete:
            self.step()
        self.finish()
        return self.done


# ---------------------------------------------------------------------------------------------- result files
def write_frame_results(out_dir: str | os.PathLike[str], result: FrameResult, extra: dict | None = None) -> Path:
    """Write posecore's result files of one frame into ``out_dir/frame_NNNN/`` (result.json, fit.npz).

    Returns:
        The frame's folder.
    """
    from posecore.cli import summarise
    from posecore.results import fit_arrays, result_record, write_fit_outputs

    last = result.last
    metrics = summarise(result.body, [result.first, last], result.target_image)
    settings = {
        "command": "blender-frames",
        "frame": result.frame,
        "target": result.target,
        "warm_start_from": result.warm_start_from,
        "preset": result.preset,
        "vertex_group": result.vertex_group,
        "iterations": last.iteration,
        "threads": torch.get_num_threads(),
        **(extra or {}),
    }
    record = result_record(result.body, last.params, last.camera, last.camera_angle, result.history, metrics, settings)
    arrays = fit_arrays(result.body, last.params, last.camera, last.camera_angle)
    return write_fit_outputs(Path(out_dir) / f"frame_{result.frame:04d}", record, arrays, None)
