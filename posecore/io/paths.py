"""Checks every reader of a user-given file starts with."""

from __future__ import annotations

import os
from pathlib import Path

from posecore.errors import InputFileError


def existing_file(path: str | os.PathLike[str], kind: str) -> Path:
    """``path`` as a Path, or InputFileError when it is missing or a directory.

    Args:
        path: the file the user gave. kind: what it should be, for the message ("an image file").
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(p, "file not found")
    if p.is_dir():
        raise InputFileError(p, f"is a directory, expected {kind}")
    return p
