"""Batch benchmarks on a rendered moving sequence with known truth (:mod:`posecore.bench.sequence`).

    python -m posecore.bench batch [--frames 12] [--size 128] [--iterations 60] [--chunk 3] [--markdown FILE]
    python -m posecore.bench smoothing [--frames 48] [--size 128] [--iterations 60] [--sigmas 1,2,3] [--clip DIR]
                                       [--markdown FILE]

``batch``: throughput of ``python -m posecore batch`` serially (no Ray), on a local Ray with 1 and 2 workers, and
on a two-node Ray cluster emulated on this machine (``ray start --head`` + ``ray start --address``, one CPU
each, stopped afterwards); each run's fit.npz arrays are compared with the serial run's.

``smoothing``: MPJPE and acceleration error (mm/frame^2) of the per-frame fits and of the same fits smoothed over
time (:mod:`posecore.fitting.temporal`) with each sigma.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from posecore.batch.plan import BatchJob
from posecore.batch.runner import run_batch
from posecore.fitting.setup import FitOptions
from posecore.io.frame_sources import open_frame_source


def _make_inputs(folder: Path, frames: int, size: int):
    from posecore.bench.sequence import make_moving_sequence
    from posecore.bodies import load_body_model

    body = load_body_model("anny")
    seq = make_moving_sequence(body, frames=frames, size=size)
    seq.save(folder / "frames")
    seq.save_init(folder / "init.npz", body)
    return body, seq


def _job(folder: Path, out: Path, iterations: int, chunk: int) -> BatchJob:
    options = FitOptions(init=str(folder / "init.npz"), iterations=iterations)
    return BatchJob(open_frame_source(folder / "frames"), options, str(out), chunk)


def _same_as(out: Path, reference: Path, names: list[str]) -> bool:
    for name in names:
        with np.load(out / name / "fit.npz") as a, np.load(reference / name / "fit.npz") as b:
            if not all(np.array_equal(a[k], b[k]) for k in ("rotations", "translation", "camera_R", "camera_t")):
                return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_node(*args: str) -> subprocess.Popen:
    """A ``ray start --block`` process of one CPU (stopped by SIGTERM to it; no auth token for the local test)."""
    ray_cli = Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    argv = [str(ray_cli), "start", "--block", "--num-cpus=1", "--disable-usage-stats",
            "--object-store-memory=100000000", *args]  # fmt: skip
    quiet = subprocess.DEVNULL
    return subprocess.Popen(argv, env=env, stdout=quiet, stderr=quiet, start_new_session=True)


def _two_node_run(job: BatchJob) -> dict:
    """Run ``job`` on a two-node Ray cluster on this machine; returns the summary (nodes are stopped after)."""
    import ray

    port = _free_port()
    head = _ray_node("--head", f"--port={port}", "--include-dashboard=false")
    nodes = [head]
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        time.sleep(5)
        nodes.append(_ray_node(f"--address=127.0.0.1:{port}"))
        deadline = time.monotonic() + 120
        while True:  # wait until both nodes have joined
            ray.init(address=f"127.0.0.1:{port}", log_to_driver=False, logging_level="WARNING")
            cpus = ray.cluster_resources().get("CPU", 0)
            ray.shutdown()
            if cpus >= 2 or time.monotonic() > deadline:
                break
            time.sleep(2)
        return run_batch(job, workers=2, address=f"127.0.0.1:{port}")
    finally:
        if previous is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = previous
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            node.wait(timeout=60)


def batch_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.bench batch", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=60, help="cap per frame (the fast preset may stop earlier)")
    parser.add_argument("--chunk", type=int, default=3)
    parser.add_argument("--no-cluster", action="store_true", help="skip the two-node cluster emulation")
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="posefit-bench-batch-") as tmp:
        folder = Path(tmp)
        _make_inputs(folder, args.frames, args.size)
        names = [f"frame_{i:03d}" for i in range(args.frames)]
        runs = [("serial (no Ray)", 0, False), ("local Ray, 1 worker", 1, False), ("local Ray, 2 workers", 2, False)]
        if not args.no_cluster:
            runs.append(("2-node Ray cluster (emulated), 2 workers", 2, True))
        for label, workers, cluster in runs:
            out = folder / f"out_{len(rows)}"
            job = _job(folder, out, args.iterations, args.chunk)
            start = time.perf_counter()
            summary = _two_node_run(job) if cluster else run_batch(job, workers=workers, small_jobs_serial=False)
            seconds = time.perf_counter() - start
            same = "-" if workers == 0 else ("yes" if _same_as(out, folder / "out_0", names) else "NO")
            rows.append((label, summary["done"], seconds, summary["fit_seconds_per_frame"], same))
            print(f"{label}: {seconds:.1f} s", file=sys.stderr)
    text = (
        f"Batch throughput: {args.frames} frames of {args.size} px, fast preset capped at {args.iterations} "
        f"iterations, chunks of {args.chunk}, 1 thread per worker, {os.cpu_count()} CPU cores\n\n"
        "| run | frames done | wall s (incl. Ray start) | frames/min | fit s/frame (in worker) | same as serial |\n"
        "|---|---|---|---|---|---|\n"
    )
    text += "\n".join(
        f"| {label} | {done} | {seconds:.1f} | {60 * done / seconds:.1f} | {per_frame or 0:.2f} | {same} |"
        for label, done, seconds, per_frame, same in rows
    )
    print(text)
    if args.markdown:
        from posecore.io.atomic import atomic_write_text

        atomic_write_text(args.markdown, text + "\n")
    return 0


def smoothing_main(argv: list[str]) -> int:
    from posecore.batch.sequence_files import smoothed, stack_frames
    from posecore.fitting.temporal import acceleration_error_mm
    from posecore.metrics import mpjpe_mm

    parser = argparse.ArgumentParser(prog="python -m posecore.bench smoothing", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--sigmas", default="1,2,3")
    parser.add_argument("--clip", default=None, help="a clip from scripts/make_moving_clip.py (Cycles) instead")
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="posefit-bench-smooth-") as tmp:
        if args.clip:
            from posecore.bodies import load_body_model, params_from_init
            from posecore.io.init_files import read_init, read_init_sequence

            folder = Path(args.clip)
            body = load_body_model("anny")
            truths = [params_from_init(body, init) for init in read_init_sequence(folder / "truth.npz")]
            initial = params_from_init(body, read_init(folder / "init.npz"))
            rendered_by = "Blender Cycles (scripts/make_moving_clip.py)"
        else:
            folder = Path(tmp)
            body, seq = _make_inputs(folder, args.frames, args.size)
            truths, initial = seq.truth, seq.initial
            rendered_by = "PoseFit's rasteriser with the demo's key/fill/ambient lights"
        job = _job(folder, Path(tmp) / "out", args.iterations, args.chunk)
        run_batch(job, workers=0)
        raw = stack_frames(job)
    joints = body.body_joint_indices
    frames = len(truths)
    size = int(raw["image_size"].max())

    def positions(rotations: np.ndarray, translations: np.ndarray) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for t in range(rotations.shape[0]):
                params = truths[t].clone()
                params.rotations = torch.from_numpy(rotations[t]).float()
                params.translation = torch.from_numpy(translations[t]).float()
                out.append(body(params).joints[joints])
        return torch.stack(out)

    truth = torch.stack([body(p).joints[joints] for p in truths]).detach()
    init_rot = initial.rotations.numpy()[None].repeat(frames, 0)
    rows = [("initialisation (frame 0's faulty pose)", positions(init_rot, raw["translation"]))]
    rows.append(("per-frame fits", positions(raw["rotations"], raw["translation"])))
    for sigma in (float(s) for s in args.sigmas.split(",")):
        s = smoothed(raw, sigma)
        rows.append((f"smoothed, sigma {sigma:g} frames", positions(s["rotations"], s["translation"])))
    text = (
        f"Temporal smoothing: {frames} frames of {size} px (the moving demo body, rendered by {rendered_by}), "
        f"fast preset capped at {args.iterations} iterations, chunks of {args.chunk}\n\n"
        "| poses | MPJPE mm | acceleration error mm/frame² |\n|---|---|---|\n"
    )
    for label, predicted in rows:
        error = np.mean([mpjpe_mm(predicted[t], truth[t]) for t in range(frames)])
        text += f"| {label} | {error:.1f} | {acceleration_error_mm(predicted, truth):.2f} |\n"
    print(text)
    if args.markdown:
        from posecore.io.atomic import atomic_write_text

        atomic_write_text(args.markdown, text)
        wrist = body.joint_names.index("wrist.L")
        wrist_row = next(i for i, j in enumerate(joints) if j == wrist)
        png = trajectory_png(truth[:, wrist_row], dict([rows[1], rows[-1]]), wrist_row)  # fits, most smoothed
        from posecore.figures import save_figure

        save_figure(Path(args.markdown).with_suffix(".png"), png)
    return 0


def trajectory_png(truth: torch.Tensor, fits: dict[str, torch.Tensor], row: int) -> bytes:
    """One joint's position over the frames: the truth, the per-frame fits and smoothed fits (x, y, z panels).

    Args:
        truth: (T, 3) metres. fits: label -> (T, J, 3) joint positions; ``row`` selects the joint.
    """
    from posecore.figures import _pyplot, figure_png

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), dpi=100)
    for axis, name in enumerate("xyz"):
        ax = axes[axis]
        ax.plot(1000 * truth[:, axis].numpy(), "k-", lw=2, label="truth")
        for label, positions in fits.items():
            ax.plot(1000 * positions[:, row, axis].numpy(), "-", lw=1, label=label)
        ax.set_xlabel("frame")
        ax.set_ylabel(f"left wrist {name} (mm)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Left wrist over the sequence: the truth, the per-frame fits and the smoothed fits")
    fig.tight_layout()
    return figure_png(fig)


main = batch_main
