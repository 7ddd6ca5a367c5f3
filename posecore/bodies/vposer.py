"""VPoser's decoder: a 32-number latent code -> 21 SMPL-X body joint rotations (theta_b).

VPoser (Pavlakos et al. 2019, ``human_body_prior``) is the body pose prior SMPLify-X optimises in: with its
default ``use_vposer: True`` a SMPLify-X result stores ``body_pose`` as the (1, 32) code z, and the pose is
``decode(z)``. The prior of the paper's Eq. 5, ``lambda * ||theta_b||^2``, is the Gaussian prior VPoser's
latent space was trained for when theta_b is z.

The decoder, written here from the published architecture (no code from the user's folder ever runs):

========  ===============================  ===============================================
version   layers (state-dict keys)         activation
========  ===============================  ===============================================
v1.0      ``bodyprior_dec_fc1`` (32->512),  leaky ReLU, slope 0.2 (dropout is off at eval)
          ``bodyprior_dec_fc2`` (512->512),
          ``bodyprior_dec_out`` (512->126)
v2.0      ``vp_model.decoder_net.0``,       ``nn.LeakyReLU()``: slope 0.01
          ``.3``, ``.5`` (same sizes)
========  ===============================  ===============================================

The 126 outputs are 21 continuous 6D rotations (Zhou et al. 2019), read per joint as a 3x2 matrix whose
columns are Gram-Schmidt orthonormalised into the first two columns of the rotation matrix; the third is
their cross product (``ContinousRotReprDecoder`` in ``human_body_prior``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812 - the usual alias

from posecore.errors import ParameterError
from posecore.rotations import axis_angle_to_matrix, matrix_to_axis_angle

LATENT_DIM = 32
NUM_BODY_JOINTS = 21
NEGATIVE_SLOPE = {"v1": 0.2, "v2": 0.01}


@dataclass
class VPoserDecoder:
    """VPoser's decoder weights and the function they compute.

    Attributes:
        version: "v1" or "v2" (chooses the leaky-ReLU slope).
        fc1_weight, fc1_bias: (H, 32), (H,).
        fc2_weight, fc2_bias: (H, H), (H,).
        out_weight, out_bias: (126, H), (126,).
        source: the checkpoint file the weights came from (for messages).
    """

    version: str
    fc1_weight: torch.Tensor
    fc1_bias: torch.Tensor
    fc2_weight: torch.Tensor
    fc2_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    source: str = ""

    def __post_init__(self) -> None:
        if self.version not in NEGATIVE_SLOPE:
            raise ParameterError(f"VPoser version must be 'v1' or 'v2', got {self.version!r}")
        hidden = self.fc1_weight.shape[0]
        expected = {
            "fc1_weight": (hidden, LATENT_DIM),
            "fc1_bias": (hidden,),
            "fc2_weight": (hidden, hidden),
            "fc2_bias": (hidden,),
            "out_weight": (NUM_BODY_JOINTS * 6, hidden),
            "out_bias": (NUM_BODY_JOINTS * 6,),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if tuple(value.shape) != shape:
                raise ParameterError(f"{self.source}: VPoser {name} has shape {tuple(value.shape)}, expected {shape}")
            if not torch.isfinite(value).all():
                raise ParameterError(f"{self.source}: VPoser {name} contains NaN or infinite values")
            setattr(self, name, value.detach().to(torch.float32).contiguous())

    @property
    def negative_slope(self) -> float:
        return NEGATIVE_SLOPE[self.version]

    def decode_matrices(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes -> rotation matrices.

        Args:
            z: (N, 32) or (32,) latent codes.

        Returns:
            (N, 21, 3, 3) (or (21, 3, 3)) rotation matrices of SMPL-X body joints 1..21 (left_hip ..
            right_wrist), relative to their parents.
        """
        single = z.dim() == 1
        z2 = z.reshape(-1, LATENT_DIM)
        dtype = z2.dtype
        h = F.leaky_relu(F.linear(z2, self.fc1_weight.to(dtype), self.fc1_bias.to(dtype)), self.negative_slope)
        h = F.leaky_relu(F.linear(h, self.fc2_weight.to(dtype), self.fc2_bias.to(dtype)), self.negative_slope)
        out = F.linear(h, self.out_weight.to(dtype), self.out_bias.to(dtype))
        mats = rotation_6d_to_matrix(out.reshape(-1, NUM_BODY_JOINTS, 6))
        return mats[0] if single else mats

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes -> axis-angle: (N, 32) -> (N, 21, 3) radians ((32,) -> (21, 3))."""
        return matrix_to_axis_angle(self.decode_matrices(z))

    def encode(self, pose: torch.Tensor, iterations: int = 300, lr: float = 0.05) -> torch.Tensor:
        """The code whose decoded pose is closest to ``pose`` (VPoser's decoder inverted by optimisation).

        Minimises the squared Frobenius distance between decoded and given rotation matrices plus a small
        ``1e-3 ||z||^2`` so the code stays in the prior's support. Used to start a latent-space fit from an
        axis-angle initialisation.

        Args:
            pose: (21, 3) axis-angle rotations of body joints 1..21, radians.

        Returns:
            (32,) float32 code (detached).
        """
        if tuple(pose.shape) != (NUM_BODY_JOINTS, 3):
            raise ParameterError(f"VPoser encode: pose has shape {tuple(pose.shape)}, expected (21, 3)")
        target = axis_angle_to_matrix(pose.detach().to(torch.float32))
        z = torch.zeros(LATENT_DIM, requires_grad=True)
        optimizer = torch.optim.Adam([z], lr=lr)
        best, best_loss = z.detach().clone(), float("inf")
        for _ in range(iterations):
            optimizer.zero_grad(set_to_none=True)
            loss = (self.decode_matrices(z) - target).square().sum() + 1e-3 * z.square().sum()
            if float(loss.detach()) < best_loss:
                best, best_loss = z.detach().clone(), float(loss.detach())
            loss.backward()
            optimizer.step()
        return best


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """VPoser's continuous 6D rotations -> matrices (``ContinousRotReprDecoder``).

    Args:
        d6: (..., 6): per joint a row-major 3x2 matrix [[a0, b0], [a1, b1], [a2, b2]].

    Returns:
        (..., 3, 3) rotation matrices with columns b1 = a/|a|, b2 = (b - (b1.b) b1)/|.|, b3 = b1 x b2.
    """
    m = d6.reshape(*d6.shape[:-1], 3, 2)
    b1 = F.normalize(m[..., 0], dim=-1)
    b2 = F.normalize(m[..., 1] - (b1 * m[..., 1]).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)
