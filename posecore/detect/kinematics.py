"""Joints-only forward kinematics on a subset of a body's tree: milliseconds per pose, for the initialisation.

Both SMPL-X and Anny (``local-ref``) rotate each joint about its head in world-aligned axes at rest, so the posed
joints follow from the rest joints alone: ``G_j = G_parent(j) R_j`` and
``p_j = p_parent(j) + G_parent(j) (rest_j - rest_parent(j))``; the root turns about its own head
(``p_0 = rest_0``, ``G_0 = R_0``). This matches each model's own ``forward()`` joints (tested), without
skinning a mesh.
"""

from __future__ import annotations

import torch

from posecore.bodies.base import BodyModel
from posecore.rotations import axis_angle_to_matrix


class JointChain:
    """Forward kinematics of the joints ``needed`` and their ancestors, at a fixed shape.

    Args:
        body: the model. needed: joint indices whose positions are wanted.
        rest_joints: (J, 3) joint positions of the rest pose (zero rotations, zero translation), metres;
            default: computed from ``body.default_params()``.
    """

    def __init__(self, body: BodyModel, needed: list[int], rest_joints: torch.Tensor | None = None) -> None:
        if rest_joints is None:
            with torch.no_grad():
                rest_joints = body(body.default_params()).joints.detach().to(torch.float32).cpu()
        keep: set[int] = set()
        for j in needed:
            while j >= 0 and j not in keep:
                keep.add(j)
                j = body.parents[j]
        self.joints = sorted(keep)  # parents come before children (parents[j] < j)
        position = {j: i for i, j in enumerate(self.joints)}
        parents = [body.parents[j] for j in self.joints]
        depth: list[int] = []
        for p in parents:
            depth.append(0 if p < 0 else depth[position[p]] + 1)
        self.rest = rest_joints[self.joints]
        # Joints grouped by depth: each level is one batched product with its parents (already computed).
        order = [i for i in range(len(self.joints)) if depth[i] == 0]
        self.num_roots = len(order)
        self.levels: list[tuple[torch.Tensor, torch.Tensor]] = []
        for d in range(1, max(depth) + 1):
            members = [i for i in range(len(self.joints)) if depth[i] == d]
            parent_rows = [order.index(position[parents[i]]) for i in members]
            self.levels.append((torch.tensor(members), torch.tensor(parent_rows, dtype=torch.int64)))
            order += members
        self.order = torch.tensor(order)
        self.inverse = torch.empty(len(order), dtype=torch.int64)
        self.inverse[self.order] = torch.arange(len(order))
        self.offsets = self.rest.clone()
        for i, p in enumerate(parents):
            if p >= 0:
                self.offsets[i] = self.rest[i] - self.rest[position[p]]
        self.index = {j: i for i, j in enumerate(self.joints)}

    def positions(self, rotations: torch.Tensor) -> torch.Tensor:
        """Posed joint positions.

        Args:
            rotations: (J, 3) axis-angle of every joint of the body (only this chain's rows are read).

        Returns:
            (N, 3) positions of :attr:`joints` (metres, model frame, no translation); use :attr:`index` to find
            a joint's row.
        """
        local = axis_angle_to_matrix(rotations[self.joints])
        roots = self.order[: self.num_roots]
        world, pos = local[roots], self.rest[roots]
        for members, parent_rows in self.levels:
            parent_world = world[parent_rows]
            world = torch.cat([world, parent_world @ local[members]])
            pos = torch.cat([pos, pos[parent_rows] + (parent_world @ self.offsets[members][..., None])[..., 0]])
        return pos[self.inverse]
