"""A batch's frames as one sequence file, raw and temporally smoothed.

``OUT/sequence.npz`` stacks every frame's ``fit.npz`` (rotations (T, J, 3), translation (T, 3), shape (T, S),
the cameras (T, ...), ``frame_names`` (T,)); ``OUT/smoothed.npz`` is the same with the rotations and
translations filtered over time (:mod:`posecore.fitting.temporal`). Both are PoseFit initialisation files with a
leading frame axis, so ``read_init_sequence`` reads them back frame by frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from posecore.batch.plan import RESULT_FILE, BatchJob
from posecore.errors import InputFileError
from posecore.fitting.temporal import smooth_rotations, smooth_translations
from posecore.io.atomic import save_npz_atomic

PER_FRAME = ("rotations", "translation", "shape", "expression", "camera_R", "camera_t", "camera_angle")
SEQUENCE_FILE = "sequence.npz"
SMOOTHED_FILE = "smoothed.npz"


def stack_frames(job: BatchJob) -> dict[str, np.ndarray]:
    """Every frame's ``fit.npz`` stacked along a leading frame axis.

    Raises:
        InputFileError: a frame has no result yet.
    """
    frames = job.source.frames
    missing = [f.name for f in frames if not job.is_done(f)]
    if missing:
        raise InputFileError(job.out, f"{len(missing)} frame(s) have no result yet (first: {missing[0]})")
    records = []
    for frame in frames:
        with np.load(job.frame_dir(frame) / RESULT_FILE, allow_pickle=False) as data:
            records.append({k: data[k] for k in data.files})
    first = records[0]
    arrays = {k: v for k, v in first.items() if k not in PER_FRAME}
    for key in PER_FRAME:
        if key in first:
            arrays[key] = np.stack([r[key] for r in records])
    arrays["frame_names"] = np.array([f.name for f in frames])
    return arrays


def smoothed(arrays: dict[str, np.ndarray], sigma: float) -> dict[str, np.ndarray]:
    """A copy of a stacked sequence with rotations and translations smoothed over ``sigma`` frames."""
    out = dict(arrays)
    out["rotations"] = smooth_rotations(torch.from_numpy(arrays["rotations"]), sigma).numpy()
    out["translation"] = smooth_translations(torch.from_numpy(arrays["translation"]), sigma).numpy()
    out["smoothing_sigma_frames"] = np.array(sigma, np.float32)
    return out


def write_sequence_files(job: BatchJob, sigma: float) -> list[Path]:
    """Write ``OUT/sequence.npz`` and, when ``sigma`` > 0, ``OUT/smoothed.npz`` (each atomically)."""
    arrays = stack_frames(job)
    written = [Path(job.out) / SEQUENCE_FILE]
    save_npz_atomic(written[0], **arrays)
    if sigma > 0:
        written.append(Path(job.out) / SMOOTHED_FILE)
        save_npz_atomic(written[1], **smoothed(arrays, sigma))
    return written
