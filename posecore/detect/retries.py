"""Second chances before "no person found": MediaPipe again on rotated, tiled and zoomed-out views of the photo.

MediaPipe's person detector sees the whole image shrunk to 224 px and expects an upright person. A person small in
a large photo shrinks to a few pixels, and one bent over (hands on the floor, head below the hips) or lying down
may not look like a person to it. :func:`search_views` tries, in order, until one finds somebody:

1. the photo turned by 90, 180 and 270 degrees;
2. the photo zoomed out (placed in a grey frame twice its size: people cut by the frame's edge);
3. overlapping tiles (halves, thirds and quarters of the photo's sides, each overlapping its neighbours by half):
   each tile reaches MediaPipe's detector enlarged (a zoomed-in copy), upright; then the half and third tiles
   turned by 90, 180 and 270 degrees.

A find is refined: MediaPipe runs once more on the found person's box grown by :data:`REFINE_MARGIN`, turned so
that the person stands upright (:func:`upright_turns`), so a person cut by a tile's edge is seen whole and seen
the way the landmark model was trained (the refined detection is kept when it finds somebody). A person the plain
detection finds upside down gets the same second look. Landmarks, the 3D
landmarks' axes and the mask are mapped back into the photo's pixels. Views that find nobody cost about 13 ms each
(measured here, 2-core VM); the full search tries 189 views of a 2048 px photo (about 2.5 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GREY = 128
REFINE_MARGIN = 0.5
"""Margin around a found person (fraction of its box's longer side on each side) for the refining detection."""
MIN_TILE = 96
"""Tiles smaller than this (pixels) are not tried."""
TILE_FRACTIONS_UPRIGHT = (1 / 2, 1 / 3, 1 / 4)
TILE_FRACTIONS_TURNED = (1 / 2, 1 / 3)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class View:
    """A transformed copy of a rectangle of the photo.

    Attributes:
        box: (x0, y0, x1, y1) the rectangle of the photo, integer pixel edges.
        turns: quarter turns counter-clockwise (``np.rot90``'s ``k``), 0-3.
        pad: zoom-out border on each side, as a fraction of the rectangle's size (0: none).
    """

    box: Box
    turns: int = 0
    pad: float = 0.0

    @property
    def name(self) -> str:
        x0, y0, x1, y1 = self.box
        parts = [f"box {x0},{y0},{x1},{y1}"]
        if self.turns:
            parts.append(f"turned {90 * self.turns} deg")
        if self.pad:
            parts.append("zoomed out")
        return ", ".join(parts)

    def _offset(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return round(self.pad * (x1 - x0)), round(self.pad * (y1 - y0))

    def image(self, photo: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 the view of ``photo`` (H, W, 3) uint8."""
        x0, y0, x1, y1 = self.box
        sub = photo[y0:y1, x0:x1]
        if self.pad:
            ox, oy = self._offset()
            canvas = np.full((sub.shape[0] + 2 * oy, sub.shape[1] + 2 * ox, 3), GREY, np.uint8)
            canvas[oy : oy + sub.shape[0], ox : ox + sub.shape[1]] = sub
            sub = canvas
        return np.ascontiguousarray(np.rot90(sub, self.turns))

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixels of the view -> (N, 2) pixels of the photo (OpenCV convention: pixel centres at integers)."""
        x0, y0, x1, y1 = self.box
        ox, oy = self._offset() if self.pad else (0, 0)
        w, h = x1 - x0 + 2 * ox, y1 - y0 + 2 * oy  # before turning
        u, v = points[:, 0], points[:, 1]
        k = self.turns % 4
        if k == 0:
            x, y = u, v
        elif k == 1:
            x, y = w - 1 - v, u
        elif k == 2:
            x, y = w - 1 - u, h - 1 - v
        else:
            x, y = v, h - 1 - u
        return np.stack([x - ox + x0, y - oy + y0], axis=1).astype(np.float32)

    def world_to_photo(self, world: np.ndarray) -> np.ndarray:
        """(N, 3) 3D landmarks in the view's camera axes -> the photo's (the turn undone about the optical axis)."""
        x, y, z = world[:, 0], world[:, 1], world[:, 2]
        k = self.turns % 4
        xy = {0: (x, y), 1: (-y, x), 2: (-x, -y), 3: (y, -x)}[k]
        return np.stack([xy[0], xy[1], z], axis=1).astype(np.float32)

    def mask_to_photo(self, mask: np.ndarray, width: int, height: int) -> np.ndarray:
        """(h, w) mask of the view -> (height, width) mask of the photo (zero outside the view)."""
        x0, y0, x1, y1 = self.box
        upright = np.rot90(mask, -self.turns)
        if self.pad:
            ox, oy = self._offset()
            upright = upright[oy : oy + (y1 - y0), ox : ox + (x1 - x0)]
        out = np.zeros((height, width), np.float32)
        out[y0:y1, x0:x1] = upright
        return out


def tiles(box: Box, fraction: float) -> list[Box]:
    """Overlapping tiles of ``box``: sides ``fraction`` of the box's, stride half a tile (row by row)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    tw, th = max(1, round(w * fraction)), max(1, round(h * fraction))
    if min(tw, th) < MIN_TILE:
        return []
    n = round(2 / fraction) - 1
    xs = [x0 + round(i * (w - tw) / (n - 1)) for i in range(n)] if n > 1 else [x0]
    ys = [y0 + round(i * (h - th) / (n - 1)) for i in range(n)] if n > 1 else [y0]
    return [(x, y, x + tw, y + th) for y in ys for x in xs]


def retry_views(box: Box) -> list[View]:
    """The views tried after the plain detection in ``box`` found nobody, in order (see the module docstring)."""
    views = [View(box, turns) for turns in (1, 2, 3)]
    views.append(View(box, 0, pad=0.5))
    for fraction in TILE_FRACTIONS_UPRIGHT:
        views += [View(tile) for tile in tiles(box, fraction)]
    for fraction in TILE_FRACTIONS_TURNED:
        views += [View(tile, turns) for tile in tiles(box, fraction) for turns in (1, 2, 3)]
    return views


def upright_turns(points: np.ndarray, visibility: np.ndarray) -> int:
    """The quarter turns (``np.rot90``'s ``k``) that stand the found person most nearly upright.

    Args:
        points: (33, 2) MediaPipe landmarks in photo pixels. visibility: (33,) their visibility.

    The person's up is hips -> shoulders when both hips are visible (> 0.5), else shoulders -> nose.
    """
    shoulders = 0.5 * (points[11] + points[12])
    if min(visibility[23], visibility[24]) > 0.5:
        up = shoulders - 0.5 * (points[23] + points[24])
    else:
        up = points[0] - shoulders
    # np.rot90 turns the photo counter-clockwise: a photo direction (x, y) becomes (y, -x) per turn.
    best, best_v = 0, np.inf
    direction = up.astype(np.float64)
    for k in range(4):
        if direction[1] < best_v:
            best, best_v = k, direction[1]
        direction = np.array([direction[1], -direction[0]])
    return best


def refine_box(points: np.ndarray, width: int, height: int, margin: float = REFINE_MARGIN) -> Box | None:
    """The box around (33, 2) photo landmarks grown by ``margin`` of its longer side, clipped to the photo."""
    finite = points[np.isfinite(points).all(axis=1)]
    if len(finite) == 0:
        return None
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    pad = margin * float(max(hi - lo))
    x0, y0 = max(0, math.floor(lo[0] - pad)), max(0, math.floor(lo[1] - pad))
    x1, y1 = min(width, math.ceil(hi[0] + pad + 1)), min(height, math.ceil(hi[1] + pad + 1))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return x0, y0, x1, y1
