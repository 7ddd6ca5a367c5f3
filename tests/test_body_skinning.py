"""Linear blend skinning: the dense and sparse products against the per-vertex definition, and their gradients."""

from __future__ import annotations

import torch

from posecore.bodies.skinning import SparseSkinningWeights, linear_blend_skinning
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


def test_sparse_weights_give_the_dense_result_and_finite_difference_gradients() -> None:
    weights, transforms, rest = random_rig(num_vertices=40, num_joints=6, bones_per_vertex=2)
    sparse = SparseSkinningWeights(weights)
    expected = linear_blend_skinning(weights, transforms, rest)
    assert torch.allclose(linear_blend_skinning(sparse, transforms, rest), expected, atol=1e-12)
    small, t_small, r_small = random_rig(num_vertices=12, num_joints=4, bones_per_vertex=2, seed=1)
    sparse_small = SparseSkinningWeights(small)
    t_small.requires_grad_(True)
    r_small.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t, r: linear_blend_skinning(sparse_small, t, r), (t_small, r_small))


def test_anny_poses_the_same_with_sparse_and_dense_weights(anny) -> None:
    from posecore.demo import JUDO_POSE, pose_from_table

    params = anny.default_params()
    params.rotations = pose_from_table(anny, JUDO_POSE).requires_grad_(True)
    posed = anny(params)  # sparse weights
    rest = anny._rest_model(params.shape)["rest_vertices"][0]
    dense = linear_blend_skinning(anny.skinning_weights, _anny_transforms(anny, params), rest) + params.translation
    assert torch.allclose(posed.vertices, dense, atol=1e-5)
    g = torch.randn(posed.vertices.shape, generator=torch.Generator().manual_seed(0))
    (grad_sparse,) = torch.autograd.grad((posed.vertices * g).sum(), params.rotations)
    (grad_dense,) = torch.autograd.grad((dense * g).sum(), params.rotations)
    # float32 sums in another order: equal to 1e-5 of the largest gradient
    assert (grad_sparse - grad_dense).abs().max() <= 1e-5 * grad_dense.abs().max()


def _anny_transforms(anny, params) -> torch.Tensor:
    """(J, 4, 4) Anny's rest-to-posed bone transforms for ``params`` (as AnnyBody.forward computes them)."""
    rest = anny._rest_model(params.shape)
    delta = torch.eye(4).repeat(1, anny.num_joints, 1, 1).clone()
    delta[0, :, :3, :3] = axis_angle_to_matrix(params.rotations)
    return anny._model.get_bone_transforms(delta, rest["rest_bone_poses"])[0][0]
