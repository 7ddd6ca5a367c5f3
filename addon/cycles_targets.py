"""Blender Cycles renders of benchmark targets (bpy side of ``posecore.bench.scenes``).

posecore never imports bpy: the benchmark scene set (``scripts/make_benchmark_scenes.py``) passes
:func:`render_cycles` to :func:`posecore.bench.scenes.make_scene_set` as its target renderer.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from addon.scene_io import mesh_from_triangles
from posecore.bench.scenes import CyclesLook
from posecore.cameras.pinhole import PinholeCamera


def render_cycles(
    vertices_world: np.ndarray,
    faces: np.ndarray,
    camera_world: PinholeCamera,
    look: CyclesLook,
    samples: int = 24,
    threads: int = 1,
    seed: int = 0,
    vertex_colors: np.ndarray | None = None,
) -> np.ndarray:
    """Render a mesh with Blender Cycles (CPU) in a scene of its own, removed afterwards.

    Args:
        vertices_world: (V, 3) metres, Blender world (Z up). faces: (F, 3) triangle indices.
        camera_world: the camera in Blender's world (OpenCV convention; converted with ``to_blender``).
        samples: Cycles paths per pixel. threads: CPU threads Cycles uses.
        vertex_colors: (V, 3) linear RGB base colour per vertex (garments), or None for ``look.color``.

    Returns:
        (H, W, 4) float32 RGBA in [0, 1] (straight alpha), display-referred ("Standard" view transform).
    """
    import bpy
    from mathutils import Matrix, Vector

    name = "posefit_bench"
    scene = bpy.data.scenes.new(name)
    created: list = []
    try:
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_adaptive_sampling = False
        scene.cycles.use_denoising = False
        scene.cycles.seed = seed
        scene.cycles.max_bounces = 4
        scene.render.threads_mode = "FIXED"
        scene.render.threads = max(1, threads)
        settings = camera_world.to_blender()
        scene.render.resolution_x, scene.render.resolution_y = settings["resolution_x"], settings["resolution_y"]
        scene.render.resolution_percentage = 100
        scene.render.film_transparent = True
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGBA"
        scene.render.image_settings.color_depth = "8"
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"

        world = bpy.data.worlds.new(name)
        created.append(world)
        world.use_nodes = True
        world.node_tree.nodes["Background"].inputs["Color"].default_value = (*look.world, 1.0)
        scene.world = world

        mesh = mesh_from_triangles(name, vertices_world, faces)
        created.append(mesh)
        mesh.shade_smooth()
        material = bpy.data.materials.new(name)
        created.append(material)
        material.use_nodes = True
        bsdf = material.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*look.color, 1.0)
        if vertex_colors is not None:
            attribute = mesh.color_attributes.new("garment", "FLOAT_COLOR", "POINT")
            rgba = np.concatenate(
                [np.asarray(vertex_colors, np.float32), np.ones((len(vertex_colors), 1), np.float32)], 1
            )
            attribute.data.foreach_set("color", rgba.ravel())
            node = material.node_tree.nodes.new("ShaderNodeAttribute")
            node.attribute_name = "garment"
            material.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = look.roughness
        mesh.materials.append(material)
        body_obj = bpy.data.objects.new(name, mesh)
        created.append(body_obj)
        scene.collection.objects.link(body_obj)

        cam_data = bpy.data.cameras.new(name)
        created.append(cam_data)
        cam_data.lens = settings["lens_mm"]
        cam_data.sensor_width = settings["sensor_width_mm"]
        cam_data.sensor_fit = settings["sensor_fit"]
        cam_data.shift_x, cam_data.shift_y = settings["shift_x"], settings["shift_y"]
        cam_data.clip_start, cam_data.clip_end = 0.01, 100.0
        cam_obj = bpy.data.objects.new(name + " camera", cam_data)
        created.append(cam_obj)
        cam_obj.matrix_world = Matrix(settings["matrix_world"])
        scene.collection.objects.link(cam_obj)
        scene.camera = cam_obj

        sun_data = bpy.data.lights.new(name + " sun", "SUN")
        created.append(sun_data)
        sun_data.energy = look.sun_strength
        sun_data.angle = math.radians(8.0)
        sun = bpy.data.objects.new(name + " sun", sun_data)
        created.append(sun)
        sun.rotation_euler = Vector(look.sun_direction).to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(sun)

        area_data = bpy.data.lights.new(name + " area", "AREA")
        created.append(area_data)
        area_data.energy = look.area_power
        area_data.size = 1.5
        area_data.color = (1.0, 0.93, 0.85)
        area = bpy.data.objects.new(name + " area", area_data)
        created.append(area)
        cam_pos = Vector(settings["matrix_world"][i][3] for i in range(3))
        area.location = cam_pos + Vector(look.area_offset)
        area.rotation_euler = (
            (Vector((0.0, 0.0, 0.0)) - Vector(look.area_offset) - cam_pos).to_track_quat("-Z", "Y").to_euler()
        )
        scene.collection.objects.link(area)

        with tempfile.TemporaryDirectory(prefix="posefit-cycles-") as tmp:
            path = Path(tmp) / "render.png"
            scene.render.filepath = str(path)
            bpy.ops.render.render(write_still=True, scene=scene.name)
            from PIL import Image

            with Image.open(path) as img:
                rgba = np.asarray(img.convert("RGBA") if img.mode != "RGBA" else img)
                rgba = rgba / 255.0
        return rgba.astype(np.float32)
    finally:
        bpy.data.scenes.remove(scene)
        for block in reversed(created):
            collection = {
                "Object": bpy.data.objects,
                "Mesh": bpy.data.meshes,
                "Material": bpy.data.materials,
                "World": bpy.data.worlds,
                "Camera": bpy.data.cameras,
            }.get(type(block).__name__, bpy.data.lights)
            collection.remove(block)
