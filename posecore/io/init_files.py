"""Read body initialisations (pose, shape, camera) written by other tools or by PoseFit itself.

Supported files (the format is recognised from the extension and the keys, not from the name):

============== ================= ==============================================================
format         extensions        content
============== ================= ==============================================================
smplify-x-pkl  .pkl, .pickle     SMPLify-X result: a dict of numpy arrays (global_orient (1, 3),
                                 body_pose (1, 63) or (1, 32) VPoser code, betas (1, 10), expression (1, 10), jaw_pose,
                                 leye_pose, reye_pose (1, 3), left/right_hand_pose (1, 12) PCA
                                 or (1, 45), camera_rotation (1, 3, 3), camera_translation (1, 3)).
                                 Read with :func:`load_pickle_safely`: never runs code.
npz / json     .npz, .json       the same keys (JSON: nested lists). .npz files are always
                                 opened with ``allow_pickle=False``.
smpler-x       .npz              SMPLer-X per-person output (``smplx/00000_0.npz``: global_orient,
                                 body_pose (21, 3), ..., transl = cam_trans), keys with or without
                                 the ``smplx_`` prefix (smplx_root_pose, smplx_body_pose, ...,
                                 cam_trans, focal, princpt). focal/princpt are also read from the
                                 sibling ``meta/00000_0.json`` that SMPLer-X writes.
amass          .npz              poses (T, 156) SMPL-H, (T, 165) SMPL-X, (T, 72) SMPL or (T, 66),
                                 trans (T, 3), betas (S,), gender, mocap_framerate. Z-up world,
                                 no camera.
posefit        .npz              PoseFit's own ``fit.npz``: model, joint_names (J,), rotations
                                 (J, 3) or (T, J, 3), translation, shape, expression, camera_K,
                                 camera_R, camera_t, image_size (width, height).
============== ================= ==============================================================

Every array may carry leading batch dimensions of 1, and joint rotations may be flattened (N*3,) or
(N, 3). A leading dimension T > 1 means T frames (see :func:`read_init_sequence`). Missing pose keys
default to zero rotations and translation to zero; missing betas/expression give ``None`` (the body
model's default). Wrong shapes, NaN/infinite values, unknown extensions, pickled object arrays and
missing files raise :class:`~posecore.errors.InputFileError` naming the file and the key.

Hand poses: files written through the ``smplx`` package (SMPLify-X, SMPLer-X, the plain npz/json
layout) store hand poses relative to the SMPL-X mean hand pose unless the model was created with
``flat_hand_mean=True`` (``smplx``'s default is ``False``); PCA coefficients always are.
:attr:`BodyInit.hand_pose_relative_to_mean` says which applies; the body model must add its
``hands_mean`` where it is ``True``. AMASS and PoseFit files store absolute rotations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posecore.bodies.smplx_joints import (
    LEFT_HAND_JOINT_NAMES,
    RIGHT_HAND_JOINT_NAMES,
    SMPL_JOINT_NAMES,
    SMPLX_BODY_JOINT_NAMES,
    SMPLX_JOINT_NAMES,
)
from posecore.errors import InputFileError, shorten
from posecore.io.paths import existing_file
from posecore.io.safe_json import load_json_safely
from posecore.io.safe_npz import LazyNpzRecord, NpzArchive
from posecore.io.safe_pickle import load_pickle_safely

SMPLIFYX_DEFAULT_FOCAL_LENGTH = 5000.0
"""SMPLify-X's default focal length in pixels (not stored in its result files; its principal point
is the image centre)."""

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".pkl", ".pickle", ".npz", ".json")

FORMATS: tuple[str, ...] = ("smplify-x-pkl", "npz", "json", "smpler-x", "amass", "posefit")

# Bounds on what reading an initialisation file may allocate: legitimate files hold at most some
# thousands of frames of a few hundred numbers (an AMASS sequence of 20,000 frames x 165 float64 is 26 MB).
MAX_INIT_FILE_BYTES = 256 * 2**20
MAX_INIT_MEMBERS = 1000
MAX_INIT_ARRAY_BYTES = 64 * 2**20
MAX_INIT_TOTAL_BYTES = 256 * 2**20
MAX_VALUE_MAGNITUDE = 1e6
"""Largest |value| accepted in a parameter array (radians, metres, pixels): 1e308 is no pose and
overflows to inf (then NaN) in the first product."""


@dataclass
class CameraInit:
    """The pieces of a camera a file provides; each is ``None`` when absent.

    OpenCV convention, world-to-camera: ``x_cam = rotation @ x_world + translation`` (+X right,
    +Y down, +Z forward), as in :class:`posecore.cameras.pinhole.PinholeCamera`.

    Attributes:
        rotation: (3, 3) float32 world-to-camera rotation.
        translation: (3,) float32 world-to-camera translation, metres.
        focal_length: (fx, fy) in pixels.
        principal_point: (cx, cy) in pixels.
        image_size: (width, height) in pixels.
    """

    rotation: np.ndarray | None = None
    translation: np.ndarray | None = None
    focal_length: tuple[float, float] | None = None
    principal_point: tuple[float, float] | None = None
    image_size: tuple[int, int] | None = None


@dataclass
class BodyInit:
    """One frame of a body initialisation read from a file.

    Attributes:
        joint_rotations: joint name -> (3,) float32 axis-angle, radians, relative to the parent
            (the root's is the global orientation). SMPL-X-family files give all 55
            :data:`SMPLX_JOINT_NAMES` (zeros where the file has nothing) except the finger joints of a
            hand stored as PCA coefficients (see ``hand_pca``); SMPL files the 24
            :data:`SMPL_JOINT_NAMES`; PoseFit files exactly the joints they list.
        translation: (3,) float32 root translation, metres (zeros when the file has none: SMPLify-X
            puts the body's offset in the camera translation instead).
        betas: (S,) float32 shape coefficients, or ``None`` for the model's default shape.
        expression: (E,) float32 expression coefficients, or ``None``.
        hand_pca: 'left'/'right' -> (K,) float32 hand PCA coefficients when the file stores PCA hand
            poses (the body model expands them; those hands' finger joints are absent from joint_rotations).
        camera: the camera found in the file, or ``None``.
        model_name: 'smplx', 'smplh', 'smpl', 'anny', ... when the file says or its layout implies
            it, else ``None``.
        gender: 'neutral', 'male', 'female' when the file says, else ``None``.
        source: the file path.
        format: one of :data:`FORMATS`.
        hand_pose_relative_to_mean: True when the hand rotations / PCA coefficients are offsets
            from the SMPL-X mean hand pose (smplx package with ``flat_hand_mean=False``).
        frame_rate: frames per second for sequences that store it (AMASS), else ``None``.
        vposer_code: (32,) float32 VPoser latent code when the file stores ``body_pose`` that way
            (SMPLify-X's default, ``use_vposer: True``), else ``None``. The 21 body joints (left_hip ..
            right_wrist) are then absent from ``joint_rotations``: decode the code with the user's VPoser
            (:func:`posecore.bodies.params_from_init` with ``vposer=``).
    """

    joint_rotations: dict[str, np.ndarray]
    translation: np.ndarray
    betas: np.ndarray | None = None
    expression: np.ndarray | None = None
    hand_pca: dict[str, np.ndarray] = field(default_factory=dict)
    camera: CameraInit | None = None
    model_name: str | None = None
    gender: str | None = None
    source: str = ""
    format: str = ""
    hand_pose_relative_to_mean: bool = False
    frame_rate: float | None = None
    vposer_code: np.ndarray | None = None

    def rotations_array(self, joint_names: Sequence[str]) -> np.ndarray:
        """(J, 3) float32 axis-angle rows in the order of ``joint_names`` (zeros for joints not in the
        file)."""
        zero = np.zeros(3, np.float32)
        return np.stack([self.joint_rotations.get(n, zero) for n in joint_names]).astype(np.float32)


# --------------------------------------------------------------------------------------------- parsing
@dataclass
class _Parsed:
    """A whole file, every per-frame array with a leading frame axis T."""

    joint_names: list[str]
    rotations: np.ndarray  # (T, J, 3)
    translation: np.ndarray  # (T, 3)
    betas: np.ndarray | None = None  # (T, S)
    expression: np.ndarray | None = None  # (T, E)
    hand_pca: dict[str, np.ndarray] = field(default_factory=dict)  # side -> (T, K)
    cam_rotation: np.ndarray | None = None  # (T, 3, 3)
    cam_translation: np.ndarray | None = None  # (T, 3)
    focal_length: tuple[float, float] | None = None
    principal_point: tuple[float, float] | None = None
    image_size: tuple[int, int] | None = None
    model_name: str | None = None
    gender: str | None = None
    format: str = ""
    hand_pose_relative_to_mean: bool = False
    frame_rate: float | None = None
    vposer_code: np.ndarray | None = None  # (T, 32)

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    def frame(self, t: int, source: str) -> BodyInit:
        camera = None
        pieces = (self.cam_rotation, self.cam_translation, self.focal_length, self.principal_point,
                  self.image_size)  # fmt: skip
        if any(p is not None for p in pieces):
            camera = CameraInit(
                rotation=None if self.cam_rotation is None else self.cam_rotation[t].copy(),
                translation=None if self.cam_translation is None else self.cam_translation[t].copy(),
                focal_length=self.focal_length,
                principal_point=self.principal_point,
                image_size=self.image_size,
            )
        # A hand stored as PCA coefficients has no finger rotations in the file: leave its joints out, so the
        # body model expands the coefficients instead of seeing the hand given twice.
        # Likewise the body joints of a VPoser-coded body_pose.
        pca_fingers = set()
        if "left" in self.hand_pca:
            pca_fingers.update(LEFT_HAND_JOINT_NAMES)
        if "right" in self.hand_pca:
            pca_fingers.update(RIGHT_HAND_JOINT_NAMES)
        if self.vposer_code is not None:
            pca_fingers.update(SMPLX_BODY_JOINT_NAMES[1:22])
        return BodyInit(
            joint_rotations={
                n: self.rotations[t, j].copy() for j, n in enumerate(self.joint_names) if n not in pca_fingers
            },
            translation=self.translation[t].copy(),
            betas=None if self.betas is None else self.betas[t].copy(),
            expression=None if self.expression is None else self.expression[t].copy(),
            hand_pca={side: v[t].copy() for side, v in self.hand_pca.items()},
            camera=camera,
            model_name=self.model_name,
            gender=self.gender,
            source=source,
            format=self.format,
            hand_pose_relative_to_mean=self.hand_pose_relative_to_mean,
            frame_rate=self.frame_rate,
            vposer_code=None if self.vposer_code is None else self.vposer_code[t].copy(),
        )


class _Reader:
    """Shape-checking accessors over one file's key -> value mapping."""

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path = path
        self.data = data if isinstance(data, LazyNpzRecord) else dict(data)
        self.frame_counts: dict[str, int] = {}

    def error(self, problem: str) -> InputFileError:
        return InputFileError(self.path, problem)

    def find(self, *aliases: str) -> str | None:
        """The first alias present as a key (None if none)."""
        return next((a for a in aliases if a in self.data), None)

    def numeric(self, key: str) -> np.ndarray:
        """The value of ``key`` as a finite float64 array."""
        value = self.data[key]
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise self.error(
                f"'{key}' is not a numeric array (ragged or mixed nesting?): {shorten(exc, 120)}"
            ) from None
        if arr.dtype == object:
            flat = [v for v in arr.reshape(-1)[:1000]] if arr.ndim else [arr.item()]
            if any(isinstance(v, int) and not isinstance(v, bool) for v in flat):
                raise self.error(f"'{key}' holds integers too large for 64 bits, expected parameter values")
            raise self.error(f"'{key}' is not a numeric array (it mixes numbers with other values or lists)")
        if arr.dtype.kind not in "biuf":
            raise self.error(f"'{key}' holds {shorten(arr.dtype, 40)} data (text?), expected numbers")
        with np.errstate(all="ignore"):
            arr = arr.astype(np.float64)
            if not np.isfinite(arr).all():
                raise self.error(f"'{key}' contains NaN or infinite values")
            if arr.size and np.abs(arr).max() > MAX_VALUE_MAGNITUDE:
                raise self.error(
                    f"'{key}' holds values up to {np.abs(arr).max():.3g}, beyond any plausible parameter "
                    f"(|value| <= {MAX_VALUE_MAGNITUDE:g})"
                )
        return arr

    def text(self, *aliases: str) -> str | None:
        key = self.find(*aliases)
        if key is None:
            return None
        value = self.data[key]
        if isinstance(value, np.ndarray):
            if value.size != 1:
                return None
            value = value.reshape(()).item()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            return None
        return value.strip().lower() or None

    def note_frames(self, key: str, frames: int | None) -> None:
        if frames is not None:
            self.frame_counts[key] = frames

    def frames(self) -> int:
        """The common frame count T; raises when two keys disagree (1 broadcasts)."""
        counts = {k: t for k, t in self.frame_counts.items() if t != 1}
        if not counts:
            return 1
        (key0, t0), *rest = counts.items()
        for key, t in rest:
            if t != t0:
                raise self.error(f"'{key}' has {t} frames but '{key0}' has {t0}")
        return t0

    # ------------------------------------------------------------------ shape parsers
    @staticmethod
    def _core(shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape without leading dimensions of size 1."""
        i = 0
        while i < len(shape) and shape[i] == 1:
            i += 1
        return shape[i:]

    def joints(self, key: str, n: int) -> np.ndarray:
        """``key`` as (T, n, 3) axis-angle; accepts (n*3,), (n, 3), (T, n*3), (T, n, 3) with leading 1s."""
        arr = self.numeric(key)
        core = self._core(arr.shape)
        single = ((n * 3,), (n, 3)) if n > 1 else ((3,),)
        if core in single:
            self.note_frames(key, 1)
            return arr.reshape(1, n, 3)
        if len(core) >= 2 and core[1:] in ((n * 3,), (n, 3)):
            self.note_frames(key, core[0])
            return arr.reshape(core[0], n, 3)
        raise self.error(
            f"'{key}' has shape {arr.shape}, expected ({n * 3},) or ({n}, 3) "
            f"(optionally with a leading batch/frame dimension)"
        )

    def vector(self, key: str, max_len: int = 400) -> np.ndarray:
        """``key`` as (T, S) coefficients; accepts (S,), (1, S), (T, S)."""
        arr = self.numeric(key)
        core = self._core(arr.shape)
        if len(core) <= 1:
            self.note_frames(key, 1)
            out = arr.reshape(1, -1)
        elif len(core) == 2:
            self.note_frames(key, core[0])
            out = arr.reshape(core)
        else:
            raise self.error(f"'{key}' has shape {arr.shape}, expected (S,) or (frames, S) coefficients")
        if out.shape[1] > max_len:
            raise self.error(f"'{key}' has shape {arr.shape}: more than {max_len} coefficients per frame")
        return out

    def pair(self, key: str) -> tuple[float, float]:
        """A scalar or 2-vector (e.g. focal length), as (x, y)."""
        arr = self.numeric(key).reshape(-1)
        if arr.size == 1:
            return float(arr[0]), float(arr[0])
        if arr.size == 2:
            return float(arr[0]), float(arr[1])
        raise self.error(f"'{key}' has shape {self.numeric(key).shape}, expected a scalar or (2,)")

    def image_size(self, key: str) -> tuple[int, int]:
        arr = self.numeric(key).reshape(-1)
        if arr.size != 2 or (arr <= 0).any() or (arr != np.round(arr)).any():
            raise self.error(f"'{key}' is {arr.tolist()}, expected (width, height) as two positive integers")
        return int(arr[0]), int(arr[1])

    def rotation_matrices(self, key: str) -> np.ndarray:
        """(T, 3, 3) rotations from (3, 3) / (T, 3, 3) matrices or (3,) / (T, 3) axis-angle."""
        arr = self.numeric(key)
        core = self._core(arr.shape)
        if core == (3, 3):
            mats, frames = arr.reshape(1, 3, 3), 1
        elif len(core) == 3 and core[1:] == (3, 3):
            mats, frames = arr.reshape(core), core[0]
        elif core == (3,) or (len(core) == 2 and core[1] == 3):
            aa = arr.reshape(-1, 3)
            mats, frames = _axis_angle_to_matrix(aa), aa.shape[0]
        else:
            raise self.error(f"'{key}' has shape {arr.shape}, expected (3, 3) (or (3,) axis-angle)")
        err = np.abs(mats @ np.swapaxes(mats, 1, 2) - np.eye(3)).max()
        if err > 1e-3 or (np.linalg.det(mats) <= 0).any():
            raise self.error(f"'{key}' is not a rotation matrix (|R R^T - I| = {err:.3g} or det(R) <= 0)")
        self.note_frames(key, frames)
        return mats

    def intrinsics(self, key: str) -> tuple[tuple[float, float], tuple[float, float]]:
        """(fx, fy), (cx, cy) from a (3, 3) OpenCV K matrix."""
        arr = self.numeric(key)
        K = arr.reshape(self._core(arr.shape))
        if K.shape != (3, 3):
            raise self.error(f"'{key}' has shape {arr.shape}, expected (3, 3)")
        if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise self.error(f"'{key}' is not an intrinsic matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
        return (float(K[0, 0]), float(K[1, 1])), (float(K[0, 2]), float(K[1, 2]))


def _axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """(N, 3) axis-angle (radians) -> (N, 3, 3) rotation matrices (Rodrigues)."""
    theta = np.linalg.norm(aa, axis=1)[:, None, None]
    safe = np.where(theta < 1e-12, 1.0, theta)
    k = aa[:, :, None] / safe
    x, y, z = k[:, 0, 0], k[:, 1, 0], k[:, 2, 0]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=1).reshape(-1, 3, 3)
    return np.eye(3) + np.sin(theta) * skew + (1.0 - np.cos(theta)) * (skew @ skew)


def _broadcast(arr: np.ndarray, frames: int) -> np.ndarray:
    return np.repeat(arr, frames, axis=0) if arr.shape[0] == 1 and frames > 1 else arr


# ------------------------------------------------------------------------------------------ key names
_ALIASES: dict[str, tuple[str, ...]] = {
    "global_orient": ("global_orient", "root_orient", "root_pose", "smplx_root_pose"),
    "body_pose": ("body_pose", "pose_body", "smplx_body_pose"),
    "left_hand_pose": ("left_hand_pose", "lhand_pose", "smplx_lhand_pose"),
    "right_hand_pose": ("right_hand_pose", "rhand_pose", "smplx_rhand_pose"),
    "jaw_pose": ("jaw_pose", "pose_jaw", "smplx_jaw_pose"),
    "leye_pose": ("leye_pose", "smplx_leye_pose"),
    "reye_pose": ("reye_pose", "smplx_reye_pose"),
    "betas": ("betas", "smplx_shape", "shape"),
    "expression": ("expression", "expr", "smplx_expr"),
    "transl": ("transl", "translation", "trans", "cam_trans", "smplx_transl", "smplx_cam_trans"),
    "camera_rotation": ("camera_rotation", "camera_R", "cam_R"),
    "camera_translation": ("camera_translation", "camera_t", "cam_t"),
    "focal_length": ("focal_length", "focal", "camera_focal_length"),
    "principal_point": ("principal_point", "princpt", "camera_center", "center"),
    "image_size": ("image_size",),
    "K": ("camera_K", "K"),
    "gender": ("gender",),
    "model": ("model", "model_type", "model_name", "surface_model_type"),
}
_POSE_FIELDS = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose",
                "leye_pose", "reye_pose")  # fmt: skip
_FACE_FIELDS = ("jaw_pose", "leye_pose", "reye_pose", "expression")
_HAND_FIELDS = {"left": "left_hand_pose", "right": "right_hand_pose"}


# ------------------------------------------------------------------------------------------- loading
def _load_mapping(path: Path) -> list[dict[str, Any]]:
    """Read the file into one or more key -> value mappings (numpy arrays or plain values)."""
    existing_file(path, "an initialisation file")
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise InputFileError(
            path,
            f"unsupported file type {ext or '(no extension)'!r}: supported are "
            f"{', '.join(SUPPORTED_EXTENSIONS)} (SMPLify-X .pkl, SMPL-X parameter .npz/.json, SMPLer-X "
            f".npz, AMASS .npz, PoseFit fit.npz)",
        )
    if ext in (".pkl", ".pickle"):
        records: Any = load_pickle_safely(path)
    elif ext == ".npz":
        records = _load_npz(path)
    else:
        records = _load_json(path)
    if isinstance(records, Mapping):
        records = [records]
    if not isinstance(records, list | tuple) or not records or not all(isinstance(r, Mapping) for r in records):
        raise InputFileError(
            path, f"expected a dict of named arrays (or a list of them), found {type(records).__name__}"
        )
    out = []
    for record in records:
        bad = [k for k in record if not isinstance(k, str)]
        if bad:
            raise InputFileError(path, f"has non-text keys {shorten(bad[:5])}, expected parameter names")
        out.append(record if isinstance(record, LazyNpzRecord) else dict(record))
    return out


def _load_npz(path: Path) -> LazyNpzRecord:
    """The archive's arrays, each read (with bounded memory, never unpickled) only when a parser asks."""
    archive = NpzArchive(path, "an initialisation .npz file", MAX_INIT_FILE_BYTES, max_members=MAX_INIT_MEMBERS)
    return LazyNpzRecord(archive, MAX_INIT_ARRAY_BYTES, MAX_INIT_TOTAL_BYTES)


def _load_json(path: Path) -> Any:
    return load_json_safely(path, "a JSON initialisation file", MAX_INIT_FILE_BYTES)


# ------------------------------------------------------------------------------------------- formats
def _parse_posefit(r: _Reader) -> _Parsed:
    raw_names = r.data["joint_names"]
    try:
        names_arr = np.asarray(raw_names)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise r.error("'joint_names' is not a flat list of joint names (ragged or nested)") from None
    if names_arr.ndim != 1 or names_arr.dtype.kind not in "US":
        raise r.error(
            f"'joint_names' has shape {shorten(names_arr.shape, 40)} and dtype {shorten(names_arr.dtype, 40)}, "
            "expected (J,) text"
        )
    if len(set(names_arr.tolist())) != names_arr.size:
        raise r.error("'joint_names' lists a joint more than once")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names_arr.tolist()]
    parsed = _Parsed(
        joint_names=names,
        rotations=r.joints("rotations", len(names)),
        translation=np.zeros((1, 3)),
        model_name=r.text("model"),
        gender=r.text("gender"),
        format="posefit",
    )
    if "translation" in r.data:
        parsed.translation = r.joints("translation", 1)[:, 0]
    if "shape" in r.data:
        parsed.betas = r.vector("shape")
    if "expression" in r.data:
        expr = r.vector("expression")
        parsed.expression = expr if expr.shape[1] > 0 else None
    if "camera_K" in r.data:
        parsed.focal_length, parsed.principal_point = r.intrinsics("camera_K")
    if "camera_R" in r.data:
        parsed.cam_rotation = r.rotation_matrices("camera_R")
    if "camera_t" in r.data:
        parsed.cam_translation = r.joints("camera_t", 1)[:, 0]
    if "image_size" in r.data:
        parsed.image_size = r.image_size("image_size")
    frames = r.frames()
    for name in ("rotations", "translation", "betas", "expression", "cam_rotation", "cam_translation"):
        value = getattr(parsed, name)
        if value is not None:
            setattr(parsed, name, _broadcast(value, frames))
    return parsed


def _parse_amass(r: _Reader) -> _Parsed:
    arr = r.numeric("poses")
    core = r._core(arr.shape)
    layouts = {
        165: ("smplx", SMPLX_JOINT_NAMES),
        156: ("smplh", SMPLX_BODY_JOINT_NAMES + LEFT_HAND_JOINT_NAMES + RIGHT_HAND_JOINT_NAMES),
        72: ("smpl", SMPL_JOINT_NAMES),
        66: ("smplx", SMPLX_BODY_JOINT_NAMES),
    }
    width = core[-1] if core else 0
    if len(core) not in (1, 2) or width not in layouts:
        raise r.error(
            f"'poses' has shape {arr.shape}, expected (frames, D) with D = 165 (SMPL-X), 156 (SMPL-H), "
            f"72 (SMPL) or 66 (body only)"
        )
    model, file_names = layouts[width]
    rotations = r.joints("poses", width // 3)
    translation = r.joints("trans", 1)[:, 0] if "trans" in r.data else np.zeros((1, 3))
    frames = r.frames()
    # Fill the SMPL-X skeleton (zeros for joints the layout lacks), except for plain SMPL.
    names = SMPL_JOINT_NAMES if model == "smpl" else SMPLX_JOINT_NAMES
    full = np.zeros((rotations.shape[0], len(names), 3))
    for j, name in enumerate(file_names):
        full[:, names.index(name)] = rotations[:, j]
    parsed = _Parsed(
        joint_names=list(names),
        rotations=_broadcast(full, frames),
        translation=_broadcast(translation, frames),
        model_name=r.text(*_ALIASES["model"]) or model,
        gender=r.text("gender"),
        format="amass",
        hand_pose_relative_to_mean=False,
    )
    if "betas" in r.data:
        betas = r.vector("betas")
        if betas.shape[0] not in (1, frames):
            raise r.error(f"'betas' has shape {r.data['betas'].shape}, expected (S,) or ({frames}, S)")
        parsed.betas = _broadcast(betas, frames)
    for key in ("mocap_framerate", "mocap_frame_rate", "frame_rate", "fps"):
        if key in r.data:
            rate = r.numeric(key).reshape(-1)
            if rate.size == 1 and rate[0] > 0:
                parsed.frame_rate = float(rate[0])
            break
    return parsed


def _parse_smplx_dict(r: _Reader, path: Path) -> _Parsed:
    keys = {name: r.find(*aliases) for name, aliases in _ALIASES.items()}
    present_pose = [k for k in _POSE_FIELDS if keys[k] is not None]
    if not present_pose and keys["transl"] is None:
        if "v_template" in r.data or "shapedirs" in r.data:
            raise r.error("is a body model file, not an initialisation (pose) file")
        raise r.error(
            f"has no pose parameters: expected keys such as global_orient, body_pose, transl "
            f"(SMPL-X), poses/trans (AMASS) or joint_names/rotations (PoseFit); found "
            f"{sorted(r.data)[:20]}"
        )
    model = r.text(*_ALIASES["model"])

    # Body: 21 joints (SMPL-X / SMPL-H), 23 joints (SMPL) or a VPoser latent code (32 numbers).
    body = None
    vposer_code = None
    if keys["body_pose"] is not None:
        key = keys["body_pose"]
        arr = r.numeric(key)
        core = r._core(arr.shape)
        if core[-1:] == (32,) and len(core) <= 2:
            vposer_code = r.vector(key, max_len=32)
        elif core[-1:] == (69,) or core[-2:] == (23, 3):
            body, model = r.joints(key, 23), "smpl"
        else:
            body = r.joints(key, 21)
    names = SMPL_JOINT_NAMES if model == "smpl" else SMPLX_JOINT_NAMES

    parts: dict[str, np.ndarray] = {}
    if keys["global_orient"] is not None:
        parts["global_orient"] = r.joints(keys["global_orient"], 1)
    for name in ("jaw_pose", "leye_pose", "reye_pose"):
        if keys[name] is not None:
            parts[name] = r.joints(keys[name], 1)
    hand_full: dict[str, np.ndarray] = {}
    hand_pca: dict[str, np.ndarray] = {}
    for side, name in _HAND_FIELDS.items():
        key = keys[name]
        if key is None:
            continue
        arr = r.numeric(key)
        core = r._core(arr.shape)
        if core[-1:] == (45,) or core[-2:] == (15, 3):
            hand_full[side] = r.joints(key, 15)
        elif arr.ndim >= 1 and len(core) <= 2 and 0 < arr.shape[-1] < 45:  # (1, 1) is K = 1
            hand_pca[side] = r.vector(key, max_len=45)
        else:
            raise r.error(
                f"'{key}' has shape {arr.shape}, expected (45,) / (15, 3) axis-angle or (K,) PCA "
                f"coefficients with K < 45 (optionally with a leading batch/frame dimension)"
            )
    translation = r.joints(keys["transl"], 1)[:, 0] if keys["transl"] is not None else None
    betas = r.vector(keys["betas"]) if keys["betas"] is not None else None
    expression = r.vector(keys["expression"]) if keys["expression"] is not None else None
    cam_rotation = r.rotation_matrices(keys["camera_rotation"]) if keys["camera_rotation"] else None
    cam_translation = r.joints(keys["camera_translation"], 1)[:, 0] if keys["camera_translation"] else None
    frames = r.frames()

    rotations = np.zeros((frames, len(names), 3))

    def put(joint_names: Sequence[str], values: np.ndarray) -> None:
        if model == "smpl" and values.shape[1] == 15:
            return  # SMPL has no finger joints
        for j, n in enumerate(joint_names):
            if n in names:
                rotations[:, names.index(n)] = values[:, j]

    if "global_orient" in parts:
        put(["pelvis"], parts["global_orient"])
    if body is not None:
        put(names[1 : 1 + body.shape[1]], body)
    for field_name, joint in (("jaw_pose", "jaw"), ("leye_pose", "left_eye_smplhf"),
                              ("reye_pose", "right_eye_smplhf")):  # fmt: skip
        if field_name in parts:
            put([joint], parts[field_name])
    for side, values in hand_full.items():
        put(LEFT_HAND_JOINT_NAMES if side == "left" else RIGHT_HAND_JOINT_NAMES, values)

    if model is None:
        if any(keys[k] is not None for k in _FACE_FIELDS):
            model = "smplx"
        elif hand_full or hand_pca:
            model = "smplh"

    # The smplx package adds the mean hand pose unless flat_hand_mean=True (its default is False).
    flat = r.find("flat_hand_mean")
    relative = model != "smpl"
    if flat is not None:
        flags = r.numeric(flat).reshape(-1)
        if flags.size != 1:
            raise r.error(f"'{flat}' has {flags.size} values, expected one true/false value")
        relative = relative and not bool(flags[0])

    parsed = _Parsed(
        joint_names=list(names),
        rotations=rotations,
        vposer_code=None if vposer_code is None else _broadcast(vposer_code, frames),
        translation=np.zeros((frames, 3)) if translation is None else _broadcast(translation, frames),
        betas=None if betas is None else _broadcast(betas, frames),
        expression=None if expression is None else _broadcast(expression, frames),
        hand_pca={side: _broadcast(v, frames) for side, v in hand_pca.items()},
        cam_rotation=None if cam_rotation is None else _broadcast(cam_rotation, frames),
        cam_translation=None if cam_translation is None else _broadcast(cam_translation, frames),
        model_name=model,
        gender=r.text("gender"),
        hand_pose_relative_to_mean=relative,
    )
    if keys["K"] is not None:
        parsed.focal_length, parsed.principal_point = r.intrinsics(keys["K"])
    if keys["focal_length"] is not None:
        parsed.focal_length = r.pair(keys["focal_length"])
    if keys["principal_point"] is not None:
        parsed.principal_point = r.pair(keys["principal_point"])
    if keys["image_size"] is not None:
        parsed.image_size = r.image_size(keys["image_size"])

    # Format and format-specific camera conventions.
    ext = path.suffix.lower()
    smplerx_meta = _smplerx_meta(path) if ext == ".npz" else None
    is_smplerx = ext == ".npz" and (
        any(k.startswith("smplx_") for k in r.data) or "cam_trans" in r.data or smplerx_meta is not None
    )
    if is_smplerx:
        parsed.format = "smpler-x"
        parsed.model_name = parsed.model_name or "smplx"
        if smplerx_meta is not None:
            meta = _Reader(smplerx_meta, _load_mapping(smplerx_meta)[0])
            if parsed.focal_length is None and "focal" in meta.data:
                parsed.focal_length = meta.pair("focal")
            if parsed.principal_point is None and "princpt" in meta.data:
                parsed.principal_point = meta.pair("princpt")
        # SMPLer-X predicts the body in the camera frame: identity extrinsics.
        if parsed.cam_rotation is None:
            parsed.cam_rotation = np.repeat(np.eye(3)[None], frames, axis=0)
        if parsed.cam_translation is None:
            parsed.cam_translation = np.zeros((frames, 3))
    elif ext in (".pkl", ".pickle"):
        parsed.format = "smplify-x-pkl"
    else:
        parsed.format = ext.lstrip(".")
    return parsed


def _smplerx_meta(path: Path) -> Path | None:
    """SMPLer-X writes ``<out>/smplx/<name>.npz`` and ``<out>/meta/<name>.json`` (focal, princpt)."""
    if path.parent.name != "smplx":
        return None
    meta = path.parent.parent / "meta" / f"{path.stem}.json"
    return meta if meta.is_file() else None


def _parse_record(path: Path, record: Mapping[str, Any]) -> _Parsed:
    r = _Reader(path, record)
    if "joint_names" in r.data and "rotations" in r.data:
        parsed = _parse_posefit(r)
    elif "poses" in r.data:
        parsed = _parse_amass(r)
    else:
        parsed = _parse_smplx_dict(r, path)
    _to_float32(parsed)
    return parsed


def _to_float32(p: _Parsed) -> None:
    p.rotations = p.rotations.astype(np.float32)
    p.translation = p.translation.astype(np.float32)
    for name in ("betas", "expression", "cam_rotation", "cam_translation"):
        value = getattr(p, name)
        if value is not None:
            setattr(p, name, value.astype(np.float32))
    p.hand_pca = {k: v.astype(np.float32) for k, v in p.hand_pca.items()}
    if p.vposer_code is not None:
        p.vposer_code = p.vposer_code.astype(np.float32)


def _parse_file(path: str | os.PathLike[str]) -> tuple[Path, list[_Parsed]]:
    p = Path(path)
    records = _load_mapping(p)
    try:
        return p, [_parse_record(p, record) for record in records]
    finally:
        for record in records:
            if isinstance(record, LazyNpzRecord):
                record.close()


# ---------------------------------------------------------------------------------------------- API
def read_init_sequence(path: str | os.PathLike[str]) -> list[BodyInit]:
    """Every frame of an initialisation file.

    Args:
        path: a ``.pkl``, ``.npz`` or ``.json`` file in one of the formats of this module.

    Returns:
        One :class:`BodyInit` per frame: T for AMASS sequences and files whose arrays have a leading
        frame dimension T > 1 (or JSON lists of records), a list of one otherwise.

    Raises:
        InputFileError: missing/unreadable file, unsupported extension, wrong shapes (naming the key,
            the shape found and the shape expected), NaN/infinite values, pickled objects.
    """
    p, parsed = _parse_file(path)
    return [rec.frame(t, str(p)) for rec in parsed for t in range(rec.num_frames)]


def read_init(path: str | os.PathLike[str], frame: int = 0) -> BodyInit:
    """One frame of an initialisation file (see the module docstring for the formats).

    Args:
        path: the file.
        frame: index of the frame for multi-frame files (negative counts from the end).

    Returns:
        The :class:`BodyInit` of that frame.

    Raises:
        InputFileError: as :func:`read_init_sequence`, or when ``frame`` is out of range.
    """
    p, parsed = _parse_file(path)
    index = [(i, t) for i, rec in enumerate(parsed) for t in range(rec.num_frames)]
    if not -len(index) <= frame < len(index):
        raise InputFileError(p, f"has {len(index)} frame(s); frame {frame} is out of range")
    i, t = index[frame]
    return parsed[i].frame(t, str(p))
