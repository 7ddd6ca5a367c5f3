"""Messages for Blender users: posecore's errors name command-line options (``--model smplx:DIR``); in Blender
they must name the panel field or preference that does the same job."""

from __future__ import annotations

import re

SMPLX_FOLDER = "the 'SMPL-X model folder' preference (Edit > Preferences > Add-ons > PoseFit)"
VPOSER_FOLDER = "the 'VPoser folder' preference (Edit > Preferences > Add-ons > PoseFit)"

# Longest first, so ``--mask-from-alpha`` is not read as ``--mask``.
CLI_TO_PANEL: tuple[tuple[str, str], ...] = (
    ("point --model smplx:DIR at the folder containing", f"set {SMPLX_FOLDER} to the folder containing"),
    ("--model smplx:DIR", SMPLX_FOLDER),
    ("--vposer DIR", VPOSER_FOLDER),
    ("--vposer", VPOSER_FOLDER),
    ("--mask-from-alpha", "'Mask from alpha'"),
    ("--mask", "'Person mask'"),
    ("--image", "'Target image'"),
    ("--init", "'Initialisation'"),
    ("--frame", "the initialisation's 'Frame'"),
    ("--iterations", "'Iterations'"),
    ("--preset", "'Preset'"),
    ("--renderer", "the 'Renderer' preference"),
    ("--threads", "the 'Threads' preference"),
    ("--size", "'Fit size'"),
    ("--part", "'Look at'"),
)
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def panel_words(message: str) -> str:
    """``message`` with each known command-line option replaced by the panel field that does the same; any
    other option is left as is (there is no panel field to name)."""
    for flag, field in CLI_TO_PANEL:
        message = re.sub(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", field, message)
    return message


def unknown_flags(message: str) -> list[str]:
    """Command-line options left in ``message`` (for tests: the add-on should show none)."""
    return _FLAG.findall(message)
