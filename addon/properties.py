"""Scene settings (``scene.posefit``) and add-on preferences."""

from __future__ import annotations

import importlib.util

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
from posecore.render import DEFAULT_RENDERER

ADDON_PACKAGE = __package__.rpartition(".")[0] or __package__
"""The extension's module name (``bl_ext.<repo>.posefit``): the key of its preferences."""

_RENDERERS = {
    # name: (label, plain description, modules it needs, why it may be missing)
    "raster": ("Raster", "PoseFit's own renderer: fast, deterministic, always available", (), ""),
    "mitsuba": (
        "Mitsuba 3",
        "Mitsuba 3 with a projective integrator: physically based, slower",
        ("mitsuba", "drjit"),
        "Mitsuba 3 is not in Blender's Python (the extension does not bundle it): install mitsuba==3.9.1 and "
        "drjit==1.5.0 into Blender's Python (it also needs LLVM 19)",
    ),
    "redner": (
        "redner",
        "redner, the paper's renderer: path traced, slowest",
        ("pyredner",),
        "redner is not in Blender's Python (not bundled; PyPI has no build for Python 3.11): build pyredner yourself",
    ),
}
_PRESET_WORDS = {
    "fast": "Recommended: up to 150 steps that compare the images coarse to fine, moving the pose (and turning the "
    "camera slightly) while staying near the starting pose; stops early once it no longer improves",
    "paper": "The published method (Battogtokh & Borgo 2022): 200 small gradient steps on the pose and a slight "
    "camera turn, pulled towards an average pose (VPoser's, for SMPL-X with a VPoser folder set); slower to "
    "converge, for comparison with the paper",
}
_PRESET_ITEMS = [(name, name.capitalize(), _PRESET_WORDS.get(name, preset.notes)) for name, preset in PRESETS.items()]


def renderer_available(name: str) -> bool:
    """True when every module the renderer needs can be imported in this Python (nothing is imported)."""
    return all(importlib.util.find_spec(module) is not None for module in _RENDERERS[name][2])


def missing_renderers() -> list[str]:
    """Why each optional renderer is not offered (one sentence each; empty when all are installed)."""
    return [reason for name, (_l, _d, _m, reason) in _RENDERERS.items() if not renderer_available(name)]


_renderer_items_cache: list[tuple[str, str, str, int]] = []  # Blender needs the strings kept alive


def renderer_items(_self: object = None, _context: object = None) -> list[tuple[str, str, str, int]]:
    """The Renderer preference's choices: only renderers whose packages import here (raster always)."""
    items = [
        (name, label, description, number)
        for number, (name, (label, description, _m, _r)) in enumerate(_RENDERERS.items())
        if renderer_available(name)
    ]
    _renderer_items_cache[:] = items
    return _renderer_items_cache


def chosen_renderer(prefs: object | None) -> str:
    """The renderer the preferences choose; raster when none is set or the chosen one is not installed."""
    name = getattr(prefs, "renderer", "") or DEFAULT_RENDERER
    return name if name in _RENDERERS and renderer_available(name) else DEFAULT_RENDERER


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
    vposer_folder: StringProperty(
        name="VPoser folder",
        description="Your VPoser model folder (licensed like SMPL-X: vposer_v1_0, as SMPLify-X's vposer_ckpt, or "
        "V02_05). Decodes SMPLify-X results whose body pose is a 32-number VPoser code, and lets the 'paper' "
        "preset move the pose through VPoser's space as the paper did",
        subtype="DIR_PATH",
    )
    renderer: EnumProperty(
        name="Renderer",
        description="How the fit draws the body to compare it with the photo (only renderers installed in "
        "Blender's Python are listed)",
        items=renderer_items,
    )
    device: EnumProperty(
        name="Device",
        description="Where the fit computes: the CPU, or an NVIDIA GPU when torch finds one",
        items=_device_items,
    )
    threads: IntProperty(
        name="Threads",
        description="CPU threads the fit uses (0 = all cores; 1 keeps Blender responsive while fitting)",
        default=1,
        min=0,
    )

    def draw(self, _context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "smplx_folder")
        layout.prop(self, "vposer_folder")
        row = layout.row()
        row.prop(self, "renderer")
        row.prop(self, "device")
        row.prop(self, "threads")
        for reason in missing_renderers():
            layout.label(text=reason, icon="INFO")


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
        description="Which body to fit: the free Anny body, or SMPL-X from your own licensed model files",
        items=[
            ("anny", "Anny (free)", "The free Anny body (Apache-2.0 code, CC0 data), shipped with the extension"),
            ("smplx", "SMPL-X", "SMPL-X from the model folder set in the add-on preferences (licensed files)"),
        ],
        default="anny",
    )
    gender: EnumProperty(
        name="Gender",
        description="Which SMPL-X model file to use (SMPLX_NEUTRAL, SMPLX_FEMALE or SMPLX_MALE.npz)",
        items=[
            ("neutral", "Neutral", "SMPLX_NEUTRAL.npz: one model for every body"),
            ("female", "Female", "SMPLX_FEMALE.npz"),
            ("male", "Male", "SMPLX_MALE.npz"),
        ],
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
    preset: EnumProperty(
        name="Preset",
        description="How the fit searches for the pose (Fast is the recommended default)",
        items=_PRESET_ITEMS,
        default=DEFAULT_PRESET,
    )
    iterations: IntProperty(
        name="Iterations",
        description="How many steps the fit takes (0 = the preset's own count); more steps, slower and closer",
        default=0,
        min=0,
    )
    fit_size: IntProperty(
        name="Fit size",
        description="The photo's longer side while fitting, in pixels: smaller is faster, larger sees more detail",
        default=256,
        min=16,
    )
    detect_first_frame: BoolProperty(
        name="Detect the first frame",
        description="Fit Frame Range starts from the person detected in the first frame's image (body, camera and "
        "person mask, as Detect Pose), not from the body's current pose; later frames start from the frame before. "
        "Without a PoseFit body in the scene the first frame is always detected",
        default=False,
    )
    hypotheses: BoolProperty(
        name="Try Alternatives",
        description="Before a whole-body fit, detect the person's landmarks in the photo and try the poses one view "
        "cannot tell apart (arms or legs swapped, elbows and knees flipped towards or away from the camera, the body "
        "turned round); the fit finishes the one that explains the photo best. Next Alternative shows the others",
        default=True,
    )
    keyframe: BoolProperty(
        name="Keyframe",
        description="Insert keyframes for the fitted bones (and the camera, if the fit turned it) at the current frame",
        default=False,
    )
    shape_values: CollectionProperty(
        type=PoseFitShapeValue,
        name="Shape",
        description="The body's shape values (SMPL-X betas, Anny phenotypes), filled by Import Body",
    )
    status_fitted: BoolProperty(
        name="Fitted",
        description="True once a fit has run in this scene (the status box shows its numbers from then on)",
        default=False,
    )
    status_frame: IntProperty(
        name="Frame", description="The frame of the fit in progress, or of the last one done", default=0
    )
    status_iteration: IntProperty(name="Iteration", description="The step the fit is at", default=0)
    status_loss: FloatProperty(
        name="Loss", description="How far the rendered body is from the photo (lower is better)", default=0.0
    )
    status_error: FloatProperty(
        name="Image error %",
        description="Average difference between the rendered body and the photo per pixel, percent",
        default=0.0,
    )
    status_message: StringProperty(name="Status", description="What PoseFit did last", default="")


CLASSES = (PoseFitPreferences, PoseFitShapeValue, PoseFitSettings)
