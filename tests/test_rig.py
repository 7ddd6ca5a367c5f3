"""Rig maths (posecore.rig) without Blender: the armature emulation reproduces the body models exactly."""

from __future__ import annotations

import math

import pytest
import torch

from posecore import rig
from posecore.cameras.pinhole import PinholeCamera
from posecore.demo import JUDO_POSE, pose_from_table


def _posed(body, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    params = body.default_params()
    params.rotations = 0.3 * torch.randn(body.num_joints, 3, generator=gen)
    params.translation = torch.tensor([0.1, -0.2, 0.3])
    return params


def test_anny_armature_reproduces_the_model(anny):
    r = rig.rest_rig(anny)
    params = anny.default_params()
    params.rotations = pose_from_table(anny, JUDO_POSE)
    params.rotations[0] = torch.tensor([0.1, 0.2, 0.3])
    params.translation = torch.tensor([0.1, -0.2, 0.3])
    quats, location = rig.bone_basis_from_pose(r, params.rotations, params.translation)
    skinned = rig.linear_blend_skinning(r.rest_vertices, r.weights, rig.armature_skinning(r, quats, location))
    with torch.no_grad():
        expected = anny(params).vertices.double()
    assert float((skinned - expected).abs().max()) < 1e-5
    # Anny is pure LBS: no corrective offsets.
    offsets = rig.corrective_offsets(r, rig.armature_skinning(r, quats, location), expected)
    assert float(offsets.abs().max()) < 1e-5
    assert torch.equal(r.to_blender, torch.eye(4))


def test_basis_round_trip(anny):
    r = rig.rest_rig(anny)
    params = _posed(anny)
    quats, location = rig.bone_basis_from_pose(r, params.rotations, params.translation)
    assert torch.allclose(quats.norm(dim=1), torch.ones(anny.num_joints), atol=1e-6)
    rotations, translation = rig.pose_from_bone_basis(r, quats, location)
    assert float((rotations - params.rotations).abs().max()) < 1e-5
    assert float((translation - params.translation).abs().max()) < 1e-6
    zero_q, zero_loc = rig.bone_basis_from_pose(r, torch.zeros(anny.num_joints, 3), torch.zeros(3))
    # Anny's zero pose is its reference pose, not the bind pose: bases are not all identity, but round-trip.
    back, _ = rig.pose_from_bone_basis(r, zero_q, zero_loc)
    assert float(back.abs().max()) < 1e-5


def test_bones_have_length_and_rigid_frames(anny):
    r = rig.rest_rig(anny)
    assert float(r.lengths.min()) >= 0.0099
    frames = r.bone_frames
    ortho = frames[:, :3, :3].transpose(1, 2) @ frames[:, :3, :3]
    assert torch.allclose(ortho, torch.eye(3).expand_as(ortho), atol=1e-5)
    assert torch.allclose(torch.linalg.det(frames[:, :3, :3]), torch.ones(len(frames)), atol=1e-5)


@pytest.mark.slow
def test_smplx_armature_with_correctives_reproduces_the_model(synthetic_smplx_dir):
    from posecore.bodies.smplx_body import SmplxBody

    body = SmplxBody(synthetic_smplx_dir)
    r = rig.rest_rig(body)
    params = _posed(body, seed=1)
    quats, location = rig.bone_basis_from_pose(r, params.rotations, params.translation)
    transforms = rig.armature_skinning(r, quats, location)
    with torch.no_grad():
        expected = body(params).vertices.double()
    offsets = rig.corrective_offsets(r, transforms, expected)
    skinned = rig.linear_blend_skinning(r.rest_vertices + offsets, r.weights, transforms)
    assert float((skinned - expected).abs().max()) < 1e-5
    # SMPL-X's Y-up frame turns +90 degrees about X: up becomes Blender's +Z, the body's front (+Z) becomes -Y.
    turn = r.to_blender[:3, :3]
    assert torch.allclose(turn @ torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(turn @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, -1.0, 0.0]))
    rotations, translation = rig.pose_from_bone_basis(r, quats, location)
    assert float((rotations - params.rotations).abs().max()) < 1e-5
    assert float((translation - params.translation).abs().max()) < 1e-6


def test_camera_to_frame_projects_identically():
    cam = PinholeCamera.look_at(torch.tensor([0.5, -3.0, 1.0]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]), 64, 48)
    turn = rig.model_to_blender_matrix(torch.tensor([0.0, 1.0, 0.0]))
    frame_to_world = turn.clone()
    frame_to_world[:3, 3] = torch.tensor([0.2, 0.1, -0.3])
    in_frame = rig.camera_to_frame(cam, frame_to_world)
    points = torch.randn(20, 3)
    world = points @ frame_to_world[:3, :3].T + frame_to_world[:3, 3]
    uv_a, z_a = cam.project(world)
    uv_b, z_b = in_frame.project(points)
    assert torch.allclose(uv_a, uv_b, atol=1e-3) and torch.allclose(z_a, z_b, atol=1e-5)
    back = rig.camera_to_frame(in_frame, torch.linalg.inv(frame_to_world))
    assert torch.allclose(back.rotation, cam.rotation, atol=1e-6)
    assert torch.allclose(back.translation, cam.translation, atol=1e-5)


def test_default_camera_sees_the_upright_body(anny):
    r = rig.rest_rig(anny)
    cam = rig.default_camera(r, 64, 96)
    uv, depth = cam.project(r.rest_vertices)
    assert bool((depth > 0).all())
    assert bool(((uv[:, 0] > 0) & (uv[:, 0] < 63) & (uv[:, 1] > 0) & (uv[:, 1] < 95)).all())
    top, bottom = r.rest_vertices[:, 2].argmax(), r.rest_vertices[:, 2].argmin()
    assert float(uv[top, 1]) < float(uv[bottom, 1])  # head above feet in the image
    assert math.isclose(float(cam.forward_axis[1]), 1.0, abs_tol=1e-6)  # looks along +Y (from the front)


@pytest.mark.parametrize(
    ("up", "expected_turn_deg"),
    [
        ((0.0, 0.0, 1.0), 0),
        ((0.0, 1.0, 0.0), 90),
        ((0.0, -1.0, 0.0), -90),
        ((0.0, -0.9, 0.3), -90),
        ((0.0, 0.0, -1.0), 180),
    ],
)
def test_upright_matrix_turns_up_to_z(up, expected_turn_deg):
    m = rig.upright_matrix(torch.tensor(up))
    turned = m[:3, :3] @ torch.tensor(up, dtype=torch.float32)
    assert float(turned[2]) > 0.7 * float(torch.tensor(up).norm())
    assert torch.allclose(m[:3, 0], torch.tensor([1.0, 0.0, 0.0]))  # a turn about X
    angle = math.degrees(math.atan2(float(m[2, 1]), float(m[1, 1])))
    assert math.isclose(angle % 360, expected_turn_deg % 360, abs_tol=1e-6)
