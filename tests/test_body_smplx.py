"""SmplxBody on a synthetic SMPL-X-format model (the real files are licensed and never shipped)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("smplx")
pytest.importorskip("anny")

import smplx
from smplx.joint_names import JOINT_NAMES

from posecore.bodies.base import BodyParams
from posecore.bodies.smplx_body import SmplxBody, find_smplx_model_file
from posecore.bodies.synthetic_smplx import (
    SMPLX_PARENTS,
    ensure_synthetic_smplx_folder,
    write_synthetic_smplx_model,
)
from posecore.errors import InputFileError, ParameterError


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user-style model folder: ROOT/smplx/SMPLX_{NEUTRAL,MALE,FEMALE}.npz (synthetic, from Anny)."""
    return ensure_synthetic_smplx_folder(tmp_path_factory.mktemp("smplx_models"))


@pytest.fixture(scope="module")
def model_file(model_root: Path) -> Path:
    return model_root / "smplx" / "SMPLX_NEUTRAL.npz"


@pytest.fixture(scope="module")
def data(model_file: Path) -> dict[str, np.ndarray]:
    with np.load(model_file, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def body(model_file: Path) -> SmplxBody:
    return SmplxBody(model_file)


@pytest.fixture(scope="module")
def body64(model_root: Path) -> SmplxBody:
    return SmplxBody(model_root, dtype=torch.float64)


def _variant(
    src: Path, dst: Path, drop: tuple[str, ...] = (), replace: dict | None = None, keep_posedirs: bool = False
) -> Path:
    """A copy of an SMPL-X file with keys dropped / replaced. Unless ``keep_posedirs``, the big posedirs
    array becomes a 1-element placeholder (fine for tests whose file fails validation before it)."""
    replace = replace or {}
    with np.load(src, allow_pickle=False) as npz:
        arrays = {}
        for key in npz.files:
            if key in drop:
                continue
            if key in replace:
                arrays[key] = replace[key]
            elif key == "posedirs" and not keep_posedirs:
                arrays[key] = np.zeros(1)
            else:
                arrays[key] = npz[key]
    np.savez(dst, **arrays)  # uncompressed: quick to write and to read
    return dst


# --- loading ---------------------------------------------------------------------------------------------


def test_loads_from_folder_and_from_file(model_root: Path, model_file: Path, body: SmplxBody) -> None:
    from_folder = SmplxBody(model_root)
    assert from_folder.model_file == model_file
    assert find_smplx_model_file(model_root / "smplx", "female").name == "SMPLX_FEMALE.npz"
    assert find_smplx_model_file(model_root, "MALE") == model_root / "smplx" / "SMPLX_MALE.npz"
    assert body.model_file == model_file
    assert body.name == "smplx"
    assert body.num_vertices == 13718 and body.num_joints == 55
    assert body.joint_names == list(JOINT_NAMES[:55])
    assert body.parents == SMPLX_PARENTS
    assert body.faces.dtype == torch.int64 and tuple(body.faces.shape) == (27420, 3)
    assert torch.allclose(body.skinning_weights.sum(1), torch.ones(13718), atol=1e-5)
    assert body.body_joints[0] == "left_hip" and body.body_joints[-1] == "right_wrist"
    assert len(body.body_joints) == 21
    assert body.up_axis.tolist() == [0.0, 1.0, 0.0]
    assert (body.num_shape, body.num_expression) == (10, 10)
    out_folder = from_folder(from_folder.default_params())
    assert torch.equal(out_folder.vertices, body(body.default_params()).vertices)
    # The folder also works for smplx itself, the layout users give it.
    with_smplx = smplx.create(str(model_root), model_type="smplx", ext="npz", use_pca=False)
    assert with_smplx.v_template.shape == (13718, 3)


def test_synthetic_file_is_deterministic(model_file: Path, tmp_path: Path) -> None:
    again = write_synthetic_smplx_model(tmp_path / "again.npz")
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(model_file.read_bytes()).digest()


def test_synthetic_pose_correctives_move_smplx_vertices(model_root: Path) -> None:
    """smplx's own forward pass with the synthetic file: bending the right elbow moves vertices beyond plain
    skinning (the correctives), by millimetres, and only where the elbow skins."""
    model = smplx.create(str(model_root), model_type="smplx", ext="npz", use_pca=False)
    pose = torch.zeros(1, 63)
    pose[0, 3 * 18 : 3 * 18 + 3] = torch.tensor([0.0, 0.0, 1.2])  # body joint 19 (right elbow) is entry 18
    with torch.no_grad():
        bent = model(body_pose=pose).vertices[0]
        saved = model.posedirs.clone()
        model.posedirs.zero_()
        plain = model(body_pose=pose).vertices[0]
        model.posedirs.copy_(saved)
    offset = (bent - plain).norm(dim=1)
    assert 2e-4 < float(offset.max()) < 0.05
    assert float(offset[torch.from_numpy(model_root_weights(model_root)[:, 19] == 0)].max()) < 1e-7


def model_root_weights(model_root: Path) -> np.ndarray:
    with np.load(model_root / "smplx" / "SMPLX_NEUTRAL.npz") as data:
        return data["weights"]


def test_synthetic_file_contents(data: dict[str, np.ndarray]) -> None:
    V = data["v_template"].shape[0]
    reg = data["J_regressor"]
    assert (reg >= 0).all() and np.allclose(reg.sum(1), 1.0)
    # The regressor reproduces the Anny-derived joints it was solved for (NNLS, 4 vertices per joint).
    assert np.abs(reg @ data["v_template"] - data["synthetic_rest_joints"]).max() < 1e-6
    assert np.allclose(data["weights"].sum(1), 1.0) and (data["weights"] >= 0).all()
    for side in "lr":
        comps = data[f"hands_components{side}"]
        assert np.allclose(comps @ comps.T, np.eye(45), atol=1e-10)
        assert not data[f"hands_mean{side}"].any()
    assert data["shapedirs"].shape == (V, 3, 20)
    # Pose correctives are real: every joint's features move only the vertices that joint skins.
    posedirs = data["posedirs"]
    assert posedirs.shape == (V, 3, 486) and np.abs(posedirs).max() > 5e-4
    elbow = 19  # right_elbow: its nine features are columns 9 * 18 ... 9 * 18 + 8
    moved = np.abs(posedirs[:, :, 9 * (elbow - 1) : 9 * elbow]).sum((1, 2)) > 0
    assert moved.any() and (data["weights"][moved, elbow] > 0).all()
    # Betas are body-shape directions: each moves the whole body, a unit coefficient by millimetres-cm.
    rms = np.sqrt((data["shapedirs"][:, :, :10] ** 2).sum(1).mean(0))
    assert (rms > 1e-4).all() and rms[0] < 0.15
    # Expression directions touch only the head.
    moved = np.abs(data["shapedirs"][:, :, 10:]).sum((1, 2)) > 1e-6
    head_like = data["weights"][:, [15, 22, 23, 24]].sum(1) > 0.5
    assert moved.any() and head_like[moved].mean() > 0.95
    assert data["lmk_faces_idx"].max() < data["f"].shape[0]
    assert np.allclose(data["lmk_bary_coords"].sum(1), 1.0)


# --- geometry --------------------------------------------------------------------------------------------


def test_rest_joints_equal_regressed_template(body: SmplxBody, data: dict[str, np.ndarray]) -> None:
    out = body(body.default_params())
    expected = data["J_regressor"] @ data["v_template"]
    assert np.abs(out.joints.numpy() - expected).max() < 1e-5
    assert np.abs(out.vertices.numpy() - data["v_template"]).max() < 1e-5
    translated = body.default_params()
    translated.translation = torch.tensor([0.5, -1.0, 2.0])
    moved = body(translated)
    assert torch.allclose(moved.vertices - out.vertices, translated.translation.expand(13718, 3), atol=1e-5)
    assert torch.allclose(moved.joints - out.joints, translated.translation.expand(55, 3), atol=1e-5)


def test_upright_and_facing_plus_z(body: SmplxBody) -> None:
    out = body(body.default_params())
    joints, verts = out.joints, out.vertices
    j = body.joint_index
    assert joints[j("head"), 1] > joints[j("neck"), 1] > joints[j("pelvis"), 1] > joints[j("left_knee"), 1]
    assert joints[j("left_knee"), 1] > joints[j("left_ankle"), 1]
    assert joints[j("head"), 1] - joints[j("left_ankle"), 1] > 1.0  # metres: a human-sized body
    assert joints[j("left_hip"), 0] > 0 > joints[j("right_hip"), 0]  # its left side at +X
    # Facing +Z: eyes in front of the head joint, toes in front of the ankles, and the most forward point
    # of the head is the face (centred, between chin and brow).
    assert joints[j("left_eye_smplhf"), 2] > joints[j("head"), 2] + 0.03
    assert joints[j("left_foot"), 2] > joints[j("left_ankle"), 2] + 0.05
    head_verts = verts[body.skinning_weights[:, [j("head"), j("jaw")]].sum(1) > 0.5]
    front = head_verts[head_verts[:, 2].argmax()]
    back = head_verts[head_verts[:, 2].argmin()]
    assert abs(float(front[0])) < 0.02 and front[2] - back[2] > 0.15
    assert joints[j("jaw"), 1] - 0.1 < front[1] < joints[j("left_eye_smplhf"), 1] + 0.02


def test_left_elbow_bend_moves_only_forearm_and_hand(body: SmplxBody) -> None:
    rest = body(body.default_params())
    params = body.default_params()
    elbow = body.joint_index("left_elbow")
    params.rotations[elbow] = torch.tensor([0.0, math.pi / 2, 0.0])
    bent = body(params)
    below = body.descendants(elbow)  # left_elbow, left_wrist and the left fingers
    influence = body.skinning_weights[:, below].sum(1)
    shift = (bent.vertices - rest.vertices).norm(dim=1)
    assert shift[influence == 0].max() < 1e-6
    forearm_and_hand = influence > 0.99
    assert forearm_and_hand.sum() > 500 and shift[forearm_and_hand].median() > 0.05
    far = (rest.vertices - rest.joints[elbow]).norm(dim=1) > 0.1
    assert (shift[forearm_and_hand & far] > 0.05).all()
    hand = [k for k in below if k != elbow]
    others = [k for k in range(55) if k not in hand]
    assert (bent.joints[others] - rest.joints[others]).abs().max() < 1e-6
    assert ((bent.joints[hand] - rest.joints[hand]).norm(dim=1) > 0.05).all()


def test_world_rotations_carry_bones(body64: SmplxBody) -> None:
    """joint_rotations_world[j] rotates joint j's rest bone vectors into the posed ones."""
    generator = torch.Generator().manual_seed(1)
    params = body64.default_params().to("cpu", torch.float64)
    params.rotations = 0.3 * torch.randn(55, 3, generator=generator, dtype=torch.float64)
    rest = body64(body64.default_params().to("cpu", torch.float64)).joints
    out = body64(params)
    for child, parent in enumerate(body64.parents):
        if parent < 0:
            continue
        posed = out.joints[child] - out.joints[parent]
        expected = out.joint_rotations_world[parent] @ (rest[child] - rest[parent])
        assert torch.allclose(posed, expected, atol=1e-9)


def test_gradients_match_finite_differences(body64: SmplxBody) -> None:
    generator = torch.Generator().manual_seed(0)
    params = body64.default_params().to("cpu", torch.float64)
    params.rotations = 0.3 * torch.randn(55, 3, generator=generator, dtype=torch.float64)
    params.shape = 0.5 * torch.randn(10, generator=generator, dtype=torch.float64)
    params.expression = torch.randn(10, generator=generator, dtype=torch.float64)
    vertex_weights = torch.randn(13718, 3, generator=generator, dtype=torch.float64)

    def objective(p: BodyParams) -> torch.Tensor:
        out = body64(p)
        return (out.vertices * vertex_weights).sum() + out.joints.square().sum()

    for name in ("rotations", "shape", "expression", "translation"):
        getattr(params, name).requires_grad_(True)
    objective(params).backward()
    checks = [
        ("rotations", (body64.joint_index(n), axis))
        for n, axis in (("pelvis", 0), ("left_knee", 2), ("left_elbow", 1), ("jaw", 0), ("right_thumb1", 1))
    ]
    checks += [("shape", (0,)), ("expression", (2,)), ("translation", (1,))]
    eps = 1e-6
    with torch.no_grad():
        for name, index in checks:
            analytic = getattr(params, name).grad[index].item()
            plus, minus = params.clone(), params.clone()
            getattr(plus, name)[index] += eps
            getattr(minus, name)[index] -= eps
            numeric = (objective(plus) - objective(minus)).item() / (2 * eps)
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-6), (name, index)


def test_pose_blend_shapes_in_either_layout(model_file: Path, tmp_path: Path, body: SmplxBody) -> None:
    """posedirs (V, 3, 486) and (486, V*3) give the same body, and pose correctives are applied."""
    rng = np.random.default_rng(5)
    posedirs = 1e-3 * rng.standard_normal((13718, 3, 486), dtype=np.float32)
    a = SmplxBody(_variant(model_file, tmp_path / "a.npz", replace={"posedirs": posedirs}))
    flat = np.ascontiguousarray(posedirs.reshape(-1, 486).T)  # (486, V*3)
    b = SmplxBody(_variant(model_file, tmp_path / "b.npz", replace={"posedirs": flat}))
    params = body.default_params()
    params.rotations = 0.3 * torch.randn(55, 3, generator=torch.Generator().manual_seed(2))
    out_a, out_b, plain = a(params), b(params), body(params)
    assert torch.allclose(out_a.vertices, out_b.vertices, atol=1e-6)
    assert (out_a.vertices - plain.vertices).abs().max() > 1e-3
    assert torch.allclose(out_a.joints, plain.joints, atol=1e-6)  # correctives move vertices, not joints


# --- parameters from other tools --------------------------------------------------------------------------


def test_hand_pca_reproduces_smplx(model_file: Path, tmp_path: Path, data: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    means = {"hands_meanl": 0.2 * rng.normal(size=45), "hands_meanr": 0.2 * rng.normal(size=45)}
    path = _variant(model_file, tmp_path / "SMPLX_NEUTRAL.npz", replace=means, keep_posedirs=True)
    ours = SmplxBody(path)
    coeffs = {"left": rng.normal(size=6), "right": rng.normal(size=6)}
    betas, elbow = rng.normal(size=10), rng.normal(size=3) * 0.5
    for flat in (False, True):
        reference = smplx.SMPLX(
            str(path), use_pca=True, num_pca_comps=6, flat_hand_mean=flat, num_betas=10, num_expression_coeffs=10
        )
        body_pose = torch.zeros(1, 63)
        body_pose[0, 17 * 3 : 18 * 3] = torch.tensor(elbow, dtype=torch.float32)  # row 18 = left_elbow
        expected = reference(
            betas=torch.tensor(betas, dtype=torch.float32)[None],
            body_pose=body_pose,
            left_hand_pose=torch.tensor(coeffs["left"], dtype=torch.float32)[None],
            right_hand_pose=torch.tensor(coeffs["right"], dtype=torch.float32)[None],
            transl=torch.tensor([[0.1, 0.2, 0.3]]),
        )
        init = SimpleNamespace(
            joint_rotations={"left_elbow": elbow},
            translation=np.array([0.1, 0.2, 0.3]),
            betas=betas,
            expression=None,
            hand_pca=coeffs,
            flat_hand_mean=flat,
        )
        params = ours.params_from_init(init)
        out = ours(params)
        assert torch.allclose(out.vertices, expected.vertices[0], atol=1e-5), flat
        assert torch.allclose(out.joints, expected.joints[0, :55], atol=1e-5), flat
        expected_left = coeffs["left"] @ data["hands_componentsl"][:6] + (0 if flat else means["hands_meanl"])
        assert np.allclose(params.rotations[25:40].numpy().reshape(-1), expected_left, atol=1e-6)


def test_params_from_init(body: SmplxBody) -> None:
    init = SimpleNamespace(
        joint_rotations={"left_knee": np.array([0.5, 0.0, 0.0]), "pelvis": [0.0, 0.1, 0.0]},
        translation=np.array([1.0, 2.0, 3.0]),
        betas=np.arange(4.0),
        expression=None,
        hand_pca={},
    )
    params = body.params_from_init(init)
    body.check_params(params)
    assert params.rotations[4].tolist() == [0.5, 0.0, 0.0]
    assert params.rotations[0, 1].item() == pytest.approx(0.1)
    assert params.rotations[[j for j in range(55) if j not in (0, 4)]].abs().max() == 0  # hands stay flat
    assert params.shape.tolist() == [0.0, 1.0, 2.0, 3.0] + [0.0] * 6
    assert params.expression.tolist() == [0.0] * 10
    # Truncating nonzero betas warns; trailing zeros do not.
    with pytest.warns(UserWarning, match="betas"):
        body.params_from_init(SimpleNamespace(joint_rotations={}, translation=np.zeros(3), betas=np.ones(16)))
    long_zeros = np.concatenate([np.ones(10), np.zeros(290)])
    assert body.params_from_init(SimpleNamespace(translation=None, betas=long_zeros)).shape.sum() == 10
    with pytest.raises(ParameterError, match=r"'left_elbw'.*'spine4'|'spine4'.*'left_elbw'"):
        rotations = {"left_elbw": np.zeros(3), "spine4": np.zeros(3), "neck": np.zeros(3)}
        body.params_from_init(SimpleNamespace(joint_rotations=rotations, translation=np.zeros(3)))
    with pytest.raises(ParameterError, match="left hand"):
        body.params_from_init(
            SimpleNamespace(
                joint_rotations={"left_index1": np.zeros(3)}, translation=np.zeros(3), hand_pca={"left": np.zeros(6)}
            )
        )
    with pytest.raises(ParameterError, match="translation"):
        body.params_from_init(SimpleNamespace(joint_rotations={}, translation=np.zeros(2)))


# --- bad input ---------------------------------------------------------------------------------------------


def test_missing_model_names_expected_path(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as info:
        SmplxBody(tmp_path / "models")
    expected = tmp_path / "models" / "smplx" / "SMPLX_NEUTRAL.npz"
    assert info.value.path == str(expected)
    assert str(expected) in str(info.value) and "download it yourself" in str(info.value)
    with pytest.raises(InputFileError, match=r"SMPLX_MALE\.npz"):
        SmplxBody(tmp_path / "models", gender="male")
    with pytest.raises(InputFileError) as info:
        SmplxBody(tmp_path / "nowhere.npz")
    assert info.value.path == str(tmp_path / "nowhere.npz")
    with pytest.raises(ParameterError, match="gender"):
        SmplxBody(tmp_path, gender="other")


def test_pkl_is_refused(tmp_path: Path) -> None:
    pkl = tmp_path / "smplx" / "SMPLX_NEUTRAL.pkl"
    pkl.parent.mkdir()
    pkl.write_bytes(b"\x80\x04N.")
    for where in (pkl, tmp_path):
        with pytest.raises(InputFileError, match=r"\.npz") as info:
            SmplxBody(where)
        assert info.value.path == str(pkl) and "chumpy" in str(info.value)


def test_not_an_npz(tmp_path: Path) -> None:
    bad = tmp_path / "SMPLX_NEUTRAL.npz"
    bad.write_text("hello")
    with pytest.raises(InputFileError, match=r"not a readable \.npz"):
        SmplxBody(bad)


def test_missing_key_is_named(model_file: Path, tmp_path: Path) -> None:
    path = _variant(model_file, tmp_path / "no_regressor.npz", drop=("J_regressor",))
    with pytest.raises(InputFileError, match="J_regressor") as info:
        SmplxBody(path)
    assert info.value.path == str(path) and "missing" in str(info.value)


def test_wrong_shape_names_found_and_expected(model_file: Path, tmp_path: Path) -> None:
    path = _variant(model_file, tmp_path / "bad_weights.npz", replace={"weights": np.zeros((13718, 54))})
    with pytest.raises(InputFileError) as info:
        SmplxBody(path)
    message = str(info.value)
    assert "'weights'" in message and "(13718, 54)" in message and "(13718, 55)" in message
    assert info.value.path == str(path)


def test_too_few_vertices_is_explained(model_file: Path, tmp_path: Path) -> None:
    path = _variant(model_file, tmp_path / "small.npz", replace={"v_template": np.zeros((5000, 3))})
    with pytest.raises(InputFileError, match="9930") as info:
        SmplxBody(path)
    assert "5000" in str(info.value) and "v_template" in str(info.value)


def test_more_betas_than_the_file_holds(model_file: Path) -> None:
    with pytest.raises(ParameterError, match="num_betas=16"):
        SmplxBody(model_file, num_betas=16)
