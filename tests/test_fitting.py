"""The optimisation loop end to end: the pose gets closer to the truth, selective fits move only the part,
stopping early loses nothing, bad input is refused before anything runs."""

from __future__ import annotations

import pytest
import torch

from posecore.demo import make_demo_case
from posecore.errors import ParameterError
from posecore.fitting.look import Look
from posecore.fitting.loop import FitDivergedError, FitProblem, PoseFitter
from posecore.fitting.parts import part_joints
from posecore.fitting.presets import get_preset
from posecore.metrics import joint_angle_change_degrees, mpjpe_mm
from posecore.render.raster import RasterRenderer

SIZE = 128


@pytest.fixture(scope="module")
def case(anny):
    return make_demo_case(anny, size=SIZE)


def body_mpjpe(body, params, truth) -> float:
    joints = body.body_joint_indices
    with torch.no_grad():
        return mpjpe_mm(body(params).joints[joints], body(truth).joints[joints])


def test_fit_halves_the_joint_error(anny, case) -> None:
    fitter = PoseFitter(FitProblem(anny, case.initial, case.target, Look(case.camera), RasterRenderer()),
                        get_preset("fast").with_overrides(iterations=100))  # fmt: skip
    states = fitter.run()
    before, after = body_mpjpe(anny, states[0].params, case.truth), body_mpjpe(anny, states[-1].params, case.truth)
    assert before > 80.0  # a faulty initialisation, 15-30 degrees off on limbs and torso
    assert after <= 0.5 * before, (before, after)
    assert states[-1].image_loss < 0.6 * states[0].image_loss


def test_states_one_per_step_then_a_final_evaluation(anny, case) -> None:
    fitter = PoseFitter(FitProblem(anny, case.initial, case.target, Look(case.camera), RasterRenderer()),
                        get_preset("fast").with_overrides(iterations=3))  # fmt: skip
    states = fitter.run()
    assert [s.iteration for s in states] == [0, 1, 2, 3]
    assert [s.final for s in states] == [False, False, False, True]
    assert torch.equal(states[0].params.rotations, case.initial.rotations)
    assert not torch.equal(states[-1].params.rotations, states[0].params.rotations)
    assert states[0].render.shape == (SIZE, SIZE, 3) and states[0].weight.shape == (SIZE, SIZE)
    assert all(s.elapsed_s >= 0 for s in states)


def test_stopping_early_leaves_the_initialisation_untouched(anny, case) -> None:
    initial = case.initial.clone()
    problem = FitProblem(anny, case.initial, case.target, Look(case.camera), RasterRenderer())
    fitter = PoseFitter(problem, get_preset("fast"))
    steps = fitter.steps()
    for _ in range(4):
        state = next(steps)
    steps.close()  # a cancelled fit
    assert not torch.equal(state.params.rotations, initial.rotations)
    assert torch.equal(problem.initial.rotations, initial.rotations)  # never modified
    assert torch.equal(fitter.initial.rotations, initial.rotations)  # what a cancel restores


def test_selective_fit_moves_only_the_part(anny, case) -> None:
    """Look at the right arm: its error falls (more than a whole-body fit manages), and every joint outside the
    arm stays exactly still (bit for bit, as the README says), though the legs, the left arm and the head are
    wrong too."""
    arm = part_joints(anny, "right_arm")
    initial = case.truth.clone()
    wrong = ["upperarm01.R", "lowerarm01.R", "upperleg01.L", "lowerleg01.L", "upperleg01.R", "upperarm01.L",
             "lowerarm01.L", "head"]  # fmt: skip
    for name in wrong:
        j = anny.joint_index(name)
        initial.rotations[j] = case.initial.rotations[j]
    preset = get_preset("fast").with_overrides(iterations=60)
    look = Look(case.camera, part="right_arm")
    fitter = PoseFitter(FitProblem(anny, initial, case.target, look, RasterRenderer()), preset)
    final = fitter.run()[-1].params
    assert set(fitter.free_joints) <= set(arm) and fitter.free_joints
    with torch.no_grad():
        true_arm = anny(case.truth).joints[arm]
        arm_before = mpjpe_mm(anny(initial).joints[arm], true_arm)
        arm_after = mpjpe_mm(anny(final).joints[arm], true_arm)
    assert arm_after < 0.5 * arm_before, (arm_before, arm_after)
    outside = [j for j in range(anny.num_joints) if j not in arm]
    assert torch.equal(final.rotations[outside], initial.rotations[outside])
    assert torch.equal(final.shape, initial.shape) and torch.equal(final.translation, initial.translation)


def test_paper_preset_orbits_the_camera_at_fixed_distance(anny, case) -> None:
    preset = get_preset("paper").with_overrides(iterations=3, camera_lr=1e-6)
    fitter = PoseFitter(FitProblem(anny, case.initial, case.target, Look(case.camera), RasterRenderer()), preset)
    states = fitter.run()
    moved = states[-2]  # the last iterate (the result may be the initialisation if every step made it worse)
    assert float(moved.camera_angle.norm()) > 0  # the camera angle is optimised
    d0 = (case.camera.position - fitter.pivot).norm()
    d1 = (moved.camera.position - fitter.pivot).norm()
    assert float(d1) == pytest.approx(float(d0), rel=1e-5)


def test_fit_with_an_smplx_format_model(synthetic_smplx_dir) -> None:
    from posecore.bodies import load_body_model
    from posecore.cameras.pinhole import PinholeCamera
    from posecore.render.scene import RenderScene

    body = load_body_model(f"smplx:{synthetic_smplx_dir}")
    truth = body.default_params()
    for name, value in {
        "left_shoulder": (0.0, 0.0, -0.6),
        "right_elbow": (0.0, 0.0, 0.8),
        "left_hip": (0.0, 0.0, 0.3),
    }.items():
        truth.rotations[body.joint_index(name)] = torch.tensor(value)
    initial = truth.clone()
    for name, value in {
        "left_shoulder": (0.0, 0.0, 0.4),
        "right_elbow": (0.0, 0.0, -0.45),
        "left_hip": (0.0, 0.0, -0.35),
    }.items():
        initial.rotations[body.joint_index(name)] += torch.tensor(value)
    # SMPL-X is Y-up facing +Z: a camera in front of it; the errors are rotations in the image plane, which a
    # single view can resolve (rotations towards the camera are depth-ambiguous).
    cam = PinholeCamera.look_at(torch.tensor([0.0, 0.0, 3.0]), torch.tensor([0.0, -0.1, 0.0]),
                                torch.tensor([0.0, 1.0, 0.0]), SIZE, SIZE, 45.0)  # fmt: skip
    with torch.no_grad():
        target = (
            RasterRenderer()
            .render(RenderScene(body(truth).vertices, body.faces, torch.full((body.num_vertices, 3), 0.8), cam))
            .image.clamp(0, 1)
        )
    fitter = PoseFitter(FitProblem(body, initial, target, Look(cam), RasterRenderer()),
                        get_preset("fast").with_overrides(iterations=80))  # fmt: skip
    final = fitter.run()[-1].params
    assert body_mpjpe(body, final, truth) < 0.8 * body_mpjpe(body, initial, truth)
    for name in ("left_shoulder", "right_elbow", "left_hip"):  # each wrong joint is at least 40% closer
        j = body.joint_index(name)
        before = joint_angle_change_degrees(initial.rotations[j : j + 1], truth.rotations[j : j + 1])
        after = joint_angle_change_degrees(final.rotations[j : j + 1], truth.rotations[j : j + 1])
        assert float(after) < 0.6 * float(before), (name, float(before), float(after))


# ----------------------------------------------------------------------------------------------- bad input
def test_nan_parameters_are_refused(anny, case) -> None:
    bad = case.initial.clone()
    bad.rotations[3, 0] = float("nan")
    with pytest.raises(ParameterError, match=r"rotations.*NaN"):
        PoseFitter(FitProblem(anny, bad, case.target, Look(case.camera), RasterRenderer()), get_preset("fast"))


def test_wrong_shapes_are_refused(anny, case) -> None:
    bad = case.initial.clone()
    bad.rotations = bad.rotations[:10]
    with pytest.raises(ParameterError, match=r"'rotations' has shape \(10, 3\), expected \(104, 3\)"):
        PoseFitter(FitProblem(anny, bad, case.target, Look(case.camera), RasterRenderer()), get_preset("fast"))
    with pytest.raises(ParameterError, match="target image"):
        PoseFitter(FitProblem(anny, case.initial, case.target[:-1], Look(case.camera), RasterRenderer()),
                   get_preset("fast"))  # fmt: skip


def test_a_camera_that_sees_nothing_is_refused(anny, case) -> None:
    from posecore.cameras.pinhole import PinholeCamera

    away = PinholeCamera.look_at(torch.tensor([0.0, -3.0, 0.0]), torch.tensor([0.0, -6.0, 0.0]),
                                 torch.tensor([0.0, 0.0, 1.0]), SIZE, SIZE)  # fmt: skip
    with pytest.raises(ParameterError, match="sees no vertex"):
        PoseFitter(FitProblem(anny, case.initial, case.target, Look(away), RasterRenderer()), get_preset("fast"))


def test_unknown_part_and_empty_vertex_group_are_refused(anny, case) -> None:
    with pytest.raises(ParameterError, match="unknown part"):
        PoseFitter(FitProblem(anny, case.initial, case.target, Look(case.camera, part="tail"), RasterRenderer()),
                   get_preset("fast"))  # fmt: skip
    empty = torch.zeros(anny.num_vertices, dtype=torch.bool)
    with pytest.raises(ParameterError, match="selects no vertex"):
        PoseFitter(FitProblem(anny, case.initial, case.target, Look(case.camera, vertex_mask=empty), RasterRenderer()),
                   get_preset("fast"))  # fmt: skip


def test_divergence_is_reported(anny, case) -> None:
    preset = get_preset("paper").with_overrides(iterations=30, pose_lr=1e6)
    fitter = PoseFitter(FitProblem(anny, case.initial, case.target, Look(case.camera), RasterRenderer()), preset)
    with pytest.raises(FitDivergedError, match="lower the learning rate"):
        fitter.run()


def test_person_mask_keeps_the_background_out_of_the_fit(anny, case) -> None:
    """A cluttered photo background: with the person mask the loss ignores its content entirely."""
    clutter = torch.rand(case.target.shape, generator=torch.Generator().manual_seed(3))
    mask = (case.target.sum(-1) > 0).float()  # the person's pixels
    photo = torch.where(mask[..., None] > 0, case.target, clutter)
    preset = get_preset("fast").with_overrides(iterations=60)

    def fit(target, person_mask):
        problem = FitProblem(anny, case.initial, target, Look(case.camera), RasterRenderer(), person_mask=person_mask)
        return PoseFitter(problem, preset).run()

    masked = fit(photo, mask)
    # Outside the mask nothing counts: another clutter gives the same loss at the first iteration.
    other = torch.where(mask[..., None] > 0, photo, torch.rand(photo.shape, generator=torch.Generator().manual_seed(4)))
    first_other = next(PoseFitter(FitProblem(anny, case.initial, other, Look(case.camera), RasterRenderer(),
                                             person_mask=mask), preset).steps())  # fmt: skip
    assert first_other.loss == pytest.approx(masked[0].loss, rel=1e-6)
    before = body_mpjpe(anny, case.initial, case.truth)
    assert body_mpjpe(anny, masked[-1].params, case.truth) < 0.6 * before
    unmasked = fit(photo, None)  # the clutter drives an unmasked fit astray
    assert body_mpjpe(anny, masked[-1].params, case.truth) < body_mpjpe(anny, unmasked[-1].params, case.truth)


def test_shape_is_an_optional_upstream_parameter(anny, case) -> None:
    """With "shape" in the optimised set, the phenotype moves towards a taller target body."""
    tall = case.truth.clone()
    tall.shape = anny.default_shape().clone()
    height = anny.shape_names.index("height")
    tall.shape[height] = 0.9
    from posecore.render.scene import RenderScene

    with torch.no_grad():
        colors = torch.full((anny.num_vertices, 3), 0.8)
        target = RasterRenderer().render(RenderScene(anny(tall).vertices, anny.faces, colors, case.camera)).image
    preset = get_preset("fast").with_overrides(iterations=25, optimise=("shape",), extra_lr_scale=1.0)
    states = PoseFitter(FitProblem(anny, case.truth, target.clamp(0, 1), Look(case.camera), RasterRenderer()),
                        preset).run()  # fmt: skip
    assert float(states[-1].params.shape[height]) > float(case.truth.shape[height]) + 0.05
    assert torch.equal(states[-1].params.rotations, case.truth.rotations)  # the pose is not optimised


def test_a_fit_never_ends_worse_than_its_initialisation(anny, case) -> None:
    """Start at the truth (the target is rendered from it) with a step size that can only make it worse: the
    result is the initialisation, bit for bit, and says it came from iteration 0."""
    problem = FitProblem(anny, case.truth, case.target, Look(case.camera), RasterRenderer())
    fitter = PoseFitter(problem, get_preset("fast").with_overrides(iterations=6, pose_lr=0.3))
    states = fitter.run()
    assert min(s.loss for s in states[1:-1]) > states[0].loss  # every iterate was worse than the start
    result = states[-1]
    assert result.final and result.best_iteration == 0 and result.iteration == 6
    assert torch.equal(result.params.rotations, case.truth.rotations)
    assert result.loss == states[0].loss and result.last_loss > result.loss
    assert torch.equal(result.render, states[0].render)


def test_the_result_is_the_lowest_objective_seen(anny, case) -> None:
    """With SGD steps big enough to oscillate, the last iterate is not the best: the result is the best one."""
    problem = FitProblem(anny, case.initial, case.target, Look(case.camera), RasterRenderer())
    fitter = PoseFitter(problem, get_preset("fast").with_overrides(iterations=12, pose_lr=0.08))
    states = fitter.run()
    result = states[-1]
    seen = [s.loss for s in states[:-1]] + [result.last_loss]
    assert result.loss == min(seen)
    best = states[result.best_iteration] if result.best_iteration < len(states) - 1 else None
    if best is not None:  # the result is that iterate's parameters, not a re-evaluation of other ones
        assert torch.equal(result.params.rotations, best.params.rotations)
    assert all(s.best_iteration <= s.iteration for s in states)


def test_reference_size_makes_the_summed_image_term_resolution_independent(anny) -> None:
    """The paper preset's Eq. 1 sum taken at a reference resolution: the same fit at 64 and 128 px has the same
    image term to within the rendering differences, while the raw sum grows 4x."""
    terms = {}
    for size in (64, 128):
        case = make_demo_case(anny, size=size)
        for reference in (0, 24):
            preset = get_preset("paper").with_overrides(iterations=0, reference_size=reference)
            fitter = PoseFitter(
                FitProblem(anny, case.initial, case.target, Look(case.camera), RasterRenderer()), preset
            )
            terms[size, reference] = fitter.run()[0].image_loss
    assert terms[128, 0] / terms[64, 0] == pytest.approx(4.0, rel=0.15)
    assert terms[128, 24] / terms[64, 24] == pytest.approx(1.0, rel=0.15)
    assert terms[64, 24] == pytest.approx(terms[64, 0] * 24**2 / 64**2, rel=1e-5)
