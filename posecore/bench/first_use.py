"""``python -m posecore.bench first-use``: the free body's first use on a machine, measured from nothing.

Each run is a fresh Python process with an empty cache folder (``ANNY_CACHE_DIR`` set to a new temporary
folder): the process's wall time, the part spent building and loading Anny (``AnnyBody()``), CPU time, peak
memory, and what the cache folder holds afterwards. A second process on the same cache then shows a later use.
Nothing outside the temporary folder is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

_PROBE = """
import json, resource, sys, time
start = time.perf_counter()
from posecore.bodies.anny_body import AnnyBody
imported = time.perf_counter()
AnnyBody()
ready = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"import_s": imported - start, "body_s": ready - imported,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024}))
"""


def measure(cache: pathlib.Path, threads: int | None) -> dict[str, float]:
    """One fresh process that makes an ``AnnyBody`` with ``cache`` as Anny's cache folder."""
    env = dict(os.environ, ANNY_CACHE_DIR=str(cache))
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the probe process failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    result["cache_mib"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 2**20
    result["cache_files"] = sum(1 for p in cache.rglob("*") if p.is_file())
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.bench first-use", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="first uses to measure, each from an empty cache")
    parser.add_argument("--threads", type=int, default=None, help="OMP/MKL threads for the probe (default: all)")
    args = parser.parse_args(argv)
    rows = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="posefit-first-use-") as folder:
            cache = pathlib.Path(folder) / "anny"
            rows.append(("first use", measure(cache, args.threads)))
            rows.append(("later use", measure(cache, args.threads)))
    print(f"Anny first use: {os.cpu_count()} cores, threads {args.threads or 'all'}")
    print("| run | process wall s | import s | AnnyBody() s | CPU s | peak MiB | cache MiB | files |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['wall_s']:.1f} | {r['import_s']:.1f} | {r['body_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['peak_mib']:.0f} | {r['cache_mib']:.0f} | {r['cache_files']} |"
        )
    return 0
