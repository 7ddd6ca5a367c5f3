"""The extension lock and the per-platform build, without downloading any platform's real wheels (fast; CI).

- Every section of ``scripts/extension_wheels.lock`` (linux-x64, windows-x64, macos-arm64) holds only wheels whose
  tags fit its platform with CPython 3.11, each package once, nothing left out on purpose, and a wheel for every
  module PoseFit loads at run time (``scripts/runtime_imports.json``, traced on the installed Linux zip); a manifest
  naming its wheels and that one platform passes Blender's own validator.
- ``package_extension.py --platform all`` on a copy of the checkout whose lock names tiny stand-in wheels writes
  three zips named as Blender's ``--split-platforms`` names them, each with its own platform and wheels, and changes
  no file of the copy; the zip checker refuses a zip that lacks a run-time module or holds another platform's wheel.

The real build of all three zips is ``python scripts/package_extension.py --platform all`` (README); the Linux zip
is built, installed and used by tests/test_packaging.py.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import package_extension as pe  # noqa: E402

LOCK = pe.read_lock(REPO / pe.LOCK_NAME)


def _bpy_cli_or_skip() -> None:
    try:
        pe.blender_ext_cli()
    except pe.PackagingError as exc:
        pytest.skip(str(exc))


def test_the_lock_has_exactly_the_offered_platforms():
    assert sorted(LOCK) == sorted(pe.OFFERED) == ["linux-x64", "macos-arm64", "windows-x64"]
    assert "macos-x64" in pe.NOT_OFFERED and "torch" in pe.NOT_OFFERED["macos-x64"]


@pytest.mark.parametrize("platform", pe.OFFERED)
def test_each_lock_section_fits_its_platform_and_holds_every_runtime_module(platform):
    assert pe.check_lock_section(platform, LOCK[platform]) == []
    names = {pe.parse_wheel_filename(w)[0] for w in LOCK[platform]}
    assert {"torch", "anny", "smplx", "mediapipe", "opencv-python-headless"} <= names
    assert not names & {"warp-lang", "av", "opencv-contrib-python", "numpy", "jax", "jaxlib"}
    torch = next(w for w in LOCK[platform] if w.startswith("torch-"))
    assert torch.startswith("torch-2.13.0"), torch


def test_the_lock_check_catches_what_would_break_a_platform():
    windows = LOCK["windows-x64"]
    linux_torch = next(w for w in LOCK["linux-x64"] if w.startswith("torch-"))
    swapped = [linux_torch if w.startswith("torch-") else w for w in windows]
    assert any("do not fit windows-x64" in p for p in pe.check_lock_section("windows-x64", swapped))
    without_torch = [w for w in windows if not w.startswith("torch-")]
    assert any("'torch'" in p for p in pe.check_lock_section("windows-x64", without_torch))
    with_warp = [*windows, "warp_lang-1.19.0-py3-none-win_amd64.whl"]
    assert any("warp-lang is not to be bundled" in p for p in pe.check_lock_section("windows-x64", with_warp))


def test_runtime_imports_were_traced_on_the_installed_zip_with_every_stage():
    traced = json.loads((REPO / pe.RUNTIME_IMPORTS).read_text())
    assert traced["zip"].endswith("-linux_x64.zip")
    assert set(traced["stages"]) == {"enable", "import", "import smplx", "detect", "fit", "save", "export",
                                     "frame range (movie)", "batch"}  # fmt: skip
    assert {"torch", "anny", "smplx", "mediapipe", "cv2", "matplotlib"} <= set(traced["tops"])
    assert "av" in traced["not_found"] and "warp" not in traced["tops"]  # movies ran through cv2, no Warp


@pytest.mark.parametrize("platform", pe.OFFERED)
def test_each_platforms_manifest_passes_blenders_validator(platform, tmp_path):
    _bpy_cli_or_skip()
    shutil.copy(REPO / "blender_manifest.toml", tmp_path / "blender_manifest.toml")
    (tmp_path / "__init__.py").write_text("")
    pe.write_manifest(tmp_path / "blender_manifest.toml", [f"./wheels/{w}" for w in LOCK[platform]], [platform])
    manifest = tomllib.loads((tmp_path / "blender_manifest.toml").read_text())
    assert manifest["platforms"] == [platform] and len(manifest["wheels"]) == len(LOCK[platform])
    assert "Success" in pe.run_cli(["validate", str(tmp_path), "--valid-tags", str(pe.valid_tags_file())])


# ------------------------------------------------------------------ the build, with tiny stand-in wheels
TINY_TAGS = {"linux-x64": "manylinux_2_17_x86_64", "windows-x64": "win_amd64", "macos-arm64": "macosx_11_0_arm64"}
_IGNORE = shutil.ignore_patterns(".git", "tests", "docs", "dist", "wheels", "out", "build", ".*", "__pycache__")


def _tiny_wheel(folder: pathlib.Path, platform: str, module: str = "tinymod") -> str:
    name = f"tiny-1.0-cp311-cp311-{TINY_TAGS[platform]}.whl"
    with zipfile.ZipFile(folder / name, "w") as wheel:
        wheel.writestr(f"{module}/__init__.py", f"PLATFORM = {platform!r}\n")
        wheel.writestr("tiny-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n")
        wheel.writestr(
            "tiny-1.0.dist-info/WHEEL",
            f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-{TINY_TAGS[platform]}\n",
        )
        wheel.writestr("tiny-1.0.dist-info/RECORD", "")
    return name


def _digest(root: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != "wheels"}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """``--platform all`` on a copy of the checkout whose lock names one tiny wheel per platform."""
    _bpy_cli_or_skip()
    root = tmp_path_factory.mktemp("tiny")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=_IGNORE)
    (source / "wheels").mkdir()
    pe.write_lock(source / pe.LOCK_NAME, {p: [_tiny_wheel(source / "wheels", p)] for p in pe.OFFERED})
    (source / pe.RUNTIME_IMPORTS).write_text(json.dumps({"tops": {"tinymod": ["tiny"], "numpy": ["numpy"]}}))
    shutil.copy(REPO / ".gitignore", source / ".gitignore")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "source"]):
        subprocess.run([*git, *args], cwd=source, check=True, capture_output=True)
    before = _digest(source)
    result = subprocess.run(
        [sys.executable, str(source / "scripts" / "package_extension.py"), "--platform", "all",
         "--out", str(source / "dist"), "--source-dir", str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    status = subprocess.run(["git", "status", "--porcelain"], cwd=source, capture_output=True, text=True, check=True)
    return {"source": source, "dist": source / "dist", "before": before, "after": _digest(source),
            "git_status": status.stdout, "out": result.stdout}  # fmt: skip


def test_platform_all_writes_three_differently_named_zips(tiny_build):
    names = sorted(p.name for p in tiny_build["dist"].glob("*.zip"))
    assert names == ["posefit-0.1.0-linux_x64.zip", "posefit-0.1.0-macos_arm64.zip", "posefit-0.1.0-windows_x64.zip"]
    assert not list(tiny_build["dist"].glob(".staging-*"))


@pytest.mark.parametrize("platform", pe.OFFERED)
def test_each_zip_names_its_own_platform_and_holds_only_its_wheel(tiny_build, platform):
    path = tiny_build["dist"] / f"posefit-0.1.0-{platform.replace('-', '_')}.zip"
    with zipfile.ZipFile(path) as archive:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        wheels = sorted(n for n in archive.namelist() if n.startswith("wheels/"))
    assert manifest["platforms"] == [platform]
    assert manifest["wheels"] == [f"./wheels/tiny-1.0-cp311-cp311-{TINY_TAGS[platform]}.whl"]
    assert wheels == [m.removeprefix("./") for m in manifest["wheels"]]
    pe.check_zip(path, platform, tiny_build["source"])  # what the build ran: passes


def test_building_changes_no_file_of_the_source(tiny_build):
    """Built into the checkout's own (ignored) dist/: git sees no change, and no file outside wheels/ and dist/
    changed (the manifest above all: the wheels go into staging copies only)."""
    assert tiny_build["git_status"] == ""
    assert {k: v for k, v in tiny_build["after"].items() if not k.startswith("dist/")} == tiny_build["before"]


def test_the_zip_check_refuses_a_missing_module_and_a_foreign_wheel(tiny_build, tmp_path):
    source = tiny_build["source"]
    linux = tiny_build["dist"] / "posefit-0.1.0-linux_x64.zip"
    with pytest.raises(pe.PackagingError, match="does not fit windows-x64"):
        pe.check_zip(linux, "windows-x64", source)
    (source / pe.RUNTIME_IMPORTS).write_text(json.dumps({"tops": {"tinymod": ["tiny"], "othermod": ["other"]}}))
    try:
        with pytest.raises(pe.PackagingError, match=r"linux_x64\.zip: no bundled wheel provides othermod"):
            pe.check_zip(linux, "linux-x64", source)
    finally:
        (source / pe.RUNTIME_IMPORTS).write_text(json.dumps({"tops": {"tinymod": ["tiny"]}}))


def test_macos_intel_is_refused_with_the_reason(tmp_path):
    with pytest.raises(pe.PackagingError, match="macos-x64 cannot be offered: PyPI has no torch"):
        pe.package(["macos-x64"], tmp_path)
