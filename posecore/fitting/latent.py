"""theta_b as VPoser's latent code: the upstream parameter ``vposer`` of a fit (the paper's "pose embedding
adopted from SMPLify-X").

Each iteration the 32-number code z is decoded into the rotations of the SMPL-X body joints the fit may move,
and the prior of Eq. 5 becomes ``lambda * ||z||^2``, the Gaussian prior VPoser's latent space was trained
for (``latent_prior_reference="init"``: ``||z - z0||^2``).

The initialisation is kept exactly: a joint's rotation is ``R_dec(z)_j @ C_j`` with the constant
``C_j = R_dec(z0)_j^T @ R_init_j``, so at the starting code z0 every joint is where the initialisation put
it, even when z0 was only the closest code (:meth:`VPoserDecoder.encode`) to an axis-angle initialisation.
When z0 is the initialisation's own code (a SMPLify-X result), C is the identity up to rounding. Joints
outside the selected part keep their initial rotations (only the part's rows are written), so selective
fits stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from posecore.bodies.base import BodyParams
from posecore.bodies.smplx_joints import SMPLX_BODY_JOINT_NAMES
from posecore.errors import ParameterError
from posecore.rotations import axis_angle_to_matrix, matrix_to_axis_angle

VPOSER_JOINTS = SMPLX_BODY_JOINT_NAMES[1:22]
"""The 21 joints VPoser decodes, in its output order (left_hip .. right_wrist)."""


@dataclass
class LatentPose:
    """The code being optimised and how it maps onto the fit's free joints.

    Attributes:
        decoder: the VPoser decoder.
        code: (32,) the latent code (a leaf tensor with ``requires_grad``).
        start: (32,) the starting code z0 (detached).
        positions: (n,) int64 positions in the fit's free-joint list that the code drives.
        decoder_rows: (n,) int64 the decoder's output rows for those joints.
        offsets: (n, 3, 3) the constants C_j (see the module docstring).
        initial_rows: (n, 3) the initial axis-angle rotations of those joints.
    """

    decoder: object
    code: torch.Tensor
    start: torch.Tensor
    positions: torch.Tensor
    decoder_rows: torch.Tensor
    offsets: torch.Tensor
    initial_rows: torch.Tensor

    @classmethod
    def build(cls, problem, free_joints: list[int], initial: BodyParams) -> LatentPose:
        """The latent parameterisation of ``problem`` (a :class:`posecore.fitting.loop.FitProblem`).

        Raises:
            ParameterError: no VPoser given, a body without SMPL-X's body joints, or no free joint it drives.
        """
        decoder = problem.vposer
        if decoder is None:
            raise ParameterError("optimising 'vposer' (theta_b as VPoser's code) needs a VPoser folder (--vposer DIR)")
        names = problem.body.joint_names
        if not set(VPOSER_JOINTS) <= set(names):
            raise ParameterError(
                f"'vposer' works with SMPL-X bodies (VPoser decodes SMPL-X's 21 body joints); {problem.body.name} "
                "has other joints: optimise 'pose' instead"
            )
        positions = [k for k, j in enumerate(free_joints) if names[j] in VPOSER_JOINTS]
        if not positions:
            raise ParameterError("none of the joints the fit may move is decoded by VPoser")
        rows = [VPOSER_JOINTS.index(names[free_joints[k]]) for k in positions]
        joints = torch.tensor([free_joints[k] for k in positions])
        initial_rows = initial.rotations.detach()[joints].to(torch.float32)
        if problem.initial_code is not None:
            start = problem.initial_code.detach().to(torch.float32).clone()
        else:
            body_pose = initial.rotations.detach()[[names.index(n) for n in VPOSER_JOINTS]].to(torch.float32)
            start = decoder.encode(body_pose)
        with torch.no_grad():
            decoded = decoder.decode_matrices(start)[rows]
            offsets = decoded.transpose(-1, -2) @ axis_angle_to_matrix(initial_rows)
        return cls(
            decoder=decoder,
            code=start.clone().requires_grad_(True),
            start=start,
            positions=torch.tensor(positions),
            decoder_rows=torch.tensor(rows),
            offsets=offsets,
            initial_rows=initial_rows,
        )

    def rotations(self) -> torch.Tensor:
        """(n, 3) axis-angle rotations of the driven joints for the current code (differentiable in it)."""
        mats = self.decoder.decode_matrices(self.code)[self.decoder_rows] @ self.offsets
        return matrix_to_axis_angle(mats)

    def apply(self, free_rows: torch.Tensor, exact_start: bool = False) -> torch.Tensor:
        """``free_rows`` (F, 3) with the driven joints' rows replaced by the decoded rotations.

        ``exact_start``: use the initial rotations' exact values (gradients still flow to the code), for the
        first iteration, where the decoded rotations equal them up to rounding.
        """
        decoded = self.rotations()
        if exact_start:
            decoded = self.initial_rows + (decoded - decoded.detach())
        return free_rows.index_put((self.positions,), decoded)

    def prior(self, reference: str) -> torch.Tensor:
        """``||z||^2`` (reference "zero", the paper's) or ``||z - z0||^2`` ("init")."""
        delta = self.code if reference == "zero" else self.code - self.start
        return delta.square().sum()
