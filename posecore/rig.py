"""Rig maths for DCC tools (Blender): a body model as an armature of bones, and exact conversions between
posecore's (J, 3) axis-angle parameters and bone-local quaternions.

Pure torch, no ``bpy``. Conventions (Blender's, but nothing here imports it):

- A *bone frame* B_j is a rigid (4, 4) matrix in the model's frame: its origin is the joint (the bone's head),
  its +Y axis points along the bone, as Blender's ``Bone.matrix_local``.
- Blender poses a bone by a local ``basis`` (a quaternion; plus a location for the root): its posed frame is
  ``P_j = P_parent @ inv(B_parent) @ B_j @ basis_j``, and the Armature modifier skins with ``P_j @ inv(B_j)``.
  :class:`RestRig` holds the per-bone constants that map posecore's rotations onto these bases exactly
  (SMPL-X: world-aligned joint rotations; Anny: its ``local-ref`` parameterisation with reference orientations).
- Quaternions are (w, x, y, z), as ``mathutils.Quaternion``. Lengths are metres, angles radians.
- Model frame -> Blender world: SMPL-X is Y-up, so a +90 degree turn about X (:func:`model_to_blender_matrix`);
  Anny is already Z-up. Cameras are :class:`~posecore.cameras.pinhole.PinholeCamera` (OpenCV convention); use
  :func:`camera_to_frame` to move them between the model frame and Blender's world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import ParameterError
from posecore.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_axis_angle,
)

__all__ = [
    "RestRig",
    "armature_frames",
    "armature_skinning",
    "bone_basis_from_pose",
    "camera_to_frame",
    "corrective_offsets",
    "default_camera",
    "linear_blend_skinning",
    "model_to_blender_matrix",
    "params_with_pose",
    "pose_from_bone_basis",
    "rest_rig",
    "upright_matrix",
]


def upright_matrix(up: torch.Tensor) -> torch.Tensor:
    """(4, 4) rotation about X, by a multiple of 90 degrees, that turns ``up`` (model frame) closest to +Z.

    The armature object of an imported body gets this matrix, so the body stands upright in Blender's Z-up
    world: the identity for Z-up models (Anny), +90 degrees for Y-up SMPL-X, -90 degrees for bodies fitted in
    OpenCV camera space (image-space fits such as SMPLify-X, whose up is -Y).

    Args:
        up: (3,) the body's up direction in the model frame, e.g. ``exp(rotations[0]) @ body.up_axis``.
    """
    up = torch.as_tensor(up, dtype=torch.float64)
    angle = math.atan2(float(up[1]), float(up[2]))
    quarter = round(angle / (math.pi / 2)) % 4
    c, s = ((1, 0), (0, 1), (-1, 0), (0, -1))[quarter]
    m = torch.eye(4)
    m[1, 1], m[1, 2], m[2, 1], m[2, 2] = float(c), float(-s), float(s), float(c)
    return m


def model_to_blender_matrix(up_axis: torch.Tensor) -> torch.Tensor:
    """(4, 4) rigid map from a model's rest frame to Blender's Z-up world (:func:`upright_matrix` of its up).

    Args:
        up_axis: (3,) the model's up direction (``BodyModel.up_axis``): +Z (Anny) gives the identity, +Y
            (SMPL-X) a +90 degree rotation about X (model +Y -> Blender +Z, model +Z (the body's front) -> -Y).
    """
    up = torch.as_tensor(up_axis, dtype=torch.float32)
    if float(up[0].abs()) > 0.5:
        raise ParameterError(f"unsupported model up axis {up.tolist()} (expected +Y or +Z)")
    return upright_matrix(up)


@dataclass
class RestRig:
    """An armature for a body at one shape, and the constants converting its pose to posecore parameters.

    Blender poses bone j by a local ``basis_j`` (rotation quaternion; location for the root): its posed frame is
    ``P_j = P_parent @ inv(B_parent) @ B_j @ basis_j`` (``P_root = B_root @ basis_root``), and the Armature
    modifier skins vertices with ``P_j @ inv(B_j)``. For both SMPL-X and Anny this reproduces the model when

    - rotation of ``basis_j`` = ``pre_j @ exp(rotations[j]) @ post_j``,
    - location of the root's basis = ``R_B0^T (translation + root_offset)`` (R_B0: the root frame's rotation).

    Attributes:
        joint_names: J bone names (the model's joint names). parents: J parent indices (-1 root).
        bone_frames: (J, 4, 4) rest bone frames B_j in the model frame (head at the joint), as ``Bone.matrix_local``.
        lengths: (J,) bone lengths, metres (head -> tail along the frame's +Y).
        pre, post: (J, 3, 3) constant rotations of the formula above.
        root_offset: (3,) metres.
        rest_vertices: (V, 3) the shaped bind-pose mesh, model frame, metres.
        faces: (F, 3) int64. weights: (V, J) skinning weights.
        shape: (S,) the shape coefficients baked into the rest mesh.
        to_blender: (4, 4) model frame -> Blender world (:func:`model_to_blender_matrix`).
    """

    joint_names: list[str]
    parents: list[int]
    bone_frames: torch.Tensor
    lengths: torch.Tensor
    pre: torch.Tensor
    post: torch.Tensor
    root_offset: torch.Tensor
    rest_vertices: torch.Tensor
    faces: torch.Tensor
    weights: torch.Tensor
    shape: torch.Tensor
    to_blender: torch.Tensor


def _children(parents: list[int]) -> list[list[int]]:
    children: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    return children


def _bone_directions(parents: list[int], joints: torch.Tensor, min_length: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(J, 3) unit bone directions and (J,) lengths: towards the mean of the children, else the parent's."""
    children = _children(parents)
    num = len(parents)
    directions = torch.zeros(num, 3)
    lengths = torch.zeros(num)
    for j in range(num):
        offsets = [joints[c] - joints[j] for c in children[j]]
        offsets = [o for o in offsets if float(o.norm()) > min_length]
        mean = torch.stack(offsets).mean(0) if offsets else torch.zeros(3)
        if float(mean.norm()) > min_length:
            directions[j], lengths[j] = mean / mean.norm(), mean.norm()
        elif parents[j] >= 0:
            directions[j], lengths[j] = directions[parents[j]], 0.5 * lengths[parents[j]]
        else:
            directions[j], lengths[j] = torch.tensor([0.0, 0.0, 1.0]), 0.1
    return directions, lengths.clamp_min(2 * min_length)


def _frames_along(directions: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
    """(J, 4, 4) frames with +Y along ``directions`` and +X as close as possible to the model's +X."""
    frames = torch.eye(4).repeat(len(heads), 1, 1)
    for j, y in enumerate(directions):
        ref = torch.tensor([1.0, 0.0, 0.0]) if abs(float(y[0])) < 0.95 else torch.tensor([0.0, 0.0, 1.0])
        x = ref - (ref @ y) * y
        x = x / x.norm()
        frames[j, :3, :3] = torch.stack([x, y, torch.linalg.cross(x, y)], dim=1)
        frames[j, :3, 3] = heads[j]
    return frames


def _lengths_along_frames(parents: list[int], frames: torch.Tensor, min_length: float) -> torch.Tensor:
    """(J,) bone lengths for given frames: distance to the nearest child head in front of the bone."""
    children = _children(parents)
    lengths = torch.zeros(len(parents))
    for j in range(len(parents)):
        ahead = [float((frames[c, :3, 3] - frames[j, :3, 3]) @ frames[j, :3, 1]) for c in children[j]]
        ahead = [a for a in ahead if a > min_length]
        if ahead:
            lengths[j] = min(ahead)
        else:
            lengths[j] = 0.5 * lengths[parents[j]] if parents[j] >= 0 else 0.1
    return lengths.clamp_min(2 * min_length)


def rest_rig(body: BodyModel, shape: torch.Tensor | None = None, min_length: float = 0.005) -> RestRig:
    """Build the rest armature of ``body`` at ``shape`` (default: the model's mean shape).

    Models with a bind pose of their own (Anny: ``body.bind_pose(shape)``) keep their bone frames and reference
    orientations. Models whose zero pose is the bind pose with world-aligned joint rotations (SMPL-X) get bones
    pointing from each joint towards its children, each with its +X as close as possible to the model's +X.
    Bones shorter than ``2 * min_length`` metres are lengthened (Blender drops zero-length bones).
    """
    params = body.default_params()
    if shape is not None:
        params.shape = torch.as_tensor(shape, dtype=torch.float32).reshape(-1)
    body.check_params(params, "rest shape")
    parents = list(body.parents)
    bind_pose = getattr(body, "bind_pose", None)
    if bind_pose is not None:
        bind = bind_pose(params.shape)
        frames = bind["rest_bone_poses"].detach().float().cpu()
        reference = bind["reference_orientations"].detach().float().cpu()
        rest_vertices = bind["rest_vertices"].detach().float().cpu()
        lengths = _lengths_along_frames(parents, frames, min_length)
        r = frames[:, :3, :3]
        # Anny 'local-ref': W_c = W_p [U_p^T D_c U_c | ...], W_0 = [U_0^T D_0 U_0 | 0]; Blender: basis_c =
        # B_c^-1 B_p W_p^-1 W_c -> rotation R_c^T R_p U_p^T D_c U_c (root: R_0^T U_0^T D_0 U_0).
        parent_rows = torch.tensor([max(p, 0) for p in parents])
        pre = r.transpose(1, 2) @ r[parent_rows] @ reference[parent_rows].transpose(1, 2)
        pre[0] = r[0].T @ reference[0].T
        post = reference.clone()
        root_offset = -frames[0, :3, 3]
    else:
        with torch.no_grad():
            out = body(params)
        joints = out.joints.detach().float().cpu()
        directions, lengths = _bone_directions(parents, joints, min_length)
        frames = _frames_along(directions, joints)
        r = frames[:, :3, :3]
        pre, post = r.transpose(1, 2).clone(), r.clone()
        root_offset = torch.zeros(3)
        rest_vertices = out.vertices.detach().float().cpu()
    return RestRig(
        joint_names=list(body.joint_names),
        parents=parents,
        bone_frames=frames,
        lengths=lengths,
        pre=pre,
        post=post,
        root_offset=root_offset,
        rest_vertices=rest_vertices,
        faces=body.faces.detach().cpu(),
        weights=body.skinning_weights.detach().float().cpu(),
        shape=params.shape.detach().clone(),
        to_blender=model_to_blender_matrix(body.up_axis),
    )


def bone_basis_from_pose(
    rig: RestRig, rotations: torch.Tensor, translation: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blender pose-bone values for posecore parameters.

    Args:
        rig: the rest armature. rotations: (J, 3) axis-angle, radians. translation: (3,) metres, model frame.

    Returns:
        quaternions: (J, 4) (w, x, y, z) ``PoseBone.rotation_quaternion`` of every bone.
        root_location: (3,) ``PoseBone.location`` of the root bone (bone-local axes), metres.
    """
    local = axis_angle_to_matrix(rotations.detach().double().cpu())
    basis = rig.pre.double() @ local @ rig.post.double()
    quats = matrix_to_quaternion(basis).float()
    r0 = rig.bone_frames[0, :3, :3]
    root_location = r0.T @ (translation.detach().float().cpu() + rig.root_offset)
    return quats, root_location


def pose_from_bone_basis(
    rig: RestRig, quaternions: torch.Tensor, root_location: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`bone_basis_from_pose`.

    Args:
        quaternions: (J, 4) (w, x, y, z), need not be normalised. root_location: (3,) metres.

    Returns:
        rotations (J, 3) axis-angle in radians (angles in [0, pi]) and translation (3,) metres, model frame.
    """
    q = torch.as_tensor(quaternions, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = axis_angle_to_matrix(quaternion_to_axis_angle(q))
    local = rig.pre.double().transpose(1, 2) @ basis @ rig.post.double().transpose(1, 2)
    rotations = matrix_to_axis_angle(local).float()
    r0 = rig.bone_frames[0, :3, :3]
    translation = r0 @ torch.as_tensor(root_location, dtype=torch.float32) - rig.root_offset
    return rotations, translation


def armature_frames(rig: RestRig, quaternions: torch.Tensor, root_location: torch.Tensor) -> torch.Tensor:
    """Posed bone frames as Blender computes them (``PoseBone.matrix``, armature space), in float64.

    ``P_j = P_parent @ inv(B_parent) @ B_j @ basis_j``; ``P_root = B_root @ basis_root``.

    Args:
        quaternions: (J, 4) (w, x, y, z). root_location: (3,) metres.

    Returns:
        (J, 4, 4) posed frames, model frame.
    """
    q = torch.as_tensor(quaternions, dtype=torch.float64)
    basis = torch.eye(4, dtype=torch.float64).repeat(len(rig.parents), 1, 1)
    basis[:, :3, :3] = axis_angle_to_matrix(quaternion_to_axis_angle(q / q.norm(dim=-1, keepdim=True)))
    basis[0, :3, 3] = torch.as_tensor(root_location, dtype=torch.float64)
    rest = rig.bone_frames.double()
    frames: list[torch.Tensor] = []
    for j, p in enumerate(rig.parents):
        if p < 0:
            frames.append(rest[j] @ basis[j])
        else:
            frames.append(frames[p] @ torch.linalg.inv(rest[p]) @ rest[j] @ basis[j])
    return torch.stack(frames)


def armature_skinning(rig: RestRig, quaternions: torch.Tensor, root_location: torch.Tensor) -> torch.Tensor:
    """(J, 4, 4) skinning transforms ``P_j @ inv(B_j)`` of the Armature modifier for a pose (float64)."""
    return armature_frames(rig, quaternions, root_location) @ torch.linalg.inv(rig.bone_frames.double())


def linear_blend_skinning(rest_vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Pose vertices by linear blend skinning (what Blender's Armature modifier computes).

    Args:
        rest_vertices: (V, 3) metres. weights: (V, J), rows summing to 1. transforms: (J, 4, 4).

    Returns:
        (V, 3) posed vertices, in the dtype of ``transforms``.
    """
    blended = torch.einsum("vj,jab->vab", weights.to(transforms.dtype), transforms)
    return (blended[:, :3, :3] @ rest_vertices.to(transforms.dtype)[:, :, None])[..., 0] + blended[:, :3, 3]


def corrective_offsets(rig: RestRig, transforms: torch.Tensor, posed_vertices: torch.Tensor) -> torch.Tensor:
    """Rest-space offsets d such that LBS(rest + d) == posed_vertices (pose-dependent blend shapes).

    SMPL-X adds pose-corrective blend shapes before skinning; Blender's Armature modifier does not, so the
    add-on stores these offsets in a shape key. Zero (to float precision) for pure-LBS models such as Anny.

    Args:
        transforms: (J, 4, 4) skinning transforms of the pose (:func:`armature_skinning`).
        posed_vertices: (V, 3) the model's output for the same pose, model frame.

    Returns:
        (V, 3) float32 offsets, metres.
    """
    blended = torch.einsum("vj,jab->vab", rig.weights.double(), transforms.double())
    local = posed_vertices.double() - blended[:, :3, 3]
    solved = torch.linalg.solve(blended[:, :3, :3], local[:, :, None])[..., 0]
    return (solved - rig.rest_vertices.double()).float()


def camera_to_frame(camera: PinholeCamera, frame_to_world: torch.Tensor) -> PinholeCamera:
    """Express a camera given in "world" coordinates in another frame.

    Args:
        camera: world-to-camera pose in world coordinates (e.g. Blender's, from ``PinholeCamera.from_blender``).
        frame_to_world: (4, 4) rigid map from the target frame to world (e.g. the armature's ``matrix_world``
            for the model frame). Pass its inverse to go the other way.

    Returns:
        The same camera with ``x_cam = R' x_frame + t'``, ``R' = R M_R``, ``t' = R M_t + t``.
    """
    m = torch.as_tensor(frame_to_world, dtype=torch.float32)
    rot = m[:3, :3] / m[:3, :3].norm(dim=0, keepdim=True)
    return camera.with_pose(camera.rotation @ rot, camera.rotation @ m[:3, 3] + camera.translation)


def default_camera(
    rig: RestRig, width: int = 512, height: int = 512, vertical_fov_degrees: float = 40.0
) -> PinholeCamera:
    """A camera in the model frame that frames the rest body from the front (Blender's -Y side), upright.

    The distance is chosen so the body's height fills about 85% of the image height.
    """
    to_bl = rig.to_blender
    verts_bl = rig.rest_vertices @ to_bl[:3, :3].T + to_bl[:3, 3]
    lo, hi = verts_bl.min(0).values, verts_bl.max(0).values
    centre = 0.5 * (lo + hi)
    half = 0.5 * float(hi[2] - lo[2]) / 0.85
    distance = half / math.tan(math.radians(vertical_fov_degrees) / 2) + float(hi[1] - lo[1])
    eye = centre + torch.tensor([0.0, -distance, 0.0])
    cam_bl = PinholeCamera.look_at(eye, centre, torch.tensor([0.0, 0.0, 1.0]), width, height, vertical_fov_degrees)
    return camera_to_frame(cam_bl, to_bl)


def params_with_pose(base: BodyParams, rotations: torch.Tensor, translation: torch.Tensor) -> BodyParams:
    """A copy of ``base`` with rotations (J, 3) and translation (3,) replaced (shape/expression kept)."""
    out = base.clone()
    out.rotations = rotations.detach().clone().float()
    out.translation = translation.detach().clone().float()
    return out
