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


class PyramidL2:
    """:func:`pyramid_l2` against a fixed target, fast for a fit that calls it every iteration.

    - The target's pyramid is built once per weight map and reused while the weight stays the same (a fit's crop
      and person mask do).
    - Given the render's *footprint* (a box outside which the render is exactly ``background``, with no
      gradient there), only the footprint, widened to whole blocks of the coarsest level, is compared pixel by
      pixel; what the rest of the image adds is a constant, read from summed-area tables of the background's own
      residual (from the second call with the same weight on). The value equals the whole-image loss up to float
      rounding and the gradient inside the box is the same; a body that fills a third of the frame costs a third
      of the loss's time.

    Args:
        target: (H, W, 3) image. levels: number of pyramid levels. background: (3,) the render's background
            colour (needed for footprints; without it every call compares the whole image).
    """

    def __init__(self, target: torch.Tensor, levels: int = 4, background: torch.Tensor | None = None) -> None:
        self.target = target.detach().clamp(0.0, 1.0).permute(2, 0, 1).contiguous()[None]  # (1, 3, H, W)
        self.levels = levels
        self.background = None if background is None else background.detach().to(self.target).clamp(0.0, 1.0)
        self._weight: torch.Tensor | None = None
        self._pyramid: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._outside: list[torch.Tensor] = []  # see _outside_tables
        self._reused = False  # the current weight's pyramid served more than one call

    def _target_pyramid(self, weight: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """[(target level (1, 3, h, w), weight level (1, 1, h, w), normaliser ()), ...] for ``weight`` (H, W)."""
        if self._weight is not None and self._weight.shape == weight.shape and torch.equal(self._weight, weight):
            self._reused = True
            return self._pyramid
        t, w = self.target, weight.detach().to(self.target)[None, None]
        pyramid = []
        for level in range(self.levels):
            if level > 0:
                if min(t.shape[-2:]) < 4:
                    break
                # Downsample the weighted images and renormalise, so masked pixels do not darken the average.
                t_w = torch.nn.functional.avg_pool2d(t * w, 2, ceil_mode=True)
                w = torch.nn.functional.avg_pool2d(w, 2, ceil_mode=True)
                t = t_w / w.clamp_min(1e-6)
            pyramid.append((t, w, (w.sum() * 3.0).clamp_min(1.0)))
        self._weight, self._pyramid, self._outside = weight.detach().clone(), pyramid, []
        self._reused = False
        return pyramid

    def _outside_tables(self) -> list[torch.Tensor]:
        """Per level, the (h + 1, w + 1) float64 summed-area table of the weighted residual of a render that is
        the background everywhere. Built for a weight the fit uses a second time (a selective fit's weight changes
        every iteration: building them each time would cost more than it saves)."""
        if not self._outside and self._reused and self.background is not None:
            flat = self.background[None, :, None, None].expand_as(self.target)
            for residual in self._levels(flat, self._pyramid, 0, 0):
                table = torch.zeros(residual.shape[-2] + 1, residual.shape[-1] + 1, dtype=torch.float64)
                table[1:, 1:] = residual[0].sum(0).double().cumsum(0).cumsum(1)
                self._outside.append(table)
        return self._outside

    @staticmethod
    def _levels(r: torch.Tensor, pyramid, top: int, left: int) -> list[torch.Tensor]:
        """Weighted squared residuals (1, 3, h, w) per level of the clamped render ``r`` (1, 3, h0, w0) whose
        top-left pixel is (``top``, ``left``) of the full image (multiples of the coarsest level's block)."""
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
        """``footprint`` widened to whole blocks of the coarsest level (None: compare the whole image)."""
        if footprint is None or self.background is None or not self._outside_tables():
            return None
        block = 1 << (len(self._pyramid) - 1)
        top, bottom, left, right = footprint
        if bottom <= top or right <= left:
            return None
        top, left = top // block * block, left // block * block
        bottom, right = min(height, -(-bottom // block) * block), min(width, -(-right // block) * block)
        return top, bottom, left, right

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
        top, bottom, left, right = box if box is not None else (0, height, 0, width)
        r = rendered[top:bottom, left:right].clamp(0.0, 1.0).permute(2, 0, 1)[None]
        total = rendered.new_zeros(())
        for level, residual in enumerate(self._levels(r, pyramid, top, left)):
            term = residual.sum()
            if box is not None:  # the background's residual outside the box
                table = self._outside[level]
                y0, x0 = top >> level, left >> level
                y1, x1 = y0 + residual.shape[-2], x0 + residual.shape[-1]
                inside = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
                term = term + (table[-1, -1] - inside).to(term)
            total = total + term / pyramid[level][2]
        return total
