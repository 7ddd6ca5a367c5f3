"""The poses a single view cannot tell apart from a given one: pure functions making alternative starts.

From one photo, some different bodies fill nearly the same outline:

- the left and right arms (or legs) exchanged, each taking the other's pose mirrored (a detector that confused the
  sides gives such a start);
- the whole body reflected through the plane facing the camera (:func:`depth_mirror`): every point keeps its
  pixel under a weak-perspective camera, yet front and back, and left and right, are exchanged: a body turned
  round;
- one bone of a limb, or the whole limb, reflected in depth about its root (:func:`flip_limb_depth`): an elbow or
  knee bent towards the camera instead of away from it keeps its outline;
- the body turned 180 degrees about the camera's up axis (:func:`turn_around`): the outline is mirrored, the pose
  kept.

Every function takes and returns :class:`~posecore.bodies.base.BodyParams` (axis-angle rotations, row 0 the root)
and never modifies its input. Both supported models rotate each joint in world-aligned axes at rest with the
body's left at +X (see :mod:`posecore.detect.kinematics`), so mirroring through the body's sagittal plane is
``(wx, wy, wz) -> (wx, -wy, -wz)`` with the sides exchanged, in either model.
"""

from __future__ import annotations

import torch

from posecore.bodies.anny_body import SMPLX_TO_ANNY
from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.pinhole import PinholeCamera
from posecore.fitting.limits import JointLimits
from posecore.rotations import axis_angle_to_matrix, matrix_to_axis_angle

MIRROR = torch.tensor([1.0, -1.0, -1.0])
"""Axis-angle mirrored through the sagittal plane x = 0 (a pseudo-vector: x kept, y and z negated)."""

TWIST_STEPS = 16
"""Twists about a flipped bone tried to keep its joint inside its range (22.5 degrees apart)."""

ARM_CHAIN = ("shoulder", "elbow", "wrist")
LEG_CHAIN = ("hip", "knee", "ankle")
ARM_ROOTS = ("collar",)
LEG_ROOTS = ("hip",)


def model_joint(body: BodyModel, smplx_name: str) -> int:
    """Index in ``body`` of the joint playing the SMPL-X joint ``smplx_name`` (Anny through its rig map)."""
    if smplx_name in body.joint_names:
        return body.joint_index(smplx_name)
    return body.joint_index(SMPLX_TO_ANNY[smplx_name])


def side_pairs(body: BodyModel) -> list[tuple[int, int]]:
    """(left, right) joint index pairs of every joint that has a mirror twin (SMPL-X ``left_``/``right_``,
    Anny ``.L``/``.R``), fingers and face included."""
    pairs = []
    names = body.joint_names
    for i, name in enumerate(names):
        twin = None
        if name.startswith("left_"):
            twin = "right_" + name[len("left_") :]
        elif name.endswith(".L"):
            twin = name[:-2] + ".R"
        if twin is not None and twin in names:
            pairs.append((i, names.index(twin)))
    return pairs


def _global_rotations(body: BodyModel, rotations: torch.Tensor) -> torch.Tensor:
    """(J, 3, 3) world rotation of every joint's frame: G_j = G_parent(j) R_j."""
    local = axis_angle_to_matrix(rotations)
    world = [local[0]]
    for j in range(1, body.num_joints):
        world.append(world[body.parents[j]] @ local[j])
    return torch.stack(world)


def swap_sides(body: BodyModel, params: BodyParams, roots: tuple[str, ...]) -> BodyParams:
    """Exchange the left and right limbs below ``left_<r>``/``right_<r>`` (SMPL-X names; the whole subtree, fingers
    and toes included), each joint taking its twin's rotation mirrored through the sagittal plane. With
    ``("collar",)`` this swaps the arms; with ``("hip",)``, the legs."""
    twin = dict(side_pairs(body))
    out = params.clone()
    for root in roots:
        for left in body.descendants(model_joint(body, f"left_{root}")):
            right = twin.get(left)
            if right is None:
                continue
            out.rotations[left] = params.rotations[right] * MIRROR
            out.rotations[right] = params.rotations[left] * MIRROR
    return out


def mirror_pose(body: BodyModel, params: BodyParams) -> BodyParams:
    """Every joint below the root mirrored through the sagittal plane (sides exchanged); the root kept."""
    out = params.clone()
    out.rotations[1:] = params.rotations[1:] * MIRROR
    for left, right in side_pairs(body):
        out.rotations[left] = params.rotations[right] * MIRROR
        out.rotations[right] = params.rotations[left] * MIRROR
    return out


def view_direction(body: BodyModel, params: BodyParams, camera: PinholeCamera, joint: int = 0) -> torch.Tensor:
    """(3,) unit vector from the camera's centre to ``joint`` of the posed body (model frame)."""
    with torch.no_grad():
        point = body(params).joints[joint]
    ray = point - camera.position.to(point)
    return ray / ray.norm().clamp_min(1e-9)


def _reflection(direction: torch.Tensor) -> torch.Tensor:
    """(3, 3) reflection through the plane whose normal is ``direction`` (unit)."""
    return torch.eye(3) - 2.0 * torch.outer(direction, direction)


def reflect_body(body: BodyModel, params: BodyParams, normal: torch.Tensor) -> BodyParams:
    """The body reflected through the plane through its root with unit ``normal`` (model frame).

    Built as the mirrored pose (:func:`mirror_pose`) with the root's orientation ``G' = N G M`` (N the reflection
    along ``normal``, M the sagittal mirror), a proper rotation since det(N) = det(M) = -1; the root stays put.
    """
    out = mirror_pose(body, params)
    g = axis_angle_to_matrix(params.rotations[0])
    m = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    out.rotations[0] = matrix_to_axis_angle(_reflection(normal) @ g @ m)
    return out


def depth_mirror(body: BodyModel, params: BodyParams, camera: PinholeCamera) -> BodyParams:
    """The body reflected through the plane through its root that faces the camera: each point keeps its pixel
    under a weak-perspective camera, while front and back, and left and right, are exchanged."""
    return reflect_body(body, params, view_direction(body, params, camera))


def coronal_mirror(body: BodyModel, params: BodyParams) -> BodyParams:
    """The body reflected through its own coronal plane (front <-> back about the root): turned round in the body's
    own frame, which a camera seeing the body from the side turns into a different outline than
    :func:`depth_mirror`."""
    front = torch.linalg.cross(torch.tensor([1.0, 0.0, 0.0]), body.up_axis.to(torch.float32))
    normal = axis_angle_to_matrix(params.rotations[0]) @ front
    return reflect_body(body, params, normal / normal.norm())


def turn_around(body: BodyModel, params: BodyParams, camera: PinholeCamera) -> BodyParams:
    """The body turned 180 degrees about the camera's up axis through its root (pose kept)."""
    up = -camera.rotation[1].to(torch.float32)  # OpenCV: image y points down
    turn = axis_angle_to_matrix(up * torch.pi)
    out = params.clone()
    out.rotations[0] = matrix_to_axis_angle(turn @ axis_angle_to_matrix(params.rotations[0]))
    return out


def _aligning_rotation(u: torch.Tensor, v: torch.Tensor, fallback_axis: torch.Tensor) -> torch.Tensor:
    """(3, 3) the smallest rotation taking direction ``u`` to ``v`` (both (3,), any length); for opposite
    directions, a half turn about ``fallback_axis`` made perpendicular to ``u``."""
    u = u / u.norm().clamp_min(1e-9)
    v = v / v.norm().clamp_min(1e-9)
    axis = torch.linalg.cross(u, v)
    sin, cos = axis.norm(), torch.dot(u, v)
    if float(sin) < 1e-6:
        if float(cos) > 0:
            return torch.eye(3)
        axis = fallback_axis - torch.dot(fallback_axis, u) * u
        if float(axis.norm()) < 1e-6:
            axis = torch.linalg.cross(u, torch.tensor([1.0, 0.0, 0.0]))
            if float(axis.norm()) < 1e-6:
                axis = torch.linalg.cross(u, torch.tensor([0.0, 1.0, 0.0]))
        return axis_angle_to_matrix(axis / axis.norm() * torch.pi)
    return axis_angle_to_matrix(axis / sin * torch.atan2(sin, cos))


def flip_limb_depth(
    body: BodyModel,
    params: BodyParams,
    camera: PinholeCamera,
    side: str,
    limb: str,
    bones: str = "both",
    limits: JointLimits | None = None,
) -> BodyParams:
    """A limb with its bones reflected in depth: the elbow or knee bent towards the camera instead of away.

    Args:
        side: "left" or "right". limb: "arm" (shoulder, elbow, wrist) or "leg" (hip, knee, ankle).
        bones: "both" reflects the whole limb about its root's depth (upper and lower bone); "lower" only the
            lower bone about the middle joint (forearm or shin); "upper" only the upper bone (the lower bone keeps
            its direction).

    Each reflected bone direction d becomes D d with D the reflection along the view ray through the limb's root,
    so its projection (weak perspective) is kept. The limb's joints are turned by the smallest rotations that point
    their bones the new ways; the hand or foot keeps its rotation relative to its bone. A bone's direction leaves
    its twist free: with ``limits``, each flipped bone is also turned about itself by the angle that
    leaves its joint least outside its range (of :data:`TWIST_STEPS` tried), so a flipped elbow is bent the way an
    elbow bends.
    """
    if bones not in ("both", "lower", "upper"):
        raise ValueError(f"bones must be 'both', 'lower' or 'upper', got {bones!r}")
    chain = ARM_CHAIN if limb == "arm" else LEG_CHAIN
    a, b, e = (model_joint(body, f"{side}_{name}") for name in chain)
    with torch.no_grad():
        joints = body(params).joints
        rest = body(body.default_params()).joints
    ray = joints[a] - camera.position.to(joints)
    c = ray / ray.norm().clamp_min(1e-9)
    reflect = _reflection(c)
    d1, d2 = joints[b] - joints[a], joints[e] - joints[b]
    new_d1 = reflect @ d1 if bones in ("both", "upper") else d1
    new_d2 = reflect @ d2 if bones in ("both", "lower") else d2
    world = _global_rotations(body, params.rotations)
    parent = world[body.parents[a]]
    out = params.clone()

    near = limits.subset([a, b]) if limits is not None else None

    def best_twist(direction: torch.Tensor, make) -> torch.Tensor:
        """The rotation about ``direction`` (of :data:`TWIST_STEPS`) whose result ``make(twist) -> rotations`` is
        least outside the limb's limits; the identity without limits."""
        if near is None:
            return torch.eye(3)
        unit = direction / direction.norm().clamp_min(1e-9)
        best, best_penalty = torch.eye(3), None
        for k in range(TWIST_STEPS):
            twist = axis_angle_to_matrix(unit * (2 * torch.pi * k / TWIST_STEPS))
            penalty = float(near.penalty(make(twist)))
            if best_penalty is None or penalty < best_penalty - 1e-9:
                best, best_penalty = twist, penalty
        return best

    def pose_with(g_a: torch.Tensor, g_b: torch.Tensor) -> torch.Tensor:
        rotations = out.rotations.clone()
        rotations[a] = matrix_to_axis_angle(parent.T @ g_a)
        rotations[b] = matrix_to_axis_angle(g_a.T @ g_b)
        return rotations

    def lower_for(g_a: torch.Tensor) -> torch.Tensor:
        g_b_before = g_a @ axis_angle_to_matrix(params.rotations[b])
        lower_now = g_b_before @ (rest[e] - rest[b])
        return _aligning_rotation(lower_now, new_d2, c) @ g_b_before

    g_a0 = _aligning_rotation(d1, new_d1, c) @ world[a]
    g_a = g_a0
    if bones != "lower":
        g_a = best_twist(new_d1, lambda t: pose_with(t @ g_a0, lower_for(t @ g_a0))) @ g_a0
    g_b0 = lower_for(g_a)
    g_b = best_twist(new_d2, lambda t: pose_with(g_a, t @ g_b0)) @ g_b0 if bones != "upper" else g_b0
    out.rotations = pose_with(g_a, g_b)
    return out


CANDIDATE_NAMES = (
    "start",
    "swap_arms",
    "swap_legs",
    "mirror_body",
    "turned_round",
    "turned_body",
    "turn_180",
    *(
        f"flip_{side}_{joint}_{bones}"
        for side in ("left", "right")
        for joint in ("elbow", "knee")
        for bones in ("both", "lower")
    ),
)
"""Every alternative :func:`alternatives` makes, in its order."""


def alternatives(
    body: BodyModel, params: BodyParams, camera: PinholeCamera, limits: JointLimits | None = None
) -> dict[str, BodyParams]:
    """The start and its single-view alternatives, by name (see :data:`CANDIDATE_NAMES`).

    ``mirror_body`` is the pose mirrored with the root kept (every left/right label exchanged); ``turned_round``
    the depth reflection (:func:`depth_mirror`); ``turned_body`` the reflection through the body's coronal plane
    (:func:`coronal_mirror`); ``turn_180`` the root turned about the camera's up axis. With ``limits``, each flipped
    limb takes the twist about its bones that keeps it nearest its joints' ranges.
    """
    out = {
        "start": params.clone(),
        "swap_arms": swap_sides(body, params, ARM_ROOTS),
        "swap_legs": swap_sides(body, params, LEG_ROOTS),
        "mirror_body": mirror_pose(body, params),
        "turned_round": depth_mirror(body, params, camera),
        "turned_body": coronal_mirror(body, params),
        "turn_180": turn_around(body, params, camera),
    }
    for side in ("left", "right"):
        for joint, limb in (("elbow", "arm"), ("knee", "leg")):
            for bones in ("both", "lower"):
                out[f"flip_{side}_{joint}_{bones}"] = flip_limb_depth(body, params, camera, side, limb, bones, limits)
    return out
