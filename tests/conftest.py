"""Shared test set-up: one CPU thread (faster and steadier on a loaded 2-core machine), a temp home for
Blender, and session-wide body models (Anny's first build on a fresh machine takes minutes; its cache in
``~/.cache/posefit/anny`` is then reused)."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="posefit-blender-"))
# The Blender extension points posecore's cache at its own user folder unless one of these is set: keep the
# tests on the machine's shared cache (built once by scripts/setup.sh).
if not os.environ.get("ANNY_CACHE_DIR"):
    os.environ.setdefault("POSEFIT_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "posefit"))


@pytest.fixture(scope="session")
def anny():
    from posecore.bodies.anny_body import AnnyBody

    return AnnyBody()


@pytest.fixture(scope="session")
def synthetic_smplx_dir(tmp_path_factory):
    """A folder holding ``smplx/SMPLX_{NEUTRAL,MALE,FEMALE}.npz``: an SMPL-X-format model derived from Anny."""
    from posecore.bodies.synthetic_smplx import ensure_synthetic_smplx_folder

    return ensure_synthetic_smplx_folder(tmp_path_factory.mktemp("smplx_model"))
