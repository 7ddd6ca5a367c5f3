"""Between Blender data and posecore: build a body rig, read and write poses and cameras.

No maths here beyond copying numbers: the conversions are :mod:`posecore.rig` (tested without Blender).
Conventions: the armature object's ``matrix_world`` maps the model frame to Blender's world (a turn about X
that makes the body upright, see :func:`posecore.rig.upright_matrix`); the mesh is parented to the armature with
an identity local transform; the camera lives in Blender's world.
"""

from __future__ import annotations

import bpy
import numpy as np
import torch
from mathutils import Matrix

from posecore import rig as rigmath
from posecore.bodies import BodyModel, BodyParams, load_body_model
from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import ParameterError
from posecore.fitting.parts import part_vertex_mask
from posecore.rotations import axis_angle_to_matrix

MODEL_KEY = "posefit_model"
"""Custom property on the armature object: the body-model spec (``anny`` or ``smplx:DIR[:gender]``)."""
ROLE_KEY = "posefit_role"
"""Custom property on every object PoseFit creates (``body``, ``body_mesh``, ``camera``): re-importing replaces
exactly these, never an object the user made."""
SHAPE_KEY = "posefit_shape"
EXPRESSION_KEY = "posefit_expression"
INITIAL_KEY = "posefit_initial_pose"
"""Custom property on the armature: the import's pose, (J*3) rotations then (3,) translation, for Reset Pose."""
CORRECTIVES_KEY = "posefit_correctives"
"""Shape key holding SMPL-X's pose-corrective offsets for the pose last written by PoseFit."""
PART_GROUPS = ("lower_body", "upper_body", "left_arm", "right_arm", "left_leg", "right_leg", "head", "hands")
PART_PREFIX = "part_"
"""Part vertex groups are named ``part_<part>`` (bones such as ``head`` already own the plain name)."""

_BODIES: dict[tuple[str, str], BodyModel] = {}
_RIGS: dict[tuple[str, tuple[float, ...]], rigmath.RestRig] = {}


# ---------------------------------------------------------------------------------------------- models
def get_body(spec: str, device: str = "cpu") -> BodyModel:
    """The body model for ``spec``, loaded once per process."""
    key = (spec, device)
    if key not in _BODIES:
        _BODIES[key] = load_body_model(spec, device=device)
    return _BODIES[key]


def get_rig(spec: str, body: BodyModel, shape: torch.Tensor) -> rigmath.RestRig:
    """The rest rig of ``body`` at ``shape``, cached per spec and shape."""
    key = (spec, tuple(float(x) for x in shape.reshape(-1).tolist()))
    if key not in _RIGS:
        _RIGS[key] = rigmath.rest_rig(body, shape)
    return _RIGS[key]


def find_body_objects(context: bpy.types.Context) -> tuple[bpy.types.Object | None, bpy.types.Object | None]:
    """The PoseFit armature (the active one, or the first in the scene) and its skinned mesh."""
    candidates = []
    active = context.view_layer.objects.active if context.view_layer else None
    if active is not None:
        candidates.append(active.parent if active.type == "MESH" and active.parent else active)
    candidates.extend(context.scene.objects)
    for obj in candidates:
        if obj is not None and obj.type == "ARMATURE" and MODEL_KEY in obj:
            mesh = next((c for c in obj.children if c.type == "MESH"), None)
            return obj, mesh
    return None, None


def _matrix(obj: bpy.types.Object) -> torch.Tensor:
    return torch.tensor([list(row) for row in obj.matrix_world], dtype=torch.float32)


# ---------------------------------------------------------------------------------------------- building
_DATA_COLLECTIONS = {"ARMATURE": "armatures", "MESH": "meshes", "CAMERA": "cameras"}


def remove_posefit_objects(
    scene: bpy.types.Scene, roles: tuple[str, ...] = ("body", "body_mesh", "camera")
) -> list[str]:
    """Delete the objects PoseFit made in ``scene`` (tagged with :data:`ROLE_KEY`, one of ``roles``) and their
    armature, mesh and camera data when nothing else uses it, so a new import gets the plain names back (no
    ``.001``). Objects without the tag are not removed; one parented to a removed object keeps its place in
    the world. Returns the names removed."""
    doomed = [obj for obj in scene.objects if obj.get(ROLE_KEY) in roles]
    names = [obj.name for obj in doomed]
    for obj in doomed:
        for child in obj.children:
            if child not in doomed:  # not removed (the user's object parented to PoseFit's): keep its place
                world = child.matrix_world.copy()
                child.parent = None
                child.matrix_world = world
    for obj in doomed:
        data, collection = obj.data, _DATA_COLLECTIONS.get(obj.type)
        bpy.data.objects.remove(obj)
        if data is not None and collection is not None and data.users == 0:
            getattr(bpy.data, collection).remove(data)
    return names


def mesh_from_triangles(name: str, vertices, faces) -> bpy.types.Mesh:
    """A new mesh datablock from (V, 3) vertex positions (metres) and (F, 3) triangle indices (arrays)."""
    mesh = bpy.data.meshes.new(name)
    verts = np.ascontiguousarray(vertices, dtype=np.float32)
    faces = np.ascontiguousarray(faces, dtype=np.int32)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", verts.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update()
    mesh.validate()
    return mesh


def build_body(
    context: bpy.types.Context,
    spec: str,
    body: BodyModel,
    params: BodyParams,
    name: str = "PoseFit body",
) -> tuple[bpy.types.Object, bpy.types.Object]:
    """Create the armature (bones = joints, rest pose = the model's bind pose at ``params.shape``) and the skinned
    mesh (Armature modifier, a vertex group per joint and ``part_*`` groups), posed by ``params``.

    Returns:
        (armature object, mesh object), linked into the scene's active collection.
    """
    rig = get_rig(spec, body, params.shape)
    collection = context.collection or context.scene.collection
    arm_data = bpy.data.armatures.new(name)
    arm_obj = bpy.data.objects.new(name, arm_data)
    collection.objects.link(arm_obj)
    arm_obj[MODEL_KEY] = spec
    arm_obj[ROLE_KEY] = "body"
    arm_obj[SHAPE_KEY] = [float(x) for x in params.shape.tolist()]
    arm_obj[EXPRESSION_KEY] = [float(x) for x in params.expression.tolist()]
    arm_obj[INITIAL_KEY] = [float(x) for x in torch.cat([params.rotations.reshape(-1), params.translation]).tolist()]
    arm_data.display_type = "STICK"

    for obj in context.view_layer.objects:
        if obj is not None:  # a base of an object removed in this operator can linger until the next redraw
            obj.select_set(False)
    context.view_layer.objects.active = arm_obj
    arm_obj.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    edit_bones = []
    for j, joint in enumerate(rig.joint_names):
        eb = arm_data.edit_bones.new(joint)
        eb.head = (0.0, 0.0, 0.0)
        eb.tail = (0.0, float(rig.lengths[j]), 0.0)
        eb.matrix = Matrix(rig.bone_frames[j].tolist())
        eb.use_connect = False
        edit_bones.append(eb)
    for j, p in enumerate(rig.parents):
        if p >= 0:
            edit_bones[j].parent = edit_bones[p]
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in arm_obj.pose.bones:
        pb.rotation_mode = "QUATERNION"

    up = axis_angle_to_matrix(params.rotations[0]) @ body.up_axis.to(torch.float32)
    arm_obj.matrix_world = Matrix(rigmath.upright_matrix(up).tolist())

    mesh_obj = bpy.data.objects.new(
        f"{name} mesh", mesh_from_triangles(f"{name} mesh", rig.rest_vertices.numpy(), rig.faces.numpy())
    )
    collection.objects.link(mesh_obj)
    mesh_obj[ROLE_KEY] = "body_mesh"
    mesh_obj.parent = arm_obj
    mesh_obj.matrix_parent_inverse = Matrix.Identity(4)
    modifier = mesh_obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = arm_obj
    _add_vertex_groups(mesh_obj, body, rig)
    write_pose(arm_obj, rig, params.rotations, params.translation)
    update_correctives(mesh_obj, rig, body, params)
    return arm_obj, mesh_obj


def _add_vertex_groups(mesh_obj: bpy.types.Object, body: BodyModel, rig: rigmath.RestRig) -> None:
    weights = rig.weights.numpy()
    for j, joint in enumerate(rig.joint_names):
        group = mesh_obj.vertex_groups.new(name=joint)
        column = weights[:, j]
        for v in np.nonzero(column > 0.0)[0].tolist():
            group.add([v], float(column[v]), "REPLACE")
    for part in PART_GROUPS:
        group = mesh_obj.vertex_groups.new(name=PART_PREFIX + part)
        members = np.nonzero(part_vertex_mask(body, part).cpu().numpy())[0].tolist()
        group.add(members, 1.0, "REPLACE")


# ---------------------------------------------------------------------------------------------- poses
def write_pose(
    arm_obj: bpy.types.Object, rig: rigmath.RestRig, rotations: torch.Tensor, translation: torch.Tensor
) -> None:
    """Set every pose bone's quaternion (and the root bone's location) from posecore parameters."""
    quats, location = rigmath.bone_basis_from_pose(rig, rotations, translation)
    bones = arm_obj.pose.bones
    for j, joint in enumerate(rig.joint_names):
        pb = bones[joint]
        pb.rotation_mode = "QUATERNION"
        pb.rotation_quaternion = quats[j].tolist()
        if j == 0:
            pb.location = location.tolist()


def read_pose(arm_obj: bpy.types.Object, rig: rigmath.RestRig) -> tuple[torch.Tensor, torch.Tensor]:
    """(J, 3) rotations and (3,) translation (model frame) from the pose bones."""
    bones = arm_obj.pose.bones
    quats = []
    for joint in rig.joint_names:
        pb = bones[joint]
        if pb.rotation_mode != "QUATERNION":
            raise ParameterError(f"bone {joint!r} uses rotation mode {pb.rotation_mode}; PoseFit needs QUATERNION")
        quats.append(list(pb.rotation_quaternion))
    location = torch.tensor(list(bones[rig.joint_names[0]].location), dtype=torch.float32)
    return rigmath.pose_from_bone_basis(rig, torch.tensor(quats), location)


def body_params(arm_obj: bpy.types.Object, body: BodyModel, rig: rigmath.RestRig) -> BodyParams:
    """The armature's current posecore parameters (pose from the bones, shape/expression from its properties)."""
    rotations, translation = read_pose(arm_obj, rig)
    expression = torch.tensor(list(arm_obj.get(EXPRESSION_KEY, [])), dtype=torch.float32)
    params = BodyParams(rotations, translation, rig.shape.clone(), expression.reshape(-1))
    body.check_params(params, f"armature {arm_obj.name!r}")
    return params


def initial_pose(arm_obj: bpy.types.Object, body: BodyModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The pose the body was imported with: (J, 3) rotations and (3,) translation (model frame)."""
    values = arm_obj.get(INITIAL_KEY)
    if values is None:
        raise ParameterError(f"armature {arm_obj.name!r} has no initial pose stored: import the body again")
    flat = torch.tensor(list(values), dtype=torch.float32)
    return flat[:-3].reshape(body.num_joints, 3), flat[-3:]


def model_gender(spec: str) -> str:
    """The gender of an ``smplx:DIR[:gender]`` spec (``neutral`` when none is given); DIR may be a Windows path."""
    from posecore.bodies import parse_smplx_spec

    return parse_smplx_spec(spec)[1] if spec.startswith("smplx:") else "neutral"


def save_fit(context: bpy.types.Context, path: str) -> list[str]:
    """Write the PoseFit body's current pose, shape and the scene camera as PoseFit's ``fit.npz`` at ``path``;
    for SMPL-X also ``<stem>_smplx.npz`` and ``<stem>_smplx.json`` (the smplx package's keys). Each file is
    written atomically. Returns the paths written."""
    from pathlib import Path

    from posecore.io.atomic import save_npz_atomic
    from posecore.results import fit_arrays, smplx_parameters, write_smplx_parameters

    arm_obj, _mesh = find_body_objects(context)
    if arm_obj is None:
        raise ParameterError("no PoseFit body in the scene: import one first")
    scene = context.scene
    if scene.camera is None:
        raise ParameterError("the scene has no active camera to save with the fit")
    spec = str(arm_obj[MODEL_KEY])
    body = get_body(spec)
    rig = get_rig(spec, body, torch.tensor(list(arm_obj[SHAPE_KEY]), dtype=torch.float32))
    params = body_params(arm_obj, body, rig)
    camera = camera_in_model_frame(scene, scene.camera, arm_obj)
    target = Path(bpy.path.abspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(target, **fit_arrays(body, params, camera, torch.zeros(3)))
    written = [str(target)]
    if body.name == "smplx":
        stem = target.with_suffix("")
        npz, json_path = f"{stem}_smplx.npz", f"{stem}_smplx.json"
        write_smplx_parameters(npz, json_path, smplx_parameters(params, camera, model_gender(spec)))
        written += [npz, json_path]
    return written


def shape_labels(body: BodyModel) -> list[str]:
    """A name per shape value: Anny's phenotypes (gender, age, ...), SMPL-X's ``beta 1`` ... ``beta S``."""
    names = getattr(body, "shape_names", None)
    return list(names) if names else [f"beta {i + 1}" for i in range(body.num_shape)]


def rebuild_with_shape(context: bpy.types.Context, shape: torch.Tensor) -> tuple[bpy.types.Object, bpy.types.Object]:
    """Rebuild the PoseFit body (armature and mesh: the bones' rest lengths depend on the shape) at ``shape``,
    keeping its pose, its animation (the action, keyed by bone name) and its initial pose; the camera stays.

    Args:
        shape: (S,) the body model's shape values (SMPL-X betas, Anny phenotypes in [0, 1]).
    """
    arm_obj, _mesh = find_body_objects(context)
    if arm_obj is None:
        raise ParameterError("no PoseFit body in the scene: import one first")
    spec = str(arm_obj[MODEL_KEY])
    body = get_body(spec)
    params = body_params(arm_obj, body, get_rig(spec, body, torch.tensor(list(arm_obj[SHAPE_KEY]))))
    params.shape = shape.to(torch.float32).reshape(-1)
    body.check_params(params, "the shape")
    initial = list(arm_obj.get(INITIAL_KEY, []))
    action = arm_obj.animation_data.action if arm_obj.animation_data else None
    name = arm_obj.name
    remove_posefit_objects(context.scene, roles=("body", "body_mesh"))
    arm_obj, mesh_obj = build_body(context, spec, body, params, name=name)
    if initial:
        arm_obj[INITIAL_KEY] = initial
    if action is not None:
        arm_obj.animation_data_create().action = action
    return arm_obj, mesh_obj


def keyed_frame_range(obj: bpy.types.Object) -> tuple[int, int] | None:
    """(first, last) frame holding a key in ``obj``'s action (rounded outwards), or None without keys."""
    import math

    animation = obj.animation_data
    if animation is None or animation.action is None:
        return None
    first, last = animation.action.curve_frame_range
    return (math.floor(first), math.ceil(last)) if last >= first else None


def export_body(context: bpy.types.Context, path: str, scene_range: bool = False) -> tuple[int, int]:
    """Export the PoseFit body through Blender's own exporters: ``.fbx`` (armature and skinned mesh, no leaf
    bones) or ``.bvh`` (the armature's motion). With keyframes the frames from the first key to the last are
    exported (the scene's frame range with ``scene_range``), else the current pose as one frame. Re-importing
    with Blender's importers gives the same bone rotations (BVH: import
    with forward Y, up Z, since the exporter writes Blender's Z-up world).

    Returns:
        (first frame, last frame) exported.

    Raises:
        ParameterError: no PoseFit body, an unknown suffix, or the exporter add-on is disabled.
    """
    from pathlib import Path

    arm_obj, mesh_obj = find_body_objects(context)
    if arm_obj is None:
        raise ParameterError("no PoseFit body in the scene: import one first")
    target = Path(bpy.path.abspath(path))
    suffix = target.suffix.lower()
    if suffix not in (".fbx", ".bvh"):
        raise ParameterError(f"{target.name}: export to .fbx or .bvh")
    scene = context.scene
    keyed = keyed_frame_range(arm_obj)
    animated = keyed is not None
    if not animated:
        first = last = scene.frame_current
    else:
        first, last = (scene.frame_start, scene.frame_end) if scene_range else keyed
    view_layer = context.view_layer
    for obj in view_layer.objects:
        if obj is not None:
            obj.select_set(obj in (arm_obj, mesh_obj))
    view_layer.objects.active = arm_obj
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".fbx":
        if not hasattr(bpy.ops.export_scene, "fbx"):
            raise ParameterError("the FBX exporter is off: enable 'FBX format' in Preferences > Add-ons")
        bpy.ops.export_scene.fbx(
            filepath=str(target),
            use_selection=True,
            object_types={"ARMATURE", "MESH"},
            add_leaf_bones=False,
            bake_anim=animated,
        )
    else:
        if not hasattr(bpy.ops.export_anim, "bvh"):
            raise ParameterError("the BVH exporter is off: enable 'BioVision Motion Capture (BVH) format' in Add-ons")
        current = scene.frame_current
        bpy.ops.export_anim.bvh(filepath=str(target), frame_start=first, frame_end=last)
        scene.frame_set(current)
    return first, last


def update_correctives(
    mesh_obj: bpy.types.Object, rig: rigmath.RestRig, body: BodyModel, params: BodyParams, tolerance: float = 1e-6
) -> None:
    """Store the model's pose-corrective offsets for ``params`` in a shape key (SMPL-X); nothing for pure-LBS
    models (Anny) unless a key exists already."""
    quats, location = rigmath.bone_basis_from_pose(rig, params.rotations, params.translation)
    transforms = rigmath.armature_skinning(rig, quats, location)
    with torch.no_grad():
        posed = body(params).vertices.detach().cpu()
    offsets = rigmath.corrective_offsets(rig, transforms, posed)
    keys = mesh_obj.data.shape_keys
    has_key = keys is not None and CORRECTIVES_KEY in keys.key_blocks
    if float(offsets.abs().max()) < tolerance and not has_key:
        return
    if keys is None:
        mesh_obj.shape_key_add(name="Basis", from_mix=False)
    block = mesh_obj.data.shape_keys.key_blocks.get(CORRECTIVES_KEY) or mesh_obj.shape_key_add(
        name=CORRECTIVES_KEY, from_mix=False
    )
    block.data.foreach_set("co", (rig.rest_vertices + offsets).numpy().astype(np.float32).ravel())
    block.value = 1.0
    mesh_obj.data.update()


def snapshot_pose(arm_obj: bpy.types.Object) -> dict[str, tuple]:
    """Every pose bone's rotation mode, quaternion, euler, axis-angle, location and scale, exactly."""
    return {
        pb.name: (
            pb.rotation_mode,
            tuple(pb.rotation_quaternion),
            tuple(pb.rotation_euler),
            tuple(pb.rotation_axis_angle),
            tuple(pb.location),
            tuple(pb.scale),
        )
        for pb in arm_obj.pose.bones
    }


def restore_pose(arm_obj: bpy.types.Object, snapshot: dict[str, tuple]) -> None:
    """Undo every pose change since :func:`snapshot_pose`, bit for bit."""
    for pb in arm_obj.pose.bones:
        mode, quat, euler, axis_angle, location, scale = snapshot[pb.name]
        pb.rotation_mode = mode
        pb.rotation_quaternion = quat
        pb.rotation_euler = euler
        pb.rotation_axis_angle = axis_angle
        pb.location = location
        pb.scale = scale


_OBJECT_CHANNELS = (
    "location",
    "rotation_mode",
    "rotation_euler",
    "rotation_quaternion",
    "rotation_axis_angle",
    "scale",
    "delta_location",
    "delta_rotation_euler",
    "delta_rotation_quaternion",
    "delta_scale",
)
_CAMERA_CHANNELS = ("type", "lens", "lens_unit", "shift_x", "shift_y", "sensor_fit", "sensor_width", "sensor_height")


def snapshot_camera(cam_obj: bpy.types.Object) -> dict[str, object]:
    """The camera object's own channels (location, rotation mode and every rotation, scale, deltas) and its
    lens, shift and sensor, exactly as stored (not ``matrix_world``, whose round trip loses the last bits)."""
    snap: dict[str, object] = {}
    for name in _OBJECT_CHANNELS:
        value = getattr(cam_obj, name)
        snap[f"object.{name}"] = value if isinstance(value, str) else tuple(value)
    for name in _CAMERA_CHANNELS:
        snap[f"data.{name}"] = getattr(cam_obj.data, name)
    return snap


def restore_camera(cam_obj: bpy.types.Object, snapshot: dict[str, object]) -> None:
    """Undo every change to the camera since :func:`snapshot_camera`, bit for bit."""
    for key, value in snapshot.items():
        owner, name = key.split(".", 1)
        setattr(cam_obj if owner == "object" else cam_obj.data, name, value)


# ---------------------------------------------------------------------------------------------- cameras
def render_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """Final render (width, height) in pixels, percentage applied."""
    r = scene.render
    return (
        max(1, round(r.resolution_x * r.resolution_percentage / 100)),
        max(1, round(r.resolution_y * r.resolution_percentage / 100)),
    )


def camera_in_model_frame(
    scene: bpy.types.Scene, cam_obj: bpy.types.Object, arm_obj: bpy.types.Object
) -> PinholeCamera:
    """The Blender camera as a posecore camera in the body's model frame (render resolution)."""
    data = cam_obj.data
    if data.type != "PERSP":
        raise ParameterError(f"camera {cam_obj.name!r} is {data.type}; PoseFit needs a perspective camera")
    width, height = render_size(scene)
    world = _matrix(cam_obj)
    cam_world = PinholeCamera.from_blender(
        data.lens,
        data.sensor_width,
        data.sensor_height,
        data.sensor_fit,
        data.shift_x,
        data.shift_y,
        width,
        height,
        scene.render.pixel_aspect_x,
        scene.render.pixel_aspect_y,
        matrix_world=world,
    )
    return rigmath.camera_to_frame(cam_world, _matrix(arm_obj))


def set_camera_pose(cam_obj: bpy.types.Object, camera: PinholeCamera, arm_obj: bpy.types.Object) -> None:
    """Place the Blender camera where ``camera`` (model frame) is."""
    in_world = rigmath.camera_to_frame(camera, torch.linalg.inv(_matrix(arm_obj)))
    cam_obj.matrix_world = Matrix(in_world.to_blender()["matrix_world"])


def make_camera(
    context: bpy.types.Context,
    camera: PinholeCamera,
    arm_obj: bpy.types.Object,
    name: str = "PoseFit camera",
    set_resolution: bool = True,
) -> bpy.types.Object:
    """Create a camera with ``camera``'s intrinsics (model frame extrinsics) and make it the scene camera; with
    ``set_resolution`` also the render resolution and pixel aspect (else ``camera`` must match the scene's)."""
    scene = context.scene
    data = bpy.data.cameras.new(name)
    cam_obj = bpy.data.objects.new(name, data)
    cam_obj[ROLE_KEY] = "camera"
    (context.collection or scene.collection).objects.link(cam_obj)
    settings = camera.to_blender()
    data.lens = settings["lens_mm"]
    data.sensor_width = settings["sensor_width_mm"]
    data.sensor_fit = settings["sensor_fit"]
    data.shift_x = settings["shift_x"]
    data.shift_y = settings["shift_y"]
    data.clip_start = 0.01
    data.clip_end = 1000.0
    if set_resolution:
        scene.render.resolution_x = settings["resolution_x"]
        scene.render.resolution_y = settings["resolution_y"]
        scene.render.resolution_percentage = 100
        scene.render.pixel_aspect_x = settings["pixel_aspect_x"]
        scene.render.pixel_aspect_y = settings["pixel_aspect_y"]
    set_camera_pose(cam_obj, camera, arm_obj)
    scene.camera = cam_obj
    return cam_obj


def vertex_group_mask(mesh_obj: bpy.types.Object, name: str, threshold: float = 0.5) -> torch.Tensor:
    """(V,) bool: vertices whose weight in the group ``name`` is at least ``threshold``."""
    group = mesh_obj.vertex_groups.get(name)
    if group is None:
        raise ParameterError(f"mesh {mesh_obj.name!r} has no vertex group {name!r}")
    index = group.index
    mask = np.zeros(len(mesh_obj.data.vertices), dtype=bool)
    for v in mesh_obj.data.vertices:
        for g in v.groups:
            if g.group == index and g.weight >= threshold:
                mask[v.index] = True
    return torch.from_numpy(mask)
