"""Render the moving benchmark clip with Blender Cycles (through the bpy module), for the smoothing benchmark.

    python scripts/make_moving_clip.py --out DIR [--frames 48] [--size 128] [--samples 24]

Writes ``DIR/frames/frame_000.png ...`` (the moving demo body of :mod:`posecore.bench.sequence`, Cycles: sun,
area and world light, a Principled BSDF, composited over black), ``DIR/init.npz`` (frame 0's faulty pose and
the camera) and ``DIR/truth.npz`` (every frame's true pose). Then:
``python -m posecore.bench smoothing --clip DIR``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addon.cycles_targets import render_cycles
from posecore.bench.sequence import make_moving_sequence
from posecore.bodies import load_body_model


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=24)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    body = load_body_model("anny")
    seq = make_moving_sequence(body, frames=args.frames, size=args.size, render=render_cycles, samples=args.samples)
    out = Path(args.out)
    seq.save(out / "frames")
    seq.save_init(out / "init.npz", body)
    seq.save_truth(out / "truth.npz", body)
    print(f"wrote {args.frames} Cycles frames, init.npz and truth.npz to {out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
