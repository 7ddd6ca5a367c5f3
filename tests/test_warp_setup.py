"""Warp starts without the CUDA-driver warning and banner, and other native stderr output still shows."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_native_stderr_filter_drops_only_the_cuda_warning() -> None:
    code = """
import os, sys
from posecore.bodies.warp_setup import CUDA_WARNING, _filtered_native_stderr
with _filtered_native_stderr(CUDA_WARNING):
    os.write(2, (CUDA_WARNING + ". GPU execution will not be available.\\n").encode())
    os.write(2, b"a real native error\\n")
print("after", file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["a real native error", "after"]


def test_anny_loads_without_warp_noise() -> None:
    code = "from posecore.bodies.anny_body import AnnyBody; AnnyBody(); print('loaded')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Warp CUDA warning" not in proc.stderr and "initialized" not in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "loaded"
