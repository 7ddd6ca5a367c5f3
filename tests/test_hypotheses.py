"""Hypotheses: the alternatives a single view leaves keep their outline, and a fit started from a wrong one picks
the right body with the landmarks' cues; refits of a result stay put."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from posecore.bench import scenes
from posecore.detect.joint_map import model_joints
from posecore.fitting import ambiguities as amb
from posecore.fitting.directions import LIMB_BONES, BoneDirections, direction_loss
from posecore.fitting.keypoints import Keypoints2D
from posecore.fitting.look import Look
from posecore.fitting.loop import FitProblem, PoseFitter, fit_lighting
from posecore.fitting.presets import get_preset
from posecore.metrics import joint_angle_change_degrees, mpjpe_mm
from posecore.render.raster import RasterRenderer
from posecore.render.scene import RenderScene

SIZE = 128
KEYPOINT_JOINTS = [
    f"{s}_{n}" for s in ("left", "right") for n in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
]


def far_camera(body, params, size: int = SIZE):
    """A narrow-angle camera far away: close to weak perspective."""
    with torch.no_grad():
        vertices = body(params).vertices
    return scenes.frame_camera(body, vertices, size, 20.0, 5.0, fov=4.0)


@pytest.fixture(scope="module")
def truth(anny):
    params = anny.default_params()
    params.rotations = scenes.pose_for_body(anny, scenes.JUDO_LEAN)
    return params


def test_mirroring_twice_is_the_identity(anny, truth) -> None:
    twice = amb.mirror_pose(anny, amb.mirror_pose(anny, truth))
    assert torch.equal(twice.rotations, truth.rotations)
    legs = amb.swap_sides(anny, amb.swap_sides(anny, truth, amb.LEG_ROOTS), amb.LEG_ROOTS)
    assert torch.equal(legs.rotations, truth.rotations)


def test_depth_mirror_keeps_every_pixel_under_weak_perspective(anny, truth) -> None:
    camera = far_camera(anny, truth)
    with torch.no_grad():
        before = anny(truth).vertices
        after = anny(amb.depth_mirror(anny, truth, camera)).vertices
    uv_before, _ = camera.project(before)
    uv_after, _ = camera.project(after)
    lo_b, hi_b = uv_before.min(0).values, uv_before.max(0).values
    lo_a, hi_a = uv_after.min(0).values, uv_after.max(0).values
    assert torch.allclose(lo_a, lo_b, atol=2.0) and torch.allclose(hi_a, hi_b, atol=2.0)  # perspective: ~1.5%
    assert float((after - before).norm(dim=-1).max()) > 0.2  # a different body with the same outline


@pytest.mark.parametrize(("limb", "bones"), [("arm", "both"), ("arm", "lower"), ("leg", "both"), ("leg", "lower")])
def test_limb_flip_keeps_its_joints_pixels_and_moves_them_in_depth(anny, truth, limb, bones) -> None:
    camera = far_camera(anny, truth)
    flipped = amb.flip_limb_depth(anny, truth, camera, "left", limb, bones)
    names = ("shoulder", "elbow", "wrist") if limb == "arm" else ("hip", "knee", "ankle")
    joints = [model_joints(anny, f"left_{n}")[0] for n in names]
    with torch.no_grad():
        before, after = anny(truth).joints[joints], anny(flipped).joints[joints]
    uv_b, _ = camera.project(before)
    uv_a, _ = camera.project(after)
    assert float((uv_a - uv_b).norm(dim=-1).max()) < 1.0  # pixels kept
    assert float((after - before).norm(dim=-1).max()) > 0.05  # bones moved in depth
    assert torch.allclose(after[0], before[0], atol=1e-5)  # the limb's root stays


def test_direction_term_tells_a_flipped_elbow(anny, truth) -> None:
    camera = far_camera(anny, truth)
    with torch.no_grad():
        joints = anny(truth).joints
    world = torch.zeros(33, 3)
    for a, b, la, lb in LIMB_BONES:
        world[la] = camera.world_to_camera(joints[model_joints(anny, a)[0]][None])[0]
        world[lb] = camera.world_to_camera(joints[model_joints(anny, b)[0]][None])[0]
    bones = BoneDirections.from_detection(anny, world.numpy(), torch.ones(33).numpy())
    flipped = amb.flip_limb_depth(anny, truth, camera, "left", "arm", "lower")
    assert float(direction_loss(joints, camera, bones)) < 1e-4
    with torch.no_grad():
        assert float(direction_loss(anny(flipped).joints, camera, bones)) > 0.02


def detected_cues(body, truth, camera) -> tuple[Keypoints2D, BoneDirections]:
    """What a perfect detector would give: the true joints' pixels, with labels, and their 3D bone directions."""
    index = [model_joints(body, n)[0] for n in KEYPOINT_JOINTS]
    with torch.no_grad():
        joints = body(truth).joints
    uv, _ = camera.project(joints[index])
    keypoints = Keypoints2D(torch.tensor(index), uv, torch.ones(len(index)), camera.width, camera.height)
    world = torch.zeros(33, 3)
    for a, b, la, lb in LIMB_BONES:
        world[la] = camera.world_to_camera(joints[model_joints(body, a)[0]][None])[0]
        world[lb] = camera.world_to_camera(joints[model_joints(body, b)[0]][None])[0]
    return keypoints, BoneDirections.from_detection(body, world.numpy(), torch.ones(33).numpy())


@pytest.fixture(scope="module")
def swapped_legs_case(anny):
    truth = anny.default_params()
    truth.rotations = scenes.pose_for_body(anny, scenes.TWISTED_LEGS)
    with torch.no_grad():
        vertices = anny(truth).vertices
    camera = scenes.frame_camera(anny, vertices, SIZE, 20.0, 6.0)
    colours = torch.tensor([0.7, 0.45, 0.35]).expand(anny.num_vertices, 3)
    scene = RenderScene(vertices, anny.faces, colours, camera, fit_lighting(), torch.zeros(3))
    target = RasterRenderer().render(scene).image.detach().clamp(0, 1)
    start = scenes.ambiguous_start(anny, truth, "swap_legs")
    keypoints, bones = detected_cues(anny, truth, camera)
    return truth, start, camera, target, keypoints, bones


def fit(anny, case, **preset_changes):
    truth, start, camera, target, keypoints, bones = case
    problem = FitProblem(anny, start, target, Look(camera), RasterRenderer(), keypoints=keypoints,
                         bone_directions=bones)  # fmt: skip
    fitter = PoseFitter(problem, replace(get_preset("fast"), iterations=60, **preset_changes))
    states = fitter.run()
    joints = anny.body_joint_indices
    with torch.no_grad():
        error = mpjpe_mm(anny(states[-1].params).joints[joints], anny(truth).joints[joints])
    return fitter, states, error


def test_search_finds_the_swapped_legs_and_beats_the_plain_fit(anny, swapped_legs_case) -> None:
    fitter, states, error = fit(anny, swapped_legs_case)
    _, _, plain_error = fit(anny, swapped_legs_case, hypotheses=0)
    assert fitter.search is not None and fitter.search.chosen.name == "swap_legs"
    assert error < 0.6 * plain_error, (error, plain_error)
    assert error < 40.0
    summary = fitter.search.summary()
    assert summary["chosen"] == "swap_legs" and summary["candidates"][0]["name"] == "start"
    assert sum(c["objective"] is not None for c in summary["candidates"]) == 4
    assert states[0].phase == "hypotheses" and states[-1].phase == "fit"
    assert torch.equal(states[0].params.rotations, swapped_legs_case[1].rotations)  # the start comes first


def test_refitting_a_result_moves_no_joint_more_than_a_degree(anny, swapped_legs_case) -> None:
    truth, _start, camera, target, keypoints, bones = swapped_legs_case
    _, states, _ = fit(anny, swapped_legs_case)
    result = states[-1].params
    again_case = (truth, result, camera, target, keypoints, bones)
    _, again, _ = fit(anny, again_case)
    change = joint_angle_change_degrees(result.rotations, again[-1].params.rotations)
    assert float(change.max()) < 1.0, float(change.max())


def test_benchmark_ambiguous_starts_are_what_they_claim(anny, truth) -> None:
    """The ambiguity scenes' starts (built independently of the search's own constructions): a flipped elbow keeps
    the hand where it was and moves the elbow; a turned body is the truth reflected front to back."""
    with torch.no_grad():
        joints = anny(truth).joints
        flipped = anny(scenes.ambiguous_start(anny, truth, "flip_elbow:left")).joints
        turned = anny(scenes.ambiguous_start(anny, truth, "turned")).vertices
        vertices = anny(truth).vertices
    wrist, elbow = (model_joints(anny, f"left_{n}")[0] for n in ("wrist", "elbow"))
    assert float((flipped[wrist] - joints[wrist]).norm()) < 1e-4
    assert float((flipped[elbow] - joints[elbow]).norm()) > 0.05
    front = 1  # Anny: the body's front is -Y, so front-to-back reflection flips Y about the root
    reflected = vertices.clone()
    reflected[:, front] = 2 * joints[0, front] - vertices[:, front]
    lo, hi = turned.min(0).values, turned.max(0).values
    assert torch.allclose(lo, reflected.min(0).values, atol=1e-3) and torch.allclose(
        hi, reflected.max(0).values, atol=1e-3
    )
