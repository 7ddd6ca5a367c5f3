"""The Blender tests again on the oldest Blender the manifest supports (``blender_version_min = 4.2.0``).

``scripts/setup.sh`` (run by CI, ``.ci/run``) creates a second environment with bpy 4.2.23 and numpy 1.26.4
(``scripts/setup_blender_floor.sh``, outside the repository). This test runs the Blender test files with that
environment's Python in a subprocess and fails if any of them fails there; it is skipped, saying so, where that
environment does not exist. Blender 5.0.1 runs the same files in this process (``bpy`` from requirements.txt).
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

pytestmark = pytest.mark.blender

REPO = pathlib.Path(__file__).resolve().parent.parent
FLOOR_VENV = pathlib.Path(
    os.environ.get("POSEFIT_BLENDER_FLOOR_VENV") or pathlib.Path.home() / ".cache" / "posefit" / "venv-bpy-4.2"
)
FLOOR_PYTHON = FLOOR_VENV / "bin" / "python"
BLENDER_TEST_FILES = ("tests/test_blender_addon.py", "tests/test_blender_batch.py", "tests/test_blender_panel.py")


@pytest.mark.slow
def test_blender_tests_pass_on_the_floor_version(tmp_path):
    if not FLOOR_PYTHON.exists():
        pytest.skip(f"no Blender 4.2 environment at {FLOOR_VENV}: run scripts/setup.sh (it creates one)")
    version = subprocess.run(
        [str(FLOOR_PYTHON), "-c", "import bpy; print(bpy.app.version_string)"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "probe")},
        check=False,
    )
    assert version.returncode == 0 and version.stdout.startswith("4.2."), version.stdout + version.stderr
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender")}
    proc = subprocess.run(
        [str(FLOOR_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *BLENDER_TEST_FILES],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=REPO,
        env=env,
        check=False,
    )
    tail = "\n".join(proc.stdout.splitlines()[-25:])
    print(f"bpy {version.stdout.strip()}:\n{tail}")
    assert proc.returncode == 0, tail + proc.stderr[-2000:]
    assert " passed" in tail and " skipped" not in tail.splitlines()[-1], tail
