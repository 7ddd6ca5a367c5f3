"""Landmark cues for a fit that already has its start: 2D keypoints (with their left/right labels) and the 3D
landmarks' limb directions (the depth cue), detected in the target image.

A fit from an init file, a warm start or a Blender scene needs no new body from the photo, only what tells the
hypothesis search (:mod:`posecore.fitting.hypotheses`) left from right and near from far.
"""

from __future__ import annotations

import torch

from posecore.bodies.base import BodyModel
from posecore.errors import BackendUnavailableError
from posecore.fitting.directions import BoneDirections
from posecore.fitting.keypoints import Keypoints2D

MIN_IMAGE_PX = 128
"""Images with a shorter side under this many pixels give no cues: MediaPipe's joints there are too coarse to tell
sides and depths apart (on a 96 px render they made a hypothesis search pick a flipped knee)."""


def detect_cues(
    image: torch.Tensor, body: BodyModel, person_box: tuple[int, int, int, int] | None = None, source: str = "photo"
) -> tuple[Keypoints2D, BoneDirections] | None:
    """Detect the person in ``image`` and return (keypoints at the image's size, bone directions), or None when
    nobody is found, the image's shorter side is under :data:`MIN_IMAGE_PX` pixels, or MediaPipe is not installed (cues
    are welcome, not required).

    Args:
        image: (H, W, 3) float in [0, 1], the fit's target. body: the body the keypoints index.
        person_box: (x0, y0, x1, y1) pixels of ``image`` to detect in. source: the image's name for messages.
    """
    from posecore.detect.initialise import landmark_initialiser
    from posecore.detect.landmarks import NoPersonFoundError, detect_landmarks
    from posecore.detect.photo import photo_rgb8

    try:
        detection = detect_landmarks(photo_rgb8(image), person_box, source, retries=False)
    except (NoPersonFoundError, BackendUnavailableError, ImportError):
        return None
    if min(image.shape[0], image.shape[1]) < MIN_IMAGE_PX or int((detection.visibility > 0.5).sum()) < 8:
        return None  # landmarks this coarse (or this few) cannot judge sides and depths
    keypoints = landmark_initialiser(body).keypoints(detection)
    return keypoints, BoneDirections.from_detection(body, detection.world, detection.visibility)
