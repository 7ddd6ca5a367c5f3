"""The free body never loads NVIDIA Warp: PoseFit skins Anny itself (posecore.bodies.skinning), so the extension
zip leaves Warp's 149 MB Linux wheel out (scripts/package_extension.py NOT_BUNDLED)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_anny_loads_without_importing_warp_and_quietly() -> None:
    code = (
        "import sys; from posecore.bodies.anny_body import AnnyBody; AnnyBody(); "
        "print('warp' in sys.modules, 'anny.skinning.warp_skinning' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"], proc.stdout
    assert "Warp" not in proc.stderr and "Fallback" not in proc.stderr, proc.stderr


def test_anny_without_warp_installed_gives_the_same_body() -> None:
    """With Warp made unimportable, the body's vertices are bit-identical to those of this process."""
    import torch

    from posecore.bodies.anny_body import AnnyBody
    from posecore.demo import JUDO_POSE, pose_from_table

    code = """
import importlib.abc, sys, torch
class _NoWarp(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "warp":
            raise ImportError("no warp here")
sys.meta_path.insert(0, _NoWarp())
from posecore.bodies.anny_body import AnnyBody
from posecore.demo import JUDO_POSE, pose_from_table
body = AnnyBody(); params = body.default_params(); params.rotations = pose_from_table(body, JUDO_POSE)
torch.save(body(params).vertices, sys.argv[1])
"""
    out = pathlib.Path(__import__("tempfile").mkdtemp()) / "v.pt"
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    body = AnnyBody()
    params = body.default_params()
    params.rotations = pose_from_table(body, JUDO_POSE)
    with torch.no_grad():
        assert torch.equal(torch.load(out), body(params).vertices)
