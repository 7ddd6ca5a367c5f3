"""Speed benchmark: forward and backward time per iteration of each renderer backend, and whole fits.

    python -m posecore.bench speed [--backends raster,mitsuba,redner] [--sizes 128,256,512]
                                   [--threads 1,all] [--repeats 7] [--markdown docs/speed.md]
                                   [--fit-iterations 200] [--fit-presets fast,paper] [--fit-part left_arm]

Whole fits: the demo (Anny, 256 px, 1 thread) with each preset, capped at ``--fit-iterations`` steps (a
preset may stop earlier), and a selective fit of one part; wall and CPU time, frames per hour per core, MPJPE.

For each backend, mesh (the free Anny body, 27,420 triangles; an SMPL-X-sized icosphere, 20,480 triangles),
image size and thread count: the median and the spread (min-max) of ``repeats`` timed runs after two warm-up
runs, of the render alone (forward) and of the backward pass of a sum-of-image loss, plus the process's peak
resident memory during those runs. Backends that are not installed are listed as skipped with the reason.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import BackendUnavailableError
from posecore.render import get_renderer
from posecore.render.primitives import icosphere
from posecore.render.scene import RenderScene


@dataclass
class SpeedRow:
    backend: str
    mesh: str
    triangles: int
    size: int
    threads: int
    forward_ms: float
    forward_spread_ms: tuple[float, float]
    backward_ms: float
    backward_spread_ms: tuple[float, float]
    peak_rss_mb: float

    @property
    def total_ms(self) -> float:
        return self.forward_ms + self.backward_ms


def _reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter (Linux); harmless elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def benchmark_meshes() -> dict[str, tuple[torch.Tensor, torch.Tensor, PinholeCamera]]:
    """name -> (vertices (V, 3), faces (F, 3), a camera framing the mesh at 256 px)."""
    from posecore.bodies.anny_body import AnnyBody
    from posecore.demo import JUDO_POSE, demo_camera, pose_from_table

    body = AnnyBody()
    params = body.default_params()
    params.rotations = pose_from_table(body, JUDO_POSE)
    with torch.no_grad():
        anny_vertices = body(params).vertices
    sphere_v, sphere_f = icosphere(5, radius=0.6)
    sphere_cam = PinholeCamera.look_at(torch.tensor([0.0, -3.0, 0.0]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]),
                                       256, 256, 40.0)  # fmt: skip
    return {
        "anny": (anny_vertices, body.faces, demo_camera(256)),
        "smplx-sized sphere": (sphere_v, sphere_f, sphere_cam),
    }


def time_backend(renderer, vertices, faces, camera, repeats: int) -> tuple[list[float], list[float], float]:
    """Forward and backward times (seconds) of ``repeats`` runs after two warm-ups, and the peak RSS (MB)."""
    colors = torch.full((vertices.shape[0], 3), 0.8)
    forward, backward = [], []
    _reset_peak_rss()
    for k in range(repeats + 2):
        v = vertices.detach().clone().requires_grad_(True)
        t0 = time.perf_counter()
        out = renderer.render(RenderScene(v, faces, colors, camera))
        t1 = time.perf_counter()
        out.image.sum().backward()
        t2 = time.perf_counter()
        if k >= 2:
            forward.append(t1 - t0)
            backward.append(t2 - t1)
    return forward, backward, _peak_rss_mb()


def run_speed(backends: list[str], sizes: list[int], threads: list[int], repeats: int,
              log=print) -> tuple[list[SpeedRow], dict[str, str]]:  # fmt: skip
    """Measure every combination; returns rows and {backend: reason} for skipped backends."""
    meshes = benchmark_meshes()
    rows: list[SpeedRow] = []
    skipped: dict[str, str] = {}
    for backend in backends:
        try:
            renderer = get_renderer(backend)
        except BackendUnavailableError as exc:
            skipped[backend] = str(exc)
            log(f"skip {backend}: {exc}")
            continue
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            for mesh_name, (v, f, cam256) in meshes.items():
                for size in sizes:
                    cam = cam256.scaled(size / 256)
                    fwd, bwd, peak = time_backend(renderer, v, f, cam, repeats)
                    row = SpeedRow(backend, mesh_name, int(f.shape[0]), size, n_threads,
                                   1000 * statistics.median(fwd), (1000 * min(fwd), 1000 * max(fwd)),
                                   1000 * statistics.median(bwd), (1000 * min(bwd), 1000 * max(bwd)), peak)  # fmt: skip
                    rows.append(row)
                    log(f"{backend:8s} {mesh_name:20s} {size:4d}px {n_threads} thr: fwd {row.forward_ms:8.1f} ms "
                        f"bwd {row.backward_ms:8.1f} ms  peak {peak:6.0f} MB")  # fmt: skip
    return rows, skipped


@dataclass
class FitTiming:
    """One whole demo fit: wall and CPU seconds, the steps it took (early stops end before the cap)."""

    backend: str
    preset: str
    part: str | None
    iterations: int
    seconds: float
    cpu_seconds: float
    mpjpe_mm: float

    @property
    def frames_per_hour_per_core(self) -> float:
        """Frames one core fits per hour at this cost (CPU time, so a loaded machine does not distort it)."""
        return 3600.0 / self.cpu_seconds


def fit_timing(backend: str, preset: str = "fast", iterations: int = 200, size: int = 256,
               part: str | None = None, body=None) -> FitTiming:  # fmt: skip
    """Time a whole demo fit (Anny, ``size`` px) with ``backend`` and ``preset`` capped at ``iterations`` steps.

    ``part``: a selective fit of that part (only its joints move, only its region counts).
    """
    from posecore.bodies.anny_body import AnnyBody
    from posecore.demo import make_demo_case
    from posecore.fitting.look import Look
    from posecore.fitting.loop import FitProblem, PoseFitter
    from posecore.fitting.presets import get_preset
    from posecore.metrics import mpjpe_mm

    body = body or AnnyBody()
    case = make_demo_case(body, size=size)
    problem = FitProblem(body, case.initial, case.target, Look(case.camera, part=part), get_renderer(backend))
    fitter = PoseFitter(problem, get_preset(preset).with_overrides(iterations=iterations))
    start, cpu = time.perf_counter(), time.process_time()
    states = fitter.run()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    joints = body.body_joint_indices
    with torch.no_grad():
        error = mpjpe_mm(body(states[-1].params).joints[joints], body(case.truth).joints[joints])
    return FitTiming(backend, preset, part, states[-1].iteration, seconds, cpu_seconds, error)


def fit_seconds(backend: str, iterations: int = 200, size: int = 256) -> float:
    """Wall time of a whole demo fit with ``backend`` (the fast preset, at most ``iterations`` steps)."""
    return fit_timing(backend, "fast", iterations, size).seconds


def fit_table(timings: list[FitTiming], cap: int) -> str:
    """Whole-fit timings as a markdown table."""
    lines = [
        f"| backend | preset | fit | iterations (cap {cap}) | seconds | CPU seconds | ms/iteration | frames/hour/core "
        "| MPJPE mm |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in timings:
        lines.append(
            f"| {t.backend} | {t.preset} | {t.part or 'whole body'} | {t.iterations} | {t.seconds:.2f} "
            f"| {t.cpu_seconds:.2f} | {1000 * t.cpu_seconds / max(1, t.iterations):.1f} "
            f"| {t.frames_per_hour_per_core:.0f} | {t.mpjpe_mm:.1f} |"
        )
    return "\n".join(lines)


def markdown_table(rows: list[SpeedRow], skipped: dict[str, str]) -> str:
    """The rows as a markdown table, with each backend's ratio to the raster backend at the same setting."""
    ref = {(r.mesh, r.size, r.threads): r.total_ms for r in rows if r.backend == "raster"}
    lines = [
        "| backend | mesh | triangles | size | threads | forward ms (min-max) | backward ms (min-max) "
        "| total ms | x raster | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = ref.get((r.mesh, r.size, r.threads))
        ratio = f"{r.total_ms / base:.1f}" if base else "-"
        lines.append(
            f"| {r.backend} | {r.mesh} | {r.triangles} | {r.size} | {r.threads} | {r.forward_ms:.1f} "
            f"({r.forward_spread_ms[0]:.1f}-{r.forward_spread_ms[1]:.1f}) | {r.backward_ms:.1f} "
            f"({r.backward_spread_ms[0]:.1f}-{r.backward_spread_ms[1]:.1f}) | {r.total_ms:.1f} | {ratio} "
            f"| {r.peak_rss_mb:.0f} |"
        )
    for backend, reason in skipped.items():
        lines.append(f"\n{backend}: skipped ({reason})")
    return "\n".join(lines)


def speed_plot_png(rows: list[SpeedRow], threads: int = 1) -> bytes:
    """A log-scale plot of forward+backward time against image size, one line per backend and mesh."""
    from posecore.figures import _pyplot, figure_png

    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for backend in sorted({r.backend for r in rows}):
        for mesh, style in (("anny", "-o"), ("smplx-sized sphere", "--s")):
            sel = sorted((r for r in rows if r.backend == backend and r.mesh == mesh and r.threads == threads),
                         key=lambda r: r.size)  # fmt: skip
            if sel:
                ax.plot([r.size for r in sel], [r.total_ms for r in sel], style, label=f"{backend}, {mesh}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("image size (pixels per side)")
    ax.set_ylabel("forward + backward per iteration (ms)")
    ax.set_title(f"Renderer cost per iteration, {threads} thread(s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return figure_png(fig)


def machine_line() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.bench speed", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="raster,mitsuba,redner")
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--threads", default="1,all", help="comma list of thread counts; 'all' = every core")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--fit-iterations", type=int, default=200, help="cap of whole fits; 0 skips them")
    parser.add_argument("--fit-presets", default="fast,paper", help="presets of the whole-fit timings")
    parser.add_argument("--fit-part", default="left_arm", help="also time a selective fit of this part ('' = no)")
    parser.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    parser.add_argument("--fit-only", action="store_true", help="only time whole fits (no per-size table)")
    args = parser.parse_args(argv)
    threads = sorted({os.cpu_count() or 1 if t == "all" else int(t) for t in args.threads.split(",")})
    if args.fit_only:
        rows, skipped = [], {}
        for backend in args.backends.split(","):
            try:
                get_renderer(backend)
            except BackendUnavailableError as exc:
                skipped[backend] = str(exc)
        table = ""
    else:
        rows, skipped = run_speed(args.backends.split(","), [int(s) for s in args.sizes.split(",")], threads,
                                  args.repeats, log=lambda line: print(line, file=sys.stderr))  # fmt: skip
        table = markdown_table(rows, skipped)
    timings: list[FitTiming] = []
    if args.fit_iterations > 0:
        from posecore.bodies.anny_body import AnnyBody

        torch.set_num_threads(1)
        body = AnnyBody()
        presets = args.fit_presets.split(",")
        for backend in args.backends.split(","):
            if backend in skipped:
                continue
            for preset in presets:
                timings.append(fit_timing(backend, preset, args.fit_iterations, body=body))
            if args.fit_part:
                timings.append(fit_timing(backend, presets[0], args.fit_iterations, part=args.fit_part, body=body))
    text = f"Machine: {machine_line()}\n\n{table}\n"
    if timings:
        text += "\nWhole demo fit (Anny, 256x256, 1 thread; frames/hour/core from CPU time):\n\n"
        text += fit_table(timings, args.fit_iterations) + "\n"
    print(text)
    if args.markdown:
        from pathlib import Path

        from posecore.io.atomic import atomic_write_bytes, atomic_write_text

        atomic_write_text(args.markdown, text)
        if rows:
            atomic_write_bytes(Path(args.markdown).with_suffix(".png"), speed_plot_png(rows, min(threads)))
    return 0
