"""``python -m posecore.bench speed ...``: benchmarks that print tables (see :mod:`posecore.bench.speed`)."""

import sys


def main() -> int:
    commands = {"speed": "posecore.bench.speed"}
    commands["accuracy"] = "posecore.bench.accuracy"
    commands["scenes"] = "posecore.bench.scenes"
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(f"usage: python -m posecore.bench {{{','.join(commands)}}} [options]", file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(commands[sys.argv[1]])
    return module.main(sys.argv[2:])


sys.exit(main())
