"""SMPLify-X results in the layouts SMPLify-X really writes, taken through to the posed body and checked
against the ``smplx`` package itself with the same parameters.

Each file is built the way ``smplifyx/fit_single_frame.py`` builds it: the body model comes from
``smplx.create`` with the arguments ``smplifyx/main.py`` passes (``create_transl=False``,
``create_body_pose=not use_vposer``, ``use_pca``, ``num_pca_comps``, ``flat_hand_mean`` from the config), the
result dict is ``{'camera_' + k: v}`` for the camera's parameters plus ``body_model.named_parameters()``, with
``body_pose`` replaced by the VPoser code when ``use_vposer``, and it is written with
``pickle.dump(result, f, protocol=2)``. The reference pose is ``body_model(body_pose=vposer.decode(code))``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

smplx = pytest.importorskip("smplx", reason="needs the smplx package (requirements.txt)")

from posecore.bodies import params_from_init  # noqa: E402
from posecore.bodies.smplx_body import SmplxBody  # noqa: E402
from posecore.bodies.synthetic_vposer import random_decoder, write_vposer_v1, write_vposer_v2  # noqa: E402
from posecore.errors import InputFileError  # noqa: E402
from posecore.io.init_files import read_init  # noqa: E402
from posecore.io.vposer_files import load_vposer  # noqa: E402

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def model_root(synthetic_smplx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic SMPL-X folder with nonzero mean hand poses (as the real files have), so getting
    ``flat_hand_mean`` wrong shows."""
    root = tmp_path_factory.mktemp("smplx_hands_mean")
    (root / "smplx").mkdir()
    with np.load(synthetic_smplx_dir / "smplx" / "SMPLX_NEUTRAL.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    rng = np.random.default_rng(5)
    arrays["hands_meanl"], arrays["hands_meanr"] = 0.3 * rng.normal(size=45), 0.3 * rng.normal(size=45)
    np.savez(root / "smplx" / "SMPLX_NEUTRAL.npz", **arrays)
    return root


@pytest.fixture(scope="module")
def body(model_root: Path) -> SmplxBody:
    return SmplxBody(model_root)


class _ReferenceVPoserV1(torch.nn.Module):
    """human_body_prior 0.9.x ``VPoser.decode`` (eval mode), loaded the way that library loads it."""

    def __init__(self) -> None:
        super().__init__()
        self.bodyprior_dec_fc1 = torch.nn.Linear(32, 512)
        self.bodyprior_dec_fc2 = torch.nn.Linear(512, 512)
        self.bodyprior_dec_out = torch.nn.Linear(512, 21 * 6)

    def decode_aa(self, z: torch.Tensor) -> torch.Tensor:
        from scipy.spatial.transform import Rotation

        x = torch.nn.functional.leaky_relu(self.bodyprior_dec_fc1(z), negative_slope=0.2)
        x = torch.nn.functional.leaky_relu(self.bodyprior_dec_fc2(x), negative_slope=0.2)
        x = self.bodyprior_dec_out(x).view(-1, 3, 2)
        b1 = torch.nn.functional.normalize(x[:, :, 0], dim=1)
        b2 = torch.nn.functional.normalize(x[:, :, 1] - torch.sum(b1 * x[:, :, 1], dim=1, keepdim=True) * b1, dim=-1)
        mats = torch.stack([b1, b2, torch.cross(b1, b2, dim=1)], dim=-1)
        return torch.tensor(Rotation.from_matrix(mats.detach().double().numpy()).as_rotvec(), dtype=torch.float32)


def smplifyx_result(
    model_root: Path,
    *,
    use_pca: bool = True,
    num_pca_comps: int = 12,
    flat_hand_mean: bool = False,
    vposer_code: torch.Tensor | None = None,
    create_transl: bool = False,
) -> tuple[dict[str, np.ndarray], object]:
    """(result dict as SMPLify-X pickles it, the smplx body model that produced it, randomly posed)."""
    model = smplx.create(
        str(model_root), model_type="smplx", gender="neutral", use_pca=use_pca, num_pca_comps=num_pca_comps,
        flat_hand_mean=flat_hand_mean, create_global_orient=True, create_body_pose=vposer_code is None,
        create_betas=True, create_left_hand_pose=True, create_right_hand_pose=True, create_expression=True,
        create_jaw_pose=True, create_leye_pose=True, create_reye_pose=True, create_transl=create_transl,
        dtype=torch.float32,
    )  # fmt: skip
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = {"betas": 1.0, "expression": 0.5, "global_orient": 0.4, "transl": 0.2}.get(name, 0.3)
            param.copy_(torch.tensor(scale * RNG.normal(size=tuple(param.shape)), dtype=torch.float32))
    camera = {"rotation": torch.eye(3)[None], "translation": torch.tensor([[0.02, 0.25, 14.0]])}
    result = {"camera_" + k: v.detach().cpu().numpy() for k, v in camera.items()}
    result.update({k: v.detach().cpu().numpy() for k, v in model.named_parameters()})
    if vposer_code is not None:
        result["body_pose"] = vposer_code.detach().cpu().numpy()
    return result, model


def write_result(path: Path, result: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as f:
        pickle.dump(result, f, protocol=2)
    return path


def check_against_smplx(body: SmplxBody, init, vposer, model, body_pose: torch.Tensor | None) -> None:
    params = params_from_init(body, init, vposer=vposer)
    with torch.no_grad():
        ours = body(params)
        reference = model(return_verts=True, body_pose=body_pose)
    assert torch.allclose(ours.joints, reference.joints[0, :55], atol=2e-5), (
        (ours.joints - reference.joints[0, :55]).abs().max()
    )
    assert torch.allclose(ours.vertices, reference.vertices[0], atol=2e-5)


@pytest.mark.parametrize("num_pca_comps", [12, 6, 1, 24, 44])
@pytest.mark.parametrize("create_transl", [False, True])
def test_pca_hands_pose_like_smplx(model_root, body, tmp_path, num_pca_comps, create_transl) -> None:
    result, model = smplifyx_result(model_root, num_pca_comps=num_pca_comps, create_transl=create_transl)
    assert result["left_hand_pose"].shape == (1, num_pca_comps) and result["body_pose"].shape == (1, 63)
    assert ("transl" in result) == create_transl
    init = read_init(write_result(tmp_path / "000.pkl", result))
    check_against_smplx(body, init, None, model, None)


@pytest.mark.parametrize("flat_hand_mean", [False, True])
def test_full_hands_pose_like_smplx(model_root, body, tmp_path, flat_hand_mean) -> None:
    """use_pca: False writes (1, 45) hands. The file does not record flat_hand_mean; the reader assumes
    SMPLify-X's default (False) unless the file or the caller says otherwise."""
    result, model = smplifyx_result(model_root, use_pca=False, flat_hand_mean=flat_hand_mean)
    assert result["left_hand_pose"].shape == (1, 45)
    init = read_init(write_result(tmp_path / "000.pkl", result))
    if flat_hand_mean:
        init.hand_pose_relative_to_mean = False  # what --flat-hand-mean sets
    check_against_smplx(body, init, None, model, None)
    # and the same through a flat_hand_mean key in the file
    result["flat_hand_mean"] = np.array(flat_hand_mean)
    check_against_smplx(body, read_init(write_result(tmp_path / "001.pkl", result)), None, model, None)


def test_no_hands_poses_like_smplx(model_root, body, tmp_path) -> None:
    result, model = smplifyx_result(model_root)
    for key in ("left_hand_pose", "right_hand_pose"):
        result.pop(key)
    with torch.no_grad():
        model.left_hand_pose.zero_()
        model.right_hand_pose.zero_()
    check_against_smplx(body, read_init(write_result(tmp_path / "000.pkl", result)), None, model, None)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_vposer_default_layout_poses_like_smplx(model_root, body, tmp_path, version) -> None:
    """SMPLify-X's default config: use_vposer + 12 PCA hands, decoded with a VPoser folder in its exact layout."""
    decoder = random_decoder(version, seed=3)
    folder = (write_vposer_v1 if version == "v1" else write_vposer_v2)(tmp_path / "vposer", decoder)
    code = torch.tensor(RNG.normal(size=(1, 32)), dtype=torch.float32)
    result, model = smplifyx_result(model_root, vposer_code=code)
    assert result["body_pose"].shape == (1, 32) and result["left_hand_pose"].shape == (1, 12)
    init = read_init(write_result(tmp_path / "000.pkl", result))
    vposer = load_vposer(folder)
    if version == "v1":  # the reference decoder, loaded as human_body_prior loads the snapshot
        reference = _ReferenceVPoserV1()
        state = torch.load(next((folder / "snapshots").glob("*.pt")), map_location="cpu", weights_only=True)
        reference.load_state_dict({k: v for k, v in state.items() if k.startswith("bodyprior_dec")})
        body_pose = reference.decode_aa(code).reshape(1, 63)
    else:
        body_pose = decoder.decode(code).reshape(1, 63)
    check_against_smplx(body, init, vposer, model, body_pose)
    assert not (folder / "IMPORTED").exists()  # the folder's vposer_smpl.py was never run


def test_vposer_code_without_a_vposer_folder_names_file_and_flag(model_root, body, tmp_path) -> None:
    result, _ = smplifyx_result(model_root, vposer_code=torch.zeros(1, 32))
    path = write_result(tmp_path / "000.pkl", result)
    with pytest.raises(InputFileError, match=r"000\.pkl.*VPoser latent code.*--vposer"):
        params_from_init(body, read_init(path))


def test_batch_of_two_results_reads_each_frame(model_root, body, tmp_path) -> None:
    """Arrays with a leading batch dimension of 2 are two frames; each poses like smplx with that row."""
    first, model_a = smplifyx_result(model_root)
    second, model_b = smplifyx_result(model_root)
    stacked = {k: np.concatenate([first[k], second[k]]) for k in first}
    path = write_result(tmp_path / "batch.pkl", stacked)
    check_against_smplx(body, read_init(path, frame=0), None, model_a, None)
    check_against_smplx(body, read_init(path, frame=1), None, model_b, None)
