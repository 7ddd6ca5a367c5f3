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


class PyramidL2:
    """:func:`pyramid_l2` against a fixed target: the target's pyramid is built once per weight map and reused
    while the weight stays the same (a fit's crop and person mask do), which halves the loss's cost.

    Args:
        target: (H, W, 3) image. levels: number of pyramid levels.
    """

    def __init__(self, target: torch.Tensor, levels: int = 4) -> None:
        self.target = target.detach().clamp(0.0, 1.0).permute(2, 0, 1).contiguous()[None]  # (1, 3, H, W)
        self.levels = levels
        self._weight: torch.Tensor | None = None
        self._pyramid: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _target_pyramid(self, weight: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """[(target level (1, 3, h, w), weight level (1, 1, h, w), normaliser ()), ...] for ``weight`` (H, W)."""
        if self._weight is not None and self._weight.shape == weight.shape and torch.equal(self._weight, weight):
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
        self._weight, self._pyramid = weight.detach().clone(), pyramid
        return pyramid

    def __call__(self, rendered: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar loss of ``rendered`` (H, W, 3) with pixel weights ``weight`` (H, W) (all ones if None)."""
        if weight is None:
            weight = torch.ones(rendered.shape[:2], dtype=rendered.dtype, device=rendered.device)
        pyramid = self._target_pyramid(weight)
        r = rendered.clamp(0.0, 1.0).permute(2, 0, 1).contiguous()[None]
        total = rendered.new_zeros(())
        for level, (t, w, normaliser) in enumerate(pyramid):
            if level > 0:
                r = torch.nn.functional.avg_pool2d(r * pyramid[level - 1][1], 2, ceil_mode=True) / w.clamp_min(1e-6)
            total = total + ((r - t).square() * w).sum() / normaliser
        return total
