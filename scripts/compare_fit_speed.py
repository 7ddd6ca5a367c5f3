"""Time the demo's whole fit at another commit and at this checkout, alternately, on the same machine.

    python scripts/compare_fit_speed.py 5c0bb83 --rounds 3

This shared machine's speed drifts by 2x within hours, so a time measured on another day says little about
today's code; runs alternated within minutes do. Each run is a fresh process that builds the demo (Anny,
256 px, one torch thread) and times ``PoseFitter.run()`` with the ``fast`` preset capped at 200 iterations, as
each commit defines it (wall and CPU seconds of the fit alone, not the start-up). The other commit is checked
out into a temporary ``git worktree`` and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

PROBE = """
import json, time, torch
torch.set_num_threads(1)
from posecore.bodies.anny_body import AnnyBody
from posecore.demo import make_demo_case
from posecore.fitting.look import Look
from posecore.fitting.loop import FitProblem, PoseFitter
from posecore.fitting.presets import get_preset
from posecore.render import get_renderer
body = AnnyBody()
case = make_demo_case(body, size=256)
problem = FitProblem(body, case.initial, case.target, Look(case.camera), get_renderer("raster"))
fitter = PoseFitter(problem, get_preset("fast").with_overrides(iterations=200))
wall, cpu = time.perf_counter(), time.process_time()
states = fitter.run()
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "iterations": states[-1].iteration}))
"""


def time_fit(checkout: pathlib.Path) -> dict[str, float]:
    """One demo fit in a fresh process importing posecore from ``checkout``."""
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the fit at {checkout} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", help="the commit to compare with (e.g. the one an issue measured)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating pairs of runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="posefit-compare-") as folder:
        other = pathlib.Path(folder) / "checkout"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), args.commit],
                       check=True, capture_output=True)  # fmt: skip
        try:
            runs: dict[str, list[dict[str, float]]] = {args.commit: [], "this checkout": []}
            for _ in range(args.rounds):
                runs[args.commit].append(time_fit(other))
                runs["this checkout"].append(time_fit(ROOT))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)
    print("| code | iterations | fit wall s (median, runs) | fit CPU s (median, runs) | ms/iteration (CPU) |")
    print("|---|---|---|---|---|")
    medians = {}
    for name, rows in runs.items():
        wall, cpu = statistics.median(r["wall"] for r in rows), statistics.median(r["cpu"] for r in rows)
        iterations = int(statistics.median(r["iterations"] for r in rows))
        medians[name] = cpu
        walls, cpus = (", ".join(f"{r[key]:.2f}" for r in rows) for key in ("wall", "cpu"))
        print(f"| {name} | {iterations} | {wall:.2f} ({walls}) | {cpu:.2f} ({cpus}) | "
              f"{1000 * cpu / max(iterations, 1):.1f} |")  # fmt: skip
    ratio = medians["this checkout"] / medians[args.commit]
    print(f"\nthis checkout / {args.commit} (CPU): {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
