"""The body-model interface every model (SMPL-X, Anny, ...) implements.

A body is posed by one axis-angle rotation per joint (row 0 = the global orientation of the root,
rows 1.. = each joint's rotation relative to its parent), a root translation, shape coefficients and,
for SMPL-X, expression coefficients. Using the same (J, 3) layout for every model lets one
optimisation loop, one prior and one Blender conversion serve them all.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from posecore.errors import ParameterError


@dataclass
class BodyParams:
    """Upstream parameters of a posed body.

    Attributes:
        rotations: (J, 3) axis-angle, radians. Row 0 is the global orientation of the root joint.
        translation: (3,) metres, added to every vertex and joint after posing.
        shape: (S,) shape coefficients (SMPL-X betas, Anny phenotype values in [0, 1]).
        expression: (E,) SMPL-X expression coefficients; empty for models without expressions.
    """

    rotations: torch.Tensor
    translation: torch.Tensor
    shape: torch.Tensor
    expression: torch.Tensor = field(default_factory=lambda: torch.zeros(0))

    def clone(self) -> BodyParams:
        """A deep copy, detached from any autograd graph."""
        return BodyParams(**{f.name: getattr(self, f.name).detach().clone() for f in dataclasses.fields(self)})

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> BodyParams:
        return BodyParams(**{f.name: getattr(self, f.name).to(device, dtype) for f in dataclasses.fields(self)})

    def check_finite(self, source: str = "body parameters") -> None:
        """Raise :class:`ParameterError` naming the first field holding NaN or infinity."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not torch.isfinite(value).all():
                raise ParameterError(f"{source}: '{f.name}' contains NaN or infinite values")

    def as_numpy_dict(self) -> dict:
        """Plain float32 numpy arrays, for result files."""
        return {f.name: getattr(self, f.name).detach().cpu().numpy() for f in dataclasses.fields(self)}


@dataclass
class BodyOutput:
    """A posed body.

    Attributes:
        vertices: (V, 3) posed vertex positions, metres, in the model's world frame.
        joints: (J, 3) posed joint positions (heads of the bones), metres, same frame.
        joint_rotations_world: (J, 3, 3) world rotation of every joint's frame (optional use).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joint_rotations_world: torch.Tensor | None = None


class BodyModel(ABC):
    """A differentiable parametric body.

    Subclasses set the attributes below in ``__init__`` and implement :meth:`forward`.

    Attributes:
        name: short identifier ("anny", "smplx").
        joint_names: J names; index 0 is the root.
        parents: J parent indices, -1 for the root; parents[j] < j.
        faces: (F, 3) int64 triangle vertex indices.
        skinning_weights: (V, J) float32 linear-blend-skinning weights, rows sum to 1.
        body_joints: names of the joints the paper's "body pose" theta_b covers (no root, no fingers,
            no face): what a fit optimises by default.
        up_axis: (3,) the model's up direction in its own frame (SMPL-X: +Y, Anny: +Z).
        num_shape: S, number of shape coefficients; num_expression: E.
    """

    name: str
    joint_names: list[str]
    parents: list[int]
    faces: torch.Tensor
    skinning_weights: torch.Tensor
    body_joints: list[str]
    up_axis: torch.Tensor
    num_shape: int
    num_expression: int = 0

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_vertices(self) -> int:
        return int(self.skinning_weights.shape[0])

    def joint_index(self, name: str) -> int:
        """Index of a joint by name; raises ``KeyError`` listing close names when absent."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            near = [n for n in self.joint_names if name.lower() in n.lower()][:8]
            hint = f" (did you mean {near}?)" if near else ""
            raise KeyError(f"{self.name} has no joint {name!r}{hint}") from None

    @property
    def body_joint_indices(self) -> list[int]:
        return [self.joint_index(n) for n in self.body_joints]

    def default_params(self) -> BodyParams:
        """The rest pose at the mean shape, at the origin."""
        return BodyParams(
            rotations=torch.zeros(self.num_joints, 3),
            translation=torch.zeros(3),
            shape=self.default_shape(),
            expression=torch.zeros(self.num_expression),
        )

    def default_shape(self) -> torch.Tensor:
        """(S,) the mean / neutral shape coefficients."""
        return torch.zeros(self.num_shape)

    def check_params(self, params: BodyParams, source: str = "body parameters") -> None:
        """Raise :class:`ParameterError` on wrong shapes or non-finite values."""
        expected = {
            "rotations": (self.num_joints, 3),
            "translation": (3,),
            "shape": (self.num_shape,),
            "expression": (self.num_expression,),
        }
        for key, shape in expected.items():
            found = tuple(getattr(params, key).shape)
            if found != shape:
                raise ParameterError(f"{source}: '{key}' has shape {found}, expected {shape} for {self.name}")
        params.check_finite(source)

    @abstractmethod
    def forward(self, params: BodyParams) -> BodyOutput:
        """Pose the body. Differentiable w.r.t. every tensor in ``params``."""

    def __call__(self, params: BodyParams) -> BodyOutput:
        return self.forward(params)

    def descendants(self, joint: int) -> list[int]:
        """Indices of every joint below ``joint`` in the kinematic tree (itself included)."""
        out = [joint]
        for j in range(joint + 1, self.num_joints):
            if self.parents[j] in out:
                out.append(j)
        return out
