"""Photo-start benchmark: fits from the photo alone beside fits from the scenes' init files, with and without the
keypoint term, and the time detection and initialisation take per image.

    python -m posecore.bench photo --scenes DIR [--iterations N] [--size S] [--limit N] [--threads T]
                                   [--modes photo,init + keypoints,init] [--keypoint-weight W] [--out docs/] [--fresh]

For each whole-body scene of a set made by ``scripts/make_benchmark_scenes.py`` (selective scenes fit one part of a
given init and are left out) it runs three fits with the ``fast`` preset:

- ``photo``: no init file and no mask: MediaPipe landmarks -> body and camera (:mod:`posecore.detect`), the detected
  person mask, the keypoint term on the detected landmarks, the body's translation optimised too
  (:func:`~posecore.detect.photo.photo_fit_preset`, as ``fit`` without ``--init`` does);
- ``init + keypoints``: the scene's (faulty) init file and camera, the keypoint term on the detected landmarks;
- ``init``: the init file alone (the image term and prior only).

A photo start has its own camera (focal length from the stated default, not the truth), so joints are compared in
each fit's own camera frame with the hip centres aligned (RA-MPJPE, mm), and after a similarity alignment
(PA-MPJPE, mm). ``arms`` says whether the fitted arms (shoulders, elbows, wrists) lie nearer the true arms than the
true pose with its arms swapped left/right and mirrored (the swapped-arms scene's error), or is None when the true arms
are too symmetric to tell; arm MPJPE is over those joints.
Rows accumulate in ``OUT/photo.json`` (a later run replaces the rows of the same scene, start and keypoint weight, so
another weight can run beside the first; ``--fresh`` starts over); the tables go into
``OUT/results.md`` between ``<!-- photo:start -->`` and ``<!-- photo:end -->``, the photo fits' figure grid to
``OUT/images/photo_grid.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from posecore.bench.accuracy import SceneResult, grid_png, load_scene, machine_line, scene_folders, scene_kind
from posecore.bench.markdown_sections import write_marked_section
from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import PoseFitError
from posecore.metrics import mpjpe_mm, pa_mpjpe_mm

START_MARKER = "<!-- photo:start -->"
END_MARKER = "<!-- photo:end -->"
RESULTS_FILE = "photo.json"
MODES = ("photo", "init + keypoints", "init")


def camera_frame_joints(body: BodyModel, params: BodyParams, camera: PinholeCamera) -> torch.Tensor:
    """(J, 3) joints in the camera's frame with the hip centre at the origin, metres."""
    from posecore.detect.joint_map import model_joints

    with torch.no_grad():
        joints = camera.world_to_camera(body(params).joints)
    hips = joints[[model_joints(body, "left_hip")[0], model_joints(body, "right_hip")[0]]].mean(0)
    return joints - hips


def swapped_arms(body: BodyModel, params: BodyParams) -> BodyParams:
    """``params`` with the arms' rotations swapped between the sides and mirrored (the swapped-arms scene's error)."""
    from posecore.bench.scenes import ARM_JOINTS, mirror_rotation, model_joint

    out = params.clone()
    for suffix in ARM_JOINTS:
        left, right = model_joint(body, f"left_{suffix}"), model_joint(body, f"right_{suffix}")
        out.rotations[left] = mirror_rotation(body, params.rotations[right])
        out.rotations[right] = mirror_rotation(body, params.rotations[left])
    return out


def arm_joints(body: BodyModel) -> list[int]:
    """Shoulders, elbows and wrists of both sides."""
    from posecore.detect.joint_map import model_joints

    names = [f"{side}_{n}" for side in ("left", "right") for n in ("shoulder", "elbow", "wrist")]
    return [model_joints(body, name)[0] for name in names]


SYMMETRIC_ARMS_MM = 50.0
"""Below this arm MPJPE between a true pose and its arm-swapped copy, the arms are too symmetric to tell apart."""


def arms_on_their_sides(
    body: BodyModel, found: torch.Tensor, truth: torch.Tensor, swapped: torch.Tensor
) -> bool | None:
    """Whether the fitted arms ((J, 3) hip-aligned camera-frame joints) lie nearer the true arms than the true pose
    with its arms swapped left/right (``swapped``, same frame); None when the true arms are nearly mirror-symmetric
    (swapping them changes them by less than :data:`SYMMETRIC_ARMS_MM`), so that left and right cannot be told."""
    arms = arm_joints(body)
    if mpjpe_mm(truth[arms], swapped[arms]) < SYMMETRIC_ARMS_MM:
        return None
    return mpjpe_mm(found[arms], truth[arms]) < mpjpe_mm(found[arms], swapped[arms])


def fit_mode(scene, body: BodyModel, renderer, preset, mode: str, start) -> SceneResult:
    """One fit of ``scene`` in ``mode`` (see the module docstring); ``start`` is the scene's photo start."""
    from posecore.fitting.look import Look
    from posecore.fitting.loop import FitProblem, PoseFitter

    if mode == "photo":
        from posecore.detect.photo import photo_fit_preset

        initial, camera, mask = start.init.params, start.init.camera, start.mask
        preset = photo_fit_preset(preset)
    else:
        initial, camera, mask = scene.initial, scene.init_camera, None
    keypoints = start.init.keypoints if mode != "init" else None
    problem = FitProblem(body, initial, scene.target, Look(camera), renderer, person_mask=mask, keypoints=keypoints)
    states = PoseFitter(problem, preset).run()
    first, last = states[0], states[-1]
    joints = body.body_joint_indices
    truth = camera_frame_joints(body, scene.truth, scene.camera)
    swapped = camera_frame_joints(body, swapped_arms(body, scene.truth), scene.camera)
    arms = arm_joints(body)
    before = camera_frame_joints(body, first.params, first.camera)
    after = camera_frame_joints(body, last.params, last.camera)
    metrics = {
        "scene": scene.name,
        "model": body.name,
        "kind": scene_kind(scene.record),
        "mode": mode,
        "keypoint_weight": preset.keypoint_weight if keypoints is not None else 0.0,
        "iterations": last.iteration,
        "seconds": round(last.elapsed_s, 3),
        "mpjpe_mm": {
            "before": round(mpjpe_mm(before[joints], truth[joints]), 2),
            "after": round(mpjpe_mm(after[joints], truth[joints]), 2),
        },
        "pa_mpjpe_mm": {
            "before": round(pa_mpjpe_mm(before[joints], truth[joints]), 2),
            "after": round(pa_mpjpe_mm(after[joints], truth[joints]), 2),
        },
        "arm_mpjpe_mm": {
            "before": round(mpjpe_mm(before[arms], truth[arms]), 2),
            "after": round(mpjpe_mm(after[arms], truth[arms]), 2),
        },
        "arms": {
            "before": arms_on_their_sides(body, before, truth, swapped),
            "after": arms_on_their_sides(body, after, truth, swapped),
        },
    }
    return SceneResult(metrics, scene.target, first.render, last.render, [s.loss for s in states])


def run_photo_benchmark(
    scenes_dir: Path,
    iterations: int | None,
    size: int | None,
    limit: int | None,
    modes: tuple[str, ...] = MODES,
    keypoint_weight: float | None = None,
    log=print,
) -> tuple[list[SceneResult], list[dict]]:
    """Fit every whole-body scene in ``modes``; returns the fit results and one timing row per scene."""
    from posecore.bodies import load_body_model
    from posecore.detect.photo import photo_start
    from posecore.fitting.presets import get_preset
    from posecore.render import get_renderer

    preset = get_preset("fast").with_overrides(iterations=iterations, keypoint_weight=keypoint_weight)
    renderer = get_renderer("raster")
    folders = [f for f in scene_folders(scenes_dir) if not json.loads((f / "scene.json").read_text()).get("part")]
    bodies: dict[str, BodyModel] = {}
    results: list[SceneResult] = []
    timings: list[dict] = []
    for folder in folders[:limit]:
        scene = load_scene(folder, size)
        if scene.model_spec not in bodies:
            bodies[scene.model_spec] = load_body_model(scene.model_spec)
            photo_start(folder / "target.png", bodies[scene.model_spec])  # warm-up: MediaPipe's first call, set-up
        body = bodies[scene.model_spec]
        try:
            start = photo_start(folder / "target.png", body, size=(scene.camera.width, scene.camera.height))
        except PoseFitError as exc:
            log(f"{scene.name}: {exc}")
            timings.append({"scene": scene.name, "detected": False, "error": str(exc)})
            continue
        timings.append(
            {
                "scene": scene.name,
                "detected": True,
                "detect_seconds": round(start.detect_seconds, 4),
                "init_seconds": round(start.init_seconds, 4),
                "detect_cpu_seconds": round(start.detect_cpu_seconds, 4),
                "init_cpu_seconds": round(start.init_cpu_seconds, 4),
                "reprojection_px": round(start.init.reprojection_px, 2),
            }
        )
        for mode in modes:
            res = fit_mode(scene, body, renderer, preset, mode, start)
            m = res.metrics
            log(
                f"{scene.name:28s} {mode:17s} RA-MPJPE {m['mpjpe_mm']['before']:6.1f} -> {m['mpjpe_mm']['after']:6.1f}"
                f"  PA {m['pa_mpjpe_mm']['before']:5.1f} -> {m['pa_mpjpe_mm']['after']:5.1f}  arms "
                f"{_arms_word(m['arms']['before'])} -> {_arms_word(m['arms']['after'])}  {m['seconds']:.1f} s"
            )
            results.append(res)
    return results, timings


def _iterations(rows: list[dict]) -> str:
    """Iterations of a group of fits: one number, or the mean and the most when early stopping made them differ."""
    counts = [r["iterations"] for r in rows]
    return str(counts[0]) if len(set(counts)) == 1 else f"{np.mean(counts):.0f} (≤ {max(counts)})"


def _arms_word(value: bool | None) -> str:
    return "symmetric" if value is None else "ok" if value else "SWAPPED"


def _mean(rows: list[dict], key: str, when: str) -> float:
    return float(np.mean([r[key][when] for r in rows]))


def _group_key(row: dict) -> tuple[int, float]:
    return MODES.index(row["mode"]), -row["keypoint_weight"]


def markdown_section(data: dict) -> str:
    """The photo-start section of docs/results.md from the accumulated results (``photo.json`` content)."""
    rows, timings = data["results"], data["timings"]
    detected = [t for t in timings if t["detected"]]
    out = ["Runs (each replaces earlier rows of the same scene, start and keypoint weight):", ""]
    for run in data["runs"]:
        out.append(f"- `{run['command']}` ({run['date']}; {run['machine']}; {run['threads']} thread(s))")
    out += [
        "",
        "RA-MPJPE: joints in each fit's own camera frame, hip centres aligned (a photo start has its own camera); "
        "PA-MPJPE: after a similarity alignment; mean over the body joints, mm, before → after the fit. Arms on their "
        "sides: fits whose arms (shoulders, elbows, wrists) end nearer the true arms than the true pose with its arms "
        "swapped left/right and mirrored (counted over the scenes whose true arms differ from their swapped copy by "
        f"{SYMMETRIC_ARMS_MM:.0f} mm or more); arm MPJPE: RA-MPJPE over those six joints.",
        "",
        "| start | keypoint weight | scenes | iterations (mean) | RA-MPJPE mm | PA-MPJPE mm | arm MPJPE mm "
        "| arms on their sides | s/scene |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[int, float], list[dict]] = {}
    for row in sorted(rows, key=lambda r: (_group_key(r), r["scene"])):
        groups.setdefault(_group_key(row), []).append(row)
    for group in groups.values():
        told = [r for r in group if r["arms"]["after"] is not None]
        arms = f"{sum(r['arms']['after'] for r in told)} of {len(told)}"
        weight = f"{group[0]['keypoint_weight']:g}" if group[0]["keypoint_weight"] > 0 else "—"
        out.append(
            f"| {group[0]['mode']} | {weight} | {len(group)} | {_iterations(group)} "
            f"| {_mean(group, 'mpjpe_mm', 'before'):.1f} → {_mean(group, 'mpjpe_mm', 'after'):.1f} "
            f"| {_mean(group, 'pa_mpjpe_mm', 'before'):.1f} → {_mean(group, 'pa_mpjpe_mm', 'after'):.1f} "
            f"| {_mean(group, 'arm_mpjpe_mm', 'before'):.1f} → {_mean(group, 'arm_mpjpe_mm', 'after'):.1f} "
            f"| {arms} | {np.mean([r['seconds'] for r in group]):.1f} |"
        )
    if detected:

        def ms(key: str) -> str:
            values = [t[key] for t in detected if key in t]
            return f"{1000 * np.median(values):.0f} ms (max {1000 * max(values):.0f})" if values else "n/a"

        out += [
            "",
            f"Detection found the person in {len(detected)} of {len(timings)} scenes. Per image, after one warm-up "
            f"call (medians): detection {ms('detect_seconds')} wall, {ms('detect_cpu_seconds')} CPU; "
            f"initialisation {ms('init_seconds')} wall, {ms('init_cpu_seconds')} CPU (one thread). Wall times "
            "include waiting for a core on the shared machine; CPU times are the work done. 2D reprojection of the "
            f"initialisation {np.median([t['reprojection_px'] for t in detected]):.1f} px (median, 256 px images).",
        ]
    missed = [t for t in timings if not t["detected"]]
    if missed:
        out += ["", "No person found: " + ", ".join(t["scene"] for t in missed) + "."]
    out += [
        "",
        "| scene | start | keypoint weight | RA-MPJPE mm | PA-MPJPE mm | arm MPJPE mm | arms (before → after) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["scene"], _group_key(r))):
        arms = f"{_arms_word(r['arms']['before'])} → {_arms_word(r['arms']['after'])}"
        weight = f"{r['keypoint_weight']:g}" if r["keypoint_weight"] > 0 else "—"
        out.append(
            f"| {r['scene']} | {r['mode']} | {weight} | {r['mpjpe_mm']['before']:.0f} → {r['mpjpe_mm']['after']:.0f} "
            f"| {r['pa_mpjpe_mm']['before']:.0f} → {r['pa_mpjpe_mm']['after']:.0f} "
            f"| {r['arm_mpjpe_mm']['before']:.0f} → {r['arm_mpjpe_mm']['after']:.0f} | {arms} |"
        )
    out += ["", "Fits from the photo alone (the latest run's):", "", "![photo-start fits](images/photo_grid.png)", ""]
    return "\n".join(out).rstrip() + "\n"


def merge_results(path: Path, rows: list[dict], timings: list[dict], run: dict, fresh: bool) -> dict:
    """Accumulated results: rows of the same (scene, start, keypoint weight) and timings of the same scene are
    replaced, others kept."""
    data: dict = {"runs": [], "results": [], "timings": []}
    if path.exists() and not fresh:
        data = json.loads(path.read_text())
        data.setdefault("runs", [])
        if "command" in data:  # a file written before results accumulated: one run
            data["runs"].append({k: data.pop(k) for k in ("command", "date", "machine", "threads") if k in data})
        for row in data["results"]:  # rows written before the weight was recorded: the fast preset's, 0.01
            row.setdefault("keypoint_weight", 0.0 if row["mode"] == "init" else 0.01)

    def key(row: dict) -> tuple:  # not the iterations: the fast preset stops early, at a scene's own count
        return row["scene"], row["mode"], row["keypoint_weight"]

    new_keys = {key(r) for r in rows}
    data["results"] = [r for r in data["results"] if key(r) not in new_keys] + rows
    new_scenes = {t["scene"] for t in timings}
    data["timings"] = [t for t in data["timings"] if t["scene"] not in new_scenes] + timings
    data["runs"].append(run)
    return data


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between the photo markers of ``path`` (appending a heading and the markers if absent)."""
    write_marked_section(path, section, START_MARKER, END_MARKER, heading="From a photo alone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.bench photo", description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", required=True, help="scene set folder (python scripts/make_benchmark_scenes.py)")
    parser.add_argument("--iterations", type=int, default=None, help="fast preset iterations (default: its own)")
    parser.add_argument("--size", type=int, default=None, help="fit at this size (default: the scenes' size)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N whole-body scenes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--keypoint-weight", type=float, default=None, help="keypoint term weight (default: fast's)")
    parser.add_argument("--out", default="docs", help="folder for results.md, photo.json and images/")
    parser.add_argument("--fresh", action="store_true", help="drop earlier results in OUT/photo.json")
    args = parser.parse_args(argv)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        print(f"error: unknown modes {unknown}; choose from {', '.join(MODES)}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    started = time.perf_counter()
    try:
        results, timings = run_photo_benchmark(
            Path(args.scenes),
            args.iterations,
            args.size,
            args.limit,
            modes,
            args.keypoint_weight,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (FileNotFoundError, ValueError, PoseFitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not results:
        print("error: no fit ran", file=sys.stderr)
        return 1
    from posecore.figures import save_figure
    from posecore.io.atomic import atomic_write_text

    photo_fits = [r for r in results if r.metrics["mode"] == "photo"]
    if photo_fits:
        (out / "images").mkdir(parents=True, exist_ok=True)
        m = photo_fits[0].metrics
        title = (
            f"from the photo alone: fast (stopped after {min(r.metrics['iterations'] for r in photo_fits)}-"
            f"{max(r.metrics['iterations'] for r in photo_fits)} iterations), keypoint weight "
            f"{m['keypoint_weight']:g} (RA-MPJPE in the labels)"
        )
        save_figure(out / "images" / "photo_grid.png", grid_png(photo_fits, title))
    run = {
        "command": "python -m posecore.bench photo " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": machine_line(),
        "threads": torch.get_num_threads(),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    data = merge_results(out / RESULTS_FILE, [r.metrics for r in results], timings, run, args.fresh)
    atomic_write_text(out / RESULTS_FILE, json.dumps(data, indent=1))
    section = markdown_section(data)
    write_section(out / "results.md", section)
    print(section)
    return 0
