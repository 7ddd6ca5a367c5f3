"""The README/docs pictures of fits from a photo alone, on two public-domain portraits inside packages.

Run from the repository root (needs mediapipe==0.10.14, scikit-image and the free Anny model)::

    python scripts/render_photo_examples.py [--out docs/images] [--size 256] [--iterations 100]

For matplotlib's ``grace_hopper.jpg`` (``matplotlib.cbook.get_sample_data``) and scikit-image's astronaut
(``skimage.data.astronaut()``; written to a temporary PNG, never into the repository) it does what
``python -m posecore fit --image PHOTO --part upper_body --size S`` does without ``--init``: detect the person,
initialise Anny and the camera, and fit the upper body with the detected mask and the keypoint term. Each picture
``photo_<name>.png`` shows a) the landmarks (person's left blue, right orange) and the detected mask (green),
b) the initialisation over the photo, c) the upper-body fit over the photo. It prints one line per photo with the
detection and initialisation times and the fit's image error before and after.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def photos(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """{name: path} of the two portraits (the astronaut is written into ``folder`` as a PNG)."""
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    astronaut = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).save(astronaut)
    return {
        "grace_hopper": pathlib.Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
        "astronaut": astronaut,
    }


def example(path: pathlib.Path, body, size: int, iterations: int) -> tuple[bytes, str]:
    """The three-panel picture (PNG bytes) and a summary line for one photo."""
    import torch
    from PIL import Image

    from posecore.detect.overlay import body_picture, landmarks_picture
    from posecore.detect.photo import photo_fit_preset, photo_start
    from posecore.fitting.look import Look
    from posecore.fitting.loop import FitProblem, PoseFitter
    from posecore.fitting.presets import get_preset
    from posecore.io.images import load_image
    from posecore.metrics import image_error_percent
    from posecore.render import get_renderer

    with Image.open(path) as im:
        width, height = im.size
    scale = size / max(width, height)
    fit_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    photo = load_image(path, size=fit_size)
    start = photo_start(path, body, size=fit_size)
    look = Look(start.init.camera, part="upper_body")
    problem = FitProblem(
        body,
        start.init.params,
        photo,
        look,
        get_renderer("raster"),
        person_mask=start.mask,
        keypoints=start.init.keypoints,
    )
    fitter = PoseFitter(problem, photo_fit_preset(get_preset("fast").with_overrides(iterations=iterations)))
    states = fitter.run()
    first, last = states[0], states[-1]
    panels = [
        landmarks_picture(photo, start.detection),
        body_picture(photo, body, start.init.params, start.init.camera),
        body_picture(photo, body, last.params, last.camera),
    ]
    canvas = Image.new("RGB", (sum(p.width for p in panels) + 8, panels[0].height), (255, 255, 255))
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width + 4
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    # Image error against what the fit compares with: the photo with the background outside the mask blacked out.
    before = image_error_percent(first.render, fitter.target, first.weight)
    after = image_error_percent(last.render, fitter.target, last.weight)
    line = (
        f"{path.name}: {fit_size[0]}x{fit_size[1]}, detection {1000 * start.detect_seconds:.0f} ms "
        f"({1000 * start.detect_cpu_seconds:.0f} ms CPU), initialisation {1000 * start.init_seconds:.0f} ms "
        f"({1000 * start.init_cpu_seconds:.0f} ms CPU), reprojection {start.init.reprojection_px:.1f} px, "
        f"upper-body fit {last.iteration} iterations {last.elapsed_s:.1f} s, image error {before:.2f}% -> {after:.2f}% "
        f"({torch.get_num_threads()} thread(s))"
    )
    return buffer.getvalue(), line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--size", type=int, default=256, help="longer side of the fit, pixels")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args(argv)

    import torch

    from posecore.bodies import load_body_model
    from posecore.figures import save_figure

    torch.set_num_threads(1)
    body = load_body_model("anny")
    out = pathlib.Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in photos(pathlib.Path(tmp)).items():
            png, line = example(path, body, args.size, args.iterations)
            save_figure(out / f"photo_{name}.png", png)
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
