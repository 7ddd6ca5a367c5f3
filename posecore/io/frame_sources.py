"""Frames of a sequence, each with a stable name: an image folder, a glob of images, or a movie.

    source = open_frame_source("clip.mp4")          # or "frames/", or "shots/*.png"
    for frame in source.frames:                    # Frame(index, name)
        target = source.load(frame)                # a TargetImage

Names are what a batch run calls its output folders: an image's file name without its extension (its full
name when two images share a stem), a movie's ``frame_000000``, ``frame_000001``, ... in display order.
The same input always gives the same names, so a re-run finds the frames it already did.

Movies are decoded with PyAV (FFmpeg's libraries, inside its wheel). Listing a movie reads its packets (no
decoding); loading a frame seeks to the keyframe before it and decodes forward, and reading frames in order
decodes each once. Without PyAV (the Blender extension does not bundle it), OpenCV's FFmpeg reads them instead
(:mod:`posecore.io.movie_cv2`: the same frames in the same order); ``POSEFIT_MOVIE_BACKEND=cv2`` chooses it.
Sources pickle (an open movie is reopened where it is unpickled), so a worker process can
load its own frames.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from posecore.errors import InputFileError
from posecore.io.targets import TargetImage, read_target_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MOVIE_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")


@dataclass(frozen=True)
class Frame:
    """One frame: ``index`` in the sequence (0-based) and its stable ``name``."""

    index: int
    name: str


def _names_for(paths: list[Path]) -> list[str]:
    """File stems, or full names where two files share a stem."""
    stems = [p.stem for p in paths]
    return [p.stem if stems.count(p.stem) == 1 else p.name for p in paths]


@dataclass
class ImageFilesSource:
    """A sorted list of image files (from a folder or a glob)."""

    description: str
    paths: list[Path]
    frames: list[Frame] = field(init=False)

    def __post_init__(self) -> None:
        names = _names_for(self.paths)
        if len(set(names)) != len(names):
            clash = sorted({n for n in names if names.count(n) > 1})
            raise InputFileError(self.description, f"two images would share the frame name {clash[0]!r}")
        self.frames = [Frame(i, n) for i, n in enumerate(names)]

    def load(self, frame: Frame) -> TargetImage:
        """The frame's image; InputFileError naming the file when it is missing or corrupt."""
        return read_target_image(self.paths[frame.index])


@dataclass
class MovieSource:
    """The video frames of a movie file (its first video stream), in display order."""

    path: Path
    pts: list[int]
    backend: str = "av"
    """``av`` (PyAV; ``pts`` are presentation timestamps) or ``cv2`` (OpenCV; ``pts`` are frame numbers)."""
    frames: list[Frame] = field(init=False)

    def __post_init__(self) -> None:
        digits = max(6, len(str(len(self.pts) - 1)))
        self.frames = [Frame(i, f"frame_{i:0{digits}d}") for i in range(len(self.pts))]
        self._reader = None

    @property
    def description(self) -> str:
        return str(self.path)

    def __getstate__(self) -> dict:
        return {"path": self.path, "pts": self.pts, "backend": self.backend, "frames": self.frames}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reader = None

    def load(self, frame: Frame) -> TargetImage:
        """Decode one frame; InputFileError naming the movie and frame when it cannot be decoded."""
        if self.backend == "cv2":
            from posecore.io.movie_cv2 import Cv2MovieReader

            if not isinstance(self._reader, Cv2MovieReader):
                self._reader = Cv2MovieReader(self.path)
            rgb = torch.from_numpy(self._reader.read(self.pts[frame.index])).float() / 255.0
            return TargetImage(rgb=rgb, source=f"{self.path}#{frame.name}")
        import av

        want = self.pts[frame.index]
        try:
            if self._reader is None or self._reader[2] is None or self._reader[2] >= want:
                self._open_at(want)
            container, frames, _last = self._reader
            for decoded in frames:
                self._reader = (container, frames, decoded.pts)
                if decoded.pts is not None and decoded.pts >= want:
                    if decoded.pts != want:
                        break
                    rgb = torch.from_numpy(decoded.to_ndarray(format="rgb24")).float() / 255.0
                    return TargetImage(rgb=rgb, source=f"{self.path}#{frame.name}")
        except (av.error.FFmpegError, OSError) as exc:
            self.close()
            raise InputFileError(self.path, f"frame {frame.index} cannot be decoded: {exc}") from None
        self.close()
        raise InputFileError(self.path, f"frame {frame.index} (pts {want}) is missing from the movie")

    def _open_at(self, pts: int) -> None:
        import av

        self.close()
        container = av.open(str(self.path))
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if pts != self.pts[0]:
            container.seek(pts, backward=True, any_frame=False, stream=stream)
        self._reader = (container, container.decode(stream), None)

    def close(self) -> None:
        """Close the open decoder (loading reopens it)."""
        if self._reader is not None:
            if isinstance(self._reader, tuple):
                self._reader[0].close()
            else:
                self._reader.close()
            self._reader = None


@dataclass
class SelectedFrames:
    """Chosen frames of another source, under names the caller gives them (a Blender frame range hands
    ``frame_0001``, ``frame_0002``, ... over to a batch, whatever its images are called).

    Attributes:
        source: the frames' source. frames: each chosen frame, its ``index`` into ``source`` and its own name.
    """

    source: ImageFilesSource | MovieSource
    frames: list[Frame]

    def __post_init__(self) -> None:
        names = [f.name for f in self.frames]
        if len(set(names)) != len(names):
            clash = sorted({n for n in names if names.count(n) > 1})
            raise InputFileError(self.description, f"two chosen frames share the name {clash[0]!r}")
        count = len(self.source.frames)
        outside = [f.index for f in self.frames if not 0 <= f.index < count]
        if outside:
            raise InputFileError(self.description, f"has {count} frames; frame index {outside[0]} does not exist")

    @property
    def description(self) -> str:
        return self.source.description

    def load(self, frame: Frame) -> TargetImage:
        """The frame's image from the source (``frame.index`` indexes the source)."""
        return self.source.load(frame)

    def close(self) -> None:
        """Close the source's open decoder, if it has one."""
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


def movie_backend() -> str:
    """``av`` when PyAV is installed (unless ``POSEFIT_MOVIE_BACKEND=cv2``), else ``cv2`` (OpenCV's FFmpeg)."""
    chosen = os.environ.get("POSEFIT_MOVIE_BACKEND", "").strip().lower()
    if chosen in ("av", "cv2"):
        return chosen
    return "av" if importlib.util.find_spec("av") is not None else "cv2"


def _list_movie(path: Path) -> MovieSource:
    if movie_backend() == "cv2":
        from posecore.io.movie_cv2 import count_frames

        return MovieSource(path, list(range(count_frames(path))), backend="cv2")
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputFileError(path, f"reading movies needs PyAV: pip install av==18.1.0 ({exc})") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputFileError(path, "has no video stream")
            stream = container.streams.video[0]
            pts = sorted({int(p.pts) for p in container.demux(stream) if p.pts is not None and p.size > 0})
    except av.error.FFmpegError as exc:
        raise InputFileError(path, f"is not a movie FFmpeg can read: {exc}") from None
    if not pts:
        raise InputFileError(path, "has no video frames")
    return MovieSource(path, pts)


def open_frame_source(spec: str | os.PathLike[str]) -> ImageFilesSource | MovieSource:
    """The frames named by ``spec``: a folder of images, a glob pattern (``shots/*.png``) or a movie file.

    Raises:
        InputFileError: nothing there, no images in the folder or glob, an unreadable movie.
    """
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise InputFileError(path, f"folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return ImageFilesSource(text, paths)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageFilesSource(text, [path])
        return _list_movie(path)
    if glob.has_magic(text):
        paths = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if not paths:
            raise InputFileError(text, "the pattern matches no files")
        return ImageFilesSource(text, paths)
    raise InputFileError(path, "not found (expected a folder of images, a glob pattern or a movie file)")
