"""Build PoseFit's Blender extension zips, one per platform, with every runtime dependency bundled as an
unmodified wheel.

Usage::

    python scripts/package_extension.py --platform all [--out dist/]        # linux-x64, windows-x64, macos-arm64
    python scripts/package_extension.py [--platform linux-x64 ...]           # default: linux-x64
    python scripts/package_extension.py --update-lock --platform all         # re-resolve the locked wheels

Reproducible: the wheels bundled for each Blender platform are pinned, by exact file name, in one committed
lock list, ``scripts/extension_wheels.lock`` (a ``[platform]`` section each); a build fetches exactly those (from
``<source>/wheels/``, a ``--wheel-cache`` folder, or ``pip download name==version`` with that platform's tags) and
never resolves anything, so the same commit always builds the same zips. Each platform is built from its own
staging copy of the source (under the output folder) whose ``blender_manifest.toml`` names that platform alone and
its wheels: building modifies no tracked file. Blender's own builder (``blender_ext.py build --split-platforms``,
shipped inside the ``bpy`` wheel) writes ``<id>-<version>-<platform>.zip``; :func:`check_zip` then runs Blender's
validator on the zip, checks every bundled wheel's tags against the platform and that a bundled wheel provides
every module PoseFit loads at run time (``scripts/runtime_imports.json``, made by
``scripts/trace_runtime_imports.py --zip`` on the installed Linux zip). Built twice, a zip holds the same entries
with the same bytes (only timestamps differ). ``posecore`` ships as source inside it.

``--update-lock`` resolves the dependency closure again and rewrites the lock list (the one tracked file it
changes): ``pip download --only-binary=:all: --no-deps`` with that platform's tags, CPython 3.11, starting from
:data:`ROOTS` and following each wheel's ``Requires-Dist`` (environment markers evaluated for the target
platform, extras only where a requirement asks for them), leaving out :data:`NOT_BUNDLED` (each with the reason:
never loaded by PoseFit) and replacing :data:`SUBSTITUTES` by their lighter equivalents. Blender installs bundled
wheels without resolving dependencies, so the closure must be complete; packages Blender's own Python already
ships (:data:`PROVIDED`, numpy above all) are left out, and a requirement those cannot satisfy is an error. torch
must be the CPU build (no ``nvidia-*`` requirement): on linux-x64 that is the ``+cpu`` wheel from pip's
configured sources (``find-links``). ``macos-x64`` cannot be offered (:data:`NOT_OFFERED`).
"""

from __future__ import annotations

import argparse
import dataclasses
import email.message
import email.parser
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Sequence

try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.specifiers import SpecifierSet  # type: ignore[no-redef]
    from pip._vendor.packaging.tags import (  # type: ignore[no-redef]
        Tag,
        compatible_tags,
        cpython_tags,
        mac_platforms,
    )
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename  # type: ignore[no-redef]
    from pip._vendor.packaging.version import Version  # type: ignore[no-redef]

REPO = pathlib.Path(__file__).resolve().parent.parent
LOCK_NAME = "scripts/extension_wheels.lock"
"""The committed lock list (relative to the source folder): ``[platform]`` sections of wheel file names."""
PYTHON_VERSION = (3, 11)  # Blender 4.2 to 5.0 ship CPython 3.11

#: What posecore needs at run time inside Blender (mediapipe detects the person for Detect Pose, and ``import
#: mediapipe`` loads cv2 and matplotlib; cv2's FFmpeg also decodes movie targets; mitsuba is an optional backend
#: that also needs a system LLVM 19: not bundled). The last two entries only constrain what mediapipe asks for:
#: opencv 4.12+ and protobuf 5 need numpy 2, and Blender ships numpy 1.26.
ROOTS: tuple[str, ...] = (
    "torch==2.13.0", "pillow>=10", "tqdm>=4.60", "anny==0.6.2", "smplx==0.1.28",
    "mediapipe==0.10.14", "opencv-python-headless<4.12", "protobuf<5",
)  # fmt: skip

#: Platforms ``--platform all`` builds, and why the others are not offered.
OFFERED: tuple[str, ...] = ("linux-x64", "windows-x64", "macos-arm64")
NOT_OFFERED: dict[str, str] = {
    "macos-x64": "PyPI has no torch 2.13 wheel for Intel Macs (the last one was torch 2.2)",
}

#: Requirements of bundled packages that are left out on purpose, with the reason (measured by
#: ``scripts/trace_runtime_imports.py``: PoseFit never loads them; see docs/results.md).
NOT_BUNDLED: dict[str, str] = {
    "jax": "mediapipe lists it, but its pose, landmark and segmentation API never imports it",
    "jaxlib": "mediapipe lists it, but its pose, landmark and segmentation API never imports it",
    "sounddevice": "mediapipe lists it for audio tasks; the pose API never imports it",
    "warp-lang": "anny lists it for its own skinning; PoseFit skins Anny itself and asks anny for plain LBS, so "
    "Warp is never imported (149 MB on Linux)",
    "av": "movie targets decode through OpenCV's FFmpeg (cv2, bundled for mediapipe) when PyAV is absent "
    "(posecore.io.movie_cv2); 36 MB on Linux",
    "absl-py": "mediapipe lists it; its pose solution never imports it",
    "flatbuffers": "mediapipe lists it; its pose solution never imports it",
    "contourpy": "matplotlib lists it for contour plots; mediapipe's import of pyplot never loads it",
    "filelock": "torch lists it for its hub and compile caches; PoseFit's import, detect, fit, export never load it",
    "fsspec": "torch lists it for distributed checkpoints; never loaded",
    "jinja2": "torch lists it for its compiler's code generation (torch.compile); never loaded",
    "markupsafe": "only jinja2 needs it",
    "setuptools": "torch lists it for building C++ extensions; never loaded",
    "tzdata": "python-dateutil's time zones; never loaded",
}

#: Lighter packages that provide the same modules to the code that imports them: ``name`` -> replacement.
SUBSTITUTES: dict[str, str] = {
    # mediapipe asks for the contrib build; it only imports cv2's core functions, which the headless build has
    # (no Qt GUI libraries, no contrib modules: 50 MB instead of 69 MB on Linux).
    "opencv-contrib-python": "opencv-python-headless",
}

RUNTIME_IMPORTS = "scripts/runtime_imports.json"
"""What ``scripts/trace_runtime_imports.py`` recorded (committed): the top-level modules PoseFit loads inside
Blender, with the distributions that provided them where the trace ran."""


#: Packages Blender's bundled Python already has (the ``bpy`` wheel's own requirements mirror them), with the
#: version Blender 4.2 to 5.0 ship where a requirement must be checked against it (``None``: not checked).
#: Bundling them would shadow Blender's copies: the extension site-packages come first on ``sys.path``.
PROVIDED: dict[str, str | None] = {
    "numpy": "1.26.4",
    "requests": None,
    "certifi": None,
    "charset-normalizer": None,
    "idna": None,
    "urllib3": None,
    "zstandard": None,
    "cython": None,
}


@dataclasses.dataclass(frozen=True)
class PlatformSpec:
    """How one Blender platform maps onto wheel tags and environment markers."""

    pip_platforms: tuple[str, ...]
    markers: dict[str, str]
    tag_platforms: tuple[str, ...]


def _manylinux(arch: str) -> tuple[str, ...]:
    # Blender 4.2+ on Linux needs glibc 2.28: accept every manylinux tag up to that.
    new = tuple(f"manylinux_2_{minor}_{arch}" for minor in range(28, 4, -1))
    return (*new, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}")


def _mac(arch: str, version: tuple[int, int]) -> tuple[str, ...]:
    # mac_platforms lists every macOS release up to ``version`` (Blender 4.2+ itself needs macOS 11.2).
    return tuple(mac_platforms(version, arch))


PLATFORMS: dict[str, PlatformSpec] = {
    "linux-x64": PlatformSpec(
        _manylinux("x86_64"),
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"},
        _manylinux("x86_64"),
    ),
    "linux-arm64": PlatformSpec(
        _manylinux("aarch64"),
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64", "os_name": "posix"},
        _manylinux("aarch64"),
    ),
    # torch 2.13's macOS wheels are built for macOS 14: the arm64 bundle therefore needs macOS 14 or later.
    "macos-arm64": PlatformSpec(
        _mac("arm64", (14, 0)),
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64", "os_name": "posix"},
        _mac("arm64", (14, 0)),
    ),
    # torch publishes no Intel-macOS wheels since 2.2: this platform fails with a clear message.
    "macos-x64": PlatformSpec(
        _mac("x86_64", (14, 0)),
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "x86_64", "os_name": "posix"},
        _mac("x86_64", (14, 0)),
    ),
    "windows-x64": PlatformSpec(
        ("win_amd64",),
        {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"},
        ("win_amd64",),
    ),
}


class PackagingError(RuntimeError):
    """A clear, one-line reason why packaging cannot go on."""


def supported_tags(spec: PlatformSpec) -> set[Tag]:
    """Wheel tags CPython 3.11 accepts on ``spec``'s platform."""
    platforms = list(spec.tag_platforms)
    tags = set(cpython_tags(PYTHON_VERSION, abis=["cp311", "abi3", "none"], platforms=platforms))
    tags |= set(compatible_tags(PYTHON_VERSION, interpreter="cp311", platforms=platforms))
    return tags


def marker_environment(spec: PlatformSpec, extra: str = "") -> dict[str, str]:
    """The PEP 508 marker environment of Blender's Python on ``spec``'s platform."""
    return {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": "3.11",
        "python_full_version": "3.11.9",
        "implementation_version": "3.11.9",
        "platform_release": "",
        "platform_version": "",
        "extra": extra,
        **spec.markers,
    }


def wheel_metadata(wheel: pathlib.Path) -> email.message.Message:
    """The headers of a wheel's ``*.dist-info/METADATA``."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        return email.parser.BytesParser().parsebytes(archive.read(name), headersonly=True)


def wheel_requirements(wheel: pathlib.Path) -> list[Requirement]:
    """The ``Requires-Dist`` entries of a wheel's METADATA."""
    return [Requirement(text) for text in wheel_metadata(wheel).get_all("Requires-Dist") or []]


def supports_python(wheel: pathlib.Path) -> bool:
    """Whether the wheel's ``Requires-Python`` admits Blender's Python 3.11."""
    requires = wheel_metadata(wheel).get("Requires-Python")
    return requires is None or SpecifierSet(requires).contains("3.11.9", prereleases=True)


def applies(requirement: Requirement, spec: PlatformSpec, extras: Iterable[str]) -> bool:
    """Whether ``requirement`` holds on the target platform, given the extras asked of its owner."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate(marker_environment(spec, extra)) for extra in ("", *extras))


def _wheel_name_version(path: pathlib.Path) -> tuple[str, Version, frozenset[Tag]]:
    name, version, _, tags = parse_wheel_filename(path.name)
    return canonicalize_name(name), version, tags


def find_cached(
    directories: Sequence[pathlib.Path], name: str, specifier: SpecifierSet, tags: set[Tag]
) -> pathlib.Path | None:
    """The newest wheel of ``name`` in ``directories`` that satisfies ``specifier`` and fits ``tags``."""
    best: tuple[Version, pathlib.Path] | None = None
    for directory in directories:
        for path in directory.glob("*.whl") if directory.is_dir() else ():
            try:
                wheel_name, version, wheel_tags = _wheel_name_version(path)
            except Exception:
                continue
            if wheel_name != name or not specifier.contains(version, prereleases=True) or not (wheel_tags & tags):
                continue
            if (best is None or version > best[0]) and supports_python(path):
                best = (version, path)
    return None if best is None else best[1]


def pip_download(name: str, specifier: SpecifierSet, spec: PlatformSpec, dest: pathlib.Path) -> pathlib.Path:
    """``pip download`` one binary wheel (no dependencies) for the target platform; returns its path."""
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--no-cache-dir"]
    for platform in spec.pip_platforms:
        command += ["--platform", platform]
    command += ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3"]
    command += ["--abi", "none", "-d", str(dest), f"{name}{specifier}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")] or ["(no output)"]
        raise PackagingError(
            f"no {name}{specifier} wheel for CPython 3.11 on {', '.join(spec.pip_platforms[:2])}...: {errors[0]}"
        )
    found = re.findall(r"(?:Saved|File was already downloaded)\s+(\S+\.whl)", result.stdout)
    if not found:
        raise PackagingError(f"pip download {name}{specifier}: no wheel reported in pip's output")
    path = pathlib.Path(found[-1])
    return path if path.is_absolute() else (pathlib.Path.cwd() / path).resolve()


def check_torch(wheel: pathlib.Path, platform: str, spec: PlatformSpec) -> None:
    """Refuse a torch wheel that is not the CPU build (a ``+cu`` local version or ``nvidia-*`` requirements)."""
    _, version, _ = _wheel_name_version(wheel)
    nvidia = [str(r) for r in wheel_requirements(wheel) if r.name.startswith("nvidia-") and applies(r, spec, ())]
    if nvidia or (version.local or "").startswith("cu"):
        raise PackagingError(
            f"{platform}: no CPU build of torch found ({wheel.name} requires {', '.join(nvidia) or 'CUDA'}); "
            "put the +cpu wheel into pip's find-links or leave this platform out"
        )
    if platform.startswith("linux") and version.local != "cpu":
        raise PackagingError(f"{platform}: {wheel.name} is not the +cpu torch build")


def resolve_platform(
    platform: str, wheels_dir: pathlib.Path, caches: Sequence[pathlib.Path], refresh: bool, log: Callable[[str], object]
) -> list[pathlib.Path]:
    """Download the dependency closure of :data:`ROOTS` for ``platform`` into ``wheels_dir``; returns the wheels."""
    spec = PLATFORMS[platform]
    tags = supported_tags(spec)
    specifiers: dict[str, SpecifierSet] = {}
    extras: dict[str, set[str]] = {}
    chosen: dict[str, pathlib.Path] = {}
    roots = [Requirement(text) for text in ROOTS]
    if platform.startswith("linux"):  # the CPU build carries a local version label; ask for it by name
        roots = [Requirement("torch==2.13.0+cpu") if r.name == "torch" else r for r in roots]
    queue: deque[tuple[Requirement, str]] = deque((r, "(root)") for r in roots)
    while queue:
        requirement, owner = queue.popleft()
        name = canonicalize_name(requirement.name)
        if name in SUBSTITUTES:
            requirement = Requirement(f"{SUBSTITUTES[name]}{requirement.specifier}")
            name = canonicalize_name(requirement.name)
        if name in NOT_BUNDLED:
            continue
        if name in PROVIDED:
            have = PROVIDED[name]
            if have is not None and not requirement.specifier.contains(have, prereleases=True):
                raise PackagingError(
                    f"{platform}: {owner} needs {requirement} but Blender ships {name} {have}; pin an older {owner}"
                )
            continue
        specifier = specifiers.get(name, SpecifierSet()) & requirement.specifier
        new_extras = set(requirement.extras) - extras.get(name, set())
        specifiers[name] = specifier
        extras.setdefault(name, set()).update(requirement.extras)
        current = chosen.get(name)
        if current is not None and specifier.contains(_wheel_name_version(current)[1], prereleases=True):
            if not new_extras:
                continue
            wheel = current
        else:
            wheel = None if refresh else find_cached([wheels_dir, *caches], name, specifier, tags)
            if wheel is None:
                log(f"  downloading {name}{specifier} for {platform}")
                wheel = pip_download(name, specifier, spec, wheels_dir)
            if wheel.parent.resolve() != wheels_dir.resolve():
                target = wheels_dir / wheel.name
                if not target.exists():
                    try:
                        os.link(wheel, target)
                    except OSError:
                        shutil.copy2(wheel, target)
                wheel = target
            if not (_wheel_name_version(wheel)[2] & tags):
                raise PackagingError(f"{platform}: {wheel.name} does not fit this platform's tags")
            if name == "torch":
                check_torch(wheel, platform, spec)
            chosen[name] = wheel
        for child in wheel_requirements(wheel):
            if applies(child, spec, extras[name]):
                queue.append((child, name))
    return sorted(chosen.values(), key=lambda p: p.name.lower())


def write_manifest(manifest: pathlib.Path, wheels: Sequence[str], platforms: Sequence[str]) -> None:
    """Replace the ``wheels = [...]`` and ``platforms = [...]`` lines (top-level keys) of ``manifest``."""
    text = manifest.read_text(encoding="utf-8")
    wheel_block = "wheels = [\n" + "".join(f'  "{w}",\n' for w in wheels) + "]" if wheels else "wheels = []"
    platform_line = "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]"
    for key, value in (("wheels", wheel_block), ("platforms", platform_line)):
        pattern = re.compile(rf"^{key}\s*=\s*\[.*?\]", re.MULTILINE | re.DOTALL)
        if pattern.search(text) is None:
            raise PackagingError(f"{manifest}: no top-level '{key} = [...]' line to replace")
        text = pattern.sub(lambda _m, v=value: v, text, count=1)
    manifest.write_text(text, encoding="utf-8")


def blender_ext_cli() -> pathlib.Path:
    """Blender's extension command-line tool (``blender_ext.py``), from the installed ``bpy`` wheel."""
    import importlib.util

    found = importlib.util.find_spec("bpy")
    if found is None or not found.origin:
        raise PackagingError("the bpy module is not installed: Blender's extension builder ships inside it")
    # bpy's origin is <site-packages>/bpy/__init__.py; the scripts live in bpy/<version>/scripts.
    for cli in pathlib.Path(found.origin).resolve().parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"):
        return cli
    raise PackagingError(f"blender_ext.py not found under {pathlib.Path(found.origin).parent}")


def run_cli(args: Sequence[str]) -> str:
    """Run ``blender_ext.py`` with ``args``; returns its output, raising on failure."""
    result = subprocess.run([sys.executable, str(blender_ext_cli()), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise PackagingError(f"blender_ext.py {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def valid_tags_file() -> pathlib.Path:
    """Blender's list of valid extension tags (beside the CLI in the bpy wheel)."""
    scripts = blender_ext_cli().parents[3]
    return scripts / "modules" / "_bpy_internal" / "extensions" / "tags.py"


def read_lock(path: pathlib.Path) -> dict[str, list[str]]:
    """The lock list: platform -> wheel file names (``[platform]`` sections, ``#`` comments)."""
    if not path.is_file():
        raise PackagingError(f"{path}: the wheel lock list is missing (make it with --update-lock)")
    lock: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = lock.setdefault(line[1:-1].strip(), [])
        elif current is None or not line.endswith(".whl"):
            raise PackagingError(f"{path}:{number}: expected [platform] or a wheel file name, got {raw!r}")
        else:
            current.append(line)
    return lock


def write_lock(path: pathlib.Path, lock: dict[str, list[str]]) -> None:
    """Write the lock list (platforms and wheel names sorted)."""
    lines = [
        "# Wheels bundled in PoseFit's extension zip, per Blender platform: exact files, as pip downloads them.",
        "# Every build uses exactly these. Re-resolve with: python scripts/package_extension.py --update-lock",
    ]
    for platform in sorted(lock):
        lines += ["", f"[{platform}]", *sorted(lock[platform], key=str.lower)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def fetch_locked(
    platform: str, names: Sequence[str], wheels_dir: pathlib.Path, caches: Sequence[pathlib.Path],
    log: Callable[[str], object],
) -> list[pathlib.Path]:  # fmt: skip
    """The locked wheel files of ``platform`` in ``wheels_dir``: found on disk by exact name, else downloaded
    (``name==version``, no dependencies) and checked to be exactly the locked file."""
    spec = PLATFORMS[platform]
    found = []
    for wheel_name in names:
        target = wheels_dir / wheel_name
        source = next((d / wheel_name for d in (wheels_dir, *caches) if (d / wheel_name).is_file()), None)
        if source is None:
            name, version, _, _ = parse_wheel_filename(wheel_name)
            log(f"  downloading {wheel_name}")
            source = pip_download(name, SpecifierSet(f"=={version}"), spec, wheels_dir)
            if source.name != wheel_name:
                raise PackagingError(f"{platform}: pip gave {source.name} for the locked {wheel_name}")
        if source.resolve() != target.resolve():
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        found.append(target)
    return found


_STAGING_IGNORE = shutil.ignore_patterns(".git", "wheels", "dist", "build", "out", "__pycache__", ".*", "*.blend1")


def stage_source(source: pathlib.Path, staging: pathlib.Path, wheels: Sequence[pathlib.Path]) -> None:
    """Copy the extension source into ``staging`` (without wheels, build outputs, hidden files) and link the
    bundled ``wheels`` into ``staging/wheels``: the manifest is then rewritten there, never in the source."""
    outside = staging.resolve().parent

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(_STAGING_IGNORE(folder, names))
        # The output folder may sit inside the source (``--out build2``): never copy the staging into itself.
        return skipped | {n for n in names if outside.is_relative_to((pathlib.Path(folder) / n).resolve())}

    shutil.copytree(source, staging, ignore=ignore, symlinks=False)
    (staging / "wheels").mkdir()
    for wheel in wheels:
        try:
            os.link(wheel, staging / "wheels" / wheel.name)
        except OSError:
            shutil.copy2(wheel, staging / "wheels" / wheel.name)


def runtime_modules(source: pathlib.Path = REPO) -> dict[str, list[str]]:
    """Top-level module -> distributions that provided it where the trace ran (:data:`RUNTIME_IMPORTS`)."""
    import json

    path = source / RUNTIME_IMPORTS
    try:
        return json.loads(path.read_text(encoding="utf-8"))["tops"]
    except (OSError, ValueError, KeyError) as exc:
        raise PackagingError(f"{path}: cannot read the traced run-time imports ({exc})") from None


def check_lock_section(platform: str, names: Sequence[str], source: pathlib.Path = REPO) -> list[str]:
    """What is wrong with a lock section, without downloading anything: wheel names that do not parse or whose
    tags do not fit ``platform``, two versions of one package, packages left out on purpose, and run-time
    imports that no locked distribution provides. Empty when the section is fine."""
    tags = supported_tags(PLATFORMS[platform])
    problems: list[str] = []
    dists: dict[str, str] = {}
    for wheel in names:
        try:
            name, _version, wheel_tags = _wheel_name_version(pathlib.Path(wheel))
        except Exception as exc:
            problems.append(f"{wheel}: not a wheel file name ({exc})")
            continue
        if not wheel_tags & tags:
            problems.append(f"{wheel}: its tags do not fit {platform} with CPython 3.11")
        if name in dists:
            problems.append(f"{wheel}: {name} is locked twice ({dists[name]})")
        if name in NOT_BUNDLED or name in SUBSTITUTES or name in PROVIDED:
            problems.append(f"{wheel}: {name} is not to be bundled")
        dists[name] = wheel
    for top, providers in runtime_modules(source).items():
        wanted = {SUBSTITUTES.get(canonicalize_name(d), canonicalize_name(d)) for d in providers}
        if not wanted & (set(dists) | set(PROVIDED)):
            problems.append(f"no locked wheel provides the module {top!r} ({' or '.join(sorted(wanted))})")
    return problems


def wheel_top_levels(names: Iterable[str]) -> set[str]:
    """Top-level importable names in a wheel's file list (packages, modules, extension modules)."""
    tops = set()
    for entry in names:
        parts = entry.split("/")
        if parts[0].endswith(".data") and len(parts) > 3 and parts[1] in ("purelib", "platlib"):
            parts = parts[2:]
        head = parts[0]
        if head.endswith((".dist-info", ".data")) or (len(parts) == 1 and "." not in head):
            continue
        tops.add(head.split(".")[0] if len(parts) == 1 else head)
    return tops


def check_zip(path: pathlib.Path, platform: str, source: pathlib.Path = REPO) -> None:
    """Check a built zip: Blender's validator passes; its manifest names ``platform`` alone; every listed wheel
    is inside and fits the platform's tags; every module PoseFit loads at run time is in one of its wheels (or
    in Blender's own Python). Raises :class:`PackagingError` naming the zip and every problem."""
    import io
    import tomllib

    problems: list[str] = []
    try:
        run_cli(["validate", str(path), "--valid-tags", str(valid_tags_file())])
    except PackagingError as exc:
        problems.append(str(exc))
    tags = supported_tags(PLATFORMS[platform])
    provided: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode("utf-8"))
        if manifest.get("platforms") != [platform]:
            problems.append(f"manifest platforms {manifest.get('platforms')} is not [{platform!r}]")
        members = set(archive.namelist())
        for entry in manifest.get("wheels", []):
            member = entry.removeprefix("./")
            if member not in members:
                problems.append(f"{member} is listed but not in the zip")
                continue
            if not _wheel_name_version(pathlib.Path(member))[2] & tags:
                problems.append(f"{member} does not fit {platform}")
            with zipfile.ZipFile(io.BytesIO(archive.read(member))) as wheel:
                provided |= wheel_top_levels(wheel.namelist())
    missing = [top for top, dists in runtime_modules(source).items()
               if top not in provided and not {canonicalize_name(d) for d in dists} & set(PROVIDED)]  # fmt: skip
    if missing:
        problems.append(f"no bundled wheel provides {', '.join(sorted(missing))} (imported at run time)")
    if problems:
        raise PackagingError(f"{path.name}: " + "; ".join(problems))


def zip_name(source: pathlib.Path, platform: str) -> str:
    """The zip Blender's ``build --split-platforms`` writes for ``platform``: ``<id>-<version>-<platform>.zip``
    (the platform with an underscore, e.g. ``posefit-0.1.0-windows_x64.zip``)."""
    import tomllib

    manifest = tomllib.loads((source / "blender_manifest.toml").read_text(encoding="utf-8"))
    return f"{manifest['id']}-{manifest['version']}-{platform.replace('-', '_')}.zip"


def build_platform(
    platform: str, wheels: Sequence[pathlib.Path], out: pathlib.Path, source: pathlib.Path, log: Callable[[str], object]
) -> pathlib.Path:
    """Stage the source with ``platform``'s wheels and a manifest naming that platform alone, validate it and
    build its zip with Blender's builder; returns the zip (checked with :func:`check_zip`)."""
    staging_root = pathlib.Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    target = out / zip_name(source, platform)
    try:
        staging = staging_root / "posefit"
        stage_source(source, staging, wheels)
        write_manifest(staging / "blender_manifest.toml", [f"./wheels/{w.name}" for w in wheels], [platform])
        tags = str(valid_tags_file())
        run_cli(["validate", str(staging), "--valid-tags", tags])
        target.unlink(missing_ok=True)
        args = ["build", "--source-dir", str(staging), "--output-dir", str(out), "--valid-tags", tags]
        run_cli([*args, "--split-platforms"])  # names the zip after its platform
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    if not target.is_file():
        raise PackagingError(f"Blender's builder wrote no {target.name} into {out}")
    check_zip(target, platform)
    log(f"{platform}: {len(wheels)} wheels, {target.name} {target.stat().st_size / 2**20:.1f} MiB")
    return target


def package(
    platforms: Sequence[str],
    out: pathlib.Path,
    source: pathlib.Path = REPO,
    caches: Sequence[pathlib.Path] = (),
    refresh: bool = False,
    log: Callable[[str], object] = print,
    update_lock: bool = False,
) -> list[pathlib.Path]:
    """Fetch the locked wheels (re-resolving them first with ``update_lock``), then build one zip per platform
    into ``out`` (each staged, validated and checked by :func:`build_platform`); returns the zip paths."""
    platforms = list(OFFERED) if list(platforms) == ["all"] else list(dict.fromkeys(platforms))
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        raise PackagingError(f"unknown platform(s) {unknown}; choose from {sorted(PLATFORMS)} or 'all'")
    not_offered = [p for p in platforms if p in NOT_OFFERED]
    if not_offered:
        raise PackagingError("; ".join(f"{p} cannot be offered: {NOT_OFFERED[p]}" for p in not_offered))
    wheels_dir = source / "wheels"
    wheels_dir.mkdir(exist_ok=True)
    lock_path = source / LOCK_NAME
    lock = read_lock(lock_path) if lock_path.is_file() or not update_lock else {}
    if update_lock:
        failed: dict[str, str] = {}
        for platform in platforms:
            log(f"resolving wheels for {platform}")
            try:
                lock[platform] = [w.name for w in resolve_platform(platform, wheels_dir, caches, refresh, log)]
            except PackagingError as exc:
                failed[platform] = str(exc)
                log(f"error: {exc}")
        if failed:
            raise PackagingError("; ".join(failed.values()))
        write_lock(lock_path, lock)
        log(f"wrote {lock_path}")
    missing = [p for p in platforms if p not in lock]
    if missing:
        raise PackagingError(
            f"{lock_path}: no locked wheels for {', '.join(missing)}; add them with --update-lock --platform ..."
        )
    for platform in platforms:
        problems = check_lock_section(platform, lock[platform])
        if problems:
            raise PackagingError(f"{lock_path} [{platform}]: " + "; ".join(problems))
    out.mkdir(parents=True, exist_ok=True)
    zips = []
    for platform in platforms:
        wheels = fetch_locked(platform, lock[platform], wheels_dir, caches, log)
        zips.append(build_platform(platform, sorted(wheels, key=lambda p: p.name.lower()), out, source, log))
    return zips


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--platform",
        action="append",
        choices=[*sorted(PLATFORMS), "all"],
        help=f"Blender platform to build a zip for (repeatable; 'all': {', '.join(OFFERED)}; default: linux-x64)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "dist", help="folder for the zip (default dist/)")
    parser.add_argument("--source-dir", type=pathlib.Path, default=REPO, help="extension source (default: repo)")
    parser.add_argument(
        "--wheel-cache", type=pathlib.Path, action="append", default=[], help="extra folder of wheels to reuse"
    )
    parser.add_argument(
        "--update-lock",
        action="store_true",
        help=f"resolve the wheels again (newest that fit) and rewrite {LOCK_NAME} before building",
    )
    parser.add_argument("--refresh", action="store_true", help="with --update-lock: ask pip even for wheels on disk")
    args = parser.parse_args(argv)
    try:
        platforms = ["all"] if "all" in (args.platform or []) else args.platform or ["linux-x64"]
        zips = package(platforms, args.out.resolve(), args.source_dir.resolve(),
                       [c.resolve() for c in args.wheel_cache], args.refresh, update_lock=args.update_lock)  # fmt: skip
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in zips:
        print(f"{path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
