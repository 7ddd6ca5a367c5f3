"""The target of a fit: a photo's pixels (and alpha, when it has one), from a file or a decoded movie frame."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from posecore.io.images import _check_size, _resize, image_size, load_image, load_image_alpha


@dataclass
class TargetImage:
    """A target photo at its own resolution.

    Attributes:
        rgb: (H, W, 3) float32, sRGB-encoded values in [0, 1].
        source: where it came from (a file path, or ``movie.mp4#frame_000012``), for messages and results.
        path: the image file, or None for a decoded movie frame (it has no file to read an alpha channel from).
    """

    rgb: torch.Tensor
    source: str
    path: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    def resized(self, size: tuple[int, int]) -> torch.Tensor:
        """(height, width, 3) the image resized to ``size`` = (width, height) (antialiased bilinear)."""
        return _resize(self.rgb, _check_size(size))

    def alpha(self, size: tuple[int, int]) -> torch.Tensor | None:
        """(height, width) the file's alpha channel at ``size``, or None when it has none (or no file)."""
        if self.path is None:
            return None
        return load_image_alpha(self.path, size=size)


def read_target_image(path: str | os.PathLike[str]) -> TargetImage:
    """Load a target photo.

    Raises:
        InputFileError: the file is missing, a folder, not an image or too large (checked from its header before
            anything is decoded), or corrupt.
    """
    image_size(path)
    return TargetImage(rgb=load_image(path), source=str(path), path=str(path))
