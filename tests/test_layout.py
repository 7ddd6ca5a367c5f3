"""The layout's one hard rule: posecore is the pure-torch core and never imports Blender's modules."""

from __future__ import annotations

import ast
from pathlib import Path

BLENDER_MODULES = {"bpy", "bpy_extras", "mathutils", "addon_utils", "bmesh", "gpu", "addon"}


def test_posecore_never_imports_blender() -> None:
    root = Path(__file__).resolve().parents[1] / "posecore"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(root.parent)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in BLENDER_MODULES]  # fmt: skip
    assert not offenders, offenders
    assert len(list(root.rglob("*.py"))) > 20  # the scan really covered the package
