"""``python -m posecore.bench smoothing``: MPJPE and acceleration error with and without temporal smoothing
(see :mod:`posecore.bench.batch`)."""

from posecore.bench.batch import smoothing_main as main

__all__ = ["main"]
