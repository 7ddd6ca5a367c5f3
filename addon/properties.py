"""Scene settings (``scene.posefit``) and add-on preferences."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    StringProperty,
)

from posecore.fitting.presets import DEFAULT_PRESET, PRESETS
from posecore.render import DEFAULT_RENDERER, RENDERER_NAMES

ADDON_PACKAGE = __package__.rpartition(".")[0] or __package__
"""The extension's module name (``bl_ext.<repo>.posefit``): the key of its preferences."""

_RENDERER_ITEMS = [(name, name.capitalize(), f"posecore's {name} renderer") for name in RENDERER_NAMES]
_PRESET_ITEMS = [(name, name.capitalize(), preset.notes) for name, preset in PRESETS.items()]


def _device_items(_self: object, _context: object) -> list[tuple[str, str, str]]:
    items = [("cpu", "CPU", "Run torch on the CPU")]
    try:
        import torch

        if torch.cuda.is_available():
            items.append(("cuda", "CUDA", "Run torch on the first CUDA GPU"))
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return items


class PoseFitPreferences(bpy.types.AddonPreferences):
    """Machine-wide settings: where the licensed SMPL-X files are, how torch runs."""

    bl_idname = ADDON_PACKAGE

    smplx_folder: StringProperty(
        name="SMPL-X model folder",
        description="Folder holding smplx/SMPLX_NEUTRAL.npz (licensed files you download from smpl-x.is.tue.mpg.de)",
        subtype="DIR_PATH",
    )
    renderer: EnumProperty(name="Renderer", items=_RENDERER_ITEMS, default=DEFAULT_RENDERER)
    device: EnumProperty(name="Device", items=_device_items)
    threads: IntProperty(name="Threads", description="torch CPU threads (0 = torch's default)", default=1, min=0)

    def draw(self, _context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "smplx_folder")
        row = layout.row()
        row.prop(self, "renderer")
        row.prop(self, "device")
        row.prop(self, "threads")


def preferences(context: bpy.types.Context | None = None) -> PoseFitPreferences | None:
    """The add-on preferences, or None when the add-on is not registered as an extension (plain scripts)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


class PoseFitShapeValue(bpy.types.PropertyGroup):
    """One shape value of the body (an SMPL-X beta, an Anny phenotype); its ``name`` is the label."""

    value: FloatProperty(
        name="Value",
        description="Shape value: SMPL-X betas are in standard deviations (about -3 to 3); Anny's phenotypes go "
        "from 0 to 1 (0.5 = average). Press Apply Shape to rebuild the body",
        default=0.0,
        soft_min=-3.0,
        soft_max=3.0,
    )


class PoseFitSettings(bpy.types.PropertyGroup):
    """Per-scene workflow settings and the fit's live status."""

    model: EnumProperty(
        name="Model",
        items=[
            ("anny", "Anny (free)", "The free Anny body (Apache-2.0 code, CC0 data)"),
            ("smplx", "SMPL-X", "SMPL-X from the model folder set in the preferences"),
        ],
        default="anny",
    )
    gender: EnumProperty(
        name="Gender",
        items=[("neutral", "Neutral", ""), ("female", "Female", ""), ("male", "Male", "")],
        default="neutral",
    )
    init_path: StringProperty(
        name="Initialisation",
        description="Optional pose file (SMPLify-X .pkl, .npz, .json, SMPLer-X, AMASS, PoseFit fit.npz)",
        subtype="FILE_PATH",
    )
    init_frame: IntProperty(name="Frame", description="Frame of a multi-frame initialisation", default=0, min=0)
    target_path: StringProperty(
        name="Target image",
        description="The photo to fit; for frame ranges an image sequence (frame_####.png), a folder of images "
        "(sorted by name, numbered from 1) or a movie",
        subtype="FILE_PATH",
    )
    resolution_from_photo: BoolProperty(
        name="Resolution from photo",
        description="Import Body sets the render resolution to the target photo's size, so the camera sees the "
        "photo's shape (a fit refuses a photo whose shape differs from the render resolution's)",
        default=True,
    )
    target_offset: IntProperty(
        name="Image offset",
        description="Image (or movie frame) number = scene frame + this offset, for sequences and movies",
        default=0,
    )
    mask_path: StringProperty(
        name="Person mask",
        description="Optional mask image (white = the person): the fit ignores the photo outside it. For frame "
        "ranges a sequence pattern (mask_####.png) or a folder, numbered like the target",
        subtype="FILE_PATH",
    )
    mask_from_alpha: BoolProperty(
        name="Mask from alpha",
        description="Use the target image's own alpha channel as the person mask (a cut-out PNG); "
        "ignored when a mask image is set",
        default=False,
    )
    vertex_group: StringProperty(
        name="Look at",
        description="Vertex group the fit looks at (empty = the whole body); part_* groups are made on import",
    )
    preset: EnumProperty(name="Preset", items=_PRESET_ITEMS, default=DEFAULT_PRESET)
    iterations: IntProperty(name="Iterations", description="0 = the preset's count", default=0, min=0)
    fit_size: IntProperty(
        name="Fit size", description="Longer image side used while fitting, pixels", default=256, min=16
    )
    keyframe: BoolProperty(name="Keyframe", description="Keyframe the result at the current frame", default=False)
    shape_values: CollectionProperty(type=PoseFitShapeValue, name="Shape")
    status_frame: IntProperty(name="Frame", description="Frame of the fit in progress or last done", default=0)
    status_iteration: IntProperty(name="Iteration", default=0)
    status_loss: FloatProperty(name="Loss", default=0.0)
    status_error: FloatProperty(name="Image error %", description="Per-pixel image error, percent", default=0.0)
    status_message: StringProperty(name="Status", default="")


CLASSES = (PoseFitPreferences, PoseFitShapeValue, PoseFitSettings)
