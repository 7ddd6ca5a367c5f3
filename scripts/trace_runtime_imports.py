"""Which installed distributions PoseFit loads inside Blender, stage by stage: enable, import (free body and
SMPL-X), detect, fit, save, export (FBX, BVH), a frame range on a movie target, a serial batch.

Usage (Python with ``bpy``)::

    python scripts/trace_runtime_imports.py [--out trace.json]                  # the checkout, this Python's packages
    python scripts/trace_runtime_imports.py --zip dist/posefit-0.1.0-linux_x64.zip [--out trace.json]

Without ``--zip`` it runs the extension from this checkout with whatever this Python has installed. With ``--zip``
it installs that zip into a fresh Blender user folder (as a user would) and runs the installed extension with
every package of this Python hidden except Blender's own (``bpy``, numpy and what :data:`PROVIDED` lists, which
Blender's Python ships): a module the zip lacks fails the stage that needs it, so a passing run shows that the zip
holds everything each panel action loads. Either way it runs in Blender-as-a-module, performs each panel action
for real on small data (matplotlib's Grace Hopper photo for Detect Pose, a 2-frame movie encoded beforehand in a
separate process so that its encoder is not counted), and records after each stage which top-level modules were
newly imported from ``site-packages`` (or the extension's wheels), mapped to their distributions. Prints (and writes
with ``--out``) JSON: ``stages`` (stage -> distributions), ``distributions``, ``tops`` (module -> distributions),
``not_found`` (with ``--zip``: modules asked for that neither Blender nor the zip has: optional imports).
The ``--zip`` result on the Linux zip is committed as ``scripts/runtime_imports.json``: the modules every zip
must hold (checked by scripts/package_extension.py and tests/test_packaging_lock.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable

REPO = pathlib.Path(__file__).resolve().parent.parent
MODULE = "bl_ext.posefit_trace.posefit"
INSTALLED = "bl_ext.user_default.posefit"
#: Import names of what Blender's own Python ships (scripts/package_extension.py PROVIDED), besides bpy and numpy.
PROVIDED = {"numpy", "requests", "certifi", "charset_normalizer", "idna", "urllib3", "zstandard", "Cython", "cython"}


class NotFound(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: records the top-level modules nothing could find (optional imports)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def find_spec(self, name, path, target=None):
        if path is None:
            self.names.add(name)
        return None


def hide_outside_packages(sites: list[pathlib.Path]) -> None:
    """Make this Python's site-packages unreachable, as inside Blender: import what Blender's own Python ships
    (:data:`PROVIDED`, numpy) first, then take the site-packages folders off ``sys.path``. Blender's scripts
    (inside the ``bpy`` folder) and the extension's wheels stay reachable."""
    for name in sorted(PROVIDED):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    sys.path[:] = [p for p in sys.path if not p or pathlib.Path(p).resolve() not in sites]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()


def _site_dirs() -> list[pathlib.Path]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return [pathlib.Path(p).resolve() for p in paths]


def loaded_distributions(before: set[str], sites: list[pathlib.Path]) -> dict[str, list[str]]:
    """Distributions (name -> top-level modules) of the modules imported since ``before`` from ``sites``,
    leaving out Blender itself (``bpy`` and its scripts) and numpy, which Blender ships."""
    owners = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for name in set(sys.modules) - before:
        top = name.split(".")[0]
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if not path or top in ("bpy", "numpy", "_bpy"):
            continue
        resolved = pathlib.Path(path).resolve()
        if not any(resolved.is_relative_to(s) and not resolved.is_relative_to(s / "bpy") for s in sites):
            continue
        if resolved.is_relative_to(REPO):
            continue
        for dist in owners.get(top, [f"?{top}"]):
            found.setdefault(dist.lower().replace("_", "-"), set()).add(top)
    return {dist: sorted(tops) for dist, tops in sorted(found.items())}


def _encode_movie(folder: pathlib.Path) -> pathlib.Path:
    """A 2-frame grey movie, written by a separate process (its encoder and image writer are not traced)."""
    code = """
import sys, pathlib, bpy
from PIL import Image
folder = pathlib.Path(sys.argv[1])
for index, shade in ((1, 90), (2, 160)):
    Image.new("RGB", (64, 64), (shade, shade, shade)).save(folder / f"f{index}.png")
scene = bpy.context.scene
scene.render.resolution_x = scene.render.resolution_y = 64
scene.render.resolution_percentage = 100
editor = scene.sequence_editor_create()
strips = editor.strips if hasattr(editor, "strips") else editor.sequences
strip = strips.new_image("frames", str(folder / "f1.png"), 1, 1)
strip.elements.append("f2.png")
scene.frame_start, scene.frame_end = 1, 2
settings = scene.render.image_settings
if hasattr(settings, "media_type"):
    settings.media_type = "VIDEO"
settings.file_format, settings.color_mode = "FFMPEG", "RGB"
scene.render.ffmpeg.format, scene.render.ffmpeg.codec = "MKV", "FFV1"
scene.render.filepath = str(folder / "clip.mkv")
bpy.ops.render.render(animation=True)
"""
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, capture_output=True, timeout=300)
    return folder / "clip.mkv"


def stages(work: pathlib.Path, installed: bool) -> list[tuple[str, Callable[[], object]]]:
    """The panel actions, in order; each runs for real and must succeed (``installed``: the extension installed
    from a zip, else this checkout)."""
    import bpy

    module = INSTALLED if installed else MODULE

    def ok(result: set[str]) -> None:
        if result != {"FINISHED"}:
            raise RuntimeError(f"operator returned {result}")

    movie = _encode_movie(work)
    settings = None

    def enable() -> None:
        nonlocal settings
        import addon_utils

        if not installed:
            parent = work / "extensions"
            parent.mkdir()
            os.symlink(REPO, parent / "posefit")
            bpy.context.preferences.extensions.repos.new(
                name="posefit_trace", module="posefit_trace", custom_directory=str(parent), source="USER"
            )
        addon_utils.enable(module, default_set=True, handle_error=_raise)
        settings = bpy.context.scene.posefit
        settings.iterations, settings.fit_size, settings.preset = 2, 64, "fast"

    def import_body() -> None:
        settings.model, settings.init_path, settings.target_path = "anny", "", ""
        ok(bpy.ops.posefit.import_body())

    def import_smplx() -> None:
        from posecore.bodies.synthetic_smplx import ensure_synthetic_smplx_folder

        folder = ensure_synthetic_smplx_folder(work / "smplx_model")
        bpy.context.preferences.addons[module].preferences.smplx_folder = str(folder)
        settings.model = "smplx"
        ok(bpy.ops.posefit.import_body())
        settings.model = "anny"

    def detect() -> None:
        from matplotlib import cbook  # the photo only: matplotlib is loaded by mediapipe anyway (counted there)

        settings.target_path = str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        ok(bpy.ops.posefit.detect_pose())

    def fit() -> None:
        ok(bpy.ops.posefit.fit())

    def save() -> None:
        ok(bpy.ops.posefit.save_fit(filepath=str(work / "fit.npz")))

    def export() -> None:
        ok(bpy.ops.posefit.export_body(filepath=str(work / "body.fbx")))
        ok(bpy.ops.posefit.export_body(filepath=str(work / "body.bvh"), file_format="BVH"))

    def frames() -> None:
        settings.target_path, settings.mask_path, settings.detect_first_frame = str(movie), "", False
        render = bpy.context.scene.render
        render.resolution_x = render.resolution_y = 64  # the movie's shape (the photo's was set by Detect Pose)
        ok(bpy.ops.posefit.fit_frames(frame_start=1, frame_end=2))

    def batch() -> None:
        import importlib

        distributed = importlib.import_module(f"{module}.addon.distributed")
        summary = distributed.run_on_workers(bpy.context, [1, 2], str(work / "batch"), workers=0, log=lambda _t: None)
        if summary["done"] != 2:
            raise RuntimeError(f"batch: {summary}")

    return [
        ("enable", enable), ("import", import_body), ("import smplx", import_smplx), ("detect", detect),
        ("fit", fit), ("save", save), ("export", export), ("frame range (movie)", frames), ("batch", batch),
    ]  # fmt: skip


def _raise(exc: BaseException) -> None:
    raise exc


def install(archive: pathlib.Path, user: pathlib.Path) -> pathlib.Path:
    """Install ``archive`` into Blender user folder ``user`` in a separate process, as Blender's Install from
    Disk does; returns the folder its wheels were unpacked into."""
    code = (
        "import sys, bpy; r = bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo='user_default', "
        "enable_on_install=True); print('INSTALLED', sorted(r)); sys.stdout.flush(); import os; os._exit(0)"
    )
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user)}
    done = subprocess.run([sys.executable, "-c", code, str(archive)], capture_output=True, text=True, env=env,
                          cwd=user, timeout=900)  # fmt: skip
    if "INSTALLED ['FINISHED']" not in done.stdout:
        raise RuntimeError(f"installing {archive} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    found = sorted((user / "extensions" / ".local" / "lib").glob("python3*/site-packages"))
    if not found:
        raise RuntimeError(f"installing {archive} unpacked no wheels under {user / 'extensions' / '.local'}")
    return found[0].resolve()


def trace(archive: pathlib.Path | None = None) -> dict:
    """Run every stage (on the extension installed from ``archive`` when given); returns what each loaded."""
    with tempfile.TemporaryDirectory(prefix="posefit-trace-") as tmp:
        work = pathlib.Path(tmp)
        user = work / "blender"
        user.mkdir()
        os.environ["BLENDER_USER_RESOURCES"] = str(user)
        sites = [install(archive, user)] if archive else _site_dirs()
        import bpy  # noqa: F401  (Blender itself is not bundled: not counted)

        missing = NotFound()
        if archive:
            hide_outside_packages(_site_dirs())
            sys.meta_path.append(missing)
        plan = stages(work, installed=archive is not None)  # encodes the movie in a subprocess
        result: dict[str, dict[str, list[str]]] = {}
        seen = set(sys.modules)
        for name, action in plan:
            action()
            result[name] = loaded_distributions(seen, sites)
            seen = set(sys.modules)
    tops: dict[str, set[str]] = {}
    for loaded in result.values():
        for dist, names in loaded.items():
            for top in names:
                tops.setdefault(top, set()).add(dist)
    return {
        "stages": {stage: sorted(loaded) for stage, loaded in result.items()},
        "distributions": sorted({d for loaded in result.values() for d in loaded}),
        "tops": {top: sorted(dists) for top, dists in sorted(tops.items())},
        "not_found": sorted(missing.names) if archive else None,
        "zip": archive.name if archive else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON here too")
    parser.add_argument("--zip", type=pathlib.Path, help="install this extension zip and trace it, hiding the rest")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torch reads it on import (not imported here: it is traced)
    report = trace(args.zip.resolve() if args.zip else None)
    text = json.dumps(report, indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    sys.stdout.flush()
    os._exit(0)  # Blender-as-a-module may hang or crash on exit with an extension still registered (facts.md)


if __name__ == "__main__":
    sys.exit(main())
