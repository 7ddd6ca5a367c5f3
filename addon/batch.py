"""Headless batch: fit a frame range of a saved .blend, save the keyframes and write posecore's result files.

Two ways to run it, with the same options::

    blender -b scene.blend --python-exit-code 1 --python addon/batch.py -- --frames 1-10 --out DIR
    python addon/batch.py scene.blend --frames 1-10 --out DIR        # plain Python with the bpy module

The scene needs a PoseFit body (``posefit.import_body``), a scene camera and a target (``scene.posefit``: an image
sequence ``frame_####.png``, a folder of images or a movie); the options below override its settings.
For each frame: console progress lines on stdout, the pose keyframed at that frame, and (with ``--out``)
``DIR/frame_NNNN/result.json`` and ``fit.npz`` as written by ``python -m posecore fit``.

The .blend is saved at the end with ``bpy.ops.wm.save_mainfile`` (in place; Blender keeps the previous version
as ``scene.blend1``), or with ``bpy.ops.wm.save_as_mainfile`` to ``--save-as PATH``. Ctrl-C stops after
restoring the frame in progress and still saves the frames done.

On workers: with ``--workers N`` (local Ray workers; 0 = in this process, without Ray) or ``--address ADDR`` (a
running Ray cluster) the frames go to ``python -m posecore batch`` instead (:mod:`addon.distributed`): chunks of
``--chunk`` frames, each frame warm-started from the one before, results in ``DIR/frame_NNNN/`` and
``DIR/summary.json``, a re-run redoing only the missing frames; then the fitted poses (smoothed over ``--smooth``
frames if asked) are keyed onto the armature and the .blend saved. Ray must import in the Python that runs this.

Exit status: 0 done; 2 bad input, with one line on stderr (missing .blend, no PoseFit body, bad frame range,
missing target images, ...); 1 other failures (on workers: a frame failed); 130 interrupted.

The extension's code comes from an enabled PoseFit extension if there is one, else from the checkout this file
sits in (registered for this process only, and unregistered again before the script ends: Blender 4.2
segfaults and 4.5 hangs at exit when a script leaves an add-on module registered).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pathlib
import sys
import time
from types import ModuleType

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKOUT_PACKAGE = "posefit_checkout"
"""Module name the checkout is registered under when no PoseFit extension is enabled."""
EXIT_BAD_INPUT = 2
PREFIX = "posefit batch"


class BadInputError(Exception):
    """Bad input found by the script itself (message: one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInputError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = _Parser(prog="addon/batch.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "blend", nargs="?", default=None, help="the .blend to open (optional under Blender: the open one)"
    )
    parser.add_argument("--frames", default=None, help="FIRST-LAST, a frame or a comma list (default: the scene's)")
    parser.add_argument("--out", default=None, help="folder for per-frame result files (frame_NNNN/)")
    parser.add_argument("--save-as", default=None, help="save the .blend here instead of in place")
    parser.add_argument("--target", default=None, help="override the target (frame_####.png, a folder, a movie)")
    parser.add_argument("--target-offset", type=int, default=None, help="image number = frame + offset")
    parser.add_argument("--mask", default=None, help="person mask image or sequence (white = person)")
    parser.add_argument("--mask-from-alpha", action="store_true", help="use the target's alpha channel as mask")
    parser.add_argument("--vertex-group", default=None, help="the look's vertex group ('' = the whole body)")
    parser.add_argument("--preset", default=None, help="optimisation preset")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per frame")
    parser.add_argument("--fit-size", type=int, default=None, help="longer image side while fitting, pixels")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--detect-first", action="store_true", help="start the first frame from the detected pose")
    parser.add_argument("--vposer", default=None, help="VPoser folder (else the add-on's 'VPoser folder' preference)")
    workers = parser.add_argument_group(
        "on workers", "hand the frames to posecore's batch (Ray) instead of fitting them here; needs --out"
    )
    workers.add_argument("--workers", type=int, default=None, help="local Ray workers (0 = posecore's serial run)")
    workers.add_argument("--address", default=None, help="join a running Ray cluster (auto, HOST:PORT, ray://...)")
    workers.add_argument("--chunk", type=int, default=16, help="frames per chunk, warm-started in order")
    workers.add_argument("--smooth", type=float, default=0.0, help="key poses smoothed over SIGMA frames")
    return parser


def script_args(argv: list[str], in_blender: bool) -> list[str]:
    """The script's own arguments: after ``--`` (always so under the Blender binary), else ``argv[1:]``."""
    if "--" in argv:
        return argv[argv.index("--") + 1 :]
    return [] if in_blender else argv[1:]


def load_extension() -> ModuleType:
    """The extension's ``addon`` package: of an enabled PoseFit extension, else of this checkout (registered)."""
    import bpy

    for name in bpy.context.preferences.addons.keys():  # noqa: SIM118 (a Blender collection)
        if (name == "posefit" or name.endswith(".posefit")) and name in sys.modules:
            return importlib.import_module(f"{name}.addon")
    if CHECKOUT_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            CHECKOUT_PACKAGE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[CHECKOUT_PACKAGE] = module
        spec.loader.exec_module(module)
        module.register()
        _registered.append(module)
    return importlib.import_module(f"{CHECKOUT_PACKAGE}.addon")


_registered: list[ModuleType] = []
"""The checkout package while this script has it registered (see :func:`unload_extension`)."""


def unload_extension() -> None:
    """Unregister the checkout if :func:`load_extension` registered it, and forget its modules, so Blender's
    exit finds no add-on classes it did not register itself."""
    while _registered:
        module = _registered.pop()
        module.unregister()
        for name in [n for n in sys.modules if n == CHECKOUT_PACKAGE or n.startswith(CHECKOUT_PACKAGE + ".")]:
            del sys.modules[name]


def open_blend(path: str | None) -> None:
    """Open ``path`` (or keep the file Blender already opened)."""
    import bpy

    if path is None:
        if not bpy.data.filepath:
            raise BadInputError("no .blend given: pass one (python addon/batch.py scene.blend ...)")
        return
    blend = pathlib.Path(path)
    if not blend.is_file():
        raise BadInputError(f"{blend}: .blend file not found")
    if bpy.data.filepath and pathlib.Path(bpy.data.filepath).resolve() == blend.resolve():
        return
    try:
        bpy.ops.wm.open_mainfile(filepath=str(blend.resolve()))
    except RuntimeError as exc:
        raise BadInputError(f"{blend}: Blender cannot open it ({str(exc).strip().splitlines()[-1]})") from None


def apply_overrides(settings: object, args: argparse.Namespace) -> None:
    """Copy the command-line overrides onto ``scene.posefit``."""
    if args.target is not None:
        settings.target_path = str(pathlib.Path(args.target).resolve())
    if args.mask is not None:
        settings.mask_path = str(pathlib.Path(args.mask).resolve())
    if args.detect_first:
        settings.detect_first_frame = True
    if args.vposer is not None:
        os.environ["POSEFIT_VPOSER"] = str(pathlib.Path(args.vposer).resolve())
    if args.mask_from_alpha:
        settings.mask_from_alpha = True
    for option, prop in (
        ("target_offset", "target_offset"),
        ("vertex_group", "vertex_group"),
        ("iterations", "iterations"),
        ("fit_size", "fit_size"),
    ):
        value = getattr(args, option)
        if value is not None:
            setattr(settings, prop, value)
    if args.preset is not None:
        from posecore.fitting.presets import PRESETS

        if args.preset not in PRESETS:
            raise BadInputError(f"unknown preset {args.preset!r} (choose from {', '.join(sorted(PRESETS))})")
        settings.preset = args.preset


def run(args: argparse.Namespace) -> int:
    """Open, fit every frame, write results, save. Returns the exit status."""
    import bpy
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    open_blend(args.blend)
    addon = load_extension()
    frames = importlib.import_module(f"{addon.__name__}.frames")
    context = bpy.context
    scene = context.scene
    apply_overrides(scene.posefit, args)
    if args.frames is None:
        frame_list = frames.parse_frame_range(f"{scene.frame_start}-{scene.frame_end}")
    else:
        frame_list = frames.parse_frame_range(args.frames)
    out = pathlib.Path(args.out) if args.out else None
    start = time.perf_counter()
    if args.workers is not None or args.address:
        return run_on_workers(args, addon, frame_list, start)

    def frame_done(result: object) -> None:
        first, last = result.first, result.last
        where = ""
        if out is not None:
            folder = frames.write_frame_results(out, result, {"blend": bpy.data.filepath})
            where = f" -> {folder}"
        print(
            f"{PREFIX}: frame {result.frame} done ({len(driver.done)}/{len(frame_list)}): "
            f"loss {first.loss:.4g} -> {last.loss:.4g}, {last.iteration} iterations, "
            f"{last.elapsed_s:.1f} s{where}",
            flush=True,
        )

    operators = importlib.import_module(f"{addon.__name__}.operators")
    detect = operators.first_frame_detector(context)
    driver = frames.FrameRangeDriver(context, frame_list, on_frame_done=frame_done, detect=detect)
    print(
        f"{PREFIX}: {bpy.data.filepath}: fitting {len(frame_list)} frame(s) {frame_list[0]}..{frame_list[-1]}, "
        f"{driver.steps_per_frame - 1} iterations each, target {driver.source.kind} {driver.source.path}",
        flush=True,
    )
    status = 0
    try:
        while not driver.complete:
            if driver.driver is None:
                print(f"{PREFIX}: frame {driver.frame}: {driver.source.describe(driver.frame)}", flush=True)
            driver.step()
        driver.finish()
    except KeyboardInterrupt:
        driver.cancel()
        print(f"{PREFIX}: interrupted at frame {driver.frame}; saving the {len(driver.done)} frame(s) done", flush=True)
        status = 130
    except Exception:
        driver.cancel()
        raise
    save(args.save_as)
    print(
        f"{PREFIX}: {len(driver.done)} frame(s) in {time.perf_counter() - start:.1f} s; saved {bpy.data.filepath}",
        flush=True,
    )
    return status


def check_worker_options(args: argparse.Namespace) -> None:
    """Refuse worker options that cannot work, before anything runs."""
    on_workers = args.workers is not None or bool(args.address)
    if on_workers and not args.out:
        raise BadInputError("--workers and --address need --out DIR: the workers write every frame's results there")
    if args.workers is not None and args.workers < 0:
        raise BadInputError(f"--workers must be 0 (serial, no Ray) or more, got {args.workers}")
    if args.chunk < 1:
        raise BadInputError(f"--chunk must be at least 1, got {args.chunk}")
    if not args.smooth >= 0:
        raise BadInputError(f"--smooth must be a number of frames >= 0, got {args.smooth}")
    if args.smooth and not on_workers:
        raise BadInputError("--smooth smooths a batch on workers: add --workers N (0 = serial) or --address")


def run_on_workers(args: argparse.Namespace, addon: ModuleType, frame_list: list[int], start: float) -> int:
    """Fit the frames with posecore's batch (Ray), key the results, save. Returns the exit status."""
    import bpy

    distributed = importlib.import_module(f"{addon.__name__}.distributed")
    operators = importlib.import_module(f"{addon.__name__}.operators")
    context = bpy.context
    detect = operators.first_frame_detector(context)
    if detect is not None:
        context.scene.frame_set(frame_list[0])
        detect(frame_list[0])
        print(f"{PREFIX}: frame {frame_list[0]}: started from the pose detected in its image", flush=True)

    def log(line: str) -> None:
        print(f"{PREFIX}: {line}", flush=True)

    status = 0
    try:
        summary = distributed.run_on_workers(context, frame_list, args.out, args.workers, args.address, args.chunk,
                                             args.smooth, max(args.threads, 1), log)  # fmt: skip
        keyed = summary["keyed"]
        if summary["failed"]:
            status = 1
    except KeyboardInterrupt:
        print(f"{PREFIX}: interrupted; saving the frames done", flush=True)
        keyed, status = [], 130
    save(args.save_as)
    if status != 130:
        smoothed = f", smoothed over {args.smooth:g} frames" if args.smooth else ""
        print(
            f"{PREFIX}: {len(keyed)} of {len(frame_list)} frame(s) fitted and keyed{smoothed} in "
            f"{time.perf_counter() - start:.1f} s; saved {bpy.data.filepath}",
            flush=True,
        )
    return status


def save(save_as: str | None) -> None:
    """``save_mainfile`` in place, or ``save_as_mainfile`` to ``save_as``."""
    import bpy

    if save_as:
        target = pathlib.Path(save_as).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(target))
    else:
        bpy.ops.wm.save_mainfile()


def main(argv: list[str] | None = None) -> int:
    """Entry point for both ways of running; returns the exit status."""
    argv = sys.argv if argv is None else argv
    try:
        import bpy
    except ImportError as exc:
        print(f"{PREFIX}: error: the bpy module does not import ({exc}); pip install bpy==5.0.1", file=sys.stderr)
        return 1
    in_blender = bool(bpy.app.binary_path)
    try:
        args = build_parser().parse_args(script_args(argv, in_blender))
        check_worker_options(args)
        sys.path.append(str(ROOT))  # posecore, from the checkout (an installed extension bundles it)
        from posecore.errors import PoseFitError

        try:
            return run(args)
        except PoseFitError as exc:
            raise BadInputError(str(exc)) from None
        finally:
            unload_extension()
    except BadInputError as exc:
        print(f"{PREFIX}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    # Plain Python puts this file's folder first on sys.path; its modules are package members, not top level.
    if sys.path and pathlib.Path(sys.path[0]).resolve() == pathlib.Path(__file__).resolve().parent:
        del sys.path[0]
    code = main()
    if code:
        sys.exit(code)
