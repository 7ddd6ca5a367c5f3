"""Synthetic detections for the photo-start tests: pose a body, project its joints, and call them landmarks."""

from __future__ import annotations

import numpy as np
import torch

from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.pinhole import PinholeCamera
from posecore.detect.joint_map import POINTS, model_joints
from posecore.detect.landmarks import NUM_LANDMARKS, Detection


def synthetic_detection(body: BodyModel, params: BodyParams, camera: PinholeCamera) -> Detection:
    """The :class:`Detection` a perfect detector would return for ``body`` posed by ``params`` seen by ``camera``.

    Each landmark that a single-landmark point of :data:`POINTS` names is placed at the model point (mean of its
    joints): 2D by projection, 3D in the camera's axes relative to the hip centre. Other landmarks are invisible.
    """
    with torch.no_grad():
        joints = body(params).joints
    points = np.zeros((NUM_LANDMARKS, 2), np.float32)
    world = np.zeros((NUM_LANDMARKS, 3), np.float32)
    visibility = np.zeros(NUM_LANDMARKS, np.float32)
    positions = {}
    for point in POINTS.values():
        if len(point.landmarks) == 1:
            positions[point.landmarks[0]] = joints[[j for n in point.joints for j in model_joints(body, n)]].mean(0)
    hips = 0.5 * (positions[23] + positions[24])
    for index, position in positions.items():
        uv, _ = camera.project(position[None])
        points[index] = uv[0].numpy()
        world[index] = (camera.rotation @ (position - hips)).numpy()
        visibility[index] = 1.0
    mask = np.zeros((camera.height, camera.width), np.float32)
    return Detection(points, visibility, world, mask, camera.width, camera.height)
