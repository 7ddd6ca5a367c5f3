"""Read and check a user's SMPL-X ``.npz`` model file without pickles and with bounded memory.

The official files hold pickled object members (``joint2num``, ``part2num``) beside the arrays, which is
why ``smplx`` opens them with ``np.load(..., allow_pickle=True)`` - and why a shared model folder could
run code. :func:`load_smplx_file` reads only the members SMPL-X needs (:data:`REQUIRED_KEYS`) through
:class:`~posecore.io.safe_npz.NpzArchive` (never unpickling, sizes checked before decompressing) and
checks each: dtype (numbers; integer indices where indices are stored), shape (from the vertex count V
of ``v_template``), finite values of plausible magnitude, index ranges and the kinematic tree. Other
members are never read. :mod:`posecore.bodies.smplx_body` hands the checked arrays to ``smplx``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posecore.errors import InputFileError, ParameterError
from posecore.io.safe_npz import NpyHeader, NpzArchive

NUM_JOINTS = 55
NUM_POSE_BASIS = 486  # 54 non-root joints x 9 rotation-matrix entries
# smplx's SMPLX class indexes vertices up to this id (VERTEX_IDS['smplx']: nose, ears, toes, fingertips).
MIN_VERTICES = 9930
MAX_VERTICES = 50_000  # SMPL-X has 10,475; the Anny-derived test model 13,718
MAX_FACES = 4 * MAX_VERTICES
MAX_SHAPE_COMPONENTS = 400  # v1.1: 300 shape + 100 expression
MAX_LANDMARKS = 1000
MAX_MODEL_MEMBERS = 100
_HEADER_ONLY = 2**62  # header() reads no data; its byte limit is replaced by the element limits below
MAX_MAGNITUDE = 1e4
"""Largest |value| in a model's float arrays (metres, unit-free blend weights): larger is corrupt data,
and would overflow to inf in float32."""

REQUIRED_KEYS: tuple[str, ...] = (
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
)
INDEX_KEYS = ("f", "kintree_table", "lmk_faces_idx")

PKL_HINT = (
    "SMPL-X .pkl model files are not supported (they need chumpy, which does not work on Python 3.11); "
    "use the .npz files from the SMPL-X website (smplx/SMPLX_NEUTRAL.npz, ...)"
)


@dataclass
class SmplxModelData:
    """The checked content of an SMPL-X model file.

    Attributes:
        arrays: key -> array for every key of :data:`REQUIRED_KEYS` (dtypes as stored).
        num_vertices: V. parents: 55 ints, -1 for the root.
        posedirs_layout: "v3p" for (V, 3, 486) or "pv" for (486, V*3).
        hands_components / hands_mean: {"left"|"right": (45, 45) / (45,) float64}.
    """

    arrays: dict[str, np.ndarray]
    num_vertices: int
    parents: list[int]
    posedirs_layout: str
    hands_components: dict[str, np.ndarray] = field(default_factory=dict)
    hands_mean: dict[str, np.ndarray] = field(default_factory=dict)


def _shape_error(path: Path, key: str, found: tuple, expected: str) -> InputFileError:
    return InputFileError(path, f"SMPL-X key {key!r} has shape {found}, expected {expected}")


def _max_elements(key: str, num_v: int) -> int:
    """An upper bound on the element count of ``key`` in any legitimate file with V vertices."""
    return {
        "v_template": MAX_VERTICES * 3,
        "f": MAX_FACES * 3,
        "J_regressor": NUM_JOINTS * num_v,
        "weights": num_v * NUM_JOINTS,
        "kintree_table": 2 * NUM_JOINTS,
        "shapedirs": num_v * 3 * MAX_SHAPE_COMPONENTS,
        "posedirs": num_v * 3 * NUM_POSE_BASIS,
        "hands_componentsl": 45 * 45,
        "hands_componentsr": 45 * 45,
        "hands_meanl": 45,
        "hands_meanr": 45,
        "lmk_faces_idx": MAX_LANDMARKS,
        "lmk_bary_coords": MAX_LANDMARKS * 3,
    }[key]


def _header(npz: NpzArchive, key: str, num_v: int) -> NpyHeader:
    head = npz.header(key, _HEADER_ONLY)  # reads the header only; the size is checked here, before any data
    kinds = "iu" if key in INDEX_KEYS else "fiu"
    if head.dtype.kind not in kinds:
        expected = "integer indices" if key in INDEX_KEYS else "numbers"
        raise InputFileError(npz.path, f"SMPL-X key {key!r} holds {head.dtype} data, expected {expected}")
    limit = _max_elements(key, num_v)
    if math.prod(head.shape) > limit:
        raise InputFileError(
            npz.path,
            f"SMPL-X key {key!r} declares shape {head.shape}: more than the {limit:,} values any SMPL-X model "
            f"with {num_v:,} vertices has",
        )
    return head


def _read(npz: NpzArchive, key: str, head: NpyHeader) -> np.ndarray:
    arr = npz.array(key, head.nbytes)
    if arr.dtype.kind == "f":
        with np.errstate(all="ignore"):
            if not np.isfinite(arr).all():
                raise InputFileError(npz.path, f"SMPL-X key {key!r} contains NaN or infinite values")
            if arr.size and np.abs(arr).max() > MAX_MAGNITUDE:
                raise InputFileError(
                    npz.path,
                    f"SMPL-X key {key!r} holds values up to {float(np.abs(arr).max()):.3g}, beyond a body model's "
                    f"(|value| <= {MAX_MAGNITUDE:g}): corrupt file?",
                )
    return arr


def load_smplx_file(
    path: Path, num_betas: int = 10, num_expression: int = 10, min_vertices: int = MIN_VERTICES
) -> SmplxModelData:
    """Read and check an SMPL-X ``.npz`` key by key (never unpickling; unused members never read).

    Args:
        path: the ``.npz`` file.
        num_betas, num_expression: the coefficient counts the caller wants; checked against the file's
            ``shapedirs`` layout (S < 300: SMPL-X v1.0, 10 shape + 10 expression; S >= 400: v1.1, 300 + 100).
        min_vertices: the fewest vertices accepted (smplx's SMPLX class needs 9,930; the fuzz tests use
            tiny models).

    Returns:
        :class:`SmplxModelData`.

    Raises:
        InputFileError: naming the file and the key: missing keys, wrong shapes (found and expected), disallowed
            dtypes (text, object arrays), NaN/inf or absurd values, indices out of range, sizes beyond what
            the shapes allow, encrypted/corrupt members, non-regular files.
        ParameterError: num_betas / num_expression beyond what the file holds.
    """
    path = Path(path)
    if path.suffix.lower() == ".pkl":
        raise InputFileError(path, PKL_HINT)
    with NpzArchive(path, "an SMPL-X model file", max_members=MAX_MODEL_MEMBERS) as npz:
        return _load(npz, path, num_betas, num_expression, min_vertices)


def _load(npz: NpzArchive, path: Path, num_betas: int, num_expression: int, min_vertices: int) -> SmplxModelData:
    missing = [k for k in REQUIRED_KEYS if k not in npz]
    if missing:
        found = sorted(npz.keys)[:30]
        raise InputFileError(path, f"not an SMPL-X model file: missing key(s) {missing} (found {found})")

    v_head = _header(npz, "v_template", MAX_VERTICES)
    v_shape = v_head.shape
    if len(v_shape) != 2 or v_shape[1] != 3:
        raise _shape_error(path, "v_template", v_shape, "(V, 3)")
    num_v = v_shape[0]
    if num_v < min_vertices:
        raise InputFileError(
            path,
            f"SMPL-X key 'v_template' has {num_v} vertices; smplx's SMPLX class needs at least "
            f"{min_vertices} (it hard-codes landmark vertex ids up to {min_vertices - 1}); "
            "real SMPL-X has 10475",
        )
    heads = {k: _header(npz, k, num_v) for k in REQUIRED_KEYS}
    shapes = {k: h.shape for k, h in heads.items()}

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

    lmk_shape = shapes["lmk_faces_idx"]
    if len(lmk_shape) != 1:
        raise _shape_error(path, "lmk_faces_idx", lmk_shape, "(L,)")
    expect("lmk_bary_coords", (lmk_shape[0], 3), "(L, 3)")

    arrays = {k: _read(npz, k, heads[k]) for k in REQUIRED_KEYS}
    return _check_values(path, arrays, num_v, layout)


def _check_values(path: Path, arrays: dict[str, np.ndarray], num_v: int, layout: str) -> SmplxModelData:
    faces = arrays["f"]
    if faces.min() < 0 or faces.max() >= num_v:
        raise InputFileError(path, f"SMPL-X key 'f' must hold vertex indices in [0, {num_v}) (V = {num_v})")

    kintree = arrays["kintree_table"].astype(np.int64)
    parents = [int(p) for p in kintree[0]]
    parents[0] = -1  # the official files store uint32 -1 (4294967295)
    bad = [j for j in range(1, NUM_JOINTS) if not 0 <= parents[j] < j]
    if bad:
        raise InputFileError(path, f"SMPL-X key 'kintree_table' has invalid parents for joints {bad[:10]}")

    lmk = arrays["lmk_faces_idx"]
    num_f = faces.shape[0]
    if lmk.size and (lmk.min() < 0 or lmk.max() >= num_f):
        raise InputFileError(path, f"SMPL-X key 'lmk_faces_idx' must hold face indices in [0, {num_f})")

    hands_components: dict[str, Any] = {}
    hands_mean: dict[str, Any] = {}
    for side, s in (("left", "l"), ("right", "r")):
        hands_components[side] = arrays[f"hands_components{s}"].astype(np.float64)
        hands_mean[side] = arrays[f"hands_mean{s}"].astype(np.float64)
    return SmplxModelData(
        arrays=arrays,
        num_vertices=num_v,
        parents=parents,
        posedirs_layout=layout,
        hands_components=hands_components,
        hands_mean=hands_mean,
    )
