"""Named body parts ("select by looking", Sec. 3.2 of the paper) as vertex sets, and the joints that drive them.

A part is the set of vertices whose strongest skinning weight belongs to one of the part's joints.
Parts are described once, with SMPL-X joint names; :data:`ANNY_JOINT_FOR` maps them onto Anny's rig.
Any joint name also works as a part: ``joint:NAME`` is that joint and everything below it.
"""

from __future__ import annotations

import torch

from posecore.bodies.anny_body import SMPLX_TO_ANNY
from posecore.bodies.base import BodyModel
from posecore.errors import ParameterError, shorten

# Each part: (root joints whose whole subtree belongs to the part, single joints added without subtree).
_PART_SPECS: dict[str, tuple[list[str], list[str]]] = {
    "left_arm": (["left_shoulder"], []),
    "right_arm": (["right_shoulder"], []),
    "arms": (["left_shoulder", "right_shoulder"], []),
    "left_leg": (["left_hip"], []),
    "right_leg": (["right_hip"], []),
    "legs": (["left_hip", "right_hip"], []),
    "lower_body": (["left_hip", "right_hip"], ["pelvis"]),
    "head": (["neck"], []),
    "left_hand": (["left_wrist"], []),
    "right_hand": (["right_wrist"], []),
    "hands": (["left_wrist", "right_wrist"], []),
    "torso": ([], ["pelvis", "spine1", "spine2", "spine3", "left_collar", "right_collar"]),
}
PART_NAMES = [*sorted(_PART_SPECS), "upper_body"]


def _model_joint(body: BodyModel, smplx_name: str) -> int:
    """Index in ``body`` of the joint playing the SMPL-X joint's role."""
    if smplx_name in body.joint_names:
        return body.joint_index(smplx_name)
    if body.name == "anny" and smplx_name in SMPLX_TO_ANNY:
        return body.joint_index(SMPLX_TO_ANNY[smplx_name])
    raise ParameterError(f"{body.name} has no joint for {smplx_name!r}")


def part_joints(body: BodyModel, part: str) -> list[int]:
    """Indices of the joints whose skinning regions make up ``part``.

    Args:
        part: one of :data:`PART_NAMES`, or ``joint:NAME`` (a joint of ``body`` and its descendants).
    """
    if part.startswith("joint:"):
        try:
            index = body.joint_index(part[len("joint:") :])
        except KeyError as exc:
            raise ParameterError(f"--part {shorten(part, 80)}: {shorten(exc.args[0])}") from None
        return body.descendants(index)
    if part == "upper_body":
        lower = set(part_joints(body, "lower_body"))
        return [j for j in range(body.num_joints) if j not in lower]
    if part not in _PART_SPECS:
        raise ParameterError(f"unknown part {shorten(part, 80)!r}; choose one of {', '.join(PART_NAMES)} or joint:NAME")
    roots, singles = _PART_SPECS[part]
    joints: set[int] = set()
    for name in roots:
        joints.update(body.descendants(_model_joint(body, name)))
    for name in singles:
        joints.add(_model_joint(body, name))
    return sorted(joints)


def part_vertex_mask(body: BodyModel, part: str) -> torch.Tensor:
    """(V,) bool: vertices whose strongest skinning weight belongs to ``part``'s joints."""
    dominant = body.skinning_weights.argmax(dim=1)
    member = torch.zeros(body.num_joints, dtype=torch.bool, device=dominant.device)
    member[part_joints(body, part)] = True
    return member[dominant]


def face_mask_from_vertices(faces: torch.Tensor, vertex_mask: torch.Tensor) -> torch.Tensor:
    """(F,) bool: faces with at least two of their three vertices in ``vertex_mask`` ((V,) bool)."""
    return vertex_mask[faces].sum(dim=1) >= 2


def joints_driving(body: BodyModel, vertex_mask: torch.Tensor, candidates: list[int], share: float = 0.5) -> list[int]:
    """The candidate joints whose influence lies mostly on the selected vertices.

    A joint qualifies when at least ``share`` of its total skinning weight sits on ``vertex_mask``. Ancestors
    that merely carry the part (the spine for an arm) do not qualify: rotating them would move the rest of
    the body too, which selective fitting must not do.

    Args:
        vertex_mask: (V,) bool selected vertices.
        candidates: joint indices that may be optimised.

    Returns:
        Sorted joint indices.
    """
    weights = body.skinning_weights.to(torch.float32)
    total = weights.sum(dim=0).clamp_min(1e-12)
    inside = weights[vertex_mask.to(weights.device)].sum(dim=0)
    ratio = inside / total
    return sorted(j for j in candidates if float(ratio[j]) >= share)
