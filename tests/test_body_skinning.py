"""Linear blend skinning: the dense product against the per-vertex definition, and its gradients."""

from __future__ import annotations

import torch

from posecore.bodies.skinning import linear_blend_skinning
from posecore.rotations import axis_angle_to_matrix


def random_rig(num_vertices: int = 50, num_joints: int = 7, bones_per_vertex: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weights = torch.zeros(num_vertices, num_joints, dtype=torch.float64)
    for v in range(num_vertices):
        bones = torch.randperm(num_joints, generator=g)[:bones_per_vertex]
        weights[v, bones] = torch.rand(bones_per_vertex, generator=g, dtype=torch.float64)
    weights = weights / weights.sum(1, keepdim=True)
    transforms = torch.eye(4, dtype=torch.float64).repeat(num_joints, 1, 1)
    transforms[:, :3, :3] = axis_angle_to_matrix(torch.randn(num_joints, 3, generator=g, dtype=torch.float64))
    transforms[:, :3, 3] = torch.randn(num_joints, 3, generator=g, dtype=torch.float64)
    rest = torch.randn(num_vertices, 3, generator=g, dtype=torch.float64)
    return weights, transforms, rest


def test_matches_the_per_vertex_definition() -> None:
    weights, transforms, rest = random_rig()
    posed = linear_blend_skinning(weights, transforms, rest)
    homogeneous = torch.cat([rest, torch.ones(rest.shape[0], 1, dtype=rest.dtype)], 1)
    for v in range(rest.shape[0]):
        blended = sum(weights[v, j] * transforms[j] for j in range(transforms.shape[0]))
        assert torch.allclose(posed[v], (blended @ homogeneous[v])[:3], atol=1e-12)


def test_identity_transforms_keep_the_rest_pose_and_rigid_ones_move_it_rigidly() -> None:
    weights, transforms, rest = random_rig()
    identity = torch.eye(4, dtype=torch.float64).repeat(transforms.shape[0], 1, 1)
    assert torch.allclose(linear_blend_skinning(weights, identity, rest), rest, atol=1e-12)
    same = transforms[:1].repeat(transforms.shape[0], 1, 1)  # every joint moves the same way
    expected = rest @ same[0, :3, :3].T + same[0, :3, 3]
    assert torch.allclose(linear_blend_skinning(weights, same, rest), expected, atol=1e-12)


def test_gradients_match_finite_differences() -> None:
    weights, transforms, rest = random_rig(num_vertices=12, num_joints=4)
    transforms.requires_grad_(True)
    rest.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t, r: linear_blend_skinning(weights, t, r), (transforms, rest))
