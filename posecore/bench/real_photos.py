"""Real-photo 2D benchmark: photos nobody here took (mmpose's annotated test sets), fitted from the photo alone.

    python -m posecore.bench real-photos --mmpose DIR [--sets coco,mpii,...] [--threads 1] [--limit N]
                                         [--figures DIR] [--out docs/]

``DIR`` is a checkout of open-mmlab/mmpose or a bare git mirror of it (the sets are extracted at run time and never
kept; see :mod:`posecore.bench.real_photo_sets`). For every annotated person it runs what
``python -m posecore fit --image PHOTO --out DIR`` runs (no ``--init``; the default ``fast`` preset and person crop),
adding ``--person BOX`` (the annotation's box grown by 20 % on each side) when the photo shows several annotated people,
and compares with the 2D truth of the 12 limb joints (shoulders, elbows, wrists, hips, knees, ankles):

- ``mediapipe``: MediaPipe's own landmarks;
- ``start``: the detected start's joints projected by its camera;
- ``fit``: the fitted body's joints projected by the saved camera (the photo's).

Per person: PCK@0.1 (fraction of labelled joints within 0.1 of the person box's longer side) and the mean pixel
error divided by that side; where COCO gives a polygon mask, the mask IoU of MediaPipe's mask (> 0.5), the start's and
the fit's rendered silhouettes. Averages are over detected people; "detected" counts single-person photos apart.
``--figures DIR`` writes one overlay per person there (never commit them: the photos' licences are the datasets').
The table goes to ``OUT/results.md`` between ``<!-- real-photos:start -->`` and ``<!-- real-photos:end -->``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from posecore.bench.accuracy import machine_line
from posecore.bench.markdown_sections import write_marked_section
from posecore.bench.real_photo_sets import LIMBS, SETS, Person, data_folder, load_people, scratch_folder

START_MARKER = "<!-- real-photos:start -->"
END_MARKER = "<!-- real-photos:end -->"
SOURCES = ("mediapipe", "start", "fit")
MEDIAPIPE_LIMBS = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
"""MediaPipe landmark of each of :data:`LIMBS`."""
BOX_MARGIN = 0.2
PCK_THRESHOLD = 0.1


@dataclass
class PersonResult:
    """One person's scores (None where not measured)."""

    name: str
    single: bool
    detected: bool
    found_by: str = ""
    pck: dict[str, float] = field(default_factory=dict)
    error: dict[str, float] = field(default_factory=dict)
    iou: dict[str, float] = field(default_factory=dict)
    joint_errors: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    iterations: int = 0


def limb_points(body, params, camera) -> np.ndarray:
    """(12, 2) pixels: the body's :data:`LIMBS` joints (as the keypoint term defines them) projected by ``camera``."""
    from posecore.detect.joint_map import POINTS, model_joints

    with torch.no_grad():
        joints = body(params).joints
        points = torch.stack([joints[[j for n in POINTS[limb].joints for j in model_joints(body, n)]].mean(0)
                              for limb in LIMBS])  # fmt: skip
        return camera.project(points)[0].numpy()


def silhouette(body, params, camera) -> np.ndarray:
    """(H, W) bool: pixels the posed body covers, seen by ``camera``."""
    from posecore.render.raster import rasterize

    with torch.no_grad():
        vertices = body(params).vertices
        uv, depth = camera.project(vertices)
        faces = rasterize(uv, depth, body.faces, camera.width, camera.height, cull_backfaces=False)
    return (faces >= 0).numpy()


def scores(person: Person, predicted: np.ndarray) -> tuple[float, float]:
    """(PCK@0.1, mean error / box size) over the labelled joints."""
    err = np.linalg.norm(predicted[person.labelled] - person.joints[person.labelled], axis=1)
    return float((err < PCK_THRESHOLD * person.box_size).mean()), float(err.mean() / person.box_size)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def person_box_argument(person: Person, width: int, height: int) -> str:
    """``--person`` for the annotation's box grown by :data:`BOX_MARGIN` of its sides, clipped to the photo."""
    x0, y0, x1, y1 = person.box
    mx, my = BOX_MARGIN * (x1 - x0), BOX_MARGIN * (y1 - y0)
    box = (max(0, int(x0 - mx)), max(0, int(y0 - my)), min(width, int(x1 + mx + 1)), min(height, int(y1 + my + 1)))
    return ",".join(str(v) for v in box)


def measure(person: Person, figures: Path | None, fit_options: tuple[str, ...] = ()) -> PersonResult:
    """Fit one person from the photo alone and score MediaPipe, the start and the fit.

    ``fit_options``: more ``fit`` command-line options (``--person-crop off``, ``--keypoint-weight W``, ...)."""
    from posecore.cli import add_photo_terms, build_parser, initial_from_photo
    from posecore.detect.landmarks import NoPersonFoundError
    from posecore.fitting.setup import FitOptions, prepare_fit
    from posecore.io.images import image_size

    width, height = image_size(person.image)
    argv = ["fit", "--image", str(person.image), "--out", "unused", *fit_options]
    if not person.single:
        argv += ["--person", person_box_argument(person, width, height)]
    args = build_parser().parse_args(argv)
    result = PersonResult(person.name, person.single, detected=False)
    start = time.perf_counter()
    try:
        options, kwargs, photo = initial_from_photo(args, FitOptions.from_args(args))
    except NoPersonFoundError:
        result.seconds = time.perf_counter() - start
        return result
    result.detected, result.found_by = True, photo.detection.found_by
    prepared = prepare_fit(options, **kwargs)
    add_photo_terms(prepared, args, photo)
    prepared.crop_to_person()
    states = prepared.fitter().run()
    result.seconds = time.perf_counter() - start
    last, body = states[-1], prepared.body
    result.iterations = last.iteration
    frame = prepared.output_camera(last.camera)
    if (frame.width, frame.height) != (width, height):
        raise RuntimeError(
            f"{person.name}: the fit's frame is {frame.width}x{frame.height}, the photo {width}x{height}"
        )
    predicted = {
        "mediapipe": photo.detection.points[list(MEDIAPIPE_LIMBS)],
        "start": limb_points(body, photo.init.params, photo.init.camera),
        "fit": limb_points(body, last.params, frame),
    }
    for source, points in predicted.items():
        result.pck[source], result.error[source] = scores(person, points)
        err = np.linalg.norm(points - person.joints, axis=1) / person.box_size
        result.joint_errors[source] = [
            float(e) if ok else float("nan") for e, ok in zip(err, person.labelled, strict=True)
        ]
    truth_mask = person.mask(width, height)
    if truth_mask is not None:
        result.iou["mediapipe"] = iou(truth_mask, photo.detection.mask > 0.5)
        result.iou["start"] = iou(truth_mask, silhouette(body, photo.init.params, photo.init.camera))
        result.iou["fit"] = iou(truth_mask, silhouette(body, last.params, frame))
    if figures is not None:
        write_figure(figures, person, predicted, silhouette(body, last.params, frame))
    return result


def write_figure(folder: Path, person: Person, predicted: dict[str, np.ndarray], fitted: np.ndarray) -> None:
    """An overlay around the person: truth (green), MediaPipe (blue), fit (red) and the fit's silhouette."""
    from PIL import Image, ImageDraw

    pairs = [(0, 2), (2, 4), (1, 3), (3, 5), (6, 8), (8, 10), (7, 9), (9, 11), (0, 1), (6, 7), (0, 6), (1, 7)]
    with Image.open(person.image) as im:
        image = np.asarray(im.convert("RGB"), np.float32)
    image[fitted] = 0.6 * image[fitted] + 0.4 * np.array([255, 80, 80])
    canvas = Image.fromarray(image.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    colours = {"truth": (40, 220, 40), "mediapipe": (60, 120, 255), "fit": (255, 40, 40)}
    width = max(2, round(person.box_size / 150))
    for source, points in [("truth", person.joints), ("mediapipe", predicted["mediapipe"]), ("fit", predicted["fit"])]:
        for a, b in pairs:
            if source != "truth" or (person.labelled[a] and person.labelled[b]):
                draw.line([tuple(points[a]), tuple(points[b])], fill=colours[source], width=width)
    x0, y0, x1, y1 = person.box
    pad = 0.15 * person.box_size
    box = (
        max(0, int(x0 - pad)),
        max(0, int(y0 - pad)),
        min(canvas.width, int(x1 + pad)),
        min(canvas.height, int(y1 + pad)),
    )
    folder.mkdir(parents=True, exist_ok=True)
    canvas.crop(box).save(folder / (person.name.replace("/", "_").replace("#", "_") + ".png"))


def summary(results: list[PersonResult]) -> dict:
    """Averages over detected people (IoU over those with a mask) and detection counts."""
    detected = [r for r in results if r.detected]
    out: dict = {
        "people": len(results),
        "detected": len(detected),
        "single": sum(r.single for r in results),
        "single_detected": sum(r.single and r.detected for r in results),
    }
    for source in SOURCES:
        out[f"pck_{source}"] = float(np.mean([r.pck[source] for r in detected])) if detected else float("nan")
        out[f"error_{source}"] = float(np.mean([r.error[source] for r in detected])) if detected else float("nan")
        out[f"median_error_{source}"] = (
            float(np.median([r.error[source] for r in detected])) if detected else float("nan")
        )
        ious = [r.iou[source] for r in detected if source in r.iou]
        out[f"iou_{source}"] = float(np.mean(ious)) if ious else float("nan")
    out["masks"] = sum(1 for r in detected if r.iou)
    return out


def joint_lines(results: list[PersonResult]) -> list[str]:
    """PCK@0.1 per limb joint (left and right together) over the detected people, MediaPipe / start / fit."""
    detected = [r for r in results if r.detected]
    if not detected:
        return []
    names = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
    lines = ["| PCK@0.1 per joint | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for source in SOURCES:
        errors = np.array([r.joint_errors[source] for r in detected])  # (people, 12), NaN where unlabelled
        cells = []
        for name in names:
            columns = [i for i, limb in enumerate(LIMBS) if limb.endswith(name)]
            values = errors[:, columns].ravel()
            values = values[~np.isnan(values)]
            cells.append(f"{(values < PCK_THRESHOLD).mean():.2f}")
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return lines


def _cells(values: dict[str, float], fmt: str) -> str:
    return " / ".join(format(values[s], fmt) if s in values else "-" for s in SOURCES)


HEADER = (
    "| person | single | detected (by) | PCK@0.1 MP / start / fit | error / box MP / start / fit "
    "| mask IoU MP / start / fit | s (fit iterations) |\n|---|---|---|---|---|---|---|"
)


def row_line(r: PersonResult) -> str:
    found = ("yes" + (f" ({r.found_by})" if r.found_by != "photo" else "")) if r.detected else "**no**"
    return (
        f"| {r.name} | {'yes' if r.single else ''} | {found} | {_cells(r.pck, '.2f')} | {_cells(r.error, '.3f')} "
        f"| {_cells(r.iou, '.2f')} | {r.seconds:.1f} ({r.iterations} it) |"
    )


def summary_lines(s: dict) -> list[str]:
    return [
        "| average | people | detected | PCK@0.1 | error / box (mean, median) | mask IoU |",
        "|---|---|---|---|---|---|",
        *[
            f"| {source} | {s['people']} | {s['detected']} (single-person photos {s['single_detected']}/{s['single']}) "
            f"| {s[f'pck_{source}']:.3f} | {s[f'error_{source}']:.3f}, {s[f'median_error_{source}']:.3f} "
            f"| {s[f'iou_{source}']:.3f} ({s['masks']} masks) |"
            for source in SOURCES
        ],
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.bench real-photos", description=__doc__.splitlines()[0])
    parser.add_argument("--mmpose", required=True, help="an mmpose checkout or bare git mirror (its tests/data)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma list of sets")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N people (a quick look)")
    parser.add_argument("--person-crop", default="auto", choices=("auto", "on", "off"), help="the fits' --person-crop")
    parser.add_argument("--preset", default=None, help="the fits' --preset (default: fit's default)")
    parser.add_argument("--keypoint-weight", default=None, help="the fits' --keypoint-weight (default: the preset's)")
    parser.add_argument("--figures", default=None, help="write overlays here (outside the repository)")
    parser.add_argument("--out", default=None, help="folder whose results.md gets the tables")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from posecore.errors import PoseFitError

    try:
        with scratch_folder() as scratch:
            people = load_people(data_folder(args.mmpose, Path(scratch)), tuple(args.sets.split(",")))
            people = people[: args.limit] if args.limit else people
            fit_options = ("--person-crop", args.person_crop)
            fit_options += ("--preset", args.preset) if args.preset else ()
            fit_options += ("--keypoint-weight", args.keypoint_weight) if args.keypoint_weight else ()
            print(HEADER)
            results = []
            for person in people:
                results.append(measure(person, Path(args.figures) if args.figures else None, fit_options))
                print(row_line(results[-1]), flush=True)
    except PoseFitError as exc:
        print(f"posefit bench: error: {exc}", file=sys.stderr)
        return 2
    totals = summary(results)
    print()
    print("\n".join(summary_lines(totals)))
    print()
    print("\n".join(joint_lines(results)))
    if args.out:
        command = "python -m posecore.bench real-photos " + shlex.join(argv)
        text = "\n".join(
            [
                f"Measured with `{command}` on {machine_line()}, {torch.get_num_threads()} thread(s); photos and "
                "annotations from open-mmlab/mmpose `tests/data` (read at run time, not kept here).",
                "",
                *summary_lines(totals),
                "",
                *joint_lines(results),
                "",
                HEADER,
                *[row_line(r) for r in results],
                "",
            ]
        )
        write_marked_section(Path(args.out) / "results.md", text, START_MARKER, END_MARKER, heading="Real photos (2D)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
