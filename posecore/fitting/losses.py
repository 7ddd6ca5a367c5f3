"""The objective of Eq. 5 of the paper: an image term plus a squared-L2 pose prior."""

from __future__ import annotations

import torch


def image_l2(
    rendered: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "sum",
) -> torch.Tensor:
    """Squared L2 distance of images clamped to [0, 1] (the paper clamps before Eq. 1).

    Args:
        rendered: (H, W, 3) rendered image (any range; clamped here).
        target: (H, W, 3) target photo in [0, 1].
        weight: optional (H, W) per-pixel weight in [0, 1] (person mask, look, crop).
        reduction: "sum" (Eq. 1 as written) or "mean" (divided by the weighted pixel count times 3,
            which makes step sizes independent of the resolution).

    Returns:
        Scalar tensor.
    """
    diff = (rendered.clamp(0.0, 1.0) - target.clamp(0.0, 1.0)).square()
    if weight is not None:
        diff = diff * weight[..., None]
    total = diff.sum()
    if reduction == "sum":
        return total
    if reduction == "mean":
        count = weight.sum() * 3.0 if weight is not None else torch.tensor(float(diff.numel()))
        return total / count.clamp_min(1.0)
    raise ValueError(f"unknown reduction {reduction!r}")


def pose_prior(rotations: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Squared L2 norm of joint rotations, E(theta_b) = ||theta_b||^2 (or of theta_b - reference).

    Args:
        rotations: (K, 3) axis-angle, radians.
        reference: optional (K, 3): penalise the distance to it instead of to the rest pose.
    """
    delta = rotations if reference is None else rotations - reference
    return delta.square().sum()


def pyramid_l2(
    rendered: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    levels: int = 4,
) -> torch.Tensor:
    """Mean clamped L2 summed over an image pyramid (full resolution, then 2x, 4x, ... box-downsampled).

    The render itself stays exact; comparing blurred copies as well lets a limb that does not overlap its
    target yet feel where the target is (coarse levels), while the full-resolution level keeps the detail.

    Args:
        rendered, target: (H, W, 3). weight: optional (H, W). levels: number of levels (1 = plain mean L2).

    Returns:
        Scalar tensor: sum over levels of the weighted mean squared error.
    """
    return PyramidL2(target, levels)(rendered, weight)


Box = tuple[int, int, int, int]
"""(top, bottom, left, right) pixel rows and columns, bottom and right exclusive."""


def _level_count(height: int, width: int, levels: int) -> int:
    """How many of ``levels`` pyramid levels an image of this size has (a level stops below 4 pixels)."""
    count = 1
    while count < levels and min(height, width) >= 4:
        height, width, count = -(-height // 2), -(-width // 2), count + 1
    return count


def _widen(box: Box, block: int, height: int, width: int) -> Box:
    """``box`` grown to whole ``block`` x ``block`` tiles of the image (clipped to it)."""
    top, bottom, left, right = box
    return (top // block * block, min(height, -(-bottom // block) * block),
            left // block * block, min(width, -(-right // block) * block))  # fmt: skip


class PyramidL2:
    """:func:`pyramid_l2` against a fixed target, fast for a fit that calls it every iteration.

    - The target's pyramid is built once per weight map and reused while the weight stays the same (a fit's crop
      and person mask do).
    - Only the *support* of the weight (the box of its nonzero pixels, widened to whole blocks of the coarsest
      level) is ever compared: nothing outside it counts at any level. A selective fit's weight (the part's
      region) covers a small box, so its loss and its per-iteration pyramid cost that box only.
    - Given the render's *footprint* (a box outside which the render is exactly ``background``, with no
      gradient there), only the footprint, widened the same way, is compared pixel by pixel; what the rest of the
      image adds is a constant, read from summed-area tables of the background's own residual (from the second
      call with the same weight on). The value equals the whole-image loss up to float rounding and the gradient
      inside the box is the same; a body that fills a third of the frame costs a third of the loss's time.

    Args:
        target: (H, W, 3) image. levels: number of pyramid levels. background: (3,) the render's background
            colour (needed for footprints; without it every call compares the whole support).
    """

    def __init__(self, target: torch.Tensor, levels: int = 4, background: torch.Tensor | None = None) -> None:
        self.target = target.detach().clamp(0.0, 1.0).permute(2, 0, 1).contiguous()[None]  # (1, 3, H, W)
        self.levels = levels
        self.background = None if background is None else background.detach().to(self.target).clamp(0.0, 1.0)
        height, width = self.target.shape[-2:]
        self.block = 1 << (_level_count(height, width, levels) - 1)  # pixels per coarsest-level pixel
        self._weight: torch.Tensor | None = None
        self._pyramid: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._support: Box = (0, height, 0, width)  # the pyramid's box in the full image
        self._outside: list[torch.Tensor] = []  # see _outside_tables
        self._reused = False  # the current weight's pyramid served more than one call

    def _target_pyramid(self, weight: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """[(target level (1, 3, h, w), weight level (1, 1, h, w), normaliser ()), ...] over the weight's support
        box (:attr:`_support`) for ``weight`` (H, W)."""
        if self._weight is not None and self._weight.shape == weight.shape and torch.equal(self._weight, weight):
            self._reused = True
            return self._pyramid
        height, width = self.target.shape[-2:]
        w = weight.detach().to(self.target)
        rows, columns = torch.nonzero(w.ne(0).any(1)), torch.nonzero(w.ne(0).any(0))
        if rows.numel() == 0:  # nothing counts: one block, all weights zero
            support = (0, min(self.block, height), 0, min(self.block, width))
        else:
            box = (int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1)
            support = _widen(box, self.block, height, width)
        top, bottom, left, right = support
        t, w = self.target[..., top:bottom, left:right], w[None, None, top:bottom, left:right]
        pyramid = []
        for level in range(_level_count(height, width, self.levels)):
            if level > 0:
                # Downsample the weighted images and renormalise, so masked pixels do not darken the average.
                t_w = torch.nn.functional.avg_pool2d(t * w, 2, ceil_mode=True)
                w = torch.nn.functional.avg_pool2d(w, 2, ceil_mode=True)
                t = t_w / w.clamp_min(1e-6)
            pyramid.append((t, w, (w.sum() * 3.0).clamp_min(1.0)))
        self._weight, self._pyramid, self._support, self._outside = weight.detach().clone(), pyramid, support, []
        self._reused = False
        return pyramid

    def _whole_image_support(self) -> bool:
        return self._support == (0, self.target.shape[-2], 0, self.target.shape[-1])

    def _outside_tables(self) -> list[torch.Tensor]:
        """Per level, the (h + 1, w + 1) float64 summed-area table of the weighted residual of a render that is
        the background everywhere. Built for a weight the fit uses a second time (a selective fit's weight changes
        every iteration: building them each time would cost more than it saves)."""
        if not self._outside and self._reused and self.background is not None and self._whole_image_support():
            flat = self.background[None, :, None, None].expand_as(self.target)
            for residual in self._levels(flat, self._pyramid, 0, 0):
                table = torch.zeros(residual.shape[-2] + 1, residual.shape[-1] + 1, dtype=torch.float64)
                table[1:, 1:] = residual[0].sum(0).double().cumsum(0).cumsum(1)
                self._outside.append(table)
        return self._outside

    @staticmethod
    def _levels(r: torch.Tensor, pyramid, top: int, left: int) -> list[torch.Tensor]:
        """Weighted squared residuals (1, 3, h, w) per level of the clamped render ``r`` (1, 3, h0, w0) whose
        top-left pixel is (``top``, ``left``) of the pyramid's box (multiples of the coarsest level's block)."""
        residuals = []
        previous_w = None
        for level, (t, w, _normaliser) in enumerate(pyramid):
            if level > 0:
                r = torch.nn.functional.avg_pool2d(r * previous_w, 2, ceil_mode=True)
            y, x = top >> level, left >> level
            t, w = t[..., y : y + r.shape[-2], x : x + r.shape[-1]], w[..., y : y + r.shape[-2], x : x + r.shape[-1]]
            if level > 0:
                r = r / w.clamp_min(1e-6)
            residuals.append((r - t).square() * w)
            previous_w = w
        return residuals

    def footprint_box(self, footprint: Box | None, height: int, width: int) -> Box | None:
        """``footprint`` widened to whole blocks of the coarsest level (None: compare the whole support)."""
        if footprint is None or self.background is None or not self._outside_tables():
            return None
        top, bottom, left, right = footprint
        if bottom <= top or right <= left:
            return None
        return _widen(footprint, self.block, height, width)

    def __call__(
        self, rendered: torch.Tensor, weight: torch.Tensor | None = None, footprint: Box | None = None
    ) -> torch.Tensor:
        """Scalar loss of ``rendered`` (H, W, 3) with pixel weights ``weight`` (H, W) (all ones if None).

        ``footprint``: a box outside which ``rendered`` equals the background exactly and has no gradient (the
        rasteriser's :attr:`~posecore.render.scene.RenderOutput.footprint`); used only with a background."""
        height, width = rendered.shape[:2]
        if weight is None:
            weight = torch.ones(rendered.shape[:2], dtype=rendered.dtype, device=rendered.device)
        pyramid = self._target_pyramid(weight)
        box = self.footprint_box(footprint, height, width)
        top, bottom, left, right = box if box is not None else self._support
        r = rendered[top:bottom, left:right].clamp(0.0, 1.0).permute(2, 0, 1)[None]
        total = rendered.new_zeros(())
        for level, residual in enumerate(self._levels(r, pyramid, top - self._support[0], left - self._support[2])):
            term = residual.sum()
            if box is not None:  # the background's residual outside the box (the support is the whole image)
                table = self._outside[level]
                y0, x0 = top >> level, left >> level
                y1, x1 = y0 + residual.shape[-2], x0 + residual.shape[-1]
                inside = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
                term = term + (table[-1, -1] - inside).to(term)
            total = total + term / pyramid[level][2]
        return total


def asymmetric_silhouette(
    alpha: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, outside: float
) -> torch.Tensor:
    """Silhouette disagreement with a person mask that forgives the mask's extra width.

    ``mean(w * (outside * alpha * (1 - mask) + (1 - alpha) * mask)) / mean(w * mask)``: a body pixel where the mask
    says background costs ``outside`` times what a mask pixel the body leaves uncovered costs, since clothes and
    hair make a person's mask wider than the bare body; normalised by the mask's area.

    Args:
        alpha: (H, W) the render's coverage in [0, 1] (differentiable). mask: (H, W) person mask in [0, 1].
        weight: (H, W) pixels that count. outside: the cost ratio (>= 0).

    Returns:
        Scalar >= 0.
    """
    cost = outside * alpha * (1.0 - mask) + (1.0 - alpha) * mask
    return (weight * cost).sum() / (weight * mask).sum().clamp_min(1.0)
