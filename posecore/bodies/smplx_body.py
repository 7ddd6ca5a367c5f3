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
(``DIR/smplx/SMPLX_NEUTRAL.npz`` or ``DIR/SMPLX_NEUTRAL.npz``) or at a ``.npz`` file. Every file is checked
key by key before ``smplx`` reads it, so a wrong file gives an error naming the file, the key and the
shapes instead of a traceback from inside ``smplx``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posecore.bodies.base import BodyModel, BodyOutput, BodyParams
from posecore.bodies.smplx_joints import SMPLX_JOINT_NAMES
from posecore.errors import BackendUnavailableError, InputFileError, ParameterError
from posecore.rotations import axis_angle_to_matrix

NUM_JOINTS = 55
NUM_POSE_BASIS = 486  # 54 non-root joints x 9 rotation-matrix entries
GENDERS = ("neutral", "male", "female")
# smplx's SMPLX class indexes vertices up to this id (VERTEX_IDS['smplx']: nose, ears, toes, fingertips).
MIN_VERTICES = 9930

NOT_FOUND_HINT = (
    "SMPL-X model file not found; download it yourself from the SMPL-X website (licensed) and point "
    "--model smplx:DIR at the folder containing smplx/SMPLX_NEUTRAL.npz"
)
PKL_HINT = (
    "SMPL-X .pkl model files are not supported (they need chumpy, which does not work on Python 3.11); "
    "use the .npz files from the SMPL-X website (smplx/SMPLX_NEUTRAL.npz, ...)"
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


class _NpzHeaders:
    """Shapes and dtypes of the arrays in an ``.npz`` without reading their data (fast on big files)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
            members = self._zip.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputFileError(path, f"not a readable .npz archive ({exc})") from exc
        self.keys = {m[:-4] for m in members if m.endswith(".npy")}

    def close(self) -> None:
        self._zip.close()

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        try:
            with self._zip.open(f"{key}.npy") as fh:
                version = np.lib.format.read_magic(fh)
                fmt = np.lib.format
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read(fh)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise InputFileError(self.path, f"key {key!r} is not a readable array ({exc})") from exc
        return tuple(int(s) for s in shape), dtype

    def array(self, key: str) -> np.ndarray:
        try:
            with self._zip.open(f"{key}.npy") as fh:
                return np.lib.format.read_array(fh, allow_pickle=False)
        except ValueError as exc:
            raise InputFileError(
                self.path, f"key {key!r} holds pickled Python objects, not a numeric array ({exc})"
            ) from exc
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputFileError(self.path, f"key {key!r} is not a readable array ({exc})") from exc


def _shape_error(path: Path, key: str, found: tuple, expected: str) -> InputFileError:
    return InputFileError(path, f"SMPL-X key {key!r} has shape {found}, expected {expected}")


def validate_smplx_file(path: Path, num_betas: int = 10, num_expression: int = 10) -> dict[str, Any]:
    """Check an SMPL-X ``.npz`` key by key, without pickle and mostly without reading the big arrays.

    Args:
        path: the ``.npz`` file.
        num_betas, num_expression: the coefficient counts the caller wants; checked against the file's
            ``shapedirs`` layout (S < 300: SMPL-X v1.0, 10 shape + 10 expression; S >= 400: v1.1, 300 + 100).

    Returns:
        ``num_vertices``, ``parents`` (55 ints, -1 for the root), ``posedirs_layout`` ("v3p" for
        (V, 3, 486) or "pv" for (486, V*3)), ``hands_components`` / ``hands_mean`` ({"left"|"right": (45, 45)
        / (45,) float64 arrays}).

    Raises:
        InputFileError: naming the file, the key, the shape found and the shape expected.
        ParameterError: num_betas / num_expression beyond what the file holds.
    """
    path = Path(path)
    if path.suffix.lower() == ".pkl":
        raise InputFileError(path, PKL_HINT)
    if not path.is_file():
        raise InputFileError(path, NOT_FOUND_HINT)
    npz = _NpzHeaders(path)
    try:
        return _validate(npz, path, num_betas, num_expression)
    finally:
        npz.close()


def _validate(npz: _NpzHeaders, path: Path, num_betas: int, num_expression: int) -> dict[str, Any]:
    required = [
        "v_template",
        "f",
        "J_regressor",
        "weights",
        "kintree_table",
        "shapedirs",
        "posedirs",
        "hands_componentsl",
        "hands_componentsr",
        "hands_meanl",
        "hands_meanr",
        "lmk_faces_idx",
        "lmk_bary_coords",
    ]
    missing = [k for k in required if k not in npz.keys]
    if missing:
        raise InputFileError(path, f"not an SMPL-X model file: missing key(s) {missing} (found {sorted(npz.keys)})")
    shapes = {k: npz.header(k)[0] for k in required}

    v_shape = shapes["v_template"]
    if len(v_shape) != 2 or v_shape[1] != 3:
        raise _shape_error(path, "v_template", v_shape, "(V, 3)")
    num_v = v_shape[0]
    if num_v < MIN_VERTICES:
        raise InputFileError(
            path,
            f"SMPL-X key 'v_template' has {num_v} vertices; smplx's SMPLX class needs at least "
            f"{MIN_VERTICES} (it hard-codes landmark vertex ids up to {MIN_VERTICES - 1}); "
            "real SMPL-X has 10475",
        )

    def expect(key: str, shape: tuple[int, ...], text: str) -> None:
        if shapes[key] != shape:
            raise _shape_error(path, key, shapes[key], f"{text} = {shape}")

    expect("J_regressor", (NUM_JOINTS, num_v), "(55, V)")
    expect("weights", (num_v, NUM_JOINTS), "(V, 55)")
    expect("kintree_table", (2, NUM_JOINTS), "(2, 55)")
    for side in "lr":
        expect(f"hands_components{side}", (45, 45), "(45, 45)")
        expect(f"hands_mean{side}", (45,), "(45,)")

    f_shape = shapes["f"]
    if len(f_shape) != 2 or f_shape[1] != 3 or f_shape[0] < 1:
        raise _shape_error(path, "f", f_shape, "(F, 3)")
    faces = npz.array("f")
    if not np.issubdtype(faces.dtype, np.integer) or faces.min() < 0 or faces.max() >= num_v:
        raise InputFileError(path, f"SMPL-X key 'f' must hold vertex indices in [0, {num_v}) (V = {num_v})")

    s_shape = shapes["shapedirs"]
    if len(s_shape) != 3 or s_shape[:2] != (num_v, 3):
        raise _shape_error(path, "shapedirs", s_shape, f"(V, 3, S) = ({num_v}, 3, S)")
    num_s = s_shape[2]
    if 20 <= num_s < 300:
        max_betas, max_expr = 10, 10
    elif num_s >= 400:
        max_betas, max_expr = 300, min(100, num_s - 300)
    else:
        raise _shape_error(
            path,
            "shapedirs",
            s_shape,
            f"({num_v}, 3, 20) (10 shape + 10 expression, SMPL-X v1.0) or ({num_v}, 3, 400) (300 + 100, v1.1)",
        )
    if not 1 <= num_betas <= max_betas:
        raise ParameterError(f"{path}: num_betas={num_betas}, but this file holds 1..{max_betas} shape coefficients")
    if not 0 <= num_expression <= max_expr:
        raise ParameterError(
            f"{path}: num_expression={num_expression}, but this file holds 0..{max_expr} expression coefficients"
        )

    p_shape = shapes["posedirs"]
    if p_shape == (num_v, 3, NUM_POSE_BASIS):
        layout = "v3p"
    elif p_shape == (NUM_POSE_BASIS, num_v * 3):
        layout = "pv"
    else:
        raise _shape_error(
            path, "posedirs", p_shape, f"(V, 3, 486) = ({num_v}, 3, 486) or (486, V*3) = (486, {num_v * 3})"
        )

    kintree = npz.array("kintree_table").astype(np.int64)
    parents = [int(p) for p in kintree[0]]
    parents[0] = -1  # the official files store uint32 -1 (4294967295)
    bad = [j for j in range(1, NUM_JOINTS) if not 0 <= parents[j] < j]
    if bad:
        raise InputFileError(path, f"SMPL-X key 'kintree_table' has invalid parents for joints {bad}")

    lmk_shape = shapes["lmk_faces_idx"]
    if len(lmk_shape) != 1:
        raise _shape_error(path, "lmk_faces_idx", lmk_shape, "(L,)")
    expect("lmk_bary_coords", (lmk_shape[0], 3), "(L, 3)")
    lmk = npz.array("lmk_faces_idx")
    if lmk.size and (lmk.min() < 0 or lmk.max() >= f_shape[0]):
        raise InputFileError(path, f"SMPL-X key 'lmk_faces_idx' must hold face indices in [0, {f_shape[0]})")

    hands_components, hands_mean = {}, {}
    for side, s in (("left", "l"), ("right", "r")):
        hands_components[side] = npz.array(f"hands_components{s}").astype(np.float64)
        hands_mean[side] = npz.array(f"hands_mean{s}").astype(np.float64)
        for key in (f"hands_components{s}", f"hands_mean{s}"):
            if not np.isfinite(npz.array(key)).all():
                raise InputFileError(path, f"SMPL-X key {key!r} contains NaN or infinite values")
    return {
        "num_vertices": num_v,
        "parents": parents,
        "posedirs_layout": layout,
        "hands_components": hands_components,
        "hands_mean": hands_mean,
    }


def _import_smplx():
    try:
        import smplx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendUnavailableError(f"SMPL-X needs the 'smplx' package: pip install smplx==0.1.28 ({exc})") from exc
    return smplx


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
        info = validate_smplx_file(self.model_file, num_betas, num_expression)
        smplx = _import_smplx()
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for v1.0 (10 + 10) files
            model = smplx.SMPLX(
                model_path=str(self.model_file),
                gender=self.gender,
                num_betas=num_betas,
                num_expression_coeffs=num_expression,
                use_pca=False,
                flat_hand_mean=True,
                use_face_contour=False,
                batch_size=1,
                dtype=dtype,
                ext="npz",
            )
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
