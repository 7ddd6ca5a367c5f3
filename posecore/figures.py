"""Figures: the paper's Figure 1 layout (target | first render | error | final render | error) and loss curves."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (tight layout); the figure is closed."""
    plt = _pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def error_map(rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(H, W) per-pixel squared error of [0, 1]-clamped images, summed over channels (0..3)."""
    return (rendered.clamp(0, 1) - target.clamp(0, 1)).square().sum(-1)


def fit_figure_png(
    target: torch.Tensor,
    first: torch.Tensor,
    final: torch.Tensor,
    losses: Sequence[float] | None = None,
    title: str = "",
    labels: tuple[str, str] = ("iteration 1", "final"),
) -> bytes:
    """The paper's Figure 1 row as PNG bytes, with an optional loss curve underneath.

    Args:
        target, first, final: (H, W, 3) images in [0, 1].
        losses: per-iteration loss values.
        title: a line above the panels (e.g. the metrics).
    """
    plt = _pyplot()
    rows = 2 if losses else 1
    fig = plt.figure(figsize=(12.5, 3.2 * rows + (0.3 if title else 0)), dpi=100)
    grid = fig.add_gridspec(rows, 5, height_ratios=[1.0, 0.7][:rows])
    err_first, err_final = error_map(first, target), error_map(final, target)
    vmax = float(max(err_first.max(), err_final.max(), 1e-6))
    panels = [
        ("a) target", target, None),
        (f"b) render, {labels[0]}", first, None),
        (f"c) error, {labels[0]}", err_first, "magma"),
        (f"d) render, {labels[1]}", final, None),
        (f"e) error, {labels[1]}", err_final, "magma"),
    ]
    for k, (name, img, cmap) in enumerate(panels):
        ax = fig.add_subplot(grid[0, k])
        data = img.detach().cpu().clamp(0, 1).numpy() if cmap is None else img.detach().cpu().numpy()
        ax.imshow(data, cmap=cmap, vmin=0 if cmap else None, vmax=vmax if cmap else None)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if losses:
        ax = fig.add_subplot(grid[1, :])
        ax.plot(range(len(losses)), losses, color="tab:blue")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (Eq. 5)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return figure_png(fig)


def save_figure(path: str | os.PathLike[str], png: bytes) -> None:
    """Write PNG bytes atomically."""
    from posecore.io.atomic import atomic_write_bytes

    atomic_write_bytes(path, png)
