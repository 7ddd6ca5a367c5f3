"""Frame ranges: targets that change over time (image sequences, folders of images, movies) and the driver that
fits each frame of a range, warm-started from the previous frame's result.

Target kinds (:func:`target_source`), with ``number = frame + offset`` the image number a scene frame uses:

- an image file: the same photo for every frame;
- a pattern with a run of ``#`` (``shots/frame_####.png``): the number, zero-padded to the run's length;
- a folder: its images sorted by name, numbered from 1;
- a movie (``.mp4``, ``.mov``, ``.mkv``, ...): its frames, numbered from 1, decoded by Blender's own FFmpeg.

:class:`FrameRangeDriver` reuses :class:`~.operators.FitDriver` (and so ``PoseFitter.steps()``) for every
frame; the modal operator, ``execute()`` and the headless batch (:mod:`.batch`) all step it the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
import torch
from torch.nn import functional

from posecore.errors import InputFileError, ParameterError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MOVIE_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv")
_HASHES = re.compile(r"#+")
_MOVIE_TEXTURE = "PoseFit movie reader"


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


# ---------------------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class TargetSource:
    """Where each frame's target image comes from.

    Attributes:
        kind: ``image``, ``sequence`` (``#`` pattern), ``folder`` or ``movie``.
        path: absolute path (the pattern, folder or file).
        offset: image number = scene frame + offset.
        files: the folder's images, sorted (``folder`` only).
    """

    kind: str
    path: str
    offset: int = 0
    files: tuple[str, ...] = field(default=())

    @property
    def per_frame(self) -> bool:
        """True when frames have different targets."""
        return self.kind != "image"

    def number(self, frame: int) -> int:
        """The image (or movie frame) number scene frame ``frame`` uses."""
        return frame + self.offset

    def frame_file(self, frame: int) -> str:
        """The image file of ``frame`` (for movies: the movie file)."""
        number = self.number(frame)
        if self.kind == "sequence":
            run = _HASHES.findall(os.path.basename(self.path))[-1]
            head, _, tail = self.path.rpartition(run)
            return f"{head}{number:0{len(run)}d}{tail}"
        if self.kind == "folder":
            if 1 <= number <= len(self.files):
                return self.files[number - 1]
            return os.path.join(self.path, f"<image {number} of {len(self.files)}>")
        return self.path

    def describe(self, frame: int) -> str:
        """Human-readable name of the frame's target (``clip.mp4 frame 12``, ``frame_0012.png``)."""
        if self.kind == "movie":
            return f"{self.path} (movie frame {self.number(frame)})"
        return self.frame_file(frame)

    def missing(self, frames: Sequence[int]) -> list[str]:
        """Descriptions of the targets that do not exist for ``frames`` (empty when all do)."""
        if self.kind == "movie":
            length = movie_length(self.path)
            return [self.describe(f) for f in frames if not 1 <= self.number(f) <= length]
        return [self.describe(f) for f in frames if not os.path.isfile(self.frame_file(f))]

    def size(self, frame: int) -> tuple[int, int]:
        """(width, height) of the frame's target as shown (EXIF orientation applied), pixels."""
        if self.kind == "movie":
            return tuple(_movie_image(self.path).size)
        from posecore.io.images import image_size

        return image_size(self.frame_file(frame))

    def load(self, frame: int, size: tuple[int, int]) -> torch.Tensor:
        """(H, W, 3) float target of ``frame`` at ``size`` = (width, height), sRGB values in [0, 1]."""
        if self.kind == "movie":
            return _resize(read_movie_frame(self.path, self.number(frame)), size)
        from posecore.io.images import load_image

        return load_image(self.frame_file(frame), size=size)


def target_source(path: str, offset: int = 0) -> TargetSource:
    """Classify the target setting (a Blender path: ``//`` is relative to the .blend).

    Raises:
        ParameterError: an empty setting. InputFileError: a folder without images.
    """
    if not path:
        raise ParameterError("choose a target image, image sequence (frame_####.png), folder or movie")
    absolute = os.path.normpath(bpy.path.abspath(path))
    if os.path.isdir(absolute):
        files = tuple(
            str(p) for p in sorted(Path(absolute).iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if not files:
            raise InputFileError(absolute, f"folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return TargetSource("folder", absolute, offset, files)
    if _HASHES.search(os.path.basename(absolute)):
        return TargetSource("sequence", absolute, offset)
    if absolute.lower().endswith(MOVIE_EXTENSIONS):
        return TargetSource("movie", absolute, offset)
    return TargetSource("image", absolute, offset)


def sequence_files(source: TargetSource) -> dict[int, str]:
    """The files on disk that match a ``#`` pattern, by image number."""
    folder, name = Path(source.path).parent, Path(source.path).name
    pieces, runs = _HASHES.split(name), _HASHES.findall(name)
    regex = re.escape(pieces[0]) + "".join(
        rf"(\d{{{len(run)},}})" + re.escape(piece) for run, piece in zip(runs, pieces[1:], strict=True)
    )
    found = {}
    for p in folder.iterdir() if folder.is_dir() else ():
        match = re.fullmatch(regex, p.name)
        if match is not None:
            found[int(match.group(len(runs)))] = str(p)
    return found


def first_file(path: str) -> str:
    """A file that stands for the whole target: what Blender loads as the background image."""
    source = target_source(path)
    if source.kind == "sequence":
        found = sequence_files(source)
        if not found:
            raise InputFileError(source.path, "no image matches this sequence pattern")
        return found[min(found)]
    if source.kind == "folder":
        return source.files[0]
    return source.path


# ---------------------------------------------------------------------------------------------- movies
def _movie_image(path: str) -> bpy.types.Image:
    if not os.path.isfile(path):
        raise InputFileError(path, "movie not found")
    try:
        image = bpy.data.images.load(path, check_existing=True)
    except RuntimeError as exc:
        raise InputFileError(path, f"Blender cannot open this movie ({exc})") from None
    if image.source != "MOVIE" or image.frame_duration < 1:
        raise InputFileError(path, "Blender does not read this file as a movie")
    return image


def movie_length(path: str) -> int:
    """Number of frames in the movie."""
    return int(_movie_image(path).frame_duration)


def read_movie_frame(path: str, number: int) -> torch.Tensor:
    """(H, W, 3) float32 frame ``number`` (1-based) of a movie, sRGB values in [0, 1], decoded by Blender.

    Blender exposes a movie's pixels through ``Image.pixels`` only for the frame it decoded last, and without a
    GPU (background mode) ``Image.gl_load`` is unavailable. An image texture evaluated with an image user set
    to the frame decodes it: this is the headless way in.
    """
    image = _movie_image(path)
    if not 1 <= number <= image.frame_duration:
        raise InputFileError(path, f"has {image.frame_duration} frames; frame {number} does not exist")
    texture = bpy.data.textures.new(_MOVIE_TEXTURE, "IMAGE")
    try:
        texture.image = image
        user = texture.image_user
        user.frame_start, user.frame_offset, user.use_cyclic = 1, 0, False
        user.frame_duration = image.frame_duration
        user.frame_current = number
        texture.evaluate((0.0, 0.0, 0.0))
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.textures.remove(texture)
    rgb = pixels.reshape(height, width, 4)[::-1, :, :3]  # Blender's rows run bottom to top
    return torch.from_numpy(np.ascontiguousarray(rgb)).clamp(0.0, 1.0)


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) -> (height, width, 3), antialiased bilinear (as ``posecore.io.images.load_image``)."""
    width, height = size
    if tuple(image.shape[:2]) == (height, width):
        return image
    x = image.permute(2, 0, 1).unsqueeze(0)
    y = functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return y.squeeze(0).permute(1, 2, 0).clamp(0.0, 1.0).contiguous()


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
    fit it with a :class:`~.operators.FitDriver` and keyframe the result at that frame. :meth:`cancel` keeps the
    frames done and restores the pose (and camera) of the frame in progress.

    Args:
        context: Blender context (its scene holds the body, camera and ``scene.posefit`` settings).
        frames: scene frames to fit, in order.
        on_frame_done: called with each :class:`FrameResult` once its keyframes are written.
    """

    def __init__(
        self,
        context: bpy.types.Context,
        frames: Sequence[int],
        on_frame_done: Callable[[FrameResult], None] | None = None,
    ) -> None:
        from . import scene_io

        if not frames:
            raise ParameterError("the frame range is empty")
        self.context, self.scene = context, context.scene
        self.frames = list(frames)
        self.on_frame_done = on_frame_done
        arm_obj, _mesh = scene_io.find_body_objects(context)
        if arm_obj is None:
            raise ParameterError("no PoseFit body in the scene: import one first")
        settings = self.scene.posefit
        self.source = target_source(settings.target_path, settings.target_offset)
        missing = self.source.missing(self.frames)
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise InputFileError(", ".join(missing[:3]) + more, f"missing target for {len(missing)} frame(s)")
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
        from . import scene_io
        from .operators import FitDriver

        frame = self.frames[self.index]
        self.scene.frame_set(frame)
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
        from . import scene_io

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
