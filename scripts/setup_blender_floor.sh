#!/usr/bin/env bash
# A second Python environment for the Blender tests on the oldest Blender the manifest supports
# (blender_version_min = 4.2.0): bpy 4.2.23 (the newest 4.2 LTS on PyPI) with numpy 1.26.4 pinned by hand
# (pip otherwise pulls numpy 2, which bpy 4.2 was not built for).
#
# The venv lives outside the repository, at $POSEFIT_BLENDER_FLOOR_VENV (default
# ~/.cache/posefit/venv-bpy-4.2). It sees the system site-packages, so torch==2.13.0, anny, smplx, pytest and
# the rest come from requirements.txt (installed by scripts/setup.sh before this runs); only bpy and numpy are
# its own, and torch is pinned again so pip can never pull another one. Idempotent: a second run checks the
# versions and installs nothing. tests/test_blender_floor.py runs the Blender tests with this venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${POSEFIT_BLENDER_FLOOR_VENV:-$HOME/.cache/posefit/venv-bpy-4.2}
PINS=(bpy==4.2.23 numpy==1.26.4 torch==2.13.0)

check() {
  BLENDER_USER_RESOURCES=$(mktemp -d) "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import bpy, numpy, torch
assert bpy.app.version_string.startswith("4.2.23"), bpy.app.version_string
assert numpy.__version__ == "1.26.4", numpy.__version__
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
PY
}

if [ -x "$VENV/bin/python" ] && check; then
  exit 0
fi
echo "setup: creating the Blender 4.2 test environment in $VENV (bpy 4.2.23, about 350 MB)..." >&2
$PY -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --root-user-action=ignore "${PINS[@]}"
check || { echo "setup: $VENV does not import bpy 4.2.23 with numpy 1.26.4 and torch 2.13.0" >&2; exit 1; }
