"""``python -m posecore.bench {speed,accuracy,photo} ...``: benchmarks that print tables.

The benchmark scene set is made by ``scripts/make_benchmark_scenes.py`` (it renders targets with Blender).
"""

import importlib
import sys

COMMANDS = {"speed": "posecore.bench.speed", "accuracy": "posecore.bench.accuracy", "photo": "posecore.bench.photo"}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(
            f"usage: python -m posecore.bench {{{','.join(COMMANDS)}}} [options]\n"
            "(scene set: python scripts/make_benchmark_scenes.py --out DIR)",
            file=sys.stderr,
        )
        return 2
    return importlib.import_module(COMMANDS[sys.argv[1]]).main(sys.argv[2:])


sys.exit(main())
