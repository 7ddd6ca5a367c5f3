"""The packaged extension: ``scripts/package_extension.py`` builds a linux-x64 zip that Blender installs and runs.

The packaging script runs on a copy of the checkout in a temp dir (downloads land in the copy's ``wheels/``), reusing
wheels already in the repository's ``wheels/`` (and leaving newly downloaded ones there for next time). Building
must change no file of that copy, and a second build must give a zip with the same entries and bytes.
The zip is then installed with ``bpy.ops.extensions.package_install_files`` into a fresh Blender user folder,
and a second, fresh process (as Blender would start next time) enables it and imports torch, anny, smplx ...
from the wheels Blender extracted, and posecore from the installed extension. Each Blender step runs in its
own subprocess so nothing the test session already imported (torch above all) hides a missing wheel.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

try:
    import bpy  # noqa: F401  (only to know whether Blender-as-a-module works here)
except Exception as exc:  # ImportError, or missing system libraries (OSError)
    pytest.skip(f"bpy does not import: {exc}", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.blender]

REPO = pathlib.Path(__file__).resolve().parent.parent
MODULE = "bl_ext.user_default.posefit"
#: Imported inside Blender after enabling: each must come from the bundled wheels (numpy from Blender itself).
BUNDLED_MODULES = ("torch", "anny", "smplx", "PIL", "tqdm", "trimesh", "roma", "mediapipe", "cv2", "matplotlib")
_IGNORE = shutil.ignore_patterns(".git", "tests", "docs", "dist", "wheels", "out", "build", ".*", "__pycache__")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, pathlib.Path]:
    """Run the packaging script for linux-x64 on a temp copy of the checkout; returns the source and the zip."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=_IGNORE)
    cache = REPO / "wheels"
    before = _tree_digest(source)
    result = _package(source, root / "dist", cache)
    assert result.returncode == 0, result.stdout + result.stderr
    zips = sorted((root / "dist").glob("*.zip"))
    assert [z.name for z in zips] == ["posefit-0.1.0-linux_x64.zip"], result.stdout
    cache.mkdir(exist_ok=True)
    for wheel in (source / "wheels").glob("*.whl"):  # keep new downloads for the next run
        if not (cache / wheel.name).exists():
            shutil.copy2(wheel, cache / wheel.name)
    return {"source": source, "zip": zips[0], "root": root, "before": before, "after": _tree_digest(source)}


def _package(source: pathlib.Path, out: pathlib.Path, cache: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(source / "scripts" / "package_extension.py"), "--platform", "linux-x64",
         "--out", str(out), "--source-dir", str(source), "--wheel-cache", str(cache)],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip


def _tree_digest(root: pathlib.Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` except the wheel cache (``wheels/``, ignored by git)."""
    import hashlib

    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).parts[0] != "wheels" and "__pycache__" not in path.parts
    }


def _zip_content(path: pathlib.Path) -> list[tuple]:
    """Every entry of a zip, in order: name, bytes, compression, attributes (not its timestamp)."""
    with zipfile.ZipFile(path) as archive:
        return [(i.filename, archive.read(i), i.compress_type, i.external_attr) for i in archive.infolist()]


def test_building_changes_no_source_file_and_uses_the_lock_list(built):
    assert built["after"] == built["before"]  # the manifest included: the wheels go into a staging copy only
    sys.path.insert(0, str(REPO / "scripts"))
    from package_extension import read_lock

    lock = read_lock(REPO / "scripts" / "extension_wheels.lock")["linux-x64"]
    with zipfile.ZipFile(built["zip"]) as archive:
        import tomllib

        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    assert [w.removeprefix("./wheels/") for w in manifest["wheels"]] == sorted(lock, key=str.lower)


def test_zip_built_twice_is_identical_apart_from_timestamps(built):
    again = _package(built["source"], built["root"] / "dist-again", built["source"] / "wheels")
    assert again.returncode == 0, again.stdout + again.stderr
    second = sorted((built["root"] / "dist-again").glob("*.zip"))
    assert len(second) == 1 and second[0].name == built["zip"].name
    first_entries, second_entries = _zip_content(built["zip"]), _zip_content(second[0])
    assert [e[0] for e in first_entries] == [e[0] for e in second_entries]
    assert first_entries == second_entries
    assert not list((built["root"] / "dist-again").glob(".staging-*"))  # the staging copy is gone


def _blender(script: str, user_resources: pathlib.Path, *args: str) -> dict:
    """Run ``script`` in a fresh Python with ``bpy`` and its own Blender user folder; returns its JSON line."""
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user_resources)}
    env.pop("PYTHONPATH", None)
    # Run outside the checkout: ``python -c`` puts the working directory on sys.path, where posecore would be.
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True, text=True, timeout=600, env=env, cwd=user_resources,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_zip_bundles_cpu_torch_and_every_listed_wheel(built):
    with zipfile.ZipFile(built["zip"]) as archive:
        names = set(archive.namelist())
        manifest = archive.read("blender_manifest.toml").decode()
    import tomllib

    data = tomllib.loads(manifest)
    assert data["platforms"] == ["linux-x64"]
    wheels = [w.removeprefix("./") for w in data["wheels"]]
    assert wheels and all(w in names for w in wheels)
    assert any(w.startswith("wheels/torch-2.13.0+cpu-cp311") for w in wheels)
    assert any(w.startswith("wheels/anny-0.6.2-") for w in wheels)
    assert any(w.startswith("wheels/smplx-0.1.28-") for w in wheels)
    assert not any(w.startswith(("wheels/numpy-", "wheels/nvidia")) for w in wheels)  # Blender ships numpy
    # Detect Pose: mediapipe with the libraries its pose API imports (OpenCV's headless build standing in for the
    # contrib one it asks for); jax, jaxlib, sounddevice (never imported by the pose API), Warp (never imported:
    # PoseFit skins Anny itself) and PyAV (movies decode through OpenCV's FFmpeg) are left out
    assert any(w.startswith("wheels/mediapipe-0.10.14-") for w in wheels)
    assert any(w.startswith("wheels/opencv_python_headless-4.11.") for w in wheels)
    left_out = ("jax-", "jaxlib-", "sounddevice-", "warp_lang-", "av-", "opencv_contrib_python-")
    assert not any(w.startswith(tuple(f"wheels/{n}" for n in left_out)) for w in wheels)
    assert "posecore/__init__.py" in names and "addon/__init__.py" in names and "__init__.py" in names
    assert not any(n.startswith(("tests/", "docs/", "scripts/", ".git")) for n in names)


def test_zip_installs_enables_and_imports_its_wheels(built):
    user = built["root"] / "blender_user"
    user.mkdir()
    installed = _blender(
        """
        import json, sys
        import bpy
        result = bpy.ops.extensions.package_install_files(
            filepath=sys.argv[1], repo="user_default", enable_on_install=True
        )
        print("RESULT " + json.dumps({
            "result": sorted(result),
            "enabled": "bl_ext.user_default.posefit" in bpy.context.preferences.addons,
            "operators": [hasattr(bpy.ops.posefit, op) for op in ("import_body", "fit")],
        }))
        """,
        user,
        str(built["zip"]),
    )
    assert installed == {"result": ["FINISHED"], "enabled": True, "operators": [True, True]}
    # A fresh process, as Blender starting again: enable the installed extension and use its wheels.
    used = _blender(
        f"""
        import importlib, json
        import bpy, addon_utils

        def _raise(exc):
            raise exc

        addon_utils.enable({MODULE!r}, default_set=True, handle_error=_raise)
        import posecore, torch
        files = {{name: importlib.import_module(name).__file__ for name in {BUNDLED_MODULES!r}}}
        from mediapipe.python.solutions import pose  # what Detect Pose uses, from the bundled wheels
        with pose.Pose(static_image_mode=True, model_complexity=1) as detector:
            import numpy as np
            detector.process(np.zeros((64, 64, 3), np.uint8))  # its bundled models load offline
        print("RESULT " + json.dumps({{
            "operators": [hasattr(bpy.ops.posefit, op) for op in ("import_body", "fit")],
            "panel": "POSEFIT_PT_main" in dir(bpy.types),
            "posecore": posecore.__file__,
            "files": files,
            "torch": torch.__version__,
            "sum": float(torch.ones(3, requires_grad=True).sum()),
        }}))
        """,
        user,
    )
    assert used["operators"] == [True, True] and used["panel"]
    wheels_site = (user / "extensions" / ".local" / "lib").resolve()
    extension = (user / "extensions" / "user_default" / "posefit").resolve()
    assert pathlib.Path(used["posecore"]).resolve().is_relative_to(extension)
    for name, path in used["files"].items():
        assert pathlib.Path(path).resolve().is_relative_to(wheels_site), f"{name} not from the bundled wheels: {path}"
    assert used["torch"] == "2.13.0+cpu" and used["sum"] == 3.0


def test_every_panel_action_runs_from_the_installed_zip_alone(built):
    """scripts/trace_runtime_imports.py --zip: the zip installed into a fresh Blender user folder, every package of
    this Python hidden except Blender's own, then Import Body (free body and SMPL-X), Detect Pose, Fit, Save Fit,
    FBX and BVH export, Fit Frame Range on a movie and a serial batch, for real. Every bundled wheel is loaded by
    one of them (nothing dead weight), and what they load is what scripts/runtime_imports.json records."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "trace_runtime_imports.py"), "--zip", str(built["zip"]),
         "--out", str(built["root"] / "trace.json")],
        capture_output=True, text=True, timeout=1800, cwd=built["root"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    traced = json.loads((built["root"] / "trace.json").read_text())
    with zipfile.ZipFile(built["zip"]) as archive:
        bundled = {n.split("/")[1].split("-")[0].lower().replace("_", "-") for n in archive.namelist()
                   if n.startswith("wheels/") and n.endswith(".whl")}  # fmt: skip
    assert set(traced["distributions"]) == bundled
    committed = json.loads((REPO / "scripts" / "runtime_imports.json").read_text())
    assert traced["tops"] == committed["tops"]
