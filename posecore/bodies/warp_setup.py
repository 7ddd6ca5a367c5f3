"""Start NVIDIA Warp (the Anny model's kernels) without its console noise on machines without CUDA.

Warp's native library prints "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver ..." with a
C-level ``fprintf(stderr)`` in every process on a machine without an NVIDIA driver, and a banner on stdout.
PoseFit runs Warp on the CPU only, so neither says anything useful. :func:`init_warp_quietly` initialises Warp
once at warning level (no banner) and filters that one warning out of what the native code writes to stderr;
every other line is passed on.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

CUDA_WARNING = "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver"


@contextlib.contextmanager
def _filtered_native_stderr(drop: str):
    """Capture file descriptor 2 (what C code writes) for the duration; re-emit it without lines starting
    with ``drop``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not line.startswith(drop)]  # fmt: skip
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def init_warp_quietly() -> None:
    """Import and initialise Warp (idempotent) without the CUDA-driver warning and the start-up banner."""
    try:
        import warp
    except ImportError:  # anny reports the missing dependency itself
        return
    if getattr(warp, "_posefit_initialised", False):
        return
    warp.config.quiet = True  # Warp before 1.10
    if hasattr(warp.config, "log_level"):  # Warp 1.10+: the banner is an INFO message
        warp.config.log_level = getattr(warp, "LOG_WARNING", 30)
    with _filtered_native_stderr(CUDA_WARNING):
        warp.init()
    warp._posefit_initialised = True
