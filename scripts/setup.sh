#!/usr/bin/env bash
# Install everything PoseFit needs on a fresh Debian machine with Python 3.11. Idempotent: a second run
# installs nothing and takes seconds.
#   - Debian packages: LLVM 19 for Mitsuba's CPU backend, and the X/GL libraries `import bpy` needs.
#   - Python packages from requirements.txt (torch pinned to the CPU build 2.13.0).
#   - A second environment for the Blender tests on the oldest supported Blender (bpy 4.2.23, numpy 1.26.4) in
#     ~/.cache/posefit/venv-bpy-4.2 (scripts/setup_blender_floor.sh; tests/test_blender_floor.py uses it).
#   - The free Anny body model's cache (about 800 MB in ~/.cache/posefit/anny), built once: minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

packages=(libllvm19)
while read -r line; do
  [[ -n "$line" && "$line" != \#* ]] && packages+=("$line")
done < .ci/apt-packages.txt
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
$PY -m pip install -q --disable-pip-version-check --root-user-action=ignore -r requirements.txt
PYTHON=$PY bash scripts/setup_blender_floor.sh

$PY -m posecore.bodies.anny_body --ensure-cache
