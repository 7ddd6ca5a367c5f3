"""Initialise a body and its camera from detected landmarks, in well under a second on one core.

1. **Bone directions.** The body's root is turned so its hips and torso face like the person's, then the root and
   body-joint rotations are optimised so the model's bone directions (:data:`~posecore.detect.joint_map.BONES`)
   match MediaPipe's 3D landmarks (camera axes, turned into the model's frame by the upright front camera of
   :func:`~posecore.detect.joint_map.front_camera_rotation`). Joints with no landmark of their own (spine, neck,
   collars) are shared out by a small squared-norm prior.
2. **Camera.** Focal length from EXIF or :func:`~posecore.detect.camera_solve.default_focal_px`, principal point at
   the image centre, the upright front rotation; the translation by linear least squares from the 2D landmarks.
3. **Refinement.** Pose and camera translation on the 2D landmarks (robust, visibility-weighted), keeping the 3D
   directions as a weak term.

Everything runs on joints only (:class:`~posecore.detect.kinematics.JointChain`): no mesh, no rendering.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.pinhole import PinholeCamera
from posecore.detect.camera_solve import default_focal_px, solve_translation
from posecore.detect.joint_map import BONES, KEYPOINTS, POINTS, front_camera_rotation, model_joints
from posecore.detect.kinematics import JointChain
from posecore.detect.landmarks import Detection
from posecore.fitting.keypoints import Keypoints2D, geman_mcclure
from posecore.rotations import matrix_to_axis_angle

DIRECTION_WEIGHT = 0.3
"""Weight of the 3D bone directions while refining on the 2D landmarks (whose depth they cannot see)."""

REFINE_SIGMA = 0.05
"""Geman-McClure scale of the refinement's 2D residuals, as a fraction of the image diagonal."""

MIN_VISIBILITY_3D = 0.25
"""Weight floor of a 3D direction whose landmarks MediaPipe calls invisible: its 3D guess still helps."""


@dataclass
class PhotoInit:
    """A body and camera initialised from a photo's landmarks.

    Attributes:
        params: body parameters (rest shape, zero translation; the camera holds the placement).
        camera: pinhole camera at the detection's image size.
        keypoints: the 2D landmarks matched to body joints (for the fit's keypoint term).
        reprojection_px: weighted mean distance of the matched joints' projections to their landmarks, pixels.
        seconds: wall time of the initialisation.
    """

    params: BodyParams
    camera: PinholeCamera
    keypoints: Keypoints2D
    reprojection_px: float
    seconds: float


class LandmarkInitialiser:
    """Initialisation from landmarks for one body model (the set-up is done once; reuse the instance).

    Args:
        body: the model (SMPL-X or Anny). prior_weight: weight of the squared-norm prior on the non-root joints.
    """

    def __init__(self, body: BodyModel, prior_weight: float = 0.002) -> None:
        self.body = body
        self.prior_weight = prior_weight
        self.camera_rotation = front_camera_rotation(body)
        self.point_joints = {name: self._joints(p.joints) for name, p in POINTS.items()}
        self.keypoint_joints = [model_joints(body, name) for name, _, _ in KEYPOINTS]
        for name, joints in zip(KEYPOINTS, self.keypoint_joints, strict=True):
            if len(joints) != 1:
                raise ValueError(f"keypoint joint {name[0]!r} must be a single joint of {body.name}")
        needed = sorted({j for js in self.point_joints.values() for j in js} | {js[0] for js in self.keypoint_joints})
        self.chain = JointChain(body, needed)
        self.point_matrix = self._point_matrix()
        names = list(POINTS)
        ends = torch.zeros(len(BONES), len(POINTS))
        for row, (a, b, _) in enumerate(BONES):
            ends[row, names.index(a)] -= 1.0
            ends[row, names.index(b)] += 1.0
        self.bone_matrix = ends @ self.point_matrix  # (B, N): chain positions -> bone vectors
        self.free = [0, *[j for j in body.body_joint_indices if j != 0]]
        self.bone_weights = torch.tensor([w for _, _, w in BONES])
        self.keypoint_weights = torch.tensor([w for _, _, w in KEYPOINTS])

    def _joints(self, names: tuple[str, ...]) -> list[int]:
        return [j for name in names for j in model_joints(self.body, name)]

    def _point_matrix(self) -> torch.Tensor:
        """(P, N) rows averaging chain positions into the :data:`POINTS` (in their order)."""
        matrix = torch.zeros(len(POINTS), len(self.chain.joints))
        for row, joints in enumerate(self.point_joints.values()):
            for j in joints:
                matrix[row, self.chain.index[j]] += 1.0 / len(joints)
        return matrix

    # ------------------------------------------------------------------ geometry helpers
    def _points(self, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        """{point name: (3,) model position} from (N, 3) chain positions."""
        return dict(zip(POINTS, self.point_matrix @ positions, strict=True))

    def _bone_directions(self, positions: torch.Tensor) -> torch.Tensor:
        """(B, 3) unit directions of :data:`BONES` from (N, 3) chain positions."""
        d = self.bone_matrix @ positions
        return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)

    def target_directions(self, detection: Detection) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3) bone directions of the 3D landmarks in the model's frame, and (B,) their weights.

        A bone's weight is its trust times its landmarks' visibility; bones inside the photo keep at least
        :data:`MIN_VISIBILITY_3D` (MediaPipe's 3D guess for an occluded limb is still informative), bones with a
        landmark outside the photo do not (its guess for legs out of frame is arbitrary), except the torso's.
        """
        world = torch.from_numpy(np.asarray(detection.world, np.float32)) @ self.camera_rotation  # R^T x per row
        vis = torch.from_numpy(np.asarray(detection.visibility, np.float32))
        uv = np.asarray(detection.points, np.float32)
        inside = (
            (uv[:, 0] >= 0) & (uv[:, 0] <= detection.width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= detection.height - 1)
        )
        pts, pvis, pin = {}, {}, {}
        for name, p in POINTS.items():
            pts[name] = world[list(p.landmarks)].mean(0)
            pvis[name] = vis[list(p.landmarks)].min()
            pin[name] = bool(inside[list(p.landmarks)].all())
        d = torch.stack([pts[b] - pts[a] for a, b, _ in BONES])
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        v = torch.stack([torch.minimum(pvis[a], pvis[b]) for a, b, _ in BONES])
        floor = torch.tensor([MIN_VISIBILITY_3D if (pin[a] and pin[b]) or a == "mid_hip" else 0.0 for a, b, _ in BONES])
        weights = self.bone_weights * (floor + (1 - floor) * v)
        return d, weights

    def keypoints(self, detection: Detection) -> Keypoints2D:
        """The 2D landmarks matched to single joints, weighted by visibility x trust."""
        index = [k for _, k, _ in KEYPOINTS]
        vis = torch.from_numpy(np.asarray(detection.visibility, np.float32))[index]
        return Keypoints2D(
            joints=torch.tensor([js[0] for js in self.keypoint_joints], dtype=torch.int64),
            uv=torch.from_numpy(np.asarray(detection.points, np.float32))[index],
            weights=self.keypoint_weights * vis,
            width=detection.width,
            height=detection.height,
        )

    def _torso_frame(self, points: dict[str, torch.Tensor]) -> torch.Tensor:
        """(3, 3) columns: the body's left, up and front from hips and shoulders."""
        left = (points["left_hip"] - points["right_hip"]) + (points["left_shoulder"] - points["right_shoulder"])
        up = points["mid_shoulder"] - points["mid_hip"]
        left = left / left.norm().clamp_min(1e-9)
        up = up - (up @ left) * left
        up = up / up.norm().clamp_min(1e-9)
        return torch.stack([left, up, torch.linalg.cross(left, up)], dim=1)

    def initial_root(self, detection: Detection) -> torch.Tensor:
        """(3,) root axis-angle turning the rest torso's frame onto the landmarks' torso frame."""
        world = torch.from_numpy(np.asarray(detection.world, np.float32)) @ self.camera_rotation
        target = {name: world[list(p.landmarks)].mean(0) for name, p in POINTS.items()}
        with torch.no_grad():
            rest = self._points(self.chain.positions(torch.zeros(self.body.num_joints, 3)))
        rotation = self._torso_frame(target) @ self._torso_frame(rest).T
        return matrix_to_axis_angle(rotation)

    # ------------------------------------------------------------------ the three steps
    def fit_directions(self, detection: Detection, iterations: int = 30) -> torch.Tensor:
        """(J, 3) rotations whose bone directions match the 3D landmarks (step 1; L-BFGS, converged in ~30 steps)."""
        target, weights = self.target_directions(detection)
        rotations = torch.zeros(self.body.num_joints, 3)
        free = torch.tensor(self.free)
        var = torch.zeros(len(self.free), 3)
        var[0] = self.initial_root(detection)
        var.requires_grad_(True)

        def objective() -> torch.Tensor:
            loss = self._direction_loss(rotations.index_put((free,), var), target, weights)
            return loss + self.prior_weight * var[1:].square().sum()

        _minimise(objective, [var], iterations)
        return rotations.index_put((free,), var.detach())

    def _direction_loss(self, rotations: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        directions = self._bone_directions(self.chain.positions(rotations))
        return (weights * (directions - target).square().sum(-1)).sum() / weights.sum()

    def camera_for(
        self, rotations: torch.Tensor, keypoints: Keypoints2D, focal_px: float
    ) -> tuple[PinholeCamera, torch.Tensor]:
        """The upright front camera whose translation best projects the posed joints onto the landmarks (step 2).

        Returns:
            The camera and the (K, 3) posed keypoint joints (model frame).
        """
        with torch.no_grad():
            positions = self.chain.positions(rotations)
        rows = [self.chain.index[int(j)] for j in keypoints.joints]
        joints = positions[rows]
        width, height = keypoints.width, keypoints.height
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        weights = keypoints.weights
        if int((weights > 0).sum()) < 2:
            weights = keypoints.weights.clamp_min(1e-3)
        t = solve_translation(joints @ self.camera_rotation.T, keypoints.uv, weights, focal_px, focal_px, cx, cy)
        if float(t[2]) <= 0.1:  # the body must lie in front of the camera
            extent = float((joints.max(0).values - joints.min(0).values).norm())
            t = torch.tensor([0.0, 0.0, max(1.0, focal_px * extent / max(width, height))], dtype=torch.float64)
        camera = PinholeCamera(
            focal_px, focal_px, cx, cy, width, height, self.camera_rotation.clone(), t.to(torch.float32)
        )
        return camera, joints

    def refine(
        self,
        rotations: torch.Tensor,
        camera: PinholeCamera,
        keypoints: Keypoints2D,
        detection: Detection,
        iterations: int = 30,
    ) -> tuple[torch.Tensor, PinholeCamera]:
        """Pose and camera translation refined on the 2D landmarks, 3D directions kept as a weak term (step 3)."""
        target, dir_weights = self.target_directions(detection)
        free = torch.tensor(self.free)
        var = rotations[free].clone().requires_grad_(True)
        translation = camera.translation.detach().clone().requires_grad_(True)
        rows = [self.chain.index[int(j)] for j in keypoints.joints]
        diagonal = float(np.hypot(keypoints.width, keypoints.height))
        kp_weights = keypoints.weights / keypoints.weights.sum().clamp_min(1e-9)

        def objective() -> torch.Tensor:
            full = rotations.index_put((free,), var)
            positions = self.chain.positions(full)
            uv, _ = camera.with_pose(camera.rotation, translation).project(positions[rows])
            squared = ((uv - keypoints.uv) / diagonal).square().sum(-1)
            loss = (kp_weights * geman_mcclure(squared, REFINE_SIGMA)).sum()
            loss = loss + DIRECTION_WEIGHT * self._direction_loss(full, target, dir_weights)
            return loss + DIRECTION_WEIGHT * self.prior_weight * var[1:].square().sum()

        _minimise(objective, [var, translation], iterations)
        return rotations.index_put((free,), var.detach()), camera.with_pose(camera.rotation, translation.detach())

    def reprojection_px(self, rotations: torch.Tensor, camera: PinholeCamera, keypoints: Keypoints2D) -> float:
        """Weighted mean pixel distance of the matched joints' projections to their landmarks."""
        with torch.no_grad():
            positions = self.chain.positions(rotations)
            uv, _ = camera.project(positions[[self.chain.index[int(j)] for j in keypoints.joints]])
        dist = (uv - keypoints.uv).norm(dim=-1)
        return float((keypoints.weights * dist).sum() / keypoints.weights.sum().clamp_min(1e-9))

    def initialise(self, detection: Detection, focal_px: float | None = None) -> PhotoInit:
        """Body and camera from one detection (at the image size the fit will run at).

        Args:
            detection: the landmarks. focal_px: focal length in pixels of that image; default
                :func:`~posecore.detect.camera_solve.default_focal_px`.
        """
        start = time.perf_counter()
        focal = focal_px if focal_px is not None else default_focal_px(detection.width, detection.height)
        keypoints = self.keypoints(detection)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny tensors: extra threads only add overhead (10x slower on a busy machine)
        try:
            rotations = self.fit_directions(detection)
            camera, _ = self.camera_for(rotations, keypoints, focal)
            rotations, camera = self.refine(rotations, camera, keypoints, detection)
        finally:
            torch.set_num_threads(threads)
        params = self.body.default_params()
        params.rotations = rotations.to(torch.float32)
        return PhotoInit(
            params=params,
            camera=camera,
            keypoints=keypoints,
            reprojection_px=self.reprojection_px(rotations, camera, keypoints),
            seconds=time.perf_counter() - start,
        )


def _minimise(objective, variables: list[torch.Tensor], iterations: int) -> None:
    """L-BFGS with a strong-Wolfe line search on ``objective()`` (a scalar of ``variables``), in place."""
    optimizer = torch.optim.LBFGS(
        variables,
        lr=1.0,
        max_iter=iterations,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = objective()
        loss.backward()
        return loss

    optimizer.step(closure)


_INITIALISERS: dict[int, LandmarkInitialiser] = {}


def landmark_initialiser(body: BodyModel) -> LandmarkInitialiser:
    """The :class:`LandmarkInitialiser` of ``body``, built once per body instance."""
    key = id(body)
    if key not in _INITIALISERS or _INITIALISERS[key].body is not body:
        _INITIALISERS[key] = LandmarkInitialiser(body)
    return _INITIALISERS[key]
