"""Targets that change over time: which image (or movie frame) each scene frame is fitted to, and the camera
background that shows it.

Target kinds (:func:`target_source`), with ``number = frame + offset`` the image number a scene frame uses:

- an image file: the same photo for every frame;
- a pattern with a run of ``#`` (``shots/frame_####.png``): the number, zero-padded to the run's length;
- a folder: its images sorted by name, numbered from 1;
- a movie (``.mp4``, ``.mov``, ``.mkv``, ...): its frames, numbered from 1.

Reading folders and movies is ``posecore.io.frame_sources`` (what ``posecore batch`` uses too; movies through
PyAV, FFmpeg's libraries); this module adds Blender's side: ``#`` sequences, the frame offset, ``//`` paths
and the camera background.

Imports nothing else from the add-on (the modules build on each other without a circle: ``scene_io`` and
``targets`` at the bottom, then ``fit_driver``, then ``frames``, then ``operators``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import torch
from torch.nn import functional

from posecore.errors import InputFileError, ParameterError
from posecore.io.frame_sources import MOVIE_EXTENSIONS, MovieSource, open_frame_source

_HASHES = re.compile(r"#+")
_MOVIES: dict[str, tuple[MovieSource, int]] = {}  # listed once per movie file and process (listing reads every packet)


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

    def require(self, frames: Sequence[int]) -> None:
        """Raise InputFileError naming (up to three of) the frames whose target does not exist."""
        missing = self.missing(frames)
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise InputFileError(", ".join(missing[:3]) + more, f"missing target for {len(missing)} frame(s)")

    def size(self, frame: int) -> tuple[int, int]:
        """(width, height) of the frame's target as shown (EXIF orientation applied), pixels."""
        if self.kind == "movie":
            return tuple(
                read_movie_frame(self.path, max(1, min(self.number(frame), movie_length(self.path)))).shape[1::-1]
            )
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
        files = tuple(str(p) for p in open_frame_source(absolute).paths)  # sorted images; none: InputFileError
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
def movie_source(path: str) -> MovieSource:
    """The movie's frames (``posecore.io.frame_sources``: decoded by PyAV, FFmpeg's libraries), listed once."""
    if not os.path.isfile(path):
        raise InputFileError(path, "movie not found")
    key = os.path.realpath(path)
    stamp = os.stat(key).st_mtime_ns
    cached = _MOVIES.get(key)
    if cached is None or cached[1] != stamp:
        source = open_frame_source(key)
        if not isinstance(source, MovieSource):
            raise InputFileError(path, "is not a movie")
        _MOVIES[key] = (source, stamp)
    return _MOVIES[key][0]


def movie_length(path: str) -> int:
    """Number of frames in the movie."""
    return len(movie_source(path).frames)


def read_movie_frame(path: str, number: int) -> torch.Tensor:
    """(H, W, 3) float32 frame ``number`` (1-based, display order) of a movie, sRGB values in [0, 1]."""
    source = movie_source(path)
    if not 1 <= number <= len(source.frames):
        raise InputFileError(path, f"has {len(source.frames)} frames; frame {number} does not exist")
    return source.load(source.frames[number - 1]).rgb


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) -> (height, width, 3), antialiased bilinear (as ``posecore.io.images.load_image``)."""
    width, height = size
    if tuple(image.shape[:2]) == (height, width):
        return image
    x = image.permute(2, 0, 1).unsqueeze(0)
    y = functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return y.squeeze(0).permute(1, 2, 0).clamp(0.0, 1.0).contiguous()


# ---------------------------------------------------------------------------------------------- display
def set_background_image(cam_obj: bpy.types.Object, path: str, offset: int = 0) -> None:
    """Show the target behind the camera view: a photo, or an image sequence / movie that follows the frame
    (image number = frame + ``offset``, as the fit reads it)."""
    source = target_source(path, offset)
    image = bpy.data.images.load(first_file(path), check_existing=True)
    data = cam_obj.data
    background = data.background_images[0] if len(data.background_images) else data.background_images.new()
    background.image = image
    background.alpha = 1.0
    background.display_depth = "BACK"
    data.show_background_images = True
    user = background.image_user
    if source.kind == "sequence":
        image.source = "SEQUENCE"
        last = max(sequence_files(source))
        user.frame_start, user.frame_offset = 1, offset
        user.frame_duration = max(1, last - offset)
        user.use_auto_refresh = True
    elif source.kind == "movie":
        user.frame_start, user.frame_offset = 1, offset
        user.frame_duration = image.frame_duration
        user.use_auto_refresh = True
