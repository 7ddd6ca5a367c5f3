"""The add-on's modules build on each other without an import circle (read from the source, no bpy needed)."""

from __future__ import annotations

import ast
import pathlib

ADDON = pathlib.Path(__file__).resolve().parent.parent / "addon"


def _addon_imports(path: pathlib.Path) -> set[str]:
    """Add-on modules that ``path`` imports, at module level or inside functions (``from . import x``,
    ``from .x import y``)."""
    modules = {p.stem for p in ADDON.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names if alias.name in modules)
    return found - {"__init__"}


def test_no_import_circle_between_addon_modules() -> None:
    graph = {p.stem: _addon_imports(p) for p in ADDON.glob("*.py") if p.stem != "__init__"}
    assert graph["scene_io"] == set() and graph["targets"] == set()  # the bottom layer
    assert "operators" not in graph["frames"] and "frames" not in graph["fit_driver"]

    def visit(module: str, path: tuple[str, ...]) -> None:
        for child in graph.get(module, ()):
            assert child not in path, f"import circle: {' -> '.join((*path, child))}"
            visit(child, (*path, child))

    for module in graph:
        visit(module, (module,))
