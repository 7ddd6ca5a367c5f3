"""Accuracy benchmark: fit every scene of a scene set with each backend and preset, and report how close it got.

    python -m posecore.bench accuracy --scenes DIR [--backends raster,mitsuba,redner] [--presets fast,paper]
                                      [--iterations N | fast=N,paper=M] [--size S] [--limit N] [--threads T]
                                      [--out docs/] [--fresh]

For each scene (made by ``python scripts/make_benchmark_scenes.py``), backend and preset it reports, before (the faulty
initialisation) and after the fit: MPJPE and PA-MPJPE over the model's body joints (millimetres, the model's
frame), the paper's Table 1 image error (squared L2 of the clamped images as a percentage of H x W x C, over the
pixels the fit counts), the camera's orientation error (degrees), the iterations and the wall time. For selective
scenes also the part's joint error and the largest change of any joint outside the part (rotation in degrees and
position in millimetres; both should be 0). Backends that are not installed are skipped with the reason.

Results accumulate in ``OUT/accuracy.json`` (a later run replaces the rows of the same scene, backend, preset and
iteration count and keeps the others, so a slow backend can run on a subset separately; ``--fresh`` starts over).
From all rows it writes the markdown tables into ``OUT/results.md`` between ``<!-- accuracy:start -->`` and
``<!-- accuracy:end -->``, and for each backend/preset of this run a figure grid (the paper's Figure 1 layout,
one row per scene) and a loss-curve plot into ``OUT/images/``.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import os
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from posecore.bench.markdown_sections import write_marked_section
from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import BackendUnavailableError, PoseFitError
from posecore.metrics import image_error_percent, joint_angle_change_degrees, mpjpe_mm, pa_mpjpe_mm
from posecore.rotations import rotation_angle_between

START_MARKER = "<!-- accuracy:start -->"
END_MARKER = "<!-- accuracy:end -->"
RESULTS_FILE = "accuracy.json"


# ------------------------------------------------------------------------------------------------ scenes
@dataclass
class Scene:
    """One benchmark scene, loaded.

    Attributes:
        name: folder name (``NN_name``). record: its ``scene.json``. model_spec: ``anny`` or ``smplx:DIR``.
        truth, initial: the true parameters and the initialisation.
        camera: the true camera; init_camera: the camera the fit starts from (both model frame, the fit's size).
        target: (S, S, 3) the Cycles image in [0, 1]. part: the selective part or None.
        folder: the scene folder (its ``init.pkl`` is read by :func:`scene_initial` for SMPLify-X-layout scenes).
    """

    name: str
    record: dict
    model_spec: str
    truth: BodyParams
    initial: BodyParams
    camera: PinholeCamera
    init_camera: PinholeCamera
    target: torch.Tensor
    part: str | None
    folder: Path | None = None


def scene_initial(scene: Scene, body: BodyModel) -> BodyParams:
    """The initialisation a fit starts from: ``init.npz``, or for SMPLify-X-layout scenes their ``init.pkl``
    read as a user's file is (PCA hands expanded, a VPoser code decoded with the set's VPoser folder)."""
    init_file = scene.record.get("init_file")
    if not init_file or scene.folder is None:
        return scene.initial
    from posecore.bodies import params_from_init
    from posecore.io.init_files import read_init
    from posecore.io.vposer_files import load_vposer

    vposer_dir = scene.record.get("vposer_dir")
    vposer = load_vposer(scene.folder.parent / vposer_dir) if vposer_dir else None
    return params_from_init(body, read_init(scene.folder / init_file), vposer=vposer)


def read_fit_npz(path: Path) -> tuple[BodyParams, PinholeCamera]:
    """Parameters and camera of a PoseFit ``fit.npz`` (:func:`posecore.results.fit_arrays`)."""
    with np.load(path) as data:
        params = BodyParams(
            rotations=torch.from_numpy(data["rotations"].astype(np.float32)),
            translation=torch.from_numpy(data["translation"].astype(np.float32)),
            shape=torch.from_numpy(data["shape"].astype(np.float32)),
            expression=torch.from_numpy(data["expression"].astype(np.float32)),
        )
        k = data["camera_K"].astype(np.float64)
        width, height = (int(v) for v in data["image_size"])
        camera = PinholeCamera(
            float(k[0, 0]),
            float(k[1, 1]),
            float(k[0, 2]),
            float(k[1, 2]),
            width,
            height,
            torch.from_numpy(data["camera_R"].astype(np.float32)),
            torch.from_numpy(data["camera_t"].astype(np.float32)),
        )
    return params, camera


def load_scene(folder: Path, size: int | None = None) -> Scene:
    """Load a scene folder; ``size`` resamples the target (antialiased) and scales the cameras to match."""
    from posecore.io.images import load_image

    record = json.loads((folder / "scene.json").read_text())
    truth, camera = read_fit_npz(folder / "truth.npz")
    initial, init_camera = read_fit_npz(folder / "init.npz")
    size = size or camera.width
    if size != camera.width:
        camera, init_camera = camera.scaled(size / camera.width), init_camera.scaled(size / init_camera.width)
    target = load_image(folder / "target.png", size=(size, size))
    spec = "anny" if record["model"] == "anny" else f"smplx:{folder.parent / record['model_dir']}"
    return Scene(folder.name, record, spec, truth, initial, camera, init_camera, target, record.get("part"), folder)


def scene_folders(root: Path) -> list[Path]:
    """The scene folders of a set, in order."""
    folders = sorted(p.parent for p in root.glob("*/scene.json"))
    if not folders:
        raise FileNotFoundError(
            f"no scenes in {root}: make them with python scripts/make_benchmark_scenes.py --out {root}"
        )
    return folders


# ------------------------------------------------------------------------------------------------ fitting
@dataclass
class SceneResult:
    """One fit of one scene.

    Attributes:
        metrics: JSON-ready row (see :func:`fit_scene`).
        target, first, final: (H, W, 3) images for the figure. losses: the loss (Eq. 5) per iteration.
    """

    metrics: dict
    target: torch.Tensor
    first: torch.Tensor
    final: torch.Tensor
    losses: list[float] = field(default_factory=list)


def _body_joints(body: BodyModel, params: BodyParams) -> torch.Tensor:
    with torch.no_grad():
        return body(params).joints


def scene_cues(scene: Scene, body: BodyModel):
    """What ``fit`` detects in a scene's photo for a whole-body init-file fit (its default, for the hypothesis search
    only): the 2D keypoints and the 3D landmarks' bone directions, or (None, None) for selective scenes or when no
    person is found."""
    from posecore.detect.landmarks import NoPersonFoundError
    from posecore.detect.photo import photo_start

    if scene.part is not None or scene.folder is None:
        return None, None
    try:
        start = photo_start(scene.folder / "target.png", body, size=(scene.camera.width, scene.camera.height))
    except NoPersonFoundError:
        return None, None
    return start.init.keypoints, start.bone_directions(body)


def fit_scene(scene: Scene, body: BodyModel, renderer, preset, cues=(None, None)) -> SceneResult:
    """Fit one scene and measure it. Returns the metrics row (``before``/``after`` pairs in mm, %, degrees).

    ``cues``: (keypoints, bone directions) detected in the photo (:func:`scene_cues`): for the hypothesis search, as
    ``fit`` uses them by default; or (None, None)."""
    from posecore.fitting.look import Look
    from posecore.fitting.loop import FitProblem, PoseFitter
    from posecore.fitting.parts import part_joints

    look = Look(scene.init_camera, part=scene.part)
    keypoints, bones = cues
    problem = FitProblem(
        body, scene_initial(scene, body), scene.target, look, renderer, keypoints=keypoints, bone_directions=bones,
        cues_for_search_only=True,
    )  # fmt: skip
    fitter = PoseFitter(problem, preset)
    states = fitter.run()
    first, last = states[0], states[-1]
    joints = body.body_joint_indices
    truth_j, before_j, after_j = (_body_joints(body, p) for p in (scene.truth, first.params, last.params))
    true_r = scene.camera.rotation
    metrics: dict = {
        "scene": scene.name,
        "model": body.name,
        "backend": renderer.name,
        "preset": preset.name,
        "part": scene.part,
        "size": scene.camera.width,
        "kind": scene_kind(scene.record),
        "iterations": last.iteration,
        "iteration_cap": preset.iterations,
        "best_iteration": last.best_iteration,
        "seconds": round(last.elapsed_s, 3),
        "seconds_per_iteration": round(last.elapsed_s / max(1, last.iteration), 4),
        "mpjpe_mm": _pair(mpjpe_mm(before_j[joints], truth_j[joints]), mpjpe_mm(after_j[joints], truth_j[joints])),
        "pa_mpjpe_mm": _pair(
            pa_mpjpe_mm(before_j[joints], truth_j[joints]), pa_mpjpe_mm(after_j[joints], truth_j[joints])
        ),
        "image_error_percent": _pair(
            image_error_percent(first.render, scene.target, first.weight),
            image_error_percent(last.render, scene.target, last.weight),
        ),
        "camera_error_deg": _pair(
            *(math.degrees(float(rotation_angle_between(true_r, s.camera.rotation))) for s in (first, last))
        ),
        "loss": _pair(first.loss, last.loss),
        "landmarks": keypoints is not None,
        "hypothesis": fitter.search.chosen.name if fitter.search is not None else None,
    }
    if scene.part is not None:
        inside = part_joints(body, scene.part)
        outside = [j for j in range(body.num_joints) if j not in set(inside)]
        metrics["part_mpjpe_mm"] = _pair(
            mpjpe_mm(before_j[inside], truth_j[inside]), mpjpe_mm(after_j[inside], truth_j[inside])
        )
        angles = joint_angle_change_degrees(first.params.rotations[outside], last.params.rotations[outside])
        metrics["outside_max_change_deg"] = round(float(angles.max()), 4)
        metrics["outside_max_change_mm"] = round(
            1000 * float((after_j[outside] - before_j[outside]).norm(dim=-1).max()), 4
        )
    return SceneResult(metrics, scene.target, first.render, last.render, [s.loss for s in states])


def _pair(before: float, after: float) -> dict[str, float]:
    return {"before": round(float(before), 4), "after": round(float(after), 4)}


def scene_kind(record: dict) -> str:
    """``selective``, ``camera``, ``swap`` or ``whole`` (whole-body limb and torso errors)."""
    if record.get("part"):
        return "selective"
    if record.get("camera_error_deg"):
        return "camera"
    if record.get("swap_arms"):
        return "swap"
    return "whole"


def parse_iterations(text: str | None, presets: list[str]) -> dict[str, int | None]:
    """``"150"`` (every preset) or ``"fast=150,paper=200"`` -> {preset: iterations or None (its default)}."""
    out: dict[str, int | None] = dict.fromkeys(presets)
    if not text:
        return out
    if "=" not in text:
        return dict.fromkeys(presets, int(text))
    for item in text.split(","):
        name, _, value = item.partition("=")
        out[name.strip()] = int(value)
    return out


def run_accuracy(
    scenes_dir: Path,
    backends: list[str],
    presets: list[str],
    iterations: dict[str, int | None],
    size: int | None = None,
    limit: int | None = None,
    log=print,
    landmarks: str = "detect",
) -> tuple[list[SceneResult], dict[str, str]]:
    """Fit the scenes with every backend and preset; returns the results and {backend: reason} of skipped ones."""
    from posecore.bodies import load_body_model
    from posecore.fitting.presets import get_preset
    from posecore.render import get_renderer

    folders = scene_folders(scenes_dir)[:limit]
    scenes = [load_scene(f, size) for f in folders]
    bodies: dict[str, BodyModel] = {}
    for scene in scenes:
        if scene.model_spec not in bodies:
            bodies[scene.model_spec] = load_body_model(scene.model_spec)
    cues = {s.name: scene_cues(s, bodies[s.model_spec]) if landmarks == "detect" else (None, None) for s in scenes}
    results: list[SceneResult] = []
    skipped: dict[str, str] = {}
    for backend in backends:
        try:
            renderer = get_renderer(backend)
        except (BackendUnavailableError, ImportError) as exc:
            skipped[backend] = str(exc).splitlines()[0]
            log(f"skip {backend}: {skipped[backend]}")
            continue
        for preset_name in presets:
            preset = get_preset(preset_name).with_overrides(iterations=iterations.get(preset_name))
            for scene in scenes:
                try:
                    result = fit_scene(scene, bodies[scene.model_spec], renderer, preset, cues[scene.name])
                except PoseFitError as exc:  # a diverged fit is a result too
                    log(f"{backend}/{preset_name} {scene.name}: failed: {exc}")
                    continue
                m = result.metrics
                log(
                    f"{backend:7s} {preset_name:5s} {scene.name:28s} MPJPE {m['mpjpe_mm']['before']:6.1f} -> "
                    f"{m['mpjpe_mm']['after']:6.1f} mm  PA {m['pa_mpjpe_mm']['before']:5.1f} -> "
                    f"{m['pa_mpjpe_mm']['after']:5.1f}  img {m['image_error_percent']['before']:.2f} -> "
                    f"{m['image_error_percent']['after']:.2f} %  {m['iterations']} it {m['seconds']:.1f} s"
                )
                results.append(result)
    return results, skipped


# ------------------------------------------------------------------------------------------------ figures
def grid_png(results: list[SceneResult], title: str = "") -> bytes:
    """The paper's Figure 1 layout, one row per scene: a) target, b) render at iteration 1, c) its error,
    d) the final render, e) its error (per-pixel squared error summed over channels, one scale per row)."""
    from posecore.figures import _pyplot, error_map

    plt = _pyplot()
    rows = len(results)
    fig, axes = plt.subplots(rows, 5, figsize=(5 * 1.45, rows * 1.6 + 0.4), dpi=80, squeeze=False)
    names = ["a) target", "b) iteration 1", "c) error", "d) final", "e) error"]
    for r, res in enumerate(results):
        err_first, err_final = error_map(res.first, res.target), error_map(res.final, res.target)
        vmax = float(max(err_first.max(), err_final.max(), 1e-6))
        for c, img in enumerate([res.target, res.first, err_first, res.final, err_final]):
            ax = axes[r, c]
            if c in (2, 4):
                ax.imshow(img.numpy(), cmap="magma", vmin=0.0, vmax=vmax)
            else:
                ax.imshow(img.clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(names[c], fontsize=8)
        m = res.metrics
        axes[r, 0].set_ylabel(
            f"{m['scene'][3:][:20]}\n{m['mpjpe_mm']['before']:.0f}->{m['mpjpe_mm']['after']:.0f} mm", fontsize=6.5
        )
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def loss_curves_png(results: list[SceneResult], title: str = "") -> bytes:
    """Loss (Eq. 5) relative to its first value, per iteration, one curve per scene (log scale)."""
    from posecore.figures import _pyplot, figure_png

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.6), dpi=90)
    for res in results:
        losses = np.asarray(res.losses, dtype=np.float64)
        ax.plot(np.arange(len(losses)), losses / max(losses[0], 1e-12), lw=1.0, label=res.metrics["scene"][3:])
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss / initial loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=5.5, ncol=2, loc="lower left")
    if title:
        ax.set_title(title, fontsize=9)
    return figure_png(fig)


# ------------------------------------------------------------------------------------------------ markdown
def _mean(rows: list[dict], key: str, when: str) -> float:
    return float(np.mean([r[key][when] for r in rows]))


def _arrow(rows: list[dict], key: str, digits: int = 1) -> str:
    return f"{_mean(rows, key, 'before'):.{digits}f} → {_mean(rows, key, 'after'):.{digits}f}"


Group = tuple[str, str, int]
"""(backend, preset, iteration cap): the rows averaged together (a preset that stops early runs fewer)."""


def group_key(row: dict) -> Group:
    return row["backend"], row["preset"], int(row.get("iteration_cap", row["iterations"]))


def group_stem(key: Group) -> str:
    """File-name stem of a group's figures, e.g. ``raster_fast_150``."""
    return f"{key[0]}_{key[1]}_{key[2]}"


def _groups(rows: list[dict]) -> dict[Group, list[dict]]:
    order = {"raster": 0, "mitsuba": 1, "redner": 2}
    groups: dict[Group, list[dict]] = {}
    for row in sorted(
        rows, key=lambda r: (order.get(r["backend"], 9), r["preset"] != "fast", -r["iterations"], r["scene"])
    ):
        groups.setdefault(group_key(row), []).append(row)
    return groups


def _average_table(groups: dict[Group, list[dict]]) -> list[str]:
    lines = [
        "| backend | preset | scenes | iterations | MPJPE mm | PA-MPJPE mm | image error % | s/iteration | s/scene |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (backend, preset, iterations), rows in groups.items():
        ran = np.mean([r["iterations"] for r in rows])
        shown = f"{iterations}" if ran == iterations else f"{iterations} (ran {ran:.0f})"
        lines.append(
            f"| {backend} | {preset} | {len(rows)} | {shown} | {_arrow(rows, 'mpjpe_mm')} "
            f"| {_arrow(rows, 'pa_mpjpe_mm')} | {_arrow(rows, 'image_error_percent', 2)} "
            f"| {np.mean([r['seconds_per_iteration'] for r in rows]):.3f} "
            f"| {np.mean([r['seconds'] for r in rows]):.1f} |"
        )
    return lines


def _notes(row: dict) -> str:
    notes = []
    if row.get("part"):
        p = row["part_mpjpe_mm"]
        notes.append(
            f"part {row['part']}: {p['before']:.0f} → {p['after']:.0f} mm; outside the part max "
            f"{row['outside_max_change_deg']:.2f}° / {row['outside_max_change_mm']:.1f} mm"
        )
    if row["kind"] == "camera":
        c = row["camera_error_deg"]
        notes.append(f"camera {c['before']:.1f}° → {c['after']:.1f}°")
    if row["kind"] == "swap":
        notes.append("left/right arms swapped in the init")
    return "; ".join(notes)


def markdown_section(data: dict) -> str:
    """The accuracy section of docs/results.md from the accumulated results (``accuracy.json`` content)."""
    rows = data["results"]
    groups = _groups(rows)
    out = [
        "Each scene's target is rendered by Blender Cycles (sun + area + world light, a coloured Principled "
        "BSDF); the fit renders Lambert shading under half ambient, half headlight and estimates one albedo, "
        "so it never sees its own renderer's image. The initialisations are wrong like a faulty SMPLify-X "
        "fit: 15-30° on torso and limbs (random axes), one scene with the arms swapped left/right, one with the camera "
        "orbited 10° (the fit optimises the orbit angle), three selective scenes (only the given part is "
        "wrong and only it is fitted). MPJPE / PA-MPJPE: mean over the model's body joints, mm; image error: "
        "the paper's Table 1 measure (% of H × W × C) over the pixels the fit counts. Values are "
        "before → after the fit.",
        "",
    ]
    sets = {json.dumps(r["scene_set"], sort_keys=True) for r in data.get("runs", []) if "scene_set" in r}
    for sc in map(json.loads, sorted(sets)):
        out.append(
            f"Scene set: `python scripts/make_benchmark_scenes.py --out {sc['folder']} --size {sc['size']} "
            f"--samples {sc['samples']}` ({sc['count']} scenes, Cycles {sc['samples']} samples per pixel)."
        )
    out += [
        "",
        "Runs (in this order; each replaces earlier rows of the same scene, backend, preset and iterations):",
        "",
    ]
    for run in data.get("runs", []):
        out.append(f"- `{run['command']}` ({run['date']}; {run['machine']}; {run['threads']} thread(s))")
    if any(r["backend"] == "redner" for r in rows):
        out += [
            "",
            "redner rows: pyredner built locally (there is no wheel for Python 3.11) and importable; the "
            "command is the same.",
        ]
    if data.get("skipped"):
        out += ["", "Skipped: " + "; ".join(f"{b} ({why})" for b, why in data["skipped"].items())]
    out += ["", "### Averages", "", *_average_table(groups)]
    worse = {k: sum(r["mpjpe_mm"]["after"] > r["mpjpe_mm"]["before"] for r in v) for k, v in groups.items()}
    for (backend, preset, iterations), count in worse.items():
        if count:
            n = len(groups[(backend, preset, iterations)])
            out.append(f"\n{backend} / {preset} / {iterations}: MPJPE rose on {count} of {n} scenes.")
            if preset == "paper":
                out[-1] += (
                    " The paper preset keeps Eq. 5's optimiser and takes the summed image term at a 24 x 24 "
                    "reference size; how that was chosen: 'The paper preset' below."
                )
    full = max((len(r) for r in groups.values()), default=0)
    common = set.intersection(*({r["scene"] for r in rows} for rows in groups.values())) if groups else set()
    if groups and len(common) < full:
        same = {k: [r for r in v if r["scene"] in common] for k, v in groups.items()}
        out += ["", f"On the {len(common)} scenes every backend/preset ran (same scenes, same initialisations):", ""]
        out += _average_table(same)
    out += [
        "",
        "### Per scene",
        "",
        "| scene | model | backend / preset | MPJPE mm | PA-MPJPE mm | image error % | iterations | s | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (backend, preset, _), group in groups.items():
        for r in group:
            out.append(
                f"| {r['scene']} | {r['model']} | {backend} / {preset} | {_arrow([r], 'mpjpe_mm')} "
                f"| {_arrow([r], 'pa_mpjpe_mm')} | {_arrow([r], 'image_error_percent', 2)} | {r['iterations']} "
                f"| {r['seconds']:.1f} | {_notes(r)} |"
            )
    if groups:
        out += [
            "",
            "### Figures",
            "",
            "The paper's Figure 1 layout, one row per scene: a) target, b) render at iteration 1, c) its error, "
            "d) final render, e) its error; then the loss curves (loss / initial loss).",
            "",
        ]
        for key in groups:
            label = f"{key[0]} / {key[1]}, {key[2]} iterations"
            out += [
                f"**{label}**",
                "",
                f"![accuracy grid, {label}](images/accuracy_grid_{group_stem(key)}.png)",
                "",
                f"![loss curves, {label}](images/accuracy_loss_{group_stem(key)}.png)",
                "",
            ]
    return "\n".join(out).rstrip() + "\n"


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between the accuracy markers of ``path`` (creating the file or the markers if needed)."""
    write_marked_section(path, section, START_MARKER, END_MARKER, new_file_text="# PoseFit results\n\n## Accuracy\n\n")


def machine_line() -> str:
    """CPU, cores, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, torch {torch.__version__}"


def merge_results(path: Path, results: list[dict], run: dict, skipped: dict[str, str], fresh: bool) -> dict:
    """Accumulated results: rows of the same (scene, backend, preset, iterations) are replaced, others kept."""
    data = {"runs": [], "results": [], "skipped": {}}
    if path.exists() and not fresh:
        data = json.loads(path.read_text())
    keys = {(r["scene"], *group_key(r)) for r in results}
    data["results"] = [r for r in data["results"] if (r["scene"], *group_key(r)) not in keys] + results
    data["runs"] = [*data.get("runs", []), run]
    ran = {r["backend"] for r in data["results"]}
    data["skipped"] = {b: why for b, why in {**data.get("skipped", {}), **skipped}.items() if b not in ran}
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.bench accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", required=True, help="scene set folder (python scripts/make_benchmark_scenes.py)")
    parser.add_argument("--backends", default="raster,mitsuba,redner")
    parser.add_argument("--presets", default="fast,paper")
    parser.add_argument("--iterations", default=None, help="N for every preset, or fast=N,paper=M")
    parser.add_argument("--size", type=int, default=None, help="fit at this size (default: the scenes' size)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N scenes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default="docs", help="folder for results.md, accuracy.json and images/")
    parser.add_argument("--fresh", action="store_true", help="drop earlier results in OUT/accuracy.json")
    parser.add_argument(
        "--landmarks", choices=("detect", "none"), default="detect",
        help="detect: whole-body fits get the photo's landmarks, as 'fit' does by default; none: the image alone",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    presets = [p for p in args.presets.split(",") if p]
    out = Path(args.out)
    try:
        iterations = parse_iterations(args.iterations, presets)
        results, skipped = run_accuracy(
            Path(args.scenes),
            [b for b in args.backends.split(",") if b],
            presets,
            iterations,
            args.size,
            args.limit,
            log=lambda line: print(line, file=sys.stderr, flush=True),
            landmarks=args.landmarks,
        )
    except (FileNotFoundError, ValueError, PoseFitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not results:
        print("error: no fit ran (no backend available?)", file=sys.stderr)
        return 1
    (out / "images").mkdir(parents=True, exist_ok=True)
    from posecore.figures import save_figure

    by_group: dict[Group, list[SceneResult]] = {}
    for res in results:
        by_group.setdefault(group_key(res.metrics), []).append(res)
    for key, group in by_group.items():
        title = f"{key[0]} / {key[1]}, {key[2]} iterations, {group[0].metrics['size']} px"
        save_figure(out / "images" / f"accuracy_grid_{group_stem(key)}.png", grid_png(group, title))
        save_figure(out / "images" / f"accuracy_loss_{group_stem(key)}.png", loss_curves_png(group, title))
    first = json.loads((scene_folders(Path(args.scenes))[0] / "scene.json").read_text())
    run = {
        "command": "python -m posecore.bench accuracy " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "scene_set": {
            "folder": args.scenes,
            "count": len(scene_folders(Path(args.scenes))),
            "size": first["size"],
            "samples": first["renderer"]["samples"],
        },
        "date": datetime.date.today().isoformat(),
        "machine": machine_line(),
        "threads": torch.get_num_threads(),
    }
    data = merge_results(out / RESULTS_FILE, [r.metrics for r in results], run, skipped, args.fresh)
    from posecore.io.atomic import atomic_write_text

    atomic_write_text(out / RESULTS_FILE, json.dumps(data, indent=1))
    section = markdown_section(data)
    write_section(out / "results.md", section)
    print("\n".join(_average_table(_groups([r.metrics for r in results]))))
    print(f"wrote {out / 'results.md'}, {out / RESULTS_FILE} and {len(by_group) * 2} figures in {out / 'images'}")
    return 0
