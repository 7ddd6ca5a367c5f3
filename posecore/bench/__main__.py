"""``python -m posecore.bench COMMAND ...``: benchmarks that print tables.

The benchmark scene set is made by ``scripts/make_benchmark_scenes.py`` (it renders targets with Blender).
"""

import importlib
import sys

COMMANDS = {
    "speed": ("posecore.bench.speed", "renderer time per iteration, whole-fit time per preset, frames per hour"),
    "accuracy": ("posecore.bench.accuracy", "MPJPE / image error on the benchmark scene set"),
    "batch": ("posecore.bench.batch", "batch throughput: serial, local Ray 1/2 workers, a 2-node Ray cluster"),
    "smoothing": ("posecore.bench.smoothing", "MPJPE / acceleration error with and without temporal smoothing"),
    "preset-sweep": ("posecore.bench.preset_sweep", "one preset with changed settings: MPJPE up/down per variant"),
    "photo": ("posecore.bench.photo", "fits from a photo alone vs init files, with and without the keypoint term"),
    "ambiguity": ("posecore.bench.ambiguity", "starts holding a single view's ambiguities: recovered or not, per mode"),
    "photo-sizes": (
        "posecore.bench.photo_sizes",
        "one photo at 512-4000 px from the photo alone, with/without the crop",
    ),
    "real-photos": ("posecore.bench.real_photos", "2D keypoints / mask IoU on mmpose's annotated real photos"),
    "first-use": ("posecore.bench.first_use", "the free body's first use from an empty cache: time, memory, size"),
}


def usage() -> str:
    lines = [f"usage: python -m posecore.bench {{{','.join(COMMANDS)}}} [options]", "", "commands:"]
    lines += [f"  {name:10s} {about}" for name, (_module, about) in COMMANDS.items()]
    lines += ["", "python -m posecore.bench COMMAND --help: that command's options",
              "(scene set: python scripts/make_benchmark_scenes.py --out DIR)"]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(usage(), file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


sys.exit(main(sys.argv[1:]))
