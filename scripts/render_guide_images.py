"""Render the user guide's before/after pictures headless with Blender (the ``bpy`` module, Cycles on the CPU).

Run from the repository root (needs bpy==5.0.1 and the free Anny model)::

    python scripts/render_guide_images.py [--out docs/images] [--size 256] [--iterations 60]

What it does, as a user would in the panel: renders a target photo from a known pose with posecore's
RasterRenderer, imports the free body with that target (camera and camera background), puts the left arm off,
renders the body through the scene camera with Cycles (transparent film) and lays it over the target ("before"),
runs ``posefit.fit`` looking at ``part_left_arm`` and renders again ("after"). Pictures: ``guide_before.png``,
``guide_after.png`` and ``guide_before_after.png`` (side by side). The overlay of the Blender render on the
target is done with PIL (camera background images show in the viewport only, not in renders). Then
``guide_panel.png``: the sidebar panel after the fit, drawn from the panel's own ``draw()`` by
``scripts/panel_picture.py`` (Blender draws no user interface headless).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARM_ERRORS_DEG = {"upperarm01.L": (-30.0, -25.0, 0.0), "lowerarm01.L": (0.0, 0.0, 35.0)}


def _setup() -> None:
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="posefit-guide-"))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def render_target(path: pathlib.Path, size: int):
    """Render the 'photo' from the judo pose; returns the body model and the true parameters."""
    import torch

    from posecore import rig as rigmath
    from posecore.bodies import load_body_model
    from posecore.demo import JUDO_POSE, SKIN, pose_from_table, target_lighting
    from posecore.io.images import save_image
    from posecore.render.raster import RasterRenderer
    from posecore.render.scene import RenderScene

    body = load_body_model("anny")
    truth = body.default_params()
    truth.rotations = pose_from_table(body, JUDO_POSE)
    camera = rigmath.default_camera(rigmath.rest_rig(body), size, size)
    background = torch.zeros(3)  # the fit renders on black (FitProblem.background)
    with torch.no_grad():
        colors = torch.tensor(SKIN).expand(body.num_vertices, 3)
        scene = RenderScene(body(truth).vertices, body.faces, colors, camera, target_lighting(), background)
        out = RasterRenderer().render(scene)
    save_image(path, out.image.clamp(0, 1))
    return body, truth


def blender_render(path: pathlib.Path, size: int) -> None:
    """Render the scene camera's view with Cycles (CPU, transparent film) into ``path``."""
    import bpy

    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 16
    scene.render.film_transparent = True
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def overlay(target: pathlib.Path, render: pathlib.Path, out: pathlib.Path, label: str) -> None:
    """The Blender render at 75% over the target photo, with a caption; PNG."""
    from PIL import Image, ImageDraw

    photo = Image.open(target).convert("RGBA")
    body = Image.open(render).convert("RGBA").resize(photo.size)
    alpha = body.getchannel("A").point(lambda a: int(a * 0.75))
    body.putalpha(alpha)
    picture = Image.alpha_composite(photo, body).convert("RGB")
    ImageDraw.Draw(picture).text((6, 4), label, fill=(255, 255, 255))
    picture.save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=60)
    args = parser.parse_args(argv)
    _setup()
    import bpy
    import torch

    torch.set_num_threads(1)
    from addon.batch import load_extension, unload_extension
    from posecore.demo import pose_from_table

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="posefit-guide-work-"))
    target = work / "target.png"
    body, truth = render_target(target, args.size)

    bpy.ops.wm.read_homefile(use_empty=True)
    addon = load_extension()
    scene_io = sys.modules[f"{addon.__name__}.scene_io"]
    settings = bpy.context.scene.posefit
    settings.model, settings.init_path, settings.target_path = "anny", "", str(target)
    assert bpy.ops.posefit.import_body() == {"FINISHED"}
    arm, mesh = scene_io.find_body_objects(bpy.context)
    spec = str(arm[scene_io.MODEL_KEY])
    rig = scene_io.get_rig(spec, scene_io.get_body(spec), torch.tensor(list(arm[scene_io.SHAPE_KEY])))
    initial = truth.clone()
    initial.rotations = truth.rotations + pose_from_table(body, ARM_ERRORS_DEG, degrees=True)
    scene_io.write_pose(arm, rig, initial.rotations, initial.translation)

    material = bpy.data.materials.new("PoseFit guide")
    material.diffuse_color = (0.25, 0.55, 0.95, 1.0)
    if material.node_tree is not None:
        material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.25, 0.55, 0.95, 1.0)
    mesh.data.materials.append(material)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 4.0
    sun.matrix_world = bpy.context.scene.camera.matrix_world
    bpy.context.scene.collection.objects.link(sun)
    world = bpy.data.worlds.new("PoseFit guide")
    world.color = (0.4, 0.4, 0.4)
    bpy.context.scene.world = world

    blender_render(work / "before.png", args.size)
    settings.vertex_group, settings.iterations, settings.fit_size = "part_left_arm", args.iterations, args.size
    assert bpy.ops.posefit.fit() == {"FINISHED"}, settings.status_message
    print(settings.status_message)
    blender_render(work / "after.png", args.size)

    overlay(target, work / "before.png", out / "guide_before.png", "before: imported body over the target")
    overlay(target, work / "after.png", out / "guide_after.png", f"after: posefit.fit, {args.iterations} iterations")
    from PIL import Image

    before, after = Image.open(out / "guide_before.png"), Image.open(out / "guide_after.png")
    both = Image.new("RGB", (before.width * 2 + 8, before.height), (255, 255, 255))
    both.paste(before, (0, 0))
    both.paste(after, (before.width + 8, 0))
    both.save(out / "guide_before_after.png", optimize=True)
    sys.path.insert(0, str(ROOT / "scripts"))
    from panel_picture import render_panel

    ui = sys.modules[f"{addon.__name__}.ui"]
    render_panel(ui.POSEFIT_PT_main, bpy.context, out / "guide_panel.png")
    unload_extension()  # nothing left registered at exit (Blender 4.2 and 4.5 fail otherwise)
    for name in ("guide_before.png", "guide_after.png", "guide_before_after.png", "guide_panel.png"):
        print(f"wrote {out / name} ({(out / name).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
