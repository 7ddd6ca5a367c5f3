"""Photo-size benchmark: one photo at 512, 1024, 2048 and 4000 px, fitted from the photo alone, with and without
the person crop; time per stage.

    python -m posecore.bench photo-sizes [--photos grace-hopper,bent-over,FILE] [--sizes 512,1024,2048,4000]
                                         [--threads 1] [--full-iterations N] [--out docs/]

Each row runs what ``python -m posecore fit --image PHOTO --out DIR [--person-crop off]`` runs (no ``--init``):
decode, MediaPipe detection, landmark initialisation, set-up (with the crop: the window cut from the photo),
and the fit (``fast`` preset, until it stops). Without the crop, fits of photos above 1024 px run only
``--full-iterations`` iterations (a full fit at 4000 px takes minutes); their fit time is then the measured time per
iteration times the iterations the cropped fit of that size needed, marked "est.". "photo-alone time" is detection +
initialisation + fit (the issue's measure; decoding is listed apart). The photos are made at run time:

- ``grace-hopper``: matplotlib's public-domain ``grace_hopper.jpg``, 1100 px wide, in a 4000 x 3000 frame with a
  gradient background, then resized (the person about a quarter of the frame's width at every size);
- ``bent-over``: the issue's lost photo, rendered (:func:`bent_over_photo`): the free body folded forward with its
  hands hanging to the floor, about a tenth of the frame's width (MediaPipe's plain detection misses it at 2048 px;
  a retry view finds it);
- any other name is a photo file, resized.
The table goes to ``OUT/results.md`` between ``<!-- photo-sizes:start -->`` and ``<!-- photo-sizes:end -->``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from posecore.bench.accuracy import machine_line
from posecore.bench.markdown_sections import write_marked_section

START_MARKER = "<!-- photo-sizes:start -->"
END_MARKER = "<!-- photo-sizes:end -->"
DEFAULT_SIZES = (512, 1024, 2048, 4000)


def default_photo(longer_side: int = 4000) -> np.ndarray:
    """(H, W, 3) uint8: grace_hopper.jpg, 1100 px wide, in a 4000 x 3000 frame, resized to ``longer_side``."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        portrait = im.convert("RGB").resize((1100, round(1100 * im.height / im.width)), Image.LANCZOS)
    ys = np.linspace(0.0, 1.0, 3000, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, 4000, dtype=np.float32)[None, :, None]
    frame = 255 * (0.35 + 0.3 * ys * np.array([0.6, 0.8, 1.0]) + 0.15 * xs * np.array([1.0, 0.7, 0.4]))
    frame = np.ascontiguousarray(np.broadcast_to(frame, (3000, 4000, 3)).astype(np.uint8))
    frame[1500 : 1500 + portrait.height, 2400 : 2400 + portrait.width] = np.asarray(portrait)
    image = Image.fromarray(frame)
    scale = longer_side / 4000
    return np.asarray(image.resize((round(4000 * scale), round(3000 * scale)), Image.LANCZOS))


BENT_OVER_POSE = {
    "root": (115.0, 0.0, 0.0),
    "upperleg01.L": (-105.0, 0.0, 0.0),
    "upperleg01.R": (-105.0, 0.0, 0.0),
    "upperarm01.L": (-80.0, 0.0, 0.0),
    "upperarm01.R": (-80.0, 0.0, 0.0),
}
"""Anny joint rotations (degrees): folded forward at the hips, legs upright, arms hanging to the floor."""


def bent_over_scene(body, longer_side: int = 2048):
    """The posed body and the camera of :func:`bent_over_photo`: (posed output, PinholeCamera)."""
    from posecore.cameras.pinhole import PinholeCamera
    from posecore.demo import pose_from_table

    params = body.default_params()
    params.rotations = pose_from_table(body, BENT_OVER_POSE, degrees=True)
    with torch.no_grad():
        posed = body(params)
    centre = 0.5 * (posed.vertices.min(0).values + posed.vertices.max(0).values)
    eye = centre + torch.tensor([-2.6, -1.2, 0.3])
    look = PinholeCamera.look_at(eye, centre, torch.tensor([0.0, 0.0, 1.0]), 2048, 1536, 100.0)
    camera = PinholeCamera(look.fx, look.fy, look.cx - 512, look.cy + 154, 2048, 1536, look.rotation, look.translation)
    return posed, camera.scaled(longer_side / 2048)


def bent_over_photo(body, longer_side: int = 2048) -> np.ndarray:
    """(H, W, 3) uint8, 4:3: the Anny body folded forward, hands to the floor, small and off-centre, rendered by the
    raster renderer (skin colour, the demo's lights, a grey-blue background)."""
    from posecore.demo import SKIN, target_lighting
    from posecore.render.raster import RasterRenderer
    from posecore.render.scene import RenderScene

    posed, camera = bent_over_scene(body, longer_side)
    colours = torch.tensor(SKIN).expand(body.num_vertices, 3)
    background = torch.tensor([0.55, 0.6, 0.65])
    scene = RenderScene(posed.vertices, body.faces, colours, camera, target_lighting(), background)
    with torch.no_grad():
        image = RasterRenderer().render(scene).image
    return np.round(image.clamp(0, 1).numpy() * 255).astype(np.uint8)


def resized_photo(path: str, longer_side: int) -> np.ndarray:
    """(H, W, 3) uint8: the photo at ``path`` resized so its longer side is ``longer_side``."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = longer_side / max(im.size)
        return np.asarray(im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS))


def time_fit(photo_file: Path, body, crop: str, max_iterations: int | None) -> dict:
    """Run the ``fit`` command's steps on ``photo_file`` (no init) and time each; returns one row."""
    from posecore.cli import add_photo_terms, build_parser, initial_from_photo
    from posecore.detect.landmarks import NoPersonFoundError
    from posecore.fitting.setup import FitOptions, prepare_fit

    argv = ["fit", "--image", str(photo_file), "--out", "unused", "--person-crop", crop]
    if max_iterations is not None:
        argv += ["--iterations", str(max_iterations)]
    args = build_parser().parse_args(argv)
    row: dict = {"crop": crop, "found_by": "no person found", "estimated": False}
    t = time.perf_counter()
    from posecore.io.targets import read_target_image

    read_target_image(photo_file)  # decoding alone, for its own column (the command decodes once)
    row["decode_s"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        options, kwargs, photo = initial_from_photo(args, FitOptions.from_args(args))
    except NoPersonFoundError:
        row["detect_s"] = time.perf_counter() - t
        return row
    start_s = time.perf_counter() - t
    row["detect_s"], row["init_s"] = photo.detect_seconds, photo.init_seconds
    t = time.perf_counter()
    prepared = prepare_fit(options, **kwargs)
    add_photo_terms(prepared, args, photo)
    prepared.crop_to_person()
    fitter = prepared.fitter()
    row["setup_s"] = time.perf_counter() - t + (start_s - photo.detect_seconds - photo.init_seconds)
    t, cpu = time.perf_counter(), time.process_time()
    states = fitter.run()
    row["fit_s"], row["fit_cpu_s"] = time.perf_counter() - t, time.process_time() - cpu
    row["iterations"] = states[-1].iteration
    row["ms_per_it"] = 1000 * row["fit_s"] / max(1, row["iterations"])
    row["fit_size"] = [prepared.problem.look.camera.width, prepared.problem.look.camera.height]
    row["found_by"] = photo.detection.found_by
    return row


def make_photo(name: str, body, longer_side: int) -> np.ndarray:
    """(H, W, 3) uint8: the named photo (``grace-hopper``, ``bent-over`` or a file) at ``longer_side``."""
    if name == "grace-hopper":
        return default_photo(longer_side)
    if name == "bent-over":
        return bent_over_photo(body, longer_side)
    return resized_photo(name, longer_side)


def run(photos: list[str], sizes: list[int], full_iterations: int) -> list[dict]:
    """Time every photo and size with the crop (``auto``) and without (``off``)."""
    from PIL import Image

    from posecore.bodies import load_body_model

    body = load_body_model("anny")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="posefit-sizes-") as tmp:
        for name in photos:
            for size in sizes:
                image = make_photo(name, body, size)
                path = Path(tmp) / f"photo_{size}.jpg"
                Image.fromarray(image).save(path, quality=92)
                if not rows:
                    time_fit(path, body, "auto", 1)  # warm-up: MediaPipe's first call, the initialiser's set-up
                label = f"{Path(name).name} {image.shape[1]}x{image.shape[0]}"
                cropped = time_fit(path, body, "auto", None)
                cropped["photo"] = label
                rows.append(cropped)
                print(_line(cropped), flush=True)
                if "iterations" not in cropped:
                    continue
                limit = None if size <= 1024 else full_iterations
                full = time_fit(path, body, "off", limit)
                full["photo"] = label
                if limit is not None and "iterations" in full:
                    full["fit_s"] = full["ms_per_it"] * cropped["iterations"] / 1000
                    full["iterations"], full["estimated"] = cropped["iterations"], True
                rows.append(full)
                print(_line(full), flush=True)
    return rows


def _line(row: dict) -> str:
    if "iterations" not in row:
        head = f"| {row['photo']} | {row['crop']} | - | {row['decode_s']:.2f} | {row['detect_s']:.2f} "
        return head + "| no person found | | | | | |"
    found = "" if row["found_by"] == "photo" else " (retry)"
    alone = row["detect_s"] + row["init_s"] + row["fit_s"]
    est = " est." if row["estimated"] else ""
    return (
        f"| {row['photo']} | {row['crop']} | {row['fit_size'][0]}x{row['fit_size'][1]} | {row['decode_s']:.2f} | "
        f"{row['detect_s']:.2f}{found} | {row['init_s']:.2f} | {row['setup_s']:.2f} | {row['iterations']} | "
        f"{row['ms_per_it']:.0f} | {row['fit_s']:.2f}{est} | {alone:.2f}{est} |"
    )


HEADER = (
    "| photo | person crop | fit size | decode s | detect s | init s | set-up s | iterations | ms/it | fit s "
    "| photo-alone s |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.bench photo-sizes", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--photos", default="grace-hopper,bent-over", help="comma list: grace-hopper, bent-over or photo files"
    )
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="longer sides, comma list")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--full-iterations", type=int, default=8, help="iterations of uncropped fits above 1024 px")
    parser.add_argument("--out", default=None, help="folder whose results.md gets the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(HEADER)
    rows = run(args.photos.split(","), [int(s) for s in args.sizes.split(",")], args.full_iterations)
    if args.out:
        command = "python -m posecore.bench photo-sizes " + shlex.join(argv)
        text = "\n".join(
            [
                f"Measured with `{command}` on {machine_line()}, {torch.get_num_threads()} thread(s).",
                "",
                HEADER,
                *[_line(r) for r in rows],
                "",
            ]
        )
        write_marked_section(Path(args.out) / "results.md", text, START_MARKER, END_MARKER, heading="Photo sizes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
