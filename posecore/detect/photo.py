"""From a photo file to a fit's start: detection, landmarks at the fit's size, body + camera, person mask.

:func:`photo_start` is the one call the CLI (``fit`` without ``--init``, ``detect``) and the Blender add-on use.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posecore.bodies.base import BodyModel
from posecore.detect.camera_solve import default_focal_px, focal_from_exif
from posecore.detect.initialise import PhotoInit, landmark_initialiser
from posecore.detect.landmarks import Detection, detect_landmarks, parse_person_box
from posecore.fitting.presets import Preset
from posecore.io.images import load_image


@dataclass
class PhotoStart:
    """Everything a fit needs from a photo alone.

    Attributes:
        detection: the landmarks and mask at the fit's image size.
        init: body parameters, camera (fit size) and the keypoints for the keypoint term.
        mask: (H, W) float32 person mask in [0, 1] at the fit's size.
        focal_source: "given", "exif" or "default" (see :func:`~posecore.detect.camera_solve.default_focal_px`).
        detect_seconds, init_seconds: wall times of detection and initialisation.
        detect_cpu_seconds, init_cpu_seconds: their CPU times (all threads of this process): on a busy machine
            the work done, where wall times include waiting for a core.
    """

    detection: Detection
    init: PhotoInit
    mask: torch.Tensor
    focal_source: str
    detect_seconds: float
    init_seconds: float
    detect_cpu_seconds: float = 0.0
    init_cpu_seconds: float = 0.0

    def bone_directions(self, body: BodyModel):
        """The detection's limb bone directions for ``body`` (:class:`posecore.fitting.directions.BoneDirections`)."""
        from posecore.fitting.directions import BoneDirections

        return BoneDirections.from_detection(body, self.detection.world, self.detection.visibility)

    def as_body_init(self, body: BodyModel):
        """The start as a :class:`posecore.io.init_files.BodyInit` of ``body`` (every joint named, absolute hand
        rotations, the camera with its intrinsics and image size), for the fit set-up that reads initialisations."""
        from posecore.io.init_files import BodyInit, CameraInit

        params, camera = self.init.params, self.init.camera
        rotations = params.rotations.detach().cpu().numpy().astype(np.float32)
        return BodyInit(
            joint_rotations=dict(zip(body.joint_names, rotations, strict=True)),
            translation=params.translation.detach().cpu().numpy().astype(np.float32),
            betas=params.shape.detach().cpu().numpy().astype(np.float32),
            expression=params.expression.detach().cpu().numpy().astype(np.float32)
            if params.expression.numel()
            else None,
            camera=CameraInit(
                rotation=camera.rotation.detach().cpu().numpy().astype(np.float32),
                translation=camera.translation.detach().cpu().numpy().astype(np.float32),
                focal_length=(camera.fx, camera.fy),
                principal_point=(camera.cx, camera.cy),
                image_size=(camera.width, camera.height),
            ),
            model_name=body.name,
            source="",
            format="posefit",
        )

    def summary(self) -> dict:
        """JSON-ready facts about the start (for result files and logs)."""
        cam = self.init.camera
        return {
            "image_size": [self.detection.width, self.detection.height],
            "person_box": list(self.detection.person_box) if self.detection.person_box else None,
            "found_by": self.detection.found_by,
            "focal_px": cam.fx,
            "focal_source": self.focal_source,
            "reprojection_px": round(self.init.reprojection_px, 3),
            "detect_seconds": round(self.detect_seconds, 4),
            "init_seconds": round(self.init_seconds, 4),
            "detect_cpu_seconds": round(self.detect_cpu_seconds, 4),
            "init_cpu_seconds": round(self.init_cpu_seconds, 4),
        }


def photo_fit_preset(preset: Preset) -> Preset:
    """The preset for a fit from a photo start: ``preset`` that also moves the body's translation.

    A photo start's camera is placed with a guessed focal length (unless EXIF gives one) and a default body size, so
    the body's placement along the view is approximate; letting the fit move it matters. Measured on three benchmark
    scenes (fast, 150 iterations, before the preset stopped early): RA-MPJPE 98.6 -> 54.1 mm instead of -> 115.8 mm,
    91.2 -> 76.3 instead of -> 102.5, 76.3 -> 66.3 instead of -> 84.3.
    """
    if "translation" in preset.optimise:
        return preset
    return preset.with_overrides(optimise=(*preset.optimise, "translation"))


def photo_rgb8(image: torch.Tensor) -> np.ndarray:
    """(H, W, 3) float image in [0, 1] -> (H, W, 3) uint8 (exact for images loaded from 8-bit files)."""
    return np.round(image.detach().clamp(0, 1).cpu().numpy() * 255.0).astype(np.uint8)


def photo_start(
    image_path: str | os.PathLike[str],
    body: BodyModel,
    size: tuple[int, int] | None = None,
    person: str | tuple[int, int, int, int] | None = None,
    focal_px: float | None = None,
    image: torch.Tensor | None = None,
) -> PhotoStart:
    """Detect the person in a photo and initialise ``body`` and its camera.

    Args:
        image_path: the photo (any format PIL reads; EXIF orientation applied).
        body: the body model to initialise (SMPL-X or Anny).
        size: (width, height) the fit runs at (the photo is detected at full resolution and the landmarks scaled);
            None: the photo's size.
        person: ``"x0,y0,x1,y1"`` or a tuple, pixels of the full photo: detect only there (photos of several people).
        focal_px: focal length in pixels at ``size``; None: from EXIF, else the stated default.
        image: the photo already decoded ((H, W, 3) float in [0, 1], as :func:`posecore.io.images.load_image`
            returns it), so it is not decoded twice; ``image_path`` still names it and gives its EXIF.

    Returns:
        The :class:`PhotoStart`.

    Raises:
        InputFileError: unreadable photo. ParameterError: bad ``person`` box, or nobody found
            (:class:`~posecore.detect.landmarks.NoPersonFoundError`). BackendUnavailableError: no mediapipe.
    """
    photo = load_image(image_path) if image is None else image
    height, width = photo.shape[:2]
    box = parse_person_box(",".join(str(v) for v in person) if isinstance(person, tuple) else person, width, height)
    start, cpu = time.perf_counter(), time.process_time()
    detection = detect_landmarks(photo_rgb8(photo), box, source=str(image_path))
    detect_seconds, detect_cpu = time.perf_counter() - start, time.process_time() - cpu
    fit_w, fit_h = size if size is not None else (width, height)
    detection = detection.scaled(fit_w, fit_h)
    focal_source = "given"
    if focal_px is None:
        focal_px = focal_from_exif(Path(image_path), fit_w, fit_h)
        focal_source = "exif" if focal_px is not None else "default"
        if focal_px is None:
            focal_px = default_focal_px(fit_w, fit_h)
    initialiser = landmark_initialiser(body)  # set up once per body (not counted as per-photo time)
    start, cpu = time.perf_counter(), time.process_time()
    init = initialiser.initialise(detection, focal_px)
    init_seconds, init_cpu = time.perf_counter() - start, time.process_time() - cpu
    mask = torch.from_numpy(detection.mask.copy())
    return PhotoStart(detection, init, mask, focal_source, detect_seconds, init_seconds, detect_cpu, init_cpu)
