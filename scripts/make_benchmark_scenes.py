"""Generate the benchmark scene set: targets rendered by Blender Cycles (through the bpy module).

    python scripts/make_benchmark_scenes.py --out DIR [--count N] [--size S] [--samples N] [--threads N]

The scenes' poses, faulty initialisations and cameras come from :mod:`posecore.bench.scenes` (pure torch);
the Cycles renderer comes from the Blender side, ``addon/cycles_targets.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addon.cycles_targets import render_cycles
from posecore.bench import scenes

if __name__ == "__main__":
    sys.exit(scenes.main(sys.argv[1:], render=render_cycles))
