"""Ambiguity benchmark: does a fit recover from a start that holds one of a single view's ambiguities?

    python -m posecore.bench ambiguity --scenes DIR [--modes off,limits,hypotheses] [--threads 1] [--out docs]

``DIR`` is a set made by ``python scripts/make_benchmark_scenes.py --set ambiguity --out DIR`` (Cycles renders with
garment colours over a textured background; each start has the arms or legs swapped, an elbow or knee flipped in
depth, or the body turned round, plus 15-30 degree errors on three other joints). Every scene is fitted from its
init file as a user would fit it (``fit --mask auto``): the ``fast`` preset, the person mask detected in the photo
and the landmarks detected for the hypothesis search (MediaPipe; they carry the left/right labels and depth signs
the image lacks), in three modes:

- ``off``: no joint limits, no hypotheses (the fit as it was before them);
- ``limits``: the anatomical joint limits only;
- ``hypotheses``: limits and the hypothesis search (the default).

A scene is *recovered* when the fitted joints that the ambiguity moved (both arms, both legs, the flipped limb, or
every body joint for a turned body) lie nearer the true joints than the same joints of the truth with the
ambiguity built in (:func:`posecore.bench.scenes.ambiguous_start` without the other errors), in the camera's frame
with the hips aligned. Rows go to ``OUT/ambiguity.json`` and a table to ``OUT/results.md`` between
``<!-- ambiguity:start -->`` and ``<!-- ambiguity:end -->``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from posecore.bench.accuracy import load_scene, machine_line, scene_folders
from posecore.bench.photo import camera_frame_joints
from posecore.bodies.base import BodyModel
from posecore.metrics import mpjpe_mm

MODES = ("off", "limits", "hypotheses")


def mode_preset(preset, mode: str):
    """The preset of a mode: ``off`` without limits and search, ``limits`` without search, ``hypotheses`` as is."""
    if mode == "off":
        return replace(preset, limit_weight=0.0, hypotheses=0)
    if mode == "limits":
        return replace(preset, hypotheses=0)
    return preset


def affected_joints(body: BodyModel, ambiguity: str) -> list[int]:
    """Indices of the joints an ambiguity moves (SMPL-X names resolved for ``body``)."""
    from posecore.detect.joint_map import model_joints

    kind, _, side = ambiguity.partition(":")
    sides = (side,) if side else ("left", "right")
    if kind == "turned":
        return body.body_joint_indices
    names = {
        "swap_arms": ("shoulder", "elbow", "wrist"),
        "swap_legs": ("hip", "knee", "ankle"),
        "flip_elbow": ("elbow", "wrist"),
        "flip_knee": ("knee", "ankle"),
    }[kind]
    return [model_joints(body, f"{s}_{n}")[0] for s in sides for n in names]


def fit_ambiguity_scene(scene, body: BodyModel, renderer, preset, mode: str, start, panels: list | None = None) -> dict:
    """Fit one scene in one mode; returns its row (and, with ``panels``, appends the scene's figure panel when a
    search ran)."""
    from posecore.bench.scenes import ambiguous_start
    from posecore.fitting.look import Look
    from posecore.fitting.loop import FitProblem, PoseFitter

    problem = FitProblem(
        body, scene.initial, scene.target, Look(scene.init_camera), renderer,
        person_mask=start.mask, keypoints=start.init.keypoints, bone_directions=start.bone_directions(body),
        cues_for_search_only=True,
    )  # fmt: skip
    fitter = PoseFitter(problem, mode_preset(preset, mode))
    states = fitter.run()
    first, last = states[0], states[-1]
    ambiguity = scene.record["ambiguity"]
    moved = affected_joints(body, ambiguity)
    joints = body.body_joint_indices
    truth = camera_frame_joints(body, scene.truth, scene.camera)
    wrong = camera_frame_joints(body, ambiguous_start(body, scene.truth, ambiguity), scene.camera)
    before = camera_frame_joints(body, first.params, scene.camera)
    after = camera_frame_joints(body, last.params, scene.camera)
    if panels is not None and fitter.search is not None:
        views = [("truth", side_view(body, scene.truth, scene.camera, renderer)),
                 ("start", side_view(body, scene.initial, scene.init_camera, renderer))]  # fmt: skip
        for report in fitter.search.alternatives_ranked():
            mark = "*" if report.chosen else ""
            views.append((f"{mark}{report.name[:18]}\n{report.objective:.4f}",
                          side_view(body, report.params, scene.init_camera, renderer)))  # fmt: skip
        views.append(("final fit", side_view(body, last.params, scene.init_camera, renderer)))
        panels.append({"scene": scene.name, "target": scene.target, "views": views})
    from posecore.fitting.limits import JointLimits

    limits = fitter.limits if fitter.limits is not None else JointLimits.for_body(body)
    return {
        "scene": scene.name,
        "ambiguity": ambiguity,
        "mode": mode,
        "recovered": mpjpe_mm(after[moved], truth[moved]) < mpjpe_mm(after[moved], wrong[moved]),
        "start_recovered": mpjpe_mm(before[moved], truth[moved]) < mpjpe_mm(before[moved], wrong[moved]),
        "mpjpe_mm": {
            "before": round(mpjpe_mm(before[joints], truth[joints]), 1),
            "after": round(mpjpe_mm(after[joints], truth[joints]), 1),
        },
        "moved_joints_mm": {
            "before": round(mpjpe_mm(before[moved], truth[moved]), 1),
            "after": round(mpjpe_mm(after[moved], truth[moved]), 1),
        },
        "limit_excess_deg": round(limits.max_excess_deg(last.params.rotations), 2),
        "chosen": fitter.search.chosen.name if fitter.search is not None else None,
        "seconds": round(last.elapsed_s, 2),
        "iterations": last.iteration,
    }


def side_view(body: BodyModel, params, camera, renderer) -> torch.Tensor:
    """(H, W, 3) the body seen from the side: ``camera`` orbited 90 degrees about its up axis through the root."""
    from posecore.cameras.orbit import orbit_camera
    from posecore.fitting.loop import fit_lighting
    from posecore.render.scene import RenderScene

    with torch.no_grad():
        posed = body(params)
        up = -camera.rotation[1].to(torch.float32)
        side = orbit_camera(camera, up * (torch.pi / 2), posed.joints[0])
        colours = torch.full((body.num_vertices, 3), 0.75)
        scene = RenderScene(posed.vertices, body.faces, colours, side, fit_lighting(), torch.ones(3))
        return renderer.render(scene).image.clamp(0, 1)


def hypotheses_figure_png(panels: list[dict]) -> bytes:
    """One row per scene: the photo, then side views of the truth, the start, each brief-fitted candidate (its
    name and objective; the chosen one starred) and the final fit. ``panels``: dicts with ``scene``, ``target``
    and ``views`` [(label, image)]."""
    from posecore.figures import _pyplot, figure_png

    plt = _pyplot()
    columns = max(1 + len(p["views"]) for p in panels)
    fig, axes = plt.subplots(len(panels), columns, figsize=(columns * 1.35, len(panels) * 1.55 + 0.3), dpi=90,
                             squeeze=False)  # fmt: skip
    for r, panel in enumerate(panels):
        images = [("photo", panel["target"]), *panel["views"]]
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
                continue
            label, image = images[c]
            ax.imshow(image.numpy())
            ax.set_title(label, fontsize=6)
        axes[r, 0].set_ylabel(panel["scene"][3:][:24], fontsize=6.5)
    fig.suptitle("hypotheses: the photo, then every body seen from the side", fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.3, w_pad=0.2)
    return figure_png(fig)


def markdown_section(rows: list[dict], command: str) -> str:
    """The results.md section: one row per scene, a column per mode, and the averages."""
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    scenes = sorted({r["scene"] for r in rows})
    by = {(r["scene"], r["mode"]): r for r in rows}
    head = "| scene | ambiguity | start MPJPE | " + " | ".join(f"{m}: recovered, MPJPE, s" for m in modes) + " |"
    lines = [
        f"Measured {machine_line()} with `{command}`.",
        "",
        head,
        "|" + "---|" * (3 + len(modes)),
    ]
    for name in scenes:
        first = next(by[(name, m)] for m in modes if (name, m) in by)
        cells = [name, first["ambiguity"], f"{first['mpjpe_mm']['before']:.0f} mm"]
        for m in modes:
            r = by.get((name, m))
            cells.append("-" if r is None else f"{'yes' if r['recovered'] else 'no'}, {r['mpjpe_mm']['after']:.0f} mm, "
                         f"{r['seconds']:.1f}")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    totals = ["**all**", "", ""]
    for m in modes:
        rs = [r for r in rows if r["mode"] == m]
        rec = sum(r["recovered"] for r in rs)
        mean = sum(r["mpjpe_mm"]["after"] for r in rs) / max(1, len(rs))
        secs = sum(r["seconds"] for r in rs) / max(1, len(rs))
        worst = max((r["limit_excess_deg"] for r in rs), default=0.0)
        totals.append(f"**{rec}/{len(rs)}**, {mean:.1f} mm, {secs:.1f} (limits exceeded by at most {worst:.1f} deg)")
    lines.append("| " + " | ".join(totals) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.bench ambiguity", description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", required=True, help="a set made with make_benchmark_scenes.py --set ambiguity")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--limit", type=int, default=None, help="first N scenes")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="folder for ambiguity.json and results.md's section")
    parser.add_argument("--figure", default=None, help="PNG of the hypotheses of the scenes named by --figure-scenes")
    parser.add_argument("--figure-scenes", default="swap_legs_lean,flip_knee_grip,turned_crouch",
                        help="comma list of scene name parts for --figure")  # fmt: skip
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        print(f"error: --modes takes a comma list of {', '.join(MODES)}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    from posecore.bodies import load_body_model
    from posecore.detect.photo import photo_start
    from posecore.fitting.presets import get_preset
    from posecore.render import get_renderer

    preset = get_preset(args.preset)
    renderer = get_renderer("raster")
    bodies: dict[str, BodyModel] = {}
    rows: list[dict] = []
    panels: list[dict] = []
    folders = [
        f for f in scene_folders(Path(args.scenes)) if json.loads((f / "scene.json").read_text()).get("ambiguity")
    ]
    for folder in folders[: args.limit]:
        scene = load_scene(folder)
        body = bodies.setdefault(scene.model_spec, load_body_model(scene.model_spec))
        start = photo_start(folder / "target.png", body, size=(scene.camera.width, scene.camera.height))
        wanted = args.figure and any(part in scene.name for part in args.figure_scenes.split(","))
        for mode in modes:
            row = fit_ambiguity_scene(scene, body, renderer, preset, mode, start, panels if wanted else None)
            rows.append(row)
            print(
                f"{row['scene']:26s} {mode:10s} recovered={row['recovered']!s:5s} "
                f"MPJPE {row['mpjpe_mm']['before']:6.1f} -> {row['mpjpe_mm']['after']:6.1f} mm  "
                f"moved {row['moved_joints_mm']['after']:6.1f} mm  "
                f"chosen={row['chosen']}  limits+{row['limit_excess_deg']:.1f} deg  {row['seconds']:.1f} s",
                flush=True,
            )
    command = "python -m posecore.bench ambiguity " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    section = markdown_section(rows, command)
    print(section)
    if args.figure and panels:
        from posecore.figures import save_figure

        save_figure(args.figure, hypotheses_figure_png(panels))
    if args.out:
        from posecore.bench.markdown_sections import write_marked_section
        from posecore.io.atomic import atomic_write_text

        out = Path(args.out)
        atomic_write_text(out / "ambiguity.json", json.dumps(rows, indent=1))
        write_marked_section(
            out / "results.md", section, "<!-- ambiguity:start -->", "<!-- ambiguity:end -->",
            heading="Ambiguities: hypotheses and joint limits",
        )  # fmt: skip
    return 0
