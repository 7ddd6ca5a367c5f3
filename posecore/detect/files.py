"""What ``python -m posecore detect`` writes, and reading its landmarks back.

The output folder (written all at once, see :func:`posecore.io.atomic.atomic_output_dir`):

- ``landmarks.json``: the 33 landmarks (pixels, visibility, 3D), the image size and the ``--person`` box.
- ``mask.png``: the person mask (8-bit gray, white = person).
- ``init.npz``: the initialised body and camera in PoseFit's ``fit.npz`` format: ``fit --init DIR/init.npz``.
- ``overlay.png``: the landmarks and mask on the photo, and the initialised body over it.
- ``detect.json``: focal length and where it came from, reprojection error, timings.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from posecore.bodies.base import BodyModel
from posecore.detect.landmarks import LANDMARK_NAMES, NUM_LANDMARKS, Detection
from posecore.detect.photo import PhotoStart
from posecore.errors import InputFileError
from posecore.io.atomic import atomic_output_dir, atomic_write_text, save_npz_atomic
from posecore.io.paths import existing_file
from posecore.io.safe_json import load_json_safely


def write_detect_outputs(
    out_dir: str | os.PathLike[str], photo: torch.Tensor, body: BodyModel, start: PhotoStart, settings: dict
) -> Path:
    """Write the detect outputs (see the module docstring) into ``out_dir``; nothing is left half-written.

    Args:
        photo: (H, W, 3) float image in [0, 1] at the detection's size. settings: recorded in ``detect.json``.
    """
    from posecore.detect.overlay import overlay_png
    from posecore.results import fit_arrays

    mask8 = np.round(np.clip(start.detection.mask, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(mask8).save(buffer, format="PNG")
    arrays = fit_arrays(body, start.init.params, start.init.camera, torch.zeros(3))
    with atomic_output_dir(out_dir) as tmp:
        atomic_write_text(tmp / "landmarks.json", json.dumps(start.detection.as_json(), indent=1))
        (tmp / "mask.png").write_bytes(buffer.getvalue())
        save_npz_atomic(tmp / "init.npz", **arrays)
        (tmp / "overlay.png").write_bytes(overlay_png(photo, start.detection, body, start.init))
        atomic_write_text(tmp / "detect.json", json.dumps({**settings, **start.summary()}, indent=1))
    return Path(out_dir)


MAX_LANDMARKS_FILE_BYTES = 1024 * 1024
"""A landmarks.json of 33 landmarks is about 10 kB."""


def read_landmarks(path: str | os.PathLike[str]) -> Detection:
    """A :class:`Detection` from a ``landmarks.json`` written by ``detect`` (perhaps edited); its mask is empty.

    Raises:
        InputFileError: missing file, not JSON, or not the landmarks layout (the message says what is wrong).
    """
    p = existing_file(path, "a landmarks.json file")
    data = load_json_safely(p, "a landmarks.json file", MAX_LANDMARKS_FILE_BYTES)
    if not isinstance(data, dict) or data.get("format") != "posefit-landmarks":
        raise InputFileError(p, 'not a PoseFit landmarks file (expected "format": "posefit-landmarks")')
    try:
        width, height = (int(v) for v in data["image_size"])
        rows = {item["name"]: item for item in data["landmarks"]}
        missing = [n for n in LANDMARK_NAMES if n not in rows]
        if missing:
            raise InputFileError(p, f"landmarks {missing[:4]} are missing")
        points = np.array([[rows[n]["u"], rows[n]["v"]] for n in LANDMARK_NAMES], np.float32)
        visibility = np.array([rows[n]["visibility"] for n in LANDMARK_NAMES], np.float32)
        world = np.array([rows[n]["world"] for n in LANDMARK_NAMES], np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(p, f"malformed landmarks ({type(exc).__name__}: {exc})") from None
    if width <= 0 or height <= 0:
        raise InputFileError(p, f"image_size must be positive, got {width}x{height}")
    if world.shape != (NUM_LANDMARKS, 3) or not (np.isfinite(points).all() and np.isfinite(world).all()):
        raise InputFileError(p, "landmarks must hold finite u, v and 3-number world positions")
    if not np.isfinite(visibility).all():
        raise InputFileError(p, "landmark visibilities must be finite numbers")
    box = data.get("person_box")
    box = tuple(int(v) for v in box) if box else None
    mask = np.zeros((height, width), np.float32)
    return Detection(points, np.clip(visibility, 0, 1), world, mask, width, height, box)
