"""What a fit writes: ``result.json`` (parameters, loss history, metrics), ``fit.npz`` and ``figure.png``.

``fit.npz`` is PoseFit's own initialisation format (see :mod:`posecore.io.init_files`), so a result can
warm-start the next fit (a video's next frame, say).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from posecore import __version__
from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.pinhole import PinholeCamera
from posecore.io.atomic import atomic_output_dir, atomic_write_text, save_npz_atomic


def fit_arrays(body: BodyModel, params: BodyParams, camera: PinholeCamera, camera_angle: torch.Tensor) -> dict:
    """The arrays of ``fit.npz`` (numpy, float32 where numeric)."""
    return {
        "posefit_version": np.array(__version__),
        "model": np.array(body.name),
        "joint_names": np.array(body.joint_names),
        "rotations": params.rotations.detach().cpu().numpy().astype(np.float32),
        "translation": params.translation.detach().cpu().numpy().astype(np.float32),
        "shape": params.shape.detach().cpu().numpy().astype(np.float32),
        "expression": params.expression.detach().cpu().numpy().astype(np.float32),
        "camera_K": camera.intrinsic_matrix.numpy().astype(np.float32),
        "camera_R": camera.rotation.detach().cpu().numpy().astype(np.float32),
        "camera_t": camera.translation.detach().cpu().numpy().astype(np.float32),
        "camera_angle": camera_angle.detach().cpu().numpy().astype(np.float32),
        "image_size": np.array([camera.width, camera.height], dtype=np.int32),
    }


def result_record(
    body: BodyModel,
    params: BodyParams,
    camera: PinholeCamera,
    camera_angle: torch.Tensor,
    history: Sequence[dict],
    metrics: dict,
    settings: dict,
) -> dict:
    """The content of ``result.json``: JSON-ready dict."""
    return {
        "posefit_version": __version__,
        "model": body.name,
        "settings": settings,
        "metrics": metrics,
        "final": {
            "rotations": {
                n: [float(x) for x in r] for n, r in zip(body.joint_names, params.rotations.tolist(), strict=True)
            },
            "translation": params.translation.tolist(),
            "shape": params.shape.tolist(),
            "expression": params.expression.tolist(),
            "camera_angle": camera_angle.tolist(),
            "camera": camera.as_dict(),
        },
        "history": list(history),
    }


def write_fit_outputs(
    out_dir: str | os.PathLike[str],
    record: dict,
    arrays: dict,
    figure_png: bytes | None,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write result.json, fit.npz, figure.png (and extras) into ``out_dir`` all at once: on any failure the
    folder is left as it was (nothing half-written)."""
    with atomic_output_dir(out_dir) as tmp:
        atomic_write_text(tmp / "result.json", json.dumps(record, indent=1))
        save_npz_atomic(tmp / "fit.npz", **arrays)
        if figure_png is not None:
            (tmp / "figure.png").write_bytes(figure_png)
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
    return Path(out_dir)
