"""Pictures for checking a detection: landmarks and mask on the photo, and the initialised body over it."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageDraw

from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.pinhole import PinholeCamera
from posecore.detect.initialise import PhotoInit
from posecore.detect.landmarks import SKELETON, Detection

LEFT_COLOUR = (40, 120, 255)
"""The person's left side (blue)."""
RIGHT_COLOUR = (255, 140, 0)
"""The person's right side (orange)."""
MIDDLE_COLOUR = (255, 255, 255)


def _side_colour(a: int, b: int) -> tuple[int, int, int]:
    odd_left = {1, 2, 3, 7, 9}  # face landmarks of the left side (MediaPipe numbering)
    sides = []
    for k in (a, b):
        if k >= 11:
            sides.append("left" if k % 2 == 1 else "right")
        elif k in odd_left:
            sides.append("left")
        elif k == 0:
            sides.append("middle")
        else:
            sides.append("right")
    if sides[0] == sides[1] == "left":
        return LEFT_COLOUR
    if sides[0] == sides[1] == "right":
        return RIGHT_COLOUR
    return MIDDLE_COLOUR


def landmarks_picture(photo: torch.Tensor, detection: Detection) -> Image.Image:
    """The photo with the person mask tinted green and the skeleton drawn (left blue, right orange).

    Args:
        photo: (H, W, 3) float image in [0, 1] of the detection's size.
    """
    rgb = photo.detach().clamp(0, 1).cpu().numpy()
    mask = detection.mask[..., None]
    tinted = rgb * (1 - 0.35 * mask) + 0.35 * mask * np.array([0.2, 0.9, 0.3])
    image = Image.fromarray(np.round(tinted * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    line = max(1, round(max(detection.width, detection.height) / 200))
    for a, b in SKELETON:
        alpha = min(detection.visibility[a], detection.visibility[b])
        colour = _side_colour(a, b) if alpha >= 0.5 else (150, 150, 150)
        draw.line([tuple(detection.points[a]), tuple(detection.points[b])], fill=colour, width=line)
    radius = 1.5 * line
    for k, (u, v) in enumerate(detection.points):
        if k in (1, 3, 4, 6, 9, 10, 17, 18, 19, 20, 21, 22):
            continue
        fill = (255, 255, 255) if detection.visibility[k] >= 0.5 else (150, 150, 150)
        draw.ellipse([u - radius, v - radius, u + radius, v + radius], fill=fill, outline=(0, 0, 0))
    return image


def body_picture(
    photo: torch.Tensor, body: BodyModel, params: BodyParams, camera: PinholeCamera, opacity: float = 0.6
) -> Image.Image:
    """The posed body, rendered with PoseFit's rasteriser through ``camera``, over the photo ((H, W, 3) in [0, 1],
    the camera's size)."""
    from posecore.fitting.loop import fit_lighting
    from posecore.render import RenderScene
    from posecore.render.raster import RasterRenderer

    with torch.no_grad():
        vertices = body(params).vertices
        scene = RenderScene(
            vertices=vertices,
            faces=body.faces,
            vertex_colors=torch.full((body.num_vertices, 3), 0.85),
            camera=camera,
            lighting=fit_lighting(),
            background=torch.zeros(3),
        )
        out = RasterRenderer().render(scene)
    alpha = out.alpha[..., None].clamp(0, 1) * opacity
    blended = photo.detach().cpu() * (1 - alpha) + out.image.clamp(0, 1) * alpha
    return Image.fromarray(np.round(blended.numpy() * 255).astype(np.uint8))


def overlay_png(
    photo: torch.Tensor, detection: Detection, body: BodyModel | None = None, init: PhotoInit | None = None
) -> bytes:
    """PNG bytes: the landmarks picture, and beside it the initialised body over the photo (when given)."""
    pictures = [landmarks_picture(photo, detection)]
    if body is not None and init is not None:
        pictures.append(body_picture(photo, body, init.params, init.camera))
    width = sum(p.width for p in pictures)
    canvas = Image.new("RGB", (width, pictures[0].height))
    x = 0
    for p in pictures:
        canvas.paste(p, (x, 0))
        x += p.width
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
