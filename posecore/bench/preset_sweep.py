"""``python -m posecore.bench preset-sweep``: one preset with changed settings on the benchmark scene set.

How the ``paper`` preset's settings were chosen: Eq. 5's optimiser is kept (SGD, momentum 0.9, lr 1e-4 /
1e-8, 200 iterations, lambda 3) and only what the paper leaves open is varied, e.g.

    python -m posecore.bench preset-sweep --scenes DIR --preset paper --size 128 \\
        --variant "raw sum, zero prior: reference_size=0 prior_reference=zero" \\
        --variant "24 px, init prior: reference_size=24 prior_reference=init"

Each variant is ``"LABEL: FIELD=VALUE FIELD=VALUE ..."`` (fields of :class:`posecore.fitting.presets.Preset`).
The table says, per variant, on how many scenes MPJPE went down / up and the mean MPJPE before and after.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

from posecore.errors import ParameterError, PoseFitError

CHANGE_EPS_MM = 0.05
"""MPJPE changes smaller than this count as unchanged."""


def parse_variant(text: str) -> tuple[str, dict[str, object]]:
    """``"LABEL: a=1 b=init"`` -> (label, {field: value}) with values typed like the Preset field."""
    from posecore.fitting.presets import Preset

    label, _, body = text.partition(":")
    types = {f.name: f.type for f in fields(Preset)}
    changes: dict[str, object] = {}
    for item in body.split():
        key, _, value = item.partition("=")
        if key not in types or not value:
            raise ParameterError(f"variant {label!r}: {item!r} is not FIELD=VALUE with a Preset field")
        kind = types[key]
        if kind in ("int", int):
            changes[key] = int(value)
        elif kind in ("float", float):
            changes[key] = float(value)
        elif kind in ("bool", bool):
            changes[key] = value.lower() in ("1", "true", "yes")
        else:
            changes[key] = value
    return label.strip(), changes


def sweep(
    scenes_dir: Path,
    preset_name: str,
    variants: list[tuple[str, dict]],
    size: int | None,
    limit: int | None = None,
    log=print,
) -> list:
    """Fit every scene with each variant; returns rows (label, better, worse, same, mean before, mean after, s)."""
    from posecore.bench.accuracy import fit_scene, load_scene, scene_folders
    from posecore.bodies import load_body_model
    from posecore.fitting.presets import get_preset
    from posecore.render.raster import RasterRenderer

    scenes = [load_scene(f, size) for f in scene_folders(scenes_dir)[:limit]]
    bodies = {spec: load_body_model(spec) for spec in {s.model_spec for s in scenes}}
    rows = []
    for label, changes in variants:
        preset = get_preset(preset_name).with_overrides(**changes)
        start = time.perf_counter()
        pairs = []
        for scene in scenes:
            m = fit_scene(scene, bodies[scene.model_spec], RasterRenderer(), preset).metrics["mpjpe_mm"]
            pairs.append((m["before"], m["after"]))
        better = sum(a < b - CHANGE_EPS_MM for b, a in pairs)
        worse = sum(a > b + CHANGE_EPS_MM for b, a in pairs)
        before = sum(b for b, _ in pairs) / len(pairs)
        after = sum(a for _, a in pairs) / len(pairs)
        row = (label, better, worse, len(pairs) - better - worse, before, after, time.perf_counter() - start)
        log(f"{label}: MPJPE down on {better}, up on {worse} of {len(pairs)}; mean {before:.1f} -> {after:.1f} mm")
        rows.append(row)
    return rows


def table(rows: list) -> str:
    lines = ["| variant | MPJPE down | MPJPE up | mean MPJPE before -> after |", "|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[4]:.1f} -> {r[5]:.1f} mm |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.bench preset-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", required=True, help="scene set folder (python scripts/make_benchmark_scenes.py)")
    parser.add_argument("--preset", default="paper", help="the preset to vary (default paper)")
    parser.add_argument("--variant", action="append", required=True, help='"LABEL: FIELD=VALUE ..." (repeat)')
    parser.add_argument("--size", type=int, default=None, help="fit at this size (default: the scenes' size)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N scenes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        variants = [parse_variant(v) for v in args.variant]
        rows = sweep(Path(args.scenes), args.preset, variants, args.size, args.limit,
                     log=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    except (FileNotFoundError, ValueError, PoseFitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(rows))
    return 0
