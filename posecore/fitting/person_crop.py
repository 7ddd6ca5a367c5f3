"""Fit where the person is: a window of the photo around the person, resized to the working resolution.

A person small in a large photo is fitted on a crop: the window around the person (the person mask, the keypoints
and the start body's projection, grown by :data:`CROP_MARGIN` of the box's longer side on each side) is cut from
the photo at its own resolution and resized so its longer side is the working size (``--size``, default
:data:`DEFAULT_CROP_SIZE`). The fit's camera is the photo's camera with its principal point moved into the window
and its focal length scaled (:meth:`PinholeCamera.cropped`); its pose is the photo camera's. The body's pose and
translation do not depend on the intrinsics, so a result maps back to the photo by giving the photo's camera the
fitted (orbited) camera pose: :meth:`PersonCrop.frame_camera`.

The rule (``--person-crop auto``, the default): crop when the window covers less than :data:`AUTO_AREA_FRACTION` of
the frame's area, or, without ``--size``, when the photo's longer side exceeds :data:`LARGE_FRAME_FACTOR` times the
working size. ``on`` always crops, ``off`` never does.

Pixel conventions: OpenCV (pixel centres at integers); windows are given by their pixel *edges* (x0, y0, x1, y1),
pixel i spanning [i, i + 1), x1 and y1 exclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional

from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import ParameterError
from posecore.fitting.keypoints import Keypoints2D

CROP_MODES = ("auto", "on", "off")
CROP_MARGIN = 0.2
"""Margin added on each side of the person box, as a fraction of the box's longer side."""
AUTO_AREA_FRACTION = 0.5
"""``auto`` crops when the window covers less than this fraction of the frame's area."""
DEFAULT_CROP_SIZE = 256
"""Longer side of the crop in pixels when ``--size`` is not given."""
LARGE_FRAME_FACTOR = 2.0
"""Without ``--size``, ``auto`` also crops photos whose longer side exceeds this many times the working size."""
MASK_THRESHOLD = 0.5

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PersonCrop:
    """A window of a photo and the size it is fitted at.

    Attributes:
        window: (x0, y0, x1, y1) integer pixel edges of the photo at its own resolution (``native_size``).
        native_size: (width, height) of the photo as decoded.
        frame_size: (width, height) of the frame the fit would run at without the crop (``fit_size``): the size of
            the camera saved with the result.
        size: (width, height) the window is resized to (the fit's resolution).
    """

    window: tuple[int, int, int, int]
    native_size: tuple[int, int]
    frame_size: tuple[int, int]
    size: tuple[int, int]

    @property
    def frame_window(self) -> Box:
        """The window in pixel edges of the frame (``frame_size``), floats."""
        kx, ky = self.frame_size[0] / self.native_size[0], self.frame_size[1] / self.native_size[1]
        x0, y0, x1, y1 = self.window
        return x0 * kx, y0 * ky, x1 * kx, y1 * ky

    def camera(self, frame_camera: PinholeCamera) -> PinholeCamera:
        """The fit's camera: ``frame_camera`` (at ``frame_size``) with its principal point and focal length moved
        to the window resized to ``size``."""
        return frame_camera.cropped(self.frame_window, *self.size)

    def frame_camera(self, fit_camera: PinholeCamera, frame_camera: PinholeCamera) -> PinholeCamera:
        """The result's camera in the frame: ``frame_camera``'s intrinsics with ``fit_camera``'s pose (the fit's
        orbit applied)."""
        return frame_camera.with_pose(fit_camera.rotation, fit_camera.translation)

    def _affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        x0, y0, x1, y1 = self.frame_window
        scale = torch.tensor([self.size[0] / (x1 - x0), self.size[1] / (y1 - y0)])
        return scale, torch.tensor([x0, y0])

    def to_crop(self, uv: torch.Tensor) -> torch.Tensor:
        """(N, 2) frame pixels -> (N, 2) crop pixels."""
        scale, origin = self._affine()
        return (uv + 0.5 - origin) * scale - 0.5

    def to_frame(self, uv: torch.Tensor) -> torch.Tensor:
        """(N, 2) crop pixels -> (N, 2) frame pixels."""
        scale, origin = self._affine()
        return (uv + 0.5) / scale + origin - 0.5

    def image(self, native: torch.Tensor) -> torch.Tensor:
        """(H, W, C) the photo at ``native_size`` -> (h, w, C) the window at ``size``."""
        return resample_window(native, tuple(float(v) for v in self.window), self.size)

    def frame_map(self, frame_image: torch.Tensor) -> torch.Tensor:
        """(Hf, Wf) or (Hf, Wf, C) a map at ``frame_size`` (a person mask) -> the window at ``size``."""
        flat = frame_image.ndim == 2
        out = resample_window(frame_image[..., None] if flat else frame_image, self.frame_window, self.size)
        return out[..., 0] if flat else out

    def keypoints(self, keypoints: Keypoints2D) -> Keypoints2D:
        """Keypoints of the frame (any size: resized to ``frame_size`` first) -> keypoints of the crop."""
        kp = keypoints.resized(*self.frame_size)
        return Keypoints2D(kp.joints, self.to_crop(kp.uv).float(), kp.weights, *self.size)

    def rect(self, rect: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A ``--crop`` rectangle (x0, y0, x1, y1 pixel edges of the frame) -> the same rectangle in the crop,
        rounded to whole pixels and clipped to it.

        Raises:
            ParameterError: the rectangle lies outside the window.
        """
        wx0, wy0, wx1, wy1 = self.frame_window
        sx, sy = self.size[0] / (wx1 - wx0), self.size[1] / (wy1 - wy0)
        x0, x1 = (min(self.size[0], max(0, round((v - wx0) * sx))) for v in (rect[0], rect[2]))
        y0, y1 = (min(self.size[1], max(0, round((v - wy0) * sy))) for v in (rect[1], rect[3]))
        if not (x0 < x1 and y0 < y1):
            raise ParameterError(f"--crop {rect} lies outside the person crop {self.window}: use --person-crop off")
        return x0, y0, x1, y1

    def as_json(self) -> dict:
        """JSON-ready description for ``result.json``."""
        return {"window": list(self.window), "photo_size": list(self.native_size), "fit_size": list(self.size)}


def resample_window(image: torch.Tensor, window: Box, size: tuple[int, int]) -> torch.Tensor:
    """Cut a window out of an image and resize it (antialiased when shrinking).

    Args:
        image: (H, W, C) float image.
        window: (x0, y0, x1, y1) pixel edges of ``image`` (floats; parts outside the image repeat its border).
        size: (width, height) of the result.

    Returns:
        (height, width, C): output pixel j samples the image at edge coordinate ``x0 + (j + 0.5) (x1 - x0) / width``.
    """
    x0, y0, x1, y1 = window
    width, height = size
    if not (x1 > x0 and y1 > y0) or width < 1 or height < 1:
        raise ParameterError(f"cannot resample the window {window} to {size}")
    h_img, w_img = image.shape[:2]
    ix0, iy0 = min(max(0, math.floor(x0)), w_img - 1), min(max(0, math.floor(y0)), h_img - 1)
    ix1, iy1 = max(min(w_img, math.ceil(x1)), ix0 + 1), max(min(h_img, math.ceil(y1)), iy0 + 1)
    region = image[iy0:iy1, ix0:ix1].permute(2, 0, 1)[None].float()
    fx, fy = width / (x1 - x0), height / (y1 - y0)  # output pixels per image pixel
    rw, rh = ix1 - ix0, iy1 - iy0
    kx = ky = 1.0
    if fx < 1.0 or fy < 1.0:  # shrink the region first, with antialiasing, so no detail aliases
        nw, nh = max(1, round(rw * min(fx, 1.0))), max(1, round(rh * min(fy, 1.0)))
        region = functional.interpolate(region, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        kx, ky = nw / rw, nh / rh
    rw2, rh2 = region.shape[3], region.shape[2]
    xs = ((x0 + (torch.arange(width, dtype=torch.float64) + 0.5) / fx) - ix0) * kx  # region pixel edges
    ys = ((y0 + (torch.arange(height, dtype=torch.float64) + 0.5) / fy) - iy0) * ky
    gx, gy = 2.0 * xs / rw2 - 1.0, 2.0 * ys / rh2 - 1.0
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None].float()
    out = functional.grid_sample(region, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0).contiguous().to(image.dtype)


def union_box(boxes: list[Box | None]) -> Box | None:
    """The smallest box holding all given boxes (None ones skipped), or None."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def mask_box(mask: torch.Tensor | None) -> Box | None:
    """Pixel-edge box of (H, W) ``mask`` > 0.5, or None when empty."""
    if mask is None:
        return None
    on = mask > MASK_THRESHOLD
    rows, cols = on.any(1).nonzero(), on.any(0).nonzero()
    if rows.numel() == 0:
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1]) + 1.0, float(rows[-1]) + 1.0


def points_box(uv: torch.Tensor, width: int, height: int) -> Box | None:
    """Pixel-edge box of (N, 2) pixel points clipped to the ``width`` x ``height`` frame, or None."""
    uv = uv[torch.isfinite(uv).all(dim=1)]
    if uv.numel() == 0:
        return None
    lo, hi = uv.min(0).values + 0.5, uv.max(0).values + 0.5
    x0, y0 = max(0.0, float(lo[0])), max(0.0, float(lo[1]))
    x1, y1 = min(float(width), float(hi[0])), min(float(height), float(hi[1]))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def plan_crop(
    box: Box | None,
    frame_size: tuple[int, int],
    native_size: tuple[int, int],
    mode: str = "auto",
    working_size: int | None = None,
    margin: float = CROP_MARGIN,
) -> PersonCrop | None:
    """Choose the crop for a person box, or None to fit the whole frame.

    Args:
        box: (x0, y0, x1, y1) pixel edges of the person in the frame (``frame_size``); None: unknown.
        frame_size: (width, height) the fit would run at without a crop.
        native_size: (width, height) of the decoded photo.
        mode: ``auto``, ``on`` or ``off`` (see the module docstring for ``auto``'s rule).
        working_size: ``--size`` (the crop's longer side), or None for :data:`DEFAULT_CROP_SIZE`.
        margin: added on each side, fraction of the box's longer side.
    """
    if mode not in CROP_MODES:
        raise ParameterError(f"--person-crop must be one of {', '.join(CROP_MODES)}, got {mode!r}")
    if mode == "off" or box is None:
        return None
    fw, fh = frame_size
    nw, nh = native_size
    kx, ky = nw / fw, nh / fh
    x0, y0, x1, y1 = box[0] * kx, box[1] * ky, box[2] * kx, box[3] * ky  # native pixels
    pad = margin * max(x1 - x0, y1 - y0)
    wx0, wy0 = max(0, math.floor(x0 - pad)), max(0, math.floor(y0 - pad))
    wx1, wy1 = min(nw, math.ceil(x1 + pad)), min(nh, math.ceil(y1 + pad))
    if wx1 - wx0 < 2 or wy1 - wy0 < 2:
        return None
    longer = working_size or DEFAULT_CROP_SIZE
    if mode == "auto":
        small = (wx1 - wx0) * (wy1 - wy0) < AUTO_AREA_FRACTION * nw * nh
        large = working_size is None and max(nw, nh) > LARGE_FRAME_FACTOR * longer
        if not (small or large):
            return None
    scale = longer / max(wx1 - wx0, wy1 - wy0)
    size = (max(1, round((wx1 - wx0) * scale)), max(1, round((wy1 - wy0) * scale)))
    return PersonCrop((wx0, wy0, wx1, wy1), (nw, nh), (fw, fh), size)
