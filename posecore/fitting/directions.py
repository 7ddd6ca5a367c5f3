"""The depth cue of a detector's 3D landmarks: limb bone directions in the camera's frame.

2D landmarks fix where a joint projects, not whether an elbow or knee points towards the camera or away from it:
a limb flipped in depth projects to the same points. MediaPipe's 3D landmarks (``Detection.world``: metres,
hip-centred, in the camera's axes: x image right, y down, z away) carry that missing sign. The term below compares
the fitted body's limb bones, turned into the camera's frame, with the landmarks' bones: ``1 - cos`` of the angle
between them, weighted by the landmarks' visibility. It scores hypotheses (:mod:`posecore.fitting.hypotheses`)
and, with a small weight, steadies the fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from posecore.bodies.base import BodyModel
from posecore.cameras.pinhole import PinholeCamera
from posecore.detect.joint_map import model_joints

LIMB_BONES = tuple(
    (f"{side}_{a}", f"{side}_{b}", index_a + offset, index_b + offset)
    for side, offset in (("left", 0), ("right", 1))
    for a, b, index_a, index_b in (
        ("shoulder", "elbow", 11, 13),
        ("elbow", "wrist", 13, 15),
        ("hip", "knee", 23, 25),
        ("knee", "ankle", 25, 27),
    )
)
"""(joint, child joint (SMPL-X names), landmark, child landmark (MediaPipe Pose indices)) of the eight limb bones."""


@dataclass
class BoneDirections:
    """Limb bone directions seen by a detector.

    Attributes:
        joints: (B, 2) int64 model joint indices (bone from column 0 to column 1).
        directions: (B, 3) unit vectors in the camera's frame (OpenCV axes).
        weights: (B,) float32 >= 0 (the lower visibility of the bone's two landmarks).
    """

    joints: torch.Tensor
    directions: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def from_detection(cls, body: BodyModel, world: np.ndarray, visibility: np.ndarray) -> BoneDirections:
        """From a detection's (33, 3) world landmarks and (33,) visibilities."""
        world_t = torch.as_tensor(np.asarray(world, np.float32))
        vis = torch.as_tensor(np.asarray(visibility, np.float32))
        pairs, dirs, weights = [], [], []
        for a, b, la, lb in LIMB_BONES:
            pairs.append((model_joints(body, a)[0], model_joints(body, b)[0]))
            d = world_t[lb] - world_t[la]
            dirs.append(d / d.norm().clamp_min(1e-9))
            weights.append(torch.minimum(vis[la], vis[lb]))
        return cls(torch.tensor(pairs, dtype=torch.int64), torch.stack(dirs), torch.stack(weights))


def direction_loss(joints: torch.Tensor, camera: PinholeCamera, bones: BoneDirections) -> torch.Tensor:
    """Weighted mean of ``1 - cos`` between the body's limb bones (in the camera's frame) and the detected ones.

    Args:
        joints: (J, 3) posed joints, metres, world frame. camera: the fit's camera.

    Returns:
        Scalar in [0, 2]; 0 when every bone points the detected way (0 when all weights are 0).
    """
    d = joints[bones.joints[:, 1]] - joints[bones.joints[:, 0]]
    d = d @ camera.rotation.to(d).T
    cos = (d * bones.directions.to(d)).sum(-1) / d.norm(dim=-1).clamp_min(1e-9)
    weights = bones.weights.to(d)
    return (weights * (1.0 - cos)).sum() / weights.sum().clamp_min(1e-12)
