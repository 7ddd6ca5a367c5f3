"""SMPL-X behind :class:`BodyModel`, built on the ``smplx`` package (the user's own licensed ``.npz`` files).

SMPL-X's frame: metres, +Y up, the body facing +Z, its left side at +X. 55 joints in SMPL-X order
(``smplx.joint_names.JOINT_NAMES[:55]``); ``BodyParams.rotations`` (55, 3) holds them as axis-angle:

====================  ===============================================
rows                  SMPL-X argument
====================  ===============================================
0                     ``global_orient``
1 .. 21               ``body_pose`` (21 joints, left_hip .. right_wrist)
22, 23, 24            ``jaw_pose``, ``leye_pose``, ``reye_pose``
25 .. 39              ``left_hand_pose`` (15 joints, full axis-angle)
40 .. 54              ``right_hand_pose``
====================  ===============================================

Hands are full axis-angle (``use_pca=False``) with ``flat_hand_mean=True``: zero rotations give a flat,
open hand, and every row is exactly the rotation linear blend skinning applies (SMPL-X's ``full_pose``).
PCA hand coefficients from other tools are expanded by :meth:`SmplxBody.params_from_init`.

The model files are licensed: never downloaded, never shipped. Users point PoseFit at their folder
(``DIR/smplx/SMPLX_NEUTRAL.npz`` or ``DIR/SMPLX_NEUTRAL.npz``) or at a ``.npz`` file. PoseFit reads the
file itself (:mod:`posecore.bodies.smplx_file`: no pickles, bounded memory, every key checked), so a wrong
file gives an error naming the file, the key and the shapes, and ``smplx`` only ever sees the checked
arrays: it never opens the user's file (its own loader would unpickle object members and run their code).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posecore.bodies.base import BodyModel, BodyOutput, BodyParams
from posecore.bodies.smplx_file import (
    MIN_VERTICES,
    NUM_JOINTS,
    NUM_POSE_BASIS,
    PKL_HINT,
    SmplxModelData,
    load_smplx_file,
)
from posecore.bodies.smplx_joints import SMPLX_JOINT_NAMES
from posecore.errors import BackendUnavailableError, InputFileError, ParameterError
from posecore.io.paths import existing_file
from posecore.rotations import axis_angle_to_matrix

__all__ = ["GENDERS", "MIN_VERTICES", "NUM_JOINTS", "NUM_POSE_BASIS", "SmplxBody", "find_smplx_model_file"]

GENDERS = ("neutral", "male", "female")

NOT_FOUND_HINT = (
    "SMPL-X model file not found; download it yourself from the SMPL-X website (licensed) and point "
    "--model smplx:DIR at the folder containing smplx/SMPLX_NEUTRAL.npz"
)

SMPLX_BODY_JOINTS: list[str] = SMPLX_JOINT_NAMES[1:22]  # the paper's theta_b: left_hip .. right_wrist
HAND_ROWS = {"left": slice(25, 40), "right": slice(40, 55)}


def find_smplx_model_file(model_path: str | Path, gender: str = "neutral") -> Path:
    """Resolve a user's SMPL-X location to one ``.npz`` file.

    Args:
        model_path: a ``.npz`` file, or a folder holding ``smplx/SMPLX_{GENDER}.npz`` (the layout
            ``smplx.create`` reads) or ``SMPLX_{GENDER}.npz``.
        gender: "neutral", "male" or "female" (folders only).

    Raises:
        InputFileError: nothing found (the message names the expected path), or a ``.pkl`` file.
        ParameterError: an unknown gender.
    """
    gender = _check_gender(gender)
    path = Path(model_path).expanduser()
    if path.suffix.lower() == ".pkl":
        raise InputFileError(path, PKL_HINT)
    if path.exists() and not path.is_dir():
        existing_file(path, "an SMPL-X .npz model file")  # refuses devices, FIFOs, sockets
    if path.suffix.lower() == ".npz" or path.is_file():
        if not path.is_file():
            raise InputFileError(path, NOT_FOUND_HINT)
        return path
    name = f"SMPLX_{gender.upper()}"
    candidates = [path / "smplx" / f"{name}.npz", path / f"{name}.npz"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    for candidate in candidates:
        if candidate.with_suffix(".pkl").is_file():
            raise InputFileError(candidate.with_suffix(".pkl"), PKL_HINT)
    hint = NOT_FOUND_HINT.replace("SMPLX_NEUTRAL", name)
    raise InputFileError(candidates[0], f"{hint} (also looked for {candidates[1]})")


def _check_gender(gender: str) -> str:
    g = str(gender).lower()
    if g not in GENDERS:
        raise ParameterError(f"SMPL-X gender must be one of {GENDERS}, got {gender!r}")
    return g


def _import_smplx():
    try:
        import smplx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendUnavailableError(f"SMPL-X needs the 'smplx' package: pip install smplx==0.1.28 ({exc})") from exc
    return smplx


_BUILD_LOCK = threading.Lock()


class _ValidatedNumpy:
    """Stands in for the ``numpy`` module inside ``smplx.body_models`` while one SMPLX module is built.

    ``smplx.SMPLX`` takes no arrays: it always calls ``np.load(path, allow_pickle=True)`` on the path it is
    given. Here that path is an *empty decoy file* in a private temporary folder, and this stand-in's
    :meth:`load` answers that one call with the arrays :func:`load_smplx_file` read and checked. Every other
    attribute is numpy's own. Why not the alternatives: re-implementing ``SMPLX.__init__`` would copy
    smplx's code; writing a sanitised copy of the file would cost hundreds of MB of disk and time per load.
    Why it is robust: the user's file is never passed to smplx at all, so if a future smplx loaded it some
    other way, it would read the empty decoy and fail (and :func:`_build_smplx_module` checks the arrays
    were handed over), never open the user's file; any other ``load`` made meanwhile is forced to
    ``allow_pickle=False``.
    """

    def __init__(self, decoy: str, arrays: dict[str, np.ndarray]) -> None:
        self._decoy = decoy
        self._arrays = arrays
        self.handed_over = False

    def load(self, file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | os.PathLike) and os.fspath(file) == self._decoy and not self.handed_over:
            self.handed_over = True
            return dict(self._arrays)
        kwargs["allow_pickle"] = False
        return np.load(file, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


class _NoPickle:
    """Stands in for ``pickle`` inside ``smplx.body_models`` during the build: nothing is unpickled."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("PoseFit does not let smplx unpickle anything")


def _build_smplx_module(data: SmplxModelData, gender: str, num_betas: int, num_expression: int, dtype: torch.dtype):
    """``smplx.SMPLX`` built from checked arrays; smplx never opens the user's file (see :class:`_ValidatedNumpy`).

    Returns:
        The ``smplx.SMPLX`` module (full axis-angle hands, ``flat_hand_mean=True``, batch size 1).
    """
    smplx = _import_smplx()
    body_models = smplx.body_models
    with tempfile.TemporaryDirectory(prefix="posefit-smplx-") as folder:
        decoy = os.path.join(folder, f"SMPLX_{gender.upper()}.npz")
        with open(decoy, "wb"):
            pass
        stand_in = _ValidatedNumpy(decoy, data.arrays)
        with _BUILD_LOCK, contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for 10+10 files
            saved = body_models.np, body_models.pickle
            body_models.np, body_models.pickle = stand_in, _NoPickle()
            try:
                model = smplx.SMPLX(
                    model_path=decoy,
                    gender=gender,
                    num_betas=num_betas,
                    num_expression_coeffs=num_expression,
                    use_pca=False,
                    flat_hand_mean=True,
                    use_face_contour=False,
                    batch_size=1,
                    dtype=dtype,
                    ext="npz",
                )
            finally:
                body_models.np, body_models.pickle = saved
    if not stand_in.handed_over:  # pragma: no cover - only if a future smplx loads its data differently
        raise BackendUnavailableError("this smplx version does not load models through numpy.load: use smplx==0.1.28")
    return model


class SmplxBody(BodyModel):
    """SMPL-X (55 joints; 10,475 vertices in the official files) from the user's ``.npz`` model file.

    Args:
        model_path: a folder with ``smplx/SMPLX_{GENDER}.npz`` or ``SMPLX_{GENDER}.npz``, or a ``.npz`` file.
        gender: "neutral", "male" or "female" (chooses the file in a folder).
        num_betas: S shape coefficients (<= 10 for v1.0 files, <= 300 for v1.1 files).
        num_expression: E expression coefficients (<= 10, resp. <= 100).
        device: torch device for the model's buffers.
        dtype: float32 (default) or float64 (for gradient checks).

    Attributes (beyond :class:`BodyModel`'s):
        model_file: the resolved ``.npz`` path. smplx_model: the underlying ``smplx.SMPLX`` module.
        hands_components / hands_mean: {"left"|"right": (45, 45) / (45,)} the file's hand PCA basis (rows)
            and mean hand pose, radians.
    """

    name = "smplx"

    def __init__(
        self,
        model_path: str | Path,
        gender: str = "neutral",
        num_betas: int = 10,
        num_expression: int = 10,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.gender = _check_gender(gender)
        self.model_file = find_smplx_model_file(model_path, self.gender)
        data = load_smplx_file(self.model_file, num_betas, num_expression)
        info = {
            "parents": data.parents,
            "posedirs_layout": data.posedirs_layout,
            "hands_components": data.hands_components,
            "hands_mean": data.hands_mean,
        }
        model = _build_smplx_module(data, self.gender, num_betas, num_expression, dtype)
        if info["posedirs_layout"] == "pv":  # smplx assumes (V, 3, 486); (486, V*3) comes out transposed
            model.posedirs = model.posedirs.T.contiguous()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self.device = torch.device(device)
        self.dtype = dtype
        self.smplx_model = model.to(self.device)

        self.joint_names = list(SMPLX_JOINT_NAMES)
        self.parents = list(info["parents"])
        self.faces = model.faces_tensor.detach().to(self.device, torch.int64)
        self.skinning_weights = model.lbs_weights.detach().to(self.device, torch.float32)
        self.body_joints = list(SMPLX_BODY_JOINTS)
        self.up_axis = torch.tensor([0.0, 1.0, 0.0])
        self.num_shape = int(num_betas)
        self.num_expression = int(num_expression)
        self.hands_components = info["hands_components"]
        self.hands_mean = info["hands_mean"]
        self._levels = self._kinematic_levels()

    def _kinematic_levels(self) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """Joints grouped by depth, for chaining world rotations one level (one batched matmul) at a time."""
        depth = [0] * NUM_JOINTS
        for j in range(1, NUM_JOINTS):
            depth[j] = depth[self.parents[j]] + 1
        order = [0]
        levels = []
        for d in range(1, max(depth) + 1):
            members = [j for j in range(NUM_JOINTS) if depth[j] == d]
            parent_pos = [order.index(self.parents[j]) for j in members]
            levels.append((torch.tensor(members, device=self.device), torch.tensor(parent_pos, device=self.device)))
            order += members
        inverse = torch.empty(NUM_JOINTS, dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(NUM_JOINTS)
        return levels, inverse.to(self.device)

    def _world_rotations(self, local: torch.Tensor) -> torch.Tensor:
        """(55, 3, 3) local rotation matrices -> (55, 3, 3) world rotations (parent chain products)."""
        levels, inverse = self._levels
        acc = local[:1]
        for members, parent_pos in levels:
            acc = torch.cat([acc, acc[parent_pos] @ local[members]], dim=0)
        return acc[inverse]

    def forward(self, params: BodyParams) -> BodyOutput:
        """Pose SMPL-X with linear blend skinning (shape, expression and pose blend shapes included).

        Args:
            params: rotations (55, 3) axis-angle in radians (rows as in the module docstring, hands flat at
                zero), translation (3,) metres, shape (S,) betas, expression (E,).

        Returns:
            vertices (V, 3) and joints (55, 3) in metres, +Y up, translation applied;
            joint_rotations_world (55, 3, 3).
        """
        rot = params.rotations.to(self.device, self.dtype)
        if tuple(rot.shape) != (NUM_JOINTS, 3):
            raise ParameterError(f"smplx: 'rotations' has shape {tuple(rot.shape)}, expected (55, 3)")
        betas = params.shape.to(self.device, self.dtype).reshape(1, -1)
        expression = params.expression.to(self.device, self.dtype).reshape(1, -1)
        transl = params.translation.to(self.device, self.dtype).reshape(1, 3)
        out = self.smplx_model(
            betas=betas,
            expression=expression,
            global_orient=rot[0:1],
            body_pose=rot[1:22].reshape(1, 63),
            jaw_pose=rot[22:23],
            leye_pose=rot[23:24],
            reye_pose=rot[24:25],
            left_hand_pose=rot[25:40].reshape(1, 45),
            right_hand_pose=rot[40:55].reshape(1, 45),
            transl=transl,
            return_verts=True,
            return_shaped=False,
        )
        world = self._world_rotations(axis_angle_to_matrix(rot))
        return BodyOutput(vertices=out.vertices[0], joints=out.joints[0, :NUM_JOINTS], joint_rotations_world=world)

    def params_from_init(self, init: Any, flat_hand_mean: bool | None = None) -> BodyParams:
        """Body parameters from a ``BodyInit``-like object (duck-typed).

        Args:
            init: has ``joint_rotations`` {SMPL-X joint name: (3,) axis-angle, radians} (missing joints stay
                zero), ``translation`` (3,) metres, ``betas`` (S',) or None, ``expression`` (E',) or None,
                ``hand_pca`` {"left"|"right": (K,) PCA coefficients, K <= 45} (optional); optionally
                ``flat_hand_mean`` (bool).
            flat_hand_mean: the smplx convention the init's hand values were made with; None reads
                ``init.flat_hand_mean`` and defaults to False, smplx's own default. When False, the file's
                mean hand pose is added to each hand the init specifies (PCA coefficients or explicit finger
                rotations), exactly as smplx does, so the result reproduces smplx's output for the same
                parameters (``use_pca=True`` for PCA hands). Hands the init leaves out stay flat. Pass True
                for values that are already full rotations (e.g. a saved SMPL-X ``full_pose``).

        Returns:
            BodyParams: rotations (55, 3), translation (3,), shape (num_betas,), expression (num_expression,),
            float32. Betas / expression are zero-padded, or truncated with a warning if nonzero values drop.

        Raises:
            ParameterError: unknown joint names (listed), bad shapes, non-finite values, K > 45, or a hand
                given both as PCA coefficients and as finger rotations.
        """
        if flat_hand_mean is None:
            if hasattr(init, "hand_pose_relative_to_mean"):  # posecore.io.init_files.BodyInit
                flat_hand_mean = not bool(init.hand_pose_relative_to_mean)
            else:
                flat_hand_mean = bool(getattr(init, "flat_hand_mean", False) or False)
        joint_rotations = dict(getattr(init, "joint_rotations", None) or {})
        unknown = sorted(set(joint_rotations) - set(self.joint_names))
        if unknown:
            raise ParameterError(
                f"unknown SMPL-X joint name(s) {unknown}; valid names are smplx.joint_names.JOINT_NAMES[:55] "
                f"({', '.join(self.joint_names[:4])}, ..., {self.joint_names[-1]})"
            )
        rotations = np.zeros((NUM_JOINTS, 3))
        for name, value in joint_rotations.items():
            rotations[self.joint_index(name)] = _vector(value, 3, f"joint rotation {name!r}")

        hand_pca = dict(getattr(init, "hand_pca", None) or {})
        bad_sides = sorted(set(hand_pca) - set(HAND_ROWS))
        if bad_sides:
            raise ParameterError(f"hand_pca keys must be 'left' or 'right', got {bad_sides}")
        for side, rows in HAND_ROWS.items():
            finger_names = set(self.joint_names[rows])
            explicit = sorted(finger_names & set(joint_rotations))
            if side in hand_pca:
                if explicit:
                    raise ParameterError(
                        f"the {side} hand is given both as PCA coefficients and as finger rotations {explicit}"
                    )
                coeffs = _vector(hand_pca[side], None, f"{side} hand PCA coefficients")
                if coeffs.size > 45:
                    raise ParameterError(f"{side} hand PCA: {coeffs.size} coefficients given, at most 45 exist")
                rotations[rows] = (coeffs @ self.hands_components[side][: coeffs.size]).reshape(15, 3)
            if not flat_hand_mean and (side in hand_pca or explicit):
                rotations[rows] += self.hands_mean[side].reshape(15, 3)

        translation = getattr(init, "translation", None)
        translation = np.zeros(3) if translation is None else _vector(translation, 3, "translation")
        betas = _fit_length(getattr(init, "betas", None), self.num_shape, "betas")
        expression = _fit_length(getattr(init, "expression", None), self.num_expression, "expression")
        return BodyParams(
            rotations=torch.tensor(rotations, dtype=torch.float32),
            translation=torch.tensor(translation, dtype=torch.float32),
            shape=torch.tensor(betas, dtype=torch.float32),
            expression=torch.tensor(expression, dtype=torch.float32),
        )


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"expected numbers, got {type(value).__name__} ({exc})") from exc


def _vector(value: Any, length: int | None, what: str) -> np.ndarray:
    """A finite float64 vector of the given length (any length when None), else ParameterError."""
    arr = _as_array(value)
    if arr.ndim != 1 or (length is not None and arr.shape[0] != length):
        expected = f"({length},)" if length is not None else "(K,)"
        raise ParameterError(f"{what} has shape {arr.shape}, expected {expected}")
    if not np.isfinite(arr).all():
        raise ParameterError(f"{what} contains NaN or infinite values")
    return arr


def _fit_length(value: Any, length: int, what: str) -> np.ndarray:
    """Zero-pad or truncate a coefficient vector to ``length``, warning when nonzero values are dropped."""
    out = np.zeros(length)
    if value is None:
        return out
    arr = _vector(_as_array(value).reshape(-1), None, what)
    dropped = arr[length:]
    if np.any(dropped != 0):
        warnings.warn(
            f"{what}: {arr.size} values given, the model uses {length}; dropping nonzero values "
            f"(largest |value| {np.abs(dropped).max():.3g})",
            stacklevel=3,
        )
    n = min(length, arr.size)
    out[:n] = arr[:n]
    return out
