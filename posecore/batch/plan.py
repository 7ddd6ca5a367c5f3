"""What a batch run does: the job, its contiguous chunks of frames, and which frames are already done.

A frame is done when ``OUT/<frame name>/fit.npz`` exists: frame folders are written all at once
(:func:`posecore.io.atomic.atomic_output_dir`), so a folder that exists is complete. Chunk boundaries depend
only on the frame count and the chunk size, so a re-run cuts the same chunks and skips what is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from posecore.errors import InputFileError, ParameterError
from posecore.fitting.setup import FitOptions
from posecore.io.frame_sources import Frame, ImageFilesSource, MovieSource, SelectedFrames
from posecore.io.init_files import BodyInit, read_init, read_init_sequence

RESULT_FILE = "fit.npz"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class BatchJob:
    """One batch run, as every worker sees it (pickles to Ray workers).

    Attributes:
        source: the frames.
        options: fit options shared by every frame (``options.init`` starts each chunk; ``options.image`` unused).
        out: output folder; must be on a file system every worker sees.
        chunk_size: frames per chunk (warm starts run within a chunk).
        init_frames: frames in ``options.init``: 1 (one pose starts every chunk) or one per frame.
        threads: torch threads per worker.
    """

    source: ImageFilesSource | MovieSource | SelectedFrames
    options: FitOptions
    out: str
    chunk_size: int
    init_frames: int = 1
    threads: int = 1

    def frame_dir(self, frame: Frame | str) -> Path:
        return Path(self.out) / (frame if isinstance(frame, str) else frame.name)

    def is_done(self, frame: Frame | str) -> bool:
        return (self.frame_dir(frame) / RESULT_FILE).is_file()

    def chunk_start_init(self, frame: Frame) -> BodyInit:
        """The initialisation of a chunk's first frame when no earlier result is available: ``--init``."""
        return read_init(self.options.init, frame=frame.index if self.init_frames > 1 else 0)

    def warm_start_init(self, previous: str) -> BodyInit:
        """The initialisation from an earlier frame's result (its fit.npz, camera included)."""
        return read_init(self.frame_dir(previous) / RESULT_FILE)


@dataclass(frozen=True)
class Chunk:
    """Contiguous frames fitted in order by one worker.

    Attributes:
        index: position of the chunk in the sequence.
        frames: the chunk's frames, in order.
        start_from: name of the frame whose result starts the chunk (the previous chunk's last frame, when it
            was done before this run began), or None to start from ``--init``.
    """

    index: int
    frames: tuple[Frame, ...]
    start_from: str | None = None


def count_init_frames(init: str | None, num_frames: int) -> int:
    """Frames in the ``--init`` file, checked to be 1 or ``num_frames``.

    Raises:
        ParameterError: no ``--init`` (a batch needs one to start its chunks).
        InputFileError: the file is unreadable, or holds a frame count other than 1 or ``num_frames``.
    """
    if init is None:
        raise ParameterError("batch needs --init FILE: the pose that starts each chunk (one frame or one per frame)")
    count = len(read_init_sequence(init))
    if count not in (1, num_frames):
        raise InputFileError(init, f"has {count} frames; a batch of {num_frames} frames needs 1 or {num_frames}")
    return count


def plan_chunks(job: BatchJob) -> list[Chunk]:
    """The chunks still to run: contiguous runs of ``job.chunk_size`` frames with at least one frame not done."""
    if job.chunk_size < 1:
        raise ParameterError(f"--chunk must be at least 1, got {job.chunk_size}")
    frames = job.source.frames
    chunks = []
    for index, start in enumerate(range(0, len(frames), job.chunk_size)):
        members = tuple(frames[start : start + job.chunk_size])
        if all(job.is_done(f) for f in members):
            continue
        previous = frames[start - 1].name if start > 0 else None
        chunks.append(Chunk(index, members, previous if previous and job.is_done(previous) else None))
    return chunks
