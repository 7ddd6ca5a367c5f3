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


def smplx_parameters(params: BodyParams, camera: PinholeCamera | None = None, gender: str = "neutral") -> dict:
    """SMPL-X parameters under the keys the ``smplx`` package and SMPLify-X use (numpy, float32, batch of 1).

    Args:
        params: SMPL-X parameters: rotations (55, 3) axis-angle, radians, rows as in
            :mod:`posecore.bodies.smplx_body`; translation (3,) metres; shape (S,) betas; expression (E,).
        camera: optional camera in SMPL-X's model frame (K (3, 3) pixels, R (3, 3), t (3,) metres, OpenCV).
        gender: the model file the parameters belong to.

    Returns:
        global_orient (1, 3), body_pose (1, 63), jaw_pose / leye_pose / reye_pose (1, 3), left_hand_pose /
        right_hand_pose (1, 45) full axis-angle, betas (1, S), expression (1, E), transl (1, 3), gender,
        ``flat_hand_mean`` = True (hand rotations are absolute: create the smplx model with
        ``flat_hand_mean=True, use_pca=False``), and with a camera camera_K, camera_R, camera_t, image_size.
    """
    rot = params.rotations.detach().cpu().numpy().astype(np.float32)
    if rot.shape != (55, 3):
        raise ValueError(f"SMPL-X rotations must be (55, 3), got {rot.shape}")

    def row(values: torch.Tensor) -> np.ndarray:
        return values.detach().cpu().numpy().astype(np.float32).reshape(1, -1)

    out = {
        "global_orient": rot[0:1],
        "body_pose": rot[1:22].reshape(1, 63),
        "jaw_pose": rot[22:23],
        "leye_pose": rot[23:24],
        "reye_pose": rot[24:25],
        "left_hand_pose": rot[25:40].reshape(1, 45),
        "right_hand_pose": rot[40:55].reshape(1, 45),
        "betas": row(params.shape),
        "expression": row(params.expression),
        "transl": row(params.translation),
        "gender": np.array(gender),
        "flat_hand_mean": np.array(True),
    }
    if camera is not None:
        out["camera_K"] = camera.intrinsic_matrix.detach().cpu().numpy().astype(np.float32)
        out["camera_R"] = camera.rotation.detach().cpu().numpy().astype(np.float32)
        out["camera_t"] = camera.translation.detach().cpu().numpy().astype(np.float32)
        out["image_size"] = np.array([camera.width, camera.height], dtype=np.int32)
    return out


def write_smplx_parameters(npz_path: str | os.PathLike[str], json_path: str | os.PathLike[str], arrays: dict) -> None:
    """Write :func:`smplx_parameters` as ``.npz`` and as ``.json`` (nested lists), each atomically."""
    save_npz_atomic(npz_path, **arrays)
    record = {key: value.tolist() for key, value in arrays.items()}
    atomic_write_text(json_path, json.dumps(record, indent=1))
