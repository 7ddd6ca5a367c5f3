"""Anatomical joint limits: true benchmark poses lie inside, wrong-way bends do not, the penalty is smooth and its
gradient matches finite differences, and left and right mirror each other."""

from __future__ import annotations

import math

import pytest
import torch

from posecore.bench import scenes
from posecore.fitting.ambiguities import MIRROR, side_pairs
from posecore.fitting.limits import JointLimits


@pytest.fixture(scope="module")
def limits(anny) -> JointLimits:
    return JointLimits.for_body(anny)


def test_every_true_benchmark_pose_is_inside(anny, limits) -> None:
    for spec in scenes.SCENES + scenes.AMBIGUITY_SCENES + scenes.AMBIGUITY_HOLDOUT:
        rotations = scenes.pose_for_body(anny, spec.pose)
        assert limits.violations(rotations) == [], spec.name
        assert float(limits.penalty(rotations)) == 0.0


def test_knee_and_elbow_bent_the_wrong_way_are_outside(anny, limits) -> None:
    rotations = torch.zeros(anny.num_joints, 3)
    knee = scenes.model_joint(anny, "left_knee")
    rotations[knee, 0] = math.radians(-40)  # the foot swings forwards: a knee bent backwards
    elbow = scenes.model_joint(anny, "right_elbow")
    rotations[elbow, 2] = math.radians(-60)  # the right forearm swings backwards (Anny: +Z up)
    found = {(name, axis) for name, axis, _ in limits.violations(rotations)}
    assert ("lowerleg01.L", "bend") in found
    assert ("lowerarm01.R", "bend") in found
    assert float(limits.penalty(rotations)) > 0.1


def test_sides_mirror_each_other(anny, limits) -> None:
    torch.manual_seed(0)
    rotations = torch.randn(anny.num_joints, 3) * 0.8
    mirrored = rotations * MIRROR
    for left, right in side_pairs(anny):
        mirrored[left], mirrored[right] = rotations[right] * MIRROR, rotations[left] * MIRROR
    assert torch.allclose(limits.penalty(rotations), limits.penalty(mirrored), rtol=1e-5)


def test_penalty_gradient_matches_finite_differences(anny, limits) -> None:
    torch.manual_seed(1)
    rotations = (torch.randn(anny.num_joints, 3) * 1.2).double().requires_grad_(True)
    double = JointLimits(limits.joints, limits.lower.double(), limits.upper.double(), limits.basis.double(),
                         limits.names, limits.hinge_joints, limits.hinge_bones.double(), limits.hinge_axes.double(),
                         limits.hinge_lower.double(), limits.hinge_upper.double(), limits.hinge_names)  # fmt: skip
    assert torch.autograd.gradcheck(double.penalty, (rotations,), eps=1e-6, atol=1e-6)


def test_project_clamps_into_the_box_ranges(anny, limits) -> None:
    torch.manual_seed(2)
    rotations = torch.randn(anny.num_joints, 3) * 2.0
    assert limits.violations(rotations)
    assert float(limits.excess(limits.project(rotations)).max()) < 1e-6


def test_a_twisted_forearm_bends_in_the_same_plane(anny, limits) -> None:
    """The elbow's bend is bounded on where the forearm points: twisting it about its own axis first (pronation)
    changes the rotation's components but not the bend, so it stays inside; the same bend the wrong way does not."""
    from posecore.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    elbow = scenes.model_joint(anny, "left_elbow")
    bend = axis_angle_to_matrix(torch.tensor([0.0, 0.0, -1.6]))  # Anny: -Z is -U, flexion of the left elbow
    twist = axis_angle_to_matrix(torch.tensor([1.4, 0.0, 0.0]))  # about the forearm's rest axis (+X)
    rotations = torch.zeros(anny.num_joints, 3)
    rotations[elbow] = matrix_to_axis_angle(bend @ twist)
    angles = torch.rad2deg(limits.hinge_angles(rotations))[limits.hinge_names.index("lowerarm01.L")]
    assert abs(float(angles[0]) - 91.7) < 0.5 and abs(float(angles[1])) < 0.5
    assert limits.violations(rotations) == []
    rotations[elbow] = matrix_to_axis_angle(bend.T @ twist)
    assert ("lowerarm01.L", "bend") in {(n, a) for n, a, _ in limits.violations(rotations)}


def test_smplx_gets_the_same_joints(synthetic_smplx_dir) -> None:
    from posecore.bodies import load_body_model

    body = load_body_model(f"smplx:{synthetic_smplx_dir}")
    limits = JointLimits.for_body(body)
    assert {"left_knee", "right_elbow", "spine2", "neck", "head", "left_hip"} <= set(limits.names)
    for spec in scenes.SCENES:
        assert limits.violations(scenes.pose_for_body(body, spec.pose)) == [], spec.name
