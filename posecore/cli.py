"""Command line: ``python -m posecore fit ...``, ``python -m posecore detect ...`` and ``python -m posecore demo``.

Exit status 0 on success, 2 with one clear line on stderr for bad input, 1 for other failures.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import torch

from posecore.errors import MAX_MESSAGE_CHARS, ParameterError, PoseFitError, shorten
from posecore.fitting.report import history_of, summarise


def _threads(value: int | None) -> None:
    if value:
        torch.set_num_threads(value)


def _progress(total: int, enabled: bool):
    """A tqdm progress bar on a terminal, else a no-op."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="it", dynamic_ncols=True, leave=False)


def run_fit_loop(fitter, show_progress: bool) -> list:
    """Drive the fitter to the end with an optional progress bar; returns all states."""
    bar = _progress(fitter.preset.iterations + 1, show_progress)
    states = []
    try:
        for state in fitter.steps():
            states.append(state)
            if bar is not None:
                bar.set_postfix(loss=f"{state.loss:.4g}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return states


def write_outputs(out: Path, body, fitter, states, target, metrics, settings, output_camera=None) -> None:
    """Write figure.png, result.json and fit.npz. ``output_camera`` maps the fitted camera to the one saved (a
    person crop's fit is saved in the photo's camera: :meth:`posecore.fitting.setup.PreparedFit.output_camera`)."""
    from posecore.figures import fit_figure_png
    from posecore.results import fit_arrays, result_record, write_fit_outputs

    last = states[-1]
    camera = output_camera(last.camera) if output_camera is not None else last.camera
    error = metrics["image_error_percent"]
    title = f"{settings.get('preset')} / {settings.get('renderer')}: image error {error['before']:.2f}%"
    title += f" -> {metrics['image_error_percent']['after']:.2f}%"
    if "mpjpe_mm" in metrics:
        title += f", MPJPE {metrics['mpjpe_mm']['before']:.0f} -> {metrics['mpjpe_mm']['after']:.0f} mm"
    crop = settings.get("person_crop")
    if crop:
        title += f" (crop {tuple(crop['window'])} of the photo)"
    png = fit_figure_png(
        target,
        states[0].render,
        last.render,
        [s.loss for s in states],
        title,
        labels=("iteration 1", f"iteration {last.iteration}"),
    )
    record = result_record(body, last.params, camera, last.camera_angle, history_of(states), metrics, settings)
    write_fit_outputs(out, record, fit_arrays(body, last.params, camera, last.camera_angle), png)


# ---------------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
    from posecore.bodies import load_body_model
    from posecore.demo import make_demo_case
    from posecore.fitting.look import Look
    from posecore.fitting.loop import FitProblem, PoseFitter
    from posecore.fitting.presets import get_preset
    from posecore.render import get_renderer

    _threads(args.threads)
    t0 = time.perf_counter()
    body = load_body_model("anny")
    case = make_demo_case(body, size=args.size)
    renderer = get_renderer(args.renderer)
    preset = get_preset(args.preset).with_overrides(iterations=args.iterations)
    look = Look(case.camera, part=args.part)
    fitter = PoseFitter(FitProblem(body, case.initial, case.target, look, renderer), preset)
    states = run_fit_loop(fitter, sys.stderr.isatty())
    metrics = summarise(body, states, case.target, case.truth)
    settings = {
        "command": "demo",
        "preset": preset.name,
        "renderer": renderer.name,
        "model": "anny",
        "size": args.size,
        "part": args.part,
        "threads": torch.get_num_threads(),
    }
    write_outputs(Path(args.out), body, fitter, states, case.target, metrics, settings)
    m = metrics
    print(
        f"PoseFit demo ({preset.name} preset, {renderer.name} renderer, {args.size}x{args.size}, "
        f"{torch.get_num_threads()} thread(s)):"
    )
    print(
        f"  MPJPE        {m['mpjpe_mm']['before']:7.1f} mm -> {m['mpjpe_mm']['after']:7.1f} mm  "
        f"({100 * (1 - m['mpjpe_mm']['after'] / m['mpjpe_mm']['before']):.0f}% lower)"
    )
    print(f"  PA-MPJPE     {m['pa_mpjpe_mm']['before']:7.1f} mm -> {m['pa_mpjpe_mm']['after']:7.1f} mm")
    print(f"  image error  {m['image_error_percent']['before']:7.3f} %  -> {m['image_error_percent']['after']:7.3f} %")
    print(
        f"  {m['iterations']} iterations in {m['seconds']:.1f} s ({1000 * m['seconds_per_iteration']:.0f} ms/it); "
        f"total {time.perf_counter() - t0:.1f} s"
    )
    print(f"  wrote {args.out}/figure.png, result.json, fit.npz")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from posecore.bodies import params_from_init
    from posecore.fitting.setup import FitOptions, prepare_fit
    from posecore.io.init_files import read_init

    _threads(args.threads)
    options, prepare_kwargs, photo = initial_from_photo(args, FitOptions.from_args(args))
    prepared = prepare_fit(options, **prepare_kwargs)
    add_photo_terms(prepared, args, photo)
    prepared.crop_to_person()
    fitter = prepared.fitter()
    states = run_fit_loop(fitter, sys.stderr.isatty())
    truth = None
    if args.truth:
        truth = params_from_init(prepared.body, read_init(args.truth), vposer=prepared.problem.vposer)
    metrics = summarise(prepared.body, states, prepared.problem.target, truth)
    settings = prepared.settings("fit")
    settings.update(photo_settings(prepared, args, photo))
    settings["hypotheses"] = fitter.search.summary() if fitter.search is not None else None
    write_outputs(Path(args.out), prepared.body, fitter, states, prepared.problem.target, metrics, settings,
                  prepared.output_camera)  # fmt: skip
    print(json.dumps({"out": args.out, **{k: v for k, v in metrics.items() if isinstance(v, dict)}}, indent=1))
    return 0


def initial_from_photo(args: argparse.Namespace, options):
    """Detect the person when the fit needs it: no ``--init``, ``--mask auto``, ``--keypoints detect`` or a
    ``--person`` box (with an init file, the box's detection then gives the mask and the keypoint term).

    Returns:
        (options for :func:`posecore.fitting.setup.prepare_fit`, its keyword arguments (the loaded body, and the
        photo start as the initialisation when there is no ``--init``), the
        :class:`posecore.detect.photo.PhotoStart` or None).
    """
    from dataclasses import replace

    if args.mask == "auto":
        options = replace(options, mask=None)  # the detected mask is added after set-up
    wants = not args.init or args.mask == "auto" or args.keypoints == "detect" or args.person is not None
    if not wants:
        return options, {}, None
    from posecore.bodies import load_body_model
    from posecore.detect.photo import photo_start
    from posecore.fitting.setup import fit_size
    from posecore.io.targets import read_target_image

    body = load_body_model(options.model)
    target = read_target_image(args.image)  # decoded once: detection and the fit share it
    size = fit_size(target.size, options.size)
    kwargs = {"body": body, "target": target}
    photo = photo_start(args.image, body, size=size, person=args.person, image=target.rgb)
    if not args.init:
        kwargs["init"] = photo.as_body_init(body)
    return options, kwargs, photo


def add_photo_terms(prepared, args: argparse.Namespace, photo) -> None:
    """Add what a detection gives to a prepared fit: the person mask (unless a mask file or the alpha channel gave
    one), the keypoint term, ``--keypoint-weight``, and for a photo start the body's translation as a parameter.
    A fit from an init file that detected only for its hypothesis search (no ``--keypoints``, ``--mask auto`` or
    ``--person``) uses the landmarks to score the candidates and the mask to estimate the body's colour, and
    leaves both out of its own objective (a poor detection, e.g. in a small image, cannot pull the pose)."""
    problem = prepared.problem
    if photo is None and args.keypoints is None:  # 'none' refuses landmarks; a file or 'detect' gives them to the fit
        prepared.add_search_cues()  # a fit from an init file: landmarks only score the hypothesis search
    if photo is not None and problem.person_mask is None and args.mask in (None, "auto"):
        problem.person_mask = photo.mask
    if not problem.cues_for_search_only:
        problem.keypoints = keypoints_for_fit(args, prepared.body, photo, prepared.size)
    if photo is not None and problem.keypoints is not None and args.keypoints in (None, "detect"):
        problem.bone_directions = photo.bone_directions(prepared.body)
    prepared.preset = prepared.preset.with_overrides(keypoint_weight=args.keypoint_weight)
    if photo is not None and not args.init and not args.optimise:
        from posecore.detect.photo import photo_fit_preset

        prepared.preset = photo_fit_preset(prepared.preset)


def photo_settings(prepared, args: argparse.Namespace, photo) -> dict:
    """The ``result.json`` settings a photo start adds or changes."""
    return {
        "init": str(args.init) if args.init else None,
        "mask": "auto" if photo is not None and not args.mask and not args.mask_from_alpha else args.mask,
        "keypoints": prepared.problem.keypoints is not None and not prepared.problem.cues_for_search_only,
        "landmarks_for_hypotheses": prepared.problem.cues_for_search_only,
        "keypoint_weight": prepared.preset.keypoint_weight,
        "photo_start": photo.summary() if photo is not None else None,
    }


def keypoints_for_fit(args: argparse.Namespace, body, photo, size: tuple[int, int]):
    """The fit's 2D keypoints: ``--keypoints none``, a landmarks.json file, or the detection (the default when
    there is one). Returns a :class:`posecore.fitting.keypoints.Keypoints2D` or None."""
    choice = args.keypoints
    if choice == "none" or (choice is None and photo is None):
        return None
    if choice in (None, "detect"):
        return photo.init.keypoints
    from posecore.detect.files import read_landmarks
    from posecore.detect.initialise import landmark_initialiser

    detection = read_landmarks(choice).scaled(*size)
    return landmark_initialiser(body).keypoints(detection)


def cmd_detect(args: argparse.Namespace) -> int:
    from posecore.bodies import load_body_model
    from posecore.detect.files import write_detect_outputs
    from posecore.detect.photo import photo_start
    from posecore.io.images import load_image

    _threads(args.threads)
    photo = load_image(args.image)
    height, width = photo.shape[:2]
    if args.size:
        scale = args.size / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        photo = load_image(args.image, size=(width, height))
    body = load_body_model(args.model)
    start = photo_start(args.image, body, size=(width, height), person=args.person)
    settings = {"command": "detect", "image": str(args.image), "model": args.model, "person": args.person}
    write_detect_outputs(Path(args.out), photo, body, start, settings)
    print(json.dumps({"out": args.out, **start.summary()}))
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"posefit: error: {shorten(message, MAX_MESSAGE_CHARS)} (see {self.prog} --help)\n")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {shorten(text, 40)!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _finite_non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {shorten(text, 40)!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {shorten(text, 40)}")
    return value


def cmd_batch(args: argparse.Namespace) -> int:
    from posecore.batch.plan import BatchJob, count_init_frames
    from posecore.batch.runner import run_batch
    from posecore.fitting.setup import FitOptions, preset_for
    from posecore.io.frame_sources import open_frame_source

    if args.workers is not None and args.workers < 0:
        raise ParameterError(f"--workers must be 0 (serial, no Ray) or more, got {args.workers}")
    options = FitOptions.from_args(args)
    preset_for(options)  # bad preset options fail here, not once per frame
    source = open_frame_source(args.frames)
    job = BatchJob(source, options, str(args.out), args.chunk, count_init_frames(args.init, len(source.frames)),
                   threads=args.threads or 1)  # fmt: skip
    summary = run_batch(job, workers=args.workers, address=args.address, show_progress=sys.stderr.isatty())
    if summary["done"] == summary["frames"]:
        from posecore.batch.sequence_files import write_sequence_files

        summary["sequence_files"] = [str(p) for p in write_sequence_files(job, args.smooth)]
    print(json.dumps({k: v for k, v in summary.items() if k != "fitted_this_run"}, indent=1))
    return 0 if not summary["failed"] else 1


PERSON_CROP_ARGUMENT = {
    "choices": ("auto", "on", "off"),
    "default": "auto",
    "help": "fit on a window around the person resized to --size (default 256): 'auto' when the person covers under "
    "half the frame or the photo is over twice that size; 'on' always; 'off' fits the whole frame",
}


def build_parser() -> argparse.ArgumentParser:
    from posecore.fitting.parts import PART_NAMES
    from posecore.fitting.presets import DEFAULT_PRESET, PRESETS, UPSTREAM_PARAMETERS
    from posecore.render import DEFAULT_RENDERER, RENDERER_NAMES

    parser = _OneLineParser(prog="python -m posecore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--renderer", choices=RENDERER_NAMES, default=DEFAULT_RENDERER)
        p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET)
        p.add_argument(
            "--hypotheses", default="auto",
            help="try a single view's ambiguous alternatives first (swapped arms/legs, flipped elbows/knees, body "
            "turned round): auto (the preset's, when landmarks are detected), off, or a number to brief-fit",
        )  # fmt: skip
        p.add_argument(
            "--iterations", type=_int_at_least(0), default=None, help="override the preset's iteration count"
        )
        p.add_argument("--part", default=None, help=f"selective fit of one part: {', '.join(PART_NAMES)} or joint:NAME")
        p.add_argument("--threads", type=_int_at_least(1), default=None, help="torch CPU threads")
        p.add_argument("--out", required=True, help="output folder (written all at once)")
        p.set_defaults(out_is_folder=True)  # main() checks it before any work

    demo = sub.add_parser("demo", help="fit the free model to a target rendered from a hidden pose")
    common(demo)
    demo.add_argument("--size", type=_int_at_least(8), default=256, help="image size in pixels")
    demo.set_defaults(func=cmd_demo)

    fit = sub.add_parser("fit", help="fit a body initialisation to a photo")
    common(fit)
    fit.add_argument("--image", required=True, help="target photo")
    fit.add_argument(
        "--init",
        default=None,
        help="initialisation (.pkl SMPLify-X, .npz, .json, fit.npz); without it the person is detected in the photo",
    )
    fit.add_argument("--frame", type=int, default=0, help="frame of a multi-frame initialisation")
    fit.add_argument(
        "--vposer",
        default=None,
        help="your VPoser folder (vposer_v1_0/ or V02_05/): decodes a "
        "32-number body_pose and lets theta_b be VPoser's code (--optimise vposer; the paper preset)",
    )
    fit.add_argument(
        "--flat-hand-mean",
        action="store_true",
        help="the init's hand poses were made with "
        "flat_hand_mean=True (SMPLify-X's default is False: relative to the mean hand pose)",
    )
    fit.add_argument("--model", default="anny", help="anny or smplx:DIR[:gender]")
    fit.add_argument(
        "--mask", default=None, help="person mask image (white = person) or 'auto' (detected; default without --init)"
    )
    fit.add_argument("--person", default=None, help="x0,y0,x1,y1: detect the person inside this box of the photo")
    fit.add_argument(
        "--keypoints",
        default=None,
        help="2D keypoint term: 'detect', 'none' or a landmarks.json from 'detect' (default: detected without --init)",
    )
    fit.add_argument("--mask-from-alpha", action="store_true", help="use the photo's alpha channel as mask")
    fit.add_argument("--crop", default=None, help="x0,y0,x1,y1: only this rectangle of the frame counts")
    fit.add_argument("--render-part-only", action="store_true", help="render only the part (the paper's Fig. 3)")
    fit.add_argument("--person-crop", **PERSON_CROP_ARGUMENT)
    fit.add_argument("--optimise", default=None, help=f"comma list of {', '.join(UPSTREAM_PARAMETERS)}")
    fit.add_argument("--prior-weight", type=_finite_non_negative, default=None, help="lambda of Eq. 5")
    fit.add_argument(
        "--keypoint-weight", type=_finite_non_negative, default=None, help="weight of the 2D keypoint term"
    )
    fit.add_argument("--truth", default=None, help="ground-truth parameters (fit.npz) for MPJPE")
    fit.add_argument(
        "--size", type=_int_at_least(8), default=None, help="resize so the longer side has this many pixels"
    )
    fit.set_defaults(func=cmd_fit)

    batch = sub.add_parser("batch", help="fit every frame of a folder, glob or movie, on Ray")
    common(batch)
    batch.add_argument("--frames", required=True, help="a folder of images, a glob pattern or a movie file")
    batch.add_argument("--init", default=None, help="pose starting each chunk: one frame, or one per frame")
    batch.add_argument("--model", default="anny", help="anny or smplx:DIR[:gender]")
    batch.add_argument("--vposer", default=None, help="your VPoser folder (decodes a 32-number body_pose init)")
    batch.add_argument(
        "--workers", type=_int_at_least(0), default=None, help="Ray workers (default: every CPU); 0 = serial"
    )
    batch.add_argument("--address", default=None, help="join a running Ray cluster (auto, HOST:PORT, ray://...)")
    batch.add_argument("--chunk", type=_int_at_least(1), default=16, help="frames per chunk (warm-started in order)")
    batch.add_argument(
        "--size", type=_int_at_least(8), default=None, help="resize so the longer side has this many pixels"
    )
    batch.add_argument("--crop", default=None, help="x0,y0,x1,y1: only this rectangle of the frame counts")
    batch.add_argument("--render-part-only", action="store_true", help="render only the part")
    batch.add_argument("--person-crop", **PERSON_CROP_ARGUMENT)
    batch.add_argument("--optimise", default=None, help=f"comma list of {', '.join(UPSTREAM_PARAMETERS)}")
    batch.add_argument("--prior-weight", type=_finite_non_negative, default=None, help="lambda of Eq. 5")
    batch.add_argument(
        "--smooth", type=_finite_non_negative, default=0.0, help="also write smoothed.npz: Gaussian sigma in frames"
    )
    batch.set_defaults(func=cmd_batch)

    detect = sub.add_parser("detect", help="detect the person in a photo: landmarks, mask, init.npz, overlay")
    detect.add_argument("--image", required=True, help="the photo")
    detect.add_argument("--model", default="anny", help="anny or smplx:DIR[:gender]: the body to initialise")
    detect.add_argument("--person", default=None, help="x0,y0,x1,y1: detect the person inside this box")
    detect.add_argument(
        "--size", type=_int_at_least(8), default=None, help="resize so the longer side has this many pixels"
    )
    detect.add_argument("--threads", type=_int_at_least(1), default=None, help="torch CPU threads")
    detect.add_argument("--out", required=True, help="output folder (written all at once)")
    detect.set_defaults(func=cmd_detect)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every clean-up path runs."""


def _raise_terminated(signum: int, frame: object) -> NoReturn:
    raise _Terminated()


def _error(message: object) -> None:
    print(f"posefit: error: {shorten(message, MAX_MESSAGE_CHARS)}", file=sys.stderr)


def _interrupted(kind: str, out: str | None, written_before: int) -> None:
    from posecore.io.atomic import committed_output_dirs

    written = committed_output_dirs()[written_before:]
    if len(written) > 3:  # a batch: its frame folders
        parents = sorted({str(Path(p).parent) for p in written})
        print(f"posefit: {kind}: interrupted after {len(written)} result folders were written to "
              f"{shorten(', '.join(parents))}; the same command resumes", file=sys.stderr)  # fmt: skip
    elif written:
        where = ", ".join(shorten(p) for p in written)
        print(f"posefit: {kind}: interrupted after the results were written to {where}", file=sys.stderr)
    elif out is not None:
        state = "unchanged" if Path(out).exists() or Path(out).is_symlink() else "not created"
        print(f"posefit: {kind}: interrupted; nothing was written ({shorten(out)} is {state})", file=sys.stderr)
    else:
        print(f"posefit: {kind}: interrupted; nothing was written", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run a command. Exit status: 0 success; 2 bad input or unusable --out (one line on stderr); 1 other
    failures (one line); 130 / 143 interrupted by SIGINT / SIGTERM (saying what was written)."""
    from posecore.io.atomic import check_output_dir, committed_output_dirs

    written_before = len(committed_output_dirs())
    previous_sigterm = None
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
    out = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        out = getattr(args, "out", None)
        if out is not None and getattr(args, "out_is_folder", False):
            check_output_dir(out)  # before any work: a file, a dangling link, a foreign folder, no permission
        return args.func(args)
    except PoseFitError as exc:
        _error(exc)
        return 2
    except (FileExistsError, NotADirectoryError) as exc:
        _error(exc)
        return 2
    except _Terminated:
        _interrupted("SIGTERM", out, written_before)
        return 143
    except KeyboardInterrupt:
        _interrupted("SIGINT", out, written_before)
        return 130
    except MemoryError:
        _error("out of memory (a smaller --size or fewer --threads may help)")
        return 1
    except OSError as exc:  # disk full, permissions changed mid-run, ...
        _error(f"{exc.filename or ''}: {exc.strerror or exc}" if exc.filename else exc)
        return 1
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
