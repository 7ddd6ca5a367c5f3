"""A synthetic, freely redistributable SMPL-X-format model file, built from the free Anny body.

The real SMPL-X files are licensed and never shipped, so tests (and demos without the real files) write
a stand-in with :func:`write_synthetic_smplx_model`: an ``.npz`` with every key ``smplx.SMPLX`` reads, in
SMPL-X's conventions (metres, +Y up, the body facing +Z, its left side at +X, 55 joints in SMPL-X order
with the real SMPL-X kinematic tree), but with Anny's (MakeHuman, CC0) mesh and skinning. It is a
*human-shaped test body*, not SMPL-X: it has 13,718 vertices (SMPL-X: 10,475) and an A-pose rest pose.

How each key is built:

* ``v_template`` (V, 3): Anny's rest mesh at the average phenotype (all 0.5), rotated from Anny's frame
  (Z-up, facing -Y) into SMPL-X's (Y-up, facing +Z) by ``(x, y, z) -> (x, z, -y)``, a proper rotation
  (no mirroring, so left stays left). ``f`` (F, 3): Anny's 27,420 triangles.
* joints: each SMPL-X joint sits at the head of an Anny bone (:data:`SMPLX_JOINT_TO_ANNY`); ``left_foot`` /
  ``right_foot`` (the balls of the feet) at the mean of the five toe-base heads; ``jaw`` at a point inside
  the head (the jaw hinge, behind and below the eyes).
* ``weights`` (V, 55): Anny's skinning weights summed per SMPL-X joint; every Anny bone is given to its
  nearest mapped ancestor (twist bones, metacarpals, the extra spine and neck bones, and all toes to the
  feet). The head's weights are split smoothly between ``head`` and ``jaw`` below the mouth line.
* ``J_regressor`` (55, V): for each joint, non-negative weights that sum to 1 over the vertices of the two
  body parts meeting at the joint, solved by non-negative least squares (a few vertices per joint). The
  regressed rest joints equal the target heads to within :data:`JOINT_REGRESSION_TOLERANCE` (measured:
  3e-15 m, 4 vertices per joint; the writer checks it). The targets are stored too, as the extra key
  ``synthetic_rest_joints`` (55, 3), which smplx ignores.
* ``shapedirs`` (V, 3, S): the first ``num_betas`` columns are principal components of Anny's rest-mesh
  displacements under phenotype changes (each phenotype pushed to the ends of an adult-like range around
  0.5, plus random phenotypes in that range),
  scaled so that coefficients of about unit size span the sampled range - genuine body-shape directions,
  as SMPL-X's betas are. The expression columns are smooth random displacement fields (sums of Gaussian
  bumps, about 5 mm per unit) confined to the front of the face. ``S`` = 20 in SMPL-X v1.0's compact
  layout (10 shape + 10 expression) when both counts are <= 10, else 400 (300 + 100, v1.1's layout),
  unused columns zero.
* ``posedirs`` (V, 3, 486): non-zero pose correctives, so that code carrying them (posecore's corrective offsets,
  the Blender shape key) runs with real values: pose feature ``9 (j - 1) + m`` (entry ``m`` of joint ``j``'s
  ``R - I``) moves the vertices joint ``j`` skins, by their skinning weight, along a fixed random direction,
  :data:`CORRECTIVE_SCALE` metres per unit (a bent elbow moves them by about a millimetre).
* ``hands_componentsl/r`` (45, 45): random orthonormal matrices (fixed seed); ``hands_meanl/r`` zeros.
* ``lmk_faces_idx`` (51,), ``lmk_bary_coords`` (51, 3): 51 triangles on the front of the face with
  barycentric weights summing to 1.

The file is byte-for-byte deterministic for given arguments (fixed seeds, fixed zip timestamps).
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch

from posecore.bodies.anny_body import SMPLX_TO_ANNY, AnnyBody
from posecore.bodies.smplx_joints import SMPLX_JOINT_NAMES, SMPLX_PARENTS

_FINGERS = {"index": 2, "middle": 3, "pinky": 5, "ring": 4, "thumb": 1}  # SMPL-X finger -> Anny finger number


def _joint_map() -> dict[str, list[str]]:
    """SMPL-X joint -> the Anny bones whose heads place it (mean) and whose subtrees it owns."""
    out: dict[str, list[str]] = {name: [bone] for name, bone in SMPLX_TO_ANNY.items()}
    for side, s in (("left", "L"), ("right", "R")):
        out[f"{side}_foot"] = [f"toe{t}-1.{s}" for t in range(1, 6)]
        out[f"{side}_eye_smplhf"] = [f"eye.{s}"]
        for finger, number in _FINGERS.items():
            for k in range(1, 4):
                out[f"{side}_{finger}{k}"] = [f"finger{number}-{k}.{s}"]
    return out


# SMPL-X joint -> Anny bones (the joint sits at the mean of their heads). "jaw" has no Anny bone.
SMPLX_JOINT_TO_ANNY: dict[str, list[str]] = _joint_map()

# Anny (Z-up, facing -Y) -> SMPL-X (Y-up, facing +Z): (x, y, z) -> (x, z, -y). det = +1.
ANNY_TO_SMPLX_ROTATION = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Phenotype ranges sampled for the shape space, as +- around 0.5: Anny's full age and height ranges span
# newborns to 2.1 m giants; adult-like variation keeps unit betas at SMPL-X-like magnitudes (centimetres).
_PHENOTYPE_SPREAD = {
    "gender": 0.5,
    "age": 0.1,
    "muscle": 0.5,
    "weight": 0.5,
    "height": 0.15,
    "proportions": 0.5,
}

JOINT_REGRESSION_TOLERANCE = 1e-5  # metres; the writer raises if any regressed joint is further off
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _nnls(A: np.ndarray, b: np.ndarray, max_iter: int = 500, tol: float = 1e-12) -> np.ndarray:
    """Lawson-Hanson non-negative least squares: argmin_x ||A x - b|| subject to x >= 0.

    Args:
        A: (m, n); b: (m,).

    Returns:
        (n,) non-negative solution.
    """
    n = A.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = A.T @ (b - A @ x)
    for _ in range(max_iter):
        if passive.all() or (w[~passive].max() if (~passive).any() else 0.0) <= tol:
            break
        candidates = np.where(~passive, w, -np.inf)
        passive[int(np.argmax(candidates))] = True
        while True:
            s = np.zeros(n)
            s[passive] = np.linalg.lstsq(A[:, passive], b, rcond=None)[0]
            if (s[passive] > tol).all():
                break
            blocking = passive & (s <= tol)
            alpha = np.min(x[blocking] / (x[blocking] - s[blocking]))
            x = x + alpha * (s - x)
            passive &= x > tol
            x[~passive] = 0.0
        x = s
        w = A.T @ (b - A @ x)
    return x


def _regress_joint(vertices: np.ndarray, candidates: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1 over ``candidates`` whose weighted vertex mean is ``target``.

    Args:
        vertices: (V, 3) metres; candidates: (K,) vertex indices; target: (3,) metres.

    Returns:
        (K,) weights >= 0, sum 1.
    """
    lam = 10.0  # weight of the sum-to-one row relative to the (metre-scale) coordinate rows
    A = np.vstack([vertices[candidates].T, lam * np.ones((1, len(candidates)))])
    b = np.concatenate([target, [lam]])
    w = _nnls(A, b)
    return w / w.sum()


def _anny_rest(body, phenotypes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Anny rest meshes and bone heads for a batch of phenotypes, in Anny's frame.

    Args:
        body: an :class:`~posecore.bodies.anny_body.AnnyBody`.
        phenotypes: (N, 6) values in [0, 1].

    Returns:
        vertices (N, V, 3) and bone heads (N, 104, 3), float64 metres.
    """
    model = body._model
    n = phenotypes.shape[0]
    with torch.no_grad():
        coeffs = model._get_phenotype_blendshape_coefficients(
            phenotypes.to(model.dtype),
            torch.zeros(n, len(model.local_change_labels), dtype=model.dtype),
            torch.zeros(n, len(model.facial_action_labels), dtype=model.dtype),
        )
        rest = model.get_rest_model(coeffs)
    return rest["rest_vertices"].double().numpy(), rest["rest_bone_heads"].double().numpy()


def _smooth_step(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _build_arrays(num_betas: int, num_expression: int, seed: int) -> dict[str, np.ndarray]:
    """Every array of the synthetic model file (see the module docstring)."""
    if num_betas < 1 or num_expression < 0:
        raise ValueError(f"num_betas must be >= 1 and num_expression >= 0, got {num_betas}, {num_expression}")
    if num_betas > 300 or num_expression > 100:
        raise ValueError("SMPL-X files hold at most 300 shape and 100 expression directions")
    rng = np.random.default_rng(seed)
    body = AnnyBody()
    names = body.joint_names
    anny_parents = body.parents
    rot = ANNY_TO_SMPLX_ROTATION

    # --- Rest mesh and joints at the average phenotype, in SMPL-X's frame.
    base = torch.full((1, body.num_shape), 0.5)
    verts_anny, heads_anny = _anny_rest(body, base)
    verts = verts_anny[0] @ rot.T  # (V, 3)
    heads = heads_anny[0] @ rot.T  # (104, 3)
    faces = body.faces.cpu().numpy().astype(np.int64)
    num_verts = verts.shape[0]
    anny_weights = body.skinning_weights.cpu().double().numpy()  # (V, 104)

    joint_map = SMPLX_JOINT_TO_ANNY
    num_joints = len(SMPLX_JOINT_NAMES)
    joints = np.zeros((num_joints, 3))
    owner = {}  # Anny bone index -> SMPL-X joint index for the bones that define a joint
    for j, name in enumerate(SMPLX_JOINT_NAMES):
        if name == "jaw":
            continue
        bones = [names.index(b) for b in joint_map[name]]
        joints[j] = heads[bones].mean(0)
        for b in bones:
            owner[b] = j
    # The jaw hinge: level with the head joint's depth, between the head joint and the eyes in height.
    eye_mid = 0.5 * (joints[23] + joints[24])
    head_j = joints[15]
    joints[22] = np.array([0.0, head_j[1] + 0.35 * (eye_mid[1] - head_j[1]), head_j[2] + 0.01])

    # --- Skinning weights: every Anny bone to its nearest mapped ancestor.
    assign = np.zeros((len(names), num_joints))
    for b in range(len(names)):
        a = b
        while a not in owner:
            a = anny_parents[a]
            if a < 0:
                raise RuntimeError(f"Anny bone {names[b]} has no mapped ancestor")  # pragma: no cover
        assign[b, owner[a]] = 1.0
    weights = anny_weights @ assign  # (V, 55)
    # Jaw: the head's weight below the mouth line and in front of the hinge moves to the jaw, smoothly.
    mouth_y = eye_mid[1] - 0.065
    below_mouth = _smooth_step((mouth_y - verts[:, 1]) / 0.006)
    jaw_share = below_mouth * _smooth_step((verts[:, 2] - joints[22, 2]) / 0.01)
    moved = weights[:, 15] * jaw_share
    weights[:, 22] += moved
    weights[:, 15] -= moved
    weights /= weights.sum(1, keepdims=True)

    # --- Joint regressor over the vertices of the parts meeting at each joint.
    regressor = np.zeros((num_joints, num_verts))
    for j in range(num_joints):
        parent = SMPLX_PARENTS[j]
        children = [c for c, p in enumerate(SMPLX_PARENTS) if p == j]
        parts = [j, *children] + ([parent] if parent >= 0 else [])
        region = np.where(weights[:, parts].sum(1) > 0.3)[0]
        dist = np.linalg.norm(verts[region] - joints[j], axis=1)
        candidates = region[np.argsort(dist, kind="stable")[:300]]
        w = _regress_joint(verts, candidates, joints[j])
        if np.linalg.norm(w @ verts[candidates] - joints[j]) > JOINT_REGRESSION_TOLERANCE:
            # Outside the hull of its neighbourhood: fall back to the nearest vertices of the whole body.
            dist = np.linalg.norm(verts - joints[j], axis=1)
            candidates = np.argsort(dist, kind="stable")[:600]
            w = _regress_joint(verts, candidates, joints[j])
        regressor[j, candidates] = w
    error = np.linalg.norm(regressor @ verts - joints, axis=1).max()
    if error > JOINT_REGRESSION_TOLERANCE:
        raise RuntimeError(f"synthetic SMPL-X joint regression error {error:.2e} m")  # pragma: no cover

    # --- Shape directions: PCA of Anny's phenotype displacements.
    num_pheno = body.num_shape
    spread = np.array([_PHENOTYPE_SPREAD.get(n, 0.5) for n in body.shape_names])
    extremes = np.full((2 * num_pheno, num_pheno), 0.5)
    for i in range(num_pheno):
        extremes[2 * i, i] -= spread[i]
        extremes[2 * i + 1, i] += spread[i]
    random = 0.5 + spread * rng.uniform(-1.0, 1.0, size=(max(36, 2 * num_betas), num_pheno))
    samples = np.vstack([extremes, random])
    sample_verts, _ = _anny_rest(body, torch.tensor(samples, dtype=torch.float32))
    disp = (sample_verts @ rot.T - verts[None]).reshape(len(samples), -1)  # (N, V*3)
    # PCA through the small (N, N) Gram matrix: much faster than an SVD of the (N, V*3) matrix.
    eigval, eigvec = np.linalg.eigh(disp @ disp.T)
    eigval, eigvec = eigval[::-1], eigvec[:, ::-1]
    usable = int((eigval > 1e-8 * eigval[0]).sum())
    if num_betas > usable:
        raise ValueError(f"Anny's phenotypes span only {usable} shape directions; asked for {num_betas}")
    sing = np.sqrt(eigval[:num_betas])
    unit_dirs = (eigvec[:, :num_betas].T @ disp) / sing[:, None]  # (num_betas, V*3) orthonormal rows
    shape_dirs = unit_dirs * (sing[:, None] / np.sqrt(len(samples)))
    for k in range(num_betas):  # deterministic sign: the largest component is positive
        if shape_dirs[k, np.argmax(np.abs(shape_dirs[k]))] < 0:
            shape_dirs[k] = -shape_dirs[k]
    shape_dirs = shape_dirs.reshape(num_betas, num_verts, 3).transpose(1, 2, 0)  # (V, 3, num_betas)

    # --- Expression directions: smooth random fields on the front of the face.
    face_w = weights[:, 15] + weights[:, 22]
    front = _smooth_step((verts[:, 2] - (eye_mid[2] - 0.05)) / 0.01)
    face_mask = face_w * front  # (V,) in [0, 1]
    face_idx = np.where(face_mask > 0.5)[0]
    expr_dirs = np.zeros((num_verts, 3, num_expression))
    for k in range(num_expression):
        field = np.zeros((num_verts, 3))
        for _ in range(3):
            centre = verts[face_idx[rng.integers(len(face_idx))]]
            radius = rng.uniform(0.015, 0.03)
            bump = np.exp(-np.sum((verts - centre) ** 2, axis=1) / (2 * radius**2))
            field += bump[:, None] * rng.normal(size=3)[None]
        field *= face_mask[:, None]
        expr_dirs[:, :, k] = field * (0.005 / np.abs(field).max())

    compact = num_betas <= 10 and num_expression <= 10
    num_shape_cols, expr_start = (20, 10) if compact else (400, 300)
    shapedirs = np.zeros((num_verts, 3, num_shape_cols))
    shapedirs[:, :, :num_betas] = shape_dirs
    shapedirs[:, :, expr_start : expr_start + num_expression] = expr_dirs

    # --- Hands: random orthonormal PCA bases, zero means.
    def orthonormal() -> np.ndarray:
        q, r = np.linalg.qr(rng.normal(size=(45, 45)))
        return q * np.sign(np.diag(r))[None]

    hands_l, hands_r = orthonormal(), orthonormal()

    # --- Landmarks: 51 triangles on the front of the face.
    face_tris = np.where(face_mask[faces].min(1) > 0.5)[0]
    lmk_faces = np.sort(rng.choice(face_tris, size=51, replace=False)).astype(np.int64)
    bary = rng.uniform(0.2, 1.0, size=(51, 3))
    bary /= bary.sum(1, keepdims=True)

    kintree = np.stack([np.array(SMPLX_PARENTS, dtype=np.int64), np.arange(num_joints, dtype=np.int64)])
    kintree[0, 0] = 4294967295  # as in the official files (uint32 -1)
    return {
        "v_template": verts,
        "f": faces.astype(np.uint32),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
        "shapedirs": shapedirs,
        "posedirs": _pose_correctives(weights, seed),
        "hands_componentsl": hands_l,
        "hands_componentsr": hands_r,
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
        "lmk_faces_idx": lmk_faces,
        "lmk_bary_coords": bary,
        # Not an SMPL-X key (smplx ignores it): the exact joint positions the regressor reproduces.
        "synthetic_rest_joints": joints,
    }


CORRECTIVE_SCALE = 0.001
"""Metres of pose-corrective displacement per unit of a pose feature (an entry of ``R - I``)."""


def _pose_correctives(weights: np.ndarray, seed: int) -> np.ndarray:
    """(V, 3, 486) correctives: each joint's nine pose features move the vertices it skins (by their weight) along
    fixed random unit directions (own generator: the other arrays do not change with it)."""
    rng = np.random.default_rng(seed + 7919)
    directions = rng.normal(size=(weights.shape[1] - 1, 9, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    fields = weights[:, 1:, None, None] * directions[None] * CORRECTIVE_SCALE  # (V, 54, 9, 3)
    return np.ascontiguousarray(fields.reshape(len(weights), -1, 3).transpose(0, 2, 1)).astype(np.float32)


def save_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but byte-for-byte reproducible (fixed zip timestamps, sorted keys)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=1)
    tmp.replace(path)


def write_synthetic_smplx_model(path: Path, num_betas: int = 10, num_expression: int = 10, seed: int = 0) -> Path:
    """Write a human-shaped SMPL-X-format ``.npz`` model (see the module docstring) and return its path.

    Args:
        path: the ``.npz`` file to write (parent folders are created).
        num_betas: shape directions to fill (1..300); num_expression: expression directions (0..100).
            Both <= 10 gives SMPL-X v1.0's compact (V, 3, 20) ``shapedirs``; more gives (V, 3, 400).
        seed: seeds the random phenotype samples, expression fields, hand bases and landmarks.

    Returns:
        ``path``. Takes a few seconds (loading Anny dominates); needs the ``anny`` package and its cache.
    """
    path = Path(path)
    save_npz_deterministic(path, _build_arrays(num_betas, num_expression, seed))
    return path


def ensure_synthetic_smplx_folder(root: Path) -> Path:
    """Make ``root`` look like a user's SMPL-X model folder, as ``smplx.create(root, model_type='smplx')``
    and :class:`~posecore.bodies.smplx_body.SmplxBody` expect it.

    Writes ``root/smplx/SMPLX_NEUTRAL.npz`` (default arguments) unless it exists, and copies it to
    ``SMPLX_MALE.npz`` / ``SMPLX_FEMALE.npz``.

    Returns:
        ``root`` (pass it as the model folder).
    """
    root = Path(root)
    folder = root / "smplx"
    neutral = folder / "SMPLX_NEUTRAL.npz"
    if not neutral.is_file():
        write_synthetic_smplx_model(neutral)
    for gender in ("MALE", "FEMALE"):
        target = folder / f"SMPLX_{gender}.npz"
        if not target.is_file():
            shutil.copyfile(neutral, target)
    return root
