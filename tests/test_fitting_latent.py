"""theta_b as VPoser's latent code (upstream parameter ``vposer``): exact start, gradients, a fit that gets
closer to the truth, selective fits that leave other joints alone, and clear refusals."""

from __future__ import annotations

import pytest
import torch

from posecore.bodies import load_body_model
from posecore.bodies.synthetic_vposer import fit_decoder_to_poses, random_decoder
from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import ParameterError
from posecore.fitting.latent import VPOSER_JOINTS, LatentPose
from posecore.fitting.look import Look
from posecore.fitting.loop import FitProblem, PoseFitter
from posecore.fitting.parts import part_joints
from posecore.fitting.presets import get_preset
from posecore.metrics import mpjpe_mm
from posecore.render.raster import RasterRenderer
from posecore.render.scene import RenderScene

SIZE = 96


@pytest.fixture(scope="module")
def smplx_case(synthetic_smplx_dir):
    """An SMPL-X body, a truth and a faulty initialisation, a target rendered from the truth, and a VPoser
    decoder whose latent space holds the poses between them (with the initialisation's code)."""
    body = load_body_model(f"smplx:{synthetic_smplx_dir}")
    truth = body.default_params()
    for name, value in {"left_shoulder": (0.0, 0.0, -0.6), "right_elbow": (0.0, 0.0, 0.8),
                        "left_hip": (0.0, 0.0, 0.3), "right_shoulder": (0.0, 0.0, 0.5)}.items():  # fmt: skip
        truth.rotations[body.joint_index(name)] = torch.tensor(value)
    initial = truth.clone()
    for name, value in {"left_shoulder": (0.0, 0.0, 0.4), "right_elbow": (0.0, 0.0, -0.45),
                        "left_hip": (0.0, 0.0, -0.35), "right_shoulder": (0.0, 0.0, -0.4)}.items():  # fmt: skip
        initial.rotations[body.joint_index(name)] += torch.tensor(value)
    rows = [body.joint_index(n) for n in VPOSER_JOINTS]
    t = torch.linspace(0, 1, 21)[:, None, None]
    poses = (1 - t) * initial.rotations[rows] + t * truth.rotations[rows]
    decoder, codes = fit_decoder_to_poses(poses, iterations=600)
    cam = PinholeCamera.look_at(torch.tensor([0.0, 0.0, 3.0]), torch.tensor([0.0, -0.1, 0.0]),
                                torch.tensor([0.0, 1.0, 0.0]), SIZE, SIZE, 45.0)  # fmt: skip
    with torch.no_grad():
        scene = RenderScene(body(truth).vertices, body.faces, torch.full((body.num_vertices, 3), 0.8), cam)
        target = RasterRenderer().render(scene).image.clamp(0, 1)
    return body, truth, initial, target, cam, decoder, codes[0]


def body_mpjpe(body, params, truth) -> float:
    joints = body.body_joint_indices
    with torch.no_grad():
        return mpjpe_mm(body(params).joints[joints], body(truth).joints[joints])


def test_latent_fit_starts_exactly_at_the_initialisation_and_gets_closer(smplx_case) -> None:
    body, truth, initial, target, cam, decoder, code = smplx_case
    for initial_code in (code, None):  # the file's own code, or the closest code found by encoding
        problem = FitProblem(body, initial, target, Look(cam), RasterRenderer(), vposer=decoder,
                             initial_code=initial_code)  # fmt: skip
        reference = "zero" if initial_code is not None else "init"
        preset = get_preset("fast").with_overrides(
            iterations=60, optimise=("vposer",), latent_prior_reference=reference
        )
        states = PoseFitter(problem, preset).run()
        assert torch.equal(states[0].params.rotations, initial.rotations)  # iteration 0 is the init, exactly
        before, after = body_mpjpe(body, initial, truth), body_mpjpe(body, states[-1].params, truth)
        assert after < 0.6 * before, (initial_code is None, before, after)
        # the prior is on the code: ||z0||^2 at the start (the paper's), or ||z - z0||^2 = 0
        expected = float(code.square().sum()) if initial_code is not None else 0.0
        assert states[0].prior_loss == pytest.approx(expected, rel=1e-5)


def test_latent_rotations_gradient_matches_finite_differences() -> None:
    decoder = random_decoder("v1", seed=5)
    rows = torch.tensor([0, 3, 17, 20])
    offsets = torch.linalg.qr(torch.randn(4, 3, 3, dtype=torch.float64))[0]
    offsets = offsets * torch.linalg.det(offsets)[:, None, None]  # proper rotations
    latent = LatentPose(decoder, torch.zeros(32), torch.zeros(32), torch.arange(4), rows, offsets,
                        torch.zeros(4, 3))  # fmt: skip

    def rotations(z: torch.Tensor) -> torch.Tensor:
        latent.code = z
        return latent.rotations()

    z = (0.3 * torch.randn(32, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(rotations, (z,), eps=1e-6, atol=1e-5)


def test_selective_latent_fit_leaves_other_joints_unchanged(smplx_case) -> None:
    body, _truth, initial, target, cam, decoder, code = smplx_case
    problem = FitProblem(body, initial, target, Look(cam, part="left_arm"), RasterRenderer(), vposer=decoder,
                         initial_code=code)  # fmt: skip
    fitter = PoseFitter(problem, get_preset("fast").with_overrides(iterations=8, optimise=("vposer",)))
    final = fitter.run()[-2].params  # the last iterate: it moved
    inside = set(part_joints(body, "left_arm"))
    outside = [j for j in range(body.num_joints) if j not in inside]
    assert torch.equal(final.rotations[outside], initial.rotations[outside])
    assert not torch.equal(final.rotations[sorted(inside)], initial.rotations[sorted(inside)])


def test_paper_preset_optimises_the_code_when_a_vposer_is_given(smplx_case) -> None:
    body, _truth, initial, target, cam, decoder, _code = smplx_case
    with_vposer = PoseFitter(FitProblem(body, initial, target, Look(cam), RasterRenderer(), vposer=decoder),
                             get_preset("paper"))  # fmt: skip
    assert "vposer" in with_vposer.preset.optimise and "pose" not in with_vposer.preset.optimise
    without = PoseFitter(FitProblem(body, initial, target, Look(cam), RasterRenderer()), get_preset("paper"))
    assert "pose" in without.preset.optimise


def test_latent_needs_a_vposer_and_an_smplx_body(smplx_case, anny) -> None:
    body, _truth, initial, target, cam, decoder, _code = smplx_case
    preset = get_preset("fast").with_overrides(optimise=("vposer",))
    with pytest.raises(ParameterError, match="needs a VPoser folder"):
        PoseFitter(FitProblem(body, initial, target, Look(cam), RasterRenderer()), preset)
    from posecore.demo import make_demo_case

    case = make_demo_case(anny, size=64)
    problem = FitProblem(anny, case.initial, case.target, Look(case.camera), RasterRenderer(), vposer=decoder)
    with pytest.raises(ParameterError, match="SMPL-X bodies"):
        PoseFitter(problem, preset)
    with pytest.raises(ParameterError, match="either 'pose'"):
        get_preset("fast").with_overrides(optimise=("pose", "vposer"))
