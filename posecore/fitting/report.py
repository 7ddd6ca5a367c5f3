"""What a finished fit reports: metrics before/after (``summarise``) and the loss history (``history_of``)."""

from __future__ import annotations

import torch


def summarise(body, states, target, truth=None) -> dict:
    """Metrics before/after: image error (paper Table 1), and MPJPE / PA-MPJPE when the truth is known."""
    from posecore.metrics import image_error_percent, mpjpe_mm, pa_mpjpe_mm

    first, last = states[0], states[-1]
    metrics = {
        "image_error_percent": {
            "before": image_error_percent(first.render, target, first.weight),
            "after": image_error_percent(last.render, target, last.weight),
        },
        "loss": {"before": first.loss, "after": last.loss, "last_iterate": last.last_loss},
        "best_iteration": last.best_iteration,
        "iterations": last.iteration,
        "seconds": last.elapsed_s,
        "seconds_per_iteration": last.elapsed_s / max(1, last.iteration),
    }
    if truth is not None:
        joints = body.body_joint_indices
        with torch.no_grad():
            true_j = body(truth).joints[joints]
            before = body(first.params).joints[joints]
            after = body(last.params).joints[joints]
        metrics["mpjpe_mm"] = {"before": mpjpe_mm(before, true_j), "after": mpjpe_mm(after, true_j)}
        metrics["pa_mpjpe_mm"] = {"before": pa_mpjpe_mm(before, true_j), "after": pa_mpjpe_mm(after, true_j)}
    return metrics


def history_of(states) -> list[dict]:
    return [
        {
            "iteration": s.iteration,
            "loss": s.loss,
            "image_loss": s.image_loss,
            "prior_loss": s.prior_loss,
            "seconds": round(s.elapsed_s, 4),
        }
        for s in states
    ]
